//! Go programs for the tests, built here from `integration/go/` with Debian's
//! `golang-1.19-go` (standard library only: nothing is downloaded).
//!
//! Each program is built once per test process and form (with symbols,
//! `-ldflags=-s -w`, `-trimpath`) into a temp directory; the build cache is
//! shared across runs so that only the first build on a machine is slow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Where Debian's golang-1.19-go puts its compiler.
pub const GO: &str = "/usr/lib/go-1.19/bin/go";

/// How a Go executable is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoBuild {
    /// `go build`: symbol table and DWARF.
    Symbols,
    /// `go build -ldflags='-s -w'`: no symbol table, no DWARF (release images).
    Stripped,
    /// `go build -trimpath`: symbols, file paths rewritten.
    Trimpath,
}

impl GoBuild {
    pub fn suffix(self) -> &'static str {
        match self {
            GoBuild::Symbols => "symbols",
            GoBuild::Stripped => "stripped",
            GoBuild::Trimpath => "trimpath",
        }
    }
}

fn built() -> &'static Mutex<HashMap<(String, GoBuild), PathBuf>> {
    static BUILT: OnceLock<Mutex<HashMap<(String, GoBuild), PathBuf>>> = OnceLock::new();
    BUILT.get_or_init(|| Mutex::new(HashMap::new()))
}

fn build_root() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("wirespan-go-")
            .tempdir()
            .expect("temp dir for Go builds")
    })
    .path()
}

/// The executable of `integration/go/<program>/`, built as `form` and named
/// `<program>-<form>` (so that each form has its own `service.name`).
/// Fails loudly when the Go compiler is missing.
pub fn go_program(program: &str, form: GoBuild) -> PathBuf {
    let mut built = built().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(&(program.to_string(), form)) {
        return p.clone();
    }
    assert!(
        Path::new(GO).exists(),
        "the Go compiler {GO} is missing: run scripts/setup.sh (apt-get install golang-1.19-go)"
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("go")
        .join(program);
    let out = build_root().join(format!("{program}-{}", form.suffix()));
    let cache = std::env::temp_dir().join("wirespan-go-build-cache");
    let mut cmd = Command::new(GO);
    cmd.arg("build").arg("-o").arg(&out);
    match form {
        GoBuild::Symbols => {}
        GoBuild::Stripped => {
            cmd.arg("-ldflags=-s -w");
        }
        GoBuild::Trimpath => {
            cmd.arg("-trimpath");
        }
    }
    cmd.arg(".")
        .current_dir(&src)
        .env("GOCACHE", &cache)
        .env("GOPATH", build_root().join("gopath"))
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0");
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {GO}: {e}"));
    assert!(
        result.status.success(),
        "go build of {} ({form:?}) failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    built.insert((program.to_string(), form), out.clone());
    out
}

/// A fresh copy of `exe` (a new inode the agent has never seen) named
/// `name`, in a new temp directory kept alive by the returned guard.
pub fn fresh_copy(exe: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("wirespan-go-copy-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join(name);
    std::fs::copy(exe, &path).expect("copy the Go executable");
    (dir, path)
}
