//! The Go runtime's function table (`.gopclntab`, `runtime.pclntab`), which
//! even a stripped binary keeps because the runtime needs it for stack traces.
//!
//! Layout (Go's `runtime/symtab.go` `pcHeader`, `debug/gosym/pclntab.go`,
//! `cmd/link/internal/ld/pcln.go`; little-endian here, as on amd64):
//!
//! ```text
//! magic u32 | 0 u8 | 0 u8 | minLC u8 | ptrSize u8 | words of ptrSize bytes:
//!   1.16/1.17 (0xfffffffa): nfunc nfiles funcnameOffset cuOffset filetabOffset pctabOffset pclnOffset
//!   1.18/1.19 (0xfffffff0), 1.20+ (0xfffffff1):
//!               nfunc nfiles textStart funcnameOffset cuOffset filetabOffset pctabOffset pclnOffset
//! functab at pclnOffset: nfunc (pc, funcoff) pairs, then one more pc (the end of the last
//!   function). 1.18+: u32 fields, pc relative to textStart; 1.16/1.17: ptrSize words, pc absolute.
//! _func at pclnOffset + funcoff: entry (u32 in 1.18+, uintptr before), then nameoff i32 into
//!   the funcnametab (NUL-terminated names).
//! ```
//!
//! [`Pclntab::parse`] validates every offset and the whole function table up
//! front (at most [`MAX_FUNCS`] entries, sorted entry addresses, every name
//! inside the name table and terminated), so lookups afterwards cannot fail
//! and a corrupted table is an error, never a panic or a large allocation: the
//! parser allocates nothing.

use std::fmt;

/// Go 1.16 and 1.17.
pub const MAGIC_GO116: u32 = 0xffff_fffa;
/// Go 1.18 and 1.19.
pub const MAGIC_GO118: u32 = 0xffff_fff0;
/// Go 1.20 and later (same layout as 1.18 for everything read here).
pub const MAGIC_GO120: u32 = 0xffff_fff1;

/// Upper bound on `nfunc`: a large Go binary (kubelet, ~100 MB) has ~100 k.
pub const MAX_FUNCS: u64 = 4 << 20;

/// Longest function name accepted (Go generics can make long ones).
const MAX_NAME: usize = 64 << 10;

/// Why a table was rejected; the text is a fixed label (see
/// `GoBinaryError::BadPclntab`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PclntabError(pub &'static str);

impl fmt::Display for PclntabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for PclntabError {}

/// The table format, from the magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PclntabVersion {
    /// 0xfffffffa: Go 1.16, 1.17.
    Go116,
    /// 0xfffffff0: Go 1.18, 1.19.
    Go118,
    /// 0xfffffff1: Go 1.20+.
    Go120,
}

/// One function of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function<'a> {
    /// Name bytes as stored (normally UTF-8), without the NUL.
    pub name: &'a [u8],
    /// Entry virtual address.
    pub entry: u64,
    /// The next function's entry (for the last one, the table's end pc).
    pub end: u64,
}

/// A validated function table borrowed from the section bytes.
#[derive(Clone, Debug)]
pub struct Pclntab<'a> {
    version: PclntabVersion,
    nfunc: usize,
    text_start: u64,
    /// `(nfunc * 2 + 1)` fields of `field_size` bytes.
    functab: &'a [u8],
    field_size: usize,
    /// Starts at pclnOffset: funcoff values are relative to it.
    funcdata: &'a [u8],
    funcnametab: &'a [u8],
    ptr_size: usize,
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let b: [u8; 4] = data.get(off..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn u64_at(data: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    let b: [u8; 8] = data.get(off..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn word_at(data: &[u8], off: usize, size: usize) -> Option<u64> {
    match size {
        4 => u32_at(data, off).map(u64::from),
        8 => u64_at(data, off),
        _ => None,
    }
}

/// True when `data` starts with a plausible little-endian pclntab header
/// (magic, two zero pad bytes, minLC in {1,2,4}, ptrSize in {4,8}). Used to
/// look for the table where there is no `.gopclntab` section.
pub fn looks_like_header(data: &[u8]) -> bool {
    let Some(magic) = u32_at(data, 0) else {
        return false;
    };
    matches!(magic, MAGIC_GO116 | MAGIC_GO118 | MAGIC_GO120)
        && data.get(4) == Some(&0)
        && data.get(5) == Some(&0)
        && matches!(data.get(6), Some(1 | 2 | 4))
        && matches!(data.get(7), Some(4 | 8))
}

impl<'a> Pclntab<'a> {
    /// Parses and validates the table. `data` starts at the header (the
    /// `.gopclntab` section's bytes; trailing bytes are fine). `text_addr` is
    /// the `.text` section's address: it is used as the base of 1.18+ entry
    /// offsets only when the header's textStart word is 0 (a relocated, PIE
    /// table whose word is filled in at load time); otherwise the header's
    /// value (`runtime.text`, what the runtime itself uses) wins.
    pub fn parse(data: &'a [u8], text_addr: u64) -> Result<Self, PclntabError> {
        let magic = u32_at(data, 0).ok_or(PclntabError("truncated header"))?;
        let version = match magic {
            MAGIC_GO116 => PclntabVersion::Go116,
            MAGIC_GO118 => PclntabVersion::Go118,
            MAGIC_GO120 => PclntabVersion::Go120,
            _ => {
                return Err(PclntabError(
                    "unknown magic (Go older than 1.16, or not a pclntab)",
                ))
            }
        };
        if !looks_like_header(data) {
            return Err(PclntabError("bad header (pad, minLC or ptrSize)"));
        }
        let ptr_size = usize::from(*data.get(7).ok_or(PclntabError("truncated header"))?);
        let word = |i: usize| -> Result<u64, PclntabError> {
            let off = i
                .checked_mul(ptr_size)
                .and_then(|o| o.checked_add(8))
                .ok_or(PclntabError("truncated header"))?;
            word_at(data, off, ptr_size).ok_or(PclntabError("truncated header"))
        };
        let nfunc = word(0)?;
        if nfunc == 0 {
            return Err(PclntabError("no functions"));
        }
        if nfunc > MAX_FUNCS {
            return Err(PclntabError("nfunc too large"));
        }
        let nfunc = usize::try_from(nfunc).map_err(|_| PclntabError("nfunc too large"))?;
        // Word indexes of funcnameOffset and pclnOffset.
        let (text_start, name_word, pcln_word, field_size) = match version {
            PclntabVersion::Go116 => (0, 2, 6, ptr_size),
            PclntabVersion::Go118 | PclntabVersion::Go120 => {
                let t = word(2)?;
                (if t == 0 { text_addr } else { t }, 3, 7, 4)
            }
        };
        let slice_from = |w: usize| -> Result<&'a [u8], PclntabError> {
            let off = usize::try_from(word(w)?).map_err(|_| PclntabError("offset out of range"))?;
            if off < 8 {
                return Err(PclntabError("offset inside the header"));
            }
            data.get(off..)
                .ok_or(PclntabError("offset past the end of the table"))
        };
        let funcnametab = slice_from(name_word)?;
        let funcdata = slice_from(pcln_word)?;
        let functab_len = nfunc
            .checked_mul(2)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(field_size))
            .ok_or(PclntabError("nfunc too large"))?;
        let functab = funcdata
            .get(..functab_len)
            .ok_or(PclntabError("function table past the end of the section"))?;
        let table = Pclntab {
            version,
            nfunc,
            text_start,
            functab,
            field_size,
            funcdata,
            funcnametab,
            ptr_size,
        };
        table.validate()?;
        Ok(table)
    }

    /// Checks every entry once so that the accessors cannot fail later.
    fn validate(&self) -> Result<(), PclntabError> {
        let mut prev = 0u64;
        for i in 0..=self.nfunc {
            let pc = self.pc(i).ok_or(PclntabError("entry pc out of range"))?;
            if pc < prev {
                return Err(PclntabError("function table not sorted"));
            }
            prev = pc;
            if i < self.nfunc {
                self.name_of(i)
                    .ok_or(PclntabError("bad function record or name"))?;
            }
        }
        Ok(())
    }

    /// Format of the table.
    pub fn version(&self) -> PclntabVersion {
        self.version
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Always false: `parse` rejects an empty table.
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// The base of entry offsets (1.18+), 0 for 1.16/1.17 (absolute pcs).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    fn field(&self, index: usize) -> Option<u64> {
        let off = index.checked_mul(self.field_size)?;
        word_at(self.functab, off, self.field_size)
    }

    /// Entry pc of function `i` (`i == nfunc`: the end of the last one).
    fn pc(&self, i: usize) -> Option<u64> {
        let raw = self.field(i.checked_mul(2)?)?;
        match self.version {
            PclntabVersion::Go116 => Some(raw),
            PclntabVersion::Go118 | PclntabVersion::Go120 => self.text_start.checked_add(raw),
        }
    }

    fn name_of(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.nfunc {
            return None;
        }
        let funcoff = usize::try_from(self.field(i.checked_mul(2)?.checked_add(1)?)?).ok()?;
        // _func: entry (u32 in 1.18+, uintptr before), then nameoff i32.
        let name_field = match self.version {
            PclntabVersion::Go116 => self.ptr_size,
            PclntabVersion::Go118 | PclntabVersion::Go120 => 4,
        };
        let nameoff = u32_at(self.funcdata, funcoff.checked_add(name_field)?)?;
        let nameoff = i32::try_from(nameoff).ok()?; // negative: corrupt
        let start = usize::try_from(nameoff).ok()?;
        let rest = self.funcnametab.get(start..)?;
        let window = rest.get(..MAX_NAME.min(rest.len()))?;
        let len = window.iter().position(|&b| b == 0)?;
        window.get(..len)
    }

    /// Function `i` in table (address) order.
    pub fn function(&self, i: usize) -> Option<Function<'a>> {
        Some(Function {
            name: self.name_of(i)?,
            entry: self.pc(i)?,
            end: self.pc(i.checked_add(1)?)?,
        })
    }

    /// Every function, in address order.
    pub fn functions(&self) -> impl Iterator<Item = Function<'a>> + '_ {
        (0..self.nfunc).filter_map(move |i| self.function(i))
    }

    /// `(entry, end)` of the first function named `name`.
    pub fn find_function(&self, name: &str) -> Option<(u64, u64)> {
        self.find_all(name).next()
    }

    /// `(entry, end)` of every function named `name` (Go can emit more than
    /// one entry under one name, e.g. ABI wrappers), in address order.
    pub fn find_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = (u64, u64)> + 's {
        let wanted = name.as_bytes();
        self.functions()
            .filter(move |f| f.name == wanted)
            .map(|f| (f.entry, f.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1.18-format table with the given (entryoff, name) functions.
    pub(crate) fn build_118(text_start: u64, funcs: &[(u32, &str)], end: u32) -> Vec<u8> {
        let header_len = 8 + 8 * 8;
        let mut names = Vec::new();
        let mut nameoffs = Vec::new();
        for (_, n) in funcs {
            nameoffs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let funcname_off = header_len;
        let pcln_off = funcname_off + names.len();
        let functab_len = (funcs.len() * 2 + 1) * 4;
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC_GO118.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            funcs.len() as u64,
            0,
            text_start,
            funcname_off as u64,
            0,
            0,
            0,
            pcln_off as u64,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&names);
        let mut records = Vec::new();
        let mut functab = Vec::new();
        for (i, (entry, _)) in funcs.iter().enumerate() {
            functab.extend_from_slice(&entry.to_le_bytes());
            functab.extend_from_slice(&((functab_len + records.len()) as u32).to_le_bytes());
            records.extend_from_slice(&entry.to_le_bytes());
            records.extend_from_slice(&nameoffs[i].to_le_bytes());
            records.extend_from_slice(&[0; 36]);
        }
        functab.extend_from_slice(&end.to_le_bytes());
        out.extend_from_slice(&functab);
        out.extend_from_slice(&records);
        out
    }

    #[test]
    fn parses_a_synthetic_118_table() {
        let data = build_118(
            0x401000,
            &[(0, "main.a"), (0x20, "main.b"), (0x60, "main.b")],
            0x80,
        );
        let t = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.find_function("main.a"), Some((0x401000, 0x401020)));
        assert_eq!(
            t.find_all("main.b").collect::<Vec<_>>(),
            vec![(0x401020, 0x401060), (0x401060, 0x401080)]
        );
        assert_eq!(t.find_function("main.c"), None);
    }

    #[test]
    fn zero_text_start_uses_the_text_section_address() {
        let data = build_118(0, &[(0x10, "f")], 0x20);
        let t = Pclntab::parse(&data, 0x5000).unwrap();
        assert_eq!(t.find_function("f"), Some((0x5010, 0x5020)));
    }

    #[test]
    fn rejects_corruption_without_panicking() {
        let good = build_118(0x401000, &[(0, "main.a"), (0x20, "main.b")], 0x40);
        // Huge nfunc.
        let mut d = good.clone();
        d[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Pclntab::parse(&d, 0).unwrap_err(),
            PclntabError("nfunc too large")
        );
        // nfunc slightly too big for the data.
        let mut d = good.clone();
        d[8..16].copy_from_slice(&1000u64.to_le_bytes());
        assert!(Pclntab::parse(&d, 0).is_err());
        // Unsorted.
        let mut d = good.clone();
        let pcln = u64::from_le_bytes(d[64..72].try_into().unwrap()) as usize;
        d[pcln + 8..pcln + 12].copy_from_slice(&0u32.to_le_bytes());
        d[pcln..pcln + 4].copy_from_slice(&0x30u32.to_le_bytes());
        assert!(Pclntab::parse(&d, 0).is_err());
        // Every truncation and every single-byte flip.
        for len in 0..good.len() {
            Pclntab::parse(&good[..len], 0).ok();
        }
        for i in 0..good.len() {
            let mut d = good.clone();
            d[i] ^= 0xff;
            if let Ok(t) = Pclntab::parse(&d, 0) {
                let _ = t.functions().count();
                let _ = t.find_function("main.b");
            }
        }
    }
}
