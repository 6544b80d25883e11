#!/usr/bin/env python3
"""The agent's user-space cost per request, as instructions: repeatable where
CPU time is not.

On a shared 2-core machine the agent CPU of `bench/overhead` spreads by
±25 % from run to run, so changes under ~15 % cannot be resolved there. This
script records the probes' records of a fixed number of requests once (nginx
as in `bench/overhead`, h2load as the client, both ends traced), then runs
`wirespan replay` of that recording under `valgrind --tool=callgrind`, for
one agent binary or two, and reports the instructions of the pipeline
(`--toggle-collect='*replay_into*'`: decoding, connection tracking, parsing,
span building and encoding; not the exporter's thread) per request, and the
functions that cost most.

  sudo bench/replay/replay_cost.py --agent target/release/wirespan \\
      --baseline /tmp/old-wirespan --cases keepalive,h2 --requests 20000

Recording needs root (the probes); replaying does not. Instructions are not
time: cache misses do not show (BENCHMARKS.md, session 8, has one change
that callgrind scored worse and CPU time better). Use both.
Standard library only.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OVERHEAD = os.path.join(HERE, "..", "overhead")
TEMPLATE = os.path.join(OVERHEAD, "nginx.conf.template")
sys.path.insert(0, OVERHEAD)
from overhead import free_port, wait_port  # noqa: E402  (one copy of each)

# The load of each case: h2load with a fixed number of requests (wrk has no
# such option), 32 connections, one request at a time on each.
CASES = {
    "keepalive": {"listener": "PORT", "scheme": "http", "h1": True,
                  "what": "HTTP/1.1 keep-alive against nginx (sendfile)"},
    # Every request head different (a query counter), so that a head recurs
    # only as the other end of its own exchange. One connection: h2load
    # starts each connection at the first URI of `-i`.
    "unique": {"listener": "PORT", "scheme": "http", "h1": True, "unique": True,
               "what": "HTTP/1.1 keep-alive, every request path different (one connection)"},
    # wrk, which reconnects after each `Connection: close` (h2load does not),
    # for a fixed time; requests counted from wrk's summary (the few cut off
    # in flight at the end are not counted: < 0.1 % of them).
    "close": {"listener": "PORT", "scheme": "http", "h1": True, "wrk_close": True,
              "what": "HTTP/1.1 `Connection: close` against nginx (wrk, 2 s)"},
    "h2": {"listener": "H2_PORT", "scheme": "http", "h1": False,
           "what": "HTTP/2 (prior knowledge) against nginx"},
    "tls": {"listener": "TLS_PORT", "scheme": "https", "h1": True,
            "what": "HTTP/1.1 over TLS against nginx (libssl uprobes on both ends)"},
}


def log(msg):
    print(f"[replay-cost {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_nginx(d):
    """nginx from bench/overhead's template, in `d`; returns (proc, ports)."""
    ports = {"PORT": free_port(), "TLS_PORT": free_port(), "H2_PORT": free_port()}
    for sub in ("html", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "html", "index.bin"), "wb") as f:
        f.write(os.urandom(1024))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem",
                    "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    conf = open(TEMPLATE).read().replace("@PREFIX@", d)
    for k, v in ports.items():
        conf = conf.replace(f"@{k}@", str(v))
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not all(wait_port(v, 10) for v in ports.values()):
        raise RuntimeError("nginx did not listen: " + open(f"{d}/error.log").read())
    return p, ports


def record(args, case, d, ports):
    """Records `--requests` requests of `case`; returns the recording's path."""
    c = CASES[case]
    port = ports[c["listener"]]
    path = os.path.join(d, f"{case}.rec")
    # info: the recorder's last line says how many records it wrote.
    env = dict(os.environ, RUST_LOG="info", WIRESPAN_CAPTURE__PORTS=str(port),
               WIRESPAN_METRICS__LISTEN=f"127.0.0.1:{free_port()}")
    out = open(os.path.join(d, f"record-{case}.out"), "w")
    agent = subprocess.Popen([args.agent, "record", "--out", path], env=env,
                             stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    time.sleep(args.settle)
    if agent.poll() is not None:
        raise RuntimeError(f"`{args.agent} record` exited: "
                           + open(os.path.join(d, f"record-{case}.out")).read())
    url = f"{c['scheme']}://127.0.0.1:{port}/index.bin"
    conns = "-c1" if c.get("unique") else "-c32"
    cmd = ["h2load", "-t1", conns, "-m1", "-n", str(args.requests)]
    if c["h1"]:
        cmd.append("--h1")
    if c.get("unique"):
        uris = os.path.join(d, "uris.txt")
        with open(uris, "w") as f:
            f.writelines(f"{url}?n={i}\n" for i in range(args.requests))
        cmd += ["-i", uris]
    else:
        cmd.append(url)
    if c.get("wrk_close"):
        cmd = ["wrk", "-t1", "-c32", "-d2s", "-H", "Connection: close", url]
        load = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"(\d+) requests in", load.stdout)
        if load.returncode != 0 or not m or "Non-2xx" in load.stdout or "Socket errors" in load.stdout:
            raise RuntimeError(f"wrk failed:\n{load.stdout}{load.stderr}")
        requests = int(m.group(1))
    else:
        load = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", load.stdout)
        if load.returncode != 0 or not m or int(m.group(2)) != args.requests:
            raise RuntimeError(f"h2load did not complete {args.requests} requests:\n{load.stdout}{load.stderr}")
        requests = args.requests
    time.sleep(1)
    agent.send_signal(signal.SIGINT)
    agent.wait(timeout=30)
    text = open(os.path.join(d, f"record-{case}.out")).read()
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # tracing's colours
    m = re.search(r"recording written records=(\d+)", text)
    log(f"{case}: recorded {m.group(1) if m else '?'} records of {requests} requests "
        f"({os.path.getsize(path) / 1e6:.1f} MB)")
    return path, requests


def callgrind(binary, recording, out_file):
    """Instructions of `binary replay recording` inside `replay_into`."""
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                        "--toggle-collect=*replay_into*", binary, "replay", recording],
                       capture_output=True, text=True,
                       env=dict(os.environ, RUST_LOG="warn",
                                # Nothing listens here: export fails fast, uncounted.
                                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}"))
    m = re.findall(r"Collected : (\d+)", r.stderr)
    counts = [int(x) for x in m if int(x) > 0]
    if r.returncode != 0 or not counts:
        raise RuntimeError(f"callgrind of {binary} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return max(counts)


def top_functions(out_file, limit):
    """The `limit` functions with the most instructions of their own, the
    rows callgrind gives per source file (inlined code) summed by name."""
    r = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", out_file],
                       capture_output=True, text=True)
    by_name = {}
    for line in r.stdout.splitlines():
        if line.startswith("-- ") or "Auto-annotated source" in line:
            break
        m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            name = re.sub(r" \[.*\]$", "", m.group(3).split(":", 1)[-1])
            by_name[name] = by_name.get(name, 0.0) + float(m.group(2))
    rows = sorted(by_name.items(), key=lambda kv: -kv[1])[:limit]
    return [(f"{share:.2f}", name) for name, share in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True, help="the wirespan binary that records, and is counted")
    ap.add_argument("--baseline", help="a second binary, counted on the same recordings")
    ap.add_argument("--cases", default="keepalive,h2", help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds between starting the recorder and the load (probes attaching)")
    ap.add_argument("--top", type=int, default=12, help="functions listed per binary and case")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (recordings, callgrind files)")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}")
    missing = [t for t in ("nginx", "h2load", "openssl", "valgrind", "callgrind_annotate")
               if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)}")
    if os.geteuid() != 0:
        sys.exit("recording attaches the probes: run as root")

    d = tempfile.mkdtemp(prefix="wirespan-replay-cost-")
    os.chmod(d, 0o755)
    nginx, ports = start_nginx(d)
    binaries = [("agent", args.agent)] + ([("baseline", args.baseline)] if args.baseline else [])
    results = {}
    requests = {}  # per case: what the load completed
    try:
        for case in cases:
            rec, requests[case] = record(args, case, d, ports)
            for tag, binary in binaries:
                cg = os.path.join(d, f"callgrind.{case}.{tag}")
                n = callgrind(binary, rec, cg)
                results[(case, tag)] = (n, top_functions(cg, args.top))
                log(f"{case} {tag}: {n:,} instructions, {n / requests[case]:,.0f} per request")
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        if args.keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)

    print(f"## Pipeline instructions per request (`wirespan replay` under callgrind, "
          f"{args.requests:,} requests per case unless the case says, both ends traced)\n")
    head = "| case | agent |" + (" baseline | change |" if args.baseline else "")
    print(head)
    print("| --- | ---: |" + (" ---: | ---: |" if args.baseline else ""))
    for case in cases:
        a = results[(case, "agent")][0] / requests[case]
        row = f"| {case}: {CASES[case]['what']} | {a:,.0f} |"
        if args.baseline:
            b = results[(case, "baseline")][0] / requests[case]
            row += f" {b:,.0f} | {100 * (a - b) / b:+.1f} % |"
        print(row)
    for (case, tag), (_, top) in results.items():
        print(f"\n### {case}, {tag}: where the instructions go (self)\n")
        print("| share | function |\n| ---: | --- |")
        for share, name in top:
            print(f"| {share} % | `{name}` |")


if __name__ == "__main__":
    main()
