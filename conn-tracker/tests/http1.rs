//! HTTP/1 conversations through the table: exact exchanges out, per role, and
//! across fd reuse, stale generations, gaps, overlaps and lazily created
//! connections.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use conn_tracker::*;
use protocol_parsers::{ExchangeEnd, ParseIssue};

use Direction::{Egress, Ingress};

fn s(m: &str, t: &str, st: Option<u16>) -> (String, String, Option<u16>) {
    (m.to_string(), t.to_string(), st)
}

fn keep_alive(role: Role) -> Rec {
    let (req, resp) = match role {
        Role::Server => (Ingress, Egress),
        _ => (Egress, Ingress),
    };
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(10, 5);
    t.open(info(k, 1, role, 500), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, req, REQ1);
    f.send(&mut t, &mut sink, resp, RESP1);
    f.send(&mut t, &mut sink, req, REQ2);
    f.send(&mut t, &mut sink, resp, RESP2);
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Http1));
    f.close(&mut t, &mut sink);
    assert_eq!(t.len(), 0);
    sink
}

#[test]
fn client_keep_alive_conversation() {
    let sink = keep_alive(Role::Client);
    assert_eq!(
        sink.summary(),
        vec![s("GET", "/a", Some(200)), s("POST", "/b", Some(201))]
    );
    let (info, first) = &sink.exchanges[0];
    assert_eq!(info.role, Role::Client);
    assert_eq!(info.protocol, Protocol::Http1);
    assert_eq!(info.conn_id, 1);
    assert_eq!(first.response_body_size, 2);
    assert_eq!(first.end, ExchangeEnd::Complete);
    assert_eq!(first.request_start_ns, 2_000);
    assert_eq!(first.response_end_ns, 3_000);
    assert_eq!(sink.exchanges[1].1.request_body_size, 4);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    assert!(sink.events.is_empty(), "{:?}", sink.events);
    assert!(sink.muted.is_empty());
}

#[test]
fn server_keep_alive_conversation() {
    let sink = keep_alive(Role::Server);
    assert_eq!(
        sink.summary(),
        vec![s("GET", "/a", Some(200)), s("POST", "/b", Some(201))]
    );
    assert!(sink.exchanges.iter().all(|(i, _)| i.role == Role::Server));
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    assert!(sink.events.is_empty(), "{:?}", sink.events);
}

#[test]
fn detection_across_small_chunks() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 3);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Egress, b"GE");
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Undetected));
    f.send(&mut t, &mut sink, Egress, &REQ1[2..]);
    f.send(&mut t, &mut sink, Ingress, RESP1);
    assert_eq!(sink.summary(), vec![s("GET", "/a", Some(200))]);
    assert_eq!(
        sink.exchanges[0].1.request_start_ns, 2_000,
        "first byte's timestamp"
    );
    assert_eq!(t.buffered_bytes(), 0);
}

#[test]
fn fd_reuse_with_new_generation_does_not_mix() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(10, 5);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut old = Feeder::new(k, 1);
    old.send(&mut t, &mut sink, Egress, REQ1);
    // fd 5 closed (close record lost) and reused for a new connection.
    t.open(info(k, 2, Role::Client, 2), &mut sink);
    assert_eq!(
        sink.exchanges.len(),
        1,
        "the old generation's waiting request is ended"
    );
    assert_eq!(sink.exchanges[0].0.conn_id, 1);
    assert_eq!(sink.exchanges[0].1.response, None);
    assert_eq!(sink.exchanges[0].1.end, ExchangeEnd::ConnectionClosed);
    let mut new = Feeder::new(k, 2);
    new.send(&mut t, &mut sink, Egress, REQ2);
    // A late response of the old generation must not pair with the new request.
    old.send(&mut t, &mut sink, Ingress, RESP1);
    new.send(&mut t, &mut sink, Ingress, RESP2);
    assert_eq!(sink.count("stale_generation"), 1);
    assert_eq!(sink.exchanges.len(), 2);
    assert_eq!(sink.exchanges[1].0.conn_id, 2);
    assert_eq!(sink.summary()[1], s("POST", "/b", Some(201)));
}

#[test]
fn stale_generation_is_dropped_and_counted() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(10, 5);
    t.open(info(k, 7, Role::Server, 1), &mut sink);
    let mut cur = Feeder::new(k, 7);
    let mut stale = Feeder::new(k, 6);
    cur.send(&mut t, &mut sink, Ingress, REQ1);
    stale.send(&mut t, &mut sink, Ingress, REQ2);
    stale.send(&mut t, &mut sink, Egress, RESP2);
    t.close(
        k,
        ConnId(6),
        StreamOffset(100),
        StreamOffset(100),
        MonotonicNs(10),
        &mut sink,
    );
    assert_eq!(
        t.len(),
        1,
        "a stale close does not end the tracked generation"
    );
    cur.send(&mut t, &mut sink, Egress, RESP1);
    assert_eq!(sink.summary(), vec![s("GET", "/a", Some(200))]);
    assert_eq!(sink.count("stale_generation"), 3);
}

#[test]
fn gap_inside_content_length_body_needs_no_resync() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Egress, REQ1);
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01",
    );
    f.lose(Ingress, 5);
    f.send(&mut t, &mut sink, Ingress, b"789");
    f.send(&mut t, &mut sink, Egress, REQ2);
    f.send(&mut t, &mut sink, Ingress, RESP2);
    assert_eq!(
        sink.summary(),
        vec![s("GET", "/a", Some(200)), s("POST", "/b", Some(201))]
    );
    assert_eq!(sink.exchanges[0].1.response_body_size, 10);
    assert_eq!(sink.count("gap_bytes"), 5);
    assert_eq!(
        sink.issue_count(ParseIssue::ResyncAfterGap),
        0,
        "{:?}",
        sink.issues
    );
}

#[test]
fn header_only_record_is_a_gap() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Server, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Ingress, REQ1);
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    f.send(&mut t, &mut sink, Egress, head);
    // sendfile of the body: never copied.
    t.missing(
        k,
        ConnId(1),
        Egress,
        StreamOffset(head.len() as u64),
        1000,
        MonotonicNs(50_000),
        &mut sink,
    );
    f.off[0] += 1000;
    f.send(&mut t, &mut sink, Ingress, REQ2);
    f.send(&mut t, &mut sink, Egress, RESP2);
    assert_eq!(
        sink.summary(),
        vec![s("GET", "/a", Some(200)), s("POST", "/b", Some(201))]
    );
    assert_eq!(sink.exchanges[0].1.response_body_size, 1000);
    assert_eq!(sink.count("gap_bytes"), 1000);
}

/// A large response body is announced with the stream offset where it ends;
/// header-only records for it (the probes skipping it) complete the exchange
/// and count as skipped, while a record lost before one counts as a gap.
#[test]
fn announced_body_arrives_skipped_and_counts_as_skipped() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Egress, REQ1);
    let mut first = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    let head_len = first.len() as u64;
    first.extend_from_slice(&[b'z'; 4_000]);
    f.send(&mut t, &mut sink, Ingress, &first);
    assert_eq!(sink.body_ahead, vec![(Ingress, head_len + 100_000)]);
    // 50,000 skipped, then 6,000 lost (a record the ring had no room for),
    // then the last 40,000 skipped.
    let at = head_len + 4_000;
    t.skipped_body(
        k,
        ConnId(1),
        Ingress,
        StreamOffset(at),
        50_000,
        MonotonicNs(60_000),
        &mut sink,
    );
    t.skipped_body(
        k,
        ConnId(1),
        Ingress,
        StreamOffset(at + 56_000),
        40_000,
        MonotonicNs(70_000),
        &mut sink,
    );
    assert_eq!(sink.summary(), vec![s("GET", "/a", Some(200))]);
    assert_eq!(sink.exchanges[0].1.response_body_size, 100_000);
    assert_eq!(sink.exchanges[0].1.end, ExchangeEnd::Complete);
    assert_eq!(sink.count("skipped_body_bytes"), 90_000);
    assert_eq!(sink.count("gap_bytes"), 6_000);
    assert_eq!(sink.body_ahead.len(), 1);
}

#[test]
fn gap_in_a_head_resyncs_and_is_counted() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Egress, &REQ1[..10]);
    f.lose(Egress, 5);
    f.send(&mut t, &mut sink, Egress, &REQ1[15..]);
    f.send(&mut t, &mut sink, Ingress, RESP1);
    f.send(&mut t, &mut sink, Egress, REQ2);
    f.send(&mut t, &mut sink, Ingress, RESP2);
    assert_eq!(sink.count("gap_bytes"), 5);
    assert!(
        sink.issue_count(ParseIssue::ResyncAfterGap) >= 1,
        "{:?}",
        sink.issues
    );
    assert_eq!(sink.summary().last(), Some(&s("POST", "/b", Some(201))));
    let posts = sink.summary().iter().filter(|x| x.0 == "POST").count();
    assert_eq!(posts, 1);
}

#[test]
fn overlapping_bytes_are_skipped() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    // Whole duplicate.
    t.data(
        k,
        ConnId(1),
        Egress,
        StreamOffset(0),
        MonotonicNs(10),
        REQ1,
        &mut sink,
    );
    t.data(
        k,
        ConnId(1),
        Egress,
        StreamOffset(0),
        MonotonicNs(11),
        REQ1,
        &mut sink,
    );
    t.data(
        k,
        ConnId(1),
        Ingress,
        StreamOffset(0),
        MonotonicNs(12),
        RESP1,
        &mut sink,
    );
    // Partial overlap: 10 bytes, then from offset 5 the rest.
    let base = REQ1.len() as u64;
    t.data(
        k,
        ConnId(1),
        Egress,
        StreamOffset(base),
        MonotonicNs(13),
        &REQ2[..10],
        &mut sink,
    );
    t.data(
        k,
        ConnId(1),
        Egress,
        StreamOffset(base + 5),
        MonotonicNs(14),
        &REQ2[5..],
        &mut sink,
    );
    t.data(
        k,
        ConnId(1),
        Ingress,
        StreamOffset(RESP1.len() as u64),
        MonotonicNs(15),
        RESP2,
        &mut sink,
    );
    assert_eq!(
        sink.summary(),
        vec![s("GET", "/a", Some(200)), s("POST", "/b", Some(201))]
    );
    assert_eq!(sink.exchanges[1].1.request_body_size, 4);
    assert_eq!(sink.count("overlap_bytes"), REQ1.len() as u64 + 5);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
}

#[test]
fn lazily_created_connection_detects_its_role() {
    for (req, resp, role) in [
        (Ingress, Egress, Role::Server),
        (Egress, Ingress, Role::Client),
    ] {
        let mut t = ConnectionTable::new(limits());
        let mut sink = Rec::default();
        let k = key(3, 9);
        // No open record: the first data is mid-stream (offset 300).
        let mut f = Feeder::new(k, 42);
        f.off = [300, 300];
        f.send(&mut t, &mut sink, req, REQ1);
        assert_eq!(sink.count("data_for_unknown_connection"), 1);
        assert_eq!(t.get(k).map(|i| i.role), Some(role));
        f.send(&mut t, &mut sink, resp, RESP1);
        assert_eq!(sink.summary(), vec![s("GET", "/a", Some(200))]);
        assert_eq!(sink.exchanges[0].0.role, role);
        assert_eq!(sink.count("gap_bytes"), 0, "joining midway is not a loss");
        // The open record arrives late: addresses filled in, state kept.
        let mut late = info(k, 42, role, 5);
        late.remote.port = 9999;
        t.open(late, &mut sink);
        assert_eq!(t.get(k).map(|i| i.remote.port), Some(9999));
        f.send(&mut t, &mut sink, req, REQ2);
        f.send(&mut t, &mut sink, resp, RESP2);
        assert_eq!(sink.summary().len(), 2);
        assert_eq!(sink.exchanges[1].0.remote.port, 9999);
    }
}

#[test]
fn traffic_corrects_a_wrong_role() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(3, 9);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Ingress, REQ1);
    f.send(&mut t, &mut sink, Egress, RESP1);
    assert_eq!(sink.count("role_corrected"), 1);
    assert_eq!(sink.exchanges[0].0.role, Role::Server);
    assert_eq!(sink.summary(), vec![s("GET", "/a", Some(200))]);
}

#[test]
fn missing_tail_at_close_is_counted_and_ends_pending() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(&mut t, &mut sink, Egress, REQ1);
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
    );
    t.close(
        k,
        ConnId(1),
        StreamOffset(REQ1.len() as u64),
        StreamOffset(f.off[1] + 100),
        MonotonicNs(99_000),
        &mut sink,
    );
    // Counted once, under one reason.
    assert_eq!(sink.count("closed_with_missing_tail"), 100);
    assert_eq!(sink.count("gap_bytes"), 0);
    assert_eq!(sink.summary(), vec![s("GET", "/a", Some(200))]);
    assert_eq!(t.len(), 0);
}

#[test]
fn non_http_is_muted_once() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(1, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh";
    f.send(&mut t, &mut sink, Egress, hello);
    f.send(&mut t, &mut sink, Ingress, b"\x16\x03\x03\x00\x7a\x02");
    f.send(&mut t, &mut sink, Egress, REQ1); // looks like HTTP but the connection is decided
    assert_eq!(sink.muted.len(), 1);
    assert_eq!(sink.muted[0].key, k);
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Unknown));
    assert_eq!(
        sink.count("undetected_bytes"),
        (hello.len() + 6 + REQ1.len()) as u64
    );
    assert!(sink.exchanges.is_empty());
    assert_eq!(t.buffered_bytes(), 0);
    // A server that speaks first (not HTTP) is muted too.
    let k2 = key(1, 5);
    t.open(info(k2, 2, Role::Client, 1), &mut sink);
    t.data(
        k2,
        ConnId(2),
        Ingress,
        StreamOffset(0),
        MonotonicNs(5),
        b"220 smtp.example ESMTP\r\n",
        &mut sink,
    );
    assert_eq!(sink.muted.len(), 2);
}

/// An agent (re)started while a keep-alive connection was mid-request: the
/// first bytes it sees are the tail of a message, which must not mute the
/// connection for good; the next complete exchange is reported.
#[test]
fn joined_midway_recovers_at_the_next_message() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(12, 9);
    let mut i = info(k, 1, Role::Server, 1);
    i.joined_midway = true;
    t.open(i, &mut sink);
    let mut f = Feeder::new(k, 1);
    f.off = [7_000, 3_000];
    // The rest of a request whose start was read before the agent was there.
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        b"er-Agent: x\r\nAccept: */*\r\n\r\n",
    );
    f.send(&mut t, &mut sink, Egress, RESP1);
    assert!(
        sink.muted.is_empty(),
        "a midway connection is not muted at once"
    );
    f.send(&mut t, &mut sink, Ingress, REQ2);
    f.send(&mut t, &mut sink, Egress, RESP2);
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Http1));
    let last = sink.summary().last().cloned();
    assert_eq!(
        last.map(|x| x.1),
        Some("/b".to_string()),
        "{:?}",
        sink.summary()
    );
    assert!(sink.count("undetected_bytes") > 0);
}
