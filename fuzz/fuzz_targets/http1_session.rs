//! HTTP/1 session on an arbitrary conversation (format: `wirespan_fuzz` docs).
//!
//! Control bytes: b0 & 3 picks max_head_bytes (16384, 1024, 200, 40); b1 picks
//! max_pending_requests (1 + b1 % 16).
//!
//! Invariants:
//! - no panic;
//! - split invariance: every data segment fed whole, or split at the
//!   fuzzer's cut points (same timestamp per segment), gives the same
//!   exchanges, the same issues and the same upgrade outcome;
//! - `buffered_bytes()` ≤ 2 × max_head_bytes after every call while no
//!   protocol switch happened, and ≤ 2 × max_head_bytes + the length of the
//!   chunk that carried the switch once one did (its leftover, documented on
//!   `buffered_bytes`, stays until taken; later chunks are ignored);
//! - byte accounting: resync-skipped bytes count received bytes that belong to
//!   no message, and body sizes count decoded body bytes plus lost bytes
//!   absorbed by a body, so their sum never exceeds (data bytes + gap bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol_parsers::http1::{Http1Limits, Http1Session};
use protocol_parsers::{CollectingSink, ParseIssue};
use wirespan_fuzz::{conversation, pieces, Input, Seg};

fn run(segs: &[Seg<'_>], limits: Http1Limits, split: bool) -> (CollectingSink, Option<String>) {
    let mut s = Http1Session::new(limits);
    let mut sink = CollectingSink::default();
    let bound = 2 * limits.max_head_bytes;
    // The length of the chunk in which the protocol switch happened.
    let mut switch_chunk: Option<usize> = None;
    for (i, seg) in segs.iter().enumerate() {
        let ts = (i as u64 + 1) * 10;
        match seg {
            Seg::Data { side, bytes, cuts } => {
                let parts = if split {
                    pieces(bytes, cuts)
                } else {
                    vec![*bytes]
                };
                for p in parts {
                    s.on_data(*side, ts, p, &mut sink);
                    let b = s.buffered_bytes();
                    if s.upgrade().is_none() {
                        assert!(b <= bound, "buffered {b} > 2 x max_head {bound}");
                    } else {
                        let carried = *switch_chunk.get_or_insert(p.len());
                        assert!(
                            b <= bound + carried,
                            "buffered {b} after upgrade, in a chunk of {carried}"
                        );
                    }
                }
            }
            Seg::Gap { side, len } => {
                s.on_gap(*side, *len, ts, &mut sink);
                if s.upgrade().is_none() {
                    assert!(s.buffered_bytes() <= bound);
                }
            }
        }
    }
    let upgrade = format!("{:?}/{:?}", s.upgrade(), s.take_upgrade_request());
    s.on_close((segs.len() as u64 + 1) * 10, &mut sink);
    s.on_close(u64::MAX, &mut sink); // later closes are ignored
    (sink, Some(upgrade))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let b0 = input.u8();
    let b1 = input.u8();
    let limits = Http1Limits {
        max_head_bytes: [16 * 1024, 1024, 200, 40][usize::from(b0 & 3)],
        max_pending_requests: 1 + usize::from(b1 % 16),
    };
    let segs = conversation(&mut input);

    let (whole, up_whole) = run(&segs, limits, false);
    let (split, up_split) = run(&segs, limits, true);
    assert_eq!(
        whole.exchanges, split.exchanges,
        "exchanges differ when split"
    );
    assert_eq!(whole.issues, split.issues, "issues differ when split");
    assert_eq!(up_whole, up_split, "upgrade differs when split");

    // Byte accounting (an inequality: head bytes are not reported).
    let mut fed: u64 = 0;
    for seg in &segs {
        fed = fed.saturating_add(match seg {
            Seg::Data { bytes, .. } => bytes.len() as u64,
            Seg::Gap { len, .. } => *len,
        });
    }
    let mut counted: u64 = 0;
    for i in &whole.issues {
        if let ParseIssue::ResyncSkippedBytes(n) = i {
            assert!(*n > 0, "ResyncSkippedBytes(0)");
            counted = counted.saturating_add(*n);
        }
    }
    for e in &whole.exchanges {
        counted = counted
            .saturating_add(e.request_body_size)
            .saturating_add(e.response_body_size);
        assert_eq!(e.stream_id, None);
        assert!(!e.headers_incomplete);
    }
    assert!(
        counted <= fed,
        "skipped + body bytes {counted} > data + gap bytes {fed}"
    );
});
