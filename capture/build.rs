//! Builds the eBPF programs (probes-ebpf) for bpfel-unknown-none and puts the
//! object in OUT_DIR, where main embeds it. Uses the nightly when installed,
//! else stable with RUSTC_BOOTSTRAP=1 (both verified; see scripts/setup-toolchain.sh).
//! AYA_BUILD_SKIP=1 skips it for user-space-only checks.
#![allow(
    unused_crate_dependencies,
    reason = "probes-ebpf is a build-dependency so that cargo rebuilds when it changes; aya-build compiles it"
)]

use std::process::Command;

fn main() -> anyhow::Result<()> {
    // User-space-only builds (fuzzing, docs): an empty object is embedded, and
    // loading it fails with a clear error if such a binary is ever run.
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("wirespan-probes");
        std::fs::write(out, b"")?;
        return Ok(());
    }
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let toolchain = if has_nightly {
        aya_build::Toolchain::Nightly
    } else {
        // SAFETY of intent: only this build script's children see the variable.
        std::env::set_var("RUSTC_BOOTSTRAP", "1");
        aya_build::Toolchain::Custom("stable")
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../probes-ebpf");
    println!("cargo:rerun-if-changed={root}/src");
    println!("cargo:rerun-if-changed=../probes-common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "probes-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        toolchain,
    )
}
