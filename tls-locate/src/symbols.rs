//! Named functions: the file's own `.symtab` and `.dynsym`, then a separate
//! debug file found by build id (`/usr/lib/debug/.build-id/xx/yyyy.debug`)
//! or by `.gnu_debuglink` (name + CRC32) in the usual directories and the
//! configured ones.

use std::path::{Path, PathBuf};

use object::elf::{PT_LOAD, STT_FUNC};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{LittleEndian, Object, ObjectSymbol, ObjectSymbolTable, SymbolKind};

use crate::elf::ElfView;

/// Which symbol table a name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Symtab,
    Dynsym,
}

/// Defined function symbols called one of `names`, as `(name index, vaddr)`,
/// from `.symtab` when it has any of them, else `.dynsym`.
pub fn find_named(
    file: &ElfFile64<'_, LittleEndian>,
    names: &[&str],
) -> Option<(Table, Vec<(usize, u64)>)> {
    let from = |table: Option<
        object::read::elf::ElfSymbolTable<'_, '_, object::elf::FileHeader64<LittleEndian>>,
    >| {
        let table = table?;
        let mut found = Vec::new();
        for sym in table.symbols() {
            if sym.is_undefined() || sym.address() == 0 {
                continue;
            }
            let is_func = sym.kind() == SymbolKind::Text
                || sym.elf_symbol().st_type() == STT_FUNC
                || sym.kind() == SymbolKind::Unknown;
            if !is_func {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            // Versioned dynsym names read as "SSL_read@@OPENSSL_3.0.0" in
            // some toolchains' output; object gives the bare name.
            if let Some(i) = names.iter().position(|n| *n == name) {
                if !found.iter().any(|&(j, _)| j == i) {
                    found.push((i, sym.address()));
                }
            }
        }
        (!found.is_empty()).then_some(found)
    };
    if let Some(found) = from(file.symbol_table()) {
        return Some((Table::Symtab, found));
    }
    from(file.dynamic_symbol_table()).map(|f| (Table::Dynsym, f))
}

/// The GNU build id, if the file has an NT_GNU_BUILD_ID note.
pub fn build_id(view: &ElfView<'_>) -> Option<Vec<u8>> {
    view.file.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// Candidate debug files for `path`, in search order, each with what must
/// match: the build id (when the binary has one), else the debuglink CRC.
pub fn debug_file_candidates(
    path: &Path,
    view: &ElfView<'_>,
    debug_dirs: &[PathBuf],
) -> Vec<(PathBuf, DebugMatch)> {
    let mut out = Vec::new();
    let build_id = build_id(view);
    if let Some(id) = &build_id {
        if id.len() >= 2 {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let rel = format!(".build-id/{}/{}.debug", &hex[..2], &hex[2..]);
            for dir in debug_dirs
                .iter()
                .map(PathBuf::as_path)
                .chain([Path::new("/usr/lib/debug")])
            {
                out.push((dir.join(&rel), DebugMatch::BuildId(id.clone())));
            }
        }
    }
    if let Ok(Some((name, crc))) = view.file.gnu_debuglink() {
        if let Ok(name) = std::str::from_utf8(name) {
            let name = Path::new(name);
            let parent = path.parent().unwrap_or(Path::new("/"));
            let want = match &build_id {
                Some(id) => DebugMatch::BuildId(id.clone()),
                None => DebugMatch::Crc(crc),
            };
            let mut dirs: Vec<PathBuf> = vec![parent.to_path_buf(), parent.join(".debug")];
            dirs.extend(debug_dirs.iter().cloned());
            if let Ok(stripped) = parent.strip_prefix("/") {
                dirs.push(Path::new("/usr/lib/debug").join(stripped));
            }
            for dir in dirs {
                let candidate = dir.join(name);
                if candidate != path {
                    out.push((candidate, want.clone()));
                }
            }
        }
    }
    out
}

/// What a debug file must have to belong to the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebugMatch {
    BuildId(Vec<u8>),
    Crc(u32),
}

/// `true` when `data` (a debug file) matches.
pub fn debug_file_matches(data: &[u8], want: &DebugMatch) -> bool {
    match want {
        DebugMatch::Crc(crc) => crc32(data) == *crc,
        DebugMatch::BuildId(id) => ElfFile64::<LittleEndian>::parse(data)
            .ok()
            .and_then(|f| f.build_id().ok().flatten().map(|b| b == id.as_slice()))
            .unwrap_or(false),
    }
}

/// `true` if the binary and the debug file agree on where code is loaded
/// (same PT_LOAD virtual addresses), a cheap check against a debug file of
/// another build that happens to carry the name.
pub fn same_layout(binary: &ElfView<'_>, debug: &ElfFile64<'_, LittleEndian>) -> bool {
    let loads = |f: &ElfFile64<'_, LittleEndian>| -> Vec<u64> {
        f.elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(LittleEndian) == PT_LOAD)
            .map(|ph| ph.p_vaddr(LittleEndian))
            .collect()
    };
    let debug_loads = loads(debug);
    debug_loads.is_empty() || debug_loads == loads(&binary.file)
}

/// CRC-32 (IEEE, as `.gnu_debuglink` uses).
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xcbf4_3926);
    }
}
