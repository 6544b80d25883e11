//! The programs and the maps they share.

mod conn;
mod data;
mod go_tls;
mod maps;
mod proc;
mod tls;
mod util;
