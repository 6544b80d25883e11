//! HTTP/2 session throughput (being written).
fn main() {}
