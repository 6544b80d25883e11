//! Least privilege: the agent runs as an unprivileged user (uid 65534) with
//! exactly the capabilities the README documents (CAP_BPF, CAP_PERFMON,
//! CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH), captures real traffic that way, and
//! names the capability that is missing when it cannot start.
//!
//! `setpriv` (util-linux) sets the user, the bounding set and the ambient set,
//! so the agent's effective set is exactly the one given; the test reads it
//! back from /proc/PID/status rather than trusting that.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::servers::python_http_server;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const NEEDED: [&str; 4] = ["bpf", "perfmon", "sys_ptrace", "dac_read_search"];

/// Capability numbers (linux/capability.h).
fn cap_number(name: &str) -> u32 {
    match name {
        "dac_read_search" => 2,
        "sys_ptrace" => 19,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("unknown capability {other}"),
    }
}

/// A copy of the agent that uid 65534 can execute (the build directory may
/// not be reachable for it).
fn reachable_agent(dir: &tempfile::TempDir) -> String {
    let bin = dir.path().join("wirespan");
    std::fs::copy(integration::binary::wirespan_bin(), &bin).expect("copy the agent");
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).expect("chmod dir");
    std::fs::set_permissions(&bin, PermissionsExt::from_mode(0o755)).expect("chmod agent");
    bin.display().to_string()
}

/// `setpriv` arguments: uid/gid 65534 with exactly `caps` (bounding,
/// inheritable and ambient sets), then `program`.
fn setpriv_args(caps: &[&str], program: &str) -> Vec<String> {
    let list: String = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps={list}"),
        format!("--ambient-caps={list}"),
        format!("--bounding-set={list}"),
        program.into(),
    ]
}

fn require_setpriv() {
    let ok = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "setpriv (Debian package util-linux) is needed to run the agent with chosen capabilities"
    );
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("agent status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn runs_and_traces_with_exactly_the_documented_capabilities() {
    require_root("runs_and_traces_with_exactly_the_documented_capabilities");
    require_setpriv();
    let _g = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = reachable_agent(&dir);
    // The harness runs `<wrapper> <built agent> run ...`: the wrapper drops
    // the built agent's path and execs setpriv with the reachable copy.
    let script = dir.path().join("run-agent.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nshift\nexec setpriv {} \"$@\"\n",
            setpriv_args(&NEEDED, &agent)
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o755)).expect("chmod wrapper");
    let run = SpanRun::start_with(
        OtlpProtocol::Grpc,
        AgentOptions::default().wrapped(&[&script.display().to_string()]),
    );

    // It is who the test says it is.
    let pid = run.agent.pid();
    let uid = status_field(pid, "Uid:");
    assert!(uid.split_whitespace().all(|u| u == "65534"), "Uid: {uid}");
    let want: u64 = NEEDED.iter().map(|c| 1u64 << cap_number(c)).sum();
    let eff = u64::from_str_radix(&status_field(pid, "CapEff:"), 16).expect("CapEff");
    assert_eq!(eff, want, "CapEff {eff:#x}, expected exactly {NEEDED:?}");

    // And it traces: a root-owned server and a client started after it.
    let server = python_http_server(&[("index.html", b"least privilege\n")]);
    let c = curl(
        &[
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{}/index.html", server.port),
        ],
        &[("OTEL_SERVICE_NAME", "unprivileged-check")],
    );
    assert_eq!(c.transfers[0].response_code, 200);
    let (spans, _exit) = run.finish(server.port, 2);
    let client = spans.iter().find(|s| s.is_client()).expect("client span");
    let server_span = spans.iter().find(|s| s.is_server()).expect("server span");
    assert_eq!(client.res_str("service.name"), Some("unprivileged-check"));
    assert_eq!(client.str("url.path"), Some("/index.html"));
    assert_eq!(server_span.int("http.response.status_code"), Some(200));
    assert_eq!(
        server_span.str("service.peer.name"),
        Some("unprivileged-check")
    );
}

/// Runs the agent as uid 65534 with `caps` until it exits or has attached
/// its probes (then stops it); returns (exit code, or None if it started and
/// was stopped; stderr without colour codes).
fn try_start(caps: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = reachable_agent(&dir);
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new("setpriv")
        .args(setpriv_args(caps, &agent))
        .arg("run")
        .env(
            "WIRESPAN_METRICS__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run setpriv");
    let exited = std::cell::Cell::new(false);
    let settled = wait_until(std::time::Duration::from_secs(60), || {
        if matches!(child.try_wait(), Ok(Some(_))) {
            exited.set(true);
            return true;
        }
        std::fs::read_to_string(&stderr_path).is_ok_and(|e| e.contains("probes attached"))
    });
    assert!(
        settled,
        "the agent neither exited nor attached its probes within 60 s"
    );
    let exited = exited.get();
    let code = if exited {
        child.wait().ok().and_then(|s| s.code())
    } else {
        child.kill().ok();
        child.wait().ok();
        None
    };
    let raw = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut clean = String::new();
    let mut in_escape = false;
    for ch in raw.chars() {
        match (in_escape, ch) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => clean.push(c),
        }
    }
    (code, clean)
}

#[test]
fn a_missing_capability_is_named() {
    require_root("a_missing_capability_is_named");
    require_setpriv();
    let _g = serial();
    let without =
        |cap: &str| -> Vec<&str> { NEEDED.iter().copied().filter(|c| *c != cap).collect() };

    for (cap, name) in [("bpf", "CAP_BPF"), ("perfmon", "CAP_PERFMON")] {
        let (code, stderr) = try_start(&without(cap));
        assert_eq!(code, Some(1), "without {name}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one sentence without {name}:\n{stderr}");
        assert_eq!(
            lines[0],
            format!(
                "wirespan: needs CAP_BPF and CAP_PERFMON (or root) to load its eBPF probes, \
                 and lacks {name}: run it as root or grant those capabilities"
            )
        );
    }

    // Without CAP_DAC_READ_SEARCH, tracefs (root's, mode 700) is closed to uid 65534.
    let (code, stderr) = try_start(&without("dac_read_search"));
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("wirespan: cannot read tracefs at /sys/kernel/tracing")
            && lines[0].ends_with("grant CAP_DAC_READ_SEARCH"),
        "{stderr}"
    );

    // Without CAP_SYS_PTRACE it runs, and says once what that costs.
    let (code, stderr) = try_start(&without("sys_ptrace"));
    assert_eq!(
        code, None,
        "it should keep running without CAP_SYS_PTRACE:\n{stderr}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("CAP_SYS_PTRACE"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(stderr.contains("probes attached"), "{stderr}");
}
