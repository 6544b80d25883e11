//! Test-side HTTP/2 encoder: frames and HPACK representations built by hand,
//! so fixtures do not depend on the decoder under test.
#![allow(dead_code)]

use protocol_parsers::http2::frame::{FrameHeader, PREFACE};
use protocol_parsers::http2::hpack::huffman;
use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::{CollectingSink, Side};

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIO: u8 = 0x20;

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 7541 §5.1 integer; `flags` are the bits above the prefix.
pub fn int(out: &mut Vec<u8>, prefix: u8, flags: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

pub fn string(out: &mut Vec<u8>, s: &[u8], huff: bool) {
    if huff {
        let mut enc = Vec::new();
        huffman::encode(s, &mut enc);
        int(out, 7, 0x80, enc.len());
        out.extend_from_slice(&enc);
    } else {
        int(out, 7, 0, s.len());
        out.extend_from_slice(s);
    }
}

#[derive(Clone, Copy)]
pub enum Name<'a> {
    Idx(usize),
    Lit(&'a str),
}

/// HPACK representations.
#[derive(Clone, Copy)]
pub enum Rep<'a> {
    Indexed(usize),
    /// Literal with incremental indexing.
    Inc(Name<'a>, &'a str),
    /// Literal without indexing.
    NoIdx(Name<'a>, &'a str),
    /// Literal never indexed.
    Never(Name<'a>, &'a str),
    SizeUpdate(usize),
}

pub fn block_with(reps: &[Rep], huff: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for r in reps {
        let (prefix, flag, name, value) = match *r {
            Rep::Indexed(i) => {
                int(&mut out, 7, 0x80, i);
                continue;
            }
            Rep::SizeUpdate(s) => {
                int(&mut out, 5, 0x20, s);
                continue;
            }
            Rep::Inc(n, v) => (6, 0x40, n, v),
            Rep::NoIdx(n, v) => (4, 0x00, n, v),
            Rep::Never(n, v) => (4, 0x10, n, v),
        };
        match name {
            Name::Idx(i) => int(&mut out, prefix, flag, i),
            Name::Lit(n) => {
                int(&mut out, prefix, flag, 0);
                string(&mut out, n.as_bytes(), huff);
            }
        }
        string(&mut out, value.as_bytes(), huff);
    }
    out
}

pub fn block(reps: &[Rep]) -> Vec<u8> {
    block_with(reps, false)
}

pub fn frame(kind: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = FrameHeader::encode(payload.len() as u32, kind, flags, sid).to_vec();
    f.extend_from_slice(payload);
    f
}

pub fn headers(sid: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | if end_stream { END_STREAM } else { 0 },
        sid,
        block,
    )
}

pub fn data(sid: u32, len: usize, end_stream: bool) -> Vec<u8> {
    frame(
        DATA,
        if end_stream { END_STREAM } else { 0 },
        sid,
        &vec![b'x'; len],
    )
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, 1, 0, &[])
}

pub fn rst(sid: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, sid, &code.to_be_bytes())
}

pub fn goaway(last: u32, code: u32) -> Vec<u8> {
    let mut p = last.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(b"debug");
    frame(GOAWAY, 0, 0, &p)
}

pub fn ping(ack: bool) -> Vec<u8> {
    frame(PING, u8::from(ack), 0, &[1, 2, 3, 4, 5, 6, 7, 8])
}

pub fn window_update(sid: u32, inc: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, sid, &inc.to_be_bytes())
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

pub fn preface() -> Vec<u8> {
    PREFACE.to_vec()
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
