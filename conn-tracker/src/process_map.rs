//! A hash map keyed by a process's socket that can also hand over all of one
//! process's entries when it exits.
//!
//! Beside the map, each process has a list of its keys, and each entry knows
//! its place in that list: insert and remove are O(1) (a few hash probes and
//! a swap), an exit is O(the process's own entries). An ordered tree gave
//! the same exits at O(log n) per insert and remove, ~400 instructions each,
//! paid at every open and close by every index of sockets the agent keeps.

use crate::{ConnKey, FastMap};
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// A key that belongs to one process.
pub trait OfProcess: Copy + Eq + Hash + Ord {
    fn tgid(&self) -> u32;
}

impl OfProcess for ConnKey {
    fn tgid(&self) -> u32 {
        self.tgid
    }
}

/// A socket and its generation (`conn_id`).
impl OfProcess for (ConnKey, u64) {
    fn tgid(&self) -> u32 {
        self.0.tgid
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct ProcessMap<K, V> {
    /// Each value with its index in its process's list.
    entries: FastMap<K, (V, u32)>,
    by_process: FastMap<u32, Vec<K>>,
}

impl<K, V> Default for ProcessMap<K, V> {
    fn default() -> Self {
        ProcessMap {
            entries: FastMap::default(),
            by_process: FastMap::default(),
        }
    }
}

impl<K: OfProcess, V> ProcessMap<K, V> {
    /// Inserts `value` under `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.entries.entry(key) {
            Entry::Occupied(mut e) => Some(std::mem::replace(&mut e.get_mut().0, value)),
            Entry::Vacant(e) => {
                let keys = self.by_process.entry(key.tgid()).or_default();
                // A process holds far fewer than 2^32 sockets (fds are i32).
                e.insert((value, keys.len() as u32));
                keys.push(key);
                None
            }
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, at) = self.entries.remove(key)?;
        if let Entry::Occupied(mut list) = self.by_process.entry(key.tgid()) {
            let keys = list.get_mut();
            let at = at as usize;
            debug_assert!(keys.get(at) == Some(key), "a key's place in its list");
            if at < keys.len() {
                keys.swap_remove(at);
                // The last key moved into the hole: tell it its new place.
                if let Some(moved) = keys.get(at) {
                    if let Some(e) = self.entries.get_mut(moved) {
                        e.1 = at as u32;
                    }
                }
            }
            if keys.is_empty() {
                list.remove();
            }
        }
        Some(value)
    }

    /// Process `tgid`'s keys, in order.
    pub fn keys_of(&self, tgid: u32) -> Vec<K> {
        let mut keys = self.by_process.get(&tgid).cloned().unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// Removes process `tgid`'s entries and returns them, in key order.
    pub fn remove_process(&mut self, tgid: u32) -> Vec<(K, V)> {
        let mut keys = self.by_process.remove(&tgid).unwrap_or_default();
        keys.sort_unstable();
        keys.into_iter()
            .filter_map(|k| self.entries.remove(&k).map(|(v, _)| (k, v)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate heap held (both tables and the lists).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * (std::mem::size_of::<(K, (V, u32))>() + 1)
            + self.by_process.capacity() * (std::mem::size_of::<(u32, Vec<K>)>() + 1)
            + self.entries.len() * std::mem::size_of::<K>()
    }

    /// Every entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (v, _))| (k, v))
    }

    /// Checks that the lists and the map agree (tests and invariant checks).
    pub fn consistent(&self) -> bool {
        let listed: usize = self.by_process.values().map(Vec::len).sum();
        listed == self.entries.len()
            && self.by_process.iter().all(|(&tgid, keys)| {
                !keys.is_empty()
                    && keys.iter().enumerate().all(|(i, k)| {
                        k.tgid() == tgid
                            && self.entries.get(k).is_some_and(|(_, at)| *at as usize == i)
                    })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(tgid: u32, fd: i32) -> ConnKey {
        ConnKey { tgid, fd }
    }

    #[test]
    fn an_exit_takes_its_own_entries_in_order_and_no_neighbours() {
        let mut m = ProcessMap::default();
        for (tgid, fd) in [(10, 7), (9, 3), (10, 0), (11, 4), (10, 5)] {
            assert_eq!(m.insert(key(tgid, fd), fd * 10), None);
        }
        assert_eq!(m.keys_of(10), vec![key(10, 0), key(10, 5), key(10, 7)]);
        assert_eq!(
            m.remove_process(10),
            vec![(key(10, 0), 0), (key(10, 5), 50), (key(10, 7), 70)]
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&key(9, 3)), Some(&30));
        assert!(m.remove_process(10).is_empty());
        assert!(m.consistent());
    }

    #[test]
    fn a_replaced_value_keeps_one_entry() {
        let mut m = ProcessMap::default();
        m.insert((key(1, 3), 7u64), "a");
        assert_eq!(m.insert((key(1, 3), 7u64), "b"), Some("a"));
        m.insert((key(1, 3), 8u64), "c");
        assert_eq!(m.len(), 2);
        assert_eq!(m.keys_of(1), vec![(key(1, 3), 7), (key(1, 3), 8)]);
        assert!(m.consistent());
    }

    proptest! {
        /// Any sequence of inserts, removes and exits leaves the same entries
        /// as an ordered map given the same sequence, and the lists agree.
        #[test]
        fn behaves_as_an_ordered_map(ops in prop::collection::vec((0u8..4, 0u32..4, 0i32..8), 0..300)) {
            let mut m = ProcessMap::default();
            let mut model = BTreeMap::new();
            for (i, (op, tgid, fd)) in ops.into_iter().enumerate() {
                let k = key(tgid, fd);
                match op {
                    0 | 1 => prop_assert_eq!(m.insert(k, i), model.insert(k, i)),
                    2 => prop_assert_eq!(m.remove(&k), model.remove(&k)),
                    _ => {
                        let theirs: Vec<(ConnKey, usize)> = model
                            .range(key(tgid, i32::MIN)..=key(tgid, i32::MAX))
                            .map(|(k, v)| (*k, *v))
                            .collect();
                        for (k, _) in &theirs {
                            model.remove(k);
                        }
                        prop_assert_eq!(m.remove_process(tgid), theirs);
                    }
                }
                prop_assert!(m.consistent());
                prop_assert_eq!(m.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(m.get(k), Some(v));
            }
        }
    }
}
