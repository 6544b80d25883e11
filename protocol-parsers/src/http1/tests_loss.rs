//! Behaviour tests of [`Http1Session`] after losses: gaps, malformed and
//! oversized input, resync, and pairing after a loss (see `pairing.rs`).

use super::tests::{get, ok, REQ, RESP, T};
use super::*;
use crate::exchange::{ExchangeEnd, ParseIssue};

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
    // The gap was inside a chunk of known size: only body bytes were lost,
    // sizes and times are exact, so the exchange is complete (the tracker
    // counts the lost bytes).
    assert_eq!(e.end, ExchangeEnd::Complete);
    assert_eq!(t.targets()[1], ("/next", Some(200), ExchangeEnd::Complete));
}

#[test]
fn gap_ending_exactly_at_body_end_completes_it() {
    let mut t = T::new();
    t.data(REQ, 1, &get("/a"));
    t.data(RESP, 2, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12");
    t.gap(RESP, 8, 3);
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Complete)]);
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
    assert_eq!(t.targets(), vec![("/a", Some(200), ExchangeEnd::Complete)]);
    assert_eq!(t.ex(0).response_body_size, u64::MAX);
}
