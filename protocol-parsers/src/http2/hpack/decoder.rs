//! HPACK header block decoding (RFC 7541 §6): indexed fields, the three
//! literal forms, dynamic table size updates, integers and strings.
//!
//! A block is decoded whole (the session buffers HEADERS + CONTINUATION up to
//! its limit). Each decoded field is handed to a callback as borrowed bytes:
//! nothing is allocated per field except entries inserted into the dynamic
//! table; Huffman strings are decoded into two reused scratch buffers.
//!
//! Does not: validate header names/values (RFC 9113 §8.2), enforce
//! SETTINGS_MAX_HEADER_LIST_SIZE, or encode (see [`super::huffman::encode`]
//! for the string part used by test fixtures).

use super::huffman;
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

    /// Decodes one complete header block, calling `field(name, value)` for each
    /// field that could be resolved.
    pub fn decode(
        &mut self,
        block: &[u8],
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
        huffman::decode(raw, scratch).map_err(|_| DecoderError::InvalidHuffman)?;
        Ok(scratch.as_slice())
    } else {
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
