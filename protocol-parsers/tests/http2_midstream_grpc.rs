//! Joining an HTTP/2 connection midway: gRPC recognised from the wire when
//! its `content-type` is an unknown dynamic-table reference, fields that
//! cannot be decoded reported as unknown (never guessed), the dynamic table
//! learnt as entries are inserted after the join, and no false gRPC for
//! other HTTP/2 bodies that start with a zero byte.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod http2_support;

use http2_support::*;
use protocol_parsers::http2::{HpackRefs, Http2Limits, Http2Session};
use protocol_parsers::{CollectingSink, HttpExchange, ParseIssue, Side, UnknownFields};
use Side::{Request as Q, Response as R};

/// A DATA frame holding one gRPC message (flag 0, 4-byte length).
fn grpc_data(sid: u32, msg: &[u8], end_stream: bool) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    p.extend_from_slice(msg);
    frame(
        FrameType::Data,
        if end_stream { END_STREAM } else { 0 },
        sid,
        &p,
    )
}

fn body_data(sid: u32, body: &[u8], end_stream: bool) -> Vec<u8> {
    frame(
        FrameType::Data,
        if end_stream { END_STREAM } else { 0 },
        sid,
        body,
    )
}

fn midstream(chunks: &[Chunk]) -> (Http2Session, CollectingSink) {
    run(
        Http2Session::new_midstream(Http2Limits::default()),
        chunks,
        true,
    )
}

fn by_stream(sink: &CollectingSink, sid: u32) -> &HttpExchange {
    sink.exchanges
        .iter()
        .find(|e| e.stream_id == Some(sid))
        .unwrap_or_else(|| panic!("no exchange on stream {sid}: {:?}", sink.exchanges))
}

/// Before the join, as grpcio does, the client inserted (newest first)
/// `:path /shop.Cart/Add` (62), `:authority` (63), `content-type:
/// application/grpc` (64), `te: trailers` (65), `user-agent` (66); the
/// server inserted `content-type` (62), `grpc-status: 0` (63) and
/// `grpc-message` (64). All unknown to us.
fn grpcio_after_join() -> Vec<Chunk> {
    // Stream 21: Add, every field but :method and :scheme unknown.
    let add = block(&[
        Rep::Indexed(3),
        Rep::Indexed(6),
        Rep::Indexed(62),
        Rep::Indexed(63),
        Rep::Indexed(64),
        Rep::Indexed(65),
        Rep::Indexed(66),
    ]);
    // Stream 23: a new method; its path is inserted (old entries move up one).
    let remove = block(&[
        Rep::Indexed(3),
        Rep::Indexed(6),
        Rep::Inc(Name::Idx(4), "/shop.Cart/Remove"),
        Rep::Indexed(64),
        Rep::Indexed(65),
        Rep::Indexed(66),
        Rep::Indexed(67),
    ]);
    // Stream 25: Remove again, its path now a reference to what we learnt.
    let remove_again = block(&[
        Rep::Indexed(3),
        Rep::Indexed(6),
        Rep::Indexed(62),
        Rep::Indexed(64),
        Rep::Indexed(65),
        Rep::Indexed(66),
        Rep::Indexed(67),
    ]);
    let resp_head = block(&[Rep::Indexed(8), Rep::Indexed(62)]);
    let ok_trailers = block(&[Rep::Indexed(63), Rep::Indexed(64)]);
    // A literal grpc-status (not indexed): decodable whatever the table.
    let not_found = block(&[
        Rep::NoIdx(Name::Lit("grpc-status"), "5"),
        Rep::NoIdx(Name::Lit("grpc-message"), "no%20cart"),
    ]);
    let mut chunks = Vec::new();
    for (sid, req, trailers) in [
        (21, add, &ok_trailers),
        (23, remove, &ok_trailers),
        (25, remove_again, &not_found),
    ] {
        chunks.push((
            Q,
            [
                headers(sid, &req, false),
                grpc_data(sid, b"\x0a\x02id", true),
            ]
            .concat(),
        ));
        chunks.push((
            R,
            [
                headers(sid, &resp_head, false),
                grpc_data(sid, b"\x08\x01", false),
                headers(sid, trailers, true),
            ]
            .concat(),
        ));
    }
    chunks
}

#[test]
fn grpc_is_recognised_from_the_wire_and_unknowns_are_named() {
    let (s, sink) = midstream(&grpcio_after_join());
    assert!(!s.is_failed(), "{:?}", s.error());
    assert_eq!(sink.exchanges.len(), 3, "{:?}", sink.exchanges);

    let add = by_stream(&sink, 21);
    assert!(add.grpc_by_wire, "{add:?}");
    assert!(add.headers_incomplete);
    assert!(add.unknown.contains(UnknownFields::PATH));
    assert!(!add.unknown.contains(UnknownFields::METHOD));
    assert!(add.unknown.contains(UnknownFields::REQUEST_HEADERS));
    assert!(add.unknown.contains(UnknownFields::GRPC_STATUS));
    assert!(!add.unknown.contains(UnknownFields::STATUS));
    assert_eq!(add.request.method(), "POST");
    assert_eq!(add.request.content_type(), None);
    let resp = add.response.as_ref().expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.grpc_status, None);

    let remove = by_stream(&sink, 23);
    assert!(remove.grpc_by_wire, "{remove:?}");
    assert_eq!(remove.request.target(), "/shop.Cart/Remove");
    assert!(!remove.unknown.contains(UnknownFields::PATH));
    assert!(remove.unknown.contains(UnknownFields::GRPC_STATUS));

    let again = by_stream(&sink, 25);
    assert!(again.grpc_by_wire);
    assert_eq!(again.request.target(), "/shop.Cart/Remove");
    assert!(!again.unknown.contains(UnknownFields::PATH));
    // The literal status is known.
    assert!(!again.unknown.contains(UnknownFields::GRPC_STATUS));
    let r = again.response.as_ref().expect("response");
    assert_eq!(r.grpc_status, Some(5));
    assert_eq!(r.grpc_message.as_deref(), Some("no%20cart"));

    // Learnt: the second Remove's path reference resolved; the rest did not.
    // Unknown: Add 5 + head 1 + trailers 2; Remove 4 + 1 + 2; again 4 + 1.
    assert_eq!(
        s.hpack_midstream_refs(),
        Some(HpackRefs {
            resolved: 1,
            unknown: 20
        })
    );
    let unknown_issues = sink
        .issues
        .iter()
        .filter(|i| **i == ParseIssue::HpackUnknownIndex)
        .count();
    assert_eq!(unknown_issues, 20);
    assert!(sink.issues.contains(&ParseIssue::HpackMidstreamResolved(1)));
}

#[test]
fn a_connection_seen_from_its_start_reports_no_midstream_counts() {
    let mut c = handshake();
    c.push((Q, headers(1, &req_block("GET", "/", "h"), true)));
    c.push((R, headers(1, &resp_block("200"), true)));
    let (s, sink) = run(session(), &c, true);
    assert_eq!(s.hpack_midstream_refs(), None);
    assert_eq!(sink.exchanges.len(), 1);
    assert!(sink.exchanges[0].unknown.is_empty());
    assert!(!sink.exchanges[0].grpc_by_wire);
}

#[test]
fn the_table_turns_over_and_everything_decodes() {
    // Small table (size update to 128 bytes): two fresh literal insertions
    // evict everything older, and then no reference is unknown.
    let first = block(&[
        Rep::SizeUpdate(128),
        Rep::Indexed(3),
        Rep::Indexed(6),
        Rep::Inc(Name::Idx(4), "/shop.Cart/Remove"),
        Rep::Inc(Name::Idx(31), "application/grpc"),
    ]);
    let next = block(&[
        Rep::Indexed(3),
        Rep::Indexed(6),
        Rep::Indexed(63),
        Rep::Indexed(62),
    ]);
    let chunks = vec![
        (
            Q,
            [
                headers(1, &first, false),
                grpc_data(1, b"a", true),
                headers(3, &next, false),
                grpc_data(3, b"b", true),
            ]
            .concat(),
        ),
        (
            R,
            [
                headers(1, &block(&[Rep::Indexed(8)]), true),
                headers(3, &block(&[Rep::Indexed(8)]), true),
            ]
            .concat(),
        ),
    ];
    let (s, sink) = midstream(&chunks);
    let e = by_stream(&sink, 3);
    assert!(!e.headers_incomplete, "{e:?}");
    assert!(e.unknown.is_empty());
    assert_eq!(e.request.target(), "/shop.Cart/Remove");
    assert_eq!(e.request.content_type(), Some("application/grpc"));
    // content-type known: not "by wire".
    assert!(!e.grpc_by_wire);
    assert_eq!(
        s.hpack_midstream_refs(),
        Some(HpackRefs {
            resolved: 2,
            unknown: 0
        })
    );
}

/// Request and response blocks with everything unknown but `:method POST`
/// and `:status 200`, carrying `bodies`, with or without response trailers.
fn unknown_h2_post(
    path: Option<&str>,
    req_body: &[u8],
    resp_body: &[u8],
    response_trailers: bool,
    request_trailers: bool,
) -> Vec<Chunk> {
    let mut reps = vec![Rep::Indexed(3), Rep::Indexed(7)];
    if let Some(p) = path {
        reps.push(Rep::NoIdx(Name::Idx(4), p));
    } else {
        reps.push(Rep::Indexed(62));
    }
    reps.push(Rep::Indexed(63));
    let req = block(&reps);
    let mut q = vec![headers(5, &req, false)];
    q.push(body_data(5, req_body, !request_trailers));
    if request_trailers {
        q.push(headers(5, &block(&[Rep::Indexed(64)]), true));
    }
    let mut r = vec![
        headers(5, &block(&[Rep::Indexed(8), Rep::Indexed(62)]), false),
        body_data(5, resp_body, !response_trailers),
    ];
    if response_trailers {
        r.push(headers(5, &block(&[Rep::Indexed(63)]), true));
    }
    vec![(Q, q.concat()), (R, r.concat())]
}

fn grpc_msg(msg: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    p.extend_from_slice(msg);
    p
}

/// Non-gRPC HTTP/2 bodies that start with a zero byte are not gRPC, however
/// much else is unknown.
#[test]
fn no_false_grpc_for_bodies_starting_with_zero() {
    let mut mp4 = vec![0x00, 0x00, 0x00, 0x18];
    mp4.extend_from_slice(b"ftypisom\x00\x00\x02\x00isomiso2avc1mp41");
    mp4.resize(3000, 0x42);
    let zeros = vec![0u8; 64];
    let framed = grpc_msg(b"\x0a\x02id");
    let cases: Vec<(&str, Vec<Chunk>)> = vec![
        // An MP4 upload answered with an MP4, with response trailers.
        (
            "mp4 both ways",
            unknown_h2_post(None, &mp4, &mp4, true, false),
        ),
        ("zeros", unknown_h2_post(None, &zeros, &zeros, true, false)),
        // Exactly framed bodies but no response trailers.
        (
            "framed, no trailers",
            unknown_h2_post(None, &framed, &framed, false, false),
        ),
        // Framed, trailers both ways (gRPC never sends request trailers).
        (
            "request trailers",
            unknown_h2_post(None, &framed, &framed, true, true),
        ),
        // Framed with trailers, but a known path that is no gRPC method.
        (
            "plain path",
            unknown_h2_post(Some("/upload"), &framed, &framed, true, false),
        ),
        // Only the request framed.
        (
            "response unframed",
            unknown_h2_post(None, &framed, &mp4, true, false),
        ),
    ];
    for (name, chunks) in cases {
        let (s, sink) = midstream(&chunks);
        assert!(!s.is_failed(), "{name}: {:?}", s.error());
        let e = by_stream(&sink, 5);
        assert!(e.headers_incomplete, "{name}");
        assert!(!e.grpc_by_wire, "{name}: {e:?}");
    }
    // Control: the same shape with gRPC bodies and response trailers is gRPC.
    let (_, sink) = midstream(&unknown_h2_post(None, &framed, &framed, true, false));
    assert!(by_stream(&sink, 5).grpc_by_wire);
    let (_, sink) = midstream(&unknown_h2_post(
        Some("/shop.Cart/Add"),
        &framed,
        &framed,
        true,
        false,
    ));
    assert!(by_stream(&sink, 5).grpc_by_wire);
}

#[test]
fn an_unknown_status_is_named_not_zeroed_into_a_value() {
    // :status as an unknown dynamic reference. (A PING after each frame:
    // the join needs two consecutive frames to find a boundary.)
    let req = block(&[Rep::Indexed(2), Rep::Indexed(7), Rep::Indexed(62)]);
    let chunks = vec![
        (Q, [headers(7, &req, true), ping(false)].concat()),
        (
            R,
            [headers(7, &block(&[Rep::Indexed(62)]), true), ping(true)].concat(),
        ),
    ];
    let (_, sink) = midstream(&chunks);
    let e = by_stream(&sink, 7);
    assert!(e.unknown.contains(UnknownFields::PATH));
    assert!(e.unknown.contains(UnknownFields::STATUS));
    assert!(!e.unknown.contains(UnknownFields::REQUEST_HEADERS));
    assert!(!e.grpc_by_wire);
}

/// A lone request HEADERS frame cannot be confirmed by a second request
/// frame; its response, on the same stream id, confirms it, so the first
/// request after the join is not lost (and its response not unpaired).
#[test]
fn a_lone_request_frame_is_confirmed_by_its_response() {
    let req = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::NoIdx(Name::Idx(4), "/a"),
    ]);
    let chunks = vec![
        (Q, headers(9, &req, true)),
        (
            R,
            [
                headers(9, &block(&[Rep::Indexed(8)]), false),
                data(9, 3, true),
            ]
            .concat(),
        ),
    ];
    let (s, sink) = midstream(&chunks);
    assert!(!s.is_failed());
    assert_eq!(sink.exchanges.len(), 1, "{:?}", sink.issues);
    let e = &sink.exchanges[0];
    assert_eq!(e.request.target(), "/a");
    // The request's time is that of its own bytes, not of the response.
    assert_eq!(e.request_start_ns, 10);
    assert_eq!(e.response_body_size, 3);
    assert!(!sink.issues.contains(&ParseIssue::UnpairedResponse));
    // A response on another stream confirms nothing.
    let chunks = vec![
        (Q, headers(9, &req, true)),
        (
            R,
            [
                headers(11, &block(&[Rep::Indexed(8)]), false),
                data(11, 3, true),
            ]
            .concat(),
        ),
    ];
    let (_, sink) = midstream(&chunks);
    assert!(sink.exchanges.is_empty());
    assert!(sink.issues.contains(&ParseIssue::UnpairedResponse));
}
