//! Every near RET of a function, by linear decoding from its entry to the
//! next function's entry.
//!
//! Go's amd64 code has no data in `.text` between or inside functions (jump
//! tables live in `.rodata`; the gaps between functions are INT3 padding), so
//! a linear sweep decodes exactly the instructions the CPU executes. An
//! instruction that does not decode means that assumption failed for this
//! function: the caller then attaches nothing rather than a uretprobe-free
//! guess.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

/// An instruction that did not decode (invalid, or cut off by the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable instruction at {at:#x}")]
pub struct Undecodable {
    /// Virtual address of the instruction.
    pub at: u64,
}

/// Virtual addresses of every near RET (`C3`, `C2 iw`, with or without
/// prefixes) in `code`, which starts at virtual address `ip`.
pub fn find_returns(code: &[u8], ip: u64) -> Result<Vec<u64>, Undecodable> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut returns = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return Err(Undecodable {
                at: instruction.ip(),
            });
        }
        if instruction.mnemonic() == Mnemonic::Ret {
            returns.push(instruction.ip());
        }
    }
    Ok(returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_ret_forms_and_skips_padding() {
        // mov rax,rbx; ret; nop; ret 8; int3 int3
        let code = [0x48, 0x89, 0xd8, 0xc3, 0x90, 0xc2, 0x08, 0x00, 0xcc, 0xcc];
        assert_eq!(find_returns(&code, 0x1000).unwrap(), vec![0x1003, 0x1005]);
    }

    #[test]
    fn c3_inside_an_immediate_is_not_a_ret() {
        // mov eax, 0xc3c3c3c3; ret
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3];
        assert_eq!(find_returns(&code, 0).unwrap(), vec![5]);
    }

    #[test]
    fn far_ret_is_not_collected() {
        assert_eq!(find_returns(&[0xcb, 0xc3], 0).unwrap(), vec![1]);
    }

    #[test]
    fn invalid_or_truncated_instructions_are_errors() {
        // 0x06 (push es) is invalid in 64-bit mode.
        assert_eq!(
            find_returns(&[0xc3, 0x06], 0x10),
            Err(Undecodable { at: 0x11 })
        );
        // mov eax, imm32 cut short.
        assert_eq!(
            find_returns(&[0xc3, 0xb8, 1], 0),
            Err(Undecodable { at: 1 })
        );
    }
}
