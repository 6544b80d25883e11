//! The in-process OTLP trace receiver (gRPC or HTTP/protobuf) the end-to-end
//! tests export to: `test_support::otlp`'s, on its own Tokio runtime so the
//! tests themselves stay plain blocking `#[test]` functions, read here as
//! [`FlatSpan`]s.

use std::net::SocketAddr;
use std::time::Duration;
use test_support::otlp::BlockingReceiver;

use crate::spans::{flatten, FlatSpan};

pub use test_support::otlp::{ExportTraceServiceRequest, Inbox, OtlpProtocol};

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub protocol: OtlpProtocol,
    otlp: BlockingReceiver,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 (any free port).
    pub fn start(protocol: OtlpProtocol) -> Receiver {
        let otlp = BlockingReceiver::start(protocol);
        Receiver {
            addr: otlp.addr,
            protocol,
            otlp,
        }
    }

    /// The URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends
    /// `/v1/traces` for HTTP).
    pub fn endpoint(&self) -> String {
        self.otlp.endpoint()
    }

    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.otlp.requests()
    }

    /// Every span received so far, with its resource.
    pub fn spans(&self) -> Vec<FlatSpan> {
        self.requests().iter().flat_map(flatten).collect()
    }

    /// Waits (bounded) until `pred` holds for the received spans; returns them.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[FlatSpan]) -> bool,
    ) -> Result<Vec<FlatSpan>, Vec<FlatSpan>> {
        let mut spans = Vec::new();
        let ok = crate::wait::wait_until(timeout, || {
            spans = self.spans();
            pred(&spans)
        });
        if ok {
            Ok(spans)
        } else {
            Err(spans)
        }
    }
}
