//! The byte bound of the export path (`export.max_queue_bytes`): a span's
//! bytes are taken when it is queued and given back when its batch is settled
//! (exported, dropped, or given up at shutdown), so queued spans, the batch
//! being gathered and every batch in flight count against one bound.

use crate::PendingSpan;
use self_metrics::Gauge;
use std::sync::Arc;

/// What a pending span holds, as the bound counts it: its protobuf bytes
/// (`encoded_len`: encoded, or as it will encode) plus its slot in the queue.
/// A span held as built, for the stdout lines, takes more heap than that; the
/// bound then counts its size on the wire.
pub(crate) const fn held_bytes(encoded_len: usize) -> usize {
    encoded_len + std::mem::size_of::<PendingSpan>()
}

/// [`held_bytes`] of a span already queued.
fn held_by(span: &PendingSpan) -> usize {
    held_bytes(match span {
        PendingSpan::Encoded(e) => e.fields().len(),
        PendingSpan::Built(s) => s.encoded_len(),
    })
}

/// Bytes held by the export path, never more than `max`. The count is the
/// gauge `wirespan_export_queue_bytes` itself: one atomic add per span.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    max: i64,
    held: Gauge,
}

impl ByteBudget {
    pub(crate) fn new(max: usize, held: Gauge) -> Self {
        Self {
            max: i64::try_from(max).unwrap_or(i64::MAX),
            held,
        }
    }

    /// Takes `n` bytes if they fit under the bound; false (nothing taken) if
    /// not.
    pub(crate) fn try_take(&self, n: usize) -> bool {
        match i64::try_from(n) {
            Ok(n) => self.held.try_add(n, self.max),
            Err(_) => false,
        }
    }

    /// Gives back `n` bytes taken before.
    pub(crate) fn give_back(&self, n: usize) {
        // `n` was taken, so it fits in an i64.
        self.held.add(-(n as i64));
    }

    /// The bytes of `batch`, held until the returned guard is dropped (when
    /// the batch is settled, or its task aborted).
    pub(crate) fn hold(self: &Arc<Self>, batch: &[PendingSpan]) -> Held {
        Held {
            budget: self.clone(),
            bytes: batch.iter().map(held_by).sum(),
        }
    }
}

/// A batch's share of the bound; given back on drop.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_up_to_the_bound_and_gives_back() {
        let gauge = Gauge::default();
        let budget = Arc::new(ByteBudget::new(100, gauge.clone()));
        assert!(budget.try_take(60));
        assert!(!budget.try_take(41), "60 + 41 is over 100");
        assert!(budget.try_take(40), "60 + 40 is exactly 100");
        assert!(!budget.try_take(1));
        assert_eq!(gauge.get(), 100);
        budget.give_back(60);
        assert_eq!(gauge.get(), 40);
        assert!(budget.try_take(60));
        assert!(
            !budget.try_take(usize::MAX),
            "no overflow wraps under the bound"
        );
        assert_eq!(gauge.get(), 100);
    }
}
