//! The ELF file as the analysis sees it: sections by name, PT_LOAD
//! translation (virtual address ↔ file offset, the offset a uprobe takes),
//! and C strings at virtual addresses. Everything borrows the mapping.

use object::elf::{PF_X, PT_LOAD, SHF_EXECINSTR, SHT_NOBITS};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, SectionHeader};
use object::{LittleEndian, Object, ObjectSection};

use crate::LocateError;

/// A parsed 64-bit little-endian x86-64 ELF over borrowed bytes.
pub struct ElfView<'a> {
    pub(crate) file: ElfFile64<'a, LittleEndian>,
    pub(crate) data: &'a [u8],
}

/// One section's bytes and address.
#[derive(Clone, Copy, Debug)]
pub struct SectionBytes<'a> {
    pub vaddr: u64,
    pub bytes: &'a [u8],
}

impl<'a> ElfView<'a> {
    pub fn parse(data: &'a [u8]) -> Result<ElfView<'a>, LocateError> {
        if data.len() < 16 || &data[..4] != b"\x7fELF" {
            return Err(LocateError::NotElf);
        }
        if data[4] != object::elf::ELFCLASS64 || data[5] != object::elf::ELFDATA2LSB {
            return Err(LocateError::UnsupportedArch(0));
        }
        let file = ElfFile64::<LittleEndian>::parse(data)
            .map_err(|e| LocateError::BadElf(e.to_string()))?;
        let machine = file.elf_header().e_machine(LittleEndian);
        if machine != object::elf::EM_X86_64 {
            return Err(LocateError::UnsupportedArch(machine));
        }
        let view = ElfView { file, data };
        view.check_not_truncated()?;
        Ok(view)
    }

    fn check_not_truncated(&self) -> Result<(), LocateError> {
        let len = self.data.len() as u64;
        for ph in self.file.elf_program_headers() {
            let end = ph
                .p_offset(LittleEndian)
                .checked_add(ph.p_filesz(LittleEndian));
            if end.is_none_or(|end| end > len) {
                return Err(LocateError::BadElf(
                    "truncated: a segment ends past the end of the file".into(),
                ));
            }
        }
        for section in self.file.elf_section_table().iter() {
            if section.sh_type(LittleEndian) == SHT_NOBITS {
                continue;
            }
            let end = section
                .sh_offset(LittleEndian)
                .checked_add(section.sh_size(LittleEndian));
            if end.is_none_or(|end| end > len) {
                return Err(LocateError::BadElf(
                    "truncated: a section ends past the end of the file".into(),
                ));
            }
        }
        Ok(())
    }

    /// The bytes of the first section called `name` (not SHT_NOBITS).
    pub fn section(&self, name: &str) -> Option<SectionBytes<'a>> {
        let s = self.file.section_by_name(name)?;
        let (offset, size) = s.file_range()?;
        let start = usize::try_from(offset).ok()?;
        let bytes = self
            .data
            .get(start..start.checked_add(usize::try_from(size).ok()?)?)?;
        Some(SectionBytes {
            vaddr: s.address(),
            bytes,
        })
    }

    /// Every allocated, file-backed executable section.
    pub fn code_sections(&self) -> Vec<SectionBytes<'a>> {
        self.sections_where(|flags| flags & u64::from(SHF_EXECINSTR) != 0)
    }

    /// Every allocated, file-backed, non-executable section (where strings
    /// and pointer tables live).
    pub fn data_sections(&self) -> Vec<SectionBytes<'a>> {
        self.sections_where(|flags| flags & u64::from(SHF_EXECINSTR) == 0)
    }

    fn sections_where(&self, keep: impl Fn(u64) -> bool) -> Vec<SectionBytes<'a>> {
        let mut out = Vec::new();
        for s in self.file.elf_section_table().iter() {
            let flags = s.sh_flags(LittleEndian);
            if flags & u64::from(object::elf::SHF_ALLOC) == 0
                || s.sh_type(LittleEndian) == SHT_NOBITS
                || !keep(flags)
            {
                continue;
            }
            let Ok(start) = usize::try_from(s.sh_offset(LittleEndian)) else {
                continue;
            };
            let Ok(size) = usize::try_from(s.sh_size(LittleEndian)) else {
                continue;
            };
            let Some(bytes) = start
                .checked_add(size)
                .and_then(|end| self.data.get(start..end))
            else {
                continue;
            };
            out.push(SectionBytes {
                vaddr: s.sh_addr(LittleEndian),
                bytes,
            });
        }
        out
    }

    /// File offset of `[vaddr, vaddr + len)` through the PT_LOAD segment that
    /// maps it from file bytes; `exec` requires an executable segment.
    pub fn vaddr_to_offset(&self, vaddr: u64, len: u64, exec: bool) -> Option<u64> {
        let end = vaddr.checked_add(len)?;
        let file_len = self.data.len() as u64;
        self.file.elf_program_headers().iter().find_map(|ph| {
            if ph.p_type(LittleEndian) != PT_LOAD {
                return None;
            }
            if exec && ph.p_flags(LittleEndian) & PF_X == 0 {
                return None;
            }
            let start = ph.p_vaddr(LittleEndian);
            let seg_end = start.checked_add(ph.p_filesz(LittleEndian))?;
            if vaddr < start || end > seg_end {
                return None;
            }
            let offset = ph.p_offset(LittleEndian).checked_add(vaddr - start)?;
            (offset.checked_add(len)? <= file_len).then_some(offset)
        })
    }

    /// The bytes at `[vaddr, vaddr + len)` in any PT_LOAD segment.
    pub fn bytes_at(&self, vaddr: u64, len: u64) -> Option<&'a [u8]> {
        let offset = usize::try_from(self.vaddr_to_offset(vaddr, len, false)?).ok()?;
        self.data
            .get(offset..offset.checked_add(usize::try_from(len).ok()?)?)
    }

    /// The code bytes of `[vaddr, vaddr + len)`, only from an executable
    /// segment.
    pub fn code_at(&self, vaddr: u64, len: u64) -> Option<&'a [u8]> {
        let offset = usize::try_from(self.vaddr_to_offset(vaddr, len, true)?).ok()?;
        self.data
            .get(offset..offset.checked_add(usize::try_from(len).ok()?)?)
    }

    /// The NUL-terminated string at `vaddr` (at most `max` bytes before the
    /// NUL), if it is valid UTF-8.
    pub fn c_str_at(&self, vaddr: u64, max: usize) -> Option<&'a str> {
        let offset = usize::try_from(self.vaddr_to_offset(vaddr, 1, false)?).ok()?;
        let rest = self.data.get(offset..)?;
        let rest = &rest[..rest.len().min(max + 1)];
        let nul = memchr::memchr(0, rest)?;
        std::str::from_utf8(&rest[..nul]).ok()
    }

    pub fn is_pie_or_shared(&self) -> bool {
        self.file.elf_header().e_type(LittleEndian) == object::elf::ET_DYN
    }
}
