//! Heads parsed a moment ago, reused when the same bytes come again.
//!
//! When both ends of a connection are on this host (a client and a server, a
//! sidecar and its application, a proxy and its upstream), every head is seen
//! twice: written by one end, read by the other, moments apart. Parsing a
//! head is a pure function of its bytes, so the second end can take the first
//! end's result: a hash and a byte comparison instead of a parse (about a
//! tenth of the instructions).
//!
//! What this does not do: it never changes an outcome. The key is a prefix of
//! the bytes (all of them when they end in `CRLF CRLF`, else up to their
//! first `CRLF CRLF`). An entry is stored only when the parse ended exactly
//! at the key's end, and taken only for the same key bytes; since a parse
//! reads no further than where its head ends, the same bytes give the same
//! result whatever follows them. Anything else (a head ending in bare LFs,
//! pipelined heads, a partial or malformed head, one longer than
//! [`MAX_KEY`]) is parsed as before.
//!
//! Bounds: [`SLOTS`] direct-mapped slots per thread and per kind (requests,
//! responses), each holding at most [`MAX_KEY`] bytes of key and one parsed
//! head; a colliding head replaces the slot's. Per thread because the agent
//! parses on one thread, and a cache there needs no lock.

use super::head::Malformed;
use foldhash::fast::FixedState;
use memchr::memmem::Finder;
use std::hash::BuildHasher;

/// Slots per kind and thread. The two ends of an exchange are usually a few
/// records apart in the ring; this leaves room for many connections between.
pub(crate) const SLOTS: usize = 256;
/// Longest head kept (bytes). Longer heads are parsed every time.
pub(crate) const MAX_KEY: usize = 1024;

const HEAD_END: &[u8] = b"\r\n\r\n";

struct Slot<T> {
    hash: u64,
    key: Vec<u8>,
    value: Option<T>,
}

/// Recently parsed heads of one kind.
pub(crate) struct Recent<T> {
    slots: Box<[Slot<T>]>,
    head_end: Finder<'static>,
    hasher: FixedState,
    /// Heads taken from a slot, and heads parsed (tests and benches read them).
    pub(crate) reused: u64,
    pub(crate) parsed: u64,
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
            head_end: Finder::new(HEAD_END),
            hasher: FixedState::default(),
            reused: 0,
            parsed: 0,
        }
    }

    /// `parse(buf)` (a head that `buf` starts with, and where it ends), or
    /// the stored result for the same bytes.
    pub(crate) fn get_or_parse(
        &mut self,
        buf: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<(T, usize), Malformed>,
    ) -> Result<(T, usize), Malformed> {
        // The key: all of `buf` when it ends like a head (a chunk that is one
        // head, the usual case: no search), else up to its first CRLF CRLF.
        let end = if buf.len() <= MAX_KEY && buf.ends_with(HEAD_END) {
            Some(buf.len())
        } else {
            let window = &buf[..buf.len().min(MAX_KEY)];
            self.head_end.find(window).map(|i| i + HEAD_END.len())
        };
        let Some(end) = end else {
            self.parsed += 1;
            return parse(buf);
        };
        let key = &buf[..end];
        let hash = self.hasher.hash_one(key);
        // The low bits pick the slot (SLOTS is a power of two).
        let slot = &mut self.slots[(hash as usize) & (SLOTS - 1)];
        if slot.hash == hash && slot.key == key {
            if let Some(v) = &slot.value {
                self.reused += 1;
                return Ok((v.clone(), end));
            }
        }
        self.parsed += 1;
        let (value, n) = parse(buf)?;
        // Only a head that ended exactly at the key's end can stand for it: one
        // that ended earlier (bare LFs, pipelined heads) is not keyed by it.
        if n == end {
            slot.hash = hash;
            slot.key.clear();
            slot.key.extend_from_slice(key);
            slot.value = Some(value.clone());
        }
        Ok((value, n))
    }
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
    fn heads_that_end_early_partial_or_long_are_always_parsed() {
        let calls = Cell::new(0);
        let mut r = Recent::new();
        // Ends at "\n\n" before the CRLF CRLF: not stored.
        let early = b"GET / HTTP/1.1\n\nX\r\n\r\n";
        assert_eq!(r.get_or_parse(early, fake(&calls)), Ok((16, 16)));
        assert_eq!(r.get_or_parse(early, fake(&calls)), Ok((16, 16)));
        assert_eq!(calls.get(), 2);
        // Partial: the parse's own error, every time.
        assert_eq!(
            r.get_or_parse(b"GET / HTTP/1.1\r\n", fake(&calls)),
            Err(Malformed)
        );
        assert_eq!(calls.get(), 3);
        // Longer than MAX_KEY: parsed every time.
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_KEY + 10, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        r.get_or_parse(&long, fake(&calls)).unwrap();
        r.get_or_parse(&long, fake(&calls)).unwrap();
        assert_eq!(calls.get(), 5);
        assert_eq!(r.reused, 0);
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
