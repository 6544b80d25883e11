//! `export.max_queue_bytes` bounds the export path's memory: with spans of
//! ~16 KiB (long URLs) and a collector that refuses connections, the heap the
//! exporter holds stays under the bound, and what does not fit is dropped and
//! counted as `queue_bytes_full`. The same load without the bound is measured
//! first, so the test shows it would notice a bound that does not hold.
//!
//! The heap is read from a counting global allocator, which is process-wide:
//! this file has one test, so nothing else allocates meanwhile.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use span_export::start;
use std::time::Duration;
use test_support::CountingAllocator;
use wirespan_config::OtlpProtocol;

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator::new();

const MIB: usize = 1024 * 1024;
/// Spans offered in each run: ~32 MiB of them, well under `queue_size`.
const SPANS: u64 = 2_000;
const URL_BYTES: usize = 16 * 1024;
/// The bound under test.
const BOUND: usize = 4 * MIB;
/// Heap the exporter may take besides the spans' bytes: the channel's blocks,
/// the client, timers.
const SLACK: usize = MIB;

struct Run {
    /// Heap grown while the spans were held (after offering, before shutdown).
    grown: usize,
    accepted: u64,
    bytes_full: i128,
    gauge: i128,
}

/// Offers `SPANS` large spans to an exporter whose collector refuses every
/// connection (so every batch stays in flight, retrying), then shuts it down.
fn offer_while_the_collector_is_down(max_queue_bytes: usize) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A port nothing listens on: every connection is refused (retryable).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let metrics = self_metrics::Registry::new();
        let mut settings = settings(OtlpProtocol::Grpc, &format!("http://{addr}"));
        settings.max_queue_bytes = max_queue_bytes;
        let (queue, handle) = start(settings, &metrics);
        let res = resource(1, "svc", 1);
        let url = format!("http://h/{}", "x".repeat(URL_BYTES));
        // Let the exporter start (and allocate what it always has) first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = HEAP.live_bytes();
        let mut accepted = 0;
        for n in 0..SPANS {
            let mut span = server_span(&res, n);
            span.span.attributes.push(s("url.full", &url));
            accepted += u64::from(queue.try_send(span));
            if n % 100 == 99 {
                // The exporter gathers batches and sends them meanwhile.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        wait_for("every batch in flight", || {
            requests(&metrics, "retryable_error") >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let grown = HEAP.live_bytes().saturating_sub(before);
        eprintln!("max_queue_bytes {max_queue_bytes}: heap grew {grown} bytes, {accepted} of {SPANS} spans held");
        let run = Run {
            grown,
            accepted,
            bytes_full: dropped(&metrics, "queue_bytes_full"),
            gauge: metrics.sum("wirespan_export_queue_bytes"),
        };
        assert_balanced(&metrics, SPANS);

        let report = handle.shutdown(Duration::from_millis(100)).await;
        assert_eq!(report.exported, 0);
        assert_eq!(report.dropped_at_shutdown, accepted);
        assert_eq!(metrics.sum("wirespan_export_queue_bytes"), 0);
        assert_eq!(metrics.sum("wirespan_export_queue_spans"), 0);
        assert_balanced(&metrics, SPANS);
        run
    })
}

#[test]
fn the_byte_bound_holds_the_export_heap_while_the_collector_is_down() {
    // Without a byte bound (only queue_size), every span is held.
    let unbounded = offer_while_the_collector_is_down(16 << 30);
    assert_eq!(unbounded.accepted, SPANS);
    assert_eq!(unbounded.bytes_full, 0);
    assert!(
        unbounded.grown > SPANS as usize * URL_BYTES,
        "the heap grew {} bytes for {SPANS} spans of {URL_BYTES} bytes: the measurement sees nothing",
        unbounded.grown
    );

    let bounded = offer_while_the_collector_is_down(BOUND);
    // Full, not merely under: within one span of the bound.
    assert!(
        bounded.gauge as usize <= BOUND && bounded.gauge as usize > BOUND - 2 * URL_BYTES,
        "held {} bytes against a bound of {BOUND}",
        bounded.gauge
    );
    let fit = (BOUND / URL_BYTES) as u64;
    assert!(
        bounded.accepted <= fit && bounded.accepted > fit * 9 / 10,
        "{} spans accepted, ~{fit} fit",
        bounded.accepted
    );
    assert_eq!(bounded.bytes_full, (SPANS - bounded.accepted) as i128);
    assert!(
        bounded.grown <= BOUND + SLACK,
        "the heap grew {} bytes with a bound of {BOUND}",
        bounded.grown
    );
}
