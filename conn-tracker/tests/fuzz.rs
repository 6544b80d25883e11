//! Random call sequences: the table never panics, keeps its indexes consistent,
//! and holds its bounds after every call:
//! `len() <= max_connections` and `buffered_bytes() <= memory_limit_bytes`.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use conn_tracker::*;
use proptest::prelude::*;

const POOL: &[&[u8]] = &[
    REQ1,
    RESP1,
    REQ2,
    RESP2,
    b"GET /partial HTTP/1.1\r\nHost: some-long-host-name.example\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaa",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    b"\x00\x00\x00\x04\x01\x00\x00\x00\x00",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GE",
    b"T /x HTTP/1.1\r\n\r\n",
    b"\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
];

#[derive(Clone, Debug)]
enum Op {
    Open {
        k: u8,
        id: u8,
        role: u8,
        midway: bool,
    },
    Data {
        k: u8,
        id: u8,
        egress: bool,
        off: u16,
        piece: u8,
        cut: u8,
        ts: u16,
    },
    Missing {
        k: u8,
        id: u8,
        egress: bool,
        off: u16,
        len: u16,
        /// A body the probes skipped on request, not a loss.
        skipped: bool,
    },
    Close {
        k: u8,
        id: u8,
        e: u16,
        i: u16,
    },
    CloseProcess {
        tgid: u8,
    },
    EvictIdle {
        now: u16,
    },
    FlushAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..6, 0u8..3, 0u8..3, any::<bool>())
            .prop_map(|(k, id, role, midway)| Op::Open { k, id, role, midway }),
        6 => (0u8..6, 0u8..3, any::<bool>(), 0u16..400, 0u8..POOL.len() as u8, any::<u8>(), any::<u16>())
            .prop_map(|(k, id, egress, off, piece, cut, ts)| Op::Data { k, id, egress, off, piece, cut, ts }),
        1 => (0u8..6, 0u8..3, any::<bool>(), 0u16..400, 0u16..100, any::<bool>())
            .prop_map(|(k, id, egress, off, len, skipped)| Op::Missing { k, id, egress, off, len, skipped }),
        1 => (0u8..6, 0u8..3, 0u16..500, 0u16..500).prop_map(|(k, id, e, i)| Op::Close { k, id, e, i }),
        1 => (0u8..3).prop_map(|tgid| Op::CloseProcess { tgid }),
        1 => any::<u16>().prop_map(|now| Op::EvictIdle { now }),
        1 => Just(Op::FlushAll),
    ]
}

fn k(i: u8) -> ConnKey {
    key(u32::from(i % 3), i32::from(i / 3) + 3)
}

fn dir(egress: bool) -> Direction {
    if egress {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// Sequential offsets most of the time so parsers get past detection.
fn run(max_connections: usize, memory_limit_bytes: usize, window: usize, ops: Vec<Op>) {
    let lim = TrackerLimits {
        max_connections,
        memory_limit_bytes,
        detect_window_bytes: window,
        idle_timeout_ns: 5_000,
        ..TrackerLimits::default()
    };
    let mut t = ConnectionTable::new(lim);
    let mut sink = Rec::default();
    let mut next_off = std::collections::HashMap::<(ConnKey, u8, bool), u64>::new();
    for op in ops {
        match op {
            Op::Open {
                k: i,
                id,
                role,
                midway,
            } => {
                let role = [Role::Client, Role::Server, Role::Unknown][role as usize % 3];
                let mut inf = info(k(i), u64::from(id), role, 1);
                inf.joined_midway = midway;
                t.open(inf, &mut sink);
            }
            Op::Data {
                k: i,
                id,
                egress,
                off,
                piece,
                cut,
                ts,
            } => {
                let p = POOL[piece as usize % POOL.len()];
                let bytes = &p[..(cut as usize % (p.len() + 1))];
                let e = next_off.entry((k(i), id, egress)).or_insert(0);
                // Mostly in order; sometimes the fuzzed offset.
                let at = if off % 4 == 0 { u64::from(off) } else { *e };
                *e = at + bytes.len() as u64;
                t.data(
                    k(i),
                    ConnId(u64::from(id)),
                    dir(egress),
                    StreamOffset(at),
                    MonotonicNs(u64::from(ts)),
                    bytes,
                    &mut sink,
                );
            }
            Op::Missing {
                k: i,
                id,
                egress,
                off,
                len,
                skipped,
            } => {
                let at = StreamOffset(u64::from(off));
                let (c, d, n) = (ConnId(u64::from(id)), dir(egress), u64::from(len));
                if skipped {
                    t.skipped_body(k(i), c, d, at, n, MonotonicNs(7), &mut sink);
                } else {
                    t.missing(k(i), c, d, at, n, MonotonicNs(7), &mut sink);
                }
            }
            Op::Close {
                k: i,
                id,
                e,
                i: ing,
            } => {
                t.close(
                    k(i),
                    ConnId(u64::from(id)),
                    StreamOffset(u64::from(e)),
                    StreamOffset(u64::from(ing)),
                    MonotonicNs(9),
                    &mut sink,
                );
            }
            Op::CloseProcess { tgid } => t.close_process(u32::from(tgid), 11, &mut sink),
            Op::EvictIdle { now } => t.evict_idle(u64::from(now), &mut sink),
            Op::FlushAll => {
                t.flush_all(13, &mut sink);
                assert_eq!(t.len(), 0);
                assert_eq!(t.buffered_bytes(), 0);
            }
        }
        assert!(
            t.len() <= max_connections,
            "len {} > {}",
            t.len(),
            max_connections
        );
        assert!(
            t.buffered_bytes() <= memory_limit_bytes,
            "buffered {} > {}",
            t.buffered_bytes(),
            memory_limit_bytes
        );
        if let Err(e) = t.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_bounds(
        max_connections in 0usize..6,
        memory_limit_bytes in prop_oneof![Just(0usize), 1usize..200, Just(1 << 20)],
        window in 0usize..80,
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        run(max_connections, memory_limit_bytes, window, ops);
    }
}
