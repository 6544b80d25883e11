//! HPACK Huffman code (RFC 7541 §5.2, Appendix B): decoding into a caller's
//! buffer, and an encoder used by tests and benches to build fixtures.
//!
//! The code is canonical (codes of one length are consecutive, ordered by
//! symbol; shorter codes come first), so the table is stored as bit lengths
//! only and the codes, and the per-length decoding ranges, are computed at
//! compile time. Decoding looks the next [`PEEK`] bits up in a 2 KiB table
//! built at compile time, which names the symbol of every code that short
//! (all printable ASCII but a few punctuation marks); longer codes are found
//! from the per-length ranges. (It walked bit by bit until a profile of the
//! agent under h2load put that walk at 16 % of its CPU: header values that
//! are not indexed, such as `date`, are decoded on every response, at both
//! ends of a connection.)

/// Bit length of the code of each symbol 0..=255 and EOS (256), from RFC 7541 Appendix B.
#[rustfmt::skip]
const CODE_LEN: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

struct Canonical {
    /// Code of each symbol (right-aligned).
    codes: [u32; 257],
    /// First code of each length.
    first: [u32; MAX_LEN + 1],
    /// Number of codes of each length.
    count: [u16; MAX_LEN + 1],
    /// Index into `sorted` of the first symbol of each length.
    offset: [u16; MAX_LEN + 1],
    /// Symbols ordered by (length, symbol).
    sorted: [u16; 257],
}

const fn build() -> Canonical {
    let mut count = [0u16; MAX_LEN + 1];
    let mut i = 0;
    while i < 257 {
        count[CODE_LEN[i] as usize] += 1;
        i += 1;
    }
    let mut offset = [0u16; MAX_LEN + 1];
    let mut first = [0u32; MAX_LEN + 1];
    let mut code = 0u32;
    let mut off = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        offset[len] = off;
        first[len] = code;
        off += count[len];
        code = (code + count[len] as u32) << 1;
        len += 1;
    }
    let mut sorted = [0u16; 257];
    let mut codes = [0u32; 257];
    let mut next = offset;
    let mut sym = 0;
    while sym < 257 {
        let l = CODE_LEN[sym] as usize;
        let pos = next[l];
        sorted[pos as usize] = sym as u16;
        codes[sym] = first[l] + (pos - offset[l]) as u32;
        next[l] += 1;
        sym += 1;
    }
    Canonical {
        codes,
        first,
        count,
        offset,
        sorted,
    }
}

static CANON: Canonical = build();

/// Why a Huffman string could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    /// The EOS symbol appeared inside the string.
    #[error("EOS symbol inside a Huffman string")]
    EosInString,
    /// More than 7 bits of padding, or padding that is not a prefix of EOS.
    #[error("Huffman padding longer than 7 bits or not a prefix of EOS")]
    BadPadding,
}

/// Bits looked up at once: every code up to this long decodes with one
/// table load.
const PEEK: u32 = 10;

/// For each value of the next [`PEEK`] bits: the symbol whose code is a
/// prefix of them and that code's length, or length 0 when the code is
/// longer than [`PEEK`].
#[derive(Clone, Copy)]
struct Short {
    sym: u8,
    len: u8,
}

const fn build_short() -> [Short; 1 << PEEK] {
    let mut t = [Short { sym: 0, len: 0 }; 1 << PEEK];
    let mut sym = 0;
    while sym < 256 {
        let len = CODE_LEN[sym] as u32;
        if len <= PEEK {
            // Every PEEK-bit value that starts with this code.
            let first = (CANON.codes[sym] << (PEEK - len)) as usize;
            let mut i = 0;
            while i < (1usize << (PEEK - len)) {
                t[first + i] = Short {
                    sym: sym as u8,
                    len: len as u8,
                };
                i += 1;
            }
        }
        sym += 1;
    }
    t
}

static SHORT: [Short; 1 << PEEK] = build_short();

/// Decodes `src`, appending to `out` (not cleared first).
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // Every code is at least 5 bits long.
    out.reserve(src.len() * 8 / 5 + 1);
    let c = &CANON;
    // The next `nbits` undecoded bits, right-aligned in `acc` (bits above
    // them are stale and masked off where read).
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    let mut rest = src;
    loop {
        // Refill to more than 56 bits, or with all that is left.
        while nbits <= 56 {
            let Some((&b, tail)) = rest.split_first() else {
                break;
            };
            acc = (acc << 8) | u64::from(b);
            nbits += 8;
            rest = tail;
        }
        if rest.is_empty() {
            return decode_tail(c, acc, nbits, out);
        }
        // At least 30 bits: whatever the next code is, it is all here.
        while nbits >= MAX_LEN as u32 {
            let short = SHORT[((acc >> (nbits - PEEK)) as usize) & ((1 << PEEK) - 1)];
            let (sym, len) = if short.len != 0 {
                (u16::from(short.sym), u32::from(short.len))
            } else {
                long_code(c, acc, nbits)
            };
            if sym == EOS {
                return Err(HuffmanError::EosInString);
            }
            out.push(sym as u8);
            nbits -= len;
        }
    }
}

/// The last `nbits` bits of a string (all of the input is in `acc`):
/// codes, then at most 7 bits of padding, all ones (the most significant
/// bits of EOS).
fn decode_tail(
    c: &Canonical,
    acc: u64,
    mut nbits: u32,
    out: &mut Vec<u8>,
) -> Result<(), HuffmanError> {
    while nbits > 0 {
        // The usual end: up to 7 one bits, the most significant of EOS. No
        // code is all ones, so they cannot start a symbol; said here, they
        // do not send every string through `long_code`.
        if nbits <= 7 && acc & ((1u64 << nbits) - 1) == (1u64 << nbits) - 1 {
            return Ok(());
        }
        // Past the end, read one bits (EOS's), so that a code needing them
        // shows as running past the end.
        let peek = if nbits >= PEEK {
            (acc >> (nbits - PEEK)) as usize
        } else {
            ((acc << (PEEK - nbits)) | ((1u64 << (PEEK - nbits)) - 1)) as usize
        } & ((1 << PEEK) - 1);
        let short = SHORT[peek];
        let (sym, len) = if short.len != 0 {
            (u16::from(short.sym), u32::from(short.len))
        } else {
            long_code(c, acc, nbits)
        };
        if len > nbits {
            // The input ends inside a code, and not with padding (above).
            return Err(HuffmanError::BadPadding);
        }
        if sym == EOS {
            return Err(HuffmanError::EosInString);
        }
        out.push(sym as u8);
        nbits -= len;
    }
    Ok(())
}

/// The symbol and length of a code longer than [`PEEK`] at the top of the
/// `nbits` bits in `acc` (read as followed by one bits where they run out).
/// The code is complete, so some length up to 30 always matches.
fn long_code(c: &Canonical, acc: u64, nbits: u32) -> (u16, u32) {
    let top = if nbits >= MAX_LEN as u32 {
        (acc >> (nbits - MAX_LEN as u32)) as u32
    } else {
        ((acc << (MAX_LEN as u32 - nbits)) | ((1u64 << (MAX_LEN as u32 - nbits)) - 1)) as u32
    } & ((1u32 << MAX_LEN) - 1);
    for l in (PEEK as usize + 1)..=MAX_LEN {
        let code = top >> (MAX_LEN - l);
        let rel = code.wrapping_sub(c.first[l]);
        if code >= c.first[l] && rel < u32::from(c.count[l]) {
            return (c.sorted[usize::from(c.offset[l]) + rel as usize], l as u32);
        }
    }
    // Unreachable for a complete code (the Kraft sum is checked in tests):
    // EOS, thirty one bits, is the last code of all.
    (EOS, MAX_LEN as u32)
}

/// Appends the Huffman encoding of `src` to `out`, padded with EOS bits.
pub fn encode(src: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in src {
        let l = u32::from(CODE_LEN[usize::from(b)]);
        acc = (acc << l) | u64::from(CANON.codes[usize::from(b)]);
        bits += l;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

/// Length of the Huffman encoding of `src`, in bytes.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODE_LEN[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bit-by-bit decoder the table one replaced, as the reference.
    fn decode_bitwise(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
        let c = &CANON;
        let mut code: u32 = 0;
        let mut len: usize = 0;
        for &byte in src {
            for shift in (0..8).rev() {
                code = (code << 1) | u32::from((byte >> shift) & 1);
                len += 1;
                if len >= 5 {
                    let l = len.min(MAX_LEN);
                    let rel = code.wrapping_sub(c.first[l]);
                    if code >= c.first[l] && rel < u32::from(c.count[l]) {
                        let sym = c.sorted[usize::from(c.offset[l]) + rel as usize];
                        if sym == EOS {
                            return Err(HuffmanError::EosInString);
                        }
                        out.push(sym as u8);
                        code = 0;
                        len = 0;
                    } else if len >= MAX_LEN {
                        return Err(HuffmanError::EosInString);
                    }
                }
            }
        }
        if len > 7 || code != (1u32 << len) - 1 {
            return Err(HuffmanError::BadPadding);
        }
        Ok(())
    }

    /// A decoder's result and output.
    type Decoded = (Result<(), HuffmanError>, Vec<u8>);

    /// (the table decoder's, the bitwise decoder's) for `src`.
    fn both(src: &[u8]) -> (Decoded, Decoded) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ra = decode(src, &mut a);
        let rb = decode_bitwise(src, &mut b);
        ((ra, a), (rb, b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Any bytes at all, valid or not: the same result and the same
        /// output as the bit-by-bit decoder.
        #[test]
        fn table_decoder_agrees_with_the_bitwise_one(src in proptest::collection::vec(any::<u8>(), 0..48)) {
            let (table, bitwise) = both(&src);
            prop_assert_eq!(table, bitwise);
        }

        /// Encoded strings (so mostly valid ones), with their last byte
        /// sometimes cut or altered: the same again.
        #[test]
        fn table_decoder_agrees_on_encoded_strings(
            text in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..3,
            flip in any::<u8>(),
        ) {
            let mut enc = Vec::new();
            encode(&text, &mut enc);
            let (table, bitwise) = both(&enc);
            prop_assert_eq!(&table, &bitwise);
            prop_assert_eq!(table, (Ok(()), text));
            enc.truncate(enc.len().saturating_sub(cut));
            if let Some(last) = enc.last_mut() {
                *last ^= flip;
            }
            let (table, bitwise) = both(&enc);
            prop_assert_eq!(table, bitwise);
        }
    }

    #[test]
    fn every_short_entry_is_a_prefix_of_its_code_and_long_codes_are_left_out() {
        for (v, e) in SHORT.iter().enumerate() {
            if e.len == 0 {
                continue;
            }
            let len = u32::from(e.len);
            assert_eq!(u32::from(CODE_LEN[usize::from(e.sym)]), len);
            assert_eq!(CANON.codes[usize::from(e.sym)], (v as u32) >> (PEEK - len));
        }
        let short = (0..256).filter(|&s| u32::from(CODE_LEN[s]) <= PEEK).count();
        let filled = SHORT.iter().filter(|e| e.len != 0).count();
        let expected: usize = (0..256)
            .filter(|&s| u32::from(CODE_LEN[s]) <= PEEK)
            .map(|s| 1usize << (PEEK - u32::from(CODE_LEN[s])))
            .sum();
        assert!(short > 70, "{short} symbols of {PEEK} bits or fewer");
        assert_eq!(filled, expected);
    }

    #[test]
    fn codes_match_rfc_samples() {
        // A few codes straight from Appendix B.
        assert_eq!(
            (CANON.codes[b'0' as usize], CODE_LEN[b'0' as usize]),
            (0x0, 5)
        );
        assert_eq!(
            (CANON.codes[b'a' as usize], CODE_LEN[b'a' as usize]),
            (0x3, 5)
        );
        assert_eq!(
            (CANON.codes[b' ' as usize], CODE_LEN[b' ' as usize]),
            (0x14, 6)
        );
        assert_eq!((CANON.codes[0], CODE_LEN[0]), (0x1ff8, 13));
        assert_eq!((CANON.codes[255], CODE_LEN[255]), (0x3ffffee, 26));
        assert_eq!((CANON.codes[256], CODE_LEN[256]), (0x3fffffff, 30));
        // Kraft equality: the code is complete.
        let kraft: u64 = CODE_LEN.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        assert_eq!(enc.len(), encoded_len(&all));
        let mut dec = Vec::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(dec, all);
    }

    #[test]
    fn rejects_eos_and_bad_padding() {
        let mut out = Vec::new();
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HuffmanError::EosInString)
        );
        assert_eq!(decode(&[0x00], &mut out), Err(HuffmanError::BadPadding));
        // 'a' (00011) + 3 one bits: fine; + a whole 0xff byte: too much padding.
        out.clear();
        assert_eq!(decode(&[0x1f], &mut out), Ok(()));
        assert_eq!(out, b"a");
        assert_eq!(
            decode(&[0x1f, 0xff], &mut out),
            Err(HuffmanError::BadPadding)
        );
    }
}
