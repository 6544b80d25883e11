//! Code regions with unwind information, from `.eh_frame` (and the sorted
//! table in `.eh_frame_hdr`): the set of addresses proven to start code.
//!
//! Stripping (`strip`, `-s`) removes `.symtab` but keeps `.eh_frame`: the
//! unwinder needs it at run time (C++ exceptions, backtraces). Each FDE's
//! initial location is the first instruction of a function, or of a part
//! the compiler split off a function (GCC's `foo.cold`, Clang's
//! `-fsplit-machine-functions`): always an instruction boundary, but only a
//! function *entry* when something calls it or takes its address, which
//! [`crate::identify`] checks separately.
//!
//! Every read is bounds-checked by gimli; an FDE whose range overflows or is
//! empty is an error, not skipped, because a table that lies about one
//! function cannot be trusted about the others.

use std::collections::HashMap;

use gimli::{BaseAddresses, CieOrFde, EhFrame, EhFrameHdr, LittleEndian, UnwindSection};

/// One FDE: code `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodeRange {
    pub start: u64,
    pub end: u64,
}

impl CodeRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }
}

/// Why the unwind tables cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EhFrameError {
    #[error("malformed .eh_frame: {0}")]
    Malformed(String),
    #[error("malformed .eh_frame_hdr: {0}")]
    MalformedHdr(String),
    #[error(".eh_frame FDE at offset {offset:#x} has a bad range {start:#x}+{len:#x}")]
    BadRange { offset: usize, start: u64, len: u64 },
    #[error("more than {0} FDEs")]
    TooMany(usize),
}

/// Upper bound on FDEs (Chromium has ~600k): an FDE takes at least 16
/// bytes, so this also bounds the work on a hostile section.
pub const MAX_FDES: usize = 8 << 20;

/// Every FDE of an `.eh_frame` section loaded at `eh_frame_vaddr`, sorted by
/// start, with zero-length FDEs dropped (they cover no instruction).
/// Overlapping FDEs are an error.
pub fn fde_ranges(eh_frame: &[u8], eh_frame_vaddr: u64) -> Result<Vec<CodeRange>, EhFrameError> {
    let section = EhFrame::new(eh_frame, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(eh_frame_vaddr);
    let mut entries = section.entries(&bases);
    let mut cies = HashMap::new();
    let mut out = Vec::new();
    let malformed = |e: gimli::Error| EhFrameError::Malformed(e.to_string());
    loop {
        let entry = match entries.next() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => return Err(malformed(e)),
        };
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let fde = partial
            .parse(|section, bases, offset| {
                if let Some(cie) = cies.get(&offset) {
                    return Ok(Clone::clone(cie));
                }
                let cie = section.cie_from_offset(bases, offset)?;
                cies.insert(offset, cie.clone());
                Ok(cie)
            })
            .map_err(malformed)?;
        let start = fde.initial_address();
        let len = fde.len();
        let end = start.checked_add(len).ok_or(EhFrameError::BadRange {
            offset: fde.offset(),
            start,
            len,
        })?;
        if len == 0 {
            continue;
        }
        if out.len() >= MAX_FDES {
            return Err(EhFrameError::TooMany(MAX_FDES));
        }
        out.push(CodeRange { start, end });
    }
    out.sort_unstable();
    out.dedup();
    if let Some(w) = out.windows(2).find(|w| w[0].end > w[1].start) {
        return Err(EhFrameError::Malformed(format!(
            "FDEs overlap: {:#x}..{:#x} and {:#x}..{:#x}",
            w[0].start, w[0].end, w[1].start, w[1].end
        )));
    }
    Ok(out)
}

/// The initial locations listed in `.eh_frame_hdr`'s binary-search table
/// (sorted, as the unwinder requires; unsorted is an error). `eh_frame_hdr`
/// is loaded at `hdr_vaddr`. `Ok(vec![])` when the header has no table.
pub fn eh_frame_hdr_starts(eh_frame_hdr: &[u8], hdr_vaddr: u64) -> Result<Vec<u64>, EhFrameError> {
    let bad = |e: gimli::Error| EhFrameError::MalformedHdr(e.to_string());
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_vaddr);
    let parsed = EhFrameHdr::new(eh_frame_hdr, LittleEndian)
        .parse(&bases, 8)
        .map_err(bad)?;
    let Some(table) = parsed.table() else {
        return Ok(Vec::new());
    };
    let mut iter = table.iter(&bases);
    let mut out: Vec<u64> = Vec::new();
    while let Some((initial, _fde)) = iter.next().map_err(bad)? {
        let gimli::Pointer::Direct(addr) = initial else {
            return Err(EhFrameError::MalformedHdr("indirect table entry".into()));
        };
        if out.last().is_some_and(|&last| last > addr) {
            return Err(EhFrameError::MalformedHdr("table not sorted".into()));
        }
        if out.len() >= MAX_FDES {
            return Err(EhFrameError::TooMany(MAX_FDES));
        }
        out.push(addr);
    }
    Ok(out)
}

/// Sorted, non-overlapping FDE ranges with lookups.
#[derive(Clone, Debug, Default)]
pub struct FunctionTable {
    ranges: Vec<CodeRange>,
}

impl FunctionTable {
    /// `ranges` must come from [`fde_ranges`] (sorted, non-overlapping).
    pub fn new(ranges: Vec<CodeRange>) -> FunctionTable {
        debug_assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
        FunctionTable { ranges }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn ranges(&self) -> &[CodeRange] {
        &self.ranges
    }

    /// The FDE whose code contains `addr`.
    pub fn containing(&self, addr: u64) -> Option<CodeRange> {
        let i = self.ranges.partition_point(|r| r.start <= addr);
        let r = *self.ranges.get(i.checked_sub(1)?)?;
        r.contains(addr).then_some(r)
    }

    /// The FDE that starts exactly at `addr`.
    pub fn starting_at(&self, addr: u64) -> Option<CodeRange> {
        self.containing(addr).filter(|r| r.start == addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal .eh_frame: one CIE (augmentation "zR", FDE pointers
    /// pcrel|sdata4) and FDEs for the given (start, len).
    pub(crate) fn synthetic_eh_frame(vaddr: u64, fdes: &[(u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        // CIE: length, id 0, version 1, "zR\0", code align 1, data align -8,
        // RA register 16, aug length 1, encoding 0x1b, padding.
        let cie_body: Vec<u8> = vec![0, 0, 0, 0, 1, b'z', b'R', 0, 1, 0x78, 16, 1, 0x1b, 0, 0, 0];
        out.extend_from_slice(&(cie_body.len() as u32).to_le_bytes());
        out.extend_from_slice(&cie_body);
        for &(start, len) in fdes {
            let fde_off = out.len();
            let mut body = Vec::new();
            // CIE pointer: offset from this field back to the CIE.
            body.extend_from_slice(&((fde_off + 4) as u32).to_le_bytes());
            let field_vaddr = vaddr + fde_off as u64 + 8;
            let rel = start.wrapping_sub(field_vaddr) as i64 as i32;
            body.extend_from_slice(&rel.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
            body.push(0); // augmentation data length
            while (body.len() + 4) % 8 != 0 {
                body.push(0);
            }
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    #[test]
    fn reads_synthetic_fdes_sorted() {
        let data = synthetic_eh_frame(0x5000, &[(0x1100, 0x20), (0x1000, 0x10), (0x1200, 0)]);
        let ranges = fde_ranges(&data, 0x5000).unwrap();
        assert_eq!(
            ranges,
            vec![
                CodeRange {
                    start: 0x1000,
                    end: 0x1010
                },
                CodeRange {
                    start: 0x1100,
                    end: 0x1120
                }
            ]
        );
        let table = FunctionTable::new(ranges);
        assert_eq!(table.containing(0x1105).map(|r| r.start), Some(0x1100));
        assert_eq!(table.containing(0x1010), None);
        assert!(table.starting_at(0x1000).is_some());
        assert!(table.starting_at(0x1001).is_none());
    }

    #[test]
    fn overlapping_fdes_are_an_error() {
        let data = synthetic_eh_frame(0x5000, &[(0x1000, 0x20), (0x1010, 0x10)]);
        assert!(matches!(
            fde_ranges(&data, 0x5000),
            Err(EhFrameError::Malformed(_))
        ));
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let data = synthetic_eh_frame(0x5000, &[(0x1000, 0x20), (0x1100, 0x10)]);
        for cut in 1..data.len() - 4 {
            fde_ranges(&data[..cut], 0x5000).ok();
        }
        let mut flipped = data.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            fde_ranges(&flipped, 0x5000).ok();
            flipped[i] ^= 0xff;
        }
        assert!(fde_ranges(&[0xff, 0xff, 0xff, 0xff, 1, 2], 0).is_err());
        for cut in 0..12 {
            eh_frame_hdr_starts(&[1, 0x1b, 0x03, 0x3b, 8, 0, 0, 0, 1, 0, 0, 0][..cut], 0).ok();
        }
    }
}
