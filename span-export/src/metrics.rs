//! The exporter's counters in the shared registry, plus this exporter's own
//! tallies for the shutdown report (the registry may be shared).

use self_metrics::{Counter, Gauge, Registry};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a span was not exported; the `reason` label of
/// `wirespan_spans_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The queue held `queue_size` spans when the span was offered.
    QueueFull,
    /// The export path held so many bytes that the span would have taken it
    /// over `max_queue_bytes`.
    QueueBytesFull,
    /// The receiver answered with a non-retryable error.
    ExportFailed,
    /// Retryable failures went on for longer than the retry budget.
    RetryExhausted,
    /// The receiver accepted the request but rejected these spans (partial success).
    RejectedByReceiver,
    /// Still queued (or offered) when the exporter stopped or its deadline passed.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::QueueBytesFull,
        DropReason::ExportFailed,
        DropReason::RetryExhausted,
        DropReason::RejectedByReceiver,
        DropReason::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::QueueBytesFull => "queue_bytes_full",
            DropReason::ExportFailed => "export_failed",
            DropReason::RetryExhausted => "retry_exhausted",
            DropReason::RejectedByReceiver => "rejected_by_receiver",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// The `result` label of `wirespan_export_requests_total`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RequestResult {
    Ok,
    Retryable,
    Error,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    exported: Counter,
    dropped: [Counter; DropReason::ALL.len()],
    requests: [Counter; 3],
    batches_split: Counter,
    queue: Gauge,
    /// Bytes held against `max_queue_bytes`; kept by [`crate::budget::ByteBudget`].
    pub(crate) queue_bytes: Gauge,
    /// Spans accepted and not yet exported or dropped. Raised before a span
    /// enters the channel, so it never under-counts what is in flight.
    outstanding: AtomicI64,
    local_exported: AtomicU64,
    local_dropped: AtomicU64,
    local_dropped_shutdown: AtomicU64,
    /// True once the handle has counted what is still outstanding as lost
    /// (after aborting the exporter); batch tasks then must not count again.
    closed: Mutex<bool>,
}

impl Metrics {
    pub(crate) fn new(r: &Registry) -> Self {
        let dropped = DropReason::ALL.map(|reason| {
            r.counter(
                "wirespan_spans_dropped_total",
                "Spans not exported, by reason.",
                &[("reason", reason.label())],
            )
        });
        let requests = ["ok", "retryable_error", "error"].map(|result| {
            r.counter(
                "wirespan_export_requests_total",
                "OTLP export requests (attempts), by result.",
                &[("result", result)],
            )
        });
        Self {
            exported: r.counter(
                "wirespan_spans_exported_total",
                "Spans accepted by the OTLP receiver (or printed, without OTLP).",
                &[],
            ),
            dropped,
            requests,
            batches_split: r.counter(
                "wirespan_export_batches_split_total",
                "Batches sent as several requests because they encoded to more than export.max_request_bytes.",
                &[],
            ),
            queue: r.gauge(
                "wirespan_export_queue_spans",
                "Spans waiting for export: queued, or in a batch being sent or retried.",
                &[],
            ),
            queue_bytes: r.gauge(
                "wirespan_export_queue_bytes",
                "Bytes of the spans waiting for export (protobuf size plus queue slot), at most export.max_queue_bytes.",
                &[],
            ),
            outstanding: AtomicI64::new(0),
            local_exported: AtomicU64::new(0),
            local_dropped: AtomicU64::new(0),
            local_dropped_shutdown: AtomicU64::new(0),
            closed: Mutex::new(false),
        }
    }

    /// A span is about to enter the queue.
    pub(crate) fn enter(&self) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        self.queue.add(1);
    }

    /// A span that `enter` counted is done (exported or dropped).
    fn leave(&self, n: u64) {
        self.outstanding.fetch_sub(n as i64, Ordering::Relaxed);
        self.queue.add(-(n as i64));
    }

    pub(crate) fn exported(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.leave(n);
        self.exported.add(n);
        self.local_exported.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` spans that had entered the queue were dropped.
    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        self.leave(n);
        self.dropped_unqueued(reason, n);
    }

    /// `n` spans were dropped without ever entering the queue.
    pub(crate) fn dropped_unqueued(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].add(n);
        self.local_dropped.fetch_add(n, Ordering::Relaxed);
        if reason == DropReason::Shutdown {
            self.local_dropped_shutdown.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn split_batch(&self) {
        self.batches_split.inc();
    }

    pub(crate) fn request(&self, result: RequestResult) {
        self.requests[result as usize].inc();
    }

    /// Count a batch's fate with `count`, unless [`Self::close`] already
    /// counted it as lost. A batch task that is aborted while it runs on
    /// another thread thus counts its spans exactly once.
    pub(crate) fn settle(&self, count: impl FnOnce(&Self)) {
        let closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if !*closed {
            count(self);
        }
    }

    /// After the exporter had to be aborted: drop (as `shutdown`) every span
    /// still outstanding, and make later [`Self::settle`] calls no-ops.
    pub(crate) fn close(&self) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if !*closed {
            *closed = true;
            let lost = self.outstanding.load(Ordering::Relaxed).max(0) as u64;
            self.dropped(DropReason::Shutdown, lost);
        }
    }

    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        (
            self.local_exported.load(Ordering::Relaxed),
            self.local_dropped.load(Ordering::Relaxed),
            self.local_dropped_shutdown.load(Ordering::Relaxed),
        )
    }
}
