//! Exists so that the collector can name this crate as a build dependency (which
//! makes cargo rebuild it when the programs change); the programs are the binary.
#![no_std]
