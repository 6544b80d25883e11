//! Throughput of `ConnectionTable::data` for HTTP/1 keep-alive traffic spread
//! over 10,000 open connections, and the heap held per idle connection,
//! measured with a counting global allocator (live bytes requested from the
//! allocator, so allocator overhead/rounding is not included).
//!
//! Measured on the development machine (release + debuginfo): ~1.77 M data
//! events/s (each an HTTP/1 head parsed, half of them completing an exchange);
//! ~414 B per opened connection before any data, ~2.3 KB once its HTTP/1
//! parser exists (the parser's own state dominates).
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::net::{IpAddr, Ipv4Addr};

use conn_tracker::*;
use criterion::{Criterion, Throughput};
use protocol_parsers::{HttpExchange, ParseIssue};
use test_support::CountingAllocator;

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

#[derive(Default)]
struct CountSink {
    exchanges: u64,
    other: u64,
}

impl TrackerSink for CountSink {
    fn exchange(&mut self, _: &ConnInfo, e: HttpExchange) {
        self.exchanges += 1;
        std::hint::black_box(e);
    }
    fn parse_issue(&mut self, _: &ConnInfo, _: ParseIssue) {
        self.other += 1;
    }
    fn tracker_event(&mut self, _: TrackerEvent) {
        self.other += 1;
    }
    fn mute(&mut self, _: &ConnInfo) {}
}

const CONNS: usize = 10_000;
const REQ: &[u8] = b"GET /api/v1/items?id=42 HTTP/1.1\r\nHost: svc.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
const RESP: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"ok\":true}\r\n";

fn info(fd: i32) -> ConnInfo {
    ConnInfo {
        key: ConnKey {
            tgid: 1000 + (fd as u32 % 16),
            fd,
        },
        conn_id: fd as u64 + 1,
        role: Role::Client,
        local: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000),
        remote: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        opened_ns: 1,
        protocol: Protocol::Undetected,
        joined_midway: false,
    }
}

fn limits() -> TrackerLimits {
    TrackerLimits {
        max_connections: CONNS * 2,
        ..TrackerLimits::default()
    }
}

/// One keep-alive exchange on connection `i`; offsets advance per round.
fn exchange(t: &mut ConnectionTable, sink: &mut CountSink, i: usize, round: u64, ts: u64) {
    let inf = info(i as i32);
    let (k, id) = (inf.key, inf.conn_id);
    t.data(
        k,
        ConnId(id),
        Direction::Egress,
        StreamOffset(round * REQ.len() as u64),
        MonotonicNs(ts),
        REQ,
        sink,
    );
    t.data(
        k,
        ConnId(id),
        Direction::Ingress,
        StreamOffset(round * RESP.len() as u64),
        MonotonicNs(ts + 1),
        RESP,
        sink,
    );
}

fn report_memory() {
    let mut sink = CountSink::default();
    let before = HEAP.live_bytes();
    let mut t = ConnectionTable::new(limits());
    for i in 0..CONNS {
        t.open(info(i as i32), &mut sink);
    }
    let opened = HEAP.live_bytes() - before;
    for i in 0..CONNS {
        exchange(&mut t, &mut sink, i, 0, 10);
    }
    let established = HEAP.live_bytes() - before;
    eprintln!(
        "memory: {CONNS} opened, no data yet: {opened} bytes ({} per connection); \
         after one HTTP/1 keep-alive exchange each (idle, parser allocated): {established} bytes \
         ({} per connection); table's own estimate {} bytes; buffered_bytes {}",
        opened / CONNS,
        established / CONNS,
        t.table_heap_bytes(),
        t.buffered_bytes(),
    );
    assert_eq!(sink.exchanges, CONNS as u64);
}

fn bench_data(c: &mut Criterion) {
    let mut sink = CountSink::default();
    let mut t = ConnectionTable::new(limits());
    for i in 0..CONNS {
        t.open(info(i as i32), &mut sink);
        exchange(&mut t, &mut sink, i, 0, 10);
    }
    let mut round = 1u64;
    let mut g = c.benchmark_group("tracker");
    // One iteration: an exchange (2 data events) on each of 1,000 connections,
    // walking through all 10,000 in turn (cache-unfriendly on purpose).
    const PER_ITER: usize = 1_000;
    g.throughput(Throughput::Elements(2 * PER_ITER as u64));
    let mut next = 0usize;
    g.bench_function("data_http1_keepalive_10k_conns", |b| {
        b.iter(|| {
            for _ in 0..PER_ITER {
                exchange(&mut t, &mut sink, next, round, round * 100);
                next += 1;
                if next == CONNS {
                    next = 0;
                    round += 1;
                }
            }
        })
    });
    g.finish();
    assert_eq!(sink.other, 0, "no issues or tracker events expected");
    assert_eq!(t.len(), CONNS);
}

fn main() {
    report_memory();
    let mut c = Criterion::default().configure_from_args();
    bench_data(&mut c);
    c.final_summary();
}
