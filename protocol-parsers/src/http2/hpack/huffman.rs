//! HPACK Huffman code (RFC 7541 §5.2, Appendix B): decoding into a caller's
//! buffer, and an encoder used by tests and benches to build fixtures.
//!
//! The code is canonical (codes of one length are consecutive, ordered by
//! symbol; shorter codes come first), so the table is stored as bit lengths
//! only and the codes, and the per-length decoding ranges, are computed at
//! compile time. Decoding walks bit by bit; header strings are short, so a
//! multi-KiB state table would buy little here.

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

/// Decodes `src`, appending to `out` (not cleared first).
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    out.reserve(src.len() + src.len() / 2);
    let c = &CANON;
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for &byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            // Lengths start at 5; a complete code (Kraft sum 1) always ends by 30.
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
                    // Unreachable for a complete code; kept so bad input cannot overflow.
                    return Err(HuffmanError::EosInString);
                }
            }
        }
    }
    // Padding: at most 7 bits, all ones (the most significant bits of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HuffmanError::BadPadding);
    }
    Ok(())
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
