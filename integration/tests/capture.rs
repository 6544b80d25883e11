//! Capture tests: `wirespan record` with a 4 MiB per-call cap and a 256 MiB
//! ring buffer, real client/server programs over 127.0.0.1, then both
//! directions of every connection rebuilt from the recording by stream offset
//! and compared byte for byte with what the programs sent and received.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::agent::AgentExit;
use integration::capture::Capture;
use integration::prelude::*;
use integration::transcript::{check_stream, read_transcript, ConnTranscript};
use probes_common::{direction, source};
use std::process::Command;
use std::time::Duration;

struct Run {
    capture: Capture,
    exit: AgentExit,
    server_pid: u32,
    client_pid: u32,
    server: Vec<ConnTranscript>,
    client: Vec<ConnTranscript>,
}

fn peer(role: &str, port: u16, mode: &str, out: &std::path::Path, count: usize) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(script("capture_peer.py"))
        .arg(role)
        .arg(port.to_string())
        .arg(mode)
        .arg(out)
        .arg(count.to_string());
    cmd
}

/// Records while `capture_peer.py` runs `mode` with `count` connections.
fn record_pair(mode: &str, count: usize) -> Run {
    let agent = Agent::record(AgentOptions::default().capture_everything());
    let work = tempfile::tempdir().unwrap();
    let server_out = work.path().join("server.transcript");
    let client_out = work.path().join("client.transcript");
    let port = free_port();
    let mut server = Guarded::new(
        "capture server",
        peer("server", port, mode, &server_out, count)
            .spawn()
            .expect("start the capture server"),
    );
    assert!(
        wait_port_only(port),
        "the capture server never listened on {port}\n{}",
        agent.diagnostics()
    );
    let client = peer("client", port, mode, &client_out, count)
        .spawn()
        .expect("start the capture client");
    let client_pid = client.id();
    let out = client.wait_with_output().expect("client");
    assert!(
        out.status.success(),
        "the capture client failed: {out:?}\n{}",
        agent.diagnostics()
    );
    let server_pid = server.pid();
    let status = server.child.wait().expect("server exit");
    assert!(status.success(), "the capture server failed: {status}");
    let exit = agent.stop_ok();
    let capture = Capture::load(exit.recording.as_ref().expect("recording"));
    Run {
        capture,
        server_pid,
        client_pid,
        server: read_transcript(&server_out),
        client: read_transcript(&client_out),
        exit,
    }
}

/// Waits for the port by connecting with a raw probe that the server (which
/// counts its connections) must not see: poll /proc/net/tcp for a listener
/// instead of connecting.
fn wait_port_only(port: u16) -> bool {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| t.contains(&needle))
    })
}

/// One connection's comparison: problems found ("" if exact) and bytes missing.
fn check_conn(run: &Run, side: &str, pid: u32, t: &ConnTranscript) -> (String, u64, bool) {
    let conns = run.capture.find(pid, t.local_port, t.peer_port);
    let tag = format!("{side} #{} {}->{}", t.index, t.local_port, t.peer_port);
    if conns.len() != 1 {
        // Absent entirely: every byte is missing, and so is the open record.
        let missing = (t.sent.len() + t.received.len()) as u64;
        return (
            format!("{tag}: {} matching connections (want 1)\n", conns.len()),
            missing,
            true,
        );
    }
    let c = conns[0];
    let mut p = String::new();
    let mut control_missing = false;
    let role_ok = if side == "client" {
        c.is_client()
    } else {
        c.is_server()
    };
    if !role_ok {
        p += &format!("{tag}: wrong role: {}\n", c.describe());
    }
    match c.close {
        None => {
            control_missing = true;
            p += &format!("{tag}: no close record\n");
        }
        Some(cl) => {
            if (cl.egress_total, cl.ingress_total) != (t.sent.len() as u64, t.received.len() as u64)
            {
                p += &format!(
                    "{tag}: close totals ({}, {}) != bytes moved ({}, {})\n",
                    cl.egress_total,
                    cl.ingress_total,
                    t.sent.len(),
                    t.received.len()
                );
            }
        }
    }
    let e = check_stream(&c.egress, &t.sent);
    let i = check_stream(&c.ingress, &t.received);
    if !e.exact() {
        p += &format!("{tag} egress: {}\n", e.detail);
    }
    if !i.exact() {
        p += &format!("{tag} ingress: {}\n", i.detail);
    }
    // Wrong or extra bytes are never a loss: flag them separately.
    if e.wrong + e.extra + i.wrong + i.extra > 0 {
        p += &format!("{tag}: CORRUPT (wrong or extra bytes)\n");
    }
    (p, e.missing + i.missing, control_missing)
}

/// Every connection exact: open, close with the right totals, both streams.
fn assert_exact(run: &Run) {
    let mut problems = String::new();
    for (pid, side, ts) in [
        (run.client_pid, "client", &run.client),
        (run.server_pid, "server", &run.server),
    ] {
        for t in ts {
            problems += &check_conn(run, side, pid, t).0;
        }
    }
    assert!(
        problems.is_empty(),
        "capture differs from what the programs moved:\n{problems}\n{}",
        run.exit.diagnostics()
    );
}

fn assert_agent_not_captured(run: &Run) {
    assert!(
        !run.capture.data_pids.contains(&run.exit.pid),
        "the agent's own pid {} appears in data records",
        run.exit.pid
    );
}

fn assert_transcripts_agree(run: &Run, count: usize) {
    assert_eq!(run.client.len(), count, "client connections");
    assert_eq!(run.server.len(), count, "server connections");
    for (c, s) in run.client.iter().zip(&run.server) {
        assert_eq!(c.sent, s.received, "the programs disagree (TCP broken?)");
        assert_eq!(c.received, s.sent, "the programs disagree (TCP broken?)");
        assert_eq!(c.local_port, s.peer_port);
    }
}

/// The (direction, source) pairs seen on the one connection of `pid`.
fn sources(run: &Run, pid: u32, t: &ConnTranscript) -> Vec<(u32, u32)> {
    let conns = run.capture.find(pid, t.local_port, t.peer_port);
    conns
        .first()
        .map(|c| c.sources.iter().copied().collect())
        .unwrap_or_default()
}

#[test]
fn small_request_response_is_captured_exactly() {
    require_root("small_request_response_is_captured_exactly");
    let _g = serial();
    let run = record_pair("small", 1);
    assert_transcripts_agree(&run, 1);
    assert_exact(&run);
    assert_agent_not_captured(&run);
}

#[test]
fn writev_readv_sendmsg_recvmsg_are_captured_exactly() {
    require_root("writev_readv_sendmsg_recvmsg_are_captured_exactly");
    let _g = serial();
    let run = record_pair("vectored", 1);
    assert_transcripts_agree(&run, 1);
    assert_exact(&run);
    assert_agent_not_captured(&run);
    // The bytes really went through the vectored calls.
    let client = sources(&run, run.client_pid, &run.client[0]);
    let server = sources(&run, run.server_pid, &run.server[0]);
    for (who, got, want) in [
        ("client", &client, (direction::EGRESS, source::SENDMSG)),
        ("client", &client, (direction::EGRESS, source::WRITEV)),
        ("client", &client, (direction::INGRESS, source::READV)),
        ("client", &client, (direction::INGRESS, source::RECVMSG)),
        ("server", &server, (direction::INGRESS, source::READV)),
        ("server", &server, (direction::EGRESS, source::WRITEV)),
        ("server", &server, (direction::EGRESS, source::SENDMSG)),
    ] {
        assert!(
            got.contains(&want),
            "{who}: no data record with (direction, source) {want:?}; seen {got:?}"
        );
    }
}

#[test]
fn eight_mib_each_way_is_captured_exactly() {
    require_root("eight_mib_each_way_is_captured_exactly");
    let _g = serial();
    let run = record_pair("large", 1);
    assert_transcripts_agree(&run, 1);
    assert_eq!(run.client[0].sent.len(), 8 << 20);
    assert_eq!(run.client[0].received.len(), 8 << 20);
    assert_exact(&run);
    assert_agent_not_captured(&run);
}

/// 2,000 short connections: each is exact, or its loss is counted by the
/// kernel loss counters. Nothing may be lost silently, and nothing may be wrong.
#[test]
fn many_short_connections_lose_nothing_uncounted() {
    require_root("many_short_connections_lose_nothing_uncounted");
    let _g = serial();
    const N: usize = 2000;
    let run = record_pair("many", N);
    assert_transcripts_agree(&run, N);
    assert_agent_not_captured(&run);

    let m = &run.exit.metrics;
    let lost_data_records = m.get(
        "wirespan_kernel_records_lost_total",
        &[("reason", "ringbuf_full_data")],
    );
    let lost_control = m.get(
        "wirespan_kernel_records_lost_total",
        &[("reason", "ringbuf_full_control")],
    ) + m.get(
        "wirespan_kernel_records_lost_total",
        &[("reason", "socket_map_full")],
    );
    let counted_bytes = m.get(
        "wirespan_kernel_bytes_not_copied_total",
        &[("reason", "ringbuf_full")],
    ) + m.get(
        "wirespan_kernel_bytes_not_copied_total",
        &[("reason", "per_call_cap")],
    ) + m.get(
        "wirespan_kernel_records_lost_total",
        &[("reason", "read_user_failed")],
    );

    let mut corrupt = String::new();
    let mut uncounted = String::new();
    let mut missing_total = 0u64;
    let mut inexact = 0usize;
    for (pid, side, ts) in [
        (run.client_pid, "client", &run.client),
        (run.server_pid, "server", &run.server),
    ] {
        for t in ts {
            let (problems, missing, control_missing) = check_conn(&run, side, pid, t);
            if problems.is_empty() {
                continue;
            }
            inexact += 1;
            missing_total += missing;
            if problems.contains("CORRUPT")
                || problems.contains("wrong role")
                || problems.contains("close totals")
            {
                corrupt += &problems;
            }
            if missing > 0 && lost_data_records == 0.0 && lost_control == 0.0 {
                uncounted += &problems;
            }
            if control_missing && lost_control == 0.0 {
                uncounted += &problems;
            }
        }
    }
    assert!(
        corrupt.is_empty(),
        "captured bytes differ from what the programs moved (not a loss: wrong data):\n{corrupt}\n{}",
        run.exit.diagnostics()
    );
    assert!(
        uncounted.is_empty(),
        "connections lost data or records WITHOUT any kernel loss counter moving:\n{uncounted}\n{}",
        run.exit.diagnostics()
    );
    // Lost bytes must be covered by the counted-not-copied bytes (a lost
    // record of a call copied in several chunks counts its whole call).
    assert!(
        missing_total as f64 <= counted_bytes + lost_data_records * probes_common::MAX_CHUNK as f64,
        "{missing_total} bytes missing in {inexact} connections but only {counted_bytes} bytes \
         and {lost_data_records} records counted as lost\n{}",
        run.exit.diagnostics()
    );
    eprintln!(
        "{N} connections: {inexact} sides inexact, {missing_total} bytes missing, counters: \
         {lost_data_records} data records lost, {lost_control} control records lost"
    );
}

/// curl's exec is recorded with its file name and its connection's data is
/// attributed to its pid; the agent's own pid never produces data.
#[test]
fn curl_exec_is_recorded_and_agent_is_not_captured() {
    require_root("curl_exec_is_recorded_and_agent_is_not_captured");
    let _g = serial();
    let agent = Agent::record(AgentOptions::default().capture_everything());
    let body = b"hello from the capture test\n".repeat(10);
    let server = integration::servers::python_http_server(&[("hello.txt", &body)]);
    let curl_path = "/usr/bin/curl";
    let curl = Command::new(curl_path)
        .args(["-sS", "-o", "/dev/null"])
        .arg(format!("http://127.0.0.1:{}/hello.txt", server.port))
        .spawn()
        .expect("run curl (Debian package curl)");
    let curl_pid = curl.id();
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success(), "curl failed: {out:?}");
    // Let the agent read /metrics a few times (own connections) before stopping.
    for _ in 0..3 {
        let _ = agent.metrics();
    }
    let exit = agent.stop_ok();
    let cap = Capture::load(exit.recording.as_ref().unwrap());
    let exec = cap.execs.iter().find(|e| e.pid == curl_pid);
    let exec = exec.unwrap_or_else(|| {
        panic!(
            "no ProcExec record for curl (pid {curl_pid}); execs recorded: {:?}\n{}",
            cap.execs
                .iter()
                .map(|e| (e.pid, &e.filename))
                .collect::<Vec<_>>(),
            exit.diagnostics()
        )
    });
    assert_eq!(exec.filename, curl_path, "curl's exec filename");
    assert_eq!(exec.comm, "curl");
    assert!(
        exec.args.iter().any(|a| a.contains("/hello.txt")),
        "curl's argv not recorded: {:?}",
        exec.args
    );
    // curl's connection: its ingress ends with the served body.
    let conns = cap.of_pid(curl_pid);
    let conn = conns
        .iter()
        .find(|c| c.remote_port() == Some(server.port))
        .unwrap_or_else(|| {
            panic!(
                "no connection of curl to {}:\n{}",
                server.port,
                exit.diagnostics()
            )
        });
    assert!(conn.is_client());
    let ingress = &conn.ingress.bytes;
    assert!(
        ingress.ends_with(&body),
        "curl's captured ingress does not end with the body"
    );
    assert!(conn
        .egress
        .bytes
        .starts_with(b"GET /hello.txt HTTP/1.1\r\n"));
    assert!(
        !cap.data_pids.contains(&exit.pid),
        "the agent's own pid {} appears in data records",
        exit.pid
    );
}
