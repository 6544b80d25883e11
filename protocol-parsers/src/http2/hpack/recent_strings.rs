//! Huffman strings decoded a moment ago, reused when the same bytes come again.
//!
//! Decoding a Huffman string is a pure function of its bytes, and the same
//! strings recur: each header block is decoded at both ends of a connection
//! whose two ends are on this host, and encoders send some values as
//! literals on every message (nginx: `date`, `content-type`, `server`,
//! `last-modified`; every client: `:path`). Huffman decoding was the largest
//! single cost of the HTTP/2 pipeline (18 % of its instructions against
//! nginx).
//!
//! What this does not do: change an outcome. A slot holds an encoded string
//! and what decoding it gave; it is taken only for the same encoded bytes.
//! Strings that failed to decode are not stored (they are decoded, and fail,
//! every time), nor strings shorter than [`MIN_LEN`] (a few table loads
//! decode them) or longer than [`MAX_LEN`].
//!
//! Bounds: [`SLOTS`] direct-mapped slots per thread, each of fixed size (no
//! allocation): under 100 KiB per pipeline thread.

use super::huffman::{decode, HuffmanError};
use foldhash::fast::FixedState;
use std::cell::RefCell;
use std::hash::BuildHasher;

pub(crate) const SLOTS: usize = 512;
/// Shortest encoded string kept.
pub(crate) const MIN_LEN: usize = 6;
/// Longest encoded string kept.
pub(crate) const MAX_LEN: usize = 64;
/// Longest decoded form of a kept string: every code is at least 5 bits.
const MAX_DECODED: usize = MAX_LEN * 8 / 5;

struct Slot {
    enc_len: u8,
    dec_len: u8,
    enc: [u8; MAX_LEN],
    dec: [u8; MAX_DECODED],
}

struct RecentStrings {
    slots: Box<[Slot]>,
    hasher: FixedState,
    reused: u64,
    decoded: u64,
}

thread_local! {
    static RECENT: RefCell<RecentStrings> = RefCell::new(RecentStrings {
        slots: (0..SLOTS)
            .map(|_| Slot {
                enc_len: 0,
                dec_len: 0,
                enc: [0; MAX_LEN],
                dec: [0; MAX_DECODED],
            })
            .collect(),
        hasher: FixedState::default(),
        reused: 0,
        decoded: 0,
    });
}

/// [`decode`], or the stored result for the same encoded bytes: appends the
/// decoded string to `out`.
pub fn decode_recent(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    if !(MIN_LEN..=MAX_LEN).contains(&src.len()) {
        return decode(src, out);
    }
    RECENT.with_borrow_mut(|r| {
        let hash = r.hasher.hash_one(src);
        let slot = &mut r.slots[(hash as usize) & (SLOTS - 1)];
        if usize::from(slot.enc_len) == src.len() && slot.enc[..src.len()] == *src {
            out.extend_from_slice(&slot.dec[..usize::from(slot.dec_len)]);
            r.reused += 1;
            return Ok(());
        }
        r.decoded += 1;
        let start = out.len();
        decode(src, out)?;
        let decoded = &out[start..];
        // Always true (at least 5 bits a byte); checked rather than assumed.
        if let (Ok(enc_len), Ok(dec_len)) = (u8::try_from(src.len()), u8::try_from(decoded.len())) {
            if decoded.len() <= MAX_DECODED {
                slot.enc[..src.len()].copy_from_slice(src);
                slot.enc_len = enc_len;
                slot.dec[..decoded.len()].copy_from_slice(decoded);
                slot.dec_len = dec_len;
            }
        }
        Ok(())
    })
}

/// (strings taken from a slot, strings decoded) on this thread.
#[cfg(test)]
pub(crate) fn counts() -> (u64, u64) {
    RECENT.with_borrow(|r| (r.reused, r.decoded))
}

#[cfg(test)]
mod tests {
    use super::super::huffman::encode;
    use super::*;
    use proptest::prelude::*;

    fn encoded(s: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        encode(s, &mut e);
        e
    }

    #[test]
    fn the_same_string_is_decoded_once_and_appended_like_decode() {
        let e = encoded(b"Mon, 07 Dec 2026 22:17:30 GMT");
        let (reused, decoded) = counts();
        let mut a = b"x".to_vec();
        decode_recent(&e, &mut a).unwrap();
        let mut b = b"y".to_vec();
        decode_recent(&e, &mut b).unwrap();
        assert_eq!(a, b"xMon, 07 Dec 2026 22:17:30 GMT");
        assert_eq!(b, b"yMon, 07 Dec 2026 22:17:30 GMT");
        assert_eq!(counts(), (reused + 1, decoded + 1));
    }

    #[test]
    fn bad_strings_fail_every_time() {
        // EOS (30 ones) inside a string is an error (RFC 7541 §5.2).
        let bad = [0xff; 8];
        for _ in 0..2 {
            let mut out = Vec::new();
            assert_eq!(
                decode_recent(&bad, &mut out).is_err(),
                decode(&bad, &mut Vec::new()).is_err()
            );
            assert!(decode_recent(&bad, &mut out).is_err());
        }
    }

    proptest! {
        /// Over sequences of strings that recur (and bytes that are not
        /// valid Huffman at all), the result is decode's, every time.
        #[test]
        fn reused_strings_are_the_decode(
            picks in prop::collection::vec((0usize..6, any::<bool>()), 1..64),
            raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 6),
        ) {
            let texts: Vec<Vec<u8>> = raw.iter().map(|r| encoded(r)).collect();
            for (i, use_raw) in picks {
                let src = if use_raw { &raw[i] } else { &texts[i] };
                let mut ours = b"prefix".to_vec();
                let mut theirs = b"prefix".to_vec();
                let a = decode_recent(src, &mut ours);
                let b = decode(src, &mut theirs);
                prop_assert_eq!(a.is_ok(), b.is_ok());
                if a.is_ok() {
                    prop_assert_eq!(ours, theirs);
                }
            }
        }
    }
}
