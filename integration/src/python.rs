//! Running Python: the interpreter and the helper scripts in `integration/scripts/`.
//!
//! The interpreter is `$INTEGRATION_PYTHON`, else `/usr/bin/python3`, else
//! `python3` from PATH. It is started by that path, so the exec record's
//! file name (and `process.executable.name`) is that path's last part.

use std::path::PathBuf;

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("INTEGRATION_PYTHON") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/python3");
    if debian.is_file() {
        return debian;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("python3");
        if p.is_file() {
            return p;
        }
    }
    panic!("python3 not found: install the Debian package python3 (or set INTEGRATION_PYTHON)")
}

/// The executable name the agent reports for [`python`].
pub fn python_exe_name() -> String {
    python()
        .file_name()
        .expect("python path has a file name")
        .to_string_lossy()
        .into_owned()
}

/// The path of a helper script, e.g. `script("capture_pair.py")`.
pub fn script(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    assert!(p.is_file(), "missing helper script {}", p.display());
    p
}
