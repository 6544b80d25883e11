//! The `*tls.Conn` → fd offsets from the binary's own DWARF, when it has
//! some (not built with `-ldflags=-w`).
//!
//! Go emits one `DW_TAG_structure_type` per Go type, named with the package
//! path (`crypto/tls.Conn`, `net.conn`, `net.netFD`, `internal/poll.FD`), with
//! `DW_TAG_member` children carrying a constant `DW_AT_data_member_location`.
//! Since Go 1.11 the linker zlib-compresses DWARF (SHF_COMPRESSED in 1.19;
//! `.zdebug_*` in some older releases); a compressed section is inflated only
//! if its uncompressed size is at most [`MAX_SECTION`], and only the three
//! sections this needs (`.debug_info`, `.debug_abbrev`, `.debug_str`).

use std::borrow::Cow;

use gimli::{AttributeValue, EndianSlice, SectionId};
use object::read::elf::ElfFile64;
use object::{LittleEndian, Object, ObjectSection};

use crate::ConnFdOffsets;

/// Largest uncompressed size of one DWARF section inflated (64 MiB).
pub const MAX_SECTION: u64 = 64 << 20;

/// What the DWARF said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DwarfOutcome {
    /// No `.debug_info` / `.zdebug_info`.
    Absent,
    /// A section needed is larger than [`MAX_SECTION`] uncompressed: skipped.
    TooLarge(u64),
    /// All four members found.
    Found(ConnFdOffsets),
    /// DWARF is there but this struct or member is not (e.g. the binary has
    /// no `crypto/tls`, or a future version renamed a field).
    Incomplete(&'static str),
    /// DWARF could not be read.
    Malformed(String),
}

/// `(struct, member)` pairs, in `ConnFdOffsets` field order.
pub const MEMBERS: [(&str, &str); 4] = [
    ("crypto/tls.Conn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "pfd"),
    ("internal/poll.FD", "Sysfd"),
];

fn load_section<'a>(
    file: &ElfFile64<'a, LittleEndian>,
    name: &str,
) -> Result<Cow<'a, [u8]>, DwarfOutcome> {
    // object also finds the `.zdebug_` spelling of `.debug_` names.
    let Some(section) = file.section_by_name(name) else {
        return Ok(Cow::Borrowed(&[]));
    };
    let compressed = section
        .compressed_data()
        .map_err(|e| DwarfOutcome::Malformed(format!("{name}: {e}")))?;
    if compressed.format != object::CompressionFormat::None
        && compressed.uncompressed_size > MAX_SECTION
    {
        return Err(DwarfOutcome::TooLarge(compressed.uncompressed_size));
    }
    compressed
        .decompress()
        .map_err(|e| DwarfOutcome::Malformed(format!("{name}: {e}")))
}

/// Reads the offsets from the DWARF of `file`.
pub fn read_offsets(file: &ElfFile64<'_, LittleEndian>) -> DwarfOutcome {
    if file.section_by_name(".debug_info").is_none() {
        return DwarfOutcome::Absent;
    }
    let mut sections = [
        Cow::Borrowed(&[][..]),
        Cow::Borrowed(&[][..]),
        Cow::Borrowed(&[][..]),
    ];
    for (slot, name) in sections
        .iter_mut()
        .zip([".debug_info", ".debug_abbrev", ".debug_str"])
    {
        match load_section(file, name) {
            Ok(bytes) => *slot = bytes,
            Err(outcome) => return outcome,
        }
    }
    let [info, abbrev, strs] = &sections;
    offsets_from_sections(info, abbrev, strs)
}

/// The search itself, over raw (uncompressed) section bytes; public for
/// fuzzing and tests.
pub fn offsets_from_sections(info: &[u8], abbrev: &[u8], strs: &[u8]) -> DwarfOutcome {
    match search(info, abbrev, strs) {
        Ok(found) => {
            for (i, value) in found.iter().enumerate() {
                if value.is_none() {
                    return DwarfOutcome::Incomplete(MEMBERS.get(i).map_or("?", |m| m.0));
                }
            }
            let get = |i: usize| found.get(i).copied().flatten().unwrap_or(0);
            DwarfOutcome::Found(ConnFdOffsets {
                tls_conn_conn: get(0),
                net_conn_fd: get(1),
                netfd_pfd: get(2),
                pfd_sysfd: get(3),
            })
        }
        Err(e) => DwarfOutcome::Malformed(e.to_string()),
    }
}

fn search(info: &[u8], abbrev: &[u8], strs: &[u8]) -> gimli::Result<[Option<u64>; 4]> {
    let endian = gimli::LittleEndian;
    let load = |id: SectionId| -> gimli::Result<EndianSlice<'_, gimli::LittleEndian>> {
        let bytes: &[u8] = match id {
            SectionId::DebugInfo => info,
            SectionId::DebugAbbrev => abbrev,
            SectionId::DebugStr => strs,
            _ => &[],
        };
        Ok(EndianSlice::new(bytes, endian))
    };
    let dwarf = gimli::Dwarf::load(load)?;
    let mut found: [Option<u64>; 4] = [None; 4];
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        // Not `dwarf.unit()`: that also parses the line program, whose
        // section is deliberately not loaded.
        let abbrevs = dwarf.abbreviations(&header)?;
        let mut entries = header.entries(&abbrevs);
        let mut depth: isize = 0;
        // (index into MEMBERS, depth of the struct DIE) while inside a wanted struct.
        let mut inside: Option<(usize, isize)> = None;
        while let Some((delta, entry)) = entries.next_dfs()? {
            depth = depth.saturating_add(delta);
            if let Some((_, d)) = inside {
                if depth <= d {
                    inside = None;
                }
            }
            let tag = entry.tag();
            if tag == gimli::DW_TAG_structure_type {
                let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                    continue;
                };
                let Some(name) = string(&dwarf, name) else {
                    continue;
                };
                inside = MEMBERS
                    .iter()
                    .position(|(s, _)| s.as_bytes() == name)
                    .filter(|&i| found.get(i).is_some_and(|f| f.is_none()))
                    .map(|i| (i, depth));
            } else if let (Some((i, d)), gimli::DW_TAG_member) = (inside, tag) {
                if depth != d.saturating_add(1) {
                    continue;
                }
                let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                    continue;
                };
                let Some(name) = string(&dwarf, name) else {
                    continue;
                };
                if MEMBERS.get(i).map(|m| m.1.as_bytes()) != Some(name) {
                    continue;
                }
                let location = match entry.attr_value(gimli::DW_AT_data_member_location)? {
                    Some(AttributeValue::Exprloc(expr)) => plus_uconst(expr.0.slice()),
                    Some(v) => v.udata_value(),
                    None => None,
                };
                if let (Some(slot), Some(location)) = (found.get_mut(i), location) {
                    *slot = Some(location);
                }
            }
            if found.iter().all(Option::is_some) {
                return Ok(found);
            }
        }
    }
    Ok(found)
}

type Slice<'a> = EndianSlice<'a, gimli::LittleEndian>;

/// An inline (`DW_FORM_string`, what Go writes) or `.debug_str` name.
fn string<'a>(
    dwarf: &gimli::Dwarf<Slice<'a>>,
    value: AttributeValue<Slice<'a>>,
) -> Option<&'a [u8]> {
    match value {
        AttributeValue::String(s) => Some(s.slice()),
        AttributeValue::DebugStrRef(offset) => {
            dwarf.debug_str.get_str(offset).ok().map(|s| s.slice())
        }
        _ => None,
    }
}

/// `DW_OP_plus_uconst n` (the DWARF 2 form of a member offset).
fn plus_uconst(expr: &[u8]) -> Option<u64> {
    let (&op, rest) = expr.split_first()?;
    if op != gimli::DW_OP_plus_uconst.0 {
        return None;
    }
    let mut r = EndianSlice::new(rest, gimli::LittleEndian);
    gimli::Reader::read_uleb128(&mut r).ok()
}
