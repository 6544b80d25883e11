//! The Go version from `.go.buildinfo` (Go's `debug/buildinfo/buildinfo.go`).
//!
//! A 32-byte header: `"\xff Go buildinf:"` (14 bytes), pointer size (byte
//! 14), flags (byte 15). With flags & 2 (Go 1.18+) the version follows the
//! header inline as a uvarint length and bytes. Before (Go ≤ 1.17) byte 15 is
//! the endianness (0 little) and offset 16 holds a pointer to a Go string
//! header `(ptr, len)` for the version, to be resolved through the segments.

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{LittleEndian, Object, ObjectSection};

use crate::{elf, GoVersion};

/// The header magic.
pub const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
/// A version string longer than this is corrupt.
const MAX_VERSION_LEN: u64 = 256;
/// How far into the first data segment to look when there is no section
/// (as `debug/buildinfo` does).
const SCAN_LEN: usize = 64 * 1024;

/// Why the version could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildInfoError {
    /// No `.go.buildinfo` section and no header at the start of the data segment.
    #[error("no .go.buildinfo")]
    Missing,
    /// The header or the string it points at is malformed.
    #[error("malformed .go.buildinfo: {0}")]
    Malformed(&'static str),
    /// The string is there but is not a `goX.Y[.Z]` release version.
    #[error("unrecognised Go version {0:?}")]
    Unrecognised(String),
}

fn read_uvarint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, data.get(i + 1..)?));
        }
    }
    None
}

/// The raw version string from the bytes of a `.go.buildinfo` section (or
/// of memory starting at its header). `resolve(vaddr, len)` returns the
/// file bytes at a virtual address, for the pre-1.18 pointer form.
pub fn parse_version_string<'a>(
    section: &'a [u8],
    resolve: &dyn Fn(u64, u64) -> Option<&'a [u8]>,
) -> Result<String, BuildInfoError> {
    let header = section
        .get(..HEADER_LEN)
        .ok_or(BuildInfoError::Malformed("truncated header"))?;
    if header.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(BuildInfoError::Malformed("bad magic"));
    }
    let ptr_size = header.get(14).copied().unwrap_or(0);
    let flags = header.get(15).copied().unwrap_or(0);
    let bytes: &[u8] = if flags & 2 != 0 {
        let rest = section.get(HEADER_LEN..).unwrap_or(&[]);
        let (len, rest) = read_uvarint(rest).ok_or(BuildInfoError::Malformed("bad length"))?;
        if len > MAX_VERSION_LEN {
            return Err(BuildInfoError::Malformed("version too long"));
        }
        rest.get(..len as usize)
            .ok_or(BuildInfoError::Malformed("version past the end"))?
    } else {
        if flags != 0 {
            return Err(BuildInfoError::Malformed("big-endian"));
        }
        let word = |b: &[u8], off: usize| -> Option<u64> {
            match ptr_size {
                8 => Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?)),
                4 => Some(u64::from(u32::from_le_bytes(
                    b.get(off..off + 4)?.try_into().ok()?,
                ))),
                _ => None,
            }
        };
        let ps = u64::from(ptr_size);
        let string_header =
            word(header, 16).ok_or(BuildInfoError::Malformed("bad pointer size"))?;
        let sh = resolve(string_header, 2 * ps).ok_or(BuildInfoError::Malformed(
            "version string header not in the file",
        ))?;
        let ptr = word(sh, 0).ok_or(BuildInfoError::Malformed("bad string header"))?;
        let len =
            word(sh, ptr_size as usize).ok_or(BuildInfoError::Malformed("bad string header"))?;
        if len > MAX_VERSION_LEN {
            return Err(BuildInfoError::Malformed("version too long"));
        }
        resolve(ptr, len).ok_or(BuildInfoError::Malformed("version string not in the file"))?
    };
    if bytes.is_empty() {
        return Err(BuildInfoError::Malformed("empty version"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| BuildInfoError::Malformed("version not UTF-8"))
}

/// [`parse_version_string`], then [`GoVersion::parse`].
pub fn parse_version<'a>(
    section: &'a [u8],
    resolve: &dyn Fn(u64, u64) -> Option<&'a [u8]>,
) -> Result<GoVersion, BuildInfoError> {
    let raw = parse_version_string(section, resolve)?;
    GoVersion::parse(&raw).ok_or(BuildInfoError::Unrecognised(raw))
}

/// The version of a 64-bit little-endian ELF Go executable.
pub fn read_version(data: &[u8]) -> Result<GoVersion, BuildInfoError> {
    let file = ElfFile64::<LittleEndian>::parse(data)
        .map_err(|_| BuildInfoError::Malformed("not a 64-bit little-endian ELF"))?;
    read_version_from(&file, data)
}

pub(crate) fn read_version_from<'a>(
    file: &ElfFile64<'a, LittleEndian>,
    data: &'a [u8],
) -> Result<GoVersion, BuildInfoError> {
    let resolve = |vaddr: u64, len: u64| elf::bytes_at_vaddr(file, data, vaddr, len);
    if let Some(section) = file.section_by_name(".go.buildinfo") {
        let bytes = section
            .data()
            .map_err(|_| BuildInfoError::Malformed("section outside the file"))?;
        return parse_version(bytes, &resolve);
    }
    // No section headers naming it: the start of the first writable,
    // non-executable PT_LOAD, at a 16-byte aligned offset (debug/buildinfo).
    let endian = LittleEndian;
    for ph in file.elf_program_headers() {
        let flags = ph.p_flags(endian);
        if ph.p_type(endian) != object::elf::PT_LOAD
            || flags & (object::elf::PF_X | object::elf::PF_W) != object::elf::PF_W
        {
            continue;
        }
        let Ok(seg) = ph.data(endian, data) else {
            return Err(BuildInfoError::Missing);
        };
        let window = seg.get(..SCAN_LEN.min(seg.len())).unwrap_or(&[]);
        let mut off = 0usize;
        while let Some(chunk) = window.get(off..) {
            if chunk.len() < HEADER_LEN {
                break;
            }
            if chunk.starts_with(MAGIC) {
                return parse_version(chunk, &resolve);
            }
            off += 16;
        }
        return Err(BuildInfoError::Missing);
    }
    Err(BuildInfoError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none<'a>(_: u64, _: u64) -> Option<&'a [u8]> {
        None
    }

    #[test]
    fn inline_form_118() {
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, 2]);
        s.resize(32, 0);
        s.push(8);
        s.extend_from_slice(b"go1.19.8");
        s.push(0);
        let v = parse_version(&s, &none).unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.raw.as_str()),
            (1, 19, 8, "go1.19.8")
        );
    }

    /// The Go ≤ 1.17 pointer form, resolved through a fake address space.
    #[test]
    fn pointer_form_117() {
        let base = 0x50_0000u64;
        let mut mem = [0u8; 64];
        // string header at base+16: ptr=base+32, len=8
        mem[16..24].copy_from_slice(&(base + 32).to_le_bytes());
        mem[24..32].copy_from_slice(&8u64.to_le_bytes());
        mem[32..40].copy_from_slice(b"go1.17.3");
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, 0]);
        s.extend_from_slice(&(base + 16).to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.resize(32, 0);
        let resolve = |va: u64, len: u64| -> Option<&[u8]> {
            let start = usize::try_from(va.checked_sub(base)?).ok()?;
            mem.get(start..start.checked_add(usize::try_from(len).ok()?)?)
        };
        let v = parse_version(&s, &resolve).unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 17, 3));
        // A dangling pointer is an error, not a panic.
        let mut dangling = s.clone();
        dangling[16..24].copy_from_slice(&0xdead_beefu64.to_le_bytes());
        assert!(parse_version(&dangling, &resolve).is_err());
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(
            parse_version(b"", &none),
            Err(BuildInfoError::Malformed("truncated header"))
        );
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, 2]);
        s.resize(32, 0);
        s.extend_from_slice(&[0xff; 12]);
        assert!(parse_version(&s, &none).is_err());
        s.truncate(32);
        s.extend_from_slice(&[5, b'd', b'e', b'v', b'e', b'l']);
        assert!(matches!(
            parse_version(&s, &none),
            Err(BuildInfoError::Unrecognised(_))
        ));
    }
}
