//! Which sockets have a TLS twin open, and under which conn_id.
//!
//! Looked up on every TLS plaintext record (a hash lookup), and emptied of a
//! process's sockets when it exits: an ordered index of the keys makes that a
//! range, O(log n + the process's own twins), where a `retain` over the map
//! cost every exit O(all TLS connections on the host).

use conn_tracker::{ConnId, ConnKey, FastMap};
use std::collections::BTreeSet;

#[derive(Default)]
pub(crate) struct TlsTwins {
    by_socket: FastMap<ConnKey, ConnId>,
    /// The same keys, ordered by (tgid, fd).
    ordered: BTreeSet<ConnKey>,
}

impl TlsTwins {
    /// The conn_id of the twin open for socket `key`.
    pub(crate) fn get(&self, key: ConnKey) -> Option<ConnId> {
        self.by_socket.get(&key).copied()
    }

    /// Records `twin` as socket `key`'s twin (replacing an older one).
    pub(crate) fn insert(&mut self, key: ConnKey, twin: ConnId) {
        if self.by_socket.insert(key, twin).is_none() {
            self.ordered.insert(key);
        }
    }

    /// Forgets socket `key`'s twin, and says which it was.
    pub(crate) fn remove(&mut self, key: ConnKey) -> Option<ConnId> {
        let twin = self.by_socket.remove(&key)?;
        self.ordered.remove(&key);
        Some(twin)
    }

    /// Forgets every twin of process `tgid`.
    pub(crate) fn process_exited(&mut self, tgid: u32) {
        let first = ConnKey { tgid, fd: i32::MIN };
        // Split twice: what is left in `ordered` is the other processes'.
        let mut from_tgid = self.ordered.split_off(&first);
        let after = match tgid.checked_add(1) {
            Some(next) => from_tgid.split_off(&ConnKey {
                tgid: next,
                fd: i32::MIN,
            }),
            None => BTreeSet::new(),
        };
        for key in &from_tgid {
            self.by_socket.remove(key);
        }
        self.ordered.extend(after);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        debug_assert_eq!(self.by_socket.len(), self.ordered.len());
        self.by_socket.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tgid: u32, fd: i32) -> ConnKey {
        ConnKey { tgid, fd }
    }

    #[test]
    fn an_exit_forgets_its_own_twins_and_no_neighbours() {
        let mut t = TlsTwins::default();
        for (tgid, fd) in [
            (9, 3),
            (10, 0),
            (10, 7),
            (10, i32::MAX >> 2),
            (11, 4),
            (u32::MAX, 5),
        ] {
            t.insert(key(tgid, fd), ConnId(u64::from(tgid) << 8 | fd as u64));
        }
        t.process_exited(10);
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(key(10, 7)), None);
        assert_eq!(t.get(key(9, 3)), Some(ConnId(9 << 8 | 3)));
        assert_eq!(t.get(key(11, 4)), Some(ConnId(11 << 8 | 4)));
        // The highest pid has no "next" to split at.
        t.process_exited(u32::MAX);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(key(u32::MAX, 5)), None);
        // An exit of a process with none changes nothing.
        t.process_exited(12);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_replaced_twin_is_one_entry_and_remove_names_it() {
        let mut t = TlsTwins::default();
        t.insert(key(1, 3), ConnId(1));
        t.insert(key(1, 3), ConnId(2));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(key(1, 3)), Some(ConnId(2)));
        assert_eq!(t.remove(key(1, 3)), None);
        assert_eq!(t.len(), 0);
    }
}
