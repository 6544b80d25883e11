//! `service.peer.name` for a remote peer from reverse DNS
//! (`service.reverse_dns`), end to end with real probes and the host's own
//! resolver.
//!
//! The "remote" server runs on this host's non-loopback address but is left
//! out of capture (`capture.pids` names only the client), so the agent sees it
//! as a remote peer. The agent runs in its own mount namespace where
//! /etc/hosts names that address, so the host's real /etc/hosts is untouched.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::net::{global_ipv4, wait_addr};
use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::span_run::SPAN_TIMEOUT;
use integration::spans::show;
use integration::stdin_client::StdinClient;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_remote_peer_is_named_from_reverse_dns() {
    require_root("a_remote_peer_is_named_from_reverse_dns");
    let _g = serial();
    let ip = global_ipv4();
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("hosts");
    let real = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    std::fs::write(&hosts, format!("{ip} inventory.example\n{real}")).expect("write hosts");

    // The server: not captured (capture.pids names only the client).
    let port = free_port();
    let server = Command::new(python())
        .args([
            "-m",
            "http.server",
            "--bind",
            &ip.to_string(),
            &port.to_string(),
        ])
        .arg("--directory")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python http.server");
    let _server = Guarded::new("http.server", server);
    assert!(
        wait_addr((ip, port).into(), Duration::from_secs(30)),
        "http.server did not listen on {ip}:{port}"
    );

    // The client: one GET per `get()`.
    let mut client = StdinClient::start(&format!("http://{ip}:{port}/hosts"), None);
    let client_pid = client.pid();
    let mut get = || client.get();

    let mount = format!(
        "mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
        hosts.display()
    );
    let run = SpanRun::start_with(
        OtlpProtocol::Grpc,
        AgentOptions::default()
            .config(&format!(
                "capture:\n  pids: [{}]\nservice:\n  reverse_dns:\n    enabled: true\n",
                client_pid
            ))
            .wrapped(&["unshare", "--mount", "sh", "-c", &mount]),
    );

    // First request: the name is not known yet; its lookup starts.
    get();
    let first = run
        .receiver
        .wait_for(SPAN_TIMEOUT, |s| s.iter().any(|x| x.involves_port(port)))
        .unwrap_or_else(|s| panic!("no span for the first request:\n{}", show(&s)));
    let first: Vec<&FlatSpan> = first.iter().filter(|x| x.involves_port(port)).collect();
    assert_eq!(first.len(), 1, "{}", show(&run.receiver.spans()));
    assert_eq!(first[0].str("service.peer.name"), None);
    let found = wait_until(SPAN_TIMEOUT, || {
        run.agent
            .metrics()
            .get("wirespan_reverse_dns_lookups_total", &[("result", "found")])
            >= 1.0
    });
    assert!(
        found,
        "the lookup never succeeded:\n{}",
        run.agent.diagnostics()
    );

    // Second request: named from the cache.
    get();
    let spans = run
        .receiver
        .wait_for(SPAN_TIMEOUT, |s| {
            s.iter().filter(|x| x.involves_port(port)).count() >= 2
        })
        .unwrap_or_else(|s| panic!("no span for the second request:\n{}", show(&s)));
    let second = spans
        .iter()
        .filter(|x| x.involves_port(port))
        .nth(1)
        .expect("second span");
    assert!(second.is_client(), "{}", show(&spans));
    assert_eq!(second.str("service.peer.name"), Some("inventory.example"));
    assert_eq!(second.str("server.address"), Some(ip.to_string().as_str()));
    let metrics = run.agent.metrics();
    assert_eq!(
        metrics.get("wirespan_reverse_dns_lookups_total", &[("result", "found")]),
        1.0,
        "one lookup for one address"
    );
    let exit = run.agent.stop();
    assert!(exit.status.success(), "{}", exit.diagnostics());
}
