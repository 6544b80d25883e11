//! Fuzz-style: arbitrary bytes and gaps on both sides never panic, never
//! buffer more than the head limit per direction, and stay cheap.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use proptest::prelude::*;
use protocol_parsers::http1::{Http1Limits, Http1Session};
use protocol_parsers::{CollectingSink, Side};
use std::time::Instant;

#[derive(Clone, Debug)]
enum Op {
    Data(bool, Vec<u8>),
    Gap(bool, u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Biased towards HTTP-ish bytes so that the parser gets deep, not just
    // rejected at the first byte.
    let http_byte =
        prop::sample::select(b"GET /HTTP1.0 2\r\n:;Content-Length:5chunked0aF\x00\xff".to_vec());
    prop_oneof![
        4 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(s, d)| Op::Data(s, d)),
        4 => (any::<bool>(), prop::collection::vec(http_byte, 0..300)).prop_map(|(s, d)| Op::Data(s, d)),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(s, l)| Op::Gap(s, l)),
    ]
}

fn side(req: bool) -> Side {
    if req {
        Side::Request
    } else {
        Side::Response
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_is_safe(ops in prop::collection::vec(op(), 0..40), max_head in 1usize..600) {
        let limits = Http1Limits { max_head_bytes: max_head, max_pending_requests: 4 };
        let mut s = Http1Session::new(limits);
        let mut sink = CollectingSink::default();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Data(r, d) => {
                    s.on_data(side(*r), i as u64, d, &mut sink);
                    // Leftover after a switch is at most the chunk that carried it.
                    prop_assert!(s.buffered_bytes() <= 2 * max_head + d.len());
                }
                Op::Gap(r, l) => s.on_gap(side(*r), *l, i as u64, &mut sink),
            }
        }
        s.on_close(u64::MAX, &mut sink);
        s.on_close(u64::MAX, &mut sink);
    }
}

/// Megabytes of random bytes go through fast and leave nothing buffered
/// beyond one head per direction.
#[test]
fn random_megabytes_are_cheap() {
    let limits = Http1Limits::default();
    let mut s = Http1Session::new(limits);
    let mut sink = CollectingSink::default();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut chunk = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let total = 64;
    for i in 0..total {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let side = if i % 2 == 0 {
            Side::Request
        } else {
            Side::Response
        };
        s.on_data(side, i, &chunk, &mut sink);
        assert!(s.buffered_bytes() <= 2 * limits.max_head_bytes);
    }
    s.on_close(total, &mut sink);
    let elapsed = start.elapsed();
    assert!(sink.exchanges.is_empty());
    // 4 MiB; generous bound so that debug builds on slow machines pass.
    assert!(elapsed.as_secs() < 20, "random bytes took {elapsed:?}");
    let skipped: u64 = sink
        .issues
        .iter()
        .map(|i| match i {
            protocol_parsers::ParseIssue::ResyncSkippedBytes(n) => *n,
            _ => 0,
        })
        .sum();
    assert!(skipped > 0);
}
