//! inspect_tls on real Go 1.19 binaries built by the test (default,
//! stripped, -trimpath, PIE), the installed Go toolchain, non-Go and
//! non-TLS programs, and truncated or corrupted copies.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use std::path::Path;
use std::process::Command;

use go_binary::{
    inspect_tls, inspect_tls_bytes, is_go_executable, ConnFdOffsets, GoFunction, GoTlsTargets,
    OffsetsSource,
};
use object::{Object, ObjectSection, ObjectSymbol};

const GO_1_19: ConnFdOffsets = ConnFdOffsets {
    tls_conn_conn: 0,
    net_conn_fd: 0,
    netfd_pfd: 0,
    pfd_sysfd: 16,
};

/// File offset of `vaddr` computed from the section headers (sh_addr,
/// sh_offset), independently of the PT_LOAD mapping the crate uses.
fn offset_via_sections(data: &[u8], vaddr: u64) -> u64 {
    let file = object::File::parse(data).unwrap();
    let section = file
        .sections()
        .find(|s| {
            s.kind() == object::SectionKind::Text
                && s.address() <= vaddr
                && vaddr < s.address() + s.size()
        })
        .expect("no text section contains the address");
    let (offset, _) = section.file_range().unwrap();
    offset + (vaddr - section.address())
}

/// RET count in [entry, end) according to binutils' objdump, if installed.
fn objdump_ret_count(path: &Path, f: &GoFunction) -> Option<usize> {
    let out = Command::new("objdump")
        .arg("-d")
        .arg("--no-show-raw-insn")
        .arg(format!("--start-address={:#x}", f.entry_address))
        .arg(format!("--stop-address={:#x}", f.end_address))
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|l| l.split('\t').nth(1))
            .filter(|insn| {
                let m = insn.split_whitespace().next().unwrap_or("");
                m == "ret" || m == "retq"
            })
            .count(),
    )
}

fn check_function(path: &Path, data: &[u8], f: &GoFunction) {
    assert!(f.end_address > f.entry_address, "{}", f.name);
    let size = f.end_address - f.entry_address;
    assert_eq!(
        f.entry_file_offset,
        offset_via_sections(data, f.entry_address),
        "{}: entry file offset disagrees with the section headers",
        f.name
    );
    let entry = f.entry_file_offset as usize;
    // Go 1.19 amd64 functions open with the stack-bound check against
    // g.stackguard0, `cmp rsp|r12, [r14+16]` (.. 3b 66 10), after a
    // `lea r12, [rsp-frame]` for big frames: the bytes there are the entry.
    let prologue = &data[entry..entry + 16];
    assert!(
        prologue.windows(3).any(|w| w == [0x3b, 0x66, 0x10]),
        "{}: no stack check at the entry: {prologue:02x?}",
        f.name
    );
    assert!(!f.return_file_offsets.is_empty(), "{}: no RETs", f.name);
    for &ret in &f.return_file_offsets {
        assert!(
            ret >= f.entry_file_offset && ret < f.entry_file_offset + size,
            "{}",
            f.name
        );
        let byte = data[ret as usize];
        assert!(
            byte == 0xc3 || byte == 0xc2,
            "{}: {ret:#x} holds {byte:#x}, not a RET",
            f.name
        );
    }
    if let Some(count) = objdump_ret_count(path, f) {
        assert_eq!(
            count,
            f.return_file_offsets.len(),
            "{}: objdump counts {count} RETs",
            f.name
        );
    } else {
        eprintln!("objdump not available: RET counts not cross-checked");
    }
}

fn check(path: &Path) -> GoTlsTargets {
    let data = std::fs::read(path).unwrap();
    assert!(is_go_executable(&data), "{}", path.display());
    let t = inspect_tls(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((t.version.major, t.version.minor), (1, 19), "{}", t.version);
    assert!(t.version.raw.starts_with("go1.19"));
    assert_eq!(t.write.name, "crypto/tls.(*Conn).Write");
    assert_eq!(t.read.name, "crypto/tls.(*Conn).Read");
    check_function(path, &data, &t.write);
    check_function(path, &data, &t.read);
    // The same answer from the bytes as from the path.
    let again = inspect_tls_bytes(&data).unwrap();
    assert_eq!(again.write.return_file_offsets, t.write.return_file_offsets);
    assert_eq!(again.read.entry_file_offset, t.read.entry_file_offset);
    // With a symbol table, the pclntab entries match the symbols.
    if t.has_symtab {
        let file = object::File::parse(&*data).unwrap();
        for f in [&t.write, &t.read] {
            let sym = file
                .symbols()
                .find(|s| s.name() == Ok(f.name))
                .unwrap_or_else(|| panic!("{} not in .symtab", f.name));
            assert_eq!(sym.address(), f.entry_address, "{}", f.name);
        }
    }
    t
}

#[test]
fn unstripped_build_uses_dwarf() {
    let f = common::fixtures();
    let t = check(&f.default);
    assert!(t.has_symtab && t.has_dwarf);
    assert_eq!(t.offsets, Some((GO_1_19, OffsetsSource::Dwarf)));
}

#[test]
fn stripped_build_uses_the_version_table() {
    let f = common::fixtures();
    let t = check(&f.stripped);
    assert!(!t.has_symtab && !t.has_dwarf);
    assert_eq!(t.offsets, Some((GO_1_19, OffsetsSource::VersionTable)));
    // Stripping changes neither the code nor its addresses.
    let full = inspect_tls(&f.default).unwrap();
    assert_eq!(t.write.entry_address, full.write.entry_address);
    assert_eq!(
        t.read.return_file_offsets.len(),
        full.read.return_file_offsets.len()
    );
}

#[test]
fn trimpath_build() {
    let t = check(&common::fixtures().trimpath);
    assert_eq!(t.offsets, Some((GO_1_19, OffsetsSource::Dwarf)));
}

#[test]
fn pie_build_has_its_table_in_data_rel_ro() {
    let t = check(&common::fixtures().pie);
    assert_eq!(t.offsets, Some((GO_1_19, OffsetsSource::Dwarf)));
}

#[test]
fn the_debian_go_toolchain_binary() {
    let go = common::go();
    let t = check(go);
    assert!(
        !t.has_symtab && !t.has_dwarf,
        "Debian strips /usr/lib/go-1.19/bin/go"
    );
    assert_eq!(t.offsets, Some((GO_1_19, OffsetsSource::VersionTable)));
}

#[test]
fn go_program_without_tls_is_no_tls() {
    let path = &common::fixtures().no_net;
    let data = std::fs::read(path).unwrap();
    assert!(is_go_executable(&data));
    let err = inspect_tls(path).unwrap_err();
    assert_eq!(err.reason(), "no_tls", "{err}");
    assert!(
        err.to_string().contains("crypto/tls.(*Conn).Write"),
        "{err}"
    );
}

#[test]
fn arm64_build_is_unsupported_not_guessed() {
    let f = &common::fixtures().arm64;
    let data = std::fs::read(f).expect("read the arm64 build");
    assert!(go_binary::is_go_executable(&data), "it is a Go executable");
    let err = go_binary::inspect_tls(f).expect_err("arm64 is not hooked");
    assert_eq!(err.reason(), "unsupported_arch", "{err}");
}

/// A binary whose build info says Go 1.16 (the version string rewritten in
/// place, same length): the stack ABI, whose arguments the probes cannot read.
#[test]
fn go_before_1_17_is_too_old() {
    let f = &common::fixtures().stripped;
    let mut data = std::fs::read(f).expect("read the stripped build");
    let (start, size) = {
        use object::{Object, ObjectSection};
        let file = object::File::parse(&*data).expect("ELF");
        let section = file
            .section_by_name(".go.buildinfo")
            .expect(".go.buildinfo");
        section.file_range().expect("in the file")
    };
    let pos = start as usize
        + data[start as usize..(start + size) as usize]
            .windows(6)
            .position(|w| w == b"go1.19")
            .expect("the version string in the build info");
    data[pos..pos + 6].copy_from_slice(b"go1.16");
    let err = go_binary::inspect_tls_bytes(&data).expect_err("Go 1.16 is not hooked");
    assert_eq!(err.reason(), "go_too_old", "{err}");
}

#[test]
fn c_programs_are_not_go() {
    for path in ["/usr/bin/curl", "/bin/sh"] {
        if !Path::new(path).exists() {
            eprintln!("{path} not installed");
            continue;
        }
        let data = std::fs::read(path).unwrap();
        assert!(!is_go_executable(&data), "{path}");
        assert_eq!(
            inspect_tls(Path::new(path)).unwrap_err().reason(),
            "not_go",
            "{path}"
        );
    }
    let err = inspect_tls(Path::new("/nonexistent/binary")).unwrap_err();
    assert_eq!(err.reason(), "io");
}

#[test]
fn truncated_binaries_are_errors() {
    let f = common::fixtures();
    for path in [&f.default, &f.stripped] {
        let data = std::fs::read(path).unwrap();
        for percent in [1, 10, 25, 50, 75, 90, 99] {
            let cut = data.len() * percent / 100;
            let err = inspect_tls_bytes(&data[..cut])
                .expect_err("a truncated binary must not inspect OK");
            assert!(!err.to_string().is_empty());
            eprintln!(
                "{}% of {}: {} ({err})",
                percent,
                path.display(),
                err.reason()
            );
        }
    }
}

/// xorshift64: deterministic "random" flips.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn corrupted_pclntab_is_an_error_not_a_panic() {
    let path = &common::fixtures().stripped;
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let (start, len) = file
        .section_by_name(".gopclntab")
        .unwrap()
        .file_range()
        .unwrap();
    let start = start as usize;
    drop(file);

    // nfunc set huge.
    let mut d = data.clone();
    d[start + 8..start + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = inspect_tls_bytes(&d).unwrap_err();
    assert_eq!(err.reason(), "bad_pclntab");
    assert!(err.to_string().contains("nfunc too large"), "{err}");

    // nfunc larger than the table holds.
    let mut d = data.clone();
    d[start + 8..start + 16].copy_from_slice(&(3u64 << 20).to_le_bytes());
    assert_eq!(inspect_tls_bytes(&d).unwrap_err().reason(), "bad_pclntab");

    // Bad magic.
    let mut d = data.clone();
    d[start] ^= 0x55;
    let err = inspect_tls_bytes(&d).unwrap_err();
    assert_eq!(err.reason(), "bad_pclntab", "{err}");

    // Random flips in the 72-byte header, and a few in the function table.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut errors = 0;
    for round in 0..300 {
        let mut d = data.clone();
        let span = if round % 3 == 0 { len } else { 72 };
        for _ in 0..1 + next(&mut state) % 3 {
            let at = start + (next(&mut state) % span) as usize;
            d[at] ^= 1 << (next(&mut state) % 8);
        }
        match inspect_tls_bytes(&d) {
            Ok(t) => assert!(!t.write.return_file_offsets.is_empty()),
            Err(e) => {
                errors += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(errors > 0, "no flip was detected at all");
}
