//! Decoding of the raw BTF blob: header, type section and string section.
//!
//! Every read is bounds-checked; nothing here indexes a slice without checking,
//! so malformed input yields [`BtfError`] and never a panic.

use crate::BtfError;

/// `btf_header.magic` as read in the blob's own byte order.
pub(crate) const BTF_MAGIC: u16 = 0xEB9F;
/// Size of the version-1 `struct btf_header`.
pub(crate) const HEADER_LEN: usize = 24;
/// Size of `struct btf_type` (name_off, info, size/type).
const TYPE_LEN: usize = 12;

// BTF_KIND_* values from include/uapi/linux/btf.h.
pub(crate) const KIND_INT: u8 = 1;
pub(crate) const KIND_PTR: u8 = 2;
pub(crate) const KIND_ARRAY: u8 = 3;
pub(crate) const KIND_STRUCT: u8 = 4;
pub(crate) const KIND_UNION: u8 = 5;
pub(crate) const KIND_ENUM: u8 = 6;
pub(crate) const KIND_FWD: u8 = 7;
pub(crate) const KIND_TYPEDEF: u8 = 8;
pub(crate) const KIND_VOLATILE: u8 = 9;
pub(crate) const KIND_CONST: u8 = 10;
pub(crate) const KIND_RESTRICT: u8 = 11;
pub(crate) const KIND_FUNC: u8 = 12;
pub(crate) const KIND_FUNC_PROTO: u8 = 13;
pub(crate) const KIND_VAR: u8 = 14;
pub(crate) const KIND_DATASEC: u8 = 15;
pub(crate) const KIND_FLOAT: u8 = 16;
pub(crate) const KIND_DECL_TAG: u8 = 17;
pub(crate) const KIND_TYPE_TAG: u8 = 18;
pub(crate) const KIND_ENUM64: u8 = 19;

/// One decoded `struct btf_type`, with the few trailing fields this crate uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Type {
    pub kind: u8,
    pub kind_flag: bool,
    pub vlen: u16,
    pub name_off: u32,
    /// `size` for INT, ENUM, ENUM64, STRUCT, UNION, FLOAT, DATASEC; `type` otherwise.
    pub size_or_type: u32,
    /// INT: the encoding word. ARRAY: element type id. STRUCT/UNION: index of the
    /// first member in [`Parsed::members`]. Otherwise 0.
    pub a: u32,
    /// ARRAY: number of elements. Otherwise 0.
    pub b: u32,
}

/// One `struct btf_member`, verbatim.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Bit offset; with the parent's kind_flag, bits 24..32 hold the bitfield size.
    pub offset: u32,
}

/// The decoded blob.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// Index 0 is `void` (a placeholder); type id N is `types[N]`.
    pub types: Vec<Type>,
    pub members: Vec<Member>,
    pub strings: Vec<u8>,
}

/// Bounds-checked cursor over one section, in the blob's byte order.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn u32(&mut self, what: &'static str) -> Result<u32, BtfError> {
        let end = self.pos.checked_add(4).ok_or(BtfError::Truncated(what))?;
        let bytes: [u8; 4] = self
            .data
            .get(self.pos..end)
            .and_then(|s| s.try_into().ok())
            .ok_or(BtfError::Truncated(what))?;
        self.pos = end;
        Ok(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    /// Skip `count` records of `size` bytes each, checking they are present.
    fn skip(&mut self, count: usize, size: usize, what: &'static str) -> Result<(), BtfError> {
        let len = count.checked_mul(size).ok_or(BtfError::Truncated(what))?;
        let end = self.pos.checked_add(len).ok_or(BtfError::Truncated(what))?;
        if end > self.data.len() {
            return Err(BtfError::Truncated(what));
        }
        self.pos = end;
        Ok(())
    }

    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// A section's bytes, given its offset and length relative to the end of the header.
fn section<'a>(
    body: &'a [u8],
    off: u32,
    len: u32,
    what: &'static str,
) -> Result<&'a [u8], BtfError> {
    let start = off as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(BtfError::Truncated(what))?;
    body.get(start..end).ok_or(BtfError::Truncated(what))
}

/// Decode a whole BTF blob.
pub(crate) fn parse(data: &[u8]) -> Result<Parsed, BtfError> {
    let magic = data.get(0..2).ok_or(BtfError::Truncated("header"))?;
    let big_endian = match [magic[0], magic[1]] {
        m if u16::from_le_bytes(m) == BTF_MAGIC => false,
        m if u16::from_be_bytes(m) == BTF_MAGIC => true,
        m => return Err(BtfError::BadMagic(u16::from_le_bytes(m))),
    };
    let mut hdr = Reader {
        data: data
            .get(..HEADER_LEN)
            .ok_or(BtfError::Truncated("header"))?,
        pos: 0,
        big_endian,
    };
    let _magic_version_flags = hdr.u32("header")?;
    let version = data[2]; // in bounds: `hdr` above holds HEADER_LEN bytes
    if version != 1 {
        return Err(BtfError::UnsupportedVersion(version));
    }
    let hdr_len = hdr.u32("header")? as usize;
    let (type_off, type_len) = (hdr.u32("header")?, hdr.u32("header")?);
    let (str_off, str_len) = (hdr.u32("header")?, hdr.u32("header")?);
    if hdr_len < HEADER_LEN {
        return Err(BtfError::Malformed(format!(
            "header length {hdr_len} is below the minimum {HEADER_LEN}"
        )));
    }
    let body = data.get(hdr_len..).ok_or(BtfError::Truncated("header"))?;
    let type_sec = section(body, type_off, type_len, "type section")?;
    let strings = section(body, str_off, str_len, "string section")?.to_vec();

    let mut rd = Reader {
        data: type_sec,
        pos: 0,
        big_endian,
    };
    // A record is at least 12 bytes, which bounds the allocation by the input size.
    let mut types = Vec::with_capacity(type_sec.len() / TYPE_LEN + 1);
    types.push(Type {
        kind: 0,
        kind_flag: false,
        vlen: 0,
        name_off: 0,
        size_or_type: 0,
        a: 0,
        b: 0,
    });
    let mut members = Vec::new();
    while !rd.at_end() {
        let id = types.len();
        let name_off = rd.u32("type record")?;
        let info = rd.u32("type record")?;
        let size_or_type = rd.u32("type record")?;
        let vlen = (info & 0xffff) as u16;
        let kind = ((info >> 24) & 0x1f) as u8;
        let mut t = Type {
            kind,
            kind_flag: info >> 31 == 1,
            vlen,
            name_off,
            size_or_type,
            a: 0,
            b: 0,
        };
        let n = vlen as usize;
        match kind {
            KIND_INT => t.a = rd.u32("INT encoding")?,
            KIND_ARRAY => {
                t.a = rd.u32("ARRAY record")?;
                let _index_type = rd.u32("ARRAY record")?;
                t.b = rd.u32("ARRAY record")?;
            }
            KIND_STRUCT | KIND_UNION => {
                // Check the whole member list is present before allocating for it.
                let mut probe = Reader { ..rd };
                probe.skip(n, 12, "struct members")?;
                t.a = u32::try_from(members.len())
                    .map_err(|_| BtfError::Malformed("too many members".into()))?;
                members.reserve(n);
                for _ in 0..n {
                    members.push(Member {
                        name_off: rd.u32("struct members")?,
                        type_id: rd.u32("struct members")?,
                        offset: rd.u32("struct members")?,
                    });
                }
            }
            KIND_ENUM | KIND_FUNC_PROTO => rd.skip(n, 8, "enum values or params")?,
            KIND_DATASEC | KIND_ENUM64 => rd.skip(n, 12, "datasec vars or enum64 values")?,
            KIND_VAR | KIND_DECL_TAG => rd.skip(1, 4, "VAR or DECL_TAG record")?,
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
            | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => {}
            _ => return Err(BtfError::UnknownKind { id, kind }),
        }
        types.push(t);
    }
    Ok(Parsed {
        types,
        members,
        strings,
    })
}
