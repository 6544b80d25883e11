//! HPACK (RFC 7541) decoding for one direction of an HTTP/2 connection:
//! static and dynamic tables, Huffman strings (recent ones reused,
//! `recent_strings`), size updates bounded by the
//! peer's SETTINGS_HEADER_TABLE_SIZE, and an "unknown contents" mode for
//! connections joined midway (see [`table`]).
//!
//! Only decoding: the agent never sends HTTP/2. The Huffman encoder exists for
//! building test fixtures.

mod decoder;
pub mod huffman;
pub mod recent_strings;
pub mod static_table;
pub mod table;

pub use decoder::{decode_int, BlockStats, Decoder, DecoderError};
