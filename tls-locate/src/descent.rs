//! Instruction boundaries and function entries without unwind tables, by
//! recursive descent over the machine code of the whole file.
//!
//! Some large programs (Chromium) compile C++ with
//! `-fno-asynchronous-unwind-tables`: `.eh_frame` then covers only the
//! hand-written assembly, and an FDE start cannot prove where any other
//! function begins. This module proves entries another way:
//!
//! 1. **Roots** are addresses that are instruction boundaries by
//!    construction: FDE starts, the ELF entry point, defined function
//!    symbols of `.dynsym`, and every code address the file takes — an
//!    `R_X86_64_RELATIVE` addend (vtables, function-pointer tables,
//!    `.init_array`, the GOT) or a RIP-relative `lea` found while
//!    decoding. A taken address is a boundary but **not necessarily an
//!    entry**: Chromium takes the address of 160 labels inside functions
//!    (GNU computed `goto`), so roots are only starting points.
//! 2. **Descent**: from each root, instructions are decoded along the
//!    control flow: fall-through, direct jump targets, and (assuming calls
//!    return) the instruction after a call. Decoding stops at a return, an
//!    indirect jump, a trap (`int3`, `ud2`; linkers pad between functions
//!    with `int3`), an invalid instruction, or an instruction already
//!    decoded.
//! 3. **Entries** are the targets of direct `call rel32` instructions so
//!    decoded: the processor transfers control there on a call, so each is
//!    an instruction boundary and a function entry.
//!
//! Consistency is checked, not assumed: every decoded byte is marked as an
//! instruction start or an instruction interior, and an instruction that
//! starts inside another (or spans another's start) is a *conflict*: it
//! means some root or some fall-through was not code. The conflicts are
//! counted and located ([`Descent::conflicts`]), and callers refuse any
//! result that depends on code near one.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, OpKind};
use object::read::elf::FileHeader;
use object::{LittleEndian, Object, ObjectSymbol, ObjectSymbolTable, SymbolKind};

use crate::elf::{ElfView, SectionBytes};
use crate::LocateError;

/// Most conflicts recorded with their address (all are counted).
pub const MAX_CONFLICTS_KEPT: usize = 4096;

/// Where the roots came from (counts, for the evidence and the stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootCounts {
    pub fde_starts: usize,
    pub dynsym: usize,
    pub relocations: usize,
    pub code_leas: usize,
}

/// One bit per byte of the executable sections.
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn new(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
        }
    }
    fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
}

/// The result of [`descend`].
pub struct Descent<'a> {
    code: Vec<SectionBytes<'a>>,
    /// Index of each section's first byte in the bit sets.
    base: Vec<usize>,
    starts: Bits,
    interior: Bits,
    /// Sorted, deduplicated targets of direct calls decoded from the
    /// strong roots (FDE starts, the entry point, `.dynsym`, relocations).
    pub entries: Vec<u64>,
    /// Sorted targets of direct calls first reached only from a `lea`
    /// root (code that takes a code address can take a data table's
    /// address in `.text` too): boundaries, never proofs.
    pub weak_entries: Vec<u64>,
    /// Sorted, deduplicated code addresses taken (relocations and `lea`).
    pub taken: Vec<u64>,
    pub roots: RootCounts,
    /// Conflicting instruction addresses (first [`MAX_CONFLICTS_KEPT`]).
    pub conflicts: Vec<u64>,
    pub conflict_count: usize,
    /// Addresses where decoding met an invalid instruction.
    pub invalid: Vec<u64>,
    /// Conflicts and invalid instructions met while decoding from the
    /// strong roots alone (before the `lea` roots were tried).
    pub strong_conflicts: usize,
    pub strong_invalid: usize,
    pub instructions: u64,
}

impl<'a> Descent<'a> {
    fn index(&self, vaddr: u64) -> Option<usize> {
        let i = self
            .code
            .partition_point(|s| s.vaddr <= vaddr)
            .checked_sub(1)?;
        let s = &self.code[i];
        let off = usize::try_from(vaddr - s.vaddr).ok()?;
        (off < s.bytes.len()).then(|| self.base[i] + off)
    }

    /// Whether `vaddr` was decoded as the start of an instruction.
    pub fn is_instruction_start(&self, vaddr: u64) -> bool {
        self.index(vaddr).is_some_and(|i| self.starts.get(i))
    }

    /// Whether `vaddr` is the target of a decoded direct call.
    pub fn is_entry(&self, vaddr: u64) -> bool {
        self.entries.binary_search(&vaddr).is_ok()
    }

    /// Whether `vaddr` is a taken code address.
    pub fn is_taken(&self, vaddr: u64) -> bool {
        self.taken.binary_search(&vaddr).is_ok()
    }

    /// Conflicts in `[from, to)`.
    pub fn conflicts_in(&self, from: u64, to: u64) -> usize {
        let lo = self.conflicts.partition_point(|&c| c < from);
        let hi = self.conflicts.partition_point(|&c| c < to);
        hi - lo
    }

    /// Every known start: entries (strong and weak) and taken addresses,
    /// sorted.
    pub fn boundaries(&self) -> Vec<u64> {
        let mut all =
            Vec::with_capacity(self.entries.len() + self.weak_entries.len() + self.taken.len());
        all.extend_from_slice(&self.entries);
        all.extend_from_slice(&self.weak_entries);
        all.extend_from_slice(&self.taken);
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The end of the executable section holding `vaddr`.
    pub fn section_end(&self, vaddr: u64) -> Option<u64> {
        let i = self
            .code
            .partition_point(|s| s.vaddr <= vaddr)
            .checked_sub(1)?;
        let s = &self.code[i];
        let end = s.vaddr + s.bytes.len() as u64;
        (vaddr < end).then_some(end)
    }

    /// The bytes of the code section holding `vaddr`, from `vaddr` on.
    fn bytes_from(&self, vaddr: u64) -> Option<&'a [u8]> {
        let i = self
            .code
            .partition_point(|s| s.vaddr <= vaddr)
            .checked_sub(1)?;
        let s = &self.code[i];
        s.bytes.get(usize::try_from(vaddr - s.vaddr).ok()?..)
    }
}

/// `R_X86_64_RELATIVE` addends in `.rela.dyn` (and `.rela.plt`-free
/// relocations) that point into `code`.
fn relocation_roots(view: &ElfView<'_>, in_code: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let mut out = Vec::new();
    if let Some(rela) = view.section(".rela.dyn") {
        for r in rela.bytes.chunks_exact(24) {
            let info = u64::from_le_bytes(r[8..16].try_into().unwrap_or([0; 8]));
            let addend = u64::from_le_bytes(r[16..24].try_into().unwrap_or([0; 8]));
            if info & 0xffff_ffff == u64::from(object::elf::R_X86_64_RELATIVE) && in_code(addend) {
                out.push(addend);
            }
        }
    }
    out
}

/// Decodes the code of `view` from every root (see the module docs).
/// `fde_starts` are the `.eh_frame` entries; `check` is called now and then
/// and aborts the descent with its error (time budget).
pub fn descend<'a>(
    view: &ElfView<'a>,
    fde_starts: &[u64],
    check: &mut dyn FnMut() -> Result<(), LocateError>,
) -> Result<Descent<'a>, LocateError> {
    let mut code = view.code_sections();
    code.retain(|s| !s.bytes.is_empty());
    code.sort_by_key(|s| s.vaddr);
    let mut base = Vec::with_capacity(code.len());
    let mut total = 0usize;
    for s in &code {
        base.push(total);
        total += s.bytes.len();
    }
    let mut d = Descent {
        code,
        base,
        starts: Bits::new(total),
        interior: Bits::new(total),
        entries: Vec::new(),
        weak_entries: Vec::new(),
        taken: Vec::new(),
        roots: RootCounts::default(),
        conflicts: Vec::new(),
        conflict_count: 0,
        invalid: Vec::new(),
        strong_conflicts: 0,
        strong_invalid: 0,
        instructions: 0,
    };
    let in_code = |v: u64| d.index(v).is_some();
    let mut work: Vec<u64> = Vec::new();
    let mut roots = RootCounts::default();
    for &f in fde_starts {
        if in_code(f) {
            work.push(f);
            roots.fde_starts += 1;
        }
    }
    let entry = view.file.elf_header().e_entry(LittleEndian);
    if in_code(entry) {
        work.push(entry);
    }
    if let Some(table) = view.file.dynamic_symbol_table() {
        for sym in table.symbols() {
            if sym.is_definition() && sym.kind() == SymbolKind::Text && in_code(sym.address()) {
                work.push(sym.address());
                roots.dynsym += 1;
            }
        }
    }
    let relocs = relocation_roots(view, &in_code);
    roots.relocations = relocs.len();
    d.roots = roots;
    d.taken.extend_from_slice(&relocs);
    work.extend(relocs);
    // Strong roots first; `lea` targets wait for the second pass.
    let mut weak: Vec<u64> = Vec::new();
    let mut steps = 0u32;
    while let Some(root) = work.pop() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(4096) {
            check()?;
        }
        walk(&mut d, root, &mut work, &mut weak);
    }
    d.entries.sort_unstable();
    d.entries.dedup();
    let strong_entries = std::mem::take(&mut d.entries);
    d.strong_conflicts = d.conflict_count;
    d.strong_invalid = d.invalid.len();
    let mut more = Vec::new();
    work = weak;
    while let Some(root) = work.pop() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(4096) {
            check()?;
        }
        walk(&mut d, root, &mut work, &mut more);
        work.append(&mut more);
    }
    d.weak_entries = std::mem::replace(&mut d.entries, strong_entries);
    d.weak_entries.sort_unstable();
    d.weak_entries.dedup();
    d.weak_entries
        .retain(|e| d.entries.binary_search(e).is_err());
    d.taken.sort_unstable();
    d.taken.dedup();
    d.conflicts.sort_unstable();
    d.invalid.sort_unstable();
    Ok(d)
}

/// Decodes one straight-line run from `from`, pushing branch targets.
fn walk(d: &mut Descent<'_>, from: u64, work: &mut Vec<u64>, leas: &mut Vec<u64>) {
    let Some(idx) = d.index(from) else { return };
    if d.starts.get(idx) {
        return;
    }
    if d.interior.get(idx) {
        d.conflict(from);
        return;
    }
    let Some(bytes) = d.bytes_from(from) else {
        return;
    };
    let mut decoder = Decoder::with_ip(64, bytes, from, DecoderOptions::NONE);
    while decoder.can_decode() {
        let ins = decoder.decode();
        let at = ins.ip();
        let Some(i) = d.index(at) else { return };
        if d.starts.get(i) {
            return; // joins code already decoded
        }
        if d.interior.get(i) {
            d.conflict(at);
            return;
        }
        if ins.is_invalid() {
            d.invalid.push(at);
            return;
        }
        let len = ins.len();
        if (1..len).any(|k| d.starts.get(i + k)) {
            d.conflict(at);
            return;
        }
        d.starts.set(i);
        for k in 1..len {
            d.interior.set(i + k);
        }
        d.instructions += 1;
        if ins.code() == Code::Lea_r64_m && ins.is_ip_rel_memory_operand() {
            let t = ins.ip_rel_memory_address();
            if d.index(t).is_some() {
                d.taken.push(t);
                d.roots.code_leas += 1;
                leas.push(t);
            }
        }
        let near = (ins.op0_kind() == OpKind::NearBranch64).then(|| ins.near_branch64());
        match ins.flow_control() {
            FlowControl::Next | FlowControl::IndirectCall | FlowControl::XbeginXabortXend => {}
            FlowControl::Call => {
                if let Some(t) = near {
                    if d.index(t).is_some() {
                        d.entries.push(t);
                        work.push(t);
                    }
                }
            }
            FlowControl::ConditionalBranch => {
                if let Some(t) = near {
                    work.push(t);
                }
            }
            FlowControl::UnconditionalBranch => {
                if let Some(t) = near {
                    work.push(t);
                }
                return;
            }
            FlowControl::IndirectBranch
            | FlowControl::Return
            | FlowControl::Interrupt
            | FlowControl::Exception => return,
        }
    }
}

impl Descent<'_> {
    fn conflict(&mut self, at: u64) {
        self.conflict_count += 1;
        if self.conflicts.len() < MAX_CONFLICTS_KEPT {
            self.conflicts.push(at);
        }
    }
}
