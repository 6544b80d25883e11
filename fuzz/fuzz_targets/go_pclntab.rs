//! The `go-binary` readers on arbitrary bytes.
//!
//! Input: the first byte selects what the rest is fed to (`mode % 4`):
//! - 0: `pclntab::Pclntab::parse(rest[8..], text_addr = u64 LE rest[..8])`,
//!   then every function, `find_function` of the two hooked names and of the
//!   first function's name;
//! - 1: `inspect_tls_bytes(rest)` and `is_go_executable(rest)` (a whole ELF);
//! - 2: `buildinfo::parse_version(rest)` (a `.go.buildinfo` section) with a
//!   resolver that maps addresses onto `rest` itself (offset = vaddr - 0x1000),
//!   so the Go ≤ 1.17 pointer form is followed too;
//! - 3: `dwarf_offsets::offsets_from_sections(info, abbrev, str)`, `rest`
//!   split at two u16 LE lengths (abbrev length, str length) taken from its
//!   start.
//!
//! Seeds (fuzz/seeds/go_pclntab/): small synthetic 1.18 and 1.16 tables, a
//! buildinfo section of each form, and the first 4 KiB of a Go 1.19 binary
//! (ELF + program headers; everything after is cut, so it exercises the
//! truncation checks).
//!
//! Invariants:
//! - no panic, no allocation beyond the input's size (the parsers borrow);
//! - `Pclntab::parse` Ok ⇒ `functions()` yields exactly `len()` functions in
//!   non-decreasing entry order with `entry <= end`, and `find_function(n)`
//!   is the first function named `n`;
//! - `inspect_tls_bytes` Ok ⇒ Go ≥ 1.17, each function has ≥ 1 RET, every
//!   RET file offset lies in `[entry_file_offset, entry_file_offset + size)`
//!   and holds 0xC3/0xC2 or a prefix byte; Err ⇒ a non-empty message and a
//!   non-empty `reason()`.
#![no_main]

use go_binary::{buildinfo, dwarf_offsets, inspect_tls_bytes, is_go_executable, pclntab};
use libfuzzer_sys::fuzz_target;

fn check_table(data: &[u8]) {
    let Some((addr, table)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(t) = pclntab::Pclntab::parse(table, u64::from_le_bytes(*addr)) else {
        return;
    };
    let mut count = 0;
    let mut prev = 0u64;
    let mut first_name = None;
    for f in t.functions() {
        assert!(f.entry >= prev && f.entry <= f.end);
        prev = f.entry;
        first_name.get_or_insert(f.name);
        count += 1;
    }
    assert_eq!(count, t.len());
    for name in [go_binary::WRITE_FUNCTION, go_binary::READ_FUNCTION] {
        let _ = t.find_function(name);
    }
    if let Some(name) = first_name.and_then(|n| std::str::from_utf8(n).ok()) {
        let first = t
            .functions()
            .find(|f| f.name == name.as_bytes())
            .map(|f| (f.entry, f.end));
        assert_eq!(t.find_function(name), first);
    }
}

fn check_inspect(data: &[u8]) {
    let _ = is_go_executable(data);
    match inspect_tls_bytes(data) {
        Ok(t) => {
            assert!((t.version.major, t.version.minor) >= (1, 17));
            for f in [&t.write, &t.read] {
                assert!(!f.return_file_offsets.is_empty());
                let size = f.end_address - f.entry_address;
                for &r in &f.return_file_offsets {
                    assert!(r >= f.entry_file_offset && r - f.entry_file_offset < size);
                    assert!(usize::try_from(r).is_ok_and(|r| r < data.len()));
                }
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(!e.reason().is_empty());
        }
    }
}

fn check_buildinfo(data: &[u8]) {
    let resolve = |vaddr: u64, len: u64| -> Option<&[u8]> {
        let start = usize::try_from(vaddr.checked_sub(0x1000)?).ok()?;
        data.get(start..start.checked_add(usize::try_from(len).ok()?)?)
    };
    let _ = buildinfo::parse_version(data, &resolve);
}

fn check_dwarf(data: &[u8]) {
    let Some((lens, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let abbrev_len = usize::from(u16::from_le_bytes([lens[0], lens[1]])).min(rest.len());
    let (abbrev, rest) = rest.split_at(abbrev_len);
    let str_len = usize::from(u16::from_le_bytes([lens[2], lens[3]])).min(rest.len());
    let (strs, info) = rest.split_at(str_len);
    let _ = dwarf_offsets::offsets_from_sections(info, abbrev, strs);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => check_table(rest),
        1 => check_inspect(rest),
        2 => check_buildinfo(rest),
        _ => check_dwarf(rest),
    }
});
