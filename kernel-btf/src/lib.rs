//! Reads the running kernel's BTF (`/sys/kernel/btf/vmlinux`) to find the byte
//! offsets of the kernel struct fields that wirespan's eBPF probes read.
//!
//! The probes are written in Rust with aya-ebpf, which has no CO-RE relocations, so
//! they cannot ask the loader to patch field offsets. Instead user space resolves
//! them here at start-up ([`resolve_kernel_offsets`]) and hands the resulting
//! [`probes_common::KernelOffsets`] to the probes through a map.
//!
//! # What it does
//! - Parses a raw `.BTF` blob (header, type section, string section), in either byte
//!   order. It knows the record size of every kind up to `ENUM64` (19) so it can
//!   walk the whole type section, and fully decodes the kinds offsets depend on:
//!   `INT`, `ARRAY`, `STRUCT`, `UNION`, the modifiers (`TYPEDEF`, `VOLATILE`,
//!   `CONST`, `RESTRICT`, `TYPE_TAG`) and `PTR`.
//! - Looks up a dotted member path (`"__sk_common.skc_daddr"`) in a named struct or
//!   union, descending through anonymous struct/union members, following typedefs
//!   and qualifiers, and decoding both bitfield encodings (`kind_flag` set: size in
//!   the member's top 8 bits; unset: an `INT` type with a bit count / bit offset).
//! - Malformed or truncated input gives a [`BtfError`], never a panic: every read
//!   is bounds-checked and every type-graph walk has a depth limit (cycles).
//!
//! # What it does not do
//! - No CO-RE: it does not relocate or patch eBPF programs; it only computes numbers.
//! - No writing or deduplication of BTF, no split (module) BTF, no `.BTF.ext`, no
//!   ELF parsing: give it the raw blob as the kernel exposes it.
//! - It does not decode enums, functions, variables or data sections (only skips them).
//!
//! # Why not a crate
//! Decoding BTF records is ~200 lines; the part that matters here (descending
//! through anonymous members, both bitfield encodings, duplicate struct names) would
//! have to be written on top of a crate such as `btf-rs` anyway. Owning the parser
//! avoids a dependency whose MSRV and panic behaviour we do not control, and lets
//! the tests pin the no-panic property on malformed input.
#![forbid(unsafe_code)]

mod parse;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parse::{Member, Parsed, Type};
pub use resolve::resolve_kernel_offsets;

/// Where the running kernel exposes its BTF.
pub const SYS_FS_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Deepest nesting of typedefs, qualifiers, arrays or anonymous members followed
/// before the input is declared cyclic.
const MAX_DEPTH: u32 = 64;

/// Errors from reading BTF or looking up members in it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF from {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not BTF data: bad magic {0:#06x} (expected 0xeb9f)")]
    BadMagic(u16),
    #[error("unsupported BTF version {0} (only version 1 is understood)")]
    UnsupportedVersion(u8),
    #[error("BTF data is truncated: {0} runs past the end")]
    Truncated(&'static str),
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { id: usize, kind: u8 },
    #[error("BTF data is malformed: {0}")]
    Malformed(String),
    #[error("kernel BTF has no struct `{0}`")]
    NoSuchStruct(String),
    #[error("kernel BTF has no member `{member}` in struct `{struct_name}` (resolving `{path}`)")]
    NoSuchMember {
        struct_name: String,
        member: String,
        path: String,
    },
    #[error("`{path}`: member `{member}` is not a struct or union, cannot descend into it")]
    NotComposite { path: String, member: String },
    #[error("`{path}` is a bitfield ({bits} bits at bit offset {bit_offset}), it has no byte offset; use member_bit_offset_and_size")]
    Bitfield {
        path: String,
        bit_offset: u32,
        bits: u32,
    },
    #[error("kernel BTF defines struct `{struct_name}` more than once with different layouts for `{member}`")]
    Ambiguous { struct_name: String, member: String },
    #[error("`{path}`: {reason}")]
    Unsupported { path: String, reason: String },
}

/// A member found by path: where it is and how wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Located {
    bit_offset: u64,
    /// Bitfield width in bits, or 0 when the member is not a bitfield.
    bitfield_bits: u32,
    type_id: u32,
}

/// Parsed BTF (the raw `.BTF` blob as in `/sys/kernel/btf/vmlinux`).
///
/// Owns a decoded copy of the type and string sections; the input buffer can be
/// dropped after [`Btf::from_bytes`].
pub struct Btf {
    types: Vec<Type>,
    members: Vec<Member>,
    strings: Vec<u8>,
    /// Named STRUCT and UNION types, by name.
    composites: HashMap<String, Vec<u32>>,
    /// Pointer width in bytes (BTF does not record it; taken from `long`).
    ptr_size: u64,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.type_count())
            .field("named_composites", &self.composites.len())
            .field("ptr_size", &self.ptr_size)
            .finish()
    }
}

impl Btf {
    /// Parse a raw BTF blob.
    pub fn from_bytes(data: &[u8]) -> Result<Self, BtfError> {
        let Parsed {
            types,
            members,
            strings,
        } = parse::parse(data)?;
        let mut btf = Btf {
            types,
            members,
            strings,
            composites: HashMap::new(),
            ptr_size: 8,
        };
        btf.ptr_size = btf.pointer_size();
        let mut composites: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, t) in btf.types.iter().enumerate() {
            if matches!(t.kind, parse::KIND_STRUCT | parse::KIND_UNION) && t.name_off != 0 {
                let name = btf.str_at(t.name_off)?;
                if !name.is_empty() {
                    // `id` < types.len(), which fits u32 since each record is >= 12 bytes
                    // of a section whose length is a u32.
                    composites
                        .entry(name.to_owned())
                        .or_default()
                        .push(id as u32);
                }
            }
        }
        btf.composites = composites;
        Ok(btf)
    }

    /// Read and parse the running kernel's BTF from [`SYS_FS_VMLINUX`].
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_file(SYS_FS_VMLINUX)
    }

    /// Read and parse a raw BTF blob from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&data)
    }

    /// Number of types, not counting the implicit `void` (id 0).
    pub fn type_count(&self) -> usize {
        self.types.len() - 1
    }

    /// Byte offset of `member_path` (dotted, e.g. `"__sk_common.skc_daddr"` or
    /// `"mm"`) inside the struct or union `struct_name`. Anonymous struct/union
    /// members are searched recursively, so `member_offset("mm_struct", "arg_start")`
    /// works although `arg_start` sits in an anonymous struct. A bitfield, or a
    /// member not starting on a byte boundary, is [`BtfError::Bitfield`].
    pub fn member_offset(&self, struct_name: &str, member_path: &str) -> Result<u32, BtfError> {
        let loc = self.locate(struct_name, member_path)?;
        let full = || format!("{struct_name}.{member_path}");
        if loc.bitfield_bits != 0 || loc.bit_offset % 8 != 0 {
            let (bit_offset, bits) = self.bit_offset_and_size(&loc, &full())?;
            return Err(BtfError::Bitfield {
                path: full(),
                bit_offset,
                bits,
            });
        }
        u32::try_from(loc.bit_offset / 8).map_err(|_| BtfError::Unsupported {
            path: full(),
            reason: "offset does not fit in 32 bits".into(),
        })
    }

    /// Bit offset and size in bits of `member_path` inside `struct_name`. For a
    /// bitfield the size is its declared width; otherwise it is 8 × the size of the
    /// member's type (e.g. `(4272, 16)` for a `u16` at byte 534).
    pub fn member_bit_offset_and_size(
        &self,
        struct_name: &str,
        member_path: &str,
    ) -> Result<(u32, u32), BtfError> {
        let loc = self.locate(struct_name, member_path)?;
        self.bit_offset_and_size(&loc, &format!("{struct_name}.{member_path}"))
    }

    /// Size in bytes of the struct or union `struct_name`.
    pub fn struct_size(&self, struct_name: &str) -> Result<u32, BtfError> {
        let ids = self.candidates(struct_name)?;
        let first = self.ty(ids[0])?.size_or_type;
        for &id in &ids[1..] {
            if self.ty(id)?.size_or_type != first {
                return Err(BtfError::Ambiguous {
                    struct_name: struct_name.to_owned(),
                    member: "<size>".into(),
                });
            }
        }
        Ok(first)
    }

    fn bit_offset_and_size(&self, loc: &Located, path: &str) -> Result<(u32, u32), BtfError> {
        let too_big = |what: &str| BtfError::Unsupported {
            path: path.to_owned(),
            reason: format!("{what} does not fit in 32 bits"),
        };
        let bits = if loc.bitfield_bits != 0 {
            u64::from(loc.bitfield_bits)
        } else {
            let bytes = self.type_size(loc.type_id, path)?;
            bytes.checked_mul(8).ok_or_else(|| too_big("size"))?
        };
        let bits = u32::try_from(bits).map_err(|_| too_big("size"))?;
        let off = u32::try_from(loc.bit_offset).map_err(|_| too_big("bit offset"))?;
        Ok((off, bits))
    }

    // ---- internals -------------------------------------------------------

    fn ty(&self, id: u32) -> Result<&Type, BtfError> {
        self.types.get(id as usize).ok_or_else(|| {
            BtfError::Malformed(format!("reference to type id {id}, which does not exist"))
        })
    }

    fn str_at(&self, off: u32) -> Result<&str, BtfError> {
        let bad = |why: &str| BtfError::Malformed(format!("string offset {off}: {why}"));
        let tail = self
            .strings
            .get(off as usize..)
            .ok_or_else(|| bad("past the end of the string section"))?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("string is not NUL-terminated"))?;
        std::str::from_utf8(&tail[..end]).map_err(|_| bad("string is not UTF-8"))
    }

    fn name(&self, t: &Type) -> Result<&str, BtfError> {
        if t.name_off == 0 {
            Ok("")
        } else {
            self.str_at(t.name_off)
        }
    }

    fn candidates(&self, struct_name: &str) -> Result<&[u32], BtfError> {
        match self.composites.get(struct_name) {
            Some(ids) if !ids.is_empty() => Ok(ids),
            _ => Err(BtfError::NoSuchStruct(struct_name.to_owned())),
        }
    }

    /// Follow typedefs and qualifiers to the underlying type id.
    fn skip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind {
                parse::KIND_TYPEDEF
                | parse::KIND_VOLATILE
                | parse::KIND_CONST
                | parse::KIND_RESTRICT
                | parse::KIND_TYPE_TAG => id = t.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(BtfError::Malformed(format!(
            "typedef/qualifier chain from type {id} is too long (cycle?)"
        )))
    }

    /// Size in bytes of a type, as the C compiler lays it out.
    fn type_size(&self, id: u32, path: &str) -> Result<u64, BtfError> {
        let mut id = id;
        let mut mult: u64 = 1;
        for _ in 0..MAX_DEPTH {
            id = self.skip_modifiers(id)?;
            let t = self.ty(id)?;
            let base = match t.kind {
                parse::KIND_INT
                | parse::KIND_ENUM
                | parse::KIND_ENUM64
                | parse::KIND_STRUCT
                | parse::KIND_UNION
                | parse::KIND_FLOAT => u64::from(t.size_or_type),
                parse::KIND_PTR => self.ptr_size,
                parse::KIND_ARRAY => {
                    mult = mult.checked_mul(u64::from(t.b)).ok_or_else(|| {
                        BtfError::Malformed(format!("array size overflows at type {id}"))
                    })?;
                    id = t.a;
                    continue;
                }
                kind => {
                    return Err(BtfError::Unsupported {
                        path: path.to_owned(),
                        reason: format!("member type {id} (kind {kind}) has no size"),
                    })
                }
            };
            return base
                .checked_mul(mult)
                .ok_or_else(|| BtfError::Malformed(format!("size of type {id} overflows")));
        }
        Err(BtfError::Malformed(format!(
            "array nesting from type {id} is too deep (cycle?)"
        )))
    }

    /// BTF does not record pointer width; take it from `long`, as libbpf does,
    /// defaulting to 8.
    fn pointer_size(&self) -> u64 {
        self.types
            .iter()
            .filter(|t| t.kind == parse::KIND_INT && (t.size_or_type == 4 || t.size_or_type == 8))
            .find(|t| matches!(self.name(t), Ok("long int" | "long unsigned int")))
            .map_or(8, |t| u64::from(t.size_or_type))
    }

    /// Find `member_path` in every struct named `struct_name`; they must agree.
    fn locate(&self, struct_name: &str, member_path: &str) -> Result<Located, BtfError> {
        let mut found: Option<Located> = None;
        let mut first_err = None;
        for &id in self.candidates(struct_name)? {
            match self.locate_in(id, struct_name, member_path) {
                Ok(loc) => match found {
                    Some(prev)
                        if prev.bit_offset != loc.bit_offset
                            || prev.bitfield_bits != loc.bitfield_bits =>
                    {
                        return Err(BtfError::Ambiguous {
                            struct_name: struct_name.to_owned(),
                            member: member_path.to_owned(),
                        })
                    }
                    Some(_) => {}
                    None => found = Some(loc),
                },
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (found, first_err) {
            (Some(loc), _) => Ok(loc),
            (None, Some(e)) => Err(e),
            (None, None) => Err(BtfError::NoSuchStruct(struct_name.to_owned())),
        }
    }

    fn locate_in(&self, id: u32, struct_name: &str, path: &str) -> Result<Located, BtfError> {
        let full = || format!("{struct_name}.{path}");
        let mut cur_id = id;
        let mut cur_name = struct_name.to_owned();
        let mut total: u64 = 0;
        let mut last: Option<Located> = None;
        for comp in path.split('.') {
            if comp.is_empty() {
                return Err(BtfError::Unsupported {
                    path: full(),
                    reason: "empty component in member path".into(),
                });
            }
            if let Some(prev) = last {
                cur_id = self.skip_modifiers(prev.type_id)?;
                let t = self.ty(cur_id)?;
                if prev.bitfield_bits != 0
                    || !matches!(t.kind, parse::KIND_STRUCT | parse::KIND_UNION)
                {
                    return Err(BtfError::NotComposite {
                        path: full(),
                        member: cur_name,
                    });
                }
                cur_name = match self.name(t)? {
                    "" => "<anonymous>".to_owned(),
                    n => n.to_owned(),
                };
            }
            let loc = self
                .find_member(cur_id, comp, 0)?
                .ok_or_else(|| BtfError::NoSuchMember {
                    struct_name: cur_name.clone(),
                    member: comp.to_owned(),
                    path: full(),
                })?;
            total = total
                .checked_add(loc.bit_offset)
                .ok_or_else(|| BtfError::Malformed(format!("offset of `{}` overflows", full())))?;
            last = Some(loc);
            cur_name = comp.to_owned();
        }
        let last = last.ok_or_else(|| BtfError::Unsupported {
            path: full(),
            reason: "empty member path".into(),
        })?;
        Ok(Located {
            bit_offset: total,
            ..last
        })
    }

    /// Search the members of composite `id` for `name`, descending into anonymous
    /// struct/union members. Offsets are relative to the start of `id`.
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Result<Option<Located>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::Malformed(format!(
                "anonymous members nested too deeply under type {id} (cycle?)"
            )));
        }
        let t = *self.ty(id)?;
        let start = t.a as usize;
        let members = start
            .checked_add(usize::from(t.vlen))
            .and_then(|end| self.members.get(start..end))
            .ok_or_else(|| BtfError::Malformed(format!("member list of type {id} out of range")))?;
        for m in members {
            let (mut bit_offset, mut bitfield_bits) = if t.kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            let m_name = if m.name_off == 0 {
                ""
            } else {
                self.str_at(m.name_off)?
            };
            if m_name.is_empty() {
                let inner = self.skip_modifiers(m.type_id)?;
                if matches!(self.ty(inner)?.kind, parse::KIND_STRUCT | parse::KIND_UNION) {
                    if let Some(loc) = self.find_member(inner, name, depth + 1)? {
                        return Ok(Some(Located {
                            bit_offset: loc.bit_offset + u64::from(bit_offset),
                            ..loc
                        }));
                    }
                }
                continue;
            }
            if m_name != name {
                continue;
            }
            if !t.kind_flag {
                // Old encoding: a bitfield is an INT whose bit count is narrower than
                // its storage or that carries a bit offset of its own.
                let base = self.ty(self.skip_modifiers(m.type_id)?)?;
                if base.kind == parse::KIND_INT {
                    let int_bits = base.a & 0xff;
                    let int_off = (base.a >> 16) & 0xff;
                    if int_off != 0 || u64::from(int_bits) != u64::from(base.size_or_type) * 8 {
                        bitfield_bits = int_bits;
                        bit_offset = bit_offset.checked_add(int_off).ok_or_else(|| {
                            BtfError::Malformed(format!("bit offset overflows in type {id}"))
                        })?;
                    }
                }
            }
            return Ok(Some(Located {
                bit_offset: u64::from(bit_offset),
                bitfield_bits,
                type_id: m.type_id,
            }));
        }
        Ok(None)
    }
}
