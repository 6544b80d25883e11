//! `wirespan run` exporting to the in-process OTLP receiver, and collecting
//! the spans of one server port.

use crate::agent::{Agent, AgentExit, AgentOptions};
use crate::otlp_receiver::{OtlpProtocol, Receiver};
use crate::spans::{assert_spans, show, ExpectedSpan, FlatSpan};
use std::time::Duration;

/// How long spans may take to arrive (export batches every 200 ms).
pub const SPAN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SpanRun {
    pub receiver: Receiver,
    pub agent: Agent,
}

impl SpanRun {
    /// Starts a receiver and an agent exporting to it.
    pub fn start(protocol: OtlpProtocol) -> SpanRun {
        Self::start_with(protocol, AgentOptions::default())
    }

    pub fn start_with(protocol: OtlpProtocol, opts: AgentOptions) -> SpanRun {
        let receiver = Receiver::start(protocol);
        let agent = Agent::run(opts.otlp(&receiver.endpoint(), protocol.as_str()));
        SpanRun { receiver, agent }
    }

    /// Waits (bounded) until at least `n` spans of server port `port` arrived,
    /// then stops the agent (SIGTERM: flush, exit 0) and returns all spans of
    /// that port, with the agent's exit for diagnostics.
    pub fn finish(self, port: u16, n: usize) -> (Vec<FlatSpan>, AgentExit) {
        let waited = self.receiver.wait_for(SPAN_TIMEOUT, |s| {
            s.iter().filter(|x| x.involves_port(port)).count() >= n
        });
        let diagnostics = self.agent.diagnostics();
        let exit = self.agent.stop();
        let spans: Vec<FlatSpan> = self
            .receiver
            .spans()
            .into_iter()
            .filter(|s| s.involves_port(port))
            .collect();
        assert!(
            exit.status.success(),
            "the agent exited with {} after SIGTERM\n{}",
            exit.status,
            exit.diagnostics()
        );
        if waited.is_err() {
            panic!(
                "only {} of the {n} expected spans for port {port} arrived within {SPAN_TIMEOUT:?}:\n{}\n{diagnostics}",
                spans.len(),
                show(&spans)
            );
        }
        (spans, exit)
    }

    /// `finish` then assert the spans are exactly `expected`.
    pub fn assert(self, port: u16, expected: &[ExpectedSpan]) -> Vec<FlatSpan> {
        let (spans, exit) = self.finish(port, expected.len());
        assert_spans(expected, &spans, &exit.diagnostics());
        spans
    }
}
