//! Errors people can act on: a missing privilege and a bad configuration are
//! each one sentence on stderr and a non-zero exit, never a backtrace.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::os::unix::process::CommandExt;
use std::process::Command;

fn wirespan() -> Command {
    Command::new(integration::binary::wirespan_bin())
}

fn assert_one_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn without_privileges_run_says_what_is_missing() {
    // uid/gid 65534 (nobody) has no capabilities; the binary must be reachable
    // for it, so copy it somewhere world-readable.
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("wirespan");
    std::fs::copy(integration::binary::wirespan_bin(), &bin).expect("copy the binary");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod dir");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod bin");
    let out = Command::new(&bin)
        .arg("run")
        .env("WIRESPAN_METRICS__LISTEN", "127.0.0.1:0")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run wirespan as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_one_line(&stderr);
    assert!(
        stderr.contains(
            "needs CAP_BPF and CAP_PERFMON (or root) to load its eBPF probes, and lacks CAP_BPF and CAP_PERFMON"
        ),
        "{stderr}"
    );
}

#[test]
fn bad_configuration_names_file_key_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wirespan.yaml");
    std::fs::write(&path, "export:\n  queue_size: lots\n").expect("write config");
    let out = wirespan()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .expect("run wirespan config check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_one_line(&stderr);
    assert!(stderr.contains(&*path.to_string_lossy()), "file: {stderr}");
    assert!(stderr.contains("export.queue_size"), "key: {stderr}");
    assert!(stderr.contains("expected an integer"), "reason: {stderr}");

    let out = wirespan()
        .arg("run")
        .env("WIRESPAN_CAPTURE__PER_CALL_CAP_BYTES", "0")
        .output()
        .expect("run wirespan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("capture.per_call_cap_bytes"), "{stderr}");
}
