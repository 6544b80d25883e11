//! Behaviour tests of [`Http1Session`] with exact expected fields.

use super::*;
use crate::exchange::{CollectingSink, ExchangeEnd, HttpExchange, HttpVersion, ParseIssue, Side};

const REQ: Side = Side::Request;
const RESP: Side = Side::Response;

struct T {
    s: Http1Session,
    sink: CollectingSink,
}

impl T {
    fn new() -> Self {
        Self::with(Http1Limits::default())
    }
    fn with(limits: Http1Limits) -> Self {
        T {
            s: Http1Session::new(limits),
            sink: CollectingSink::default(),
        }
    }
    fn data(&mut self, side: Side, ts: u64, bytes: &[u8]) -> &mut Self {
        self.s.on_data(side, ts, bytes, &mut self.sink);
        self
    }
    /// Feeds one byte at a time, all with the same timestamp.
    fn bytewise(&mut self, side: Side, ts: u64, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.s
                .on_data(side, ts, std::slice::from_ref(b), &mut self.sink);
        }
        self
    }
    fn gap(&mut self, side: Side, len: u64, ts: u64) -> &mut Self {
        self.s.on_gap(side, len, ts, &mut self.sink);
        self
    }
    fn close(&mut self, ts: u64) -> &mut Self {
        self.s.on_close(ts, &mut self.sink);
        self
    }
    fn ex(&self, i: usize) -> &HttpExchange {
        &self.sink.exchanges[i]
    }
    fn targets(&self) -> Vec<(&str, Option<u16>, ExchangeEnd)> {
        self.sink
            .exchanges
            .iter()
            .map(|e| {
                (
                    e.request.target.as_str(),
                    e.response.as_ref().map(|r| r.status),
                    e.end,
                )
            })
            .collect()
    }
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}

fn ok(body: &str) -> Vec<u8> {
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
    assert_eq!(e.request.method, "GET");
    assert_eq!(e.request.target, "/api/v1?x=1");
    assert_eq!(e.request.version, HttpVersion::Http11);
    assert_eq!(e.request.authority.as_deref(), Some("svc:8080"));
    assert_eq!(e.request.user_agent.as_deref(), Some("ua/1"));
    assert_eq!(
        e.request.traceparent.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(e.request.tracestate.as_deref(), Some("a=b"));
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
    assert_eq!(
        (e.request.target.as_str(), e.response_body_size),
        ("/second", 5)
    );
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
    assert_eq!(
        (e.request.method.as_str(), e.request_body_size),
        ("POST", 10)
    );
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
    assert_eq!(t.ex(1).request.target, "/d");
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
        .map(|e| (e.request.target.as_str(), e.response_body_size))
        .collect();
    assert_eq!(got, vec![("/1", 0), ("/2", 1), ("/5", 5)]);
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
    assert_eq!(t.targets(), vec![("/h2", Some(101), ExchangeEnd::Complete)]);
    assert_eq!((t.ex(0).response_start_ns, t.ex(0).response_end_ns), (2, 2));
    let (head, start) = t.s.take_upgrade_request().unwrap();
    assert_eq!(
        (head.target.as_str(), head.authority.as_deref(), start),
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
    assert_eq!(t.sink.exchanges.len(), 1);
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
fn gap_inside_known_length_bodies_keeps_sync() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"POST /g HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789",
    );
    t.gap(REQ, 80, 2);
    t.data(REQ, 3, b"0123456789");
    t.data(
        RESP,
        4,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n0123",
    );
    t.gap(RESP, 90, 5);
    t.data(RESP, 6, b"456789\r\n0\r\n\r\n");
    t.data(REQ, 7, &get("/next")).data(RESP, 8, &ok("ok"));
    assert!(t.sink.issues.is_empty(), "{:?}", t.sink.issues);
    let e = t.ex(0);
    assert_eq!((e.request_body_size, e.request_end_ns), (100, 3));
    assert_eq!((e.response_body_size, e.response_end_ns), (100, 6));
    // The response had a gap inside it: its end is approximate.
    assert_eq!(e.end, ExchangeEnd::Gap);
    assert_eq!(t.targets()[1], ("/next", Some(200), ExchangeEnd::Complete));
}

#[test]
fn gap_ending_exactly_at_body_end_completes_it() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a"));
    t.data(RESP, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12");
    t.gap(RESP, 8, 3);
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Gap)]);
    assert_eq!(
        (t.ex(0).response_body_size, t.ex(0).response_end_ns),
        (10, 3)
    );
    t.data(REQ, 4, &get("/b")).data(RESP, 5, &ok(""));
    assert_eq!(t.targets()[1], ("/b", Some(200), ExchangeEnd::Complete));
    assert!(t.sink.issues.is_empty());
}

#[test]
fn response_gap_drops_the_request_whose_response_was_lost() {
    let mut t = T::new();
    t.data(REQ, 10, &get("/a"));
    t.data(RESP, 11, b"HTTP/1.1 200 OK\r\nContent-Len");
    t.gap(RESP, 500, 12); // the rest of /a's response is lost
    t.data(REQ, 20, &get("/b"));
    t.data(RESP, 21, b"tail of something lost\r\n");
    t.data(RESP, 22, &ok("bbb"));
    assert_eq!(
        t.targets(),
        vec![
            ("/a", None, ExchangeEnd::Gap),
            ("/b", Some(200), ExchangeEnd::Complete)
        ]
    );
    assert_eq!(t.ex(0).response_end_ns, 22);
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::ResyncAfterGap,
            ParseIssue::ResyncSkippedBytes(24 + 28)
        ]
    );
}

#[test]
fn response_gap_inside_body_emits_gap_exchange() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a"));
    t.data(
        RESP,
        2,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    );
    t.gap(RESP, 50, 3); // crosses chunk framing
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Gap)]);
    assert_eq!(
        (t.ex(0).response_body_size, t.ex(0).response_end_ns),
        (2, 3)
    );
    t.data(RESP, 4, b"nk\r\n0\r\n\r\n");
    t.data(REQ, 5, &get("/b")).data(RESP, 6, &ok("b"));
    assert_eq!(t.targets()[1], ("/b", Some(200), ExchangeEnd::Complete));
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::ResyncAfterGap,
            ParseIssue::ResyncSkippedBytes(9)
        ]
    );
}

#[test]
fn request_gap_lost_request_response_is_unpaired() {
    let mut t = T::new();
    t.data(REQ, 10, b"GET /lost HTTP/1.1\r\nHo");
    t.gap(REQ, 30, 11);
    t.data(RESP, 12, &ok("for lost"));
    t.data(REQ, 20, &get("/b"));
    t.data(RESP, 21, &ok("b"));
    assert_eq!(t.targets(), vec![("/b", Some(200), ExchangeEnd::Complete)]);
    // The partial head lost at the gap is counted as skipped at resync.
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::ResyncAfterGap,
            ParseIssue::UnpairedResponse,
            ParseIssue::ResyncSkippedBytes(22)
        ]
    );
}

#[test]
fn request_gap_then_pipelined_order_pairs_by_start_time() {
    // The response to the lost request arrives after /b was sent: with no
    // pipelining seen, the response starting after /b started answers /b.
    let mut t = T::new();
    t.data(REQ, 10, &get("/a"));
    t.data(RESP, 11, &ok("a"));
    t.gap(REQ, 40, 12);
    t.data(REQ, 20, &get("/b"));
    t.data(RESP, 21, &ok("b"));
    assert_eq!(
        t.targets(),
        vec![
            ("/a", Some(200), ExchangeEnd::Complete),
            ("/b", Some(200), ExchangeEnd::Complete)
        ]
    );
    assert_eq!(t.sink.issues, vec![ParseIssue::ResyncAfterGap]);
}

#[test]
fn pipelined_connection_with_loss_never_guesses() {
    let mut t = T::new();
    let mut reqs = get("/1");
    reqs.extend(get("/2"));
    reqs.extend(get("/3"));
    t.data(REQ, 1, &reqs);
    t.data(RESP, 2, &ok("1"));
    t.data(RESP, 3, b"HTTP/1.1 200 OK\r\nConte");
    t.gap(RESP, 100, 4); // the rest of /2's response and maybe /3's
    t.data(RESP, 5, &ok("?"));
    let ends = t.targets();
    assert_eq!(ends[0], ("/1", Some(200), ExchangeEnd::Complete));
    // /2's head was lost; the response at 5 could answer /2 or /3: neither gets it.
    assert_eq!(
        &ends[1..],
        &[
            ("/2", None, ExchangeEnd::Gap),
            ("/3", None, ExchangeEnd::Gap)
        ]
    );
    assert!(t.sink.issues.contains(&ParseIssue::UnpairedResponse));
}

#[test]
fn malformed_head_resyncs_at_next_request() {
    let mut t = T::new();
    t.data(REQ, 1, b"\x16\x03\x01\x00\xa5garbage\r\nmore garbage\n");
    t.data(
        RESP,
        2,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    );
    t.data(REQ, 3, b"GET /ok HTTP/1.1\r\n\r\n");
    t.data(RESP, 4, &ok("fine"));
    assert_eq!(t.targets(), vec![("/ok", Some(200), ExchangeEnd::Complete)]);
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::MalformedHead,
            ParseIssue::UnpairedResponse,
            ParseIssue::ResyncSkippedBytes(27),
        ]
    );
}

#[test]
fn malformed_start_line_is_dropped_to_its_end() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"GET /x HTTP/9.9\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
    );
    t.data(RESP, 2, &ok(""));
    assert_eq!(t.targets(), vec![("/y", Some(200), ExchangeEnd::Complete)]);
    // "GET /x HTTP/9.9\r\n" (17) dropped as the bad line, "Host: a\r\n\r\n" (11) skipped.
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::MalformedHead,
            ParseIssue::ResyncSkippedBytes(28)
        ]
    );
}

#[test]
fn resync_finds_a_status_line_not_at_a_line_start() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a"));
    t.data(
        RESP,
        2,
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"k\":",
    );
    t.gap(RESP, 60, 3); // past the body end: next response starts inside the lost part
    t.data(REQ, 4, &get("/b"));
    t.data(
        RESP,
        5,
        b"1}HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(
        t.targets(),
        vec![
            ("/a", Some(200), ExchangeEnd::Gap),
            ("/b", Some(404), ExchangeEnd::Complete)
        ]
    );
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::ResyncAfterGap,
            ParseIssue::ResyncSkippedBytes(2)
        ]
    );
}

#[test]
fn head_too_large_is_skipped_and_resynced() {
    let mut t = T::with(Http1Limits {
        max_head_bytes: 64,
        ..Http1Limits::default()
    });
    let big = format!("GET /big HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(200));
    t.data(REQ, 1, &big.as_bytes()[..100]);
    assert!(t.s.buffered_bytes() <= 64);
    t.data(REQ, 1, &big.as_bytes()[100..]);
    t.data(RESP, 2, &ok("for big"));
    t.data(REQ, 3, &get("/small"));
    t.data(RESP, 4, &ok("small"));
    assert_eq!(
        t.targets(),
        vec![("/small", Some(200), ExchangeEnd::Complete)]
    );
    assert_eq!(
        t.sink.issues,
        vec![ParseIssue::HeadTooLarge, ParseIssue::UnpairedResponse]
    );
    assert_eq!(t.ex(0).response_body_size, 5);
}

#[test]
fn malformed_chunk_ends_exchange_with_gap() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a"));
    t.data(
        RESP,
        2,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZZ\r\n",
    );
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Gap)]);
    assert_eq!(t.ex(0).response_body_size, 3);
    t.data(REQ, 3, &get("/b")).data(RESP, 4, &ok(""));
    assert_eq!(t.targets()[1], ("/b", Some(200), ExchangeEnd::Complete));
    assert_eq!(
        t.sink.issues,
        vec![
            ParseIssue::MalformedChunk,
            ParseIssue::ResyncSkippedBytes(5)
        ]
    );
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
    assert_eq!(e.request.authority.as_deref(), Some("h\u{fffd}"));
    assert_eq!(e.request.user_agent.as_deref(), Some("\u{fffd}"));
    assert_eq!(
        e.response.as_ref().unwrap().content_type.as_deref(),
        Some("t\u{fffd}/x")
    );
}

#[test]
fn random_garbage_is_bounded() {
    let mut t = T::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1500];
    for i in 0..300 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let side = if i % 2 == 0 { REQ } else { RESP };
        t.data(side, i, &chunk);
        assert!(t.s.buffered_bytes() <= 2 * 16 * 1024);
    }
    t.close(1000);
    assert!(t.sink.exchanges.is_empty());
}

#[test]
fn request_body_gap_past_its_end_keeps_the_request() {
    let mut t = T::new();
    t.data(
        REQ,
        1,
        b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
    );
    t.gap(REQ, 50, 2); // body end and whatever followed are lost
    t.data(RESP, 3, &ok("a"));
    t.data(REQ, 4, &get("/b"));
    t.data(RESP, 5, &ok("b"));
    assert_eq!(
        t.targets(),
        vec![
            ("/a", Some(200), ExchangeEnd::Complete),
            ("/b", Some(200), ExchangeEnd::Complete)
        ]
    );
    assert_eq!((t.ex(0).request_body_size, t.ex(0).request_end_ns), (5, 1));
    assert_eq!(t.sink.issues, vec![ParseIssue::ResyncAfterGap]);
}

#[test]
fn absurd_gap_lengths_do_not_overflow() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a"));
    t.data(RESP, 2, b"HTTP/1.0 200 OK\r\n\r\nbody");
    t.gap(RESP, u64::MAX, 3)
        .gap(RESP, u64::MAX, 4)
        .gap(REQ, u64::MAX, 5);
    t.close(6);
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Gap)]);
    assert_eq!(t.ex(0).response_body_size, u64::MAX);
}
