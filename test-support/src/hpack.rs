//! HPACK representations (RFC 7541 §6) written by hand, for header blocks in
//! fixtures: integers, strings (plain or Huffman, the latter with
//! `protocol-parsers`' encoder), and whole blocks from a list of [`Rep`].

use protocol_parsers::http2::hpack::huffman;

/// An RFC 7541 §5.1 integer with a `prefix`-bit prefix; `high_bits` are the
/// bits of the first byte above the prefix (the representation's pattern).
pub fn int(out: &mut Vec<u8>, prefix: u8, high_bits: u8, mut value: u64) {
    let max = (1u64 << prefix) - 1;
    if value < max {
        out.push(high_bits | value as u8);
        return;
    }
    out.push(high_bits | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// An RFC 7541 §5.2 string literal, Huffman-coded if `huffman`.
pub fn string(out: &mut Vec<u8>, s: &[u8], huffman: bool) {
    if huffman {
        let mut enc = Vec::new();
        huffman::encode(s, &mut enc);
        int(out, 7, 0x80, enc.len() as u64);
        out.extend_from_slice(&enc);
    } else {
        int(out, 7, 0, s.len() as u64);
        out.extend_from_slice(s);
    }
}

/// A literal's name: an index (static or dynamic table) or the name itself.
#[derive(Clone, Copy, Debug)]
pub enum Name<'a> {
    Idx(usize),
    Lit(&'a str),
}

/// One HPACK representation.
#[derive(Clone, Copy, Debug)]
pub enum Rep<'a> {
    /// Indexed header field (§6.1).
    Indexed(usize),
    /// Literal with incremental indexing (§6.2.1).
    Inc(Name<'a>, &'a str),
    /// Literal without indexing (§6.2.2).
    NoIdx(Name<'a>, &'a str),
    /// Literal never indexed (§6.2.3).
    Never(Name<'a>, &'a str),
    /// Dynamic table size update (§6.3).
    SizeUpdate(usize),
}

/// A header block of `reps`, every string Huffman-coded if `huffman`.
pub fn block_with(reps: &[Rep], huffman: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for r in reps {
        let (prefix, pattern, name, value) = match *r {
            Rep::Indexed(i) => {
                int(&mut out, 7, 0x80, i as u64);
                continue;
            }
            Rep::SizeUpdate(s) => {
                int(&mut out, 5, 0x20, s as u64);
                continue;
            }
            Rep::Inc(n, v) => (6, 0x40, n, v),
            Rep::NoIdx(n, v) => (4, 0x00, n, v),
            Rep::Never(n, v) => (4, 0x10, n, v),
        };
        match name {
            Name::Idx(i) => int(&mut out, prefix, pattern, i as u64),
            Name::Lit(n) => {
                int(&mut out, prefix, pattern, 0);
                string(&mut out, n.as_bytes(), huffman);
            }
        }
        string(&mut out, value.as_bytes(), huffman);
    }
    out
}

/// A header block of `reps`, no Huffman coding.
pub fn block(reps: &[Rep]) -> Vec<u8> {
    block_with(reps, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 C.1 and C.2.
    #[test]
    fn rfc_examples() {
        let mut v = Vec::new();
        int(&mut v, 5, 0, 1337);
        assert_eq!(v, [0x1f, 0x9a, 0x0a]);
        assert_eq!(
            block(&[Rep::Inc(Name::Lit("custom-key"), "custom-header")]),
            b"\x40\x0acustom-key\x0dcustom-header"
        );
        assert_eq!(block(&[Rep::Indexed(2)]), [0x82]);
        assert_eq!(
            block(&[Rep::NoIdx(Name::Idx(4), "/sample/path")]),
            b"\x04\x0c/sample/path"
        );
    }
}
