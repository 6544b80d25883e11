//! The task side: takes batches off the queue, prints them and/or hands each
//! to its own task that exports it with retries ([`BatchSender`]), at most
//! `max_concurrent_exports` at once, and flushes on shutdown.

use crate::batch_send::BatchSender;
use crate::budget::ByteBudget;
use crate::metrics::{DropReason, Metrics};
use crate::settings::ExportSettings;
use crate::PendingSpan;
use span_model::format_span_line;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

/// The exporter task's state. It is created and spawned by [`crate::start`];
/// callers hold the [`crate::SpanQueue`] and [`crate::ExporterHandle`].
pub struct Exporter {
    rx: mpsc::Receiver<PendingSpan>,
    settings: ExportSettings,
    /// `None` without OTLP (stdout only).
    sender: Option<Arc<BatchSender>>,
    /// Batches being exported (one task each), at most `max_concurrent_exports`.
    /// Dropping the set (when the exporter is aborted) aborts them.
    in_flight: JoinSet<()>,
    lines: Option<Box<dyn Write + Send>>,
    metrics: Arc<Metrics>,
    /// Each batch gives its spans' bytes back once it is settled.
    budget: Arc<ByteBudget>,
    /// The shutdown deadline, once shutdown was asked for.
    shutdown: watch::Receiver<Option<Instant>>,
    /// False once the handle is gone without asking for shutdown.
    handle_alive: bool,
}

impl Exporter {
    pub(crate) fn new(
        rx: mpsc::Receiver<PendingSpan>,
        settings: ExportSettings,
        lines: Option<Box<dyn Write + Send>>,
        metrics: Arc<Metrics>,
        budget: Arc<ByteBudget>,
        shutdown: watch::Receiver<Option<Instant>>,
    ) -> Self {
        let sender = BatchSender::new(&settings, metrics.clone()).map(Arc::new);
        // Without OTLP the only place spans can go is stdout.
        let lines = match (settings.stdout || sender.is_none(), lines) {
            (false, _) => None,
            (true, Some(w)) => Some(w),
            (true, None) => Some(Box::new(std::io::stdout()) as Box<dyn Write + Send>),
        };
        Self {
            rx,
            settings,
            sender,
            in_flight: JoinSet::new(),
            lines,
            metrics,
            budget,
            shutdown,
            handle_alive: true,
        }
    }

    pub(crate) async fn run(mut self) {
        let max = self.settings.max_batch_size.max(1);
        let mut batch: Vec<PendingSpan> = Vec::with_capacity(max);
        let mut flush_at: Option<Instant> = None;
        loop {
            let shutdown_at = *self.shutdown.borrow_and_update();
            if let Some(deadline) = shutdown_at {
                self.drain(batch, deadline).await;
                return;
            }
            let full = batch.len() >= max;
            let slot_free = self.slot_free();
            if full && slot_free {
                flush_at = None;
                self.dispatch(std::mem::replace(&mut batch, Vec::with_capacity(max)));
                continue;
            }
            let room = max - batch.len();
            tokio::select! {
                biased;
                changed = self.shutdown.changed(), if self.handle_alive => {
                    // The handle was dropped without shutdown: keep exporting
                    // until every producer is gone.
                    if changed.is_err() {
                        self.handle_alive = false;
                    }
                }
                // A request finished: a slot is free again.
                Some(_) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {}
                // While every slot is busy and the batch is full, spans wait in
                // the queue (and new ones are dropped when it is full).
                n = self.rx.recv_many(&mut batch, room), if !full => {
                    if n == 0 {
                        // Every SpanQueue is gone: send what is left and stop.
                        self.finish(batch).await;
                        return;
                    }
                    flush_at.get_or_insert_with(|| Instant::now() + self.settings.batch_timeout);
                }
                () = sleep_until(flush_at.unwrap_or_else(Instant::now)),
                    if flush_at.is_some() && slot_free => {
                    flush_at = None;
                    self.dispatch(std::mem::replace(&mut batch, Vec::with_capacity(max)));
                }
            }
        }
    }

    /// Whether spans are printed as lines (and so must reach this task as
    /// built, not encoded).
    pub(crate) fn prints_lines(&self) -> bool {
        self.lines.is_some()
    }

    fn slot_free(&self) -> bool {
        self.in_flight.len() < self.settings.max_concurrent_exports.max(1)
    }

    /// Waits until a request in flight finishes (none: returns at once).
    async fn wait_for_slot(&mut self) {
        let _ = self.in_flight.join_next().await;
    }

    /// The producers are gone: send the last batch and wait for every request.
    async fn finish(&mut self, batch: Vec<PendingSpan>) {
        if !batch.is_empty() {
            while !self.slot_free() {
                self.wait_for_slot().await;
            }
            self.dispatch(batch);
        }
        while self.in_flight.join_next().await.is_some() {}
        if let Some(w) = self.lines.as_mut() {
            w.flush().ok();
        }
    }

    /// Shutdown: refuse new spans, then send everything queued until `deadline`
    /// (requests in flight honor it too); what cannot be sent by then is
    /// dropped as `shutdown`.
    async fn drain(&mut self, mut batch: Vec<PendingSpan>, deadline: Instant) {
        self.rx.close();
        let max = self.settings.max_batch_size.max(1);
        loop {
            while batch.len() < max {
                match self.rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let _settled = self.budget.hold(&batch);
                self.metrics
                    .dropped(DropReason::Shutdown, batch.len() as u64);
                batch.clear();
                continue;
            }
            if self.slot_free() {
                self.dispatch(std::mem::replace(&mut batch, Vec::with_capacity(max)));
            } else {
                self.wait_for_slot().await;
            }
        }
        // Each request gives up by the deadline on its own.
        while self.in_flight.join_next().await.is_some() {}
        if let Some(w) = self.lines.as_mut() {
            w.flush().ok();
        }
        let (_, _, at_shutdown) = self.metrics.totals();
        if at_shutdown > 0 {
            tracing::warn!(spans = at_shutdown, "spans dropped at shutdown");
        }
    }

    /// Print one batch and/or start exporting it in its own task; the caller
    /// checked that a slot is free. Every span of the batch ends up counted as
    /// exported or dropped (by the task, for OTLP), and its bytes are given
    /// back to the budget then.
    fn dispatch(&mut self, batch: Vec<PendingSpan>) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        let held = self.budget.hold(&batch);
        if let Some(w) = self.lines.as_mut() {
            let mut text = String::with_capacity(batch.len() * 160);
            for span in &batch {
                // The queue encodes ahead only when nothing prints lines
                // (`Exporter::prints_lines`), so every span here is as built.
                if let PendingSpan::Built(span) = span {
                    text.push_str(&format_span_line(span));
                    text.push('\n');
                }
            }
            // A closed stdout must not stop the exporter.
            w.write_all(text.as_bytes()).and_then(|()| w.flush()).ok();
        }
        let Some(sender) = &self.sender else {
            self.metrics.exported(n);
            return;
        };
        let sender = sender.clone();
        let shutdown = self.shutdown.clone();
        self.in_flight
            .spawn(async move { sender.send(batch, held, shutdown).await });
    }
}
