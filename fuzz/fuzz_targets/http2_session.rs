//! HTTP/2 session on an arbitrary conversation (format: `wirespan_fuzz` docs).
//!
//! Control bytes: b0 & 3 picks the constructor (`new`, `new_midstream`,
//! `new_after_upgrade`, `new`); (b0 >> 2) & 3 picks max_header_list_bytes
//! (65536, 4096, 256, 16); b0 & 16 picks max_frame_size 16384 instead of the
//! 16 MiB ceiling; b1 picks max_streams (1 + b1 % 64).
//!
//! Invariants:
//! - no panic;
//! - split invariance: data segments fed whole or split at the fuzzer's cut
//!   points (same timestamp per segment) give the same exchanges, issues,
//!   failure, error and open stream count (adjacent `ResyncSkippedBytes` are
//!   summed first: the midstream hunt reports once per call, see `coalesce`);
//! - `buffered_bytes()` after every call ≤ 2 × (8 + max(max_header_list_bytes,
//!   16 KiB kept of a SETTINGS payload, 64 KiB midstream hunt window)): per
//!   direction a partial frame header (≤ 8 bytes) plus either the header block
//!   (HEADERS/CONTINUATION payload + pending block ≤ the limit, checked in
//!   `begin_frame`), a SETTINGS payload, a 4/8-byte control payload, or the hunt
//!   window — the parts `Http2Session::buffered_bytes` documents;
//! - after a fatal error, or after close, nothing stays buffered and no stream
//!   stays open; `open_streams()` ≤ max_streams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::{CollectingSink, HttpVersion, ParseIssue, RequestField, RequestHead};
use wirespan_fuzz::{conversation, pieces, Input, Seg};

/// `SETTINGS_KEEP` and `HUNT_WINDOW` in protocol-parsers/src/http2 (private).
const SETTINGS_KEEP: usize = 16 * 1024;
const HUNT_WINDOW: usize = 64 * 1024;

fn session(mode: u8, limits: Http2Limits) -> Http2Session {
    match mode {
        1 => Http2Session::new_midstream(limits),
        2 => Http2Session::new_after_upgrade(
            limits,
            {
                let mut r = RequestHead::new("GET", "/", HttpVersion::Http11);
                r.set(RequestField::Authority, Some("h"));
                r
            },
            1,
        ),
        _ => Http2Session::new(limits),
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    sink_exchanges: Vec<protocol_parsers::HttpExchange>,
    sink_issues: Vec<ParseIssue>,
    failed: bool,
    error: String,
    open_before_close: usize,
}

/// Merges adjacent `ResyncSkippedBytes`: the midstream hunt reports the bytes
/// it drops once per call, so their number (not their sum) depends on how the
/// input was split. The /metrics counter adds the amounts, so only the sum is
/// observable; it must not depend on the split.
fn coalesce(issues: Vec<ParseIssue>) -> Vec<ParseIssue> {
    let mut out: Vec<ParseIssue> = Vec::with_capacity(issues.len());
    for i in issues {
        if let (Some(ParseIssue::ResyncSkippedBytes(a)), ParseIssue::ResyncSkippedBytes(b)) =
            (out.last_mut(), i)
        {
            *a += b;
            continue;
        }
        out.push(i);
    }
    out
}

fn run(segs: &[Seg<'_>], mode: u8, limits: Http2Limits, split: bool) -> Outcome {
    let mut s = session(mode, limits);
    let mut sink = CollectingSink::default();
    let per_dir = 8 + limits
        .max_header_list_bytes
        .max(SETTINGS_KEEP)
        .max(HUNT_WINDOW);
    let bound = 2 * per_dir;
    let check = |s: &Http2Session| {
        let b = s.buffered_bytes();
        assert!(b <= bound, "buffered {b} > {bound}");
        if s.is_failed() {
            assert_eq!(b, 0, "buffered after a fatal error");
            assert_eq!(s.open_streams(), 0, "open streams after a fatal error");
            assert!(s.error().is_some());
        }
        assert!(
            s.open_streams() <= limits.max_streams,
            "open streams over max_streams"
        );
    };
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
                    check(&s);
                }
            }
            Seg::Gap { side, len } => {
                s.on_gap(*side, *len, ts, &mut sink);
                check(&s);
            }
        }
    }
    let failed = s.is_failed();
    let error = format!("{:?}", s.error());
    let open_before_close = s.open_streams();
    s.on_close((segs.len() as u64 + 1) * 10, &mut sink);
    assert_eq!(s.buffered_bytes(), 0, "buffered after close");
    s.on_close(u64::MAX, &mut sink);
    for e in &sink.exchanges {
        assert!(e.stream_id.is_some(), "HTTP/2 exchange without a stream id");
    }
    Outcome {
        sink_exchanges: sink.exchanges,
        sink_issues: coalesce(sink.issues),
        failed,
        error,
        open_before_close,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let b0 = input.u8();
    let b1 = input.u8();
    let limits = Http2Limits {
        max_streams: 1 + usize::from(b1 % 64),
        max_header_list_bytes: [64 * 1024, 4096, 256, 16][usize::from((b0 >> 2) & 3)],
        max_frame_size: if b0 & 16 != 0 { 16_384 } else { (1 << 24) - 1 },
    };
    let mode = b0 & 3;
    let segs = conversation(&mut input);

    let whole = run(&segs, mode, limits, false);
    let split = run(&segs, mode, limits, true);
    assert_eq!(whole, split, "outcome differs when split");
});
