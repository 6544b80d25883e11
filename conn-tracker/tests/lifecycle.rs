//! How connections end: process exit, idle, capacity and memory eviction, and
//! shutdown. Every end reports the requests still waiting.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use conn_tracker::*;
use protocol_parsers::ExchangeEnd;

use Direction::{Egress, Ingress};

#[test]
fn process_exit_closes_its_connections() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    for (tgid, fd) in [(7, 3), (7, 4), (8, 3)] {
        let k = key(tgid, fd);
        t.open(
            info(k, u64::from(tgid) * 10 + fd as u64, Role::Client, 1),
            &mut sink,
        );
        t.data(
            k,
            ConnId(u64::from(tgid) * 10 + fd as u64),
            Egress,
            StreamOffset(0),
            MonotonicNs(5),
            REQ1,
            &mut sink,
        );
    }
    t.close_process(7, 100, &mut sink);
    assert_eq!(t.len(), 1);
    assert!(t.get(key(8, 3)).is_some());
    assert_eq!(sink.count("closed_by_process_exit"), 2);
    assert_eq!(sink.exchanges.len(), 2);
    for (i, e) in &sink.exchanges {
        assert_eq!(i.key.tgid, 7);
        assert_eq!(e.end, ExchangeEnd::ConnectionClosed);
        assert_eq!(e.response, None);
        assert_eq!(e.response_end_ns, 100);
    }
    t.close_process(99, 100, &mut sink);
    assert_eq!(t.len(), 1);
}

#[test]
fn idle_connections_are_evicted() {
    let mut lim = limits();
    lim.idle_timeout_ns = 1_000;
    let mut t = ConnectionTable::new(lim);
    let mut sink = Rec::default();
    t.open(info(key(1, 1), 1, Role::Client, 100), &mut sink);
    t.open(info(key(1, 2), 2, Role::Client, 100), &mut sink);
    t.open(info(key(1, 3), 3, Role::Client, 100), &mut sink);
    t.data(
        key(1, 2),
        ConnId(2),
        Egress,
        StreamOffset(0),
        MonotonicNs(900),
        REQ1,
        &mut sink,
    );
    t.evict_idle(1_050, &mut sink);
    assert_eq!(t.len(), 3, "nothing idle for 1000ns yet");
    t.evict_idle(1_200, &mut sink);
    assert_eq!(t.len(), 1);
    assert!(t.get(key(1, 2)).is_some());
    assert_eq!(sink.count("evicted_idle"), 2);
    t.evict_idle(1_950, &mut sink);
    assert_eq!(t.len(), 0);
    assert_eq!(sink.count("evicted_idle"), 3);
    // Its waiting request was reported.
    assert_eq!(sink.exchanges.len(), 1);
    assert_eq!(sink.exchanges[0].1.end, ExchangeEnd::ConnectionClosed);
}

/// Client connection `conn_id` on `k` sends `REQ1` at time 3.
fn request_at_3(t: &mut ConnectionTable, sink: &mut Rec, k: ConnKey, conn_id: u64) {
    let (id, start, at) = (ConnId(conn_id), StreamOffset(0), MonotonicNs(3));
    t.data(k, id, Egress, start, at, REQ1, sink);
}

#[test]
fn capacity_evicts_least_recently_used() {
    let mut lim = limits();
    lim.max_connections = 2;
    let mut t = ConnectionTable::new(lim);
    let mut sink = Rec::default();
    t.open(info(key(1, 1), 1, Role::Client, 1), &mut sink);
    t.open(info(key(1, 2), 2, Role::Client, 2), &mut sink);
    request_at_3(&mut t, &mut sink, key(1, 1), 1); // 1 is now the most recent
    t.open(info(key(1, 3), 3, Role::Client, 4), &mut sink);
    assert_eq!(t.len(), 2);
    assert!(t.get(key(1, 2)).is_none());
    assert!(t.get(key(1, 1)).is_some() && t.get(key(1, 3)).is_some());
    assert_eq!(sink.count("evicted_capacity"), 1);
    // Lazily created connections obey the limit too.
    t.data(
        key(2, 9),
        ConnId(77),
        Ingress,
        StreamOffset(0),
        MonotonicNs(5),
        REQ1,
        &mut sink,
    );
    assert_eq!(t.len(), 2);
    assert!(t.get(key(1, 1)).is_none(), "1 was least recent now");
    assert_eq!(sink.count("evicted_capacity"), 2);
    assert_eq!(sink.exchanges.len(), 1, "1's waiting request was reported");
    t.check_invariants().unwrap();
}

#[test]
fn zero_capacity_tracks_nothing() {
    let mut lim = limits();
    lim.max_connections = 0;
    let mut t = ConnectionTable::new(lim);
    let mut sink = Rec::default();
    t.open(info(key(1, 1), 1, Role::Client, 1), &mut sink);
    request_at_3(&mut t, &mut sink, key(1, 1), 1);
    assert_eq!(t.len(), 0);
    assert_eq!(sink.count("evicted_capacity"), 2);
}

#[test]
fn memory_limit_evicts_the_largest_holders() {
    let mut lim = limits();
    lim.memory_limit_bytes = 300;
    let mut t = ConnectionTable::new(lim);
    let mut sink = Rec::default();
    let big = [b"GET /big HTTP/1.1\r\nX-A: ".as_slice(), &[b'a'; 150]].concat();
    let small = [b"GET /small HTTP/1.1\r\nX-A: ".as_slice(), &[b'a'; 60]].concat();
    for fd in 1..=3 {
        t.open(info(key(1, fd), fd as u64, Role::Client, 1), &mut sink);
    }
    t.data(
        key(1, 1),
        ConnId(1),
        Egress,
        StreamOffset(0),
        MonotonicNs(10),
        &big,
        &mut sink,
    );
    t.data(
        key(1, 2),
        ConnId(2),
        Egress,
        StreamOffset(0),
        MonotonicNs(11),
        &small,
        &mut sink,
    );
    assert!(t.buffered_bytes() >= big.len() + small.len());
    assert_eq!(sink.count("evicted_memory"), 0);
    // Connection 3 pushes the total over: the largest holder (1) goes.
    t.data(
        key(1, 3),
        ConnId(3),
        Egress,
        StreamOffset(0),
        MonotonicNs(12),
        &small,
        &mut sink,
    );
    assert_eq!(sink.count("evicted_memory"), 1);
    assert!(t.get(key(1, 1)).is_none());
    assert!(t.get(key(1, 2)).is_some() && t.get(key(1, 3)).is_some());
    assert!(t.buffered_bytes() <= 300);
    // A single connection above the limit on its own is evicted too.
    t.data(
        key(1, 2),
        ConnId(2),
        Egress,
        StreamOffset(small.len() as u64),
        MonotonicNs(13),
        &[b'b'; 400],
        &mut sink,
    );
    assert!(t.get(key(1, 2)).is_none());
    assert!(t.buffered_bytes() <= 300);
    t.check_invariants().unwrap();
}

#[test]
fn flush_all_ends_everything() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    for fd in 0..5 {
        t.open(info(key(1, fd), fd as u64, Role::Server, 1), &mut sink);
        t.data(
            key(1, fd),
            ConnId(fd as u64),
            Ingress,
            StreamOffset(0),
            MonotonicNs(2),
            REQ1,
            &mut sink,
        );
    }
    t.flush_all(50, &mut sink);
    assert_eq!(t.len(), 0);
    assert_eq!(t.buffered_bytes(), 0);
    assert_eq!(sink.exchanges.len(), 5);
    assert!(sink
        .exchanges
        .iter()
        .all(|(_, e)| e.end == ExchangeEnd::ConnectionClosed));
}

#[test]
fn close_of_unknown_connection_is_counted() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    t.close(
        key(1, 1),
        ConnId(5),
        StreamOffset(10),
        StreamOffset(10),
        MonotonicNs(1),
        &mut sink,
    );
    assert_eq!(sink.count("close_for_unknown_connection"), 1);
}

#[test]
fn lost_open_and_close_of_a_reused_fd_is_adopted() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(4, 4);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    // Generation 2's open (and 1's close) were lost: its data keeps coming.
    let mut f = Feeder::new(k, 2);
    for _ in 0..8 {
        f.send(&mut t, &mut sink, Egress, REQ1);
        f.send(&mut t, &mut sink, Ingress, RESP1);
    }
    assert_eq!(t.get(k).map(|i| i.conn_id), Some(2));
    f.send(&mut t, &mut sink, Egress, REQ2);
    f.send(&mut t, &mut sink, Ingress, RESP2);
    assert!(sink.count("stale_generation") >= 8);
    assert!(sink
        .exchanges
        .iter()
        .any(|(i, e)| i.conn_id == 2 && e.request.method() == "POST"));
}

#[test]
fn a_discarded_connection_ends_without_exchanges() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    t.open(info(key(7, 3), 1, Role::Client, 1), &mut sink);
    t.open(info(key(7, 4), 2, Role::Client, 1), &mut sink);
    for (fd, id) in [(3, 1), (4, 2)] {
        t.data(
            key(7, fd),
            ConnId(id),
            Egress,
            StreamOffset(0),
            MonotonicNs(5),
            REQ1,
            &mut sink,
        );
    }
    // A wrong generation is not discarded.
    assert!(!t.discard(key(7, 3), ConnId(99)));
    assert!(t.discard(key(7, 3), ConnId(1)));
    assert!(!t.discard(key(7, 3), ConnId(1)));
    assert_eq!(t.len(), 1);
    t.check_invariants().unwrap();
    // Its pending request never becomes an exchange, even at process exit;
    // the other connection's still does.
    t.close_process(7, 100, &mut sink);
    assert_eq!(sink.exchanges.len(), 1);
    assert_eq!(sink.exchanges[0].0.key, key(7, 4));
    assert_eq!(t.len(), 0);
}
