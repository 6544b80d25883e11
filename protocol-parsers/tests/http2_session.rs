//! Http2Session behaviour: pairing, timing, trailers/gRPC, resets, limits,
//! malformed input, gaps and joining midway.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod http2_support;
use http2_support::*;

use protocol_parsers::http2::hpack::DecoderError;
use protocol_parsers::http2::{Http2Error, Http2Limits, Http2Session};
use protocol_parsers::{ExchangeEnd, HttpVersion, ParseIssue, RequestField, RequestHead, Side};

use Side::{Request as Q, Response as R};

fn conv(extra: Vec<Chunk>) -> Vec<Chunk> {
    let mut c = handshake();
    c.extend(extra);
    c
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

#[test]
fn simple_get() {
    let c = conv(vec![
        (
            Q,
            headers(1, &req_block("GET", "/a?b=1", "example.com"), true),
        ),
        (
            R,
            cat(&[headers(1, &resp_block("200"), false), data(1, 5, false)]),
        ),
        (R, data(1, 7, true)),
    ]);
    let (s, sink) = run(session(), &c, false);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    assert_eq!(sink.exchanges.len(), 1);
    let e = &sink.exchanges[0];
    assert_eq!(e.request.method(), "GET");
    assert_eq!(e.request.target(), "/a?b=1");
    assert_eq!(e.request.version, HttpVersion::Http2);
    assert_eq!(e.request.authority(), Some("example.com"));
    assert_eq!(e.request.scheme(), Some("https"));
    assert_eq!(e.request.user_agent(), Some("test-agent/1.0"));
    let r = e.response.as_ref().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("text/plain"));
    assert_eq!(e.response_body_size, 12);
    assert_eq!(e.stream_id, Some(1));
    assert_eq!(e.end, ExchangeEnd::Complete);
    assert_eq!((e.request_start_ns, e.request_end_ns), (40, 40));
    assert_eq!((e.response_start_ns, e.response_end_ns), (50, 60));
    assert!(!e.headers_incomplete);
    assert_eq!(s.buffered_bytes(), 0);
    assert_eq!(s.open_streams(), 0);
}

#[test]
fn post_with_body_and_trace_headers() {
    let b = block(&[
        Rep::Indexed(3),
        Rep::Indexed(7),
        Rep::Inc(Name::Idx(4), "/upload"),
        Rep::Inc(Name::Idx(1), "svc"),
        Rep::NoIdx(Name::Idx(31), "application/json"),
        Rep::Never(
            Name::Lit("traceparent"),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        Rep::NoIdx(Name::Lit("tracestate"), "a=1"),
        Rep::NoIdx(Name::Lit("tracestate"), "b=2"),
    ]);
    let c = conv(vec![
        (Q, headers(1, &b, false)),
        (Q, data(1, 100, false)),
        (Q, data(1, 23, true)),
        (R, headers(1, &block(&[Rep::Indexed(9)]), true)),
    ]);
    let (_, sink) = run(session(), &c, false);
    let e = &sink.exchanges[0];
    assert_eq!(e.request.method(), "POST");
    assert_eq!(e.request.content_type(), Some("application/json"));
    assert!(e.request.traceparent().unwrap().starts_with("00-0af7"));
    assert_eq!(e.request.tracestate(), Some("a=1,b=2"));
    assert_eq!(e.request_body_size, 123);
    assert_eq!((e.request_start_ns, e.request_end_ns), (40, 60));
    assert_eq!(e.response.as_ref().unwrap().status, 204);
    assert_eq!((e.response_start_ns, e.response_end_ns), (70, 70));
}

#[test]
fn dynamic_table_across_requests() {
    let first = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Inc(Name::Idx(4), "/x"),
        Rep::Inc(Name::Idx(1), "h"),
    ]);
    // 62 = :authority h, 63 = :path /x
    let second = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Indexed(63),
        Rep::Indexed(62),
    ]);
    let c = conv(vec![
        (
            Q,
            cat(&[headers(1, &first, true), headers(3, &second, true)]),
        ),
        (
            R,
            cat(&[
                headers(3, &resp_block("200"), true),
                headers(1, &resp_block("404"), true),
            ]),
        ),
    ]);
    let (_, sink) = run(session(), &c, false);
    assert_eq!(sink.exchanges.len(), 2);
    assert_eq!(sink.exchanges[0].stream_id, Some(3));
    assert_eq!(sink.exchanges[0].request.target(), "/x");
    assert_eq!(sink.exchanges[0].request.authority(), Some("h"));
    assert_eq!(sink.exchanges[1].response.as_ref().unwrap().status, 404);
}

#[test]
fn interleaved_streams() {
    let mut chunks = handshake();
    for sid in [1u32, 3, 5] {
        chunks.push((
            Q,
            headers(sid, &req_block("POST", &format!("/s{sid}"), "h"), false),
        ));
    }
    for sid in [5u32, 1, 3] {
        chunks.push((Q, data(sid, sid as usize * 10, true)));
    }
    chunks.push((R, headers(3, &resp_block("200"), false)));
    chunks.push((R, headers(1, &resp_block("500"), false)));
    chunks.push((R, data(1, 1, false)));
    chunks.push((R, data(3, 3, true)));
    chunks.push((R, headers(5, &resp_block("201"), true)));
    chunks.push((R, data(1, 2, true)));
    let (_, sink) = run(session(), &chunks, false);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    let ids: Vec<_> = sink
        .exchanges
        .iter()
        .map(|e| e.stream_id.unwrap())
        .collect();
    assert_eq!(ids, vec![3, 5, 1]);
    for e in &sink.exchanges {
        let sid = e.stream_id.unwrap();
        assert_eq!(e.request.target(), format!("/s{sid}"));
        assert_eq!(e.request_body_size, u64::from(sid) * 10);
    }
    assert_eq!(sink.exchanges[2].response_body_size, 3);
    assert_eq!(sink.exchanges[2].response.as_ref().unwrap().status, 500);
}

#[test]
fn continuation_and_padding() {
    let b = req_block("GET", "/cont", "example.org");
    let (a, rest) = b.split_at(5);
    let (m, z) = rest.split_at(7);
    // HEADERS with PADDED + PRIORITY, no END_HEADERS; two CONTINUATIONs.
    let mut p = vec![3u8, 0, 0, 0, 1, 16];
    p.extend_from_slice(a);
    p.extend_from_slice(&[0, 0, 0]);
    let mut padded_data = vec![10u8];
    padded_data.extend_from_slice(&[b'd'; 20]);
    padded_data.extend_from_slice(&[0; 10]);
    let c = conv(vec![
        (
            Q,
            frame(FrameType::Headers, PADDED | PRIORITY | END_STREAM, 1, &p),
        ),
        (Q, frame(FrameType::Continuation, 0, 1, m)),
        (Q, frame(FrameType::Continuation, END_HEADERS, 1, z)),
        (R, headers(1, &resp_block("200"), false)),
        (
            R,
            frame(FrameType::Data, PADDED | END_STREAM, 1, &padded_data),
        ),
    ]);
    let (_, sink) = run(session(), &c, false);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    let e = &sink.exchanges[0];
    assert_eq!(e.request.target(), "/cont");
    assert_eq!(e.request.authority(), Some("example.org"));
    assert_eq!((e.request_start_ns, e.request_end_ns), (40, 60));
    assert_eq!(e.response_body_size, 20);
}

#[test]
fn grpc_trailers() {
    let req = block(&[
        Rep::Indexed(3),
        Rep::Indexed(6),
        Rep::NoIdx(Name::Idx(4), "/pkg.Svc/Method"),
        Rep::NoIdx(Name::Idx(1), "grpc.local"),
        Rep::NoIdx(Name::Idx(31), "application/grpc"),
        Rep::NoIdx(Name::Lit("te"), "trailers"),
    ]);
    let resp = block(&[
        Rep::Indexed(8),
        Rep::NoIdx(Name::Idx(31), "application/grpc"),
    ]);
    let trailers = block_with(
        &[
            Rep::NoIdx(Name::Lit("grpc-status"), "5"),
            Rep::NoIdx(Name::Lit("grpc-message"), "not found"),
        ],
        true,
    );
    let c = conv(vec![
        (Q, cat(&[headers(1, &req, false), data(1, 12, true)])),
        (R, cat(&[headers(1, &resp, false), data(1, 30, false)])),
        (R, headers(1, &trailers, true)),
    ]);
    let (_, sink) = run(session(), &c, false);
    let e = &sink.exchanges[0];
    let r = e.response.as_ref().unwrap();
    assert_eq!(e.request.content_type(), Some("application/grpc"));
    assert_eq!(r.status, 200);
    assert_eq!(r.grpc_status, Some(5));
    assert_eq!(r.grpc_message.as_deref(), Some("not found"));
    assert_eq!(e.response_body_size, 30);
    assert_eq!(e.response_end_ns, 60);
}

#[test]
fn grpc_trailers_only() {
    let t = block(&[
        Rep::Indexed(8),
        Rep::NoIdx(Name::Idx(31), "application/grpc"),
        Rep::NoIdx(Name::Lit("grpc-status"), "14"),
    ]);
    let c = conv(vec![
        (Q, headers(1, &req_block("POST", "/a.B/C", "x"), true)),
        (R, headers(1, &t, true)),
    ]);
    let (_, sink) = run(session(), &c, false);
    let r = sink.exchanges[0].response.as_ref().unwrap();
    assert_eq!((r.status, r.grpc_status), (200, Some(14)));
}

#[test]
fn informational_then_final() {
    let c = conv(vec![
        (Q, headers(1, &req_block("POST", "/up", "x"), false)),
        (R, headers(1, &resp_block("100"), false)),
        (Q, data(1, 50, true)),
        (R, headers(1, &resp_block("200"), true)),
    ]);
    let (_, sink) = run(session(), &c, false);
    let e = &sink.exchanges[0];
    assert_eq!(e.response.as_ref().unwrap().status, 200);
    assert_eq!(e.response_start_ns, 70);
}

#[test]
fn rst_stream_and_goaway_and_close() {
    let mut chunks = handshake();
    for sid in [1u32, 3, 5, 7] {
        chunks.push((Q, headers(sid, &req_block("GET", "/", "h"), true)));
    }
    chunks.push((Q, rst(1, 8))); // client cancels 1
    chunks.push((R, goaway(5, 0))); // 7 was never processed
    chunks.push((R, headers(3, &resp_block("200"), false)));
    let (_, sink) = run(session(), &chunks, true);
    let got: Vec<_> = sink
        .exchanges
        .iter()
        .map(|e| (e.stream_id.unwrap(), e.end, e.response_end_ns))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, ExchangeEnd::Reset, 80),
            (7, ExchangeEnd::Reset, 90),
            (3, ExchangeEnd::ConnectionClosed, 1_000_000),
            (5, ExchangeEnd::ConnectionClosed, 1_000_000),
        ]
    );
    assert_eq!(sink.exchanges[2].response.as_ref().unwrap().status, 200);
}

#[test]
fn control_frames_are_ignored() {
    let c = conv(vec![
        (
            Q,
            cat(&[
                ping(false),
                window_update(0, 1000),
                frame(FrameType::Priority, 0, 1, &[0, 0, 0, 0, 9]),
            ]),
        ),
        (
            Q,
            cat(&[
                frame(FrameType::Unknown(0xfa), 0xff, 0, b"unknown"),
                headers(1, &req_block("GET", "/", "h"), true),
            ]),
        ),
        (
            R,
            cat(&[
                ping(true),
                window_update(1, 5),
                headers(1, &resp_block("200"), true),
            ]),
        ),
    ]);
    let (s, sink) = run(session(), &c, false);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    assert_eq!(sink.exchanges.len(), 1);
    assert!(!s.is_failed());
}

#[test]
fn push_promise() {
    let mut pp = vec![0, 0, 0, 2];
    pp.extend(req_block("GET", "/style.css", "h"));
    let c = conv(vec![
        (Q, headers(1, &req_block("GET", "/", "h"), true)),
        (
            R,
            cat(&[
                frame(FrameType::PushPromise, END_HEADERS, 1, &pp),
                headers(1, &resp_block("200"), true),
            ]),
        ),
        (
            R,
            cat(&[headers(2, &resp_block("200"), false), data(2, 9, true)]),
        ),
    ]);
    let (_, sink) = run(session(), &c, false);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    assert_eq!(sink.exchanges.len(), 2);
    let pushed = &sink.exchanges[1];
    assert_eq!(
        (pushed.stream_id, pushed.request.target()),
        (Some(2), "/style.css")
    );
    assert_eq!(pushed.response_body_size, 9);
}

#[test]
fn too_many_streams() {
    let limits = Http2Limits {
        max_streams: 2,
        ..Http2Limits::default()
    };
    let mut chunks = handshake();
    for sid in [1u32, 3, 5] {
        chunks.push((Q, headers(sid, &req_block("GET", "/", "h"), true)));
    }
    chunks.push((R, headers(5, &resp_block("200"), true)));
    chunks.push((R, headers(1, &resp_block("200"), true)));
    let (_, sink) = run(Http2Session::new(limits), &chunks, false);
    assert_eq!(
        sink.issues,
        vec![
            ParseIssue::Http2TooManyStreams,
            ParseIssue::UnpairedResponse
        ]
    );
    assert_eq!(sink.exchanges.len(), 1);
}

#[test]
fn upgrade_h2c() {
    let mut req = RequestHead::new("GET", "/up", HttpVersion::Http11);
    req.set(RequestField::Authority, Some("h"));
    let s = Http2Session::new_after_upgrade(Http2Limits::default(), req, 5);
    let c = conv(vec![(
        R,
        cat(&[headers(1, &resp_block("200"), false), data(1, 4, true)]),
    )]);
    let (_, sink) = run(s, &c, false);
    let e = &sink.exchanges[0];
    assert_eq!(
        (e.request.target(), e.request_start_ns, e.response_body_size),
        ("/up", 5, 4)
    );
}

fn expect_fatal(chunks: &[Chunk], issue: ParseIssue) -> Http2Error {
    let (s, sink) = run(session(), chunks, true);
    assert!(s.is_failed());
    assert_eq!(
        sink.issues.iter().filter(|i| **i == issue).count(),
        1,
        "{:?}",
        sink.issues
    );
    // The open stream (1) is emitted once, with Gap.
    assert_eq!(sink.exchanges.len(), 1);
    assert_eq!(sink.exchanges[0].end, ExchangeEnd::Gap);
    assert_eq!(s.buffered_bytes(), 0);
    s.error().unwrap()
}

fn open_then(extra: Vec<Chunk>) -> Vec<Chunk> {
    let mut c = conv(vec![(Q, headers(1, &req_block("GET", "/", "h"), true))]);
    c.extend(extra);
    // Anything after the failure is ignored.
    c.push((R, headers(1, &resp_block("200"), true)));
    c
}

#[test]
fn malformed_frames_stop_parsing() {
    use protocol_parsers::http2::frame::Error as FE;
    let bad: Vec<(Vec<u8>, FE)> = vec![
        (frame(FrameType::Ping, 0, 0, &[0; 7]), FE::BadLength),
        (frame(FrameType::Data, 0, 0, b"x"), FE::BadStreamId),
        (frame(FrameType::Settings, 0, 1, &[]), FE::BadStreamId),
        (
            frame(FrameType::Continuation, END_HEADERS, 1, &[0x82]),
            FE::UnexpectedContinuation,
        ),
        (frame(FrameType::RstStream, 0, 1, &[0; 3]), FE::BadLength),
        (
            frame(FrameType::Data, PADDED, 1, &[5, 1, 2]),
            FE::BadPadding,
        ),
        (settings(&[(0x5, 100)]), FE::BadSetting),
        (frame(FrameType::Data, 0, 1, &vec![0; 16_385]), FE::TooLarge),
    ];
    for (f, e) in bad {
        let got = expect_fatal(&open_then(vec![(R, f)]), ParseIssue::Http2FrameError);
        assert_eq!(got, Http2Error::Frame(e));
    }
    // Frame interleaved inside a header block.
    let c = open_then(vec![
        (R, frame(FrameType::Headers, 0, 1, &[0x88])),
        (R, ping(false)),
    ]);
    let got = expect_fatal(&c, ParseIssue::Http2FrameError);
    assert_eq!(got, Http2Error::Frame(FE::ExpectedContinuation));
    // Bad preface.
    let (s, sink) = run(session(), &[(Q, b"GET / HTTP/1.1\r\n\r\n".to_vec())], false);
    assert_eq!(s.error(), Some(Http2Error::Frame(FE::BadPreface)));
    assert_eq!(sink.issues, vec![ParseIssue::Http2FrameError]);
}

#[test]
fn larger_frames_after_settings() {
    let c = conv(vec![
        (Q, headers(1, &req_block("GET", "/", "h"), true)),
        (Q, settings(&[(0x5, 1 << 20)])),
        (R, settings_ack()),
        (R, headers(1, &resp_block("200"), false)),
        (R, data(1, 100_000, true)),
    ]);
    let (s, sink) = run(session(), &c, false);
    assert!(!s.is_failed(), "{:?}", s.error());
    assert_eq!(sink.exchanges[0].response_body_size, 100_000);
    // The hard ceiling wins over SETTINGS.
    let limits = Http2Limits {
        max_frame_size: 50_000,
        ..Http2Limits::default()
    };
    let (s, _) = run(Http2Session::new(limits), &c, false);
    assert!(s.is_failed());
}

#[test]
fn hpack_errors_stop_parsing() {
    // Table-size bomb: far beyond the server's SETTINGS_HEADER_TABLE_SIZE (default 4096).
    let bomb = block(&[Rep::SizeUpdate(1 << 30), Rep::Indexed(2)]);
    let c = open_then(vec![(Q, headers(3, &bomb, true))]);
    let got = expect_fatal(&c, ParseIssue::HpackError);
    assert_eq!(got, Http2Error::Hpack(DecoderError::SizeUpdateTooLarge));
    // An unknown dynamic index from the start of a connection is an error.
    let c = open_then(vec![(R, headers(1, &[0xc0], true))]);
    let got = expect_fatal(&c, ParseIssue::HpackError);
    assert_eq!(got, Http2Error::Hpack(DecoderError::InvalidIndex));
}

#[test]
fn table_size_follows_settings() {
    // The server allows 65536: the client may then grow its table.
    let mut c = preface();
    c.extend(settings(&[]));
    let up = block(&[
        Rep::SizeUpdate(65536),
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Indexed(4),
        Rep::NoIdx(Name::Idx(1), "h"),
    ]);
    let chunks = vec![
        (Q, c),
        (R, settings(&[(0x1, 65536)])),
        (Q, cat(&[settings_ack(), headers(1, &up, true)])),
        (R, headers(1, &resp_block("200"), true)),
    ];
    let (s, sink) = run(session(), &chunks, false);
    assert!(!s.is_failed(), "{:?}", s.error());
    assert_eq!(sink.exchanges.len(), 1);
}

#[test]
fn header_block_too_large() {
    let limits = Http2Limits {
        max_header_list_bytes: 100,
        ..Http2Limits::default()
    };
    let big = block(&[Rep::NoIdx(Name::Lit("x-big"), &"v".repeat(200))]);
    let mut chunks = handshake();
    chunks.push((Q, headers(1, &req_block("GET", "/", "h"), true)));
    chunks.push((R, headers(1, &big, true)));
    let (s, sink) = run(Http2Session::new(limits), &chunks, false);
    assert_eq!(s.error(), Some(Http2Error::HeadTooLarge));
    assert_eq!(sink.issues, vec![ParseIssue::HeadTooLarge]);
    assert_eq!(sink.exchanges[0].end, ExchangeEnd::Gap);
}

#[test]
fn gaps() {
    // Inside a DATA payload: absorbed, the declared size still counts.
    let mut sink = protocol_parsers::CollectingSink::default();
    let mut s = session();
    for (i, (side, b)) in conv(vec![(Q, headers(1, &req_block("GET", "/", "h"), true))])
        .iter()
        .enumerate()
    {
        s.on_data(*side, i as u64, b, &mut sink);
    }
    s.on_data(R, 10, &headers(1, &resp_block("200"), false), &mut sink);
    let d = data(1, 1000, true);
    s.on_data(R, 11, &d[..100], &mut sink);
    s.on_gap(R, 800, 12, &mut sink);
    s.on_data(R, 13, &d[900..], &mut sink);
    assert!(!s.is_failed());
    assert_eq!(sink.exchanges[0].response_body_size, 1000);
    assert_eq!(sink.exchanges[0].end, ExchangeEnd::Complete);
    assert_eq!(sink.exchanges[0].response_end_ns, 13);
    // A gap that ends exactly at the end of the frame completes it.
    s.on_data(
        Q,
        14,
        &headers(3, &req_block("GET", "/", "h"), true),
        &mut sink,
    );
    s.on_data(R, 15, &headers(3, &resp_block("200"), false), &mut sink);
    let d3 = data(3, 1000, true);
    s.on_data(R, 16, &d3[..9], &mut sink);
    s.on_gap(R, 1000, 17, &mut sink);
    assert_eq!(sink.exchanges[1].response_end_ns, 17);
    // A gap past the frame (or in a header) stops parsing.
    s.on_data(
        Q,
        18,
        &headers(5, &req_block("GET", "/", "h"), true),
        &mut sink,
    );
    let d5 = data(5, 1000, true);
    s.on_data(R, 19, &d5[..50], &mut sink);
    s.on_gap(R, 5000, 20, &mut sink);
    assert!(s.is_failed());
    assert_eq!(s.error(), Some(Http2Error::Gap));
    assert_eq!(sink.issues, vec![ParseIssue::ResyncAfterGap]);
    assert_eq!(sink.exchanges[2].end, ExchangeEnd::Gap);
}

/// Later part of a connection whose HPACK tables were built before we joined.
fn midstream_bytes() -> (Vec<u8>, Vec<u8>) {
    // The client had inserted 2 entries (62 = :authority old, 63 = user-agent old).
    // Request on 11 references 62 and 63 (unknown to us), inserts :path /new.
    let r11 = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Inc(Name::Idx(4), "/new"),
        Rep::Indexed(63),
        Rep::Indexed(64),
    ]);
    // Request 13: /new is now 62 (known), 63/64 are the old unknown ones, then :authority literal.
    let r13 = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Indexed(62),
        Rep::Inc(Name::Idx(1), "fresh"),
        Rep::NoIdx(Name::Idx(58), "ua"),
    ]);
    // Request 15: all known now (62 = fresh, 63 = /new).
    let r15 = block(&[
        Rep::Indexed(2),
        Rep::Indexed(7),
        Rep::Indexed(63),
        Rep::Indexed(62),
    ]);
    let q = cat(&[
        headers(11, &r11, true),
        headers(13, &r13, true),
        headers(15, &r15, true),
    ]);
    // Server: a response to 9 (request unseen), then 11, 13, 15.
    let rr = cat(&[
        headers(9, &resp_block("200"), true),
        headers(11, &block(&[Rep::Indexed(8)]), true),
        headers(13, &block(&[Rep::Indexed(13)]), true),
        headers(15, &block(&[Rep::Indexed(8)]), true),
    ]);
    (q, rr)
}

#[test]
fn midstream_join_and_recovery() {
    let (q, r) = midstream_bytes();
    // Start in the middle of a DATA frame of stream 9 on the request side.
    let mut tail = data(9, 40, false)[25..].to_vec();
    tail.extend(&q);
    let chunks = vec![(Q, tail), (R, r)];
    let (s, sink) = run(
        Http2Session::new_midstream(Http2Limits::default()),
        &chunks,
        true,
    );
    assert!(!s.is_failed(), "{:?}", s.error());
    let ex: Vec<_> = sink
        .exchanges
        .iter()
        .map(|e| {
            (
                e.stream_id.unwrap(),
                e.request.target(),
                e.request.authority(),
                e.headers_incomplete,
            )
        })
        .collect();
    assert_eq!(
        ex,
        vec![
            (11, "/new", None, true),
            (13, "/new", Some("fresh"), false),
            (15, "/new", Some("fresh"), false)
        ]
    );
    assert_eq!(sink.exchanges[1].response.as_ref().unwrap().status, 404);
    let unknown = sink
        .issues
        .iter()
        .filter(|i| **i == ParseIssue::HpackUnknownIndex)
        .count();
    assert_eq!(unknown, 2);
    assert!(sink.issues.contains(&ParseIssue::UnpairedResponse));
    assert!(
        sink.issues.contains(&ParseIssue::ResyncSkippedBytes(24)),
        "{:?}",
        sink.issues
    );
}

#[test]
fn midstream_every_start_offset_never_panics() {
    let (q, r) = midstream_bytes();
    for start in 0..q.len() {
        let chunks = vec![(Q, q[start..].to_vec()), (R, r.clone())];
        let (s, sink) = run(
            Http2Session::new_midstream(Http2Limits::default()),
            &chunks,
            true,
        );
        // Whatever we found, no field is ever guessed: targets are from the fixture.
        for e in &sink.exchanges {
            assert!(
                ["", "/new"].contains(&e.request.target()),
                "start {start}: {e:?}"
            );
        }
        let _ = s.buffered_bytes();
    }
}

#[test]
fn garbage_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..200 {
        let mut bytes = Vec::new();
        for _ in 0..(round * 7 % 500 + 10) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        for mut s in [
            session(),
            Http2Session::new_midstream(Http2Limits::default()),
        ] {
            let mut sink = protocol_parsers::CollectingSink::default();
            s.on_data(R, 1, &bytes, &mut sink);
            s.on_data(Q, 2, &bytes, &mut sink);
            s.on_gap(Q, 3, 3, &mut sink);
            s.on_close(4, &mut sink);
            assert!(s.buffered_bytes() <= 64 * 1024 * 2);
        }
    }
}

#[test]
fn request_started_gives_each_stream_as_its_headers_complete() {
    let mut sink = protocol_parsers::CollectingSink::default();
    let mut s = session();
    for (i, (side, b)) in conv(vec![
        (Q, headers(1, &req_block("GET", "/one", "h"), true)),
        (Q, headers(3, &req_block("GET", "/two", "h"), true)),
    ])
    .iter()
    .enumerate()
    {
        s.on_data(*side, i as u64, b, &mut sink);
    }
    // Both started before any response: numbered by stream id.
    assert_eq!(
        sink.started,
        vec![("/one".to_string(), 1), ("/two".to_string(), 3)]
    );
    assert!(sink.exchanges.is_empty());
    s.on_data(R, 10, &headers(3, &resp_block("200"), true), &mut sink);
    assert_eq!(sink.exchanges.len(), 1);
    assert_eq!(sink.exchanges[0].ordinal, 3);
}

/// Open streams hold their request heads: those count toward `held_bytes`
/// (what the connection table bounds) in whole 4 KiB steps, and are given
/// back as the streams finish. No field here enters the HPACK table.
#[test]
fn open_streams_heads_count_toward_held_bytes() {
    let path = format!("/{}", "s".repeat(1000));
    let mut chunks = Vec::new();
    for i in 0..10u32 {
        chunks.push((Q, headers(2 * i + 1, &req_block("GET", &path, "h"), true)));
    }
    let (s, _) = run(session(), &conv(chunks), false);
    assert_eq!(s.open_streams(), 10);
    assert_eq!(s.buffered_bytes(), 0);
    // Ten heads of ~1 KiB of text each: counted as 8 KiB.
    assert_eq!(s.held_bytes(), 8 * 1024);
    let mut answers = Vec::new();
    for i in 0..10u32 {
        answers.push((R, headers(2 * i + 1, &resp_block("200"), true)));
    }
    let (s, sink) = run(s, &answers, false);
    assert_eq!(sink.exchanges.len(), 10);
    assert_eq!(s.held_bytes(), 0);
}
