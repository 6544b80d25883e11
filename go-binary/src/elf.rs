//! Virtual address to file offset, through the PT_LOAD program headers (what
//! the kernel maps, and what a uprobe's file offset refers to).

use object::read::elf::{ElfFile64, ProgramHeader};
use object::LittleEndian;

/// File offset of `[vaddr, vaddr + len)`, if one PT_LOAD segment maps all of
/// it from file bytes (not the zero-filled tail past p_filesz) that exist.
pub(crate) fn vaddr_to_offset(
    file: &ElfFile64<'_, LittleEndian>,
    vaddr: u64,
    len: u64,
) -> Option<u64> {
    let endian = LittleEndian;
    let end = vaddr.checked_add(len)?;
    let file_len = file.data().len() as u64;
    file.elf_program_headers().iter().find_map(|ph| {
        if ph.p_type(endian) != object::elf::PT_LOAD {
            return None;
        }
        let start = ph.p_vaddr(endian);
        let seg_end = start.checked_add(ph.p_filesz(endian))?;
        if vaddr < start || end > seg_end {
            return None;
        }
        let offset = ph.p_offset(endian).checked_add(vaddr - start)?;
        (offset.checked_add(len)? <= file_len).then_some(offset)
    })
}

/// The file bytes at `[vaddr, vaddr + len)`.
pub(crate) fn bytes_at_vaddr<'a>(
    file: &ElfFile64<'a, LittleEndian>,
    data: &'a [u8],
    vaddr: u64,
    len: u64,
) -> Option<&'a [u8]> {
    let offset = usize::try_from(vaddr_to_offset(file, vaddr, len)?).ok()?;
    data.get(offset..offset.checked_add(usize::try_from(len).ok()?)?)
}
