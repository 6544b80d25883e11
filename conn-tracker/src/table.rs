//! The connection table: connections by (tgid, fd) and generation, stream
//! positions, recency, and the three eviction rules (idle, capacity, memory).

use std::collections::BTreeSet;

use crate::events::{TrackerEvent, TrackerSink};
use crate::ids::{ConnId, MonotonicNs, StreamOffset};
use crate::lru::Lru;
use crate::session::Session;
use crate::stream::StreamPos;
use crate::types::{ConnInfo, ConnKey, Direction, TrackerLimits};
use crate::ProcessMap;

/// Data events carrying the same foreign generation, with none of the tracked
/// one in between, after which the foreign one is adopted (the tracked
/// generation's close and the new one's open were both lost).
const ADOPT_AFTER_STALE: u32 = 8;

/// A tracked connection.
struct Conn {
    session: Session,
    streams: [StreamPos; 2],
    /// Latest event timestamp (never decreases).
    last_ns: u64,
    /// `session.buffered_bytes()` as of the end of the last call.
    buffered: usize,
    /// A generation seen in data for this key that is not ours, and how often
    /// in a row.
    foreign: (u64, u32),
}

/// Why a connection ends.
#[derive(Clone, Copy)]
enum EndReason {
    Closed,
    Replaced,
    ProcessExit,
    Idle,
    Capacity,
    Memory,
    Shutdown,
}

/// All tracked connections. See the crate docs for the rules.
pub struct ConnectionTable {
    limits: TrackerLimits,
    /// Slots by key; also finds a process's connections at its exit.
    by_key: ProcessMap<ConnKey, u32>,
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    lru: Lru,
    /// (buffered bytes, slot) of every connection holding bytes.
    by_buffered: BTreeSet<(usize, u32)>,
    buffered_total: usize,
    /// Largest timestamp seen; the start of activity for connections opened
    /// with `opened_ns == 0`.
    clock_ns: u64,
}

// === impl ConnectionTable ===

impl ConnectionTable {
    pub fn new(limits: TrackerLimits) -> Self {
        ConnectionTable {
            limits,
            by_key: ProcessMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: Lru::default(),
            by_buffered: BTreeSet::new(),
            buffered_total: 0,
            clock_ns: 0,
        }
    }

    pub fn limits(&self) -> &TrackerLimits {
        &self.limits
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Bytes held by all parsers and detection buffers (the quantity
    /// `memory_limit_bytes` bounds).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// Approximate heap held by the table itself, excluding what parsers hold
    /// (their boxed state and buffers): for sizing and benches.
    pub fn table_heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Conn>>()
            + self.by_key.heap_bytes()
            + self.free.capacity() * 4
            + self.lru.heap_bytes()
    }

    pub fn get(&self, key: ConnKey) -> Option<&ConnInfo> {
        let slot = *self.by_key.get(&key)?;
        self.conn(slot).map(|c| &c.session.info)
    }

    fn conn(&self, slot: u32) -> Option<&Conn> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn conn_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    fn tick(&mut self, ts_ns: u64) {
        self.clock_ns = self.clock_ns.max(ts_ns);
    }

    /// A connection became known. Replaces (ending it first) a different
    /// generation on the same key; for the same generation (created lazily
    /// from data, or a duplicate open) it fills in what the open record knows.
    pub fn open(&mut self, info: ConnInfo, sink: &mut impl TrackerSink) {
        self.tick(info.opened_ns);
        if let Some(&slot) = self.by_key.get(&info.key) {
            if let Some(c) = self.conn_mut(slot) {
                if c.session.info.conn_id == info.conn_id {
                    let known = &mut c.session.info;
                    known.local = info.local;
                    known.remote = info.remote;
                    if known.role == crate::types::Role::Unknown {
                        known.role = info.role;
                    }
                    if known.opened_ns == 0 {
                        known.opened_ns = info.opened_ns;
                    }
                    return;
                }
            }
            let ts = info.opened_ns.max(self.clock_ns);
            self.end_slot(slot, ts, EndReason::Replaced, sink);
        }
        self.insert(info, sink);
    }

    /// Inserts a new connection, evicting the least recently used one first if
    /// the table is full. With `max_connections == 0` nothing is tracked.
    fn insert(&mut self, info: ConnInfo, sink: &mut impl TrackerSink) -> Option<u32> {
        while self.len() >= self.limits.max_connections {
            let Some(victim) = self.lru.back() else {
                break;
            };
            self.end_slot(victim, self.clock_ns, EndReason::Capacity, sink);
        }
        if self.len() >= self.limits.max_connections {
            sink.tracker_event(TrackerEvent::EvictedCapacity);
            return None;
        }
        let last_ns = if info.opened_ns == 0 {
            self.clock_ns
        } else {
            info.opened_ns
        };
        let key = info.key;
        let midway = info.joined_midway;
        let conn = Conn {
            session: Session::new(info),
            streams: [StreamPos::new(midway); 2],
            last_ns,
            buffered: 0,
            foreign: (0, 0),
        };
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(entry) = self.slots.get_mut(s as usize) {
                    *entry = Some(conn);
                }
                s
            }
            None => {
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.insert(key, slot);
        self.lru.push_front(slot);
        Some(slot)
    }

    /// Finds the slot for an event of generation `conn_id`: the tracked one,
    /// or a lazily created one when the key is unknown. None: stale, dropped.
    fn slot_for_data(
        &mut self,
        key: ConnKey,
        conn_id: u64,
        ts_ns: u64,
        sink: &mut impl TrackerSink,
    ) -> Option<u32> {
        match self.by_key.get(&key).copied() {
            Some(slot) => {
                let c = self.conn_mut(slot)?;
                if c.session.info.conn_id == conn_id {
                    c.foreign = (0, 0);
                    c.last_ns = c.last_ns.max(ts_ns);
                    self.lru.touch(slot);
                    return Some(slot);
                }
                sink.tracker_event(TrackerEvent::StaleGeneration);
                if c.foreign.0 == conn_id {
                    c.foreign.1 += 1;
                } else {
                    c.foreign = (conn_id, 1);
                }
                if c.foreign.1 < ADOPT_AFTER_STALE {
                    return None;
                }
                // The tracked generation's close and this one's open were lost.
                self.end_slot(slot, ts_ns, EndReason::Replaced, sink);
                sink.tracker_event(TrackerEvent::DataForUnknownConnection);
                self.insert(ConnInfo::unknown(key, conn_id, 0), sink)
            }
            None => {
                sink.tracker_event(TrackerEvent::DataForUnknownConnection);
                self.insert(ConnInfo::unknown(key, conn_id, 0), sink)
            }
        }
    }

    /// Bytes of `dir` at `stream_offset`.
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is one field of the probe record, named at the call"
    )]
    pub fn data(
        &mut self,
        key: ConnKey,
        conn_id: ConnId,
        dir: Direction,
        stream_offset: StreamOffset,
        ts_ns: MonotonicNs,
        bytes: &[u8],
        sink: &mut impl TrackerSink,
    ) {
        let (conn_id, stream_offset, ts_ns) = (conn_id.0, stream_offset.0, ts_ns.0);
        self.tick(ts_ns);
        let Some(slot) = self.slot_for_data(key, conn_id, ts_ns, sink) else {
            return;
        };
        let limits = &self.limits;
        let Some(Some(c)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if c.session.is_muted() {
            // Cheap path: position kept for tail accounting, bytes only counted.
            let a = c.streams[dir.index()].accept(stream_offset, bytes);
            if a.gap > 0 {
                sink.tracker_event(TrackerEvent::GapBytes { dir, bytes: a.gap });
            }
            if !a.fresh.is_empty() {
                sink.tracker_event(TrackerEvent::UndetectedBytes(a.fresh.len() as u64));
            }
            return;
        }
        let a = c.streams[dir.index()].accept(stream_offset, bytes);
        if a.gap > 0 {
            sink.tracker_event(TrackerEvent::GapBytes { dir, bytes: a.gap });
            c.session.gap(dir, a.gap, ts_ns, sink);
        }
        if a.overlap > 0 {
            sink.tracker_event(TrackerEvent::OverlapBytes(a.overlap));
        }
        let end = c.streams[dir.index()].expected;
        c.session.data(dir, ts_ns, a.fresh, end, limits, sink);
        self.account(slot, sink);
    }

    /// `len` bytes of `dir` at `stream_offset` were never delivered.
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is one field of the probe record, named at the call"
    )]
    pub fn missing(
        &mut self,
        key: ConnKey,
        conn_id: ConnId,
        dir: Direction,
        stream_offset: StreamOffset,
        len: u64,
        ts_ns: MonotonicNs,
        sink: &mut impl TrackerSink,
    ) {
        self.not_delivered(key, conn_id, dir, stream_offset, len, ts_ns, false, sink);
    }

    /// `len` bytes of `dir` at `stream_offset` were not copied because they
    /// were body the parser only counts ([`TrackerSink::body_ahead`]): a gap
    /// to the parser like any other, counted as skipped, not lost.
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is one field of the probe record, named at the call"
    )]
    pub fn skipped_body(
        &mut self,
        key: ConnKey,
        conn_id: ConnId,
        dir: Direction,
        stream_offset: StreamOffset,
        len: u64,
        ts_ns: MonotonicNs,
        sink: &mut impl TrackerSink,
    ) {
        self.not_delivered(key, conn_id, dir, stream_offset, len, ts_ns, true, sink);
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the fields of `missing` and `skipped_body`, and which of the two"
    )]
    fn not_delivered(
        &mut self,
        key: ConnKey,
        conn_id: ConnId,
        dir: Direction,
        stream_offset: StreamOffset,
        len: u64,
        ts_ns: MonotonicNs,
        skipped: bool,
        sink: &mut impl TrackerSink,
    ) {
        let (conn_id, stream_offset, ts_ns) = (conn_id.0, stream_offset.0, ts_ns.0);
        self.tick(ts_ns);
        let Some(slot) = self.slot_for_data(key, conn_id, ts_ns, sink) else {
            return;
        };
        let Some(Some(c)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let stream = &mut c.streams[dir.index()];
        // Bytes missing before a skipped call were lost, not skipped.
        let hole = if stream.started {
            stream_offset.saturating_sub(stream.expected)
        } else {
            0
        };
        let lost = stream.skip(stream_offset, len);
        if lost > 0 {
            let (gap, skip) = if skipped {
                (hole.min(lost), lost - hole.min(lost))
            } else {
                (lost, 0)
            };
            if gap > 0 {
                sink.tracker_event(TrackerEvent::GapBytes { dir, bytes: gap });
            }
            if skip > 0 {
                sink.tracker_event(TrackerEvent::SkippedBodyBytes { dir, bytes: skip });
            }
            c.session.gap(dir, lost, ts_ns, sink);
        }
        self.account(slot, sink);
    }

    /// The socket was closed after `egress_total` / `ingress_total` bytes
    /// (each direction's final stream offset).
    pub fn close(
        &mut self,
        key: ConnKey,
        conn_id: ConnId,
        egress_total: StreamOffset,
        ingress_total: StreamOffset,
        ts_ns: MonotonicNs,
        sink: &mut impl TrackerSink,
    ) {
        let (conn_id, ts_ns) = (conn_id.0, ts_ns.0);
        let (egress_total, ingress_total) = (egress_total.0, ingress_total.0);
        self.tick(ts_ns);
        let Some(&slot) = self.by_key.get(&key) else {
            sink.tracker_event(TrackerEvent::CloseForUnknownConnection);
            return;
        };
        let Some(c) = self.conn_mut(slot) else { return };
        if c.session.info.conn_id != conn_id {
            sink.tracker_event(TrackerEvent::StaleGeneration);
            return;
        }
        let mut tail = 0u64;
        for (dir, total) in [
            (Direction::Egress, egress_total),
            (Direction::Ingress, ingress_total),
        ] {
            let lost = c.streams[dir.index()].finish(total);
            // A muted connection's bytes were left uncopied on purpose, and the
            // probes counted them (muted or TLS ciphertext): not a loss.
            if lost > 0 && !c.session.is_muted() {
                // Counted once, as a missing tail (not also as gap bytes).
                tail = tail.saturating_add(lost);
                c.session.gap(dir, lost, ts_ns, sink);
            }
        }
        if tail > 0 {
            sink.tracker_event(TrackerEvent::ClosedWithMissingTail { bytes: tail });
        }
        self.end_slot(slot, ts_ns, EndReason::Closed, sink);
    }

    /// Forgets a connection without ending it: nothing it was parsing becomes
    /// an exchange (no span). For connections found to be the agent's own
    /// traffic after they were opened. False when `key` does not hold that
    /// generation.
    pub fn discard(&mut self, key: ConnKey, conn_id: ConnId) -> bool {
        let conn_id = conn_id.0;
        let Some(&slot) = self.by_key.get(&key) else {
            return false;
        };
        if self.conn(slot).map(|c| c.session.info.conn_id) != Some(conn_id) {
            return false;
        }
        self.take_slot(slot).is_some()
    }

    /// The process exited: its sockets are gone without close records.
    pub fn close_process(&mut self, tgid: u32, ts_ns: u64, sink: &mut impl TrackerSink) {
        self.tick(ts_ns);
        for key in self.by_key.keys_of(tgid) {
            if let Some(&slot) = self.by_key.get(&key) {
                self.end_slot(slot, ts_ns, EndReason::ProcessExit, sink);
            }
        }
    }

    /// Ends connections without any event for `idle_timeout_ns` before `now_ns`.
    /// Walks from the least recently used and stops at the first active one, so
    /// it costs O(evicted + 1); call it about once a second.
    pub fn evict_idle(&mut self, now_ns: u64, sink: &mut impl TrackerSink) {
        self.tick(now_ns);
        let mut cur = self.lru.back();
        while let Some(slot) = cur {
            let next = self.lru.newer(slot);
            let Some(c) = self.conn(slot) else {
                cur = next;
                continue;
            };
            if now_ns.saturating_sub(c.last_ns) < self.limits.idle_timeout_ns {
                break;
            }
            self.end_slot(slot, now_ns, EndReason::Idle, sink);
            cur = next;
        }
    }

    /// Ends every connection (shutdown).
    pub fn flush_all(&mut self, ts_ns: u64, sink: &mut impl TrackerSink) {
        self.tick(ts_ns);
        while let Some(slot) = self.lru.back() {
            self.end_slot(slot, ts_ns, EndReason::Shutdown, sink);
        }
        // Anything not in the recency list (should be nothing).
        for slot in 0..self.slots.len() as u32 {
            if self.conn(slot).is_some() {
                self.end_slot(slot, ts_ns, EndReason::Shutdown, sink);
            }
        }
    }

    /// Re-reads the connection's buffered bytes after a call, then enforces the
    /// memory limit.
    fn account(&mut self, slot: u32, sink: &mut impl TrackerSink) {
        let Some(c) = self.conn_mut(slot) else { return };
        let now = c.session.buffered_bytes();
        let before = std::mem::replace(&mut c.buffered, now);
        if now != before {
            self.set_buffered(slot, before, now);
        }
        self.enforce_memory(sink);
    }

    fn set_buffered(&mut self, slot: u32, before: usize, now: usize) {
        if before > 0 {
            self.by_buffered.remove(&(before, slot));
        }
        if now > 0 {
            self.by_buffered.insert((now, slot));
        }
        self.buffered_total = self
            .buffered_total
            .saturating_sub(before)
            .saturating_add(now);
    }

    /// Evicts the connections holding the most bytes until under the limit.
    fn enforce_memory(&mut self, sink: &mut impl TrackerSink) {
        while self.buffered_total > self.limits.memory_limit_bytes {
            let Some(&(_, slot)) = self.by_buffered.last() else {
                // Nothing indexed yet the total is over: resynchronise.
                self.buffered_total = 0;
                break;
            };
            self.end_slot(slot, self.clock_ns, EndReason::Memory, sink);
        }
    }

    /// Ends the connection in `slot`: the parser reports what it still holds
    /// (pending requests end as ConnectionClosed), then it is forgotten.
    /// Removes a slot from every index; the connection is returned unended.
    fn take_slot(&mut self, slot: u32) -> Option<Conn> {
        let Some(c) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            self.lru.remove(slot);
            return None;
        };
        self.lru.remove(slot);
        self.free.push(slot);
        let key = c.session.info.key;
        if self.by_key.get(&key) == Some(&slot) {
            self.by_key.remove(&key);
        }
        if c.buffered > 0 {
            self.by_buffered.remove(&(c.buffered, slot));
            self.buffered_total = self.buffered_total.saturating_sub(c.buffered);
        }
        Some(c)
    }

    fn end_slot(&mut self, slot: u32, ts_ns: u64, reason: EndReason, sink: &mut impl TrackerSink) {
        let Some(mut c) = self.take_slot(slot) else {
            return;
        };
        let event = match reason {
            EndReason::Closed | EndReason::Replaced | EndReason::Shutdown => None,
            EndReason::ProcessExit => Some(TrackerEvent::ClosedByProcessExit),
            EndReason::Idle => Some(TrackerEvent::EvictedIdle),
            EndReason::Capacity => Some(TrackerEvent::EvictedCapacity),
            EndReason::Memory => Some(TrackerEvent::EvictedMemory),
        };
        if let Some(e) = event {
            sink.tracker_event(e);
        }
        c.session.end(ts_ns, sink);
    }
}

impl ConnectionTable {
    /// Checks the table's internal bookkeeping (indexes agree, the buffered
    /// total matches the parsers). For tests and fuzzing.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let live: Vec<(u32, &Conn)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i as u32, c)))
            .collect();
        if live.len() != self.by_key.len() || !self.by_key.consistent() {
            return Err(format!(
                "{} live slots, {} keys in map (consistent: {})",
                live.len(),
                self.by_key.len(),
                self.by_key.consistent()
            ));
        }
        let mut total = 0usize;
        for (slot, c) in &live {
            let key = c.session.info.key;
            if self.by_key.get(&key) != Some(slot) {
                return Err(format!("slot {slot} not indexed under {key:?}"));
            }
            let b = c.session.buffered_bytes();
            if b != c.buffered {
                return Err(format!("slot {slot}: buffered {b} recorded {}", c.buffered));
            }
            if b > 0 && !self.by_buffered.contains(&(b, *slot)) {
                return Err(format!("slot {slot} missing from the memory index"));
            }
            total += b;
        }
        if total != self.buffered_total || self.by_buffered.len() > live.len() {
            return Err(format!(
                "buffered total {} but sum {total}",
                self.buffered_total
            ));
        }
        let mut n = 0;
        let mut cur = self.lru.back();
        while let Some(slot) = cur {
            n += 1;
            if n > live.len() || self.conn(slot).is_none() {
                return Err(format!("recency list reaches slot {slot} (dead or cycle)"));
            }
            cur = self.lru.newer(slot);
        }
        if n != live.len() {
            return Err(format!(
                "recency list has {n} of {} connections",
                live.len()
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for ConnectionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTable")
            .field("connections", &self.len())
            .field("buffered_bytes", &self.buffered_total)
            .finish_non_exhaustive()
    }
}
