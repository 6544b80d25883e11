//! The parser tests' HTTP/2 fixtures: frames and HPACK representations come
//! from `test_support` (built by hand, so fixtures do not depend on the
//! decoder under test); here are the blocks, conversations and runner these
//! tests share.
#![allow(dead_code, reason = "shared by several test crates, each using a part")]

use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::{CollectingSink, Side};

pub use test_support::hpack::*;
pub use test_support::http2::*;

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A request block: static indexes for GET/POST, literals for the rest.
pub fn req_block(method: &str, path: &str, authority: &str) -> Vec<u8> {
    let m = match method {
        "GET" => Rep::Indexed(2),
        "POST" => Rep::Indexed(3),
        other => Rep::NoIdx(Name::Idx(2), other),
    };
    block(&[
        m,
        Rep::Indexed(7),
        Rep::NoIdx(Name::Idx(4), path),
        Rep::NoIdx(Name::Idx(1), authority),
        Rep::NoIdx(Name::Idx(58), "test-agent/1.0"),
    ])
}

pub fn resp_block(status: &str) -> Vec<u8> {
    let s = match status {
        "200" => Rep::Indexed(8),
        other => Rep::NoIdx(Name::Idx(8), other),
    };
    block(&[s, Rep::NoIdx(Name::Idx(31), "text/plain")])
}

/// One chunk of a conversation: which side, its bytes.
pub type Chunk = (Side, Vec<u8>);

/// Runs chunks through a session, chunk `i` at timestamp `(i + 1) * 10`.
pub fn run(mut s: Http2Session, chunks: &[Chunk], close: bool) -> (Http2Session, CollectingSink) {
    let mut sink = CollectingSink::default();
    for (i, (side, bytes)) in chunks.iter().enumerate() {
        s.on_data(*side, (i as u64 + 1) * 10, bytes, &mut sink);
    }
    if close {
        s.on_close(1_000_000, &mut sink);
    }
    (s, sink)
}

pub fn session() -> Http2Session {
    Http2Session::new(Http2Limits::default())
}

/// A typical start: preface + SETTINGS from the client, SETTINGS + ACK both ways.
pub fn handshake() -> Vec<Chunk> {
    let mut c = preface();
    c.extend(settings(&[(0x3, 100), (0x4, 65535)]));
    let mut s = settings(&[(0x3, 128)]);
    s.extend(settings_ack());
    vec![
        (Side::Request, c),
        (Side::Response, s),
        (Side::Request, settings_ack()),
    ]
}
