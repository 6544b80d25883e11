//! The HPACK dynamic table (RFC 7541 §2.3.2, §4), with one addition for
//! joining a connection midway: entries and table contents may be *unknown*.
//!
//! Positions are always exact: every insertion after we start is seen, so the
//! k-th newest entry we inserted is at index 62 + k - 1 of the peer's table
//! too. What we cannot know midway is what lies *behind* our entries (the
//! `unknown_tail`) and, for an entry inserted with a name taken from such an
//! unknown index, its name (an [`Entry::Unknown`] placeholder).
//!
//! Eviction only matters for memory and for error detection: a correct
//! encoder never references an evicted index, so keeping an entry longer than
//! the peer did can never produce a wrong field, while dropping it too early
//! only turns a later reference into "unknown". That is why, when the table
//! limit is not known exactly, we evict against a generous cap rather than a
//! guess; and why, when *we* drop entries the peer still holds (our memory
//! cap), the tail becomes unknown instead of references becoming errors.

use std::collections::VecDeque;

/// Per-entry overhead counted by HPACK (RFC 7541 §4.1).
pub const ENTRY_OVERHEAD: usize = 32;
/// Initial SETTINGS_HEADER_TABLE_SIZE.
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Most table bytes (HPACK accounting) we keep per decoder, whatever the peer
/// allows. Larger tables still decode; references past this become unknown.
pub const RETAIN_CAP: usize = 64 * 1024;

#[derive(Debug)]
pub enum Entry {
    /// `name ++ value`, split at `name_len`.
    Known { bytes: Box<[u8]>, name_len: usize },
    /// Inserted with a name we could not resolve; `size` is a lower bound.
    Unknown { size: usize },
}

impl Entry {
    fn size(&self) -> usize {
        match self {
            Entry::Known { bytes, .. } => bytes.len() + ENTRY_OVERHEAD,
            Entry::Unknown { size } => *size,
        }
    }
}

/// What a dynamic index resolves to.
pub enum Lookup<'a> {
    Field(&'a [u8], &'a [u8]),
    /// An entry whose contents we do not know (midstream join).
    Unknown,
    /// Beyond the table: a protocol error.
    Invalid,
}

#[derive(Debug)]
pub struct DynamicTable {
    entries: VecDeque<Entry>,
    /// Sum of entry sizes (a lower bound if any entry is `Unknown`).
    size: usize,
    /// Of `size`, what placeholders count beyond their 32 bytes (they hold
    /// no value): `size - unknown_excess` is what the entries take in memory.
    unknown_excess: usize,
    /// Current maximum size as set by size updates.
    max_size: usize,
    /// False when joining midway until a size update tells us the maximum.
    max_size_known: bool,
    /// There may be entries behind ours that we never saw.
    unknown_tail: bool,
}

impl DynamicTable {
    /// A table from the start of the connection: empty, 4096 bytes.
    pub fn new() -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            unknown_excess: 0,
            max_size: DEFAULT_TABLE_SIZE,
            max_size_known: true,
            unknown_tail: false,
        }
    }

    /// A table of a connection joined midway: contents and maximum unknown.
    pub fn new_unknown() -> Self {
        DynamicTable {
            max_size_known: false,
            unknown_tail: true,
            ..Self::new()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// HPACK size of the entries we hold.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Memory the entries take (their bytes, plus 32 bytes each for slot and
    /// allocation): up to [`RETAIN_CAP`] and then some, per table.
    pub fn held_bytes(&self) -> usize {
        self.size.saturating_sub(self.unknown_excess)
    }

    pub fn has_unknown_tail(&self) -> bool {
        self.unknown_tail
    }

    /// Entries newest first; `None` for unknown placeholders.
    pub fn iter(&self) -> impl Iterator<Item = Option<(&[u8], &[u8])>> + '_ {
        self.entries.iter().map(|e| match e {
            Entry::Known { bytes, name_len } => Some(bytes.split_at((*name_len).min(bytes.len()))),
            Entry::Unknown { .. } => None,
        })
    }

    /// Entry at 0-based dynamic position (0 = newest = HPACK index 62).
    pub fn get(&self, pos: usize) -> Lookup<'_> {
        match self.entries.get(pos) {
            Some(Entry::Known { bytes, name_len }) => {
                let (n, v) = bytes.split_at((*name_len).min(bytes.len()));
                Lookup::Field(n, v)
            }
            Some(Entry::Unknown { .. }) => Lookup::Unknown,
            None if self.unknown_tail => Lookup::Unknown,
            None => Lookup::Invalid,
        }
    }

    /// Applies a dynamic table size update (already checked against the bound).
    pub fn set_max_size(&mut self, max: usize) {
        self.max_size = max;
        self.max_size_known = true;
        self.evict();
    }

    /// Inserts a field. An entry larger than the table empties it (§4.4).
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        self.insert_owned(bytes.into_boxed_slice(), name.len());
    }

    /// Inserts `name ++ value` already concatenated.
    pub fn insert_owned(&mut self, bytes: Box<[u8]>, name_len: usize) {
        self.push(Entry::Known { bytes, name_len });
    }

    /// Inserts a placeholder for an entry whose name is unknown.
    pub fn insert_unknown(&mut self, value_len: usize) {
        self.push(Entry::Unknown {
            size: value_len.saturating_add(ENTRY_OVERHEAD),
        });
    }

    fn push(&mut self, entry: Entry) {
        let esize = entry.size();
        if self.max_size_known && esize > self.max_size {
            // §4.4: the table is emptied and nothing is added.
            self.clear_all();
            return;
        }
        if esize > RETAIN_CAP {
            // Bigger than we keep: it occupies a position we cannot resolve.
            self.size += ENTRY_OVERHEAD;
            self.entries.push_front(Entry::Unknown {
                size: ENTRY_OVERHEAD,
            });
        } else {
            if let Entry::Unknown { size } = entry {
                self.unknown_excess += size - ENTRY_OVERHEAD;
            }
            self.size += esize;
            self.entries.push_front(entry);
        }
        self.evict();
    }

    fn clear_all(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.unknown_excess = 0;
        self.unknown_tail = false;
    }

    fn evict(&mut self) {
        // Protocol eviction when the maximum is known; otherwise only our cap.
        let limit = if self.max_size_known {
            self.max_size.min(RETAIN_CAP)
        } else {
            RETAIN_CAP
        };
        let protocol_limit = self.max_size_known && self.max_size <= RETAIN_CAP;
        while self.size > limit {
            match self.entries.pop_back() {
                Some(Entry::Unknown { size }) => {
                    self.size = self.size.saturating_sub(size);
                    self.unknown_excess -= size - ENTRY_OVERHEAD;
                }
                Some(e) => self.size = self.size.saturating_sub(e.size()),
                None => {
                    self.size = 0;
                    self.unknown_excess = 0;
                    break;
                }
            }
            if !protocol_limit {
                // We dropped something the peer may still hold.
                self.unknown_tail = true;
            }
        }
        if self.max_size_known
            && self.unknown_tail
            && self.max_size < self.size.saturating_add(ENTRY_OVERHEAD)
            && protocol_limit
        {
            // No older entry (each at least 32 bytes) can still fit behind ours.
            self.unknown_tail = false;
        }
    }
}

impl Default for DynamicTable {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_first() {
        let mut t = DynamicTable::new();
        t.set_max_size(100);
        t.insert(b"aaaa", b"1111"); // 40
        t.insert(b"bbbb", b"2222"); // 80
        t.insert(b"cccc", b"3333"); // evicts aaaa
        assert_eq!(t.len(), 2);
        assert_eq!(t.size(), 80);
        assert!(matches!(t.get(1), Lookup::Field(b"bbbb", b"2222")));
        assert!(matches!(t.get(2), Lookup::Invalid));
        assert_eq!(t.held_bytes(), 80);
        t.insert(&[b'x'; 90], b""); // larger than the table: empties it
        assert!(t.is_empty());
        assert_eq!(t.held_bytes(), 0);
    }

    #[test]
    fn held_bytes_follow_what_is_kept() {
        let mut t = DynamicTable::new_unknown();
        t.insert(b"name", b"value"); // 9 + 32
        t.insert_unknown(1000); // a placeholder: its slot only
        assert_eq!(t.size(), 41 + 1032);
        assert_eq!(t.held_bytes(), 41 + 32);
        // Past what we keep: a placeholder too, and the oldest go.
        let big = vec![b'v'; RETAIN_CAP];
        t.insert(b"k", &big);
        assert_eq!(t.held_bytes(), 41 + 32 + 32);
        for _ in 0..3000 {
            t.insert(b"some-header", b"some value of a header");
        }
        assert!(t.size() <= RETAIN_CAP);
        let expected: usize = t
            .iter()
            .map(|e| e.map_or(ENTRY_OVERHEAD, |(n, v)| n.len() + v.len() + ENTRY_OVERHEAD))
            .sum();
        assert_eq!(t.held_bytes(), expected);
    }

    #[test]
    fn unknown_window_recovers() {
        let mut t = DynamicTable::new_unknown();
        assert!(matches!(t.get(0), Lookup::Unknown));
        t.insert(b"k", b"v");
        assert!(matches!(t.get(0), Lookup::Field(b"k", b"v")));
        assert!(matches!(t.get(1), Lookup::Unknown));
        t.insert_unknown(3);
        assert!(matches!(t.get(0), Lookup::Unknown));
        assert!(matches!(t.get(1), Lookup::Field(b"k", b"v")));
        t.set_max_size(0);
        assert!(matches!(t.get(0), Lookup::Invalid));
    }
}
