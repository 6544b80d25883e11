//! In-process causality: an outbound request that a thread sends while it
//! serves an inbound request becomes a child of that request's server span.
//!
//! The heuristic (`traces.in_process_parents`) fits thread-per-request
//! servers (a worker thread reads the request, calls other services, writes
//! the response) and proxies whose event loop forwards a request as soon as it
//! has read it. A thread "serves" a request (an HTTP/1 request, or an HTTP/2
//! stream) from the data event that completes its head until it writes
//! anything back on that connection, the connection closes, or the process
//! exits. A thread that has read a second request before answering the first
//! is ambiguous: its outbound requests get no parent (counted) rather than a
//! guessed one.
//!
//! What it cannot see: work handed to another thread (thread pools fed by an
//! I/O thread, as in most gRPC servers; async runtimes that move tasks between
//! threads), and on HTTP/2 any write on the connection (a WINDOW_UPDATE, a
//! PING answer) ends the serving of its stream, so later calls are not
//! linked. What it can get wrong: an event loop that sends an unrelated
//! request (a timer, a health check) while exactly one inbound request is
//! open: that request becomes its parent.
//!
//! Ids are decided when the child starts, because the child's span is built
//! before the parent's (the parent ends last): the parent's ids are fixed
//! then and kept until its own span is built.

use std::collections::VecDeque;
use std::hash::Hash;

use conn_tracker::{ConnId, FastMap};
use self_metrics::{Counter, Registry};

use crate::span_builder::{FixedIds, LinkIds, TraceParent};

/// Threads that can serve a request at once before new ones are ignored (counted).
const MAX_SERVING_THREADS: usize = 65_536;
/// Requests whose ids were fixed ahead of their span, per kind, before the
/// oldest is forgotten (counted).
const MAX_FIXED_REQUESTS: usize = 16_384;

/// One inbound request being served by a thread.
#[derive(Debug)]
pub struct Serving {
    tgid: u32,
    conn_id: u64,
    ordinal: u64,
    /// The inbound request's traceparent and same-host link ids, to decide its
    /// ids the same way its span would.
    pub parent: Option<TraceParent>,
    pub link: Option<LinkIds>,
    /// Decided when the first child starts.
    pub ids: Option<FixedIds>,
    /// The thread read another request before answering this one.
    ambiguous: bool,
}

impl Serving {
    pub fn conn_id(&self) -> ConnId {
        ConnId(self.conn_id)
    }
    pub fn ordinal(&self) -> u64 {
        self.ordinal
    }
}

/// A map with a bound: beyond it the oldest insertion is forgotten.
struct Bounded<K, V> {
    map: FastMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Copy + Eq + Hash, V> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            map: FastMap::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Inserts; returns true if a live entry was forgotten to make room.
    fn insert(&mut self, k: K, v: V) -> bool {
        let mut evicted = false;
        while self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                evicted |= self.map.remove(&old).is_some();
            }
        }
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
        }
        evicted
    }

    fn take(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k);
        // Keys are unique per run (conn_id generations), so the stale key left
        // in `order` can only ever remove nothing; trim the front while it is.
        while let Some(front) = self.order.front() {
            if self.map.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
        v
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

struct Metrics {
    linked: Counter,
    ambiguous: Counter,
    evicted: Counter,
    threads_full: Counter,
}

/// The state of the heuristic; see the module docs.
pub struct Causality {
    /// By thread id.
    serving: FastMap<u32, Serving>,
    /// Thread serving each server connection (by conn_id).
    serving_conn: FastMap<u64, u32>,
    /// Ids of inbound requests that children used, by (conn_id, ordinal): the
    /// server span must be built with exactly these.
    adopted: Bounded<(u64, u64), FixedIds>,
    /// Ids of outbound requests that have an in-process parent, by (conn_id, ordinal).
    outbound: Bounded<(u64, u64), FixedIds>,
    metrics: Metrics,
}

impl Causality {
    pub fn new(registry: &Registry) -> Self {
        let c = |result: &str| {
            registry.counter(
                "wirespan_in_process_parents_total",
                "Outbound requests sent while serving an inbound one (in-process \
                 causality), by result: linked as a child, or not linked because the \
                 thread was ambiguous, the per-thread table was full, or the ids were \
                 forgotten (evicted) before the span was built.",
                &[("result", result)],
            )
        };
        Self {
            serving: FastMap::default(),
            serving_conn: FastMap::default(),
            adopted: Bounded::new(MAX_FIXED_REQUESTS),
            outbound: Bounded::new(MAX_FIXED_REQUESTS),
            metrics: Metrics {
                linked: c("linked"),
                ambiguous: c("ambiguous"),
                evicted: c("evicted"),
                threads_full: c("threads_full"),
            },
        }
    }

    /// Thread `tid` of process `tgid` has read the head of request `ordinal`
    /// on server connection `conn_id`.
    pub fn server_request(
        &mut self,
        tid: u32,
        tgid: u32,
        conn_id: ConnId,
        ordinal: u64,
        parent: Option<TraceParent>,
        link: Option<LinkIds>,
    ) {
        let conn_id = conn_id.0;
        let ambiguous = match self.serving.get(&tid) {
            Some(s) if s.tgid == tgid => {
                // Still serving another request: this thread interleaves requests.
                if s.conn_id != conn_id {
                    self.serving_conn.remove(&s.conn_id);
                }
                true
            }
            _ => false,
        };
        if !self.serving.contains_key(&tid) && self.serving.len() >= MAX_SERVING_THREADS {
            self.metrics.threads_full.inc();
            return;
        }
        if let Some(old_tid) = self.serving_conn.insert(conn_id, tid) {
            if old_tid != tid {
                // Another thread read the previous request of this connection
                // and never answered on it: it no longer serves it.
                self.serving.remove(&old_tid);
            }
        }
        self.serving.insert(
            tid,
            Serving {
                tgid,
                conn_id,
                ordinal,
                parent,
                link,
                ids: None,
                ambiguous,
            },
        );
    }

    /// The request thread `tid` of `tgid` serves, when there is exactly one.
    /// Counts an ambiguous thread.
    pub fn serving_for(&mut self, tid: u32, tgid: u32) -> Option<&mut Serving> {
        let s = self.serving.get_mut(&tid).filter(|s| s.tgid == tgid)?;
        if s.ambiguous {
            self.metrics.ambiguous.inc();
            return None;
        }
        Some(s)
    }

    /// The server request of `s` gets `ids` (its first child started).
    pub fn adopt(&mut self, conn_id: ConnId, ordinal: u64, ids: FixedIds) {
        let conn_id = conn_id.0;
        if self.adopted.insert((conn_id, ordinal), ids) {
            self.metrics.evicted.inc();
        }
    }

    /// Outbound request `ordinal` on client connection `conn_id` is a child:
    /// its span is built with `ids`.
    pub fn link_outbound(&mut self, conn_id: ConnId, ordinal: u64, ids: FixedIds) {
        let conn_id = conn_id.0;
        self.metrics.linked.inc();
        if self.outbound.insert((conn_id, ordinal), ids) {
            self.metrics.evicted.inc();
        }
    }

    /// Something was written on connection `conn_id`: if it is a server
    /// connection being served, its response has begun.
    #[inline]
    pub fn wrote(&mut self, conn_id: ConnId) {
        if self.serving_conn.is_empty() {
            return;
        }
        self.stop_serving(conn_id.0);
    }

    fn stop_serving(&mut self, conn_id: u64) {
        if let Some(tid) = self.serving_conn.remove(&conn_id) {
            if self.serving.get(&tid).is_some_and(|s| s.conn_id == conn_id) {
                self.serving.remove(&tid);
            }
        }
    }

    /// The ids fixed for the span of request `ordinal` on `conn_id`, if any.
    /// `server`: the connection is the server end.
    pub fn take_ids(&mut self, server: bool, conn_id: ConnId, ordinal: u64) -> Option<FixedIds> {
        let conn_id = conn_id.0;
        if server {
            // Answered, perhaps by another thread than the reader.
            if let Some(tid) = self.serving_conn.get(&conn_id).copied() {
                if self
                    .serving
                    .get(&tid)
                    .is_some_and(|s| s.conn_id == conn_id && s.ordinal == ordinal)
                {
                    self.stop_serving(conn_id);
                }
            }
            if self.adopted.len() == 0 {
                return None;
            }
            self.adopted.take(&(conn_id, ordinal))
        } else {
            if self.outbound.len() == 0 {
                return None;
            }
            self.outbound.take(&(conn_id, ordinal))
        }
    }

    /// Connection `conn_id` closed.
    pub fn closed(&mut self, conn_id: ConnId) {
        if !self.serving_conn.is_empty() {
            self.stop_serving(conn_id.0);
        }
    }

    /// Process `tgid` exited.
    pub fn process_exited(&mut self, tgid: u32) {
        if self.serving.is_empty() {
            return;
        }
        let conns = &mut self.serving_conn;
        self.serving.retain(|_, s| {
            if s.tgid == tgid {
                conns.remove(&s.conn_id);
                false
            } else {
                true
            }
        });
    }

    /// Threads currently serving a request (for tests and bounds).
    pub fn serving_len(&self) -> usize {
        self.serving.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> FixedIds {
        FixedIds {
            trace_id: [n; 16],
            span_id: Some([n; 8]),
            parent_span_id: None,
            sampled: None,
        }
    }

    fn causality() -> (Causality, Registry) {
        let r = Registry::new();
        (Causality::new(&r), r)
    }

    #[test]
    fn a_thread_serves_from_the_request_head_until_it_writes_back() {
        let (mut c, _r) = causality();
        c.server_request(7, 100, ConnId(1), 1, None, None);
        assert!(c.serving_for(7, 100).is_some());
        // Another process's thread with a reused id is not this one.
        assert!(c.serving_for(7, 200).is_none());
        c.wrote(ConnId(2)); // some other connection
        assert!(c.serving_for(7, 100).is_some());
        c.wrote(ConnId(1)); // the response
        assert!(c.serving_for(7, 100).is_none());
        assert_eq!(c.serving_len(), 0);
    }

    #[test]
    fn two_open_requests_on_one_thread_give_no_parent_and_are_counted() {
        let (mut c, r) = causality();
        c.server_request(7, 100, ConnId(1), 1, None, None);
        c.server_request(7, 100, ConnId(2), 1, None, None);
        assert!(c.serving_for(7, 100).is_none());
        assert_eq!(
            r.value(
                "wirespan_in_process_parents_total",
                &[("result", "ambiguous")]
            ),
            Some(1)
        );
        // Answering the newer request ends the ambiguity (nothing is served).
        c.wrote(ConnId(2));
        assert!(c.serving_for(7, 100).is_none());
        assert_eq!(c.serving_len(), 0);
    }

    #[test]
    fn close_exit_and_answer_end_serving() {
        let (mut c, _r) = causality();
        c.server_request(7, 100, ConnId(1), 1, None, None);
        c.closed(ConnId(1));
        assert_eq!(c.serving_len(), 0);
        c.server_request(8, 100, ConnId(3), 1, None, None);
        c.server_request(9, 300, ConnId(4), 1, None, None);
        c.process_exited(100);
        assert_eq!(c.serving_len(), 1);
        assert!(c.serving_for(9, 300).is_some());
        // Built before anything was written back: serving ends too.
        assert_eq!(c.take_ids(true, ConnId(4), 1), None);
        assert_eq!(c.serving_len(), 0);
    }

    #[test]
    fn fixed_ids_are_taken_once_by_the_right_end() {
        let (mut c, _r) = causality();
        c.adopt(ConnId(1), 1, ids(1));
        c.link_outbound(ConnId(2), 5, ids(2));
        assert_eq!(c.take_ids(false, ConnId(1), 1), None);
        assert_eq!(c.take_ids(true, ConnId(1), 1), Some(ids(1)));
        assert_eq!(c.take_ids(true, ConnId(1), 1), None);
        assert_eq!(c.take_ids(false, ConnId(2), 5), Some(ids(2)));
    }

    #[test]
    fn fixed_ids_are_bounded_and_evictions_counted() {
        let (mut c, r) = causality();
        for i in 0..(MAX_FIXED_REQUESTS as u64 + 10) {
            c.link_outbound(ConnId(i), 1, ids(1));
        }
        assert_eq!(c.outbound.len(), MAX_FIXED_REQUESTS);
        assert!(c.outbound.order.len() <= MAX_FIXED_REQUESTS);
        assert_eq!(
            r.value(
                "wirespan_in_process_parents_total",
                &[("result", "evicted")]
            ),
            Some(10)
        );
        assert_eq!(c.take_ids(false, ConnId(0), 1), None);
        assert_eq!(c.take_ids(false, ConnId(10), 1), Some(ids(1)));
    }

    #[test]
    fn the_thread_table_is_bounded() {
        let (mut c, r) = causality();
        for tid in 0..(MAX_SERVING_THREADS as u32 + 3) {
            c.server_request(tid, 1, ConnId(u64::from(tid)), 1, None, None);
        }
        assert_eq!(c.serving_len(), MAX_SERVING_THREADS);
        assert_eq!(
            r.value(
                "wirespan_in_process_parents_total",
                &[("result", "threads_full")]
            ),
            Some(3)
        );
    }
}
