#!/usr/bin/env python3
"""The cost of watching: nginx under load with the wirespan agent off and on.

Run through bench/overhead/run.sh (which builds the agent first), as root.
Standard library only. See bench/overhead/README.md for the method.

Cases (--cases): HTTP/1 keep-alive, `Connection: close`, 400 connections,
HTTP/1 over TLS, HTTP/2 (h2load), non-socket file I/O (dd). Per case and
round: one load run with the agent OFF, then one with it ON (a fresh agent
each time, exporting OTLP/gRPC to a rotel blackhole), then statistics runs
with the kernel's eBPF run-time statistics on. Reports per case: throughput
and p50/p99 off and on, agent CPU-seconds per 10,000 requests, BPF ns per
request and per program, agent peak RSS, SERVER spans against nginx's
access-log lines, spans exported and dropped, and losses from /metrics.
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

# Targets of issue 15, per case: (summary key, bound, "max" or "min").
TARGETS = {
    "keepalive": [("bpf_ns_per_request", 1500, "max"), ("agent_cpu_s_per_10k", 0.03, "max"),
                  ("throughput_ratio", 0.80, "min"), ("vmhwm_mib_max", 50, "max")],
    "close": [("agent_cpu_s_per_10k", 0.05, "max")],
}
TARGET_FILEIO_BPF_NS_PER_CALL = 100

LOSS_COUNTERS = [
    "wirespan_kernel_records_lost_total",
    "wirespan_kernel_bytes_not_copied_total",
    "wirespan_stream_bytes_not_parsed_total",
    "wirespan_spans_dropped_total",
    "wirespan_peer_grace_evictions_total",
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


def machine_ticks():
    """(idle + iowait, all) clock ticks of every CPU together (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is in user).
    return v[3] + v[4], sum(v[:8])


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


def proc_lines(pid, sub, file=None):
    """The lines of every file under /proc/PID/<sub> (or of <sub>/*/<file>),
    skipping those that vanish while read."""
    try:
        names = os.listdir(f"/proc/{pid}/{sub}")
    except OSError:
        return
    for name in names:
        path = f"/proc/{pid}/{sub}/{name}" + (f"/{file}" if file else "")
        try:
            with open(path) as f:
                lines = f.readlines()
        except OSError:
            continue
        yield from lines


def context_switches(pid):
    """Voluntary and involuntary context switches summed over every thread
    of `pid`: each voluntary one is a thread going to sleep (a wake-up
    follows), so their delta counts the agent's wake-ups."""
    vol = invol = 0
    for line in proc_lines(pid, "task", "status"):
        if line.startswith("voluntary_ctxt_switches:"):
            vol += int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            invol += int(line.split()[1])
    return vol, invol


def thread_runtime_ns(pid):
    """Time on CPU of every live thread of `pid`, by thread id, from
    /proc/PID/task/TID/schedstat (the scheduler's exact runtime, where the
    ticks of /proc/PID/stat are sampled at the timer interrupt)."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    out[tid] = int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        pass
    return out


def runtime_delta_s(a, b):
    """CPU seconds between two thread_runtime_ns snapshots (a thread that
    exited in between is lost; one that started counts from 0)."""
    return sum(v - a.get(t, 0) for t, v in b.items()) / 1e9


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


# ---------------------------------------------------------------- cases

# Each socket case: the load generator, the nginx listener, connections, and
# extra request headers. `fileio` is the non-socket case (dd, no server).
CASES = {
    "keepalive": {"tool": "wrk", "listener": "http", "headers": [],
                  "what": "HTTP/1.1 keep-alive (1000 requests per connection)"},
    "close": {"tool": "wrk", "listener": "http", "headers": ["Connection: close"],
              "what": "HTTP/1.1, `Connection: close` (one connection per request)"},
    "c400": {"tool": "wrk", "listener": "http", "headers": [], "connections": 400,
             "what": "HTTP/1.1 keep-alive, 400 connections"},
    "tls": {"tool": "wrk", "listener": "https", "headers": [],
            "what": "HTTP/1.1 over TLS (nginx + OpenSSL, self-signed; wrk https)"},
    "h2": {"tool": "h2load", "listener": "h2", "headers": [],
           "what": "HTTP/2 without TLS (h2load -m1 against nginx http2)"},
    "fileio": {"tool": "dd", "what": "non-socket file I/O (dd, 512-byte blocks)"},
    "idle": {"tool": "nginx", "what": "the agent with nothing to trace (no load)"},
}
DEFAULT_CASES = "keepalive,close,c400,tls,h2,fileio,idle"
# Cases without a load generator: reported in sections of their own.
NO_LOAD = ("fileio", "idle")


# ---------------------------------------------------------------- load generators

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
    for pct in ("50", "99"):
        g = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        r[f"p{pct}_us"] = parse_duration_us(g.group(1))
    g = re.search(r"Socket errors: (.*)", out)
    r["socket_errors"] = g.group(1).strip() if g else ""
    g = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(g.group(1)) if g else 0
    return r


def percentile(sorted_xs, q):
    if not sorted_xs:
        return float("nan")
    return sorted_xs[min(len(sorted_xs) - 1, int(q * len(sorted_xs)))]


def parse_h2load(out, log_path):
    r = {}
    g = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    r["rps"] = float(g.group(2))
    g = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    r["requests"] = int(g.group(4))
    r["h2load_failed"] = int(g.group(5)) + int(g.group(6))
    g = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    r["non_2xx"] = sum(int(g.group(i)) for i in (2, 3, 4)) if g else 0
    # --log-file: one line per request, "start µs<TAB>status<TAB>duration µs".
    durations = []
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                durations.append(float(parts[2]))
    durations.sort()
    r["p50_us"] = percentile(durations, 0.50)
    r["p99_us"] = percentile(durations, 0.99)
    r["socket_errors"] = f"{r['h2load_failed']} failed or errored" if r["h2load_failed"] else ""
    return r


def load_command(args, case, url, duration, log_path):
    c = CASES[case]
    conns = c.get("connections", args.connections)
    if c["tool"] == "h2load":
        return ["h2load", "-t1", f"-c{conns}", "-m1", f"-D{duration}",
                f"--log-file={log_path}", url]
    cmd = ["wrk", f"-t{args.threads}", f"-c{conns}", f"-d{duration}s", "--latency"]
    for h in c["headers"]:
        cmd += ["-H", h]
    return cmd + [url]


def run_load(args, case, url, duration, log_path):
    cmd = load_command(args, case, url, duration, log_path)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{cmd[0]} failed ({code}):\n{out}")
    r = parse_h2load(out, log_path) if CASES[case]["tool"] == "h2load" else parse_wrk(out)
    r["client_cpu_s"] = ru.ru_utime + ru.ru_stime
    return r


def check_statuses(r, file_bytes, in_flight):
    """Every access-log line must be `200 <file size>`, except that up to
    `in_flight` (one per connection) may be 200 with a short body: requests
    the load tool abandoned when its time was up (h2load resets its streams;
    the agent still makes a SERVER span of each, so they stay counted)."""
    cut = {k: v for k, v in r["nginx_statuses"].items()
           if k != f"200 {file_bytes}" and k.startswith("200 ")}
    bad = {k: v for k, v in r["nginx_statuses"].items()
           if k != f"200 {file_bytes}" and k not in cut}
    if bad or r["non_2xx"] or sum(cut.values()) > in_flight:
        raise RuntimeError(f"nginx answered something else than 200 + {file_bytes} bytes: "
                           f"{r['nginx_statuses']}")
    r["cut_at_end"] = sum(cut.values())


# ---------------------------------------------------------------- processes

class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="wirespan-overhead-")
        self.procs = []
        self.ports = {"http": free_port(), "https": free_port(), "h2": free_port()}
        self.otlp_port = free_port()
        self.otlp_http_port = free_port()
        self.metrics_port = free_port()

    def url(self, case):
        listener = CASES[case]["listener"]
        scheme = "https" if listener == "https" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[listener]}/file"

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
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "1",
                        "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
        with open(os.path.join(HERE, "nginx.conf.template")) as f:
            conf = (f.read().replace("@PREFIX@", d)
                    .replace("@PORT@", str(self.ports["http"]))
                    .replace("@TLS_PORT@", str(self.ports["https"]))
                    .replace("@H2_PORT@", str(self.ports["h2"])))
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(conf)
        out = open(f"{d}/nginx.out", "w")
        self.nginx = subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf"],
                                      stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.procs.append(self.nginx)
        for port in self.ports.values():
            if not wait_port(port, 10):
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
    def start_agent(self, tag, port=None, binary=None):
        env = dict(os.environ)
        env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.otlp_port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "WIRESPAN_METRICS__LISTEN": f"127.0.0.1:{self.metrics_port}",
            "RUST_LOG": "warn",
        })
        if not self.args.all_ports and port is not None:
            env["WIRESPAN_CAPTURE__PORTS"] = str(port)
        out = open(f"{self.dir}/agent-{tag}.out", "w")
        p = subprocess.Popen([binary or self.args.agent, "run"], env=env,
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

    # socket cases ---------------------------------------------------------
    def run_case(self, case, mode, i, duration, bpf_stats=False, perf=False):
        """One load run of `case`: agent off, or a fresh agent on (optionally
        with the kernel's eBPF run-time statistics and perf on the agent)."""
        port = self.ports[CASES[case]["listener"]]
        log_path = f"{self.dir}/h2load-{case}-{mode}-{i}.log"
        agent = None
        stats_path = "/proc/sys/kernel/bpf_stats_enabled"
        old_stats = open(stats_path).read().strip()
        try:
            if mode != "off":
                # "base" and "base-stats" runs use the --baseline binary.
                binary = self.args.baseline if mode.startswith("base") else None
                agent, ready_s = self.start_agent(f"{case}-{mode}-{i}", port, binary)
                time.sleep(1.0)  # let startup work (process scan, TLS discovery) finish
                hwm_ready = status_kib(agent.pid, "VmHWM")
                m0 = scrape(self.metrics_port)
                a0 = cpu_ticks(agent.pid)
                cs0 = context_switches(agent.pid)
                rt0 = thread_runtime_ns(agent.pid)
                s0 = cpu_ticks(self.rotel.pid)
                if bpf_stats:
                    with open(stats_path, "w") as f:
                        f.write("1")
                    own = agent_prog_ids(agent.pid)
                    progs0 = {k: v for k, v in bpf_prog_stats().items() if k in own}
            lines0 = self.access_lines()
            ng0 = cpu_ticks(self.nginx_worker)
            la0 = loadavg()
            idle0 = machine_ticks()
            perf_proc = None
            if perf and agent is not None:
                perf_proc = subprocess.Popen(
                    ["perf", "record", "-e", "cpu-clock", "-F", "499", "-g", "--call-graph", "dwarf,16384",
                     "-o", f"{self.dir}/perf-{case}.data", "-p", str(agent.pid)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            w = run_load(self.args, case, self.url(case), duration, log_path)
            idle1 = machine_ticks()
            la1 = loadavg()
            # The share of the CPUs left idle while the load ran: with the
            # agent on, more idle with fewer requests means the run was bound
            # by waiting (scheduling, wake-ups), not by CPU.
            idle_share = ((idle1[0] - idle0[0]) / (idle1[1] - idle0[1])
                          if idle1[1] > idle0[1] else float("nan"))
            r = {"case": case, "mode": mode, "round": i, **w,
                 "load_before": la0, "load_after": la1, "idle_share": idle_share}
            if agent is not None:
                a_load = cpu_ticks(agent.pid)
                if bpf_stats:
                    progs1 = {k: v for k, v in bpf_prog_stats().items() if k in progs0}
                    with open(stats_path, "w") as f:
                        f.write(old_stats)
                    r["bpf_progs"] = bpf_delta(progs0, progs1)
                m1 = self.settle(self.metrics_port)
                if perf_proc is not None:
                    perf_proc.send_signal(signal.SIGINT)
                    _, err = perf_proc.communicate()
                    r["perf"] = perf_report(f"{self.dir}/perf-{case}.data") \
                        if perf_proc.returncode == 0 else {"perf_error": err[-2000:]}
                a1 = cpu_ticks(agent.pid)
                cs1 = context_switches(agent.pid)
                rt1 = thread_runtime_ns(agent.pid)
                s1 = cpu_ticks(self.rotel.pid)
                d = lambda name, label=None: total(m1, name, label) - total(m0, name, label)
                r.update({
                    "agent_ready_s": ready_s,
                    "agent_cpu_s_during_load": (a_load - a0) / CLK_TCK,
                    "agent_cpu_s": (a1 - a0) / CLK_TCK,
                    "agent_sched_cpu_s": runtime_delta_s(rt0, rt1),
                    "sink_cpu_s": (s1 - s0) / CLK_TCK,
                    "agent_voluntary_switches": cs1[0] - cs0[0],
                    "agent_involuntary_switches": cs1[1] - cs0[1],
                    "agent_vmhwm_kib": status_kib(agent.pid, "VmHWM"),
                    "agent_vmrss_kib": status_kib(agent.pid, "VmRSS"),
                    "agent_vmhwm_ready_kib": hwm_ready,
                    "server_spans": d("wirespan_spans_built_total", 'kind="server"'),
                    "client_spans": d("wirespan_spans_built_total", 'kind="client"'),
                    "spans_exported": d("wirespan_spans_exported_total"),
                    "spans_dropped": d("wirespan_spans_dropped_total"),
                    "records": d("wirespan_records_total"),
                    "losses": {name: delta_by_label(m0, m1, name) for name in LOSS_COUNTERS},
                    "parse_issues": delta_by_label(m0, m1, "wirespan_parse_issues_total"),
                })
            time.sleep(0.3)
            r["nginx_requests"] = self.access_lines() - lines0
            r["nginx_statuses"] = {f"{s} {b}": c for (s, b), c in
                                   self.access_status_counts(lines0).items()}
            r["nginx_cpu_s"] = (cpu_ticks(self.nginx_worker) - ng0) / CLK_TCK
        finally:
            with open(stats_path, "w") as f:
                f.write(old_stats)
            if agent is not None:
                self.stop(agent)
        check_statuses(r, self.args.file_bytes,
                       CASES[case].get("connections", self.args.connections))
        if os.path.exists(log_path):
            os.unlink(log_path)
        return r

    # idle case --------------------------------------------------------------
    def idle(self, mode, i):
        """The agent (or, for mode "base", the --baseline binary) with no
        load: --duration seconds, 3 s after it is ready so that start-up work
        is done. Every port is traced, as deployed. CPU from schedstat and
        wake-ups from voluntary context switches, over every thread."""
        binary = self.args.baseline if mode == "base" else None
        agent, _ = self.start_agent(f"idle-{mode}-{i}", None, binary)
        try:
            time.sleep(3.0)
            rt0, cs0, t0 = thread_runtime_ns(agent.pid), context_switches(agent.pid), time.time()
            time.sleep(self.args.duration)
            rt1, cs1, wall = thread_runtime_ns(agent.pid), context_switches(agent.pid), time.time() - t0
            return {"case": "idle", "mode": mode, "round": i, "wall_s": wall,
                    "agent_cpu_s": runtime_delta_s(rt0, rt1),
                    "wakeups": cs1[0] - cs0[0],
                    "agent_vmrss_kib": status_kib(agent.pid, "VmRSS"),
                    "load_after": loadavg()}
        finally:
            self.stop(agent)

    # non-socket case ------------------------------------------------------
    def file_io(self, mode, i):
        """Non-socket I/O: `dd` of --file-io-calls 512-byte blocks from
        /dev/zero to a file in the temp dir (as many reads as writes). With
        the agent on, its eBPF programs' run time during it (statistics on for
        that window; other processes' syscalls in it are counted too)."""
        n = self.args.file_io_calls
        agent = None
        stats_path = "/proc/sys/kernel/bpf_stats_enabled"
        old_stats = open(stats_path).read().strip()
        try:
            if mode == "on":
                agent, _ = self.start_agent(f"fileio-{i}", self.ports["http"])
                time.sleep(1.0)
                with open(stats_path, "w") as f:
                    f.write("1")
                own = agent_prog_ids(agent.pid)
                before = {k: v for k, v in bpf_prog_stats().items() if k in own}
            la0 = loadavg()
            t0 = time.time()
            c0 = os.times()
            subprocess.run(["dd", "if=/dev/zero", f"of={self.dir}/dd.out", "bs=512",
                            f"count={n}", "status=none"], check=True)
            c1 = os.times()
            wall = time.time() - t0
            r = {"case": "fileio", "mode": mode, "round": i, "calls": 2 * n, "wall_s": wall,
                 "cpu_s": (c1.children_user - c0.children_user)
                 + (c1.children_system - c0.children_system),
                 "load_before": la0, "load_after": loadavg()}
            if agent is not None:
                after = {k: v for k, v in bpf_prog_stats().items() if k in before}
                r["bpf_progs"] = bpf_delta(before, after)
            os.unlink(f"{self.dir}/dd.out")
        finally:
            with open(stats_path, "w") as f:
                f.write(old_stats)
            if agent is not None:
                self.stop(agent)
        return r


def perf_report(path):
    res = {}
    for mode, extra in (("self", ["--no-children"]), ("children", ["--children"])):
        rep = subprocess.run(
            ["perf", "report", "-i", path, "--stdio", *extra,
             "--sort", "symbol", "-g", "none", "--percent-limit", "1.5"],
            capture_output=True, text=True)
        res[f"perf_{mode}"] = clean_perf(rep.stdout, ours_only=(mode == "children"))
    rep = subprocess.run(["perf", "report", "-i", path, "--stdio", "--no-children",
                          "--sort", "dso", "-g", "none"], capture_output=True, text=True)
    res["perf_dso"] = clean_perf(rep.stdout)
    return res


def agent_prog_ids(pid):
    """Ids of the eBPF programs process `pid` holds open (`prog_id:` in the
    fdinfo of its BPF program fds), so that other agents loaded on a shared
    machine at the same time are not counted as ours."""
    return {int(line.split()[1]) for line in proc_lines(pid, "fdinfo")
            if line.startswith("prog_id:")}


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


def load_range(runs):
    loads = [x for r in runs for x in (r["load_before"][0], r["load_after"][0])]
    return f"{min(loads):.2f}–{max(loads):.2f}" if loads else "?"


def bpf_ns_per_request(r):
    req = r["nginx_requests"] or 1
    return sum(p["run_ns"] for p in r.get("bpf_progs", [])) / req


def summarize_case(case, runs):
    """Medians of one socket case: OFF/ON pairs and the statistics runs."""
    offs = [r for r in runs if r["mode"] == "off"]
    ons = [r for r in runs if r["mode"] == "on"]
    stats = [r for r in runs if r["mode"] == "stats"]
    with_agent = ons + stats
    per10k = lambda r, k: 1e4 * r[k] / r["nginx_requests"] if r["nginx_requests"] else None
    # Each ON run with the OFF run just before it (with --baseline, rounds
    # also hold OFF runs paired with the baseline's).
    pairs, last_off = [], None
    for r in runs:
        if r["mode"] == "off":
            last_off = r
        elif r["mode"] == "on" and last_off is not None:
            pairs.append((last_off, r))
    built = sum(r["server_spans"] + r["client_spans"] for r in with_agent)
    return {
        "case": case,
        "rps_off": med([r["rps"] for r in offs]), "rps_on": med([r["rps"] for r in ons]),
        "throughput_ratio": med([on["rps"] / off["rps"] for off, on in pairs]),
        "p50_off_us": med([r["p50_us"] for r in offs]), "p50_on_us": med([r["p50_us"] for r in ons]),
        "p99_off_us": med([r["p99_us"] for r in offs]), "p99_on_us": med([r["p99_us"] for r in ons]),
        "agent_cpu_s_per_10k": med([per10k(r, "agent_cpu_s") for r in ons]),
        "agent_cpu_s_per_10k_all": [round(per10k(r, "agent_cpu_s"), 4) for r in ons],
        "agent_sched_cpu_s_per_10k": med([per10k(r, "agent_sched_cpu_s") for r in ons]),
        "agent_wakeups_per_10k": med([per10k(r, "agent_voluntary_switches") for r in ons]),
        "bpf_ns_per_request": med([bpf_ns_per_request(r) for r in stats]),
        "bpf_ns_per_request_all": [round(bpf_ns_per_request(r)) for r in stats],
        "vmhwm_mib_max": max([r["agent_vmhwm_kib"] / 1024 for r in with_agent], default=float("nan")),
        "requests": sum(r["nginx_requests"] for r in with_agent),
        "server_spans": sum(r["server_spans"] for r in with_agent),
        "missed": sum(r["nginx_requests"] - r["server_spans"] for r in with_agent),
        "built": built,
        "exported": sum(r["spans_exported"] for r in with_agent),
        "dropped": sum(r["spans_dropped"] for r in with_agent),
        "client_requests_vs_log": [(r["requests"], r["nginx_requests"]) for r in with_agent],
        "nginx_cpu_s_per_10k_off": med([per10k(r, "nginx_cpu_s") for r in offs]),
        "nginx_cpu_s_per_10k_on": med([per10k(r, "nginx_cpu_s") for r in ons]),
        "load": load_range(runs),
    }


def ab_order(agent_modes, baseline_modes, i, baseline):
    """The runs of round `i`: the agent's only, or with --baseline the two
    binaries' runs alternating which goes first from round to round, so that
    a drift of the machine's speed during the benchmark falls on both."""
    if not baseline:
        return agent_modes
    first, second = (agent_modes, baseline_modes) if i % 2 else (baseline_modes, agent_modes)
    return first + second


def compare_with_baseline(results):
    """The A/B table: the agent against the --baseline binary, per case,
    every run's figure and the medians (one 5-second figure alone is noise
    on a shared machine: BENCHMARKS "End of session 5")."""
    L = ["### A/B: agent (`--agent`) against baseline (`--baseline`), runs alternating\n",
         "| case | agent CPU-s / 10k req: agent runs (median) | baseline runs (median) "
         "| sink CPU-s / 10k req: agent | baseline | req/s ON: agent | baseline "
         "| BPF ns / req: agent | baseline | captured: agent | baseline |",
         "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for case, runs in results.items():
        if case in NO_LOAD:
            continue
        def side(on_mode, stats_mode):
            ons = [r for r in runs if r["mode"] == on_mode]
            stats = [r for r in runs if r["mode"] == stats_mode]
            cpu = [1e4 * r["agent_cpu_s"] / r["nginx_requests"] for r in ons if r["nginx_requests"]]
            sink = [1e4 * r["sink_cpu_s"] / r["nginx_requests"] for r in ons if r["nginx_requests"]]
            rps = [r["rps"] for r in ons]
            bpf = [bpf_ns_per_request(r) for r in stats]
            req = sum(r["nginx_requests"] for r in ons + stats)
            spans = sum(r["server_spans"] for r in ons + stats)
            cap = f"{100 * spans / req:.3f} %" if req else "—"
            def runs_text(xs, fmt):
                return (", ".join(fmt.format(x) for x in xs) + " (**" + fmt.format(med(xs)) + "**)"
                        if xs else "—")
            bpf_text = ", ".join(f"{x:,.0f}" for x in bpf) if bpf else "—"
            return (runs_text(cpu, "{:.4f}"), runs_text(sink, "{:.4f}"), runs_text(rps, "{:,.0f}"),
                    bpf_text, cap)
        a, b = side("on", "stats"), side("base", "base-stats")
        L.append(f"| {case} | {a[0]} | {b[0]} | {a[1]} | {b[1]} | {a[2]} | {b[2]} "
                 f"| {a[3]} | {b[3]} | {a[4]} | {b[4]} |")
    L.append("")
    return "\n".join(L)


def report(results, args):
    L = []
    summaries = {case: summarize_case(case, runs) for case, runs in results.items()
                 if case not in NO_LOAD}
    if args.baseline:
        L.append(compare_with_baseline(results))
    if summaries:
        L.append("### Summary (medians; BPF from the statistics runs, the rest from the OFF/ON pairs)\n")
        L.append("| case | req/s off → on (ratio) | p50 off → on | p99 off → on | agent CPU-s / 10k req (ticks; schedstat) "
                 "| agent wake-ups / 10k req | BPF ns / req | agent VmHWM | captured (SERVER spans / log lines) "
                 "| exported / built, dropped | load (1 min) |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for case, s in summaries.items():
            cap = (f"{100 * s['server_spans'] / s['requests']:.3f} % ({s['missed']:.0f} missed "
                   f"of {s['requests']:,})" if s["requests"] else "—")
            L.append(f"| {case} | {s['rps_off']:,.0f} → {s['rps_on']:,.0f} ({s['throughput_ratio']:.3f}) "
                     f"| {s['p50_off_us']:.0f} → {s['p50_on_us']:.0f} µs "
                     f"| {s['p99_off_us']:.0f} → {s['p99_on_us']:.0f} µs "
                     f"| {s['agent_cpu_s_per_10k']:.4f}; {s['agent_sched_cpu_s_per_10k']:.4f} "
                     f"| {s['agent_wakeups_per_10k']:,.0f} "
                     f"| {s['bpf_ns_per_request']:,.0f} "
                     f"| {s['vmhwm_mib_max']:.1f} MiB | {cap} "
                     f"| {s['exported']:,.0f} / {s['built']:,.0f}, {s['dropped']:,.0f} | {s['load']} |")
        L.append("")
        for case, targets in TARGETS.items():
            s = summaries.get(case)
            for key, bound, kind in targets if s else []:
                v = s[key]
                ok = v <= bound if kind == "max" else v >= bound
                L.append(f"- target {case} {key} {'≤' if kind == 'max' else '≥'} {bound}: "
                         f"{v:.4g}, **{'met' if ok else 'missed'}**")
        L.append("")
        L.append("Cases: " + "; ".join(f"`{c}` = {CASES[c]['what']}" for c in summaries) + ".\n")
    for case, runs in results.items():
        L.append(f"### {case}: {CASES[case]['what']}\n")
        if case == "idle":
            L.append("| run | seconds | agent CPU (% of one CPU) | wake-ups / s | VmRSS | load (1 min) |")
            L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
            for r in runs:
                L.append(f"| {r['mode']} {r['round']} | {r['wall_s']:.1f} "
                         f"| {100 * r['agent_cpu_s'] / r['wall_s']:.3f} % "
                         f"| {r['wakeups'] / r['wall_s']:.1f} | {r['agent_vmrss_kib'] / 1024:.1f} MiB "
                         f"| {r['load_after'][0]:.2f} |")
            for mode, who in (("on", "agent"), ("base", "baseline")):
                xs = [r for r in runs if r["mode"] == mode]
                if xs:
                    L.append(f"\nMedians, {who}: "
                             f"{med([100 * r['agent_cpu_s'] / r['wall_s'] for r in xs]):.3f} % of a CPU, "
                             f"{med([r['wakeups'] / r['wall_s'] for r in xs]):.1f} wake-ups a second")
            L.append("")
            continue
        if case == "fileio":
            L.append("| run | dd calls | wall s | CPU-s | BPF ns per call | load (1 min) |")
            L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
            for r in runs:
                bpf = (f"{sum(p['run_ns'] for p in r['bpf_progs']) / r['calls']:.0f}"
                       if "bpf_progs" in r else "—")
                L.append(f"| {r['mode']} {r['round']} | {r['calls']:,} | {r['wall_s']:.3f} | "
                         f"{r['cpu_s']:.3f} | {bpf} | {r['load_before'][0]:.2f}→{r['load_after'][0]:.2f} |")
            on = [sum(p["run_ns"] for p in r["bpf_progs"]) / r["calls"]
                  for r in runs if "bpf_progs" in r]
            if on:
                L.append(f"\nBPF ns per dd call, median {med(on):.0f} (target ≤ "
                         f"{TARGET_FILEIO_BPF_NS_PER_CALL}: "
                         f"**{'met' if med(on) <= TARGET_FILEIO_BPF_NS_PER_CALL else 'missed'}**)")
            # What dd itself pays per call, program and tracepoint machinery
            # together: bpf_stats sees only the program's run time.
            cpu = {m: [1e9 * r["cpu_s"] / r["calls"] for r in runs if r["mode"] == m]
                   for m in ("off", "on")}
            if cpu["off"] and cpu["on"] and on:
                whole = med(cpu["on"]) - med(cpu["off"])
                L.append(f"\ndd's CPU per call (medians), off → on: {med(cpu['off']):.0f} → "
                         f"{med(cpu['on']):.0f} ns, so {whole:.0f} ns in all per call, of which "
                         f"the programs' run time is {med(on):.0f}; the rest is the syscall "
                         "tracepoint path around them (bpf_stats does not see it; the ON runs "
                         "also pay bpf_stats' own clock reads)")
            L.append("")
            for r in runs:
                if r.get("bpf_progs"):
                    L.append(f"Programs, ON {r['round']}: " + ", ".join(
                        f"`{p['name']}` {p['runs']:,} runs × {p['run_ns'] / p['runs']:.0f} ns"
                        for p in r["bpf_progs"][:6]) + "\n")
            continue
        L.append("| run | req/s | p50 | p99 | log lines | client count | SERVER spans | CLIENT spans "
                 "| exported | agent CPU-s / 10k | sink CPU-s / 10k | VmHWM | nginx CPU-s / 10k "
                 "| CPUs idle | load (1 min) |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                 "| ---: | ---: |")
        for r in runs:
            n = r["nginx_requests"] or 1
            if r["mode"] == "off":
                agent = "— | — | — | — | — | —"
            else:
                agent = (f"{r['server_spans']:,.0f} | {r['client_spans']:,.0f} | "
                         f"{r['spans_exported']:,.0f} | {1e4 * r['agent_cpu_s'] / n:.4f} | "
                         f"{1e4 * r['sink_cpu_s'] / n:.4f} | "
                         f"{r['agent_vmhwm_kib'] / 1024:.1f} MiB")
            L.append(f"| {r['mode']} {r['round']} | {r['rps']:,.0f} | {r['p50_us']:.0f} µs | "
                     f"{r['p99_us']:.0f} µs | {r['nginx_requests']:,} | {r['requests']:,} | {agent} | "
                     f"{1e4 * r['nginx_cpu_s'] / n:.4f} | {100 * r.get('idle_share', float('nan')):.0f} % | "
                     f"{r['load_before'][0]:.2f}→{r['load_after'][0]:.2f} |")
        L.append("")
        for r in runs:
            if r["mode"] != "off":
                L.append(f"- {r['mode'].upper()} {r['round']}: losses {fmt_losses(r['losses'])}; "
                         f"parse issues {fmt_losses({'parse_issues': r['parse_issues']})}; "
                         f"socket errors: {r['socket_errors'] or 'none'}; requests abandoned "
                         f"by the load tool at its end (200 with a short body): {r.get('cut_at_end', 0)}")
            elif r["socket_errors"]:
                L.append(f"- OFF {r['round']}: socket errors: {r['socket_errors']}")
        L.append("")
        for r in runs:
            if not r.get("bpf_progs"):
                continue
            req = r["nginx_requests"] or 1
            tot = sum(p["run_ns"] for p in r["bpf_progs"])
            L.append(f"eBPF programs, {'baseline ' if r['mode'].startswith('base') else ''}"
                     f"statistics run {r['round']} "
                     f"(`kernel.bpf_stats_enabled=1` for that run only), {req:,} requests: "
                     f"{tot / req:,.0f} ns per request\n")
            L.append("| program | runs | runs per request | ns per run | ns per request |")
            L.append("| --- | ---: | ---: | ---: | ---: |")
            for p in r["bpf_progs"][:12]:
                L.append(f"| {p['name']} | {p['runs']:,} | {p['runs'] / req:.2f} | "
                         f"{p['run_ns'] / p['runs']:.0f} | {p['run_ns'] / req:.0f} |")
            L.append("")
            prof = r.get("perf") or {}
            for key, title in (("perf_dso", "perf, agent process, by DSO"),
                               ("perf_self", "perf, agent process, self time by symbol"),
                               ("perf_children", "perf, inclusive by symbol (wirespan's crates only)")):
                if prof.get(key):
                    L.append(f"{title}:\n\n```\n{prof[key]}\n```\n")
            if prof.get("perf_error"):
                L.append(f"perf failed: {prof['perf_error']}\n")
    return "\n".join(L), summaries


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
    ap.add_argument("--baseline", default=None,
                    help="a second agent binary (say, built from an earlier commit): every "
                         "ON and statistics run is also made with it, the two alternating, "
                         "and the report compares them (not for fileio)")
    ap.add_argument("--cases", default=DEFAULT_CASES,
                    help=f"comma-separated, in order (default {DEFAULT_CASES})")
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 5 s per case, 1 statistics run, no perf, 50,000 dd blocks "
                         "(about 4 minutes for all cases)")
    ap.add_argument("--rounds", type=int, default=3, help="OFF/ON pairs per case (default 3)")
    ap.add_argument("--duration", type=int, default=20, help="seconds per load run")
    ap.add_argument("--connections", type=int, default=32,
                    help="connections of every case but c400 (default 32)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--file-bytes", type=int, default=1024)
    ap.add_argument("--all-ports", action="store_true",
                    help="trace every port (default: only the case's nginx port, so other "
                         "jobs' traffic on a shared machine stays out of the counts)")
    ap.add_argument("--stats-runs", "--profile-runs", type=int, default=1, dest="stats_runs",
                    help="extra ON runs per case with the eBPF run-time statistics on "
                         "(not in the throughput or CPU figures); 0 = none")
    ap.add_argument("--no-perf", action="store_true",
                    help="statistics runs: no perf record of the agent")
    ap.add_argument("--file-io-calls", type=int, default=200000,
                    help="dd blocks (512 B) of the fileio case")
    ap.add_argument("--wait-load", type=float, default=None,
                    help="before starting, wait (up to 10 min) for the 1-min load below this")
    ap.add_argument("--out", default=None, help="directory for results.json and report.md")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, perf.data)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration, args.stats_runs = 1, 5, 1
        args.no_perf = True
        args.file_io_calls = min(args.file_io_calls, 50000)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r} (known: {', '.join(CASES)})")

    if os.geteuid() != 0:
        sys.exit("run as root (the agent loads eBPF programs)")
    tools = {"nginx", "openssl", "bpftool"} | {CASES[c]["tool"] for c in cases}
    # The Debian package of each tool (scripts/setup.sh installs most, not bpftool).
    packages = {"nginx": "nginx-light", "h2load": "nghttp2-client", "dd": "coreutils"}
    for tool in sorted(tools):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: apt-get install {packages.get(tool, tool)}")
    perf = not args.no_perf and shutil.which("perf") and subprocess.run(
        ["perf", "stat", "-e", "task-clock", "true"], capture_output=True).returncode == 0

    if args.wait_load is not None:
        end = time.time() + 600
        while loadavg()[0] >= args.wait_load and time.time() < end:
            log(f"load {loadavg()} ≥ {args.wait_load}: waiting")
            time.sleep(15)

    b = Bench(args)
    log(f"temp dir {b.dir}; nginx on {b.ports}, rotel OTLP/gRPC on {b.otlp_port}, "
        f"agent metrics on {b.metrics_port}")
    results = {}
    machine = machine_info()
    machine["load_start"] = loadavg()
    machine["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        b.start_nginx()
        b.start_rotel()
        for case in cases:
            runs = results.setdefault(case, [])
            if case == "idle":
                for i in range(1, args.rounds + 1):
                    for mode in ab_order(("on",), ("base",), i, args.baseline):
                        r = b.idle(mode, i)
                        runs.append(r)
                        log(f"idle {mode} {i}: {100 * r['agent_cpu_s'] / r['wall_s']:.3f} % CPU, "
                            f"{r['wakeups'] / r['wall_s']:.1f} wake-ups/s")
                continue
            if case == "fileio":
                for i in range(1, args.rounds + 1):
                    for mode in ("off", "on"):
                        r = b.file_io(mode, i)
                        runs.append(r)
                        log(f"fileio {mode} {i}: {r['wall_s']:.3f} s wall, load {loadavg()}")
                continue
            log(f"{case}: warm-up, 2 s, agent off")
            run_load(args, case, b.url(case), 2, f"{b.dir}/warmup.log")
            for i in range(1, args.rounds + 1):
                for mode in ab_order(("off", "on"), ("off", "base"), i, args.baseline):
                    r = b.run_case(case, mode, i, args.duration)
                    runs.append(r)
                    log(f"{case} {mode} {i}: {r['rps']:,.0f} req/s, p50 {r['p50_us']:.0f} µs, "
                        f"p99 {r['p99_us']:.0f} µs, load {loadavg()}"
                        + (f", agent {r['agent_cpu_s']:.2f} CPU-s, SERVER spans "
                           f"{r['server_spans']:.0f} / {r['nginx_requests']} requests"
                           if mode == "on" else ""))
            for i in range(1, args.stats_runs + 1):
                for mode in ab_order(("stats",), ("base-stats",), i, args.baseline):
                    r = b.run_case(case, mode, i, args.duration, bpf_stats=True,
                                   perf=perf and mode == "stats")
                    runs.append(r)
                    log(f"{case} {mode} {i}: {bpf_ns_per_request(r):,.0f} BPF ns per request, "
                        f"SERVER spans {r['server_spans']:.0f} / {r['nginx_requests']} requests")
        machine["load_end"] = loadavg()
    finally:
        b.cleanup()

    text, summaries = report(results, args)
    head = (f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, kernel {machine['kernel']}; "
            f"{machine['nginx']}; {machine['wrk']}\n"
            f"Started {machine['started']}, load at start {machine['load_start']}, "
            f"at end {machine.get('load_end')}.\n"
            f"{args.rounds} OFF/ON rounds of {args.duration} s and {args.stats_runs} statistics "
            f"run(s) per case; {args.connections} connections (c400: 400); "
            f"{args.file_bytes}-byte file; capture "
            f"{'all ports' if args.all_ports else 'the case port only (WIRESPAN_CAPTURE__PORTS)'}.\n")
    print(head)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"machine": machine, "args": vars(args), "results": results,
                       "summaries": summaries}, f, indent=1)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(head + "\n" + text + "\n")
        log(f"wrote {args.out}/results.json and report.md")


if __name__ == "__main__":
    main()
