//! `/readyz` semantics and a clean exit on SIGTERM/SIGINT.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::prelude::*;

/// `/readyz` is 503 until every probe is attached, then 200; SIGTERM then
/// flushes and exits 0 (logging the stop), and the port is released.
#[test]
fn readyz_then_sigterm_exits_zero() {
    require_root("readyz_then_sigterm_exits_zero");
    let _g = serial();
    let agent = Agent::spawn(&["run"], AgentOptions::default(), None);
    // Before ready: /readyz answers 503 or the endpoint is not up yet; never
    // 200 before the log says the probes are attached.
    let mut saw_not_ready = false;
    let mut ready = false;
    let got_ready = wait_until(integration::agent::READY_TIMEOUT, || {
        match agent.readyz() {
            Ok(200) => {
                ready = true;
                // Readiness must not be claimed before attach is logged.
                assert!(
                    agent.stderr().contains("probes attached"),
                    "/readyz was 200 before the agent logged that the probes are attached:\n{}",
                    agent.stderr()
                );
                true
            }
            Ok(503) => {
                saw_not_ready = true;
                false
            }
            Ok(other) => panic!("/readyz answered {other}, expected 503 or 200"),
            Err(_) => false,
        }
    });
    assert!(got_ready && ready, "never ready:\n{}", agent.diagnostics());
    eprintln!("503 observed before ready: {saw_not_ready}");
    // /healthz and /metrics answer too.
    let (h, _) = http_get(&agent.metrics_addr, "/healthz").expect("/healthz");
    assert_eq!(h, 200, "/healthz");
    let m = agent.metrics();
    for name in [
        "wirespan_kernel_records_lost_total",
        "wirespan_kernel_bytes_not_copied_total",
        "wirespan_kernel_data_records_total",
    ] {
        assert!(m.has(name), "/metrics lacks {name}:\n{}", m.text);
    }
    // SIGTERM straight after readiness (no traffic, no delay): must still be
    // handled as a clean stop.
    let addr = agent.metrics_addr.clone();
    let exit = agent.stop();
    assert!(
        exit.status.success(),
        "SIGTERM right after /readyz=200: the agent exited with {} (expected a clean exit 0)\n{}",
        exit.status,
        exit.diagnostics()
    );
    assert!(
        exit.stderr.contains("stopping"),
        "no stop message in stderr:\n{}",
        exit.stderr
    );
    assert!(
        http_get(&addr, "/readyz").is_err(),
        "the admin endpoint still answers after exit"
    );
}

/// SIGTERM sent the very moment /readyz first answers 200.
#[test]
fn sigterm_immediately_after_ready_exits_zero() {
    require_root("sigterm_immediately_after_ready_exits_zero");
    let _g = serial();
    for round in 0..5 {
        let mut agent = Agent::spawn(&["run"], AgentOptions::default(), None);
        agent.wait_ready();
        let pid = agent.pid();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let exit = agent.stop_after_signal();
        assert!(
            exit.status.success(),
            "round {round}: SIGTERM at the moment /readyz turned 200 killed the agent: exit {}\n\
             (expected: the signal handlers are installed before readiness is reported)\n{}",
            exit.status,
            exit.stderr
        );
    }
}

/// SIGINT is a clean stop too.
#[test]
fn sigint_exits_zero() {
    require_root("sigint_exits_zero");
    let _g = serial();
    let agent = Agent::run(AgentOptions::default());
    let _ = agent.settled_metrics();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGINT) };
    let exit = agent.stop_after_signal();
    assert!(
        exit.status.success(),
        "SIGINT: exit {}\n{}",
        exit.status,
        exit.stderr
    );
}
