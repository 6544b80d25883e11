//! The analysis against real binaries, with ground truth where there is
//! one: a C client linked with Debian's static `libssl.a` (OpenSSL 3.0),
//! built with symbols and stripped; Debian's `libssl.so.3`; a stripped
//! program without TLS; a decoy that holds OpenSSL's strings and mimics its
//! error calls; the same client with its symbols in a separate debug file;
//! grpcio's `cygrpc` extension (BoringSSL, stripped); Chromium.
//!
//! Missing tools fail loudly with the command that installs them.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tls_locate::{
    locate, Library, LocateOptions, Source, SSL_READ, SSL_READ_EX, SSL_WRITE, SSL_WRITE_EX,
};

const LIBSSL_A: &str = "/usr/lib/x86_64-linux-gnu/libssl.a";
const LIBCRYPTO_A: &str = "/usr/lib/x86_64-linux-gnu/libcrypto.a";
const LIBSSL_SO: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

fn need(path: &str, install: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run `{install}`"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (needs `apt-get install -y gcc binutils`)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tls-locate");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CLIENT: &str = r#"
#include <openssl/ssl.h>
#include <stdio.h>
int main(int argc, char **argv) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return 1;
    SSL *ssl = SSL_new(ctx);
    char buf[64]; size_t n = 0;
    if (argc > 5) {
        SSL_write(ssl, "x", 1); SSL_read(ssl, buf, sizeof buf);
        SSL_write_ex(ssl, "x", 1, &n); SSL_read_ex(ssl, buf, sizeof buf, &n);
    }
    printf("ok %p\n", (void *)ssl);
    SSL_free(ssl); SSL_CTX_free(ctx);
    return 0;
}
"#;

/// (unstripped, stripped) static-libssl client.
fn client() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        need(LIBSSL_A, "apt-get install -y libssl-dev");
        let dir = work_dir();
        let src = dir.join("client.c");
        std::fs::write(&src, CLIENT).unwrap();
        let full = dir.join("client");
        let stripped = dir.join("client.stripped");
        run(Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&full)
            .arg(&src)
            .args([LIBSSL_A, LIBCRYPTO_A, "-lpthread", "-ldl"]));
        run(Command::new("strip").arg("-o").arg(&stripped).arg(&full));
        (full, stripped)
    })
}

fn symtab_addresses(path: &Path) -> Vec<(&'static str, u64)> {
    let found = locate(path, &LocateOptions::default()).unwrap();
    found
        .functions
        .iter()
        .map(|f| {
            assert_eq!(f.source, Source::Symtab, "{f:?}");
            (f.name, f.vaddr)
        })
        .collect()
}

#[test]
fn stripped_static_openssl_client_matches_the_symbol_table() {
    let (full, stripped) = client();
    let truth = symtab_addresses(full);
    assert_eq!(truth.len(), 4, "{truth:?}");
    let found = locate(stripped, &LocateOptions::default()).unwrap();
    assert_eq!(found.library, Library::OpenSsl);
    let got: Vec<(&str, u64)> = found.functions.iter().map(|f| (f.name, f.vaddr)).collect();
    assert_eq!(got, truth, "{found:#?}");
    for f in &found.functions {
        assert!(matches!(f.source, Source::Analysis { .. }), "{f:?}");
        // Non-PIE or PIE, .text is mapped at its file offset here.
        assert_eq!(f.file_offset, f.vaddr);
    }
    assert!(found.unidentified.is_empty(), "{:?}", found.unidentified);
    assert_eq!(
        found.functions.iter().map(|f| f.name).collect::<Vec<_>>(),
        [SSL_READ, SSL_WRITE, SSL_READ_EX, SSL_WRITE_EX]
    );
}

#[test]
fn shared_libssl_is_named_by_dynsym() {
    need(LIBSSL_SO, "apt-get install -y libssl3");
    let found = locate(Path::new(LIBSSL_SO), &LocateOptions::default()).unwrap();
    assert_eq!(found.library, Library::OpenSsl);
    assert_eq!(found.functions.len(), 4, "{found:?}");
    for f in &found.functions {
        assert_eq!(f.source, Source::Dynsym);
    }
}

#[test]
fn debug_file_by_debuglink_names_the_functions() {
    let (full, _) = client();
    let dir = work_dir().join("debuglink");
    let debug_dir = dir.join("debug");
    std::fs::create_dir_all(&debug_dir).unwrap();
    let debug = debug_dir.join("client.debug");
    let linked = dir.join("client.linked");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(full)
        .arg(&debug));
    run(Command::new("strip").arg("-o").arg(&linked).arg(full));
    // Link by name only (drop the build id so the CRC path is exercised).
    run(Command::new("objcopy")
        .arg("--remove-section=.note.gnu.build-id")
        .arg(&linked));
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(&linked));
    let opts = LocateOptions {
        debug_dirs: vec![debug_dir.clone()],
        symbols_only: true,
        ..LocateOptions::default()
    };
    let found = locate(&linked, &opts).unwrap();
    assert_eq!(found.functions.len(), 4, "{found:?}");
    for f in &found.functions {
        assert_eq!(f.source, Source::DebugFile(debug.clone()));
    }
    assert_eq!(
        found
            .functions
            .iter()
            .map(|f| (f.name, f.vaddr))
            .collect::<Vec<_>>(),
        symtab_addresses(full)
    );
}

#[test]
fn stripped_program_without_tls_is_no_tls() {
    let copy = work_dir().join("true.stripped");
    run(Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg("/usr/bin/true"));
    let err = locate(&copy, &LocateOptions::default()).unwrap_err();
    assert_eq!(err.reason(), "no_tls", "{err}");
}

/// Holds "../ssl/ssl_lib.c", "ssl/ssl_lib.cc" and "SSL_write", and calls
/// functions with exactly OpenSSL 3's and BoringSSL's error-call shapes.
const DECOY: &str = r#"
#include <stdio.h>
__attribute__((noinline)) void set_debug(const char *f, int l, const char *fn) { printf("%s:%d %s\n", f, l, fn); }
__attribute__((noinline)) void set_error(int lib, int reason, const char *fmt) { printf("%d %d %p\n", lib, reason, (void *)fmt); }
__attribute__((noinline)) void put_error(int lib, int f, int r, const char *file, unsigned line) { printf("%d %d %d %s %u\n", lib, f, r, file, line); }
__attribute__((noinline)) int SSL_write_like(int n) {
    if (n < 0) { set_debug("../ssl/ssl_lib.c", 2118, "SSL_write"); set_error(20, 271, NULL); return -1; }
    return n;
}
__attribute__((noinline)) int SSL_read_like(int n) {
    if (n < 0) { set_debug("../ssl/ssl_lib.c", 1868, "SSL_read"); set_error(20, 271, NULL); return -1; }
    return n;
}
__attribute__((noinline)) int boring_write_like(int n) {
    if (n < 0) { put_error(16, 0, 111, "ssl/ssl_lib.cc", 979); return -1; }
    if (n == 0) { put_error(16, 0, 226, "ssl/ssl_lib.cc", 958); return -1; }
    return n;
}
int main(int argc, char **argv) { (void)argv; return SSL_write_like(argc - 2) + SSL_read_like(argc - 3) + boring_write_like(argc - 2); }
"#;

#[test]
fn decoy_with_the_strings_and_call_shapes_is_not_identified() {
    let dir = work_dir();
    let src = dir.join("decoy.c");
    std::fs::write(&src, DECOY).unwrap();
    let bin = dir.join("decoy");
    run(Command::new("cc").args(["-O2", "-o"]).arg(&bin).arg(&src));
    run(Command::new("strip").arg(&bin));
    let err = locate(&bin, &LocateOptions::default()).unwrap_err();
    assert_eq!(err.reason(), "not_identified", "{err}");
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    let (_, stripped) = client();
    let data = std::fs::read(stripped).unwrap();
    let opts = LocateOptions::default();
    for len in [0, 3, 16, 63, 64, 200, 4096, data.len() / 2, data.len() - 1] {
        let err = tls_locate::locate_bytes(&data[..len], &opts).unwrap_err();
        assert!(!err.reason().is_empty());
    }
    // Corrupt .eh_frame in place: Err or a result, never a panic; and
    // whatever is returned still starts an FDE of the damaged table.
    let view = tls_locate::elf::ElfView::parse(&data).unwrap();
    let eh = view.section(".eh_frame").unwrap();
    let eh_offset = view.vaddr_to_offset(eh.vaddr, 1, false).unwrap() as usize;
    for (i, pattern) in [0x00u8, 0xff, 0x41].into_iter().enumerate() {
        let mut bad = data.clone();
        for b in &mut bad[eh_offset + 8 * i..eh_offset + eh.bytes.len() / 3] {
            *b = pattern;
        }
        match tls_locate::locate_bytes(&bad, &opts) {
            Ok(found) => {
                let view = tls_locate::elf::ElfView::parse(&bad).unwrap();
                let table = tls_locate::analysis::function_table(&view).unwrap();
                for f in &found.functions {
                    assert!(table.starting_at(f.vaddr).is_some());
                }
            }
            Err(e) => assert!(!e.reason().is_empty()),
        }
    }
    // Section header table pointing past the end.
    let mut bad = data.clone();
    bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(tls_locate::locate_bytes(&bad, &opts).is_err());
}

fn grpcio_extension() -> PathBuf {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import grpc._cython.cygrpc as m; print(m.__file__)"])
        .output()
        .expect("/usr/bin/python3 (apt-get install -y python3)");
    assert!(
        out.status.success(),
        "grpcio is missing for /usr/bin/python3: run `pip install grpcio` ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn grpcio_boringssl_read_and_write_by_analysis() {
    let path = grpcio_extension();
    let found = locate(&path, &LocateOptions::default()).unwrap();
    assert_eq!(found.library, Library::BoringSsl);
    let names: Vec<&str> = found.functions.iter().map(|f| f.name).collect();
    assert_eq!(names, [SSL_READ, SSL_WRITE], "{found:#?}");
    for f in &found.functions {
        let Source::Analysis { evidence } = &f.source else {
            panic!("{f:?}")
        };
        assert!(evidence.contains("FDE start, called from"), "{evidence}");
    }
    assert!(found.stats.elapsed.as_secs() < 10, "{:?}", found.stats);
}

/// Like [`CLIENT`], but the TLS calls are made from a function reached only
/// through a relocated function pointer (as Chromium reaches its socket code
/// through vtables), built without unwind tables and then stripped of
/// `.eh_frame` altogether: entries can only be proven by recursive descent.
const CLIENT_NO_UNWIND: &str = r#"
#include <openssl/ssl.h>
#include <stdio.h>
static int do_io(SSL *ssl, char *buf, size_t len, size_t *n) {
    SSL_write(ssl, "x", 1); SSL_read(ssl, buf, (int)len);
    SSL_write_ex(ssl, "x", 1, n); return SSL_read_ex(ssl, buf, len, n);
}
int (*volatile io_table[])(SSL *, char *, size_t, size_t *) = { do_io };
int main(int argc, char **argv) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return 1;
    SSL *ssl = SSL_new(ctx);
    char buf[64]; size_t n = 0;
    if (argc > 5) io_table[0](ssl, buf, sizeof buf, &n);
    printf("ok %p\n", (void *)ssl);
    SSL_free(ssl); SSL_CTX_free(ctx);
    return 0;
}
"#;

/// (with symbols, no symbols and no `.eh_frame`) [`CLIENT_NO_UNWIND`].
fn client_no_unwind() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        need(LIBSSL_A, "apt-get install -y libssl-dev");
        let dir = work_dir();
        let src = dir.join("client_nounwind.c");
        std::fs::write(&src, CLIENT_NO_UNWIND).unwrap();
        let full = dir.join("client_nounwind");
        let bare = dir.join("client_nounwind.bare");
        run(Command::new("cc")
            .args(["-O2", "-fno-asynchronous-unwind-tables", "-o"])
            .arg(&full)
            .arg(&src)
            .args([LIBSSL_A, LIBCRYPTO_A, "-lpthread", "-ldl"]));
        run(Command::new("objcopy")
            .args([
                "--strip-all",
                "--remove-section=.eh_frame",
                "--remove-section=.eh_frame_hdr",
            ])
            .arg(&full)
            .arg(&bare));
        (full, bare)
    })
}

#[test]
fn client_without_any_unwind_info_is_located_by_descent() {
    let (full, bare) = client_no_unwind();
    let truth = symtab_addresses(full);
    assert_eq!(truth.len(), 4, "{truth:?}");
    let found = locate(bare, &LocateOptions::default()).unwrap();
    assert_eq!(found.library, Library::OpenSsl);
    // SSL_read and SSL_write exactly; the `_ex` wrappers may be refused
    // (their descent ranges are not exact function extents), never wrong.
    for f in &found.functions {
        assert!(truth.contains(&(f.name, f.vaddr)), "{f:?} vs {truth:?}");
        let Source::Analysis { evidence } = &f.source else {
            panic!("{f:?}")
        };
        assert!(evidence.contains("recursive-descent entry"), "{evidence}");
    }
    let names: Vec<&str> = found.functions.iter().map(|f| f.name).collect();
    assert!(names.starts_with(&[SSL_READ, SSL_WRITE]), "{found:#?}");
    assert_eq!(found.stats.fdes, 0);
    assert!(
        found.stats.descent_instructions > 100_000,
        "{:?}",
        found.stats
    );
}

#[test]
fn decoy_and_damage_without_unwind_info_are_refused_not_panics() {
    let dir = work_dir();
    let src = dir.join("decoy_nounwind.c");
    std::fs::write(&src, DECOY).unwrap();
    let bin = dir.join("decoy_nounwind");
    run(Command::new("cc")
        .args(["-O2", "-fno-asynchronous-unwind-tables", "-o"])
        .arg(&bin)
        .arg(&src));
    run(Command::new("objcopy")
        .args([
            "--strip-all",
            "--remove-section=.eh_frame",
            "--remove-section=.eh_frame_hdr",
        ])
        .arg(&bin));
    let err = locate(&bin, &LocateOptions::default()).unwrap_err();
    assert_eq!(err.reason(), "not_identified", "{err}");

    // The descent path on truncated and damaged input: errors or results,
    // never a panic, and never an address that is not a proven entry.
    let (_, bare) = client_no_unwind();
    let data = std::fs::read(bare).unwrap();
    let opts = LocateOptions::default();
    for len in [64, 4096, data.len() / 3, data.len() / 2, data.len() - 1] {
        assert!(tls_locate::locate_bytes(&data[..len], &opts).is_err());
    }
    let view = tls_locate::elf::ElfView::parse(&data).unwrap();
    let text = view.section(".text").unwrap();
    let text_off = view.vaddr_to_offset(text.vaddr, 1, false).unwrap() as usize;
    for (step, pattern) in [(97usize, 0xe8u8), (61, 0xcc), (13, 0x0f)] {
        let mut bad = data.clone();
        for i in (text_off..text_off + text.bytes.len()).step_by(step) {
            bad[i] = pattern;
        }
        if let Ok(found) = tls_locate::locate_bytes(&bad, &opts) {
            for f in &found.functions {
                let Source::Analysis { evidence } = &f.source else {
                    panic!("{f:?}")
                };
                assert!(evidence.contains("recursive-descent entry"), "{evidence}");
            }
        }
    }
}

/// The proof itself, against ground truth: every call target that descent
/// from the strong roots (relocations, symbols, the entry point; no FDEs)
/// finds in the compiled C of the unstripped client is a symbol's start,
/// and that descent meets no overlapping or invalid instruction. (Assembly
/// files call local labels, which carry no symbol: OpenSSL's perlasm is
/// told apart by its functions' names being outside `SSL_`/`ssl`/`tls`.)
#[test]
fn descent_entries_in_compiled_code_are_symbol_starts() {
    use object::{Object, ObjectSymbol};
    let (full, _) = client();
    let data = std::fs::read(full).unwrap();
    let view = tls_locate::elf::ElfView::parse(&data).unwrap();
    let d = tls_locate::descent::descend(&view, &[], &mut || Ok(())).unwrap();
    assert_eq!((d.strong_conflicts, d.strong_invalid), (0, 0));
    let file = object::File::parse(&*data).unwrap();
    let mut syms: Vec<(u64, String)> = file
        .symbols()
        .filter(|s| s.address() != 0 && s.is_definition())
        .map(|s| (s.address(), s.name().unwrap_or("").to_string()))
        .collect();
    syms.sort();
    let text = view.section(".text").unwrap();
    let in_text = |a: u64| (text.vaddr..text.vaddr + text.bytes.len() as u64).contains(&a);
    let mut checked = 0;
    for &e in d.entries.iter().filter(|&&e| in_text(e)) {
        let i = syms.partition_point(|(a, _)| *a <= e);
        let (start, name) = &syms[i - 1];
        if *start == e {
            checked += 1;
            continue;
        }
        let c_code = name.starts_with("SSL_") || name.starts_with("ssl") || name.starts_with("tls");
        assert!(!c_code, "{e:#x} is inside {name} (+{:#x})", e - start);
    }
    assert!(checked > 2000, "{checked}");
    for name in ["SSL_read", "SSL_write"] {
        let (addr, _) = syms.iter().find(|(_, n)| n == name).unwrap();
        assert!(d.is_instruction_start(*addr));
    }
}

/// Chromium's `.eh_frame` covers only its hand-written assembly (it builds
/// C++ with `-fno-asynchronous-unwind-tables`), so entries are proven by
/// recursive descent from its 869k relocated code pointers: `SSL_write` and
/// `SSL_read` (with `SSL_peek` inlined) are each called directly from the
/// network stack. Checked by hand against the disassembly and with uprobes
/// on a headless run (BENCHMARKS.md).
#[test]
fn chromium_boringssl_by_recursive_descent() {
    let path = Path::new("/usr/lib/chromium/chromium");
    need("/usr/lib/chromium/chromium", "apt-get install -y chromium");
    let found = locate(path, &LocateOptions::default()).unwrap();
    assert_eq!(found.library, Library::BoringSsl);
    let names: Vec<&str> = found.functions.iter().map(|f| f.name).collect();
    assert_eq!(names, [SSL_READ, SSL_WRITE], "{found:#?}");
    for f in &found.functions {
        let Source::Analysis { evidence } = &f.source else {
            panic!("{f:?}")
        };
        assert!(evidence.contains("recursive-descent entry"), "{evidence}");
        assert_eq!(f.vaddr % 16, 0, "{f:?}");
    }
    assert_eq!(found.stats.descent_conflicts, 0, "{:?}", found.stats);
    assert!(found.stats.elapsed.as_secs() < 30, "{:?}", found.stats);
}
