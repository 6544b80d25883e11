//! The task side: takes batches off the queue, prints and/or exports them with
//! retries, and flushes on shutdown.

use crate::encode::encode_request;
use crate::grpc::GrpcTransport;
use crate::http::HttpTransport;
use crate::metrics::{DropReason, Metrics, RequestResult};
use crate::retry::{Backoff, Outcome};
use crate::settings::{ExportSettings, OtlpSettings};
use crate::stdout::format_span_line;
use crate::ExportSpan;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use wirespan_config::OtlpProtocol;

enum Transport {
    Grpc(GrpcTransport),
    Http(Box<HttpTransport>),
    /// Settings that could not be turned into a client: every batch fails.
    Broken(String),
}

/// One batch, ready to be sent (again).
enum Payload {
    Grpc(ExportTraceServiceRequest),
    Http(Bytes),
    None,
}

impl Transport {
    fn new(s: &OtlpSettings) -> Self {
        let made = match s.protocol {
            OtlpProtocol::Grpc => GrpcTransport::new(s).map(Transport::Grpc),
            OtlpProtocol::HttpProtobuf => {
                HttpTransport::new(s).map(|h| Transport::Http(Box::new(h)))
            }
        };
        made.unwrap_or_else(|e| {
            tracing::error!(error = %e, "OTLP exporter cannot start; spans will be dropped");
            Transport::Broken(e.to_string())
        })
    }

    fn prepare(&self, req: ExportTraceServiceRequest) -> Payload {
        match self {
            Transport::Grpc(_) => Payload::Grpc(req),
            Transport::Http(h) => Payload::Http(h.encode(&req)),
            Transport::Broken(_) => Payload::None,
        }
    }

    async fn send(&mut self, payload: &Payload, timeout: Duration) -> Outcome {
        match (self, payload) {
            (Transport::Grpc(g), Payload::Grpc(req)) => g.send(req, timeout).await,
            (Transport::Http(h), Payload::Http(body)) => h.send(body, timeout).await,
            (Transport::Broken(reason), _) => Outcome::Fatal {
                reason: reason.clone(),
            },
            _ => unreachable!("payload prepared by the same transport"),
        }
    }
}

/// The exporter task's state. It is created and spawned by [`crate::start`];
/// callers hold the [`crate::SpanQueue`] and [`crate::ExporterHandle`].
pub struct Exporter {
    rx: mpsc::Receiver<ExportSpan>,
    settings: ExportSettings,
    transport: Option<Transport>,
    lines: Option<Box<dyn Write + Send>>,
    metrics: Arc<Metrics>,
    /// The shutdown deadline, once shutdown was asked for.
    shutdown: watch::Receiver<Option<Instant>>,
    /// False once the handle is gone without asking for shutdown.
    handle_alive: bool,
    last_warning: Option<Instant>,
}

/// At most one drop warning per this interval; the counters have the totals.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

impl Exporter {
    pub(crate) fn new(
        rx: mpsc::Receiver<ExportSpan>,
        settings: ExportSettings,
        lines: Option<Box<dyn Write + Send>>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<Option<Instant>>,
    ) -> Self {
        let transport = settings.otlp.as_ref().map(Transport::new);
        // Without OTLP the only place spans can go is stdout.
        let lines = match (settings.stdout || transport.is_none(), lines) {
            (false, _) => None,
            (true, Some(w)) => Some(w),
            (true, None) => Some(Box::new(std::io::stdout()) as Box<dyn Write + Send>),
        };
        Self {
            rx,
            settings,
            transport,
            lines,
            metrics,
            shutdown,
            handle_alive: true,
            last_warning: None,
        }
    }

    pub(crate) async fn run(mut self) {
        let max = self.settings.max_batch_size.max(1);
        let mut batch: Vec<ExportSpan> = Vec::with_capacity(max);
        let mut flush_at: Option<Instant> = None;
        loop {
            let shutdown_at = *self.shutdown.borrow_and_update();
            if let Some(deadline) = shutdown_at {
                self.drain(batch, deadline).await;
                return;
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
                n = self.rx.recv_many(&mut batch, room) => {
                    if n == 0 {
                        // Every SpanQueue is gone: send what is left and stop.
                        if !batch.is_empty() {
                            self.export(std::mem::take(&mut batch)).await;
                        }
                        return;
                    }
                    flush_at.get_or_insert_with(|| Instant::now() + self.settings.batch_timeout);
                    if batch.len() >= max {
                        flush_at = None;
                        self.export(std::mem::replace(&mut batch, Vec::with_capacity(max))).await;
                    }
                }
                () = sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    flush_at = None;
                    self.export(std::mem::replace(&mut batch, Vec::with_capacity(max))).await;
                }
            }
        }
    }

    /// Shutdown: refuse new spans, then send everything queued until `deadline`;
    /// what cannot be sent by then is dropped as `shutdown`.
    async fn drain(&mut self, mut batch: Vec<ExportSpan>, deadline: Instant) {
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
                self.metrics
                    .dropped(DropReason::Shutdown, batch.len() as u64);
                batch.clear();
                continue;
            }
            self.export(std::mem::replace(&mut batch, Vec::with_capacity(max)))
                .await;
        }
        if let Some(w) = self.lines.as_mut() {
            let _ = w.flush();
        }
        let (_, _, at_shutdown) = self.metrics.totals();
        if at_shutdown > 0 {
            tracing::warn!(spans = at_shutdown, "spans dropped at shutdown");
        }
    }

    /// Print and/or export one batch, retrying as the OTLP spec says. Every
    /// span of the batch ends up counted as exported or dropped.
    async fn export(&mut self, batch: Vec<ExportSpan>) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        if let Some(w) = self.lines.as_mut() {
            let mut text = String::with_capacity(batch.len() * 160);
            for span in &batch {
                text.push_str(&format_span_line(span));
                text.push('\n');
            }
            // A closed stdout must not stop the exporter.
            let _ = w.write_all(text.as_bytes()).and_then(|()| w.flush());
        }
        let Some(transport) = self.transport.as_mut() else {
            self.metrics.exported(n);
            return;
        };
        let payload = transport.prepare(encode_request(batch));
        let give_up_at = Instant::now() + self.settings.max_retry_time;
        let mut backoff = Backoff::new(self.settings.initial_backoff, self.settings.max_backoff);
        loop {
            let now = Instant::now();
            let shutdown_at = *self.shutdown.borrow();
            let mut timeout = self
                .settings
                .otlp
                .as_ref()
                .map_or(Duration::from_secs(10), |o| o.timeout);
            if let Some(deadline) = shutdown_at {
                if now >= deadline {
                    self.metrics.dropped(DropReason::Shutdown, n);
                    return;
                }
                timeout = timeout.min(deadline - now);
            }
            match transport.send(&payload, timeout).await {
                Outcome::Ok { rejected, message } => {
                    self.metrics.request(RequestResult::Ok);
                    let rejected = rejected.min(n);
                    if rejected > 0 && warn_now(&mut self.last_warning) {
                        tracing::warn!(rejected, %message, "OTLP receiver rejected spans");
                    }
                    self.metrics.exported(n - rejected);
                    self.metrics
                        .dropped(DropReason::RejectedByReceiver, rejected);
                    return;
                }
                Outcome::Fatal { reason } => {
                    self.metrics.request(RequestResult::Error);
                    if warn_now(&mut self.last_warning) {
                        tracing::warn!(spans = n, %reason, "OTLP export failed; batch dropped");
                    }
                    self.metrics.dropped(DropReason::ExportFailed, n);
                    return;
                }
                Outcome::Retryable { after, reason } => {
                    self.metrics.request(RequestResult::Retryable);
                    let wake = Instant::now() + backoff.delay(after);
                    if wake > give_up_at {
                        if warn_now(&mut self.last_warning) {
                            tracing::warn!(spans = n, %reason, "OTLP export still failing after retries; batch dropped");
                        }
                        self.metrics.dropped(DropReason::RetryExhausted, n);
                        return;
                    }
                    tracing::debug!(spans = n, %reason, "OTLP export failed; will retry");
                    // Meanwhile new spans keep queuing (up to the queue bound).
                    if !wait_until(&mut self.shutdown, &mut self.handle_alive, wake).await {
                        self.metrics.dropped(DropReason::Shutdown, n);
                        return;
                    }
                }
            }
        }
    }
}

/// Rate-limits drop warnings, so a receiver refusing everything does not
/// flood the log with one line per batch.
fn warn_now(last_warning: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last_warning.is_some_and(|t| now < t + WARN_INTERVAL) {
        return false;
    }
    *last_warning = Some(now);
    true
}

/// Sleeps until `wake`; false if a shutdown deadline falls before it.
async fn wait_until(
    shutdown: &mut watch::Receiver<Option<Instant>>,
    handle_alive: &mut bool,
    wake: Instant,
) -> bool {
    loop {
        if let Some(deadline) = *shutdown.borrow_and_update() {
            if deadline < wake {
                return false;
            }
        }
        tokio::select! {
            () = sleep_until(wake) => return true,
            changed = shutdown.changed(), if *handle_alive => {
                if changed.is_err() {
                    *handle_alive = false;
                }
            }
        }
    }
}
