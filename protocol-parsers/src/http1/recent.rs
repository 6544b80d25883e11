//! Heads parsed a moment ago, reused when the same bytes come again.
//!
//! When both ends of a connection are on this host (a client and a server, a
//! sidecar and its application, a proxy and its upstream), every head is seen
//! twice: written by one end, read by the other, moments apart. Parsing a
//! head is a pure function of its bytes, so the second end can take the first
//! end's result: a hash and a byte comparison instead of a parse (about a
//! tenth of the instructions).
//!
//! What this does not do: it never changes an outcome. An entry is the bytes
//! a parse consumed (`buf[..n]`, the head through its empty line) and that
//! parse's result. It is taken only when the new bytes start with exactly
//! those bytes; a parse reads nothing past the end of its head, so it would
//! have given the same result. Partial and malformed heads are not stored,
//! nor heads longer than [`MAX_KEY`].
//!
//! Where a head ends is not searched for (a search cost more than a hit
//! saves when the head came with its body). The lengths tried are the
//! whole chunk's and the lengths of the last [`LENGTHS`] heads stored, each
//! only where the bytes there end like a head (`\n\n` or `\n\r\n`). So a
//! head is found again if fewer than [`LENGTHS`] heads of other lengths were
//! stored in between, or if its chunk holds nothing else.
//!
//! Storing a head (copying it into a slot that is cold in the cache) costs
//! a sixth of a parse or so, and pays only where heads recur. So while fewer
//! than one lookup in [`WORTH_IT`] hit over the last [`WINDOW`] lookups (or
//! would have, were every miss stored), only one miss in [`SAMPLE`] is
//! stored: enough to notice when heads start recurring, when every miss is
//! stored again. Where no head recurs (only one end of each connection on
//! this host), that keeps the cost of this cache to a check of the chunk's
//! end, a mix of three words, and for one head in [`SAMPLE`] a hash and a
//! copy.
//!
//! Bounds: [`SLOTS`] direct-mapped slots per thread and per kind (requests,
//! responses), each holding at most [`MAX_KEY`] bytes of key and one parsed
//! head; a colliding head replaces the slot's. Per thread because the agent
//! parses on one thread, and a cache there needs no lock.

use super::head::Malformed;
use foldhash::fast::FixedState;
use std::hash::BuildHasher;

/// Slots per kind and thread. The two ends of an exchange are usually a few
/// records apart in the ring; this leaves room for many connections between.
pub(crate) const SLOTS: usize = 256;
/// Longest head kept (bytes). Longer heads are parsed every time.
pub(crate) const MAX_KEY: usize = 1024;
/// Recent head lengths tried besides the chunk's own.
pub(crate) const LENGTHS: usize = 8;
/// Lookups over which the hit rate is judged.
pub(crate) const WINDOW: u32 = 256;
/// Every miss is stored while at least one lookup in this many hit (about
/// where a store's cost and a hit's saving break even).
pub(crate) const WORTH_IT: u32 = 8;
/// Otherwise, one miss in `SAMPLE` (2^SAMPLE_BITS) is stored.
const SAMPLE_BITS: u32 = 4;
pub(crate) const SAMPLE: u64 = 1 << SAMPLE_BITS;

struct Slot<T> {
    hash: u64,
    key: Vec<u8>,
    value: Option<T>,
}

/// Recently parsed heads of one kind.
pub(crate) struct Recent<T> {
    slots: Box<[Slot<T>]>,
    /// Lengths of the last heads stored, newest at `next - 1` (0 = none).
    lengths: [u16; LENGTHS],
    next: usize,
    hasher: FixedState,
    /// This window's lookups and hits, and what the last window decided.
    window_lookups: u32,
    window_hits: u32,
    store_every_miss: bool,
    /// Heads taken from a slot, heads parsed, and parsed heads stored (tests
    /// and benches read them).
    pub(crate) reused: u64,
    pub(crate) parsed: u64,
    pub(crate) stored: u64,
}

/// Whether head `key` is among the one in [`SAMPLE`] stored and looked up
/// while storing is sampled. Decided by the key's own bytes, so a sampled
/// head is stored at its first sight and found at its second; and from three
/// words and the length, not a hash of it all, so that a head not sampled
/// costs no hashing.
fn sampled(key: &[u8]) -> bool {
    let n = key.len();
    // Eight bytes at `at`, moved back to fit (a short head's words overlap).
    let word = |at: usize| {
        let at = at.min(n.saturating_sub(8));
        key.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    // Spread over the head: paths, dates, lengths and ids vary there.
    let x =
        word(n / 4) ^ word(n / 2).rotate_left(21) ^ word(n - 12.min(n)).rotate_left(42) ^ n as u64;
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SAMPLE_BITS) == 0
}

/// Whether `key` could be a whole head: it ends with its empty line.
fn ends_like_head(key: &[u8]) -> bool {
    key.ends_with(b"\n\n") || key.ends_with(b"\n\r\n")
}

impl<T: Clone> Recent<T> {
    pub(crate) fn new() -> Self {
        Recent {
            slots: (0..SLOTS)
                .map(|_| Slot {
                    hash: 0,
                    key: Vec::new(),
                    value: None,
                })
                .collect(),
            lengths: [0; LENGTHS],
            next: 0,
            hasher: FixedState::default(),
            window_lookups: 0,
            window_hits: 0,
            store_every_miss: true,
            reused: 0,
            parsed: 0,
            stored: 0,
        }
    }

    /// `parse(buf)` (a head that `buf` starts with, and where it ends), or
    /// the stored result for the same bytes.
    pub(crate) fn get_or_parse(
        &mut self,
        buf: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<(T, usize), Malformed>,
    ) -> Result<(T, usize), Malformed> {
        self.window_lookups += 1;
        if self.window_lookups >= WINDOW {
            // While sampling, a hit stands for the SAMPLE a full store would give.
            let hits = if self.store_every_miss {
                self.window_hits
            } else {
                self.window_hits * SAMPLE as u32
            };
            self.store_every_miss = hits * WORTH_IT >= self.window_lookups;
            self.window_lookups = 0;
            self.window_hits = 0;
        }
        let whole = if buf.len() <= MAX_KEY { buf.len() } else { 0 };
        let tried = std::iter::once(whole).chain(
            self.lengths
                .iter()
                .map(|&n| usize::from(n))
                .filter(|&n| n != whole),
        );
        // The hash of the whole chunk, kept for storing it (the usual miss).
        let mut whole_hash = None;
        let every = self.store_every_miss;
        for n in tried {
            let Some(key) = buf
                .get(..n)
                .filter(|k| ends_like_head(k) && (every || sampled(k)))
            else {
                continue;
            };
            let hash = self.hasher.hash_one(key);
            if n == whole {
                whole_hash = Some(hash);
            }
            let slot = &self.slots[slot_of(hash)];
            if slot.hash == hash && slot.key == key {
                if let Some(v) = &slot.value {
                    self.reused += 1;
                    self.window_hits += 1;
                    return Ok((v.clone(), n));
                }
            }
        }
        self.parsed += 1;
        let (value, n) = parse(buf)?;
        if let (Some(key), Ok(len)) = (buf.get(..n), u16::try_from(n)) {
            if n <= MAX_KEY && ends_like_head(key) && (every || sampled(key)) {
                let hash = match whole_hash {
                    Some(h) if n == whole => h,
                    _ => self.hasher.hash_one(key),
                };
                self.stored += 1;
                let slot = &mut self.slots[slot_of(hash)];
                slot.hash = hash;
                slot.key.clear();
                slot.key.extend_from_slice(key);
                slot.value = Some(value.clone());
                if !self.lengths.contains(&len) {
                    self.lengths[self.next] = len;
                    self.next = (self.next + 1) % LENGTHS;
                }
            }
        }
        Ok((value, n))
    }
}

/// The low bits pick the slot (SLOTS is a power of two).
fn slot_of(hash: u64) -> usize {
    (hash as usize) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A stand-in parse: the head is everything up to the first "\n\n" or
    /// "\r\n\r\n" (as httparse ends heads), its value the head's length.
    fn fake(calls: &Cell<u32>) -> impl Fn(&[u8]) -> Result<(usize, usize), Malformed> + '_ {
        move |b: &[u8]| {
            calls.set(calls.get() + 1);
            let lf = memchr::memmem::find(b, b"\n\n").map(|i| i + 2);
            let crlf = memchr::memmem::find(b, b"\r\n\r\n").map(|i| i + 4);
            match (lf, crlf) {
                (Some(a), Some(b)) => Ok((a.min(b), a.min(b))),
                (Some(a), None) | (None, Some(a)) => Ok((a, a)),
                (None, None) => Err(Malformed),
            }
        }
    }

    #[test]
    fn the_same_head_is_parsed_once_whatever_follows_it() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        let a = r.get_or_parse(b"GET / HTTP/1.1\r\n\r\nbody", fake(&calls));
        let b = r.get_or_parse(b"GET / HTTP/1.1\r\n\r\nother", fake(&calls));
        assert_eq!(a, Ok((18, 18)));
        assert_eq!(b, a);
        assert_eq!(calls.get(), 1);
        assert_eq!((r.reused, r.parsed), (1, 1));
        // One byte different: parsed.
        r.get_or_parse(b"GET /x HTTP/1.1\r\n\r\n", fake(&calls))
            .unwrap();
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_head_ending_in_bare_lfs_is_keyed_by_its_own_bytes() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        // The head ends at "\n\n", before the CRLF CRLF further on.
        let early = b"GET / HTTP/1.1\n\nX\r\n\r\n";
        assert_eq!(r.get_or_parse(early, fake(&calls)), Ok((16, 16)));
        assert_eq!(r.get_or_parse(early, fake(&calls)), Ok((16, 16)));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn partial_and_long_heads_are_always_parsed() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        assert_eq!(
            r.get_or_parse(b"GET / HTTP/1.1\r\n", fake(&calls)),
            Err(Malformed)
        );
        assert_eq!(
            r.get_or_parse(b"GET / HTTP/1.1\r\n", fake(&calls)),
            Err(Malformed)
        );
        assert_eq!(calls.get(), 2);
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_KEY + 10, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        r.get_or_parse(&long, fake(&calls)).unwrap();
        r.get_or_parse(&long, fake(&calls)).unwrap();
        assert_eq!(calls.get(), 4);
        assert_eq!(r.reused, 0);
    }

    #[test]
    fn a_head_with_its_body_is_found_until_other_lengths_push_its_length_out() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        // Written alone by one end...
        r.get_or_parse(head, fake(&calls)).unwrap();
        // ...heads of LENGTHS - 1 other lengths in between...
        for i in 1..LENGTHS {
            let other = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "y".repeat(i));
            r.get_or_parse(other.as_bytes(), fake(&calls)).unwrap();
        }
        // ...read with its body by the other end: found.
        let with_body = [&head[..], b"body bytes"].concat();
        let before = calls.get();
        assert_eq!(
            r.get_or_parse(&with_body, fake(&calls)),
            Ok((head.len(), head.len()))
        );
        assert_eq!(calls.get(), before);
        // One more length pushes it out: parsed (with the same result).
        r.get_or_parse(
            b"HTTP/1.1 200 OK\r\nZ: z\r\nZ: z\r\nZ: z\r\n\r\n",
            fake(&calls),
        )
        .unwrap();
        let before = calls.get();
        assert_eq!(
            r.get_or_parse(&with_body, fake(&calls)),
            Ok((head.len(), head.len()))
        );
        assert_eq!(calls.get(), before + 1);
    }

    #[test]
    fn where_no_head_recurs_few_are_stored_and_storing_resumes_when_heads_recur() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        let head = |i: usize| format!("GET /{i} HTTP/1.1\r\n\r\n");
        // Every head different: after the first window, one miss in SAMPLE.
        let n = 10 * WINDOW as usize;
        for i in 0..n {
            r.get_or_parse(head(i).as_bytes(), fake(&calls)).unwrap();
        }
        assert_eq!(r.reused, 0);
        // The first window stores all; the rest one in SAMPLE, by hash (144
        // expected of 2,304; the bounds are ~6 standard deviations apart).
        let sampled = (n - WINDOW as usize) as u64 / SAMPLE;
        let after_first = r.stored - u64::from(WINDOW);
        assert!(
            (sampled / 2..=sampled * 2).contains(&after_first),
            "stored {after_first} after the first window, about {sampled} expected"
        );
        // Each head twice (both ends on this host): within a few windows,
        // every miss is stored again and half the lookups are reuses.
        for i in n..n + 8 * WINDOW as usize {
            r.get_or_parse(head(i).as_bytes(), fake(&calls)).unwrap();
            r.get_or_parse(head(i).as_bytes(), fake(&calls)).unwrap();
        }
        assert!(r.store_every_miss);
        let (reused, parsed) = (r.reused, r.parsed);
        for i in 0..WINDOW as usize {
            let h = head(n + 8 * WINDOW as usize + i);
            r.get_or_parse(h.as_bytes(), fake(&calls)).unwrap();
            r.get_or_parse(h.as_bytes(), fake(&calls)).unwrap();
        }
        assert_eq!(
            (r.reused - reused, r.parsed - parsed),
            (WINDOW as u64, WINDOW as u64)
        );
    }

    #[test]
    fn a_colliding_head_replaces_the_slot_and_both_stay_exact() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        // More distinct heads than slots: every result is still the parse's.
        for round in 0..2 {
            for i in 0..(SLOTS * 2) {
                let head = format!("GET /{i} HTTP/1.1\r\n\r\n");
                let got = r.get_or_parse(head.as_bytes(), fake(&calls));
                assert_eq!(got, Ok((head.len(), head.len())), "round {round} head {i}");
            }
        }
        assert_eq!(r.reused + r.parsed, (4 * SLOTS) as u64);
        assert!(r.slots.iter().all(|s| s.key.len() <= MAX_KEY));
    }
}
