//! HPACK header block decoding (RFC 7541 §6): indexed fields, the three
//! literal forms, dynamic table size updates, integers and strings.
//!
//! A block is decoded whole (the session buffers HEADERS + CONTINUATION up to
//! its limit). Each decoded field is handed to a callback as borrowed bytes:
//! nothing is allocated per field except entries inserted into the dynamic
//! table; Huffman strings are decoded into two reused scratch buffers, or
//! copied there from a recent decode of the same bytes (`recent_strings`).
//!
//! Does not: validate header names/values (RFC 9113 §8.2), enforce
//! SETTINGS_MAX_HEADER_LIST_SIZE, or encode (see [`super::huffman::encode`]
//! for the string part used by test fixtures).

use super::recent_strings;
use super::static_table::{self, STATIC_LEN};
use super::table::{DynamicTable, Lookup, DEFAULT_TABLE_SIZE};

/// Why a header block could not be decoded. Any of them leaves the dynamic
/// table in an unknown state, so the caller must stop decoding this direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecoderError {
    /// The block ended inside a representation (for a complete block this is
    /// a truncated/garbled block).
    #[error("header block ended inside a field representation")]
    NeedMore,
    /// An integer longer than 32 bits.
    #[error("HPACK integer longer than 32 bits")]
    IntegerOverflow,
    /// Index 0, or beyond the static + dynamic table.
    #[error("HPACK index 0 or beyond the static and dynamic tables")]
    InvalidIndex,
    /// Bad Huffman data (EOS inside, or bad padding).
    #[error("bad Huffman-coded string")]
    InvalidHuffman,
    /// A size update above the SETTINGS_HEADER_TABLE_SIZE bound.
    #[error("dynamic table size update above the SETTINGS_HEADER_TABLE_SIZE bound")]
    SizeUpdateTooLarge,
    /// A size update after the first field of a block.
    #[error("dynamic table size update after the first field of a block")]
    SizeUpdateNotAtStart,
}

/// What one block decode found besides the fields themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Fields left out because they referenced dynamic entries we do not know.
    pub unknown_refs: u32,
    /// Fields delivered.
    pub fields: u32,
    /// Fields not delivered, their values not even decoded, because the
    /// caller did not want their names ([`Decoder::decode_wanted`]).
    pub skipped: u32,
    /// References (whole field or name only) to dynamic-table entries that
    /// resolved. On a connection joined midway, these are the entries learnt
    /// since the join.
    pub dynamic_resolved: u32,
}

/// One direction's HPACK decoder.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Upper bound for size updates (SETTINGS_HEADER_TABLE_SIZE of the
    /// decoding peer); `None` when unknown (joined midway, no SETTINGS seen).
    bound: Option<usize>,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// Decoder from the start of a connection (4096-byte table, 4096 bound).
    pub fn new() -> Self {
        Decoder {
            table: DynamicTable::new(),
            bound: Some(DEFAULT_TABLE_SIZE),
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decoder joining a connection midway: table contents and bound unknown.
    pub fn new_unknown() -> Self {
        Decoder {
            table: DynamicTable::new_unknown(),
            bound: None,
            ..Self::new()
        }
    }

    /// Decoder whose table maximum (and bound) is `size` from the start, as
    /// if agreed out of band (RFC 7541 Appendix C.5/C.6 use 256).
    pub fn with_max_size(size: usize) -> Self {
        let mut d = Self::new();
        d.table.set_max_size(size);
        d.bound = Some(size);
        d
    }

    /// Sets the size update bound (the decoding peer's SETTINGS_HEADER_TABLE_SIZE).
    pub fn set_bound(&mut self, bound: usize) {
        self.bound = Some(bound);
    }

    pub fn bound(&self) -> Option<usize> {
        self.bound
    }

    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Memory this decoder holds, each part rounded up to a multiple of
    /// `step` (so that a full table whose entries turn over keeps one
    /// figure): its dynamic table ([`DynamicTable::held_bytes`]) and its
    /// buffers for Huffman-decoded strings, which keep the capacity of the
    /// longest string seen.
    #[inline]
    pub fn held_bytes(&self, step: usize) -> usize {
        let step = step.max(1);
        let table = self.table.held_bytes();
        let strings = self.name_buf.capacity() + self.value_buf.capacity();
        table.div_ceil(step) * step + strings.div_ceil(step) * step
    }

    /// Decodes one complete header block, calling `field(name, value)` for each
    /// field that could be resolved.
    pub fn decode(
        &mut self,
        block: &[u8],
        field: impl FnMut(&[u8], &[u8]),
    ) -> Result<BlockStats, DecoderError> {
        self.decode_wanted(block, |_| true, field)
    }

    /// [`decode`](Self::decode), but a literal that is not added to the
    /// dynamic table and whose name `wants` refuses is passed over without
    /// decoding its value (nor delivering it). Encoders send some values
    /// that change per message that way, Huffman-coded (nginx: `etag`), and
    /// a caller that keeps a few fields need not pay for them. The table
    /// stays exact: such a field never enters it. What is lost: a bad
    /// Huffman string in a passed-over value is not reported.
    pub fn decode_wanted(
        &mut self,
        block: &[u8],
        wants: impl Fn(&[u8]) -> bool,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<BlockStats, DecoderError> {
        let mut stats = BlockStats::default();
        let mut pos = 0usize;
        let mut seen_field = false;
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                // §6.1 Indexed Header Field.
                let idx = decode_int(block, &mut pos, 7)?;
                seen_field = true;
                match self.lookup(idx)? {
                    Resolved::Field(n, v) => {
                        stats.fields += 1;
                        if idx > STATIC_LEN {
                            stats.dynamic_resolved += 1;
                        }
                        field(n, v)
                    }
                    Resolved::Unknown => stats.unknown_refs += 1,
                }
            } else if b & 0xe0 == 0x20 {
                // §6.3 Dynamic Table Size Update.
                if seen_field {
                    return Err(DecoderError::SizeUpdateNotAtStart);
                }
                let size = decode_int(block, &mut pos, 5)?;
                if self.bound.is_some_and(|bound| size > bound) {
                    return Err(DecoderError::SizeUpdateTooLarge);
                }
                self.table.set_max_size(size);
            } else {
                // §6.2 literals: with incremental indexing (01), without (0000),
                // never indexed (0001).
                let (prefix, index) = if b & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                seen_field = true;
                let name_idx = decode_int(block, &mut pos, prefix)?;
                let Self {
                    table,
                    name_buf,
                    value_buf,
                    ..
                } = self;
                // Resolve the name: a literal string, or an index (None = unknown).
                let name: Option<&[u8]> = if name_idx == 0 {
                    Some(read_string(block, &mut pos, name_buf)?)
                } else {
                    match lookup(table, name_idx)? {
                        Resolved::Field(n, _) => {
                            if name_idx > STATIC_LEN {
                                stats.dynamic_resolved += 1;
                            }
                            Some(n)
                        }
                        Resolved::Unknown => None,
                    }
                };
                if !index && name.is_some_and(|n| !wants(n)) {
                    skip_string(block, &mut pos)?;
                    stats.skipped += 1;
                    continue;
                }
                let value = read_string(block, &mut pos, value_buf)?;
                match name {
                    Some(n) => {
                        stats.fields += 1;
                        field(n, value);
                        if index {
                            // `n` may borrow the table: build the entry first.
                            let mut bytes = Vec::with_capacity(n.len() + value.len());
                            bytes.extend_from_slice(n);
                            bytes.extend_from_slice(value);
                            let name_len = n.len();
                            table.insert_owned(bytes.into_boxed_slice(), name_len);
                        }
                    }
                    None => {
                        stats.unknown_refs += 1;
                        if index {
                            let vlen = value.len();
                            table.insert_unknown(vlen);
                        }
                    }
                }
            }
        }
        Ok(stats)
    }

    fn lookup(&self, idx: usize) -> Result<Resolved<'_>, DecoderError> {
        lookup(&self.table, idx)
    }
}

enum Resolved<'a> {
    Field(&'a [u8], &'a [u8]),
    Unknown,
}

fn lookup(table: &DynamicTable, idx: usize) -> Result<Resolved<'_>, DecoderError> {
    if idx == 0 {
        return Err(DecoderError::InvalidIndex);
    }
    if let Some((n, v)) = static_table::get(idx) {
        return Ok(Resolved::Field(n, v));
    }
    match table.get(idx - STATIC_LEN - 1) {
        Lookup::Field(n, v) => Ok(Resolved::Field(n, v)),
        Lookup::Unknown => Ok(Resolved::Unknown),
        Lookup::Invalid => Err(DecoderError::InvalidIndex),
    }
}

/// §5.1 integer with an N-bit prefix, starting at `block[*pos]`.
pub fn decode_int(block: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, DecoderError> {
    // prefix is 1..=8 (8 only in RFC 7541 C.1.3); computed in u16 so 8 cannot overflow.
    let mask = ((1u16 << prefix.clamp(1, 8)) - 1) as u8;
    let first = *block.get(*pos).ok_or(DecoderError::NeedMore)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos).ok_or(DecoderError::NeedMore)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(DecoderError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| DecoderError::IntegerOverflow);
        }
        shift += 7;
        if shift > 28 {
            return Err(DecoderError::IntegerOverflow);
        }
    }
}

/// §5.2 string literal; Huffman strings are decoded into `scratch`.
fn read_string<'a>(
    block: &'a [u8],
    pos: &mut usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], DecoderError> {
    let huff = *block.get(*pos).ok_or(DecoderError::NeedMore)? & 0x80 != 0;
    let len = decode_int(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(DecoderError::NeedMore)?;
    let raw = block.get(*pos..end).ok_or(DecoderError::NeedMore)?;
    *pos = end;
    if huff {
        scratch.clear();
        recent_strings::decode_recent(raw, scratch).map_err(|_| DecoderError::InvalidHuffman)?;
        Ok(scratch.as_slice())
    } else {
        Ok(raw)
    }
}

/// Steps over a §5.2 string literal without decoding it.
fn skip_string(block: &[u8], pos: &mut usize) -> Result<(), DecoderError> {
    let len = decode_int(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(DecoderError::NeedMore)?;
    if end > block.len() {
        return Err(DecoderError::NeedMore);
    }
    *pos = end;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use test_support::hpack::{block_with, Name, Rep};

    /// Every field `decode` delivers, and the table after, newest first.
    type Decoded = (
        Result<Vec<(Vec<u8>, Vec<u8>)>, DecoderError>,
        Vec<Option<(Vec<u8>, Vec<u8>)>>,
    );

    /// A name filter for `decode_wanted`, or none for `decode`.
    type Filter<'a> = Option<&'a dyn Fn(&[u8]) -> bool>;

    fn run(d: &mut Decoder, block: &[u8], wants: Filter<'_>) -> Decoded {
        let mut got = Vec::new();
        let mut push = |n: &[u8], v: &[u8]| got.push((n.to_vec(), v.to_vec()));
        let r = match wants {
            Some(w) => d.decode_wanted(block, w, &mut push),
            None => d.decode(block, &mut push),
        };
        let table = d
            .table()
            .iter()
            .map(|e| e.map(|(n, v)| (n.to_vec(), v.to_vec())))
            .collect();
        (r.map(|_| got), table)
    }

    fn wanted(name: &[u8]) -> bool {
        name.starts_with(b":") || name == b"user-agent"
    }

    #[test]
    fn an_unwanted_value_is_passed_over_undecoded() {
        // `date` without indexing, its "Huffman" value invalid (all-zero
        // bytes end in padding that is not ones), between two wanted fields.
        let mut b = block_with(&[Rep::Indexed(2)], false);
        b.push(0x0f); // literal without indexing, name index 33 (date) as 15 + 18
        b.push(18);
        b.extend([0x80 | 3, 0, 0, 0]); // Huffman, 3 bytes
        b.extend(block_with(&[Rep::Inc(Name::Idx(58), "curl/8")], false));
        let (all, _) = run(&mut Decoder::new(), &b, None);
        assert_eq!(all, Err(DecoderError::InvalidHuffman));
        let mut d = Decoder::new();
        let (some, table) = run(&mut d, &b, Some(&wanted));
        let some = some.expect("the bad value is never decoded");
        assert_eq!(
            some,
            vec![
                (b":method".to_vec(), b"GET".to_vec()),
                (b"user-agent".to_vec(), b"curl/8".to_vec())
            ]
        );
        assert_eq!(
            table,
            vec![Some((b"user-agent".to_vec(), b"curl/8".to_vec()))]
        );
        // A cut block is still an error.
        assert_eq!(
            run(&mut Decoder::new(), &b[..5], Some(&wanted)).0,
            Err(DecoderError::NeedMore)
        );
    }

    fn rep_strategy() -> impl Strategy<Value = (u8, usize, bool, String)> {
        // (form, static name index, literal name?, value)
        (0u8..4, 1usize..62, any::<bool>(), "[ -~]{0,12}")
    }

    proptest! {
        /// Blocks of every representation, Huffman or not: where `decode`
        /// succeeds, `decode_wanted` delivers every wanted field of it, in
        /// order, and otherwise only fields `decode` delivered too (the
        /// indexed ones it has no reason to drop), and leaves the same
        /// table.
        #[test]
        fn wanted_fields_are_the_filtered_decode(
            reps in proptest::collection::vec(rep_strategy(), 0..12),
            huffman in any::<bool>(),
        ) {
            let names = ["user-agent", "x-custom", ":path", "date"];
            let reps: Vec<Rep> = reps
                .iter()
                .enumerate()
                .map(|(i, (form, idx, literal, value))| {
                    let name = if *literal { Name::Lit(names[i % names.len()]) } else { Name::Idx(*idx) };
                    match form {
                        0 => Rep::Indexed(*idx),
                        1 => Rep::Inc(name, value),
                        2 => Rep::NoIdx(name, value),
                        _ => Rep::Never(name, value),
                    }
                })
                .collect();
            let b = block_with(&reps, huffman);
            let (mut a, mut f) = (Decoder::new(), Decoder::new());
            let (all, table_all) = run(&mut a, &b, None);
            let (some, table_some) = run(&mut f, &b, Some(&wanted));
            let all = all.expect("a well-formed block");
            let some = some.expect("a well-formed block");
            let keep = |v: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
                v.iter().filter(|(n, _)| wanted(n)).cloned().collect()
            };
            prop_assert_eq!(keep(&some), keep(&all));
            let mut rest = all.iter();
            prop_assert!(some.iter().all(|f| rest.any(|g| g == f)), "not a subsequence");
            prop_assert_eq!(table_some, table_all);
        }
    }

    #[test]
    fn integers_rfc_c1() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with 5 bits; C.1.3: 42 at 8 bits.
        let mut p = 0;
        assert_eq!(decode_int(&[0x0a], &mut p, 5), Ok(10));
        p = 0;
        assert_eq!(decode_int(&[0x1f, 0x9a, 0x0a], &mut p, 5), Ok(1337));
        assert_eq!(p, 3);
        p = 0;
        assert_eq!(decode_int(&[0x2a], &mut p, 8), Ok(42));
        p = 0;
        assert_eq!(
            decode_int(&[0x1f, 0x9a], &mut p, 5),
            Err(DecoderError::NeedMore)
        );
        p = 0;
        let long = [0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            decode_int(&long, &mut p, 5),
            Err(DecoderError::IntegerOverflow)
        );
    }
}
