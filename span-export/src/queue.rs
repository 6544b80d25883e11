//! The producer end: a bounded channel that never blocks.

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
    /// Encode each span as it is queued (nothing needs its fields later).
    encode_ahead: bool,
}

impl SpanQueue {
    pub(crate) fn new(
        tx: mpsc::Sender<PendingSpan>,
        metrics: Arc<Metrics>,
        encode_ahead: bool,
    ) -> Self {
        Self {
            tx,
            metrics,
            encode_ahead,
        }
    }

    /// Queue a span for export. Never blocks: when the queue is full (for
    /// example while the receiver is down and a batch is being retried), or the
    /// exporter has shut down, the span is dropped, counted, and `false` returned.
    ///
    /// When only OTLP takes the spans, the span is encoded here, on the
    /// producer's thread while its data is in cache, and only its bytes wait
    /// in the queue ([`ExportSpan::encode`]).
    pub fn try_send(&self, span: ExportSpan) -> bool {
        // Counted as outstanding before it can be seen by the exporter, so the
        // exporter's decrement can never run first.
        self.metrics.enter();
        let pending = if self.encode_ahead {
            PendingSpan::Encoded(span.encode())
        } else {
            PendingSpan::Built(span)
        };
        match self.tx.try_send(pending) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped(DropReason::QueueFull, 1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.dropped(DropReason::Shutdown, 1);
                false
            }
        }
    }
}
