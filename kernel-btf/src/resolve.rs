//! Filling [`probes_common::KernelOffsets`] from BTF.

use probes_common::KernelOffsets;

use crate::{Btf, BtfError};

/// Resolve every field of [`KernelOffsets`] from `btf`.
///
/// All offsets are byte offsets from the start of the named kernel struct:
///
/// | field | struct.member path |
/// |---|---|
/// | `task_files`, `task_mm`, `task_real_parent`, `task_tgid` | `task_struct.{files,mm,real_parent,tgid}` |
/// | `files_fdt` | `files_struct.fdt` |
/// | `fdtable_fd`, `fdtable_max_fds` | `fdtable.{fd,max_fds}` |
/// | `file_private_data` | `file.private_data` (a `struct socket *` for socket files) |
/// | `socket_sk` | `socket.sk` |
/// | `sk_family` … `sk_v6_rcv_saddr` | `sock.__sk_common.skc_*`, i.e. offsets within **`struct sock`** |
/// | `sk_type`, `sk_type_bits` | `sock.sk_type`, see below |
/// | `mm_arg_start` … `mm_env_end` | `mm_struct.{arg,env}_{start,end}` (in an anonymous struct on 6.x) |
///
/// # `sk_type` convention
/// `sk_type` is a `u16` in kernels since 5.6 and a 16-bit bitfield (sharing a
/// 32-bit word with `sk_protocol` etc.) before. Both are reported the same way:
/// `sk_type` is the **byte offset of the byte holding the field's lowest bit** and
/// `sk_type_bits` is its **width in bits** (16 on every known kernel). The probe
/// reads a little-endian `u16` at `sk_type` and masks it with
/// `(1 << sk_type_bits) - 1`. This only works when the field starts on a byte
/// boundary and is at most 16 bits wide; anything else is rejected with
/// [`BtfError::Unsupported`] rather than resolved to a wrong number. (On the old
/// little-endian layout `sk_type` occupies bits 16..32 of its word, so it is
/// byte-aligned.) Big-endian bitfield layouts are not considered: wirespan targets
/// little-endian machines.
pub fn resolve_kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    let off = |s: &str, m: &str| btf.member_offset(s, m);
    let sock = |m: &str| btf.member_offset("sock", &format!("__sk_common.{m}"));
    let (sk_type, sk_type_bits) = sk_type(btf)?;
    Ok(KernelOffsets {
        task_files: off("task_struct", "files")?,
        task_mm: off("task_struct", "mm")?,
        task_real_parent: off("task_struct", "real_parent")?,
        task_tgid: off("task_struct", "tgid")?,
        files_fdt: off("files_struct", "fdt")?,
        fdtable_fd: off("fdtable", "fd")?,
        fdtable_max_fds: off("fdtable", "max_fds")?,
        file_private_data: off("file", "private_data")?,
        socket_sk: off("socket", "sk")?,
        sk_family: sock("skc_family")?,
        sk_daddr: sock("skc_daddr")?,
        sk_rcv_saddr: sock("skc_rcv_saddr")?,
        sk_dport: sock("skc_dport")?,
        sk_num: sock("skc_num")?,
        sk_v6_daddr: sock("skc_v6_daddr")?,
        sk_v6_rcv_saddr: sock("skc_v6_rcv_saddr")?,
        sk_type,
        sk_type_bits,
        mm_arg_start: off("mm_struct", "arg_start")?,
        mm_arg_end: off("mm_struct", "arg_end")?,
        mm_env_start: off("mm_struct", "env_start")?,
        mm_env_end: off("mm_struct", "env_end")?,
    })
}

/// `(byte offset, width in bits)` of `sock.sk_type`, per the convention above.
pub(crate) fn sk_type(btf: &Btf) -> Result<(u32, u32), BtfError> {
    let (bit_offset, bits) = btf.member_bit_offset_and_size("sock", "sk_type")?;
    if bit_offset % 8 != 0 || bits == 0 || bits > 16 {
        return Err(BtfError::Unsupported {
            path: "sock.sk_type".into(),
            reason: format!(
                "{bits} bits at bit offset {bit_offset}: expected at most 16 bits starting on a \
                 byte boundary (KernelOffsets has no bit-shift field)"
            ),
        });
    }
    Ok((bit_offset / 8, bits))
}
