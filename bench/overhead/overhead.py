#!/usr/bin/env python3
"""The cost of watching: nginx + wrk with the wirespan agent off and on.

Run through bench/overhead/run.sh (which builds the agent first), as root.
Standard library only. See bench/overhead/README.md for the method.

Per round: one wrk run with the agent OFF, then one with it ON (a fresh agent
each time, exporting OTLP/gRPC to a rotel blackhole). Reports per run and as
medians: throughput and latency ratios, agent CPU-seconds per 10,000 requests,
agent peak RSS, losses from /metrics, and the share of nginx's requests
(access-log lines) that became SERVER spans.
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
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets (the brief): throughput ratio, captured share, CPU, RSS.
TARGET_THROUGHPUT_RATIO = 0.95
TARGET_CPU_S_PER_10K = 0.05
TARGET_RSS_MIB = 50.0

LOSS_COUNTERS = [
    "wirespan_kernel_records_lost_total",
    "wirespan_kernel_bytes_not_copied_total",
    "wirespan_stream_bytes_not_parsed_total",
    "wirespan_spans_dropped_total",
]


def log(msg):
    print(f"[overhead {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return int(fields[11]) + int(fields[12])


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def rotel_agent_path():
    env = os.environ.get("ROTEL_AGENT")
    if env:
        return env
    out = subprocess.run(
        [sys.executable, "-c", "import rotel,os;print(os.path.dirname(rotel.__file__))"],
        capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("rotel is not installed: pip install rotel (or set ROTEL_AGENT)")
    return os.path.join(out.stdout.strip(), "rotel-agent")


# ---------------------------------------------------------------- metrics

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        g = METRIC_LINE.match(line)
        if g:
            m[(g.group(1), g.group(2) or "")] = float(g.group(3))
    return m


def total(m, name, label=None):
    return sum(v for (n, lab), v in m.items()
               if n == name and (label is None or label in lab))


def by_label(m, name):
    return {lab: v for (n, lab), v in m.items() if n == name}


def delta_by_label(before, after, name):
    a, b = by_label(after, name), by_label(before, name)
    return {lab: a[lab] - b.get(lab, 0) for lab in a if a[lab] - b.get(lab, 0)}


# ---------------------------------------------------------------- wrk

UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6}


def parse_duration_us(s):
    g = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(g.group(1)) * UNIT_US[g.group(2)]


def parse_wrk(out):
    r = {}
    g = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(g.group(1))
    g = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    r["requests"] = int(g.group(1))
    for pct in ("50", "75", "90", "99"):
        g = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        r[f"p{pct}_us"] = parse_duration_us(g.group(1))
    g = re.search(r"Socket errors: (.*)", out)
    r["socket_errors"] = g.group(1).strip() if g else ""
    g = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(g.group(1)) if g else 0
    return r


def check_statuses(r, file_bytes):
    bad = {k: v for k, v in r["nginx_statuses"].items() if k != f"200 {file_bytes}"}
    if bad or r["non_2xx"]:
        raise RuntimeError(f"nginx answered something else than 200 + {file_bytes} bytes: {bad}")


def run_wrk(args, url):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
           "--latency", url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}):\n{out}")
    r = parse_wrk(out)
    r["wrk_cpu_s"] = ru.ru_utime + ru.ru_stime
    r["wrk_output"] = out
    return r


# ---------------------------------------------------------------- processes

class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="wirespan-overhead-")
        self.procs = []
        self.nginx_port = free_port()
        self.otlp_port = free_port()
        self.otlp_http_port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}/file"

    # nginx ---------------------------------------------------------------
    def start_nginx(self):
        d = self.dir
        os.makedirs(f"{d}/html")
        os.makedirs(f"{d}/tmp")
        with open(f"{d}/html/file", "wb") as f:
            f.write(os.urandom(self.args.file_bytes))
        # mkdtemp makes the prefix 0700: the worker (not root) must read the file.
        for path in (d, f"{d}/html"):
            os.chmod(path, 0o755)
        os.chmod(f"{d}/html/file", 0o644)
        with open(os.path.join(HERE, "nginx.conf.template")) as f:
            conf = f.read().replace("@PREFIX@", d).replace("@PORT@", str(self.nginx_port))
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(conf)
        out = open(f"{d}/nginx.out", "w")
        self.nginx = subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf"],
                                      stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.procs.append(self.nginx)
        if not wait_port(self.nginx_port, 10):
            raise RuntimeError("nginx did not listen:\n" + open(f"{d}/error.log").read())
        time.sleep(0.3)
        kids = children(self.nginx.pid)
        if len(kids) != 1:
            raise RuntimeError(f"expected one nginx worker, found {kids}")
        self.nginx_worker = kids[0]

    def access_lines(self):
        with open(f"{self.dir}/access.log", "rb") as f:
            return sum(1 for _ in f)

    def access_status_counts(self, skip):
        counts = {}
        with open(f"{self.dir}/access.log") as f:
            for i, line in enumerate(f):
                if i < skip:
                    continue
                parts = line.split()
                key = (parts[1], parts[2])  # status, body bytes
                counts[key] = counts.get(key, 0) + 1
        return counts

    # rotel ---------------------------------------------------------------
    def start_rotel(self):
        d = self.dir
        out = open(f"{d}/rotel.out", "w")
        self.rotel = subprocess.Popen(
            [rotel_agent_path(), "start",
             "--otlp-grpc-endpoint", f"127.0.0.1:{self.otlp_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{self.otlp_http_port}",
             "--exporter", "blackhole",
             "--pid-file", f"{d}/rotel.pid", "--log-file", f"{d}/rotel.log"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.procs.append(self.rotel)
        if not wait_port(self.otlp_port, 30):
            raise RuntimeError("rotel-agent did not listen:\n" + open(f"{d}/rotel.out").read())

    # agent ---------------------------------------------------------------
    def start_agent(self, tag, extra_args=()):
        env = dict(os.environ)
        env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.otlp_port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "WIRESPAN_METRICS__LISTEN": f"127.0.0.1:{self.metrics_port}",
            "RUST_LOG": "warn",
        })
        if not self.args.all_ports:
            env["WIRESPAN_CAPTURE__PORTS"] = str(self.nginx_port)
        out = open(f"{self.dir}/agent-{tag}.out", "w")
        p = subprocess.Popen([self.args.agent, *extra_args, "run"], env=env,
                             stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        t0 = time.time()
        while time.time() - t0 < 60:
            if p.poll() is not None:
                raise RuntimeError(f"agent exited ({p.returncode}):\n"
                                   + open(f"{self.dir}/agent-{tag}.out").read())
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return p, time.time() - t0
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("agent never became ready")

    def stop(self, p, timeout=20):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cleanup(self):
        for p in reversed(self.procs):
            self.stop(p, 10)
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # runs ----------------------------------------------------------------
    def run_off(self, i):
        lines0 = self.access_lines()
        ng0 = cpu_ticks(self.nginx_worker)
        la0 = loadavg()
        w = run_wrk(self.args, self.url)
        la1 = loadavg()
        time.sleep(0.5)
        n = self.access_lines() - lines0
        r = {
            "mode": "off", "round": i, **{k: v for k, v in w.items() if k != "wrk_output"},
            "nginx_requests": n,
            "nginx_statuses": {f"{s} {b}": c for (s, b), c in
                               self.access_status_counts(lines0).items()},
            "nginx_cpu_s": (cpu_ticks(self.nginx_worker) - ng0) / CLK_TCK,
            "load_before": la0, "load_after": la1,
        }
        check_statuses(r, self.args.file_bytes)
        return r

    def settle(self, port, timeout=15):
        """Wait until the agent has built and exported everything it will."""
        last, stable_since = None, time.time()
        end = time.time() + timeout
        m = scrape(port)
        while time.time() < end:
            m = scrape(port)
            key = (total(m, "wirespan_spans_built_total"),
                   total(m, "wirespan_spans_exported_total"),
                   total(m, "wirespan_spans_dropped_total"),
                   total(m, "wirespan_records_total"))
            if key != last:
                last, stable_since = key, time.time()
            elif time.time() - stable_since >= 1.5:
                break
            time.sleep(0.25)
        return m

    def run_on(self, i):
        agent, ready_s = self.start_agent(f"r{i}")
        try:
            time.sleep(1.0)  # let startup work (process scan, TLS discovery) finish
            hwm_ready = status_kib(agent.pid, "VmHWM")
            rss_ready = status_kib(agent.pid, "VmRSS")
            lines0 = self.access_lines()
            m0 = scrape(self.metrics_port)
            a0 = cpu_ticks(agent.pid)
            s0 = cpu_ticks(self.rotel.pid)
            ng0 = cpu_ticks(self.nginx_worker)
            la0 = loadavg()
            w = run_wrk(self.args, self.url)
            la1 = loadavg()
            a_wrk = cpu_ticks(agent.pid)
            m1 = self.settle(self.metrics_port)
            a1 = cpu_ticks(agent.pid)
            s1 = cpu_ticks(self.rotel.pid)
            n = self.access_lines() - lines0
            hwm = status_kib(agent.pid, "VmHWM")
            rss = status_kib(agent.pid, "VmRSS")
        finally:
            self.stop(agent)
        d = lambda name, label=None: total(m1, name, label) - total(m0, name, label)
        server = d("wirespan_spans_built_total", 'kind="server"')
        r = {
            "mode": "on", "round": i, **{k: v for k, v in w.items() if k != "wrk_output"},
            "agent_ready_s": ready_s,
            "nginx_requests": n,
            "nginx_statuses": {f"{s} {b}": c for (s, b), c in
                               self.access_status_counts(lines0).items()},
            "nginx_cpu_s": (cpu_ticks(self.nginx_worker) - ng0) / CLK_TCK,
            "agent_cpu_s_during_wrk": (a_wrk - a0) / CLK_TCK,
            "agent_cpu_s": (a1 - a0) / CLK_TCK,
            "sink_cpu_s": (s1 - s0) / CLK_TCK,
            "agent_vmhwm_kib": hwm, "agent_vmrss_kib": rss,
            "agent_vmhwm_ready_kib": hwm_ready, "agent_vmrss_ready_kib": rss_ready,
            "server_spans": server,
            "client_spans": d("wirespan_spans_built_total", 'kind="client"'),
            "spans_exported": d("wirespan_spans_exported_total"),
            "records": d("wirespan_records_total"),
            "kernel_data_records": d("wirespan_kernel_data_records_total"),
            "losses": {name: delta_by_label(m0, m1, name) for name in LOSS_COUNTERS},
            "losses_since_start": {name: {k: v for k, v in by_label(m1, name).items() if v}
                                   for name in LOSS_COUNTERS},
            "parse_issues": delta_by_label(m0, m1, "wirespan_parse_issues_total"),
            "connection_events": delta_by_label(m0, m1, "wirespan_connection_events_total"),
            "load_before": la0, "load_after": la1,
        }
        check_statuses(r, self.args.file_bytes)
        return r

    # profile ------------------------------------------------------------
    def profile(self):
        """One extra ON run (not in the figures) under perf, plus eBPF run times."""
        res = {}
        before_ids = set(bpf_prog_stats())
        agent, _ = self.start_agent("profile")
        stats_path = "/proc/sys/kernel/bpf_stats_enabled"
        old_stats = open(stats_path).read().strip()
        try:
            time.sleep(1.0)
            perf_data = f"{self.dir}/perf.data"
            with open(stats_path, "w") as f:
                f.write("1")
            own = agent_prog_ids(agent.pid)
            progs0 = {k: v for k, v in bpf_prog_stats().items()
                      if (k in own if own else k not in before_ids)}
            lines0 = self.access_lines()
            wrk = subprocess.Popen(
                ["wrk", f"-t{self.args.threads}", f"-c{self.args.connections}",
                 f"-d{self.args.duration}s", self.url],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(1.0)
            if self.args.no_perf:
                perf = subprocess.CompletedProcess([], 1, "", "skipped (--no-perf)")
            else:
                perf = subprocess.run(
                    ["perf", "record", "-F", "499", "-g", "--call-graph", "dwarf,16384",
                     "-o", perf_data, "-p", str(agent.pid), "--",
                     "sleep", str(max(3, self.args.duration - 4))],
                    capture_output=True, text=True)
            wrk.communicate()
            progs1 = {k: v for k, v in bpf_prog_stats().items() if k in progs0}
            requests = self.access_lines() - lines0
            res["requests"] = requests
            res["bpf_progs"] = bpf_delta(progs0, progs1)
            if self.args.file_io_calls:
                res["file_io_on"] = self.file_io(progs0.keys())
            with open(stats_path, "w") as f:
                f.write(old_stats)
            if perf.returncode == 0 and not self.args.no_perf:
                for mode, extra in (("self", ["--no-children"]), ("children", ["--children"])):
                    rep = subprocess.run(
                        ["perf", "report", "-i", perf_data, "--stdio", *extra,
                         "--sort", "symbol", "-g", "none", "--percent-limit", "1.5"],
                        capture_output=True, text=True)
                    res[f"perf_{mode}"] = clean_perf(rep.stdout, ours_only=(mode == "children"))
                rep = subprocess.run(
                    ["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                     "--sort", "dso", "-g", "none"], capture_output=True, text=True)
                res["perf_dso"] = clean_perf(rep.stdout)
            else:
                res["perf_error"] = perf.stderr[-2000:]
        finally:
            with open(stats_path, "w") as f:
                f.write(old_stats)
            self.stop(agent)
        return res


    def file_io(self, prog_ids=None):
        """Non-socket I/O: `dd` of --file-io-calls 512-byte blocks from
        /dev/zero to a file in the temp dir (as many reads as writes). With
        `prog_ids`, the eBPF programs' run time during it (stats must be on);
        other processes' syscalls in that window are counted too."""
        n = self.args.file_io_calls
        before = bpf_prog_stats() if prog_ids is not None else {}
        t0 = time.time()
        c0 = os.times()
        subprocess.run(["dd", "if=/dev/zero", f"of={self.dir}/dd.out", "bs=512",
                        f"count={n}", "status=none"], check=True)
        c1 = os.times()
        wall = time.time() - t0
        after = bpf_prog_stats() if prog_ids is not None else {}
        os.unlink(f"{self.dir}/dd.out")
        r = {"calls": 2 * n, "wall_s": wall,
             "cpu_s": (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)}
        if prog_ids is not None:
            r["bpf_progs"] = bpf_delta({k: v for k, v in before.items() if k in prog_ids},
                                       {k: v for k, v in after.items() if k in prog_ids})
        return r


def agent_prog_ids(pid):
    """Ids of the eBPF programs process `pid` holds open (`prog_id:` in the
    fdinfo of its BPF program fds), so that other agents loaded on a shared
    machine at the same time are not counted as ours."""
    ids = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("prog_id:"):
                            ids.add(int(line.split()[1]))
            except OSError:
                pass
    except OSError:
        pass
    return ids


def bpf_prog_stats():
    """run_time_ns / run_cnt of every loaded eBPF program, by id (this bpftool
    does not list owner pids, so the agent's are the ids new since its start)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    if out.returncode != 0:
        return {}
    progs = {}
    for p in json.loads(out.stdout):
        progs[p["id"]] = (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0))
    return progs


def bpf_delta(a, b):
    rows = []
    for pid, (name, t, c) in b.items():
        t0, c0 = a.get(pid, (name, 0, 0))[1:]
        if c - c0:
            rows.append({"name": name, "run_ns": t - t0, "runs": c - c0})
    rows.sort(key=lambda r: -r["run_ns"])
    return rows


OUR_CRATES = ("wirespan::", "conn_tracker::", "protocol_parsers::", "span_export::",
              "self_metrics::", "prost::", "tonic::", "httparse::", "hpack", "aya::")


def clean_perf(text, ours_only=False, limit=25):
    rows = []
    for l in text.splitlines():
        if not l.strip() or l.startswith("#"):
            continue
        l = re.sub(r"\s+-\s+-\s*$", "", l).rstrip()
        if ours_only and not any(c in l for c in OUR_CRATES):
            continue
        rows.append(l)
    return "\n".join(rows[:limit])


# ---------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def fmt_losses(d):
    parts = []
    for name, labels in d.items():
        short = name.replace("wirespan_", "").replace("_total", "")
        for lab, v in sorted(labels.items()):
            parts.append(f"{short}{lab}={v:.0f}")
    return ", ".join(parts) or "none"


def report(runs, prof, machine, args):
    offs = [r for r in runs if r["mode"] == "off"]
    ons = [r for r in runs if r["mode"] == "on"]
    pairs = list(zip(offs, ons))
    L = []
    L.append("### Per run\n")
    L.append("| run | req/s | p50 | p99 | nginx requests (log) | SERVER spans | captured | "
             "agent CPU-s | CPU-s / 10k req | agent VmHWM | nginx CPU-s / 10k req | load (1 min) |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        per10k = lambda s: 1e4 * s / r["nginx_requests"] if r["nginx_requests"] else float("nan")
        if r["mode"] == "on":
            cap = f"{100 * r['server_spans'] / r['nginx_requests']:.3f} %"
            extra = (f"{r['server_spans']:.0f} | {cap} | {r['agent_cpu_s']:.2f} | "
                     f"{per10k(r['agent_cpu_s']):.4f} | {r['agent_vmhwm_kib'] / 1024:.1f} MiB")
        else:
            extra = "— | — | — | — | —"
        L.append(f"| {r['mode']} {r['round']} | {r['rps']:,.0f} | {r['p50_us']:.0f} µs | "
                 f"{r['p99_us']:.0f} µs | {r['nginx_requests']:,} | {extra} | "
                 f"{per10k(r['nginx_cpu_s']):.4f} | {r['load_before'][0]:.2f}→{r['load_after'][0]:.2f} |")
    L.append("")
    L.append("Pairs (each ON run against the OFF run just before it):\n")
    L.append("| round | throughput on/off | p50 on/off | p99 on/off |")
    L.append("| --- | ---: | ---: | ---: |")
    tr, p50r, p99r = [], [], []
    for off, on in pairs:
        tr.append(on["rps"] / off["rps"])
        p50r.append(on["p50_us"] / off["p50_us"])
        p99r.append(on["p99_us"] / off["p99_us"])
        L.append(f"| {on['round']} | {tr[-1]:.3f} | {p50r[-1]:.3f} | {p99r[-1]:.3f} |")
    L.append("")
    L.append("Losses during each ON run (deltas of the counters; zero counters omitted):\n")
    for r in ons:
        L.append(f"- ON {r['round']}: {fmt_losses(r['losses'])}; "
                 f"sendfile gap expected = {args.file_bytes} × {r['server_spans']:.0f} SERVER spans "
                 f"= {args.file_bytes * r['server_spans']:.0f}; parse issues: "
                 f"{fmt_losses({'parse_issues': r['parse_issues']})}; "
                 f"CLIENT spans (wrk) {r['client_spans']:.0f}; exported {r['spans_exported']:.0f}")
    L.append("")

    cpu10k = [1e4 * r["agent_cpu_s"] / r["nginx_requests"] for r in ons]
    cpu10k_wrk = [1e4 * r["agent_cpu_s_during_wrk"] / r["nginx_requests"] for r in ons]
    cap = [r["server_spans"] / r["nginx_requests"] for r in ons]
    missed = [r["nginx_requests"] - r["server_spans"] for r in ons]
    hwm = [r["agent_vmhwm_kib"] / 1024 for r in ons]
    ng_off = [1e4 * r["nginx_cpu_s"] / r["nginx_requests"] for r in offs]
    ng_on = [1e4 * r["nginx_cpu_s"] / r["nginx_requests"] for r in ons]
    m = {
        "throughput_ratio": med(tr), "p50_ratio": med(p50r), "p99_ratio": med(p99r),
        "rps_off": med([r["rps"] for r in offs]), "rps_on": med([r["rps"] for r in ons]),
        "p50_off_us": med([r["p50_us"] for r in offs]), "p50_on_us": med([r["p50_us"] for r in ons]),
        "p99_off_us": med([r["p99_us"] for r in offs]), "p99_on_us": med([r["p99_us"] for r in ons]),
        "agent_cpu_s_per_10k": med(cpu10k), "agent_cpu_s_per_10k_during_wrk": med(cpu10k_wrk),
        "captured": med(cap), "missed_total": sum(missed),
        "requests_on_total": sum(r["nginx_requests"] for r in ons),
        "vmhwm_mib": med(hwm), "vmhwm_mib_max": max(hwm),
        "nginx_cpu_s_per_10k_off": med(ng_off), "nginx_cpu_s_per_10k_on": med(ng_on),
        "sink_cpu_s_per_10k": med([1e4 * r["sink_cpu_s"] / r["nginx_requests"] for r in ons]),
        "exported_share": med([r["spans_exported"] / (r["server_spans"] + r["client_spans"])
                               for r in ons]),
        "dropped_total": sum(sum(r["losses"]["wirespan_spans_dropped_total"].values()) for r in ons),
        "built_total": sum(r["server_spans"] + r["client_spans"] for r in ons),
    }

    def verdict(ok, how):
        return ("**met**" if ok else "**missed**") + f" ({how})"

    L.append("### Medians and targets\n")
    L.append("| what | off | on | ratio / value | target | verdict |")
    L.append("| --- | ---: | ---: | ---: | --- | --- |")
    L.append(f"| throughput (req/s) | {m['rps_off']:,.0f} | {m['rps_on']:,.0f} | "
             f"{m['throughput_ratio']:.3f} (median of pairs) | ≥ {TARGET_THROUGHPUT_RATIO} | "
             + verdict(m["throughput_ratio"] >= TARGET_THROUGHPUT_RATIO,
                       f"{(m['throughput_ratio'] / TARGET_THROUGHPUT_RATIO - 1) * 100:+.1f} % vs target") + " |")
    L.append(f"| p50 latency | {m['p50_off_us']:.0f} µs | {m['p50_on_us']:.0f} µs | "
             f"{m['p50_ratio']:.3f} | — | — |")
    L.append(f"| p99 latency | {m['p99_off_us']:.0f} µs | {m['p99_on_us']:.0f} µs | "
             f"{m['p99_ratio']:.3f} | — | — |")
    L.append(f"| requests captured (SERVER spans / access-log lines) | — | — | "
             f"{100 * m['captured']:.3f} % ({m['missed_total']:.0f} missed of "
             f"{m['requests_on_total']:,}) | 100 % | "
             + verdict(m["missed_total"] == 0, f"{m['missed_total']:.0f} missed") + " |")
    L.append(f"| spans exported / spans built (SERVER + CLIENT) | — | — | "
             f"{100 * m['exported_share']:.1f} % ({m['dropped_total']:,.0f} dropped of "
             f"{m['built_total']:,.0f} built) | — | — |")
    L.append(f"| agent CPU-s per 10k requests | — | — | {m['agent_cpu_s_per_10k']:.4f} "
             f"({m['agent_cpu_s_per_10k_during_wrk']:.4f} during wrk only) | ≤ {TARGET_CPU_S_PER_10K} | "
             + verdict(m["agent_cpu_s_per_10k"] <= TARGET_CPU_S_PER_10K,
                       f"{m['agent_cpu_s_per_10k'] / TARGET_CPU_S_PER_10K:.2f}× the budget") + " |")
    L.append(f"| agent peak RSS (VmHWM) | — | — | {m['vmhwm_mib']:.1f} MiB (max {m['vmhwm_mib_max']:.1f}) | "
             f"≤ {TARGET_RSS_MIB:.0f} MiB | "
             + verdict(m["vmhwm_mib_max"] <= TARGET_RSS_MIB,
                       f"{m['vmhwm_mib_max'] / TARGET_RSS_MIB * 100:.0f} % of the budget") + " |")
    L.append(f"| agent RSS before wrk (1 s after /readyz): VmHWM / VmRSS | — | — | "
             f"{med([r['agent_vmhwm_ready_kib'] / 1024 for r in ons]):.1f} / "
             f"{med([r['agent_vmrss_ready_kib'] / 1024 for r in ons]):.1f} MiB; VmRSS after the run "
             f"{med([r['agent_vmrss_kib'] / 1024 for r in ons]):.1f} MiB | — | — |")
    L.append(f"| OTLP sink (rotel blackhole) CPU-s per 10k requests | — | "
             f"{m['sink_cpu_s_per_10k']:.4f} | — | — | — |")
    L.append(f"| nginx worker CPU-s per 10k requests (eBPF probes run here) | "
             f"{m['nginx_cpu_s_per_10k_off']:.4f} | {m['nginx_cpu_s_per_10k_on']:.4f} | "
             f"{m['nginx_cpu_s_per_10k_on'] / m['nginx_cpu_s_per_10k_off']:.3f} | — | — |")
    L.append("")
    for n, prof in enumerate([prof] + prof.get("all_runs", []) if prof else []):
        L.append(f"### Profile run {n + 1} (an extra ON run, not in the figures above)\n")
        if prof.get("bpf_progs"):
            req = prof["requests"] or 1
            tot = sum(p["run_ns"] for p in prof["bpf_progs"])
            L.append(f"eBPF programs (`kernel.bpf_stats_enabled=1` for this run only), "
                     f"{req:,} requests: {tot / 1e9:.3f} s in all, "
                     f"{tot / req / 1e3:.2f} µs per request\n")
            L.append("| program | runs | runs per request | ns per run | ns per request | share |")
            L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
            for p in prof["bpf_progs"][:16]:
                L.append(f"| {p['name']} | {p['runs']:,} | {p['runs'] / req:.2f} | "
                         f"{p['run_ns'] / p['runs']:.0f} | {p['run_ns'] / req:.0f} | "
                         f"{100 * p['run_ns'] / tot:.1f} % |")
            L.append(f"| all | {sum(p['runs'] for p in prof['bpf_progs']):,} | | | "
                     f"{tot / req:.0f} | 100 % |")
            L.append("")
        fio = prof.get("file_io_on")
        if fio:
            calls = fio["calls"]
            off = prof.get("file_io_off")
            L.append(f"Non-socket file I/O: `dd if=/dev/zero of=FILE bs=512 count={calls // 2}` "
                     f"({calls:,} read+write calls), agent on: {fio['wall_s']:.3f} s wall, "
                     f"{fio['cpu_s']:.3f} CPU-s"
                     + (f"; agent off: {off['wall_s']:.3f} s wall, {off['cpu_s']:.3f} CPU-s" if off else "")
                     + ". eBPF run time in that window (all processes' calls):\n")
            L.append("| program | runs | ns per run | ns per dd call |")
            L.append("| --- | ---: | ---: | ---: |")
            ftot = 0
            for p in fio["bpf_progs"][:10]:
                ftot += p["run_ns"]
                L.append(f"| {p['name']} | {p['runs']:,} | {p['run_ns'] / p['runs']:.0f} | "
                         f"{p['run_ns'] / calls:.0f} |")
            L.append(f"| all | | | {ftot / calls:.0f} |")
            L.append("")
        for key, title in (("perf_dso", "perf, agent process, by DSO"),
                           ("perf_self", "perf, agent process, self time by symbol"),
                           ("perf_children", "perf, agent process, inclusive by symbol (wirespan's crates only)")):
            if prof.get(key):
                L.append(f"{title}:\n\n```\n{prof[key]}\n```\n")
        if prof.get("perf_error"):
            L.append(f"perf failed: {prof['perf_error']}\n")
    return "\n".join(L), m


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default=os.path.join(REPO, "target/release/wirespan"))
    ap.add_argument("--rounds", type=int, default=3, help="OFF/ON pairs (default 3)")
    ap.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--file-bytes", type=int, default=1024)
    ap.add_argument("--all-ports", action="store_true",
                    help="trace every port (default: only nginx's, so other jobs' "
                         "traffic on a shared machine stays out of the counts)")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf/bpf-stats run")
    ap.add_argument("--no-perf", action="store_true",
                    help="profile run: eBPF run-time stats only, no perf record of the agent")
    ap.add_argument("--profile-runs", type=int, default=1,
                    help="profile runs (eBPF stats per run; repeat to see the spread)")
    ap.add_argument("--file-io-calls", type=int, default=200000,
                    help="dd blocks (512 B) for the non-socket I/O case in each profile run; 0 = skip")
    ap.add_argument("--wait-load", type=float, default=None,
                    help="before starting, wait (up to 10 min) for the 1-min load below this")
    ap.add_argument("--out", default=None, help="directory for results.json and report.md")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, perf.data)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("run as root (the agent loads eBPF programs)")
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")

    if args.wait_load is not None:
        end = time.time() + 600
        while loadavg()[0] >= args.wait_load and time.time() < end:
            log(f"load {loadavg()} ≥ {args.wait_load}: waiting")
            time.sleep(15)

    b = Bench(args)
    log(f"temp dir {b.dir}; nginx on {b.nginx_port}, rotel OTLP/gRPC on {b.otlp_port}, "
        f"agent metrics on {b.metrics_port}")
    runs, prof = [], None
    machine = machine_info()
    machine["load_start"] = loadavg()
    machine["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        b.start_nginx()
        b.start_rotel()
        log("warm-up: 3 s of wrk, agent off")
        run_wrk(argparse.Namespace(**{**vars(args), "duration": 3}), b.url)
        for i in range(1, args.rounds + 1):
            for mode in ("off", "on"):
                log(f"round {i}: agent {mode.upper()}, wrk {args.duration} s, load {loadavg()}")
                r = b.run_off(i) if mode == "off" else b.run_on(i)
                runs.append(r)
                log(f"  {r['rps']:,.0f} req/s, p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs"
                    + (f", agent {r['agent_cpu_s']:.2f} CPU-s, spans {r['server_spans']:.0f}"
                       f"/{r['nginx_requests']} requests" if mode == "on" else ""))
        machine["load_end"] = loadavg()
        perf_ok = shutil.which("perf") and subprocess.run(
            ["perf", "stat", "-e", "instructions", "true"], capture_output=True).returncode == 0
        if not args.no_profile and (perf_ok or args.no_perf):
            profs = []
            for i in range(args.profile_runs):
                log(f"profile run {i + 1} (perf record on the agent unless --no-perf, eBPF run-time stats)")
                p = b.profile()
                if args.file_io_calls:
                    p["file_io_off"] = b.file_io()
                profs.append(p)
            prof = profs[0]
            prof["all_runs"] = profs[1:]
    finally:
        b.cleanup()

    text, medians = report(runs, prof, machine, args)
    loads = [r["load_before"][0] for r in runs] + [r["load_after"][0] for r in runs]
    head = (f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, kernel {machine['kernel']}; "
            f"{machine['nginx']}; {machine['wrk']}\n"
            f"Started {machine['started']}; 1-min load average during the runs "
            f"{min(loads):.2f}–{max(loads):.2f} (at start {machine['load_start']}).\n"
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, "
            f"{args.file_bytes}-byte file, {args.rounds} OFF/ON rounds, "
            f"capture {'all ports' if args.all_ports else 'nginx port only (WIRESPAN_CAPTURE__PORTS)'}.\n")
    print(head)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"machine": machine, "args": vars(args), "runs": runs,
                       "medians": medians, "profile": prof}, f, indent=1)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(head + "\n" + text + "\n")
        log(f"wrote {args.out}/results.json and report.md")


if __name__ == "__main__":
    main()
