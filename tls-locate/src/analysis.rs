//! The analysis driver: function entries, the library's source-file strings,
//! the error sites that name them, and the call graph questions
//! [`crate::rules`] asks, each answered by one byte scan of the code and an
//! exact decode of only the functions the scan points at.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use object::LittleEndian;

use crate::code::{decode_function, scan_references, DecodedFunction, TargetSet};
use crate::eh_frame::{fde_ranges, CodeRange, FunctionTable};
use crate::elf::{ElfView, SectionBytes};
use crate::error_sites::{error_sites, ErrorSite};
use crate::{AnalysisStats, LocateError, LocateOptions, TlsFunctions};

/// Most functions decoded in one analysis (each scan's hits are decoded).
pub const MAX_DECODED: usize = 50_000;
/// Longest FDE decoded; a longer one is skipped (a TLS API function is a
/// few hundred bytes; a 1 MiB FDE is generated code or garbage).
pub const MAX_FUNCTION_BYTES: u64 = 1 << 20;

/// The library source files whose error sites are collected. The string in
/// the binary ends with one of these (build systems prefix `../`,
/// `third_party/boringssl/src/` and the like).
pub const SOURCE_FILE_SUFFIXES: [&str; 2] = ["ssl/ssl_lib.c", "ssl/ssl_lib.cc"];

/// The FDE table of the file's `.eh_frame`.
pub fn function_table(view: &ElfView<'_>) -> Result<FunctionTable, LocateError> {
    let eh = view.section(".eh_frame").ok_or(LocateError::NoEhFrame)?;
    let ranges = fde_ranges(eh.bytes, eh.vaddr)?;
    if ranges.is_empty() {
        return Err(LocateError::NoEhFrame);
    }
    Ok(FunctionTable::new(ranges))
}

/// A NUL-terminated string in the file's data: `(vaddr, text)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileString {
    pub vaddr: u64,
    pub text: String,
}

/// Every string in the non-executable sections that ends with one of
/// `suffixes` and is a plausible path (printable ASCII, ≤ 512 bytes, the
/// suffix at the start or after a `/`).
pub fn find_suffix_strings(view: &ElfView<'_>, suffixes: &[&str]) -> Vec<FileString> {
    let mut out = Vec::new();
    for section in view.data_sections() {
        for suffix in suffixes {
            let needle: Vec<u8> = suffix.bytes().chain([0]).collect();
            for hit in memchr::memmem::find_iter(section.bytes, &needle) {
                let from = hit.saturating_sub(512);
                let start =
                    memchr::memrchr(0, &section.bytes[from..hit]).map_or(from, |p| from + p + 1);
                if start == from && from != 0 {
                    continue; // longer than 512 bytes
                }
                let text = &section.bytes[start..hit + suffix.len()];
                if start != hit && text[hit - start - 1] != b'/' {
                    continue;
                }
                if !text.iter().all(|b| b.is_ascii_graphic()) {
                    continue;
                }
                if let Ok(text) = std::str::from_utf8(text) {
                    out.push(FileString {
                        vaddr: section.vaddr + start as u64,
                        text: text.to_string(),
                    });
                }
            }
        }
    }
    out.sort_by_key(|s| s.vaddr);
    out.dedup_by_key(|s| s.vaddr);
    out
}

/// How code refers to an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Call,
    TailJump,
    /// A conditional jump, or an unconditional one out of the function
    /// (already counted as [`RefKind::TailJump`]) is not repeated here.
    Jump,
    /// A RIP-relative operand or an immediate (address taken, or data).
    Operand,
}

/// One confirmed reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRef {
    pub from: CodeRange,
    pub at: u64,
    pub target: u64,
    pub kind: RefKind,
}

/// What recursive descent ([`crate::descent`]) proved, kept for the entry
/// proofs when the function table was built from it rather than from FDEs.
#[derive(Clone, Debug, Default)]
pub struct DescentProof {
    /// Sorted direct-call targets decoded from the strong roots.
    pub entries: Vec<u64>,
    /// Sorted addresses where decoding found overlapping instructions.
    pub conflicts: Vec<u64>,
    pub conflict_count: usize,
    /// Sorted addresses of invalid instructions met while decoding.
    pub invalid: Vec<u64>,
    pub instructions: u64,
    pub roots: crate::descent::RootCounts,
}

/// Nearest conflict or invalid instruction allowed to an identified
/// function: one within this many bytes refuses it.
pub const DESCENT_CLEARANCE: u64 = 1 << 16;

impl DescentProof {
    pub fn is_entry(&self, vaddr: u64) -> bool {
        self.entries.binary_search(&vaddr).is_ok()
    }

    /// A conflict or invalid instruction within [`DESCENT_CLEARANCE`] of
    /// `range`.
    pub fn trouble_near(&self, range: CodeRange) -> Option<u64> {
        if self.conflict_count > self.conflicts.len() {
            // Not every conflict was kept: any place may be near one.
            return Some(range.start);
        }
        let lo = range.start.saturating_sub(DESCENT_CLEARANCE);
        let hi = range.end.saturating_add(DESCENT_CLEARANCE);
        self.conflicts
            .iter()
            .chain(&self.invalid)
            .copied()
            .find(|&c| (lo..hi).contains(&c))
    }
}

/// State of one analysis.
pub struct Analysis<'v, 'a> {
    pub view: &'v ElfView<'a>,
    pub table: FunctionTable,
    /// Set when `table` came from recursive descent (no FDEs for the code).
    pub descent: Option<DescentProof>,
    code: Vec<SectionBytes<'a>>,
    decoded: HashMap<u64, Option<DecodedFunction>>,
    started: Instant,
    opts: LocateOptions,
    pub stats: AnalysisStats,
}

/// The file's executable sections and their total size, refused
/// (`TooLarge`) above `opts.max_code_bytes`.
fn code_within_budget<'a>(
    view: &ElfView<'a>,
    opts: &LocateOptions,
) -> Result<(Vec<SectionBytes<'a>>, u64), LocateError> {
    let code = view.code_sections();
    let code_bytes: u64 = code.iter().map(|s| s.bytes.len() as u64).sum();
    if code_bytes > opts.max_code_bytes {
        return Err(LocateError::TooLarge(code_bytes));
    }
    Ok((code, code_bytes))
}

impl<'v, 'a> Analysis<'v, 'a> {
    pub fn new(
        view: &'v ElfView<'a>,
        opts: &LocateOptions,
        started: Instant,
    ) -> Result<Self, LocateError> {
        let (code, code_bytes) = code_within_budget(view, opts)?;
        let table = function_table(view)?;
        let stats = AnalysisStats {
            fdes: table.len(),
            code_bytes,
            ..AnalysisStats::default()
        };
        let a = Analysis {
            view,
            table,
            descent: None,
            code,
            decoded: HashMap::new(),
            started,
            opts: opts.clone(),
            stats,
        };
        a.check_time()?;
        Ok(a)
    }

    /// An analysis whose functions come from recursive descent over the
    /// whole file ([`crate::descent`]) instead of `.eh_frame`: each
    /// function is `[b, next)` for consecutive known starts `b` (call
    /// targets, taken code addresses, FDE starts and ends), capped at
    /// [`MAX_FUNCTION_BYTES`]. Only call targets from strong roots count as
    /// entries ([`DescentProof::is_entry`]).
    pub fn from_descent(
        view: &'v ElfView<'a>,
        opts: &LocateOptions,
        started: Instant,
    ) -> Result<Self, LocateError> {
        let (code, code_bytes) = code_within_budget(view, opts)?;
        let fdes = function_table(view)
            .map(|t| t.ranges().to_vec())
            .unwrap_or_default();
        let fde_starts: Vec<u64> = fdes.iter().map(|r| r.start).collect();
        let budget = opts.time_budget;
        let d = crate::descent::descend(view, &fde_starts, &mut || {
            if started.elapsed() > budget {
                Err(LocateError::TimeBudget(budget))
            } else {
                Ok(())
            }
        })?;
        let mut starts = d.boundaries();
        starts.extend(fdes.iter().flat_map(|r| [r.start, r.end]));
        starts.sort_unstable();
        starts.dedup();
        let mut ranges = Vec::with_capacity(starts.len());
        for (i, &b) in starts.iter().enumerate() {
            let Some(section_end) = d.section_end(b) else {
                continue;
            };
            let next = starts.get(i + 1).copied().unwrap_or(u64::MAX);
            let end = next
                .min(section_end)
                .min(b.saturating_add(MAX_FUNCTION_BYTES));
            if end > b {
                ranges.push(CodeRange { start: b, end });
            }
        }
        let proof = DescentProof {
            entries: d.entries.clone(),
            conflicts: d.conflicts.clone(),
            conflict_count: d.conflict_count,
            invalid: d.invalid.clone(),
            instructions: d.instructions,
            roots: d.roots.clone(),
        };
        drop(d);
        let stats = AnalysisStats {
            fdes: fdes.len(),
            code_bytes,
            descent_instructions: proof.instructions,
            descent_entries: proof.entries.len(),
            descent_conflicts: proof.conflict_count,
            descent_invalid: proof.invalid.len(),
            ..AnalysisStats::default()
        };
        let a = Analysis {
            view,
            table: FunctionTable::new(ranges),
            descent: Some(proof),
            code,
            decoded: HashMap::new(),
            started,
            opts: opts.clone(),
            stats,
        };
        a.check_time()?;
        Ok(a)
    }

    pub fn check_time(&self) -> Result<(), LocateError> {
        if self.started.elapsed() > self.opts.time_budget {
            return Err(LocateError::TimeBudget(self.opts.time_budget));
        }
        Ok(())
    }

    /// The FDEs in which the prefilter sees a reference to `targets`.
    fn scan(&mut self, targets: &TargetSet) -> Result<Vec<CodeRange>, LocateError> {
        let mut ranges = Vec::new();
        if targets.is_empty() {
            return Ok(ranges);
        }
        self.stats.scan_passes += 1;
        // Scan in 16 MiB pieces (overlapping by 3 bytes) to check the clock.
        const PIECE: usize = 16 << 20;
        for section in &self.code {
            let mut from = 0usize;
            while from < section.bytes.len() {
                let to = (from + PIECE + 3).min(section.bytes.len());
                for hit in scan_references(
                    &section.bytes[from..to],
                    section.vaddr + from as u64,
                    targets,
                ) {
                    match self.table.containing(hit) {
                        Some(r) if ranges.last() != Some(&r) => ranges.push(r),
                        Some(_) => {}
                        None => self.stats.code_refs_outside_fdes += 1,
                    }
                }
                from += PIECE;
                self.check_time()?;
            }
        }
        ranges.sort_unstable();
        ranges.dedup();
        Ok(ranges)
    }

    /// Decodes one FDE (cached). `None` if it does not decode, is too long
    /// or lies outside executable file bytes.
    pub fn decode(&mut self, r: CodeRange) -> Option<&DecodedFunction> {
        if !self.decoded.contains_key(&r.start) {
            let decoded = if r.len() > MAX_FUNCTION_BYTES || self.decoded.len() >= MAX_DECODED {
                None
            } else {
                self.view
                    .code_at(r.start, r.len())
                    .and_then(|bytes| decode_function(bytes, r.start).ok())
            };
            self.stats.functions_decoded += usize::from(decoded.is_some());
            self.decoded.insert(r.start, decoded);
        }
        self.decoded.get(&r.start).and_then(Option::as_ref)
    }

    /// Error sites (any library) that pass one of `files`.
    pub fn error_sites(&mut self, files: &[FileString]) -> Result<Vec<ErrorSite>, LocateError> {
        let addrs: Vec<u64> = files.iter().map(|f| f.vaddr).collect();
        let ranges = self.scan(&TargetSet::new(addrs.clone()))?;
        let mut sites = Vec::new();
        for r in ranges {
            let view = self.view;
            if let Some(d) = self.decode(r) {
                sites.extend(error_sites(view, d, &addrs));
            }
        }
        self.check_time()?;
        Ok(sites)
    }

    /// Every instruction that refers to one of `targets`, confirmed by
    /// decoding its function from the FDE start.
    pub fn references(&mut self, targets: &[u64]) -> Result<Vec<CodeRef>, LocateError> {
        let set = TargetSet::new(targets.to_vec());
        let ranges = self.scan(&set)?;
        let mut out = Vec::new();
        for r in ranges {
            let Some(d) = self.decode(r) else { continue };
            let mut seen = HashSet::new();
            for c in &d.calls {
                if let Some(t) = c.target.filter(|&t| set.contains(t)) {
                    let kind = if c.tail {
                        RefKind::TailJump
                    } else {
                        RefKind::Call
                    };
                    seen.insert(c.at);
                    out.push(CodeRef {
                        from: r,
                        at: c.at,
                        target: t,
                        kind,
                    });
                }
            }
            for &(at, t) in &d.outside_jumps {
                if set.contains(t) && seen.insert(at) {
                    out.push(CodeRef {
                        from: r,
                        at,
                        target: t,
                        kind: RefKind::Jump,
                    });
                }
            }
            for &(at, t) in &d.references {
                if set.contains(t) && !seen.contains(&at) {
                    out.push(CodeRef {
                        from: r,
                        at,
                        target: t,
                        kind: RefKind::Operand,
                    });
                }
            }
        }
        self.check_time()?;
        Ok(out)
    }

    /// The `targets` stored as 8-byte pointers in the file's data (aligned
    /// words in non-executable sections, which covers RELR-packed
    /// relocations, and `R_X86_64_RELATIVE` addends in `.rela.dyn`).
    pub fn data_pointers(&self, targets: &[u64]) -> HashSet<u64> {
        let set = TargetSet::new(targets.to_vec());
        let mut found = HashSet::new();
        for s in self.view.data_sections() {
            let skip = (8 - (s.vaddr % 8) as usize) % 8;
            let Some(bytes) = s.bytes.get(skip..) else {
                continue;
            };
            for w in bytes.chunks_exact(8) {
                let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                if set.contains(v) {
                    found.insert(v);
                }
            }
        }
        if let Some(rela) = self.view.section(".rela.dyn") {
            for r in rela.bytes.chunks_exact(24) {
                let info = u64::from_le_bytes(r[8..16].try_into().unwrap_or([0; 8]));
                let addend = u64::from_le_bytes(r[16..24].try_into().unwrap_or([0; 8]));
                if info & 0xffff_ffff == u64::from(object::elf::R_X86_64_RELATIVE)
                    && set.contains(addend)
                {
                    found.insert(addend);
                }
            }
        }
        found
    }

    /// In a range built by descent: the first instruction that follows
    /// `int3` padding inside it (linkers and assemblers pad between
    /// functions with `int3`; Clang does not emit it inside a function), so
    /// the range may hold a second function that nothing calls. Used only
    /// to refuse.
    pub fn code_after_padding(&self, r: CodeRange) -> Option<u64> {
        let bytes = self.view.code_at(r.start, r.len())?;
        let mut decoder =
            iced_x86::Decoder::with_ip(64, bytes, r.start, iced_x86::DecoderOptions::NONE);
        let mut after_int3 = false;
        while decoder.can_decode() {
            let i = decoder.decode();
            match i.code() {
                iced_x86::Code::Int3 => after_int3 = true,
                iced_x86::Code::Nopd
                | iced_x86::Code::Nopw
                | iced_x86::Code::Nopq
                | iced_x86::Code::Nop_rm16
                | iced_x86::Code::Nop_rm32
                | iced_x86::Code::Nop_rm64 => {}
                _ if after_int3 => return Some(i.ip()),
                _ => {}
            }
        }
        None
    }

    /// File offset of a code address.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.view.vaddr_to_offset(vaddr, 1, true)
    }

    pub fn is_pie_or_shared(&self) -> bool {
        let _ = LittleEndian;
        self.view.is_pie_or_shared()
    }
}

/// The whole analysis of a file without the symbols [`crate::locate`]
/// looked for.
pub fn analyse(
    view: &ElfView<'_>,
    opts: &LocateOptions,
    started: Instant,
) -> Result<TlsFunctions, LocateError> {
    let files = find_suffix_strings(view, &SOURCE_FILE_SUFFIXES);
    if files.is_empty() {
        return Err(LocateError::NoTls);
    }
    let mut analysis = match Analysis::new(view, opts, started) {
        // No unwind tables at all: descent from the other roots.
        Err(LocateError::NoEhFrame) => {
            let mut analysis = Analysis::from_descent(view, opts, started)?;
            let sites = analysis.error_sites(&files)?;
            return crate::rules::identify(&mut analysis, &files, &sites);
        }
        other => other?,
    };
    let sites = analysis.error_sites(&files)?;
    match crate::rules::identify(&mut analysis, &files, &sites) {
        // The code that names the library has no FDEs (Chromium): prove
        // entries by recursive descent instead.
        Err(LocateError::NoUnwindInfo(outside)) => {
            let fde_stats = analysis.stats.clone();
            drop(analysis);
            let mut analysis = Analysis::from_descent(view, opts, started)?;
            analysis.stats.scan_passes += fde_stats.scan_passes;
            let sites = analysis.error_sites(&files)?;
            analysis.stats.code_refs_outside_fdes = fde_stats.code_refs_outside_fdes.max(outside);
            crate::rules::identify(&mut analysis, &files, &sites)
        }
        other => other,
    }
}
