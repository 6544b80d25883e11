//! The producer end: a bounded channel that never blocks.

use crate::budget::{held_bytes, ByteBudget};
use crate::metrics::{DropReason, Metrics};
use crate::{ExportSpan, PendingSpan};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where span producers hand spans to the exporter. Cheap to clone; every
/// clone feeds the same bounded queue.
#[derive(Clone, Debug)]
pub struct SpanQueue {
    tx: mpsc::Sender<PendingSpan>,
    metrics: Arc<Metrics>,
    /// The bytes the export path may hold (`export.max_queue_bytes`).
    budget: Arc<ByteBudget>,
    /// Encode each span as it is queued (nothing needs its fields later).
    encode_ahead: bool,
}

impl SpanQueue {
    pub(crate) fn new(
        tx: mpsc::Sender<PendingSpan>,
        metrics: Arc<Metrics>,
        budget: Arc<ByteBudget>,
        encode_ahead: bool,
    ) -> Self {
        Self {
            tx,
            metrics,
            budget,
            encode_ahead,
        }
    }

    /// Queue a span for export. Never blocks: when the queue is full, in
    /// spans (`queue_full`) or in bytes (`queue_bytes_full`; for example while
    /// the receiver is down and batches are being retried), or the exporter
    /// has shut down, the span is dropped, counted, and `false` returned.
    ///
    /// When only OTLP takes the spans, the span is encoded here, on the
    /// producer's thread while its data is in cache, and only its bytes wait
    /// in the queue ([`ExportSpan::encode`]). Against `max_queue_bytes` a span
    /// counts as its protobuf size plus its queue slot, from now until its
    /// batch is settled.
    pub fn try_send(&self, span: ExportSpan) -> bool {
        // Counted as outstanding before it can be seen by the exporter, so the
        // exporter's decrement can never run first.
        self.metrics.enter();
        if self.encode_ahead {
            let encoded = span.encode();
            self.offer(held_bytes(encoded.fields().len()), || {
                PendingSpan::Encoded(encoded)
            })
        } else {
            self.offer(held_bytes(span.encoded_len()), || PendingSpan::Built(span))
        }
    }

    /// Takes `bytes` from the budget, then queues the span `wrap` makes. The
    /// (large) `PendingSpan` is made only then, straight into the send: made
    /// before the budget call, it cost a copy (BENCHMARKS.md, session 13).
    #[inline]
    fn offer(&self, bytes: usize, wrap: impl FnOnce() -> PendingSpan) -> bool {
        if !self.budget.try_take(bytes) {
            // After an aborted shutdown the bytes of what was lost are never
            // given back: say why the span really went.
            let reason = if self.tx.is_closed() {
                DropReason::Shutdown
            } else {
                DropReason::QueueBytesFull
            };
            self.metrics.dropped(reason, 1);
            return false;
        }
        let refused = match self.tx.try_send(wrap()) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(_)) => DropReason::QueueFull,
            Err(mpsc::error::TrySendError::Closed(_)) => DropReason::Shutdown,
        };
        self.budget.give_back(bytes);
        self.metrics.dropped(refused, 1);
        false
    }
}
