//! C programs for the stripped-TLS tests, built here from `integration/c/`
//! with the system compiler, once per test process, then `strip`ped: no
//! symbol table, as release builds ship.
//!
//! `LinkTls::StaticLibssl` links Debian's `libssl.a` and `libcrypto.a`
//! (`libssl-dev`), so the TLS library sits inside the executable with no
//! symbol naming its functions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub const LIBSSL_A: &str = "/usr/lib/x86_64-linux-gnu/libssl.a";
pub const LIBCRYPTO_A: &str = "/usr/lib/x86_64-linux-gnu/libcrypto.a";

/// What a program links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkTls {
    None,
    StaticLibssl,
}

fn build_root() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("wirespan-c-")
            .tempdir()
            .expect("temp dir for C builds")
    })
    .path()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (run scripts/setup.sh: apt-get install gcc binutils libssl-dev)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `integration/c/<name>.c`, compiled with `-O2`, linked as `link` says,
/// stripped, at `<tmp>/<name>-stripped`. Fails loudly when the compiler or
/// the static libraries are missing.
pub fn stripped_c_program(name: &str, link: LinkTls) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("c")
        .join(format!("{name}.c"));
    let out = build_root().join(format!("{name}-stripped"));
    let mut cc = Command::new("cc");
    cc.args(["-O2", "-Wall", "-o"]).arg(&out).arg(&src);
    if link == LinkTls::StaticLibssl {
        for lib in [LIBSSL_A, LIBCRYPTO_A] {
            assert!(
                Path::new(lib).exists(),
                "{lib} is missing: run scripts/setup.sh (apt-get install libssl-dev)"
            );
        }
        cc.args([LIBSSL_A, LIBCRYPTO_A, "-lpthread", "-ldl"]);
    }
    run(&mut cc);
    run(Command::new("strip").arg(&out));
    built.insert(name.to_string(), out.clone());
    out
}
