//! Pipeline throughput on synthetic server-side traffic (see common/traffic.rs):
//!
//! - `pipeline/http1_records`: HTTP/1 keep-alive exchanges (200 B request,
//!   300 B response, one data record each) over 1,000 open connections,
//!   through `Pipeline::handle_bytes` (decode, connection table, HTTP/1 parser,
//!   span building) into a `Vec<ExportSpan>`. Throughput = data records
//!   (events); spans = events / 2.
//! - `pipeline/http1_spans_encoded`: the same, plus what export does with
//!   them: each span encoded as the queue does it, then one request per batch
//!   of 512 written from those bytes. Throughput = spans built and encoded.
//! - `pipeline/http1_close`: `Connection: close` traffic between a client and
//!   a server process of this host (connect, accept, one exchange, both
//!   closes), after enough warm-up connections that the closed-socket grace
//!   list is full, as under sustained load. Throughput = spans (two per
//!   connection).
//! - `pipeline/http2_streams`: HTTP/2 (h2c) streams, HEADERS in, HEADERS +
//!   DATA out, 100 concurrent-ish streams per connection over 1,000
//!   connections. Throughput = streams (one span each).
//!
//! Setup (connections opened, traffic encoded) is outside the timed part; each
//! timed iteration is one round of traffic on a pipeline that already holds the
//! open connections. Every iteration checks the span count it produced.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use self_metrics::Registry;
use span_export::{ExportSpan, PendingSpan};
use span_semantics::host::HostFacts;
use span_semantics::routes::RouteTable;
use span_semantics::span_builder::{IdGenerator, SpanBuilder};
use std::hint::black_box;
use std::time::Duration;
use wirespan::agent::pipeline_settings;
use wirespan::pipeline::Pipeline;

#[path = "common/traffic.rs"]
mod traffic;
use traffic::*;

const CONNS: usize = 1_000;
const ROUNDS: usize = 10;
const BATCH: usize = 512;

fn pipeline() -> (Pipeline<Vec<ExportSpan>>, Registry) {
    let registry = Registry::new();
    let config = wirespan_config::Config::default();
    let mut settings = pipeline_settings(&config, 0, HostFacts::hermetic());
    settings.span_builder = SpanBuilder::new(IdGenerator::with_seed(7), RouteTable::new(&[]));
    let mut p = Pipeline::new(settings, Vec::with_capacity(CONNS * ROUNDS), &registry);
    p.handle_bytes(&exec_record());
    for i in 0..CONNS {
        p.handle_bytes(&open_record(i, 500));
    }
    (p, registry)
}

/// A pipeline with open connections, and the next round of records for it.
fn http1_setup() -> (Pipeline<Vec<ExportSpan>>, Vec<Vec<u8>>) {
    let (mut p, _) = pipeline();
    let resp = http1_response();
    let mut s = Streams::new(CONNS);
    // One warm-up round so every connection's parser exists.
    for r in s.http1_rounds(CONNS, 1, &resp) {
        p.handle_bytes(&r);
    }
    p.output_mut().clear();
    let recs = s.http1_rounds(CONNS, ROUNDS, &resp);
    (p, recs)
}

/// Connections the close bench's warm-up opens and closes first: more than
/// the grace list holds, so each timed close also evicts the oldest.
const CLOSE_WARM_UP: usize = span_semantics::local_peers::MAX_ENDED_SOCKETS;

fn http1_close_setup() -> (Pipeline<Vec<ExportSpan>>, Vec<Vec<u8>>) {
    let (mut p, _) = pipeline();
    p.handle_bytes(&client_exec_record());
    let resp = http1_response();
    for r in http1_close_traffic(0, CLOSE_WARM_UP, &resp) {
        p.handle_bytes(&r);
    }
    p.output_mut().clear();
    let recs = http1_close_traffic(CLOSE_WARM_UP, CONNS * ROUNDS / 2, &resp);
    (p, recs)
}

fn http2_setup() -> (Pipeline<Vec<ExportSpan>>, Vec<Vec<u8>>) {
    let (mut p, _) = pipeline();
    let mut s = Streams::new(CONNS);
    for r in s.http2_starts(CONNS) {
        p.handle_bytes(&r);
    }
    for r in s.http2_rounds(CONNS, 1, 1) {
        p.handle_bytes(&r);
    }
    p.output_mut().clear();
    let recs = s.http2_rounds(CONNS, ROUNDS, 3);
    (p, recs)
}

/// Not inlined, so `valgrind --tool=callgrind --toggle-collect='*pipeline::feed*'`
/// can count the timed part alone (BENCHMARKS.md).
#[inline(never)]
fn feed(p: &mut Pipeline<Vec<ExportSpan>>, recs: &[Vec<u8>]) {
    for r in recs {
        p.handle_bytes(black_box(r));
    }
}

/// What export does with the spans. Not inlined, for callgrind
/// (`--toggle-collect='*encode_and_drop*'`).
#[inline(never)]
fn encode_and_drop(spans: Vec<ExportSpan>) -> usize {
    // As the agent's queue does (`SpanQueue::try_send`): each span encoded
    // and let go as it is queued, then each batch's request from the bytes.
    let pending: Vec<PendingSpan> = spans
        .into_iter()
        .map(|s| PendingSpan::Encoded(s.encode()))
        .collect();
    let mut bytes = 0usize;
    for batch in pending.chunks(BATCH) {
        bytes += span_export::encode_pending_request_bytes(batch).len();
    }
    drop(pending);
    bytes
}

fn bench(c: &mut Criterion) {
    // Sanity: the synthetic traffic makes the spans it should, with the
    // attributes it should (not a timing check).
    {
        let (mut p, recs) = http1_setup();
        recs.iter().for_each(|r| p.handle_bytes(r));
        let spans = p.output();
        assert_eq!(spans.len(), CONNS * ROUNDS, "HTTP/1 spans");
        // The default attribute set (no Opt-In attributes), as the agent runs.
        assert!(spans[0].attrs.get("http.response.status_code").is_some());
        assert!(spans[0].attrs.get("http.response.body.size").is_none());
        let (mut p, recs) = http2_setup();
        recs.iter().for_each(|r| p.handle_bytes(r));
        assert_eq!(p.output().len(), CONNS * ROUNDS, "HTTP/2 spans");
        let (mut p, recs) = http1_close_setup();
        recs.iter().for_each(|r| p.handle_bytes(r));
        let spans = p.output();
        assert_eq!(spans.len(), CONNS * ROUNDS, "close spans");
        // Each end names the other: the pairing the close path maintains.
        assert!(spans
            .iter()
            .all(|s| s.attrs.get("service.peer.name").is_some()));
    }

    let mut g = c.benchmark_group("pipeline");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(20);

    g.throughput(Throughput::Elements((CONNS * ROUNDS * 2) as u64));
    g.bench_function("http1_records", |b| {
        b.iter_batched(
            http1_setup,
            |(mut p, recs)| {
                feed(&mut p, &recs);
                debug_assert_eq!(p.output().len(), CONNS * ROUNDS);
                p
            },
            BatchSize::PerIteration,
        )
    });

    g.throughput(Throughput::Elements((CONNS * ROUNDS) as u64));
    g.bench_function("http1_spans_encoded", |b| {
        b.iter_batched(
            http1_setup,
            |(mut p, recs)| {
                feed(&mut p, &recs);
                let spans = std::mem::take(p.output_mut());
                assert_eq!(spans.len(), CONNS * ROUNDS);
                black_box(encode_and_drop(spans));
                p
            },
            BatchSize::PerIteration,
        )
    });

    g.throughput(Throughput::Elements((CONNS * ROUNDS) as u64));
    g.bench_function("http1_close", |b| {
        b.iter_batched(
            http1_close_setup,
            |(mut p, recs)| {
                feed(&mut p, &recs);
                debug_assert_eq!(p.output().len(), CONNS * ROUNDS);
                p
            },
            BatchSize::PerIteration,
        )
    });

    g.throughput(Throughput::Elements((CONNS * ROUNDS) as u64));
    g.bench_function("http2_streams", |b| {
        b.iter_batched(
            http2_setup,
            |(mut p, recs)| {
                feed(&mut p, &recs);
                debug_assert_eq!(p.output().len(), CONNS * ROUNDS);
                p
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
