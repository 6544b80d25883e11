//! What the tracker reports: parser results tagged with their connection, and
//! the counted tracker events that become `reason` labels in /metrics.

use protocol_parsers::{HttpExchange, ParseIssue, RequestHead};

use crate::ids::StreamOffset;
use crate::types::{ConnInfo, Direction};

/// Where the table puts everything it produces.
pub trait TrackerSink {
    /// A request/response pair of `conn`.
    fn exchange(&mut self, conn: &ConnInfo, exchange: HttpExchange);
    /// A counted parser issue on `conn`.
    fn parse_issue(&mut self, conn: &ConnInfo, issue: ParseIssue);
    /// A counted tracker event.
    fn tracker_event(&mut self, event: TrackerEvent);
    /// The connection carries nothing we parse: the caller may tell the kernel to
    /// stop copying it. Called at most once per connection generation.
    fn mute(&mut self, conn: &ConnInfo);
    /// A request head of `conn` was parsed (see
    /// [`ExchangeSink::request_started`](protocol_parsers::ExchangeSink::request_started)):
    /// called while the data event that completed it is being fed.
    fn request_started(&mut self, _conn: &ConnInfo, _head: &RequestHead, _ordinal: u64) {}
    /// The bytes of `dir` of `conn` before stream offset `until` are body
    /// the parser only counts (see
    /// [`ExchangeSink::body_ahead`](protocol_parsers::ExchangeSink::body_ahead)):
    /// the caller may tell the kernel not to copy them. They then come as
    /// header-only records, given to [`crate::ConnectionTable::skipped_body`].
    fn body_ahead(&mut self, _conn: &ConnInfo, _dir: Direction, _until: StreamOffset) {}
}

/// A counted tracker event. `label()` is the `reason` label; byte-carrying
/// variants are counted by their amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackerEvent {
    /// Bytes never delivered in one direction (lost records, header-only
    /// records, sendfile, a missing tail at close).
    GapBytes { dir: Direction, bytes: u64 },
    /// Body bytes not copied because the parser said it only counts them
    /// (`body_ahead`): a gap by design, not a loss.
    SkippedBodyBytes { dir: Direction, bytes: u64 },
    /// Bytes delivered twice (at an offset already passed); skipped.
    OverlapBytes(u64),
    /// Data for a key with no tracked connection: one was created lazily.
    DataForUnknownConnection,
    /// An event whose conn_id is not the tracked generation of its key; dropped.
    StaleGeneration,
    /// A connection evicted by the idle timeout.
    EvictedIdle,
    /// A connection evicted to stay within `max_connections`.
    EvictedCapacity,
    /// A connection evicted to stay within `memory_limit_bytes`.
    EvictedMemory,
    /// At close, this many bytes (both directions) had never been delivered.
    ClosedWithMissingTail { bytes: u64 },
    /// Bytes of connections not parsed (protocol unknown / muted, or detection
    /// given up), counted instead of parsed.
    UndetectedBytes(u64),
    /// A close for a key with no tracked connection.
    CloseForUnknownConnection,
    /// A connection ended because its process exited.
    ClosedByProcessExit,
    /// An HTTP/1 connection switched to HTTP/2 (h2c upgrade).
    H2cUpgrade,
    /// An HTTP/1 connection switched to a protocol we do not parse (101 other
    /// than h2c, CONNECT tunnel): muted from then on.
    UpgradeToUnparsed,
    /// A connection whose role contradicted its traffic (a connect()ed socket
    /// that receives requests); the traffic wins.
    RoleCorrected,
}

impl TrackerEvent {
    /// The `reason` label in /metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TrackerEvent::GapBytes { .. } => "gap_bytes",
            TrackerEvent::SkippedBodyBytes { .. } => "skipped_body_bytes",
            TrackerEvent::OverlapBytes(_) => "overlap_bytes",
            TrackerEvent::DataForUnknownConnection => "data_for_unknown_connection",
            TrackerEvent::StaleGeneration => "stale_generation",
            TrackerEvent::EvictedIdle => "evicted_idle",
            TrackerEvent::EvictedCapacity => "evicted_capacity",
            TrackerEvent::EvictedMemory => "evicted_memory",
            TrackerEvent::ClosedWithMissingTail { .. } => "closed_with_missing_tail",
            TrackerEvent::UndetectedBytes(_) => "undetected_bytes",
            TrackerEvent::CloseForUnknownConnection => "close_for_unknown_connection",
            TrackerEvent::ClosedByProcessExit => "closed_by_process_exit",
            TrackerEvent::H2cUpgrade => "h2c_upgrade",
            TrackerEvent::UpgradeToUnparsed => "upgrade_to_unparsed",
            TrackerEvent::RoleCorrected => "role_corrected",
        }
    }

    /// How much to add to the counter: the byte count for byte events, else 1.
    pub fn amount(&self) -> u64 {
        match self {
            TrackerEvent::GapBytes { bytes, .. }
            | TrackerEvent::SkippedBodyBytes { bytes, .. }
            | TrackerEvent::ClosedWithMissingTail { bytes } => *bytes,
            TrackerEvent::OverlapBytes(b) | TrackerEvent::UndetectedBytes(b) => *b,
            _ => 1,
        }
    }

    /// Every label, for pre-registering metrics.
    pub const LABELS: &'static [&'static str] = &[
        "gap_bytes",
        "skipped_body_bytes",
        "overlap_bytes",
        "data_for_unknown_connection",
        "stale_generation",
        "evicted_idle",
        "evicted_capacity",
        "evicted_memory",
        "closed_with_missing_tail",
        "undetected_bytes",
        "close_for_unknown_connection",
        "closed_by_process_exit",
        "h2c_upgrade",
        "upgrade_to_unparsed",
        "role_corrected",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_listed_and_unique() {
        let all = [
            TrackerEvent::GapBytes {
                dir: Direction::Egress,
                bytes: 1,
            },
            TrackerEvent::SkippedBodyBytes {
                dir: Direction::Ingress,
                bytes: 1,
            },
            TrackerEvent::OverlapBytes(1),
            TrackerEvent::DataForUnknownConnection,
            TrackerEvent::StaleGeneration,
            TrackerEvent::EvictedIdle,
            TrackerEvent::EvictedCapacity,
            TrackerEvent::EvictedMemory,
            TrackerEvent::ClosedWithMissingTail { bytes: 1 },
            TrackerEvent::UndetectedBytes(1),
            TrackerEvent::CloseForUnknownConnection,
            TrackerEvent::ClosedByProcessExit,
            TrackerEvent::H2cUpgrade,
            TrackerEvent::UpgradeToUnparsed,
            TrackerEvent::RoleCorrected,
        ];
        assert_eq!(all.len(), TrackerEvent::LABELS.len());
        for (e, l) in all.iter().zip(TrackerEvent::LABELS) {
            assert_eq!(e.label(), *l);
        }
        let mut l = TrackerEvent::LABELS.to_vec();
        l.sort_unstable();
        l.dedup();
        assert_eq!(l.len(), TrackerEvent::LABELS.len());
    }
}
