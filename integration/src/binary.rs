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
/// `$CARGO_TARGET_DIR`). Panics with instructions when it is missing or older
/// than the agent's sources.
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
    assert_fresh(&p);
    p
}

/// The workspace members the agent is built from: every member of the root
/// `Cargo.toml` but the test-only ones (read from the file, so a new crate
/// is never forgotten here).
fn agent_source_crates(root: &std::path::Path) -> Vec<String> {
    const TEST_ONLY: [&str; 2] = ["integration", "test-support"];
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let Some(members) = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
    else {
        return Vec::new();
    };
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty() && !TEST_ONLY.contains(&m.as_str()))
        .collect()
}

/// Fails when a source file of the agent is newer than the binary: `cargo
/// test -p integration` does not rebuild the agent, and a stale one would
/// test yesterday's code.
fn assert_fresh(bin: &std::path::Path) {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = workspace_root();
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = agent_source_crates(&root)
        .iter()
        .map(|c| root.join(c).join("src"))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                        newest = Some((t, path));
                    }
                }
            }
        }
    }
    if let Some((t, path)) = newest {
        assert!(
            t <= built,
            "\n\n*** {} is older than {}: run `cargo build -p wirespan` (scripts/test.sh does) ***\n\n",
            bin.display(),
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_agent_crate_is_watched() {
        let crates = super::agent_source_crates(&super::workspace_root());
        for c in [
            "wirespan",
            "capture",
            "tls-locate",
            "span-model",
            "probes-ebpf",
        ] {
            assert!(crates.iter().any(|m| m == c), "{c} missing from {crates:?}");
        }
        assert!(!crates.iter().any(|m| m == "integration"));
    }
}
