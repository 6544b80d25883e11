//! `ConnectionTable` under an arbitrary sequence of calls, decoded from the
//! input with `arbitrary`: open / data / missing / close / close_process /
//! evict_idle / flush_all on a small pool of keys and generations, with mostly
//! sequential stream offsets (so parsers get past detection) and sometimes
//! arbitrary ones, over HTTP-ish byte pieces or arbitrary bytes.
//!
//! Invariants (conn-tracker's lib docs):
//! - no panic ("It never panics on any sequence of calls");
//! - after every call: `len()` ≤ `max_connections`, `buffered_bytes()` ≤
//!   `memory_limit_bytes`, and `check_invariants()` (indexes agree, the
//!   buffered total matches the parsers, the recency list is sound);
//! - `open` of a generation leaves that generation tracked (unless
//!   `max_connections` is 0); a `close` of the tracked generation removes it;
//!   `close_process` leaves none of the process's sockets; `flush_all` leaves
//!   nothing tracked and nothing buffered.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use conn_tracker::{
    ConnId, ConnInfo, ConnKey, ConnectionTable, Direction, Endpoint, MonotonicNs, Protocol, Role,
    StreamOffset, TrackerEvent, TrackerLimits, TrackerSink,
};
use libfuzzer_sys::fuzz_target;
use protocol_parsers::http1::Http1Limits;
use protocol_parsers::http2::Http2Limits;
use protocol_parsers::{HttpExchange, ParseIssue};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

const POOL: &[&[u8]] = &[
    b"GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    b"\x00\x00\x00\x04\x01\x00\x00\x00\x00",
    // HEADERS stream 1, END_STREAM|END_HEADERS: :method GET, :scheme http, :path /, :authority h
    b"\x00\x00\x06\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x01h",
    // HEADERS stream 1 response :status 200, END_HEADERS; DATA 3 bytes END_STREAM
    b"\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88\x00\x00\x03\x00\x01\x00\x00\x00\x01abc",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GE",
    b"T /x HTTP/1.1\r\n\r\n",
    b"\r\n",
];

#[derive(Arbitrary, Debug)]
enum Bytes {
    Pool { piece: u8, cut: u8 },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Offset {
    /// Where this generation's direction left off (the common case).
    Next,
    Ahead(u16),
    Back(u16),
    At(u64),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        k: u8,
        id: u8,
        role: u8,
        midway: bool,
        port: u8,
        opened: u16,
    },
    Data {
        k: u8,
        id: u8,
        egress: bool,
        off: Offset,
        bytes: Bytes,
        dt: u16,
    },
    Missing {
        k: u8,
        id: u8,
        egress: bool,
        off: Offset,
        len: u32,
        dt: u16,
    },
    Close {
        k: u8,
        id: u8,
        egress_extra: u16,
        ingress_extra: u16,
        exact: bool,
    },
    CloseProcess {
        tgid: u8,
    },
    EvictIdle {
        dt: u32,
    },
    FlushAll,
}

#[derive(Arbitrary, Debug)]
struct Setup {
    max_connections: u8,
    memory_limit: u32,
    max_head: u16,
    max_pending: u8,
    h2_max_streams: u8,
    h2_max_header_list: u16,
    detect_window: u8,
    idle_timeout: u16,
}

/// Keys: 3 processes × 3 fds; generations 0..4.
fn key(i: u8) -> ConnKey {
    ConnKey {
        tgid: 100 + u32::from(i % 9 / 3),
        fd: 3 + i32::from(i % 3),
    }
}

#[derive(Default)]
struct Sink {
    exchanges: usize,
    issues: usize,
    events: usize,
}

impl TrackerSink for Sink {
    fn exchange(&mut self, conn: &ConnInfo, _exchange: HttpExchange) {
        // Only a parser makes exchanges, and a parser exists only once detected.
        assert!(
            matches!(conn.protocol, Protocol::Http1 | Protocol::Http2),
            "exchange on a {:?} connection",
            conn.protocol
        );
        self.exchanges += 1;
    }
    fn parse_issue(&mut self, _conn: &ConnInfo, _issue: ParseIssue) {
        self.issues += 1;
    }
    fn tracker_event(&mut self, event: TrackerEvent) {
        let _ = (event.label(), event.amount());
        self.events += 1;
    }
    fn mute(&mut self, _conn: &ConnInfo) {}
}

fn dir(egress: bool) -> Direction {
    if egress {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

fn place(off: &Offset, next: u64) -> u64 {
    match off {
        Offset::Next => next,
        Offset::Ahead(d) => next.saturating_add(u64::from(*d)),
        Offset::Back(d) => next.saturating_sub(u64::from(*d)),
        Offset::At(x) => *x,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let limits = TrackerLimits {
        max_connections: usize::from(setup.max_connections % 9),
        idle_timeout_ns: u64::from(setup.idle_timeout),
        memory_limit_bytes: setup.memory_limit as usize % (256 * 1024),
        http1: Http1Limits {
            max_head_bytes: 16 + usize::from(setup.max_head % 4096),
            max_pending_requests: 1 + usize::from(setup.max_pending % 8),
        },
        http2: Http2Limits {
            max_streams: 1 + usize::from(setup.h2_max_streams % 16),
            max_header_list_bytes: 16 + usize::from(setup.h2_max_header_list),
            ..Http2Limits::default()
        },
        detect_window_bytes: 1 + usize::from(setup.detect_window % 128),
    };
    let max_connections = limits.max_connections;
    let memory_limit = limits.memory_limit_bytes;
    let mut t = ConnectionTable::new(limits);
    let mut sink = Sink::default();
    // Next offset per (key, generation, direction): what the "kernel" sent so far.
    let mut next: HashMap<(ConnKey, u64, bool), u64> = HashMap::new();
    let mut clock: u64 = 1;

    let mut steps = 0;
    while !u.is_empty() && steps < 512 {
        steps += 1;
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        match op {
            Op::Open {
                k,
                id,
                role,
                midway,
                port,
                opened,
            } => {
                let key = key(k);
                let conn_id = u64::from(id % 4);
                let info = ConnInfo {
                    key,
                    conn_id,
                    role: [Role::Client, Role::Server, Role::Unknown][usize::from(role % 3)],
                    local: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
                    remote: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, port)), 40000),
                    opened_ns: if opened == 0 { 0 } else { clock },
                    protocol: Protocol::Undetected,
                    joined_midway: midway,
                };
                t.open(info, &mut sink);
                if max_connections > 0 {
                    let got = t.get(key).map(|c| c.conn_id);
                    assert_eq!(got, Some(conn_id), "open did not track the generation");
                }
            }
            Op::Data {
                k,
                id,
                egress,
                off,
                bytes,
                dt,
            } => {
                let key = key(k);
                let conn_id = u64::from(id % 4);
                let payload: &[u8] = match &bytes {
                    Bytes::Pool { piece, cut } => {
                        let p = POOL[usize::from(*piece) % POOL.len()];
                        let c = usize::from(*cut);
                        if c < p.len() && c != 0 {
                            &p[..c]
                        } else {
                            p
                        }
                    }
                    Bytes::Raw(v) => v,
                };
                let e = next.entry((key, conn_id, egress)).or_insert(0);
                let at = place(&off, *e);
                *e = at.saturating_add(payload.len() as u64);
                clock = clock.saturating_add(u64::from(dt));
                t.data(
                    key,
                    ConnId(conn_id),
                    dir(egress),
                    StreamOffset(at),
                    MonotonicNs(clock),
                    payload,
                    &mut sink,
                );
            }
            Op::Missing {
                k,
                id,
                egress,
                off,
                len,
                dt,
            } => {
                let key = key(k);
                let conn_id = u64::from(id % 4);
                let e = next.entry((key, conn_id, egress)).or_insert(0);
                let at = place(&off, *e);
                *e = at.saturating_add(u64::from(len));
                clock = clock.saturating_add(u64::from(dt));
                t.missing(
                    key,
                    ConnId(conn_id),
                    dir(egress),
                    StreamOffset(at),
                    u64::from(len),
                    MonotonicNs(clock),
                    &mut sink,
                );
            }
            Op::Close {
                k,
                id,
                egress_extra,
                ingress_extra,
                exact,
            } => {
                let key = key(k);
                let conn_id = u64::from(id % 4);
                let eg = next.get(&(key, conn_id, true)).copied().unwrap_or(0);
                let ing = next.get(&(key, conn_id, false)).copied().unwrap_or(0);
                let (eg, ing) = if exact {
                    (eg, ing)
                } else {
                    (
                        eg.saturating_add(u64::from(egress_extra)),
                        ing.saturating_add(u64::from(ingress_extra)),
                    )
                };
                let was = t.get(key).map(|c| c.conn_id);
                t.close(
                    key,
                    ConnId(conn_id),
                    StreamOffset(eg),
                    StreamOffset(ing),
                    MonotonicNs(clock),
                    &mut sink,
                );
                if was == Some(conn_id) {
                    assert!(t.get(key).is_none(), "closed generation still tracked");
                    next.retain(|(k2, c2, _), _| !(*k2 == key && *c2 == conn_id));
                }
            }
            Op::CloseProcess { tgid } => {
                let tgid = 100 + u32::from(tgid % 4);
                t.close_process(tgid, clock, &mut sink);
                for i in 0..9 {
                    let k2 = key(i);
                    if k2.tgid == tgid {
                        assert!(t.get(k2).is_none(), "socket of an exited process tracked");
                    }
                }
            }
            Op::EvictIdle { dt } => {
                clock = clock.saturating_add(u64::from(dt));
                t.evict_idle(clock, &mut sink);
            }
            Op::FlushAll => {
                t.flush_all(clock, &mut sink);
                assert_eq!(t.len(), 0, "connections left after flush_all");
                assert_eq!(t.buffered_bytes(), 0, "bytes buffered after flush_all");
            }
        }
        assert!(
            t.len() <= max_connections,
            "len {} > max_connections {max_connections}",
            t.len()
        );
        assert!(
            t.buffered_bytes() <= memory_limit,
            "buffered {} > memory_limit_bytes {memory_limit}",
            t.buffered_bytes()
        );
        if let Err(e) = t.check_invariants() {
            panic!("check_invariants: {e}");
        }
    }
    t.flush_all(clock, &mut sink);
    assert_eq!(t.len(), 0);
    assert_eq!(t.buffered_bytes(), 0);
    let _ = (sink.exchanges, sink.issues, sink.events);
});
