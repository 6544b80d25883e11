//! Heap held by the pipeline per open idle connection, measured with a
//! counting global allocator: live bytes requested from the allocator (its
//! own overhead and size-class rounding are not included), before and after
//! 10,000 connections are opened, and again after one HTTP/1 exchange on each
//! (keep-alive connections then sit idle). Also the process RSS delta
//! (/proc/self/statm), which includes allocator overhead but also pages the
//! allocator keeps. Prints a small table; not a criterion bench.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use self_metrics::Registry;
use span_export::ExportSpan;
use test_support::CountingAllocator;
use wirespan::agent::pipeline_settings;
use wirespan::pipeline::Pipeline;

#[path = "common/traffic.rs"]
mod traffic;
use traffic::*;

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

const CONNS: usize = 10_000;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A Vec output that keeps only a count, so spans do not count as connection memory.
struct CountOnly(usize);
impl wirespan::pipeline::SpanOutput for CountOnly {
    fn send(&mut self, span: ExportSpan) -> bool {
        drop(span);
        self.0 += 1;
        true
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // special: both just run the measurement once.
    let registry = Registry::new();
    let config = wirespan_config::Config::default();
    let settings = pipeline_settings(&config, 0, span_semantics::host::HostFacts::hermetic());
    let mut p = Pipeline::new(settings, CountOnly(0), &registry);
    p.handle_bytes(&exec_record());
    // Prepare every record before measuring, so only the pipeline's heap moves.
    let opens: Vec<Vec<u8>> = (0..CONNS).map(|i| open_record(i, 500)).collect();
    let mut s = Streams::new(CONNS);
    let round = s.http1_rounds(CONNS, 1, &http1_response());

    let (heap0, rss0) = (HEAP.live_bytes(), rss_bytes());
    for r in &opens {
        p.handle_bytes(r);
    }
    let (heap1, rss1) = (HEAP.live_bytes(), rss_bytes());
    assert_eq!(p.connections(), CONNS);
    for r in &round {
        p.handle_bytes(r);
    }
    let (heap2, rss2) = (HEAP.live_bytes(), rss_bytes());
    assert_eq!(p.output().0, CONNS, "one span per connection");
    assert_eq!(p.connections(), CONNS);

    let per = |a: usize, b: usize| (b as f64 - a as f64) / CONNS as f64;
    println!(
        "pipeline memory, {CONNS} open idle server connections (heap = live bytes requested):"
    );
    println!(
        "  opened, no bytes yet:        heap {:>8.0} B/conn  ({:.2} MiB total)   RSS {:>8.0} B/conn",
        per(heap0, heap1),
        (heap1 - heap0) as f64 / 1048576.0,
        per(rss0, rss1)
    );
    println!(
        "  after one HTTP/1 exchange:   heap {:>8.0} B/conn  ({:.2} MiB total)   RSS {:>8.0} B/conn",
        per(heap0, heap2),
        (heap2 - heap0) as f64 / 1048576.0,
        per(rss0, rss2)
    );
    println!(
        "  buffered parser bytes after the exchange: {}",
        p.buffered_bytes()
    );
}
