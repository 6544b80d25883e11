//! The producer end: a bounded channel that never blocks.

use crate::metrics::{DropReason, Metrics};
use crate::ExportSpan;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where span producers hand spans to the exporter. Cheap to clone; every
/// clone feeds the same bounded queue.
#[derive(Clone, Debug)]
pub struct SpanQueue {
    tx: mpsc::Sender<ExportSpan>,
    metrics: Arc<Metrics>,
}

impl SpanQueue {
    pub(crate) fn new(tx: mpsc::Sender<ExportSpan>, metrics: Arc<Metrics>) -> Self {
        Self { tx, metrics }
    }

    /// Queue a span for export. Never blocks: when the queue is full (for
    /// example while the receiver is down and a batch is being retried), or the
    /// exporter has shut down, the span is dropped, counted, and `false` returned.
    pub fn try_send(&self, span: ExportSpan) -> bool {
        // Counted as outstanding before it can be seen by the exporter, so the
        // exporter's decrement can never run first.
        self.metrics.enter();
        match self.tx.try_send(span) {
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
