//! Behaviour tests of [`Http1Session`] with exact expected fields: messages,
//! bodies, pairing, upgrades. Loss and resync tests are in `tests_loss.rs`.

use super::*;
use crate::exchange::{CollectingSink, ExchangeEnd, HttpExchange, HttpVersion, ParseIssue, Side};

pub(super) const REQ: Side = Side::Request;
pub(super) const RESP: Side = Side::Response;

pub(super) struct T {
    pub(super) s: Http1Session,
    pub(super) sink: CollectingSink,
}

impl T {
    pub(super) fn new() -> Self {
        Self::with(Http1Limits::default())
    }
    pub(super) fn with(limits: Http1Limits) -> Self {
        T {
            s: Http1Session::new(limits),
            sink: CollectingSink::default(),
        }
    }
    pub(super) fn data(&mut self, side: Side, ts: u64, bytes: &[u8]) -> &mut Self {
        self.s.on_data(side, ts, bytes, &mut self.sink);
        self
    }
    /// Feeds one byte at a time, all with the same timestamp.
    pub(super) fn bytewise(&mut self, side: Side, ts: u64, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.s
                .on_data(side, ts, std::slice::from_ref(b), &mut self.sink);
        }
        self
    }
    pub(super) fn gap(&mut self, side: Side, len: u64, ts: u64) -> &mut Self {
        self.s.on_gap(side, len, ts, &mut self.sink);
        self
    }
    pub(super) fn close(&mut self, ts: u64) -> &mut Self {
        self.s.on_close(ts, &mut self.sink);
        self
    }
    pub(super) fn ex(&self, i: usize) -> &HttpExchange {
        &self.sink.exchanges[i]
    }
    pub(super) fn targets(&self) -> Vec<(&str, Option<u16>, ExchangeEnd)> {
        self.sink
            .exchanges
            .iter()
            .map(|e| {
                (
                    e.request.target(),
                    e.response.as_ref().map(|r| r.status),
                    e.end,
                )
            })
            .collect()
    }
}

pub(super) fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}

pub(super) fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn keep_alive_get_fields_and_timestamps() {
    let mut t = T::new();
    t.data(
        REQ,
        100,
        b"GET /api/v1?x=1 HTTP/1.1\r\nHost: svc:8080\r\nUser-Agent: ua/1\r\n\
traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\ntracestate: a=b\r\n\r\n",
    );
    t.data(
        RESP,
        200,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    t.data(REQ, 300, &get("/second"));
    t.data(RESP, 400, &ok("hello"));
    assert!(t.sink.issues.is_empty(), "{:?}", t.sink.issues);
    assert_eq!(t.sink.exchanges.len(), 2);
    let e = t.ex(0);
    assert_eq!(e.request.method(), "GET");
    assert_eq!(e.request.target(), "/api/v1?x=1");
    assert_eq!(e.request.version, HttpVersion::Http11);
    assert_eq!(e.request.authority(), Some("svc:8080"));
    assert_eq!(e.request.user_agent(), Some("ua/1"));
    assert_eq!(
        e.request.traceparent(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(e.request.tracestate(), Some("a=b"));
    let r = e.response.as_ref().unwrap();
    assert_eq!((r.status, r.version), (200, HttpVersion::Http11));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!((r.grpc_status, r.grpc_message.as_deref()), (None, None));
    assert_eq!((e.request_body_size, e.response_body_size), (0, 2));
    assert_eq!(
        (
            e.request_start_ns,
            e.request_end_ns,
            e.response_start_ns,
            e.response_end_ns
        ),
        (100, 100, 200, 200)
    );
    assert_eq!(
        (e.stream_id, e.end, e.headers_incomplete),
        (None, ExchangeEnd::Complete, false)
    );
    let e = t.ex(1);
    assert_eq!((e.request.target(), e.response_body_size), ("/second", 5));
    assert_eq!((e.request_start_ns, e.response_end_ns), (300, 400));
}

#[test]
fn post_body_split_across_head_and_body_boundary() {
    let mut t = T::new();
    t.data(REQ, 10, b"POST /u HTTP/1.1\r\nContent-Length: 10\r")
        .data(REQ, 11, b"\n\r")
        .data(REQ, 12, b"\n01234")
        .data(REQ, 13, b"56789");
    t.data(
        RESP,
        20,
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    let e = t.ex(0);
    assert_eq!((e.request.method(), e.request_body_size), ("POST", 10));
    assert_eq!((e.request_start_ns, e.request_end_ns), (10, 13));
    assert_eq!(
        (e.response_start_ns, e.response_end_ns, e.response_body_size),
        (20, 20, 0)
    );
    assert!(t.sink.issues.is_empty());
}

#[test]
fn chunked_response_byte_by_byte_with_extensions_and_trailers() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n";
    let mut t = T::new();
    t.data(REQ, 1, &get("/c"));
    t.bytewise(RESP, 2, resp);
    t.data(REQ, 3, &get("/d")).data(RESP, 4, &ok("x"));
    assert!(t.sink.issues.is_empty(), "{:?}", t.sink.issues);
    assert_eq!(t.ex(0).response_body_size, 23);
    assert_eq!(t.ex(0).end, ExchangeEnd::Complete);
    assert_eq!(t.ex(1).request.target(), "/d");
}

#[test]
fn chunked_request_body() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"PUT /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    )
    .data(REQ, 2, b"0\r\n\r\n");
    t.data(RESP, 3, &ok(""));
    assert_eq!((t.ex(0).request_body_size, t.ex(0).request_end_ns), (3, 2));
}

#[test]
fn head_204_304_have_no_body() {
    let mut t = T::new();
    t.data(REQ, 1, b"HEAD /h HTTP/1.1\r\n\r\n");
    t.data(RESP, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    t.data(REQ, 3, &get("/a"));
    t.data(
        RESP,
        4,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
    );
    t.data(REQ, 5, &get("/b"));
    t.data(RESP, 6, b"HTTP/1.1 304 Not Modified\r\n\r\n");
    t.data(REQ, 7, &get("/c")).data(RESP, 8, &ok("abc"));
    assert!(t.sink.issues.is_empty(), "{:?}", t.sink.issues);
    let got: Vec<_> = t
        .sink
        .exchanges
        .iter()
        .map(|e| (e.response.as_ref().unwrap().status, e.response_body_size))
        .collect();
    assert_eq!(got, vec![(200, 0), (204, 0), (304, 0), (200, 3)]);
}

#[test]
fn continue_100_is_not_the_final_response() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    t.data(RESP, 2, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(t.sink.exchanges.is_empty());
    t.data(REQ, 3, b"data");
    t.data(RESP, 4, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(t.sink.exchanges.len(), 1);
    let e = t.ex(0);
    assert_eq!(e.response.as_ref().unwrap().status, 200);
    assert_eq!((e.request_body_size, e.request_end_ns), (4, 3));
    assert_eq!((e.response_start_ns, e.response_end_ns), (4, 4));
    assert!(t.sink.issues.is_empty());
}

#[test]
fn response_without_length_is_delimited_by_close() {
    let mut t = T::new();
    t.data(REQ, 1, b"GET / HTTP/1.0\r\n\r\n");
    t.data(RESP, 2, b"HTTP/1.0 200 OK\r\n\r\nsome ");
    t.data(RESP, 3, b"bytes");
    assert!(t.sink.exchanges.is_empty());
    t.close(9);
    let e = t.ex(0);
    assert_eq!(e.request.version, HttpVersion::Http10);
    assert_eq!(
        (e.response_body_size, e.response_end_ns, e.end),
        (10, 3, ExchangeEnd::Complete)
    );
}

#[test]
fn close_emits_waiting_and_partial_exchanges() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a")).data(REQ, 2, &get("/b"));
    t.data(
        RESP,
        3,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234",
    );
    t.close(7);
    assert_eq!(
        t.targets(),
        vec![
            ("/a", Some(200), ExchangeEnd::ConnectionClosed),
            ("/b", None, ExchangeEnd::ConnectionClosed)
        ]
    );
    assert_eq!(
        (t.ex(0).response_body_size, t.ex(0).response_end_ns),
        (4, 7)
    );
    assert_eq!((t.ex(1).response_start_ns, t.ex(1).response_end_ns), (0, 7));
    // Nothing after close.
    t.data(RESP, 8, &ok("")).close(9);
    assert_eq!(t.sink.exchanges.len(), 2);
}

#[test]
fn pipelined_requests_pair_in_order() {
    let mut t = T::new();
    let mut reqs = get("/1");
    reqs.extend(get("/2"));
    reqs.extend(b"POST /3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    t.data(REQ, 1, &reqs);
    let mut resps = ok("one");
    resps.extend(ok("two!"));
    resps.extend(ok("three"));
    t.data(RESP, 2, &resps);
    assert_eq!(
        t.targets(),
        vec![
            ("/1", Some(200), ExchangeEnd::Complete),
            ("/2", Some(200), ExchangeEnd::Complete),
            ("/3", Some(200), ExchangeEnd::Complete)
        ]
    );
    let sizes: Vec<_> = t
        .sink
        .exchanges
        .iter()
        .map(|e| (e.request_body_size, e.response_body_size))
        .collect();
    assert_eq!(sizes, vec![(0, 3), (0, 4), (3, 5)]);
}

#[test]
fn pending_overflow_does_not_shift_pairs() {
    let mut t = T::with(Http1Limits {
        max_pending_requests: 2,
        ..Http1Limits::default()
    });
    for (i, p) in ["/1", "/2", "/3", "/4"].iter().enumerate() {
        t.data(REQ, i as u64, &get(p));
    }
    for i in 0..4 {
        t.data(RESP, 10 + i, &ok(&"x".repeat(i as usize)));
    }
    t.data(REQ, 20, &get("/5")).data(RESP, 21, &ok("five!"));
    assert_eq!(t.sink.issues, vec![ParseIssue::PendingOverflow; 2]);
    let got: Vec<_> = t
        .sink
        .exchanges
        .iter()
        .map(|e| (e.request.target(), e.response_body_size))
        .collect();
    assert_eq!(got, vec![("/1", 0), ("/2", 1), ("/5", 5)]);
    // Requests dropped by the limit take no number: both ends count alike.
    let started: Vec<(&str, u64)> = t
        .sink
        .started
        .iter()
        .map(|(t, o)| (t.as_str(), *o))
        .collect();
    assert_eq!(started, vec![("/1", 1), ("/2", 2), ("/5", 3)]);
    let ordinals: Vec<u64> = t.sink.exchanges.iter().map(|e| e.ordinal).collect();
    assert_eq!(ordinals, vec![1, 2, 3]);
}

#[test]
fn request_started_comes_with_the_head_before_the_response() {
    let mut t = T::new();
    let post = b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n";
    t.data(REQ, 1, post);
    // The head is complete (the body is not): started, no exchange yet.
    assert_eq!(t.sink.started, vec![("/orders".to_string(), 1)]);
    assert!(t.sink.exchanges.is_empty());
    t.data(REQ, 2, b"abcd").data(RESP, 3, &ok("x"));
    t.data(REQ, 4, &get("/next"));
    assert_eq!(t.sink.started[1], ("/next".to_string(), 2));
    assert_eq!(t.ex(0).ordinal, 1);
}

#[test]
fn unpaired_response_is_counted_and_skipped() {
    let mut t = T::new();
    t.data(RESP, 1, &ok("abc"));
    t.data(REQ, 2, &get("/a")).data(RESP, 3, &ok("d"));
    assert_eq!(t.sink.issues, vec![ParseIssue::UnpairedResponse]);
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Complete)]);
}

#[test]
fn upgrade_h2c() {
    let mut t = T::new();
    t.data(REQ, 1, b"GET /h2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n");
    t.data(RESP, 2, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    assert_eq!(t.s.upgrade(), Some(Upgrade::H2c));
    assert_eq!(t.sink.issues, vec![ParseIssue::ProtocolUpgrade]);
    // The request is handed to HTTP/2 (stream 1 answers it), not reported
    // with its 101: one call, one span.
    assert_eq!(t.targets(), vec![]);
    let (head, start) = t.s.take_upgrade_request().unwrap();
    assert_eq!(
        (head.target(), head.authority(), start),
        ("/h2", Some("x"), 1)
    );
    assert!(t.s.take_upgrade_request().is_none());
    assert_eq!(
        t.s.take_leftover(RESP),
        b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    );
    assert_eq!(t.s.buffered_bytes(), 0);
    // HTTP/1 parsing has stopped.
    t.data(REQ, 3, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .data(RESP, 4, &ok(""))
        .close(5);
    assert_eq!(t.sink.exchanges.len(), 0);
    assert_eq!(t.sink.issues, vec![ParseIssue::ProtocolUpgrade]);
}

#[test]
fn upgrade_websocket_is_other() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    t.bytewise(
        RESP,
        2,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(t.s.upgrade(), Some(Upgrade::Other));
    assert!(t.s.take_upgrade_request().is_none());
    assert_eq!(t.targets(), vec![("/ws", Some(101), ExchangeEnd::Complete)]);
}

#[test]
fn connect_tunnel_and_refusal() {
    let mut t = T::new();
    t.data(REQ, 1, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
    t.data(REQ, 2, b"\x16\x03\x01 tls bytes sent eagerly");
    t.data(RESP, 3, b"HTTP/1.1 200 Connection established\r\n\r\n");
    assert_eq!(t.s.upgrade(), Some(Upgrade::Other));
    assert_eq!(
        t.targets(),
        vec![("db:5432", Some(200), ExchangeEnd::Complete)]
    );
    assert_eq!(t.sink.issues, vec![ParseIssue::ProtocolUpgrade]);

    let mut t = T::new();
    t.data(REQ, 1, b"CONNECT db:5432 HTTP/1.1\r\n\r\n");
    t.data(
        RESP,
        2,
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
    );
    t.data(
        REQ,
        3,
        b"CONNECT db:5432 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n",
    );
    t.data(RESP, 4, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(
        t.targets(),
        vec![
            ("db:5432", Some(407), ExchangeEnd::Complete),
            ("db:5432", Some(200), ExchangeEnd::Complete)
        ]
    );
    assert_eq!(t.s.upgrade(), Some(Upgrade::Other));
}

#[test]
fn request_without_length_has_no_body() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"POST /nolen HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n",
    );
    t.data(RESP, 2, &ok("1")).data(RESP, 3, &ok("2"));
    assert_eq!(
        t.targets(),
        vec![
            ("/nolen", Some(200), ExchangeEnd::Complete),
            ("/after", Some(200), ExchangeEnd::Complete)
        ]
    );
    assert_eq!(t.ex(0).request_body_size, 0);
}

#[test]
fn blank_lines_between_messages_are_tolerated() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n",
    );
    t.data(REQ, 2, b"\r\nGET /b HTTP/1.1\r\n\r\n");
    t.data(RESP, 3, &ok("")).data(RESP, 4, &ok(""));
    assert_eq!(t.sink.exchanges.len(), 2);
    assert_eq!(t.ex(1).request_start_ns, 2);
    assert!(t.sink.issues.is_empty());
}

#[test]
fn early_response_reports_request_body_seen_so_far() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"POST /big HTTP/1.1\r\nContent-Length: 1000\r\n\r\n",
    );
    t.data(REQ, 2, &[b'a'; 100]);
    t.data(
        RESP,
        3,
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        t.targets(),
        vec![("/big", Some(413), ExchangeEnd::Complete)]
    );
    assert_eq!(
        (t.ex(0).request_body_size, t.ex(0).request_end_ns),
        (100, 2)
    );
    t.data(REQ, 4, &[b'a'; 900]);
    t.data(REQ, 5, &get("/next")).data(RESP, 6, &ok(""));
    assert_eq!(t.targets()[1], ("/next", Some(200), ExchangeEnd::Complete));
    assert!(t.sink.issues.is_empty());
}

#[test]
fn invalid_utf8_in_values_does_not_panic() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"GET / HTTP/1.1\r\nHost: h\xff\r\nUser-Agent: \xfe\r\n\r\n",
    );
    t.data(
        RESP,
        2,
        b"HTTP/1.1 200 OK\r\nContent-Type: t\xc0/x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(t.sink.exchanges.len(), 1, "{:?}", t.sink.issues);
    let e = t.ex(0);
    assert_eq!(e.request.authority(), Some("h\u{fffd}"));
    assert_eq!(e.request.user_agent(), Some("\u{fffd}"));
    assert_eq!(
        e.response.as_ref().unwrap().content_type.as_deref(),
        Some("t\u{fffd}/x")
    );
}

/// A large body is announced once, from where the data fed so far ends; the
/// bytes then arriving as a gap complete the exchange with exact sizes. A
/// HEAD answer's Content-Length is no body, and is never announced.
#[test]
fn large_bodies_are_announced_once_and_may_then_arrive_as_a_gap() {
    let mut t = T::new();
    t.data(REQ, 1, b"HEAD /h HTTP/1.1\r\n\r\n");
    t.data(
        RESP,
        2,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert!(t.sink.body_ahead.is_empty(), "a HEAD answer has no body");

    t.data(REQ, 3, &get("/big"));
    let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec();
    head.extend_from_slice(&[b'x'; 5_000]);
    t.data(RESP, 4, &head);
    assert_eq!(t.sink.body_ahead, vec![(RESP, 195_000)]);
    t.data(RESP, 5, &[b'x'; 5_000]);
    assert_eq!(t.sink.body_ahead.len(), 1, "once per body");
    t.gap(RESP, 190_000, 6);
    t.data(REQ, 7, &get("/small")).data(RESP, 8, &ok("abc"));
    assert_eq!(t.sink.body_ahead.len(), 1, "a small body is copied");
    assert!(t.sink.issues.is_empty(), "{:?}", t.sink.issues);
    let got: Vec<_> = t
        .sink
        .exchanges
        .iter()
        .map(|e| (e.request.target(), e.response_body_size, e.end))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/h", 0, ExchangeEnd::Complete),
            ("/big", 200_000, ExchangeEnd::Complete),
            ("/small", 3, ExchangeEnd::Complete),
        ]
    );
    assert_eq!(
        t.ex(1).response_end_ns,
        6,
        "ends with the gap that completed it"
    );

    // An upload: the request side is announced the same way.
    let mut post = b"POST /up HTTP/1.1\r\nContent-Length: 40000\r\n\r\n".to_vec();
    post.extend_from_slice(&[b'y'; 100]);
    t.data(REQ, 9, &post);
    assert_eq!(t.sink.body_ahead[1], (REQ, 39_900));
}

/// Pipelined requests waiting for their responses hold their heads: those
/// count toward `held_bytes` (what the connection table bounds) in whole
/// 4 KiB steps, and are given back as the responses pair them.
#[test]
fn pipelined_heads_count_toward_held_bytes() {
    let mut t = T::new();
    let target = format!("/{}", "p".repeat(2000));
    let one = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    t.data(REQ, 1, one.as_bytes());
    // One small waiting head counts nothing: no churn per request.
    assert_eq!(t.s.held_bytes(), 0);
    for ts in 2..=10 {
        t.data(REQ, ts, one.as_bytes());
    }
    // Ten heads of ~2 KiB each: 20 KiB of text, counted as 16 KiB.
    assert_eq!(t.s.buffered_bytes(), 0);
    assert_eq!(t.s.held_bytes(), 16 * 1024);
    for ts in 11..=20 {
        t.data(RESP, ts, &ok("hi"));
    }
    assert_eq!(t.sink.exchanges.len(), 10);
    assert_eq!(t.s.held_bytes(), 0);
}
