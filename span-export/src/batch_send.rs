//! One batch's trip to the OTLP receiver: encode once, send, retry with
//! backoff, and count every span of the batch as exported or dropped. Several
//! batches run this at once (as separate tokio tasks), sharing one
//! [`BatchSender`].

use crate::budget::Held;
use crate::grpc::GrpcTransport;
use crate::http::HttpTransport;
use crate::metrics::{DropReason, Metrics, RequestResult};
use crate::retry::{Backoff, Outcome};
use crate::settings::{ExportSettings, OtlpSettings};
use crate::PendingSpan;
use bytes::Bytes;
use span_model::encode_pending_requests;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use wirespan_config::OtlpProtocol;

/// At most one drop warning per this interval; the counters have the totals.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

enum Transport {
    Grpc(GrpcTransport),
    Http(Box<HttpTransport>),
    /// Settings that could not be turned into a client: every batch fails.
    Broken(String),
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

    /// What goes on the wire for this batch, each request reused by every
    /// attempt, with its span count: the protobuf bytes (gRPC compresses them
    /// per call), or the HTTP body. One request, unless the batch encodes to
    /// more than `max_bytes`.
    fn payloads(&self, batch: &[PendingSpan], max_bytes: usize) -> Vec<(Bytes, u64)> {
        let requests = encode_pending_requests(batch, max_bytes).into_iter();
        match self {
            Transport::Grpc(_) => requests.map(|(r, n)| (r.into(), n as u64)).collect(),
            Transport::Http(h) => requests.map(|(r, n)| (h.body(r), n as u64)).collect(),
            Transport::Broken(_) => vec![(Bytes::new(), batch.len() as u64)],
        }
    }

    async fn send(&self, payload: &Bytes, timeout: Duration) -> Outcome {
        match self {
            Transport::Grpc(g) => g.send(payload, timeout).await,
            Transport::Http(h) => h.send(payload, timeout).await,
            Transport::Broken(reason) => Outcome::Fatal {
                reason: reason.clone(),
            },
        }
    }
}

// === impl BatchSender ===

/// What every batch's task shares: the client, the retry timings, the
/// counters and the warning rate limit.
pub(crate) struct BatchSender {
    transport: Transport,
    max_request_bytes: usize,
    timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_time: Duration,
    metrics: Arc<Metrics>,
    last_warning: Mutex<Option<Instant>>,
}

impl BatchSender {
    /// `None` without OTLP settings.
    pub(crate) fn new(settings: &ExportSettings, metrics: Arc<Metrics>) -> Option<Self> {
        let otlp = settings.otlp.as_ref()?;
        Some(Self {
            transport: Transport::new(otlp),
            max_request_bytes: settings.max_request_bytes,
            timeout: otlp.timeout,
            initial_backoff: settings.initial_backoff,
            max_backoff: settings.max_backoff,
            max_retry_time: settings.max_retry_time,
            metrics,
            last_warning: Mutex::new(None),
        })
    }

    /// Export one batch, retrying as the OTLP spec says, until it is accepted,
    /// refused, out of retry time, or the shutdown deadline passes. Every span
    /// of the batch ends up counted as exported or dropped; `_held`, the
    /// batch's bytes, goes back to the budget when this returns (or the task
    /// is aborted). The requests written from the spans take their place.
    pub(crate) async fn send(
        &self,
        batch: Vec<PendingSpan>,
        _held: Held,
        mut shutdown: watch::Receiver<Option<Instant>>,
    ) {
        if batch.is_empty() {
            return;
        }
        let payloads = self.transport.payloads(&batch, self.max_request_bytes);
        // The spans are in the payloads now; free them before waiting on the network.
        drop(batch);
        if payloads.len() > 1 {
            self.metrics.split_batch();
        }
        let mut handle_alive = true;
        let mut payloads = payloads.into_iter();
        // One request after the other: the batch holds one of
        // `max_concurrent_exports` slots until all are settled.
        while let Some((payload, n)) = payloads.next() {
            let sent = self
                .send_request(&payload, n, &mut shutdown, &mut handle_alive)
                .await;
            if sent == Sent::ShutDown {
                let rest: u64 = payloads.map(|(_, n)| n).sum();
                self.metrics
                    .settle(|m| m.dropped(DropReason::Shutdown, rest));
                return;
            }
        }
    }

    /// One request carrying `n` spans, retried as the OTLP spec says, until
    /// it is accepted, refused, out of retry time, or the shutdown deadline
    /// passes. Its spans end up counted as exported or dropped.
    async fn send_request(
        &self,
        payload: &Bytes,
        n: u64,
        shutdown: &mut watch::Receiver<Option<Instant>>,
        handle_alive: &mut bool,
    ) -> Sent {
        let give_up_at = Instant::now() + self.max_retry_time;
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff);
        loop {
            let now = Instant::now();
            let mut timeout = self.timeout;
            if let Some(deadline) = *shutdown.borrow() {
                if now >= deadline {
                    self.metrics.settle(|m| m.dropped(DropReason::Shutdown, n));
                    return Sent::ShutDown;
                }
                timeout = timeout.min(deadline - now);
            }
            // A request already on its way when shutdown comes still ends by
            // the deadline.
            let outcome = tokio::select! {
                outcome = self.transport.send(payload, timeout) => outcome,
                () = deadline_passed(shutdown, handle_alive) => {
                    self.metrics.settle(|m| m.dropped(DropReason::Shutdown, n));
                    return Sent::ShutDown;
                }
            };
            match outcome {
                Outcome::Ok { rejected, message } => {
                    self.metrics.request(RequestResult::Ok);
                    let rejected = rejected.min(n);
                    if rejected > 0 && self.warn_now() {
                        tracing::warn!(rejected, %message, "OTLP receiver rejected spans");
                    }
                    self.metrics.settle(|m| {
                        m.exported(n - rejected);
                        m.dropped(DropReason::RejectedByReceiver, rejected);
                    });
                    return Sent::Settled;
                }
                Outcome::Fatal { reason } => {
                    self.metrics.request(RequestResult::Error);
                    if self.warn_now() {
                        tracing::warn!(spans = n, %reason, "OTLP export failed; batch dropped");
                    }
                    self.metrics
                        .settle(|m| m.dropped(DropReason::ExportFailed, n));
                    return Sent::Settled;
                }
                Outcome::Retryable { after, reason } => {
                    self.metrics.request(RequestResult::Retryable);
                    let wake = Instant::now() + backoff.delay(after);
                    if wake > give_up_at {
                        if self.warn_now() {
                            tracing::warn!(spans = n, %reason, "OTLP export still failing after retries; batch dropped");
                        }
                        self.metrics
                            .settle(|m| m.dropped(DropReason::RetryExhausted, n));
                        return Sent::Settled;
                    }
                    tracing::debug!(spans = n, %reason, "OTLP export failed; will retry");
                    // Meanwhile other batches go on, and new spans keep
                    // queuing (up to the queue bound).
                    if !wait_until(shutdown, handle_alive, wake).await {
                        self.metrics.settle(|m| m.dropped(DropReason::Shutdown, n));
                        return Sent::ShutDown;
                    }
                }
            }
        }
    }

    /// Rate-limits drop warnings, so a receiver refusing everything does not
    /// flood the log with one line per batch.
    fn warn_now(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now < t + WARN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// How one request of a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Its spans are counted (exported, refused or given up on); the
    /// batch's next request may go.
    Settled,
    /// Dropped at shutdown: so are the batch's other requests.
    ShutDown,
}

/// Returns once a shutdown deadline is set and has passed; never, if the
/// handle is gone without asking for shutdown.
async fn deadline_passed(shutdown: &mut watch::Receiver<Option<Instant>>, handle_alive: &mut bool) {
    loop {
        let deadline = *shutdown.borrow_and_update();
        if let Some(deadline) = deadline {
            sleep_until(deadline).await;
            return;
        }
        if !*handle_alive {
            return std::future::pending().await;
        }
        if shutdown.changed().await.is_err() {
            *handle_alive = false;
        }
    }
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
