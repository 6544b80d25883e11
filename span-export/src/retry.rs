//! What one export attempt came to, and how long to wait before the next.

use std::time::Duration;

/// The result of one export request, as the transports classify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted; `rejected` spans were refused by a partial-success response.
    Ok { rejected: u64, message: String },
    /// A transient failure the OTLP spec says to retry, with the delay the
    /// server asked for (RetryInfo or Retry-After), if any.
    Retryable {
        after: Option<Duration>,
        reason: String,
    },
    /// A failure retrying cannot fix (bad request, auth, not found, ...).
    Fatal { reason: String },
}

/// Exponential backoff with jitter: each delay is drawn from
/// [base/2, base], base doubling from `initial` up to `max`. Jitter keeps many
/// agents restarted together from retrying in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            next: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
        }
    }

    /// The delay before the next attempt. A server-given delay wins over the
    /// computed one (the spec says to honor it), but the backoff still grows.
    pub(crate) fn delay(&mut self, server_delay: Option<Duration>) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        if let Some(d) = server_delay {
            return d;
        }
        let nanos = base.as_nanos() as u64;
        Duration::from_nanos(nanos / 2 + fastrand::u64(0..=nanos / 2))
    }
}

/// HTTP statuses the OTLP/HTTP spec lists as retryable.
pub(crate) fn http_status_retryable(code: u16) -> bool {
    matches!(code, 429 | 502 | 503 | 504)
}

/// gRPC codes the OTLP/gRPC spec lists as retryable. RESOURCE_EXHAUSTED is
/// retryable only when the server says when to retry (RetryInfo): without it
/// the receiver is out of capacity for good (for example, a too-large batch).
pub(crate) fn grpc_code_retryable(code: tonic::Code, has_retry_info: bool) -> bool {
    use tonic::Code::*;
    match code {
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => true,
        ResourceExhausted => has_retry_info,
        _ => false,
    }
}

/// `Retry-After` as delay-seconds. (The HTTP-date form is rare for OTLP
/// receivers and is treated as absent, falling back to backoff.)
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let bases = [100, 200, 400, 400, 400];
        for base in bases {
            let d = b.delay(None);
            let base = Duration::from_millis(base);
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} not in [{:?}, {base:?}]",
                base / 2
            );
        }
        assert_eq!(
            b.delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn retryable_classification() {
        for c in [429, 502, 503, 504] {
            assert!(http_status_retryable(c));
        }
        for c in [400, 401, 403, 404, 413, 500] {
            assert!(!http_status_retryable(c));
        }
        assert!(grpc_code_retryable(tonic::Code::Unavailable, false));
        assert!(grpc_code_retryable(tonic::Code::DataLoss, false));
        assert!(!grpc_code_retryable(tonic::Code::ResourceExhausted, false));
        assert!(grpc_code_retryable(tonic::Code::ResourceExhausted, true));
        assert!(!grpc_code_retryable(tonic::Code::InvalidArgument, true));
        assert!(!grpc_code_retryable(tonic::Code::Unauthenticated, false));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
