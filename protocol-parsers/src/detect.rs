//! Protocol detection (being written)
