//! Feeding a conversation split at arbitrary points (every single split point,
//! and random multi-way splits) gives exactly the same exchanges and issues.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod http2_support;
use http2_support::*;

use proptest::prelude::*;
use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::{CollectingSink, Side};

/// A conversation exercising most frame kinds, as (side, frame) events.
/// Timestamps are per event, so results cannot depend on how bytes are split.
fn conversation() -> Vec<Chunk> {
    use Side::{Request as Q, Response as R};
    let mut c = handshake();
    let req = req_block("POST", "/split", "example.com");
    let (a, b) = req.split_at(6);
    let grpc_trailers = block_with(&[Rep::NoIdx(Name::Lit("grpc-status"), "0")], true);
    let indexed = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Inc(Name::Idx(4), "/idx"),
        Rep::Inc(Name::Idx(1), "a"),
    ]);
    let again = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Indexed(63),
        Rep::Indexed(62),
    ]);
    let mut padded = vec![4u8];
    padded.extend_from_slice(&[7; 30]);
    padded.extend_from_slice(&[0; 4]);
    c.extend([
        (Q, frame(FrameType::Headers, 0, 1, a)),
        (Q, frame(FrameType::Continuation, END_HEADERS, 1, b)),
        (Q, data(1, 300, false)),
        (Q, headers(3, &indexed, true)),
        (Q, frame(FrameType::Data, PADDED | END_STREAM, 1, &padded)),
        (R, headers(3, &resp_block("404"), true)),
        (R, headers(1, &resp_block("200"), false)),
        (Q, ping(false)),
        (R, ping(true)),
        (R, data(1, 1000, false)),
        (Q, headers(5, &again, true)),
        (R, headers(1, &grpc_trailers, true)),
        (Q, headers(7, &req_block("GET", "/reset", "h"), true)),
        (R, rst(7, 8)),
        (R, headers(5, &resp_block("200"), false)),
        (R, goaway(5, 0)),
    ]);
    c
}

/// Runs events with the same timestamps, each event's bytes split at `cuts`
/// (offsets into the concatenation of all bytes of that side).
fn run_split(events: &[Chunk], cuts: &[usize]) -> (CollectingSink, usize) {
    let mut s = Http2Session::new(Http2Limits::default());
    let mut sink = CollectingSink::default();
    let mut pos = [0usize; 2];
    for (i, (side, bytes)) in events.iter().enumerate() {
        let si = usize::from(*side == Side::Response);
        let start = pos[si];
        let end = start + bytes.len();
        let mut at = start;
        // Cuts are interpreted per side in that side's byte space.
        for &c in cuts.iter().filter(|&&c| c > start && c < end) {
            s.on_data(*side, i as u64, &bytes[at - start..c - start], &mut sink);
            at = c;
        }
        s.on_data(*side, i as u64, &bytes[at - start..], &mut sink);
        pos[si] = end;
    }
    s.on_close(999, &mut sink);
    (sink, s.buffered_bytes())
}

#[test]
fn reference_result() {
    let (sink, buffered) = run_split(&conversation(), &[]);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    assert_eq!(buffered, 0);
    let ids: Vec<_> = sink
        .exchanges
        .iter()
        .map(|e| e.stream_id.unwrap())
        .collect();
    assert_eq!(ids, vec![3, 1, 7, 5]);
    assert_eq!(sink.exchanges[1].request_body_size, 330);
    assert_eq!(
        sink.exchanges[1].response.as_ref().unwrap().grpc_status,
        Some(0)
    );
    assert_eq!(sink.exchanges[3].request.target(), "/idx");
}

#[test]
fn every_single_split_point() {
    let events = conversation();
    let (reference, _) = run_split(&events, &[]);
    let total: usize = events.iter().map(|(_, b)| b.len()).sum();
    for cut in 1..total {
        let (got, _) = run_split(&events, &[cut]);
        assert_eq!(got.exchanges, reference.exchanges, "cut {cut}");
        assert_eq!(got.issues, reference.issues, "cut {cut}");
    }
}

#[test]
fn byte_at_a_time() {
    let events = conversation();
    let (reference, _) = run_split(&events, &[]);
    let total: usize = events.iter().map(|(_, b)| b.len()).sum();
    let cuts: Vec<usize> = (1..total).collect();
    let (got, _) = run_split(&events, &cuts);
    assert_eq!(got.exchanges, reference.exchanges);
}

proptest! {
    #[test]
    fn random_splits_give_identical_results(mut cuts in proptest::collection::vec(1usize..4000, 0..40)) {
        cuts.sort_unstable();
        cuts.dedup();
        let events = conversation();
        let (reference, _) = run_split(&events, &[]);
        let (got, buffered) = run_split(&events, &cuts);
        prop_assert_eq!(got.exchanges, reference.exchanges);
        prop_assert_eq!(got.issues, reference.issues);
        prop_assert_eq!(buffered, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), split in 0usize..600) {
        let split = split.min(bytes.len());
        for mut s in [Http2Session::new(Http2Limits::default()), Http2Session::new_midstream(Http2Limits::default())] {
            let mut sink = CollectingSink::default();
            s.on_data(Side::Response, 1, &bytes[..split], &mut sink);
            s.on_data(Side::Request, 2, &bytes, &mut sink);
            s.on_data(Side::Response, 3, &bytes[split..], &mut sink);
            s.on_close(4, &mut sink);
        }
    }
}
