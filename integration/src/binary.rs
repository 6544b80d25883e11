//! Where the `wirespan` binary under test is.

use std::path::PathBuf;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// `$WIRESPAN_BIN`, else `<workspace>/target/debug/wirespan` (or under
/// `$CARGO_TARGET_DIR`). Panics with instructions when it is missing.
pub fn wirespan_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WIRESPAN_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "WIRESPAN_BIN={} does not exist: build the agent (`cargo build -p wirespan`) or fix WIRESPAN_BIN",
            p.display()
        );
        return p;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let p = target.join("debug").join("wirespan");
    assert!(
        p.is_file(),
        "\n\n*** the wirespan binary is not built: {} does not exist. ***\n\
         *** Run `cargo build -p wirespan` first (or set WIRESPAN_BIN). ***\n\n",
        p.display()
    );
    p
}
