//! Span export for wirespan: takes finished HTTP spans from the pipeline,
//! batches them, and sends them to an OpenTelemetry Collector over OTLP
//! (gRPC, or HTTP with binary protobuf), or prints one line per span to stdout.
//!
//! Every observed process is its own service, so each span carries an
//! [`Arc<ProcessResource>`](ProcessResource); requests are built here straight
//! from `opentelemetry-proto`, one `ResourceSpans` per distinct resource, all
//! under the instrumentation scope `wirespan` (this crate's version). A span's
//! attributes travel as [`Attrs`] (static keys, values borrowed or shared
//! where possible) and are written to protobuf directly, so building and
//! encoding a span does not allocate once per attribute.
//!
//! What it does:
//! - resolves `export` from the YAML plus the standard `OTEL_EXPORTER_OTLP_*`
//!   variables ([`ExportSettings::resolve`]);
//! - queues spans without ever blocking the producer ([`SpanQueue::try_send`]):
//!   a full queue drops the span and counts it. The queue is bounded in spans
//!   (`queue_size`) and, together with the batches being sent or retried, in
//!   bytes (`max_queue_bytes`), so long URLs and a slow collector cannot take
//!   the agent's memory past its configuration. Unless spans are also printed,
//!   each is encoded as it is queued, on the producer's thread, and only its
//!   bytes wait ([`PendingSpan`]);
//! - sends batches of at most `max_batch_size`, when full or after
//!   `batch_timeout`, with up to `max_concurrent_exports` requests in flight
//!   (each batch in its own task; gRPC calls share one HTTP/2 connection,
//!   HTTP/1.1 requests use one pooled connection each; the order in which
//!   batches arrive is not kept). Each batch is encoded to protobuf once
//!   ([`encode_pending_request_bytes`]); one that encodes to more than
//!   `max_request_bytes` goes as several requests, one after the other, each
//!   as long as fits ([`encode_pending_requests`]). Each request is retried on
//!   its own, with exponential
//!   backoff and jitter (honoring RetryInfo and Retry-After), for at most
//!   `max_retry_time`. While every slot is busy and a batch is full, spans
//!   wait in the queue;
//! - connects lazily, so a collector that is down at start is just retried;
//! - counts everything in the self-metrics registry: every span that is
//!   offered ends up in `wirespan_spans_exported_total` or
//!   `wirespan_spans_dropped_total{reason}`;
//! - flushes on [`ExporterHandle::shutdown`], bounded by a deadline that
//!   requests already in flight honor too.
//!
//! Compression is off unless `OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION=gzip`,
//! the spec's default; on loopback gzip costs more CPU than it saves
//! (BENCHMARKS.md, "Export throughput").
//!
//! Stdout lines are written with plain blocking writes from the exporter task
//! (one write per batch); a stdout that blocks for long stalls export too, and
//! in the agent (one tokio thread) the ring-buffer drain as well: the ring then
//! fills and its losses are counted.
//!
//! What it does not do: TLS (https endpoints are refused with a clear error;
//! run a local collector for TLS), OTLP/JSON, persistence across restarts,
//! sampling, or creating spans (the caller fills in ids, times, attributes).
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

mod batch_send;
mod budget;
mod exporter;
mod grpc;
mod http;
mod metrics;
mod queue;
mod retry;
mod settings;

pub use exporter::Exporter;
pub use metrics::DropReason;
pub use queue::SpanQueue;
pub use settings::{Compression, ExportSettings, OtlpSettings};
// The span model, re-exported so that `span_export::ExportSpan` and friends
// keep working for the crates that export.
pub use span_model::{
    any_value, encode_pending_request_bytes, encode_pending_requests, encode_request,
    encode_request_bytes, format_span_line, scope, span, span_count, status, AnyValue, AttrValue,
    Attrs, EncodedSpan, ExportSpan, ExportTraceServiceRequest, KeyValue, PendingSpan,
    ProcessResource, Span, SpanData, Status, Text,
};

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Configuration errors found while resolving settings.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        var: String,
        value: String,
        reason: String,
    },
    #[error("OTLP protocol {0:?} is not supported by wirespan; use `grpc` or `http/protobuf`")]
    UnsupportedProtocol(String),
    #[error("OTLP endpoint {endpoint:?} is invalid: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error(
        "OTLP endpoint {0:?} uses https, but wirespan exports over plain http only; \
         point it at a local collector (http://...) that forwards over TLS"
    )]
    TlsUnsupported(String),
    #[error("OTLP header {name:?} is invalid: {reason}")]
    InvalidHeader { name: String, reason: String },
    #[error("{0}")]
    InvalidSetting(&'static str),
}

/// What shutdown achieved. Counts are over this exporter's whole life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans exported (or printed, without OTLP).
    pub exported: u64,
    /// Spans dropped, for any reason.
    pub dropped: u64,
    /// Of `dropped`, those dropped because shutdown came (or its deadline passed).
    pub dropped_at_shutdown: u64,
    /// False if the exporter task had to be aborted after the deadline.
    pub clean: bool,
}

/// Controls the running exporter task.
#[derive(Debug)]
pub struct ExporterHandle {
    shutdown: watch::Sender<Option<tokio::time::Instant>>,
    task: JoinHandle<()>,
    metrics: Arc<metrics::Metrics>,
}

/// How long past the deadline shutdown waits for the task before aborting it;
/// the task itself honors the deadline, so this is only a safety net.
const ABORT_GRACE: Duration = Duration::from_millis(500);

impl ExporterHandle {
    /// Stop taking spans, flush what is queued (at most until `deadline` from
    /// now), stop the task, and report.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let at = tokio::time::Instant::now() + deadline;
        self.shutdown.send(Some(at)).ok();
        let clean = match tokio::time::timeout_at(at + ABORT_GRACE, &mut self.task).await {
            Ok(joined) => joined.is_ok(),
            Err(_) => {
                self.task.abort();
                (&mut self.task).await.ok();
                false
            }
        };
        if !clean {
            // Whatever the task (and its batch tasks) still held is lost:
            // count it so the books balance.
            self.metrics.close();
        }
        let (exported, dropped, dropped_at_shutdown) = self.metrics.totals();
        ShutdownReport {
            exported,
            dropped,
            dropped_at_shutdown,
            clean,
        }
    }
}

/// Start the exporter task (must be called inside a tokio runtime). Lines for
/// stdout go to the process's stdout.
pub fn start(
    settings: ExportSettings,
    metrics: &self_metrics::Registry,
) -> (SpanQueue, ExporterHandle) {
    start_inner(settings, metrics, None)
}

/// Like [`start`], with stdout lines written to `lines` instead (for tests, or
/// a log file).
pub fn start_with_line_writer(
    settings: ExportSettings,
    metrics: &self_metrics::Registry,
    lines: Box<dyn std::io::Write + Send>,
) -> (SpanQueue, ExporterHandle) {
    start_inner(settings, metrics, Some(lines))
}

fn start_inner(
    settings: ExportSettings,
    registry: &self_metrics::Registry,
    lines: Option<Box<dyn std::io::Write + Send>>,
) -> (SpanQueue, ExporterHandle) {
    let metrics = Arc::new(metrics::Metrics::new(registry));
    let budget = Arc::new(budget::ByteBudget::new(
        settings.max_queue_bytes,
        metrics.queue_bytes.clone(),
    ));
    let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
    let (shutdown_tx, shutdown_rx) = watch::channel(None);
    let exporter = Exporter::new(
        rx,
        settings,
        lines,
        metrics.clone(),
        budget.clone(),
        shutdown_rx,
    );
    let encode_ahead = !exporter.prints_lines();
    let task = tokio::spawn(exporter.run());
    (
        SpanQueue::new(tx, metrics.clone(), budget, encode_ahead),
        ExporterHandle {
            shutdown: shutdown_tx,
            task,
            metrics,
        },
    )
}
