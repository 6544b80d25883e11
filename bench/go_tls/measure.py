#!/usr/bin/env python3
"""Go crypto/tls cost and hook latency, measured (issue 12).

Builds integration/go/gotls (Go 1.19, stripped), runs a Go HTTPS server and a
Go client making N requests on one keep-alive connection (HTTP/1.1, then
HTTP/2) under the agent, and reads the kernel's own per-program statistics
(kernel.bpf_stats_enabled=1, bpftool prog show -j: run_time_ns, run_cnt) before
and after. Then runs K fresh copies of the client binary (each a new inode) and
reads, from the agent's log, how long inspection and attaching took and how
long after the exec the probes were in place.

    sudo bench/go_tls/measure.py [--requests 2000] [--fresh 10]

Needs root, bpftool, golang-1.19-go and a built agent (target/release/wirespan,
or WIRESPAN_BIN). Traffic stays on 127.0.0.1. Turns bpf_stats off at the end.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GO = "/usr/lib/go-1.19/bin/go"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def prog_stats():
    out = subprocess.run(["bpftool", "prog", "show", "-j"], check=True, capture_output=True, text=True).stdout
    stats = {}
    for p in json.loads(out):
        name = p.get("name", "")
        t, c = p.get("run_time_ns", 0), p.get("run_cnt", 0)
        prev = stats.get(name, (0, 0))
        stats[name] = (prev[0] + t, prev[1] + c)
    return stats


def delta(before, after):
    d = {}
    for name, (t, c) in after.items():
        t0, c0 = before.get(name, (0, 0))
        if c - c0 > 0:
            d[name] = (t - t0, c - c0)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--fresh", type=int, default=10)
    args = ap.parse_args()
    agent_bin = os.environ.get("WIRESPAN_BIN", os.path.join(ROOT, "target/release/wirespan"))
    work = tempfile.mkdtemp(prefix="wirespan-go-bench-")
    exe = os.path.join(work, "gotls")
    env = dict(os.environ, GOCACHE=os.path.join(tempfile.gettempdir(), "wirespan-go-build-cache"),
               GOPATH=os.path.join(work, "gopath"), GO111MODULE="off", CGO_ENABLED="0")
    subprocess.run([GO, "build", "-ldflags=-s -w", "-o", exe, "."], cwd=os.path.join(ROOT, "integration/go/gotls"),
                   env=env, check=True)
    cert, key = os.path.join(work, "c.pem"), os.path.join(work, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key,
                    "-out", cert, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([exe, "server", f"127.0.0.1:{port}", cert, key, "h2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    log_path = os.path.join(work, "agent.log")
    log = open(log_path, "w")
    agent = subprocess.Popen([agent_bin, "run"], stdout=subprocess.DEVNULL, stderr=log,
                             env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"))
    try:
        deadline = time.time() + 60
        while "connections open before start are now traced" not in open(log_path).read():
            if time.time() > deadline or agent.poll() is not None:
                sys.exit("the agent did not become ready:\n" + open(log_path).read())
            time.sleep(0.1)
        subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=1"], check=True)
        base = f"https://127.0.0.1:{port}"
        paths = ["/hello"] * args.requests
        for proto in ["h1", "h2"]:
            before = prog_stats()
            subprocess.run([exe, "client", proto, base] + paths, check=True, stdout=subprocess.DEVNULL)
            d = delta(before, prog_stats())
            total = sum(t for t, _ in d.values())
            print(f"\n{proto}: {args.requests} requests on one connection, both ends Go")
            print(f"  {'program':24} {'runs/req':>9} {'ns/run':>8} {'ns/req':>8}")
            for name, (t, c) in sorted(d.items(), key=lambda kv: -kv[1][0]):
                print(f"  {name:24} {c / args.requests:9.2f} {t / c:8.0f} {t / args.requests:8.0f}")
            print(f"  {'all programs':24} {'':9} {'':8} {total / args.requests:8.0f}")
        subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=0"], check=True)

        # Hook latency: each run is a new file, hooked at its exec.
        latencies, inspects, attaches, traced = [], [], [], 0
        for i in range(args.fresh):
            copy = os.path.join(work, f"gotls-fresh-{i}")
            shutil.copy(exe, copy)
            time.sleep(0.3)  # a quiet spell, as between real execs
            t0 = datetime.now(timezone.utc)
            subprocess.run([copy, "client", "h1", base, "/hello"], check=True, stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            text = open(log_path).read()
            m = re.search(rf"(\S+Z) .*Go crypto/tls uprobes attached path={re.escape(copy)} .*inspect_us=(\d+) attach_us=(\d+)",
                          text)
            if not m:
                print(f"  run {i}: no attach line")
                continue
            at = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
            latencies.append((at - t0).total_seconds() * 1000)
            inspects.append(int(m.group(2)) / 1000)
            attaches.append(int(m.group(3)) / 1000)
        if latencies:
            def s(v):
                return f"median {statistics.median(v):.1f} ms, min {min(v):.1f}, max {max(v):.1f}"
            print(f"\nfresh Go binaries ({len(latencies)} runs, each a new inode, 0.3 s apart):")
            print(f"  inspect (quick, no DWARF):  {s(inspects)}")
            print(f"  attach 17 uprobes:          {s(attaches)}")
            print(f"  exec -> probes in place:    {s(latencies)}")
        print(f"\nagent log: {log_path}")
    finally:
        subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=0"])
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        server.kill()


if __name__ == "__main__":
    main()
