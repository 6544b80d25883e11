//! x86-64 machine code: a fast byte-level prefilter for references to a set
//! of addresses, and an exact decoder ([`decode_function`]) that confirms
//! them and recovers the constant arguments of each call.
//!
//! The prefilter ([`scan_references`]) looks at every byte offset of a code
//! section for a 32-bit field that, read as a RIP-relative displacement
//! ending an instruction (`lea r, [rip+d]`, `call/jmp rel32`, `jcc rel32`)
//! or as an absolute 32-bit immediate (`mov r32, imm32` in non-PIE code),
//! names one of the targets. It over-approximates (a match can sit inside
//! another instruction); nothing it finds is used before the containing
//! function has been decoded from its FDE start and the instruction found.
//!
//! [`decode_function`] decodes linearly from an FDE start to its end (C and
//! C++ compilers on x86-64 put jump tables in `.rodata`, so an FDE holds only
//! instructions), and tracks the six integer argument registers (`rdi`,
//! `rsi`, `rdx`, `rcx`, `r8`, `r9`) as constants or RIP-relative addresses.
//! The tracking is deliberately simple and conservative: it starts over
//! (every register unknown) after each call, unconditional jump and return,
//! and at every direct branch target inside the function, so a value is only
//! reported when one straight-line sequence set it.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpAccess,
    OpKind, Register,
};

/// A 64-bit value in an argument register at a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ArgValue {
    /// Not known (set by something other than a constant move/lea).
    #[default]
    Unknown,
    /// An immediate (`mov`, or `xor r, r` = 0).
    Imm(u64),
    /// A RIP-relative address (`lea r, [rip+d]`) or an absolute address
    /// moved as an immediate (non-PIE code can't tell the two apart, so an
    /// immediate is also reported as [`ArgValue::Imm`]).
    Addr(u64),
}

impl ArgValue {
    pub fn imm(self) -> Option<u64> {
        match self {
            ArgValue::Imm(v) => Some(v),
            _ => None,
        }
    }

    /// The address this value may be: a `lea` target, or an immediate
    /// (non-PIE code loads addresses with `mov r32, imm32`).
    pub fn addr(self) -> Option<u64> {
        match self {
            ArgValue::Addr(v) | ArgValue::Imm(v) => Some(v),
            ArgValue::Unknown => None,
        }
    }
}

/// A direct or indirect call (or a tail call: a `jmp` leaving the function).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// Address of the call instruction.
    pub at: u64,
    /// Direct target; `None` for an indirect call.
    pub target: Option<u64>,
    /// A `jmp` out of the function rather than a `call`.
    pub tail: bool,
    /// rdi, rsi, rdx, rcx, r8, r9 as set by the straight-line code before it.
    pub args: [ArgValue; 6],
}

/// What decoding one function found.
#[derive(Clone, Debug, Default)]
pub struct DecodedFunction {
    pub start: u64,
    pub end: u64,
    pub calls: Vec<CallSite>,
    /// `(instruction address, referenced address)` for every RIP-relative
    /// memory operand (lea or load/store) and every 32/64-bit immediate.
    pub references: Vec<(u64, u64)>,
    /// Direct jumps (conditional or not) to addresses outside the function.
    pub outside_jumps: Vec<(u64, u64)>,
    /// Direct calls that are also branch targets (a compiler merged
    /// identical call tails: Clang's branch folding jumps to one shared
    /// `call ERR_put_error` after setting the arguments): one entry per
    /// way in (the fall-through and each direct jump), with the arguments
    /// that way set. [`DecodedFunction::calls`] has the call itself, with
    /// unknown arguments.
    pub merged_calls: Vec<CallSite>,
    pub instructions: usize,
}

/// An instruction that did not decode (invalid, or cut off by the FDE end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable instruction at {at:#x}")]
pub struct Undecodable {
    pub at: u64,
}

fn arg_slot(reg: Register) -> Option<usize> {
    match reg.full_register() {
        Register::RDI => Some(0),
        Register::RSI => Some(1),
        Register::RDX => Some(2),
        Register::RCX => Some(3),
        Register::R8 => Some(4),
        Register::R9 => Some(5),
        _ => None,
    }
}

/// Decodes `code` (the bytes of one FDE, starting at virtual address `ip`).
/// Every byte must decode into whole instructions, else [`Undecodable`].
pub fn decode_function(code: &[u8], ip: u64) -> Result<DecodedFunction, Undecodable> {
    let end = ip.saturating_add(code.len() as u64);
    let inside = |t: u64| (ip..end).contains(&t);
    let mut instructions = Vec::with_capacity(code.len() / 4);
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut targets = Vec::new();
    while decoder.can_decode() {
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return Err(Undecodable {
                at: instruction.ip(),
            });
        }
        if matches!(
            instruction.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
        ) && instruction.op0_kind() == OpKind::NearBranch64
        {
            let t = instruction.near_branch64();
            if inside(t) {
                targets.push(t);
            }
        }
        instructions.push(instruction);
    }
    targets.sort_unstable();
    targets.dedup();

    let mut out = DecodedFunction {
        start: ip,
        end,
        instructions: instructions.len(),
        ..DecodedFunction::default()
    };
    let mut info = InstructionInfoFactory::new();
    let mut args = [ArgValue::Unknown; 6];
    // Arguments carried by each direct jump to a target inside: (target, args).
    let mut jumped_in: Vec<(u64, [ArgValue; 6])> = Vec::new();
    // Calls at branch targets: (call address, target, fall-through args).
    let mut merge_points: Vec<(u64, u64, Option<[ArgValue; 6]>)> = Vec::new();
    let mut falls_through = false;
    for instruction in &instructions {
        let at = instruction.ip();
        if targets.binary_search(&at).is_ok() {
            if instruction.flow_control() == FlowControl::Call
                && instruction.op0_kind() == OpKind::NearBranch64
            {
                merge_points.push((
                    at,
                    instruction.near_branch64(),
                    falls_through.then_some(args),
                ));
            }
            args = [ArgValue::Unknown; 6];
        }
        falls_through = !matches!(
            instruction.flow_control(),
            FlowControl::UnconditionalBranch
                | FlowControl::IndirectBranch
                | FlowControl::Return
                | FlowControl::Interrupt
                | FlowControl::Exception
        );
        if matches!(
            instruction.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
        ) && instruction.op0_kind() == OpKind::NearBranch64
            && inside(instruction.near_branch64())
        {
            jumped_in.push((instruction.near_branch64(), args));
        }
        collect_references(instruction, &mut out.references);
        match instruction.flow_control() {
            FlowControl::Call | FlowControl::IndirectCall => {
                let target = (instruction.op0_kind() == OpKind::NearBranch64)
                    .then(|| instruction.near_branch64());
                out.calls.push(CallSite {
                    at,
                    target,
                    tail: false,
                    args,
                });
                args = [ArgValue::Unknown; 6];
                continue;
            }
            FlowControl::UnconditionalBranch => {
                if instruction.op0_kind() == OpKind::NearBranch64 {
                    let t = instruction.near_branch64();
                    if !inside(t) {
                        out.calls.push(CallSite {
                            at,
                            target: Some(t),
                            tail: true,
                            args,
                        });
                        out.outside_jumps.push((at, t));
                    }
                }
                args = [ArgValue::Unknown; 6];
                continue;
            }
            FlowControl::ConditionalBranch => {
                if instruction.op0_kind() == OpKind::NearBranch64 {
                    let t = instruction.near_branch64();
                    if !inside(t) {
                        out.outside_jumps.push((at, t));
                    }
                }
                continue;
            }
            FlowControl::Return | FlowControl::IndirectBranch | FlowControl::Interrupt => {
                args = [ArgValue::Unknown; 6];
                continue;
            }
            _ => {}
        }
        let value = constant_written(instruction);
        let used = info.info(instruction);
        for r in used.used_registers() {
            let writes = matches!(
                r.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            );
            if !writes {
                continue;
            }
            if let Some(slot) = arg_slot(r.register()) {
                args[slot] = match value {
                    Some((reg, v)) if arg_slot(reg) == Some(slot) => v,
                    _ => ArgValue::Unknown,
                };
            }
        }
    }
    for (at, target, fall) in merge_points {
        let ways = fall
            .into_iter()
            .chain(jumped_in.iter().filter(|(t, _)| *t == at).map(|(_, a)| *a));
        for args in ways {
            out.merged_calls.push(CallSite {
                at,
                target: Some(target),
                tail: false,
                args,
            });
        }
    }
    Ok(out)
}

/// `(destination register, value)` for `mov r, imm`, `lea r, [rip+d]` and
/// `xor r32, r32`.
fn constant_written(instruction: &Instruction) -> Option<(Register, ArgValue)> {
    if instruction.op_count() < 2 || instruction.op0_kind() != OpKind::Register {
        return None;
    }
    let reg = instruction.op0_register();
    let width = reg.size();
    match instruction.code() {
        Code::Mov_r32_imm32 | Code::Mov_r64_imm64 | Code::Mov_rm64_imm32 | Code::Mov_rm32_imm32 => {
            let v = instruction.immediate(1);
            let v = if width == 4 { v & 0xffff_ffff } else { v };
            Some((reg, ArgValue::Imm(v)))
        }
        Code::Lea_r64_m if instruction.is_ip_rel_memory_operand() => {
            Some((reg, ArgValue::Addr(instruction.ip_rel_memory_address())))
        }
        Code::Xor_r32_rm32 | Code::Xor_rm32_r32 | Code::Xor_r64_rm64 | Code::Xor_rm64_r64
            if instruction.op1_kind() == OpKind::Register && instruction.op1_register() == reg =>
        {
            Some((reg, ArgValue::Imm(0)))
        }
        _ => None,
    }
}

fn collect_references(instruction: &Instruction, out: &mut Vec<(u64, u64)>) {
    let at = instruction.ip();
    if instruction.is_ip_rel_memory_operand() {
        out.push((at, instruction.ip_rel_memory_address()));
    }
    for i in 0..instruction.op_count() {
        match instruction.op_kind(i) {
            OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64 => {
                out.push((at, instruction.immediate(i)))
            }
            OpKind::NearBranch64 => out.push((at, instruction.near_branch64())),
            _ => {}
        }
    }
}

/// Sorted, deduplicated addresses looked for by [`scan_references`].
#[derive(Clone, Debug, Default)]
pub struct TargetSet {
    sorted: Vec<u64>,
}

impl TargetSet {
    pub fn new(mut targets: Vec<u64>) -> TargetSet {
        targets.sort_unstable();
        targets.dedup();
        TargetSet { sorted: targets }
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.sorted.binary_search(&addr).is_ok()
    }

    fn bounds(&self) -> Option<(u64, u64)> {
        Some((*self.sorted.first()?, *self.sorted.last()?))
    }
}

/// Code addresses (of the 32-bit field) in `code`, loaded at `vaddr`, whose
/// four bytes name an address in `targets` either as a RIP-relative
/// displacement that ends the instruction (the next instruction is at the
/// field + 4) or as an absolute immediate. Over-approximates; see the module
/// docs. Linear in `code.len()`, no allocation beyond the result.
pub fn scan_references(code: &[u8], vaddr: u64, targets: &TargetSet) -> Vec<u64> {
    let Some((lo, hi)) = targets.bounds() else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for (i, w) in code.windows(4).enumerate() {
        let field = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let field_vaddr = vaddr.wrapping_add(i as u64);
        let rel = field_vaddr
            .wrapping_add(4)
            .wrapping_add(field as i32 as i64 as u64);
        let abs = u64::from(field);
        if ((lo..=hi).contains(&rel) && targets.contains(rel))
            || ((lo..=hi).contains(&abs) && targets.contains(abs))
        {
            hits.push(field_vaddr);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_constant_arguments_to_a_call() {
        // lea rcx,[rip+0x100]; mov edx,0x6f; mov r8d,0x3d3; mov edi,0x10;
        // xor esi,esi; call +0; ret
        let code = [
            0x48, 0x8d, 0x0d, 0x00, 0x01, 0x00, 0x00, // lea rcx, [rip+0x100]
            0xba, 0x6f, 0x00, 0x00, 0x00, // mov edx, 0x6f
            0x41, 0xb8, 0xd3, 0x03, 0x00, 0x00, // mov r8d, 0x3d3
            0xbf, 0x10, 0x00, 0x00, 0x00, // mov edi, 0x10
            0x31, 0xf6, // xor esi, esi
            0xe8, 0x00, 0x00, 0x00, 0x00, // call next
            0xc3,
        ];
        let f = decode_function(&code, 0x1000).unwrap();
        assert_eq!(f.calls.len(), 1);
        let c = &f.calls[0];
        assert_eq!(c.target, Some(0x1000 + 30));
        assert_eq!(c.args[0], ArgValue::Imm(0x10));
        assert_eq!(c.args[1], ArgValue::Imm(0));
        assert_eq!(c.args[2], ArgValue::Imm(0x6f));
        assert_eq!(c.args[3], ArgValue::Addr(0x1007 + 0x100));
        assert_eq!(c.args[4], ArgValue::Imm(0x3d3));
        assert_eq!(c.args[5], ArgValue::Unknown);
    }

    #[test]
    fn a_branch_target_forgets_the_arguments() {
        // mov edi,1; jne L; L: call +0; ret
        let code = [
            0xbf, 0x01, 0x00, 0x00, 0x00, 0x75, 0x00, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3,
        ];
        let f = decode_function(&code, 0).unwrap();
        assert_eq!(f.calls[0].args[0], ArgValue::Unknown);
    }

    #[test]
    fn merged_call_tails_keep_each_way_in() {
        // 0: mov edx,0xe2; jmp 9 (the shared call)
        // 7: ... (never mind) ret
        // Clang's shape: path A sets edx and falls into the call; path B
        // sets edx and jumps to it.
        //  0: je 10
        //  2: mov edx, 0xe2         (A)
        //  7: call +0               (12: shared, a branch target)
        // 12: ret
        // 13: int3 int3 int3
        // 16: mov edx, 0xd7         (B)
        // 21: jmp 7
        let code = [
            0x74, 0x0e, // je 16
            0xba, 0xe2, 0x00, 0x00, 0x00, // mov edx, 0xe2
            0xe8, 0x00, 0x00, 0x00, 0x00, // call 12
            0xc3, // ret
            0xcc, 0xcc, 0xcc, // padding
            0xba, 0xd7, 0x00, 0x00, 0x00, // mov edx, 0xd7
            0xeb, 0xf0, // jmp 7
        ];
        let f = decode_function(&code, 0).unwrap();
        assert_eq!(f.calls.len(), 1);
        assert_eq!(f.calls[0].args[2], ArgValue::Unknown);
        let mut merged: Vec<ArgValue> = f.merged_calls.iter().map(|c| c.args[2]).collect();
        merged.sort_by_key(|v| v.imm());
        assert_eq!(merged, [ArgValue::Imm(0xd7), ArgValue::Imm(0xe2)]);
        assert!(f
            .merged_calls
            .iter()
            .all(|c| c.at == 7 && c.target == Some(12)));
    }

    #[test]
    fn other_writes_make_a_register_unknown() {
        // mov edi,1; add edi,1; call
        let code = [0xbf, 1, 0, 0, 0, 0x83, 0xc7, 0x01, 0xe8, 0, 0, 0, 0];
        let f = decode_function(&code, 0).unwrap();
        assert_eq!(f.calls[0].args[0], ArgValue::Unknown);
    }

    #[test]
    fn truncated_code_is_undecodable() {
        assert_eq!(
            decode_function(&[0xc3, 0xe8, 0, 0], 0x10).unwrap_err(),
            Undecodable { at: 0x11 }
        );
    }

    #[test]
    fn prefilter_finds_rip_relative_and_absolute_fields() {
        let code = [
            0x48, 0x8d, 0x0d, 0xf9, 0x0f, 0x00, 0x00, // lea rcx,[rip+0xff9] -> 0x2000
            0xb9, 0x00, 0x30, 0x00, 0x00, // mov ecx, 0x3000
        ];
        let t = TargetSet::new(vec![0x2000, 0x3000]);
        assert_eq!(scan_references(&code, 0x1000, &t), vec![0x1003, 0x1008]);
        assert!(scan_references(&code, 0x1000, &TargetSet::default()).is_empty());
    }
}
