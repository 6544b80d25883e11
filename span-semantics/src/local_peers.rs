//! Which socket on this host is the other end of a connection: every open
//! socket by its (local, remote) address pair, each process's sockets (so an
//! exiting process finds its own without a scan), and a grace period during
//! which a closed socket or an exited process still names the peer of spans
//! built just after it (a server often closes first, then the client reads the
//! response).
//!
//! It only indexes what the pipeline reports (opens, closes, exits); it does
//! not name anyone (see `peer_naming`) or read anything from the host.

use conn_tracker::{ConnKey, Endpoint, FastMap, MonotonicNs, ProcessMap};
use self_metrics::{Counter, Registry};
use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use crate::process_table::ProcessTable;

/// How long a closed connection and an exited process still name the peer of
/// spans built after them (ns, on the records' monotonic clock).
pub const PEER_GRACE_NS: u64 = 5_000_000_000;

/// Most closed sockets kept for their grace period (~150 bytes each with
/// their index entry). A host closing connections faster than this in
/// [`PEER_GRACE_NS`] (3,300 a second) shortens the grace of the oldest, counted.
pub const MAX_ENDED_SOCKETS: usize = 16_384;
/// Most exited processes kept for their grace period; beyond it, as above.
pub const MAX_ENDED_PROCESSES: usize = 4_096;

/// A connection's (local, remote) addresses, from the observed process's side.
pub type AddressPair = (Endpoint, Endpoint);

/// The local sockets, indexed for peer naming; see the module docs.
#[derive(Default)]
pub struct LocalPeers {
    /// Sockets by (local, remote), to name a peer that is a process here.
    by_pair: FastMap<AddressPair, ConnKey>,
    /// The pair of each open socket, also by process, so that a process exit
    /// finds its own sockets and a close costs O(1) whatever the number of
    /// sockets the process holds.
    pair_of: ProcessMap<ConnKey, AddressPair>,
    /// Pairs that ended, kept for [`PEER_GRACE_NS`]: (end ts, pair, socket).
    ended_pairs: VecDeque<(u64, AddressPair, ConnKey)>,
    /// Processes that exited, kept for [`PEER_GRACE_NS`]: (exit ts, pid,
    /// resource id, which tells a reused pid apart).
    ended_processes: VecDeque<(u64, u32, u64)>,
    /// Ended sockets and processes forgotten early, the grace lists full.
    evicted_sockets: Counter,
    evicted_processes: Counter,
}

impl LocalPeers {
    pub fn new() -> Self {
        Self::default()
    }

    /// With its counters registered in `registry`.
    pub fn registered(registry: &Registry) -> Self {
        let c = |kind: &str| {
            registry.counter(
                "wirespan_peer_grace_evictions_total",
                "Closed sockets and exited processes forgotten before the end of \
                 their 5 s grace period because the grace list was full: spans \
                 built after that no longer name them as peers.",
                &[("kind", kind)],
            )
        };
        Self {
            evicted_sockets: c("socket"),
            evicted_processes: c("process"),
            ..Self::default()
        }
    }

    /// Keeps `pair` naming `key` for the grace period, the oldest ended
    /// socket forgotten first if the list is full.
    fn push_ended_socket(&mut self, ts: u64, pair: AddressPair, key: ConnKey) {
        if self.ended_pairs.len() >= MAX_ENDED_SOCKETS {
            if let Some((_, old_pair, old_key)) = self.ended_pairs.pop_front() {
                self.forget_pair(old_pair, old_key);
                self.evicted_sockets.inc();
            }
        }
        self.ended_pairs.push_back((ts, pair, key));
    }

    /// `pair` no longer names `key` (unless it names a newer socket).
    fn forget_pair(&mut self, pair: AddressPair, key: ConnKey) {
        // One probe of the table, not a lookup and then a removal.
        if let Entry::Occupied(e) = self.by_pair.entry(pair) {
            if *e.get() == key {
                e.remove();
            }
        }
    }

    /// Socket `key` was opened from `local` to `remote`.
    pub fn opened(&mut self, key: ConnKey, local: Endpoint, remote: Endpoint) {
        self.by_pair.insert((local, remote), key);
        self.pair_of.insert(key, (local, remote));
    }

    /// The local socket whose own (local, remote) pair is `(local, remote)`.
    #[inline]
    pub fn socket_at(&self, local: Endpoint, remote: Endpoint) -> Option<ConnKey> {
        self.by_pair.get(&(local, remote)).copied()
    }

    /// The local socket at the other end of a connection from `local` to
    /// `remote`, if that end is on this host (open, or ended within the
    /// grace period).
    #[inline]
    pub fn other_end(&self, local: Endpoint, remote: Endpoint) -> Option<ConnKey> {
        self.socket_at(remote, local)
    }

    /// Socket `key` closed at `ts`. `tracked_pair`: its addresses, when
    /// the connection table still held this generation of it; then it keeps
    /// naming its peer for the grace period.
    pub fn closed(&mut self, key: ConnKey, tracked_pair: Option<AddressPair>, ts: MonotonicNs) {
        let open_pair = self.pair_of.remove(&key);
        match (tracked_pair, open_pair) {
            (Some(pair), _) => self.push_ended_socket(ts.0, pair, key),
            // Not this generation: its pair names no one from now on (it
            // would otherwise stay in the index until the pair is reused).
            (None, Some(pair)) => self.forget_pair(pair, key),
            (None, None) => {}
        }
    }

    /// Socket `key` is forgotten at once, with no grace period (the agent's
    /// own traffic).
    pub fn discarded(&mut self, key: ConnKey) {
        if let Some(pair) = self.pair_of.remove(&key) {
            self.forget_pair(pair, key);
        }
    }

    /// Process `tgid` exited at `ts`: its sockets keep naming their peers
    /// for the grace period. Returns the fds it had open, in fd order.
    pub fn process_exited(&mut self, tgid: u32, ts: MonotonicNs) -> Vec<i32> {
        let mine = self.pair_of.remove_process(tgid);
        for &(key, pair) in &mine {
            if self.by_pair.get(&pair) == Some(&key) {
                self.push_ended_socket(ts.0, pair, key);
            }
        }
        mine.into_iter().map(|(k, _)| k.fd).collect()
    }

    /// Process `pid` (identity `resource_id`) exited at `ts`: its identity
    /// is dropped from `processes` when the grace period ends (or when
    /// [`MAX_ENDED_PROCESSES`] newer ones have ended since).
    pub fn process_ended(
        &mut self,
        ts: MonotonicNs,
        pid: u32,
        resource_id: u64,
        processes: &mut ProcessTable,
    ) {
        if self.ended_processes.len() >= MAX_ENDED_PROCESSES {
            if let Some((_, old_pid, old_id)) = self.ended_processes.pop_front() {
                forget_process(processes, old_pid, old_id);
                self.evicted_processes.inc();
            }
        }
        self.ended_processes.push_back((ts.0, pid, resource_id));
    }

    /// Forgets the sockets and processes whose grace period is over at
    /// `now`.
    pub fn expire(&mut self, now: MonotonicNs, processes: &mut ProcessTable) {
        let now_ns = now.0;
        while let Some((ts, pair, key)) = self.ended_pairs.front().copied() {
            if ts.saturating_add(PEER_GRACE_NS) > now_ns {
                break;
            }
            self.ended_pairs.pop_front();
            self.forget_pair(pair, key);
        }
        while let Some((ts, pid, id)) = self.ended_processes.front().copied() {
            if ts.saturating_add(PEER_GRACE_NS) > now_ns {
                break;
            }
            self.ended_processes.pop_front();
            forget_process(processes, pid, id);
        }
    }
}

/// Drops process `pid`'s identity, unless the pid was reused by a new
/// process (another `resource_id`) meanwhile.
fn forget_process(processes: &mut ProcessTable, pid: u32, resource_id: u64) {
    if processes
        .get(pid)
        .is_some_and(|p| p.resource.id == resource_id)
    {
        processes.on_exit(pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port)
    }

    #[test]
    fn a_closed_socket_names_its_peer_for_the_grace_period_only() {
        let mut peers = LocalPeers::new();
        let mut processes = ProcessTable::new(Vec::new(), "host".into()).without_proc();
        let server = ConnKey { tgid: 2, fd: 7 };
        peers.opened(server, ep(2, 80), ep(1, 5000));
        // The client's view: local 1:5000, remote 2:80.
        assert_eq!(peers.other_end(ep(1, 5000), ep(2, 80)), Some(server));
        peers.closed(server, Some((ep(2, 80), ep(1, 5000))), MonotonicNs(100));
        peers.expire(MonotonicNs(100 + PEER_GRACE_NS - 1), &mut processes);
        assert_eq!(peers.other_end(ep(1, 5000), ep(2, 80)), Some(server));
        peers.expire(MonotonicNs(100 + PEER_GRACE_NS), &mut processes);
        assert_eq!(peers.other_end(ep(1, 5000), ep(2, 80)), None);
    }

    #[test]
    fn an_exiting_process_gets_its_open_fds_once() {
        let mut peers = LocalPeers::new();
        peers.opened(ConnKey { tgid: 9, fd: 3 }, ep(1, 1), ep(2, 2));
        peers.opened(ConnKey { tgid: 9, fd: 4 }, ep(1, 3), ep(2, 2));
        peers.opened(ConnKey { tgid: 9, fd: 3 }, ep(1, 1), ep(2, 2));
        peers.opened(ConnKey { tgid: 9, fd: 1 }, ep(1, 4), ep(2, 2));
        // The pids on either side keep theirs.
        peers.opened(
            ConnKey {
                tgid: 8,
                fd: i32::MAX,
            },
            ep(1, 5),
            ep(2, 2),
        );
        peers.opened(ConnKey { tgid: 10, fd: 0 }, ep(1, 6), ep(2, 2));
        peers.closed(ConnKey { tgid: 9, fd: 4 }, None, MonotonicNs(1));
        assert_eq!(peers.process_exited(9, MonotonicNs(2)), vec![1, 3]);
        assert!(peers.process_exited(9, MonotonicNs(3)).is_empty());
        assert_eq!(peers.process_exited(8, MonotonicNs(3)), vec![i32::MAX]);
        assert_eq!(peers.process_exited(10, MonotonicNs(3)), vec![0]);
        // Still named during the grace period.
        assert!(peers.socket_at(ep(1, 1), ep(2, 2)).is_some());
    }

    #[test]
    fn the_grace_lists_are_bounded_and_count_what_they_cut_short() {
        let registry = Registry::new();
        let mut peers = LocalPeers::registered(&registry);
        let mut processes = ProcessTable::new(Vec::new(), "host".into()).without_proc();
        let extra = 10;
        let n = MAX_ENDED_SOCKETS + extra;
        let key = |i: usize| ConnKey {
            tgid: 1 + (i / 1000) as u32,
            fd: (i % 1000) as i32,
        };
        let pair = |i: usize| {
            (
                ep(1, 1 + (i % 60_000) as u16),
                ep(2, 1 + (i / 60_000) as u16),
            )
        };
        for i in 0..n {
            peers.opened(key(i), pair(i).0, pair(i).1);
            peers.closed(key(i), Some(pair(i)), MonotonicNs(i as u64));
        }
        assert_eq!(peers.ended_pairs.len(), MAX_ENDED_SOCKETS);
        assert_eq!(peers.by_pair.len(), MAX_ENDED_SOCKETS);
        assert_eq!(peers.evicted_sockets.get(), extra as u64);
        // The oldest were forgotten early; the rest still name their peer.
        assert_eq!(peers.socket_at(pair(extra - 1).0, pair(extra - 1).1), None);
        assert_eq!(
            peers.socket_at(pair(extra).0, pair(extra).1),
            Some(key(extra))
        );
        assert_eq!(
            peers.socket_at(pair(n - 1).0, pair(n - 1).1),
            Some(key(n - 1))
        );

        for pid in 0..(MAX_ENDED_PROCESSES + extra) as u32 {
            let id = processes
                .on_exec(crate::process_table::ProcessFacts {
                    pid: 10_000 + pid,
                    exe_path: "/usr/bin/x".into(),
                    ..Default::default()
                })
                .resource
                .id;
            peers.process_ended(MonotonicNs(1), 10_000 + pid, id, &mut processes);
        }
        assert_eq!(peers.ended_processes.len(), MAX_ENDED_PROCESSES);
        assert_eq!(peers.evicted_processes.get(), extra as u64);
        assert!(
            processes.get(10_000).is_none(),
            "the oldest exited process is forgotten"
        );
        assert!(processes.get(10_000 + extra as u32).is_some());
        let text = registry.render();
        assert!(
            text.contains(&format!(
                "wirespan_peer_grace_evictions_total{{kind=\"socket\"}} {extra}"
            )),
            "{text}"
        );
    }

    #[test]
    fn a_socket_closed_in_another_generation_names_no_peer() {
        let mut peers = LocalPeers::new();
        let key = ConnKey { tgid: 3, fd: 4 };
        peers.opened(key, ep(1, 1), ep(2, 2));
        peers.closed(key, None, MonotonicNs(1));
        assert_eq!(peers.socket_at(ep(1, 1), ep(2, 2)), None);
        assert!(peers.ended_pairs.is_empty());
    }

    #[test]
    fn a_discarded_socket_names_no_peer_at_once() {
        let mut peers = LocalPeers::new();
        let key = ConnKey { tgid: 5, fd: 8 };
        peers.opened(key, ep(1, 1), ep(1, 9464));
        peers.discarded(key);
        assert_eq!(peers.socket_at(ep(1, 1), ep(1, 9464)), None);
        assert!(peers.process_exited(5, MonotonicNs(1)).is_empty());
    }
}
