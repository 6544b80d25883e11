//! HTTP/1 (being written)
