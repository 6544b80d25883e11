//! Reads, from a Go executable on disk, what the agent needs to hook Go's
//! `crypto/tls` with uprobes: the Go version, the entry and every RET
//! instruction of `crypto/tls.(*Conn).Write` and `crypto/tls.(*Conn).Read`,
//! and the struct offsets that lead from a `*tls.Conn` to its socket fd.
//!
//! It does not attach anything, load eBPF, or guess. It works on stripped
//! binaries (`go build -ldflags='-s -w'`: no `.symtab`, no DWARF): function
//! addresses come from the runtime's own table, `.gopclntab` ([`pclntab`]),
//! the version from `.go.buildinfo` ([`buildinfo`]), RETs from decoding the
//! machine code ([`returns`]), offsets from DWARF when present
//! ([`dwarf_offsets`]) and otherwise from a table of layouts verified against
//! the Go source ([`offsets_for_version`]).
//!
//! Scope: ELF, x86-64 (64-bit little-endian), Go ≥ 1.17 (the register ABI
//! the probes read arguments with). Everything else is a typed error with a
//! short [`GoBinaryError::reason`] label for metrics.
//!
//! # What Go 1.19 binaries look like (measured, see tests/)
//! - pclntab magic 0xfffffff0; the header's textStart equals `.text`'s
//!   address (0x401000 for a non-PIE build).
//! - `crypto/tls.(*Conn).Write` and `.Read` each appear once in the pclntab
//!   (no ABI wrapper under the same name: wrappers exist only for functions
//!   called from assembly). If a future binary has several entries under one
//!   name, the largest is used (a wrapper is a few bytes of tail call).
//! - DWARF sections are SHF_COMPRESSED (zlib) unless built with `-w`.
//!
//! # Offsets table
//! Only Go 1.19.x, verified field by field from the Go 1.19 source
//! (`crypto/tls/conn.go` `Conn.conn` is the first field; `net/net.go`
//! `conn{fd *netFD}`; `net/fd_posix.go` `netFD.pfd` first; `internal/poll`
//! `FD{fdmu fdMutex; Sysfd int}` with `fdMutex{state uint64; rsema, wsema
//! uint32}` = 16 bytes). Other versions get `None` unless their DWARF says
//! otherwise: the layouts have not been checked against those sources here.
//!
//! # Memory and time
//! [`inspect_tls`] maps the file (never reads it into a `Vec`); the parsers
//! borrow from the mapping and allocate only the RET lists and, for DWARF,
//! the inflated `.debug_info`/`.debug_abbrev`/`.debug_str` (each ≤
//! [`dwarf_offsets::MAX_SECTION`], else DWARF is skipped).
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]
#![deny(unsafe_code)]

pub mod buildinfo;
pub mod dwarf_offsets;
mod elf;
pub mod pclntab;
pub mod returns;

use std::fmt;
use std::path::Path;

use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, SectionTable};
use object::{LittleEndian, Object, ObjectSection};

/// Name of the write method hooked.
pub const WRITE_FUNCTION: &str = "crypto/tls.(*Conn).Write";
/// Name of the read method hooked.
pub const READ_FUNCTION: &str = "crypto/tls.(*Conn).Read";

/// Largest function decoded (the two functions are a few KiB).
const MAX_FUNCTION_LEN: u64 = 1 << 20;

/// A Go release version, from `"go1.19.8"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The string as stored in the binary.
    pub raw: String,
}

impl GoVersion {
    /// Parses `goMAJOR.MINOR[.PATCH]`, ignoring a pre-release suffix
    /// (`go1.21rc2` is 1.21.0) and anything after the first space
    /// (`go1.22.1 X:boringcrypto`). `None` for `devel` builds and junk.
    pub fn parse(raw: &str) -> Option<GoVersion> {
        let token = raw.split_whitespace().next()?;
        let rest = token.strip_prefix("go")?;
        let mut parts = rest.splitn(3, '.');
        let number = |s: &str| -> Option<u32> {
            let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            s.get(..digits).filter(|d| !d.is_empty())?.parse().ok()
        };
        let major_text = parts.next()?;
        let major: u32 = major_text.parse().ok()?;
        let minor = number(parts.next()?)?;
        let patch = match parts.next() {
            Some(p) => number(p)?,
            None => 0,
        };
        Some(GoVersion {
            major,
            minor,
            patch,
            raw: raw.to_string(),
        })
    }

    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// One hooked function.
#[derive(Clone, Debug)]
pub struct GoFunction {
    /// `"crypto/tls.(*Conn).Write"`.
    pub name: &'static str,
    /// Virtual address, from the pclntab.
    pub entry_address: u64,
    /// The next function's entry.
    pub end_address: u64,
    /// Where a uprobe is attached: the entry's offset in the file, through
    /// the PT_LOAD segment that maps it.
    pub entry_file_offset: u64,
    /// File offset of every near RET between entry and end.
    pub return_file_offsets: Vec<u64>,
}

/// Byte offsets from a `*tls.Conn` to the socket fd:
/// `conn.conn` (net.Conn interface: itab word, data word → `*net.TCPConn`,
/// which is `struct{conn}`) → `.fd` (`*netFD`) → `.pfd` (`poll.FD`) →
/// `.Sysfd` (int).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnFdOffsets {
    /// `crypto/tls.Conn.conn`.
    pub tls_conn_conn: u64,
    /// `net.conn.fd`.
    pub net_conn_fd: u64,
    /// `net.netFD.pfd`.
    pub netfd_pfd: u64,
    /// `internal/poll.FD.Sysfd`.
    pub pfd_sysfd: u64,
}

/// Where the offsets came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetsSource {
    /// The binary's DWARF.
    Dwarf,
    /// [`offsets_for_version`].
    VersionTable,
}

/// Everything needed to hook one binary.
#[derive(Clone, Debug)]
pub struct GoTlsTargets {
    pub version: GoVersion,
    pub write: GoFunction,
    pub read: GoFunction,
    /// `None` when neither DWARF nor the table covers this version: the
    /// caller then finds the fd another way. Never guessed.
    pub offsets: Option<(ConnFdOffsets, OffsetsSource)>,
    /// Informational: false for a stripped (`-s`) binary.
    pub has_symtab: bool,
    /// Informational: false for `-w`.
    pub has_dwarf: bool,
}

/// Why a binary cannot be hooked.
#[derive(Debug, thiserror::Error)]
pub enum GoBinaryError {
    #[error("reading the executable: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed ELF: {0}")]
    BadElf(String),
    #[error("not a Go executable (no .go.buildinfo, .note.go.buildid or Go build-id note)")]
    NotGo,
    #[error("unsupported architecture (ELF e_machine {0}, class/endianness must be 64-bit little-endian x86-64)")]
    UnsupportedArch(u16),
    #[error("Go {0} is older than 1.17 (stack-based ABI; the probes read the register ABI)")]
    GoTooOld(GoVersion),
    #[error("Go executable without build info")]
    NoBuildInfo,
    #[error("bad Go build info: {0}")]
    BadBuildInfo(String),
    #[error("no Go function table (.gopclntab)")]
    NoPclntab,
    #[error("bad Go function table: {0}")]
    BadPclntab(&'static str),
    #[error("{0} not in the binary (no crypto/tls)")]
    FunctionMissing(&'static str),
    #[error("{function}: address {address:#x} is not in a file-backed PT_LOAD segment")]
    BadAddress {
        function: &'static str,
        address: u64,
    },
    #[error("{function}: undecodable instruction at {at:#x}; attaching nothing")]
    Undecodable { function: &'static str, at: u64 },
    #[error("{0}: no RET instruction found")]
    NoReturn(&'static str),
}

impl GoBinaryError {
    /// Short snake_case label, for a Prometheus `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            GoBinaryError::Io(_) => "io",
            GoBinaryError::NotElf => "not_elf",
            GoBinaryError::BadElf(_) => "bad_elf",
            GoBinaryError::NotGo => "not_go",
            GoBinaryError::UnsupportedArch(_) => "unsupported_arch",
            GoBinaryError::GoTooOld(_) => "go_too_old",
            GoBinaryError::NoBuildInfo => "no_buildinfo",
            GoBinaryError::BadBuildInfo(_) => "bad_buildinfo",
            GoBinaryError::NoPclntab => "no_pclntab",
            GoBinaryError::BadPclntab(_) => "bad_pclntab",
            GoBinaryError::FunctionMissing(_) => "no_tls",
            GoBinaryError::BadAddress { .. } => "bad_address",
            GoBinaryError::Undecodable { .. } => "undecodable",
            GoBinaryError::NoReturn(_) => "no_return",
        }
    }
}

/// The Go 1.19 layout (see the crate docs for how it was verified).
const GO_1_19: ConnFdOffsets = ConnFdOffsets {
    tls_conn_conn: 0,
    net_conn_fd: 0,
    netfd_pfd: 0,
    pfd_sysfd: 16,
};

/// Offsets for a version whose layout was verified from its source; `None`
/// otherwise (including every version newer than the table).
pub fn offsets_for_version(version: &GoVersion) -> Option<ConnFdOffsets> {
    match (version.major, version.minor) {
        (1, 19) => Some(GO_1_19),
        _ => None,
    }
}

fn has_go_markers<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> bool {
    let Ok(header) = H::parse(data) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    if let Ok(sections) = header.sections(endian, data) {
        let sections: SectionTable<'_, H> = sections;
        if sections.section_by_name(endian, b".go.buildinfo").is_some()
            || sections
                .section_by_name(endian, b".note.go.buildid")
                .is_some()
        {
            return true;
        }
    }
    let Ok(phdrs) = header.program_headers(endian, data) else {
        return false;
    };
    for ph in phdrs {
        let Ok(Some(mut notes)) = ph.notes(endian, data) else {
            continue;
        };
        // ELF_NOTE_GOBUILDID_TAG, name "Go".
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Go" && note.n_type(endian) == 4 {
                return true;
            }
        }
    }
    false
}

/// Cheap check (headers only, no allocation): an ELF file with a
/// `.go.buildinfo` or `.note.go.buildid` section, or a PT_NOTE with a Go
/// build id. Any class, endianness or architecture.
pub fn is_go_executable(data: &[u8]) -> bool {
    match data.get(4) {
        Some(&object::elf::ELFCLASS64) => {
            has_go_markers::<object::elf::FileHeader64<object::Endianness>>(data)
        }
        Some(&object::elf::ELFCLASS32) => {
            has_go_markers::<object::elf::FileHeader32<object::Endianness>>(data)
        }
        _ => false,
    }
}

/// Maps `path` and calls [`inspect_tls_bytes`].
pub fn inspect_tls(path: &Path) -> Result<GoTlsTargets, GoBinaryError> {
    let file = std::fs::File::open(path)?;
    let map = map_file(&file)?;
    inspect_tls_bytes(&map)
}

#[allow(unsafe_code, reason = "memory-maps the file; see the SAFETY note")]
fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this call; the bytes
    // are only ever read through `&[u8]` and every read is bounds-checked.
    // If another process truncates the file while it is mapped, reading the
    // lost pages raises SIGBUS: an executable being run cannot be written
    // (ETXTBSY), and the agent inspects binaries of processes that exist.
    unsafe { memmap2::Mmap::map(file) }
}

/// Everything [`GoTlsTargets`] holds, from the bytes of an executable, with
/// the offsets from DWARF when the binary has it.
pub fn inspect_tls_bytes(data: &[u8]) -> Result<GoTlsTargets, GoBinaryError> {
    inspect(data, true)
}

/// [`inspect_tls_bytes`] without reading DWARF (inflating it takes 10–20 ms
/// for a 7 MB binary, longer than a short-lived client lives): the offsets
/// come from the version table only, and `has_dwarf` says whether
/// [`dwarf_conn_offsets`] can confirm them afterwards.
pub fn inspect_tls_bytes_quick(data: &[u8]) -> Result<GoTlsTargets, GoBinaryError> {
    inspect(data, false)
}

/// The `*tls.Conn` → fd offsets from the executable's own DWARF.
pub fn dwarf_conn_offsets(data: &[u8]) -> Result<dwarf_offsets::DwarfOutcome, GoBinaryError> {
    let file =
        ElfFile64::<LittleEndian>::parse(data).map_err(|e| GoBinaryError::BadElf(e.to_string()))?;
    Ok(dwarf_offsets::read_offsets(&file))
}

fn inspect(data: &[u8], with_dwarf: bool) -> Result<GoTlsTargets, GoBinaryError> {
    if data.get(..4) != Some(&object::elf::ELFMAG[..]) {
        return Err(GoBinaryError::NotElf);
    }
    if !is_go_executable(data) {
        return Err(GoBinaryError::NotGo);
    }
    let class = data.get(4).copied();
    let little = data.get(5).copied() == Some(object::elf::ELFDATA2LSB);
    let machine_bytes: [u8; 2] = data
        .get(18..20)
        .and_then(|b| b.try_into().ok())
        .ok_or(GoBinaryError::NotElf)?;
    let machine = if little {
        u16::from_le_bytes(machine_bytes)
    } else {
        u16::from_be_bytes(machine_bytes)
    };
    if class != Some(object::elf::ELFCLASS64) || !little || machine != object::elf::EM_X86_64 {
        return Err(GoBinaryError::UnsupportedArch(machine));
    }
    let file =
        ElfFile64::<LittleEndian>::parse(data).map_err(|e| GoBinaryError::BadElf(e.to_string()))?;
    check_not_truncated(&file, data.len() as u64)?;

    let version = buildinfo::read_version_from(&file, data).map_err(|e| match e {
        buildinfo::BuildInfoError::Missing => GoBinaryError::NoBuildInfo,
        other => GoBinaryError::BadBuildInfo(other.to_string()),
    })?;
    if !version.at_least(1, 17) {
        return Err(GoBinaryError::GoTooOld(version));
    }

    let table = find_pclntab(&file)?;
    let write = hook_function(&file, data, &table, WRITE_FUNCTION)?;
    let read = hook_function(&file, data, &table, READ_FUNCTION)?;

    let has_symtab = file.section_by_name(".symtab").is_some();
    let has_dwarf = file.section_by_name(".debug_info").is_some();
    let from_dwarf = if has_dwarf && with_dwarf {
        match dwarf_offsets::read_offsets(&file) {
            dwarf_offsets::DwarfOutcome::Found(offsets) => Some(offsets),
            _ => None,
        }
    } else {
        None
    };
    // DWARF describes this very binary: it wins over the table when both exist.
    let offsets = from_dwarf
        .map(|o| (o, OffsetsSource::Dwarf))
        .or_else(|| offsets_for_version(&version).map(|o| (o, OffsetsSource::VersionTable)));

    Ok(GoTlsTargets {
        version,
        write,
        read,
        offsets,
        has_symtab,
        has_dwarf,
    })
}

/// A file cut short (a copy still being written, a partial download) is
/// rejected as a whole rather than half-read: every segment's and section's
/// file bytes must exist.
fn check_not_truncated(file: &ElfFile64<'_, LittleEndian>, len: u64) -> Result<(), GoBinaryError> {
    let endian = LittleEndian;
    for ph in file.elf_program_headers() {
        let end = ph.p_offset(endian).checked_add(ph.p_filesz(endian));
        if end.is_none_or(|end| end > len) {
            return Err(GoBinaryError::BadElf(
                "truncated: a segment ends past the end of the file".into(),
            ));
        }
    }
    for section in file.sections() {
        if let Some((offset, size)) = section.file_range() {
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(GoBinaryError::BadElf(format!(
                    "truncated: section {} ends past the end of the file",
                    section.name().unwrap_or("?")
                )));
            }
        }
    }
    Ok(())
}

/// The `.gopclntab` (`.data.rel.ro.gopclntab` in a PIE) section, or, when
/// neither is named (external linking can merge it into `.data.rel.ro`), a
/// strictly validated header found at an 8-byte aligned offset of
/// `.data.rel.ro` or `.rodata`.
fn find_pclntab<'a>(
    file: &ElfFile64<'a, LittleEndian>,
) -> Result<pclntab::Pclntab<'a>, GoBinaryError> {
    let text_addr = file.section_by_name(".text").map_or(0, |s| s.address());
    // `.data.rel.ro.gopclntab`: -buildmode=pie (internal linking).
    let named = [".gopclntab", ".data.rel.ro.gopclntab"];
    if let Some(section) = named.iter().find_map(|n| file.section_by_name(n)) {
        let bytes = section
            .data()
            .map_err(|_| GoBinaryError::BadPclntab("section outside the file"))?;
        return pclntab::Pclntab::parse(bytes, text_addr)
            .map_err(|e| GoBinaryError::BadPclntab(e.0));
    }
    for name in [".data.rel.ro", ".rodata"] {
        let Some(bytes) = file.section_by_name(name).and_then(|s| s.data().ok()) else {
            continue;
        };
        // Go aligns the table to a pointer; scan 8-byte aligned words for the magic.
        let mut off = 0usize;
        while let Some(rest) = bytes.get(off..) {
            if rest.len() < 8 {
                break;
            }
            if pclntab::looks_like_header(rest) && rest.get(7) == Some(&8) {
                if let Ok(table) = pclntab::Pclntab::parse(rest, text_addr) {
                    return Ok(table);
                }
            }
            off += 8;
        }
    }
    Err(GoBinaryError::NoPclntab)
}

fn hook_function(
    file: &ElfFile64<'_, LittleEndian>,
    data: &[u8],
    table: &pclntab::Pclntab<'_>,
    name: &'static str,
) -> Result<GoFunction, GoBinaryError> {
    // Several entries under one name: take the largest (an ABI wrapper is a
    // short tail call); Go 1.19 has exactly one for both functions.
    let (entry, end) = table
        .find_all(name)
        .max_by_key(|&(entry, end)| end.saturating_sub(entry))
        .ok_or(GoBinaryError::FunctionMissing(name))?;
    let len = end.saturating_sub(entry);
    if len == 0 || len > MAX_FUNCTION_LEN {
        return Err(GoBinaryError::BadPclntab("implausible function size"));
    }
    let bad = GoBinaryError::BadAddress {
        function: name,
        address: entry,
    };
    let entry_file_offset = elf::vaddr_to_offset(file, entry, len).ok_or(bad)?;
    let code = elf::bytes_at_vaddr(file, data, entry, len).ok_or(GoBinaryError::BadAddress {
        function: name,
        address: entry,
    })?;
    let returns = returns::find_returns(code, entry).map_err(|e| GoBinaryError::Undecodable {
        function: name,
        at: e.at,
    })?;
    if returns.is_empty() {
        return Err(GoBinaryError::NoReturn(name));
    }
    let return_file_offsets = returns
        .iter()
        .map(|&ret| entry_file_offset + (ret - entry))
        .collect();
    Ok(GoFunction {
        name,
        entry_address: entry,
        end_address: end,
        entry_file_offset,
        return_file_offsets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = GoVersion::parse("go1.19.8").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 19, 8));
        assert_eq!(v.to_string(), "go1.19.8");
        let v = GoVersion::parse("go1.21rc2").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 21, 0));
        let v = GoVersion::parse("go1.22.1 X:boringcrypto").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 22, 1));
        assert_eq!(GoVersion::parse("go1.20").unwrap().patch, 0);
        for bad in [
            "",
            "go",
            "go1",
            "devel go1.22-abc",
            "1.19.8",
            "go1.x",
            "gox.19",
        ] {
            assert_eq!(GoVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn table_covers_only_verified_versions() {
        let v = |s| GoVersion::parse(s).unwrap();
        assert_eq!(offsets_for_version(&v("go1.19.13")), Some(GO_1_19));
        for other in ["go1.17.13", "go1.18.10", "go1.20.14", "go1.25.0", "go2.0"] {
            assert_eq!(offsets_for_version(&v(other)), None, "{other}");
        }
    }

    #[test]
    fn non_elf_and_garbage() {
        assert_eq!(inspect_tls_bytes(b"").unwrap_err().reason(), "not_elf");
        assert_eq!(
            inspect_tls_bytes(b"#!/bin/sh\n").unwrap_err().reason(),
            "not_elf"
        );
        assert_eq!(
            inspect_tls_bytes(b"\x7fELF\x02\x01\x01")
                .unwrap_err()
                .reason(),
            "not_go"
        );
        assert!(!is_go_executable(b"\x7fELF"));
    }
}
