#!/usr/bin/env python3
"""Checks of wirespan's deployment files: docker/ (image, compose, Collector,
Tempo and Grafana configs) and deploy/kubernetes/ (DaemonSet and gateway).

No Docker engine and no cluster are needed: what can be checked without them is
checked here, statically, plus `wirespan config check` on the agent configs
with the real binary ($WIRESPAN_BIN, else target/debug/wirespan; build it with
`cargo build -p wirespan --locked`).

Run with `python3 -m pytest docker/test_deploy_files.py` or, without pytest,
`python3 docker/test_deploy_files.py` (prints `N passed, M failed` and exits
non-zero on a failure). Needs PyYAML (`pip install pyyaml`; scripts/setup.sh
installs it). Optional, used when present: the `kubernetes-validate` package
(schema validation of the manifests) and `kubectl` (`kubectl kustomize`).
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - reported once, clearly
    print("PyYAML is missing: python3 -m pip install pyyaml", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
K8S = ROOT / "deploy" / "kubernetes"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"

# The build command the Dockerfile, the README and scripts/setup.sh must share.
BUILD_CMD = "cargo build --release -p wirespan --locked"
TOOLCHAIN_SCRIPT = "scripts/setup-toolchain.sh"
# The capabilities the DaemonSet adds, exactly (each is explained there).
DAEMONSET_CAPS = {"BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_RESOURCE"}
# Expected kinds per Kubernetes file.
K8S_KINDS = {
    "namespace.yaml": ["Namespace"],
    "serviceaccount.yaml": ["ServiceAccount"],
    "rbac.yaml": ["ClusterRole", "ClusterRoleBinding"],
    "configmap.yaml": ["ConfigMap"],
    "daemonset.yaml": ["DaemonSet"],
    "collector-gateway.yaml": ["ConfigMap", "Deployment", "Service"],
    "kustomization.yaml": ["Kustomization"],
}


class Skip(unittest.SkipTest):
    """A check that cannot run here (pytest reports unittest.SkipTest as a skip)."""


# ---------------------------------------------------------------- helpers


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def yaml_files():
    out = []
    for base in (DOCKER, K8S):
        out += sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml"))
    return out


def compose():
    return load(COMPOSE)


def k8s_docs():
    """{file name: [documents]} for every manifest in deploy/kubernetes."""
    return {p.name: load_all(p) for p in sorted(K8S.glob("*.yaml"))}


def k8s_object(kind, name=None):
    found = []
    for docs in k8s_docs().values():
        for d in docs:
            if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
                found.append(d)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def expand_default(value):
    """Compose interpolation with the defaults only: ${VAR:-x} / ${VAR-x} -> x."""
    def repl(m):
        assert m.group(2) is not None, f"{m.group(0)} has no default value"
        return m.group(2)
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", repl, value)


def short_volume(spec):
    """'src:dst[:mode]' -> (src, dst, mode)."""
    parts = spec.split(":")
    assert 2 <= len(parts) <= 3, f"unexpected volume syntax {spec!r}"
    return parts[0], parts[1], parts[2] if len(parts) == 3 else "rw"


def service_volumes(svc):
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            out.append(short_volume(v))
        else:
            out.append((v["source"], v["target"], "ro" if v.get("read_only") else "rw"))
    return out


def host_port(endpoint):
    """'host:port', 'http://host:port' or ':port' -> (host, port)."""
    if "://" in endpoint:
        u = urlsplit(endpoint)
        return u.hostname, u.port
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def image_tag(image):
    name = image.split("@")[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def wirespan_bin():
    env = os.environ.get("WIRESPAN_BIN")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT / "target" / "debug" / "wirespan")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise AssertionError(
        "no wirespan binary to run `wirespan config check` with: build it with "
        "`cargo build -p wirespan --locked` (target/debug/wirespan) or set WIRESPAN_BIN"
    )


def config_check(text, label):
    """Runs the real `wirespan config check` on `text`; asserts it is accepted."""
    binary = wirespan_bin()
    # WIRESPAN_* variables of the caller would be checked too; leave them out.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIRESPAN_", "OTEL_"))}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        r = subprocess.run([str(binary), "config", "check", path], env=env,
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    assert r.returncode == 0, f"{label} refused by {binary}: {r.stderr.strip() or r.stdout.strip()}"


def dockerfile_instructions():
    """[(INSTRUCTION, arguments)] with line continuations joined, comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        instr, _, args = buf.partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    return out


def collector_pipeline_check(cfg, label):
    """Every component a traces pipeline names is defined, and vice versa."""
    pipelines = cfg["service"]["pipelines"]
    assert "traces" in pipelines, f"{label}: no traces pipeline"
    used = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, p in pipelines.items():
        for kind in ("receivers", "exporters"):
            assert p.get(kind), f"{label}: pipeline {name} has no {kind}"
        for kind in used:
            for comp in p.get(kind, []) or []:
                assert comp in (cfg.get(kind) or {}), \
                    f"{label}: pipeline {name} uses {kind[:-1]} {comp!r}, not defined under {kind}:"
                used[kind].add(comp)
    for kind in used:
        unused = set(cfg.get(kind) or {}) - used[kind]
        # The Collector refuses nothing for unused components, but they are mistakes here.
        assert not unused, f"{label}: {kind} defined but unused: {sorted(unused)}"
    for ext in cfg["service"].get("extensions", []) or []:
        assert ext in (cfg.get("extensions") or {}), f"{label}: extension {ext!r} not defined"
    traces = pipelines["traces"]
    if "memory_limiter" in traces.get("processors", []):
        assert traces["processors"][0] == "memory_limiter", \
            f"{label}: memory_limiter must be the first processor"
    assert "batch" in traces.get("processors", []), f"{label}: no batch processor"
    # Receivers in containers must not listen on localhost only.
    for proto, pc in cfg["receivers"]["otlp"]["protocols"].items():
        host, _ = host_port(pc["endpoint"])
        assert host in ("0.0.0.0", "", "::"), f"{label}: otlp {proto} listens on {host}"
    # OTLP exporters: the current names, an endpoint, and an explicit TLS choice.
    for name, ex in cfg["exporters"].items():
        kind = name.split("/")[0]
        assert kind != "otlp", f"{label}: exporter {name}: use `otlp_grpc` (Collector 0.144+)"
        if kind in ("otlp_grpc", "otlp_http"):
            assert ex.get("endpoint"), f"{label}: exporter {name} has no endpoint"
            assert "tls" in ex, f"{label}: exporter {name} has no tls section"
    return traces


# ---------------------------------------------------------------- YAML


def test_every_yaml_file_parses():
    files = yaml_files()
    assert len(files) >= 12, f"expected the docker/ and deploy/ YAML files, found {len(files)}"
    for p in files:
        try:
            docs = load_all(p)
        except yaml.YAMLError as e:
            raise AssertionError(f"{p.relative_to(ROOT)}: {e}")
        assert docs, f"{p.relative_to(ROOT)} is empty"


# ---------------------------------------------------------------- compose


def test_compose_references_only_existing_files():
    c = compose()
    base = COMPOSE.parent
    for name, svc in c["services"].items():
        build = svc.get("build")
        if build:
            ctx = (base / build["context"]).resolve()
            assert ctx.is_dir(), f"{name}: build context {ctx} missing"
            df = ctx / build.get("dockerfile", "Dockerfile")
            assert df.is_file(), f"{name}: Dockerfile {df} missing"
        for src, dst, _ in service_volumes(svc):
            if src.startswith((".", "/")) and not src.startswith("/sys/"):
                p = (base / src).resolve()
                assert p.exists(), f"{name}: volume source {src} ({p}) does not exist"
    # Each collector config the command can select is mounted and exists.
    coll = c["services"]["otel-collector"]
    mounted = {dst: (base / src).resolve() for src, dst, _ in service_volumes(coll)}
    cmd = " ".join(coll["command"])
    default_path = expand_default(cmd).split("--config=", 1)[1].split()[0]
    assert default_path in mounted, f"the collector's default config {default_path} is not mounted"
    for cfg in ("otel-collector.yaml", "otel-collector-tempo.yaml"):
        assert (DOCKER / cfg).is_file(), f"docker/{cfg} missing"
        assert f"/etc/otelcol-contrib/{cfg}" in mounted, f"docker/{cfg} not mounted in otel-collector"
    assert "${OTELCOL_CONFIG:-otel-collector.yaml}" in cmd, \
        "the collector config is switched by OTELCOL_CONFIG, defaulting to otel-collector.yaml"


def test_compose_wirespan_service():
    w = compose()["services"]["wirespan"]
    assert w.get("privileged") is True, "wirespan: privileged: true"
    assert w.get("pid") == "host", "wirespan: pid: host"
    assert w.get("network_mode") == "host", "wirespan: network_mode: host"
    vols = {dst: (src, mode) for src, dst, mode in service_volumes(w)}
    assert vols.get("/sys/kernel/btf") == ("/sys/kernel/btf", "ro"), \
        "wirespan: /sys/kernel/btf:/sys/kernel/btf:ro"
    assert vols.get("/sys/kernel/tracing", ("", ""))[0] == "/sys/kernel/tracing", \
        "wirespan: the host's /sys/kernel/tracing mounted"
    assert vols["/sys/kernel/tracing"][1] == "rw", "wirespan: tracefs mount read-write (it may mount it)"
    env = w["environment"]
    host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (host, port) == ("127.0.0.1", 4317), env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    # The collector publishes exactly that address on the host.
    published = compose()["services"]["otel-collector"]["ports"]
    assert "127.0.0.1:4317:4317" in published, f"otel-collector must publish 127.0.0.1:4317: {published}"
    assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc"


def test_compose_services_profiles_and_images():
    svcs = compose()["services"]
    for name in ("wirespan", "otel-collector", "jaeger"):
        assert name in svcs, f"service {name} missing"
        assert not svcs[name].get("profiles"), f"{name} must start without a profile"
    for name in ("tempo", "grafana"):
        assert name in svcs, f"service {name} missing"
        assert svcs[name].get("profiles") == ["tempo"], f"{name}: profiles: [\"tempo\"]"
    for name, svc in svcs.items():
        tag = image_tag(svc["image"])
        assert tag and tag != "latest", f"{name}: image {svc['image']} is not pinned to a tag"
    assert svcs["jaeger"]["image"].startswith("jaegertracing/jaeger:2."), "Jaeger v2 image"
    assert any(p.endswith(":16686") for p in svcs["jaeger"]["ports"]), "Jaeger UI port 16686"
    assert any(p.endswith(":3000") for p in svcs["grafana"]["ports"]), "Grafana port 3000"
    # Jaeger's own OTLP port must not be published (the collector owns 4317 on the host).
    assert not any(p.endswith(":4317") for p in svcs["jaeger"]["ports"])
    assert svcs["jaeger"]["environment"]["JAEGER_LISTEN_HOST"] == "0.0.0.0"


def test_collector_configs_have_complete_traces_pipelines():
    svcs = compose()["services"]
    tempo_cfg = load(DOCKER / "tempo.yaml")
    for cfg_name, backend in (("otel-collector.yaml", "jaeger"), ("otel-collector-tempo.yaml", "tempo")):
        cfg = load(DOCKER / cfg_name)
        traces = collector_pipeline_check(cfg, f"docker/{cfg_name}")
        otlp = [e for e in traces["exporters"] if e.startswith("otlp_grpc")]
        assert len(otlp) == 1, f"{cfg_name}: one OTLP/gRPC exporter expected"
        ex = cfg["exporters"][otlp[0]]
        host, port = host_port(ex["endpoint"])
        assert host == backend, f"{cfg_name} exports to {host}, expected the {backend} service"
        assert host in svcs, f"{cfg_name}: {host} is not a compose service"
        assert ex["tls"].get("insecure") is True, f"{cfg_name}: tls.insecure inside compose"
        assert port == 4317
        # Both receive where wirespan sends.
        _, rport = host_port(cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
        assert rport == 4317
    # Tempo receives OTLP/gRPC where the collector sends it, on every interface.
    grpc = tempo_cfg["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert host_port(grpc) == ("0.0.0.0", 4317), f"tempo.yaml otlp grpc endpoint {grpc}"


def test_grafana_datasource_points_at_tempo():
    ds_dir = DOCKER / "grafana" / "provisioning" / "datasources"
    files = list(ds_dir.glob("*.yaml"))
    assert files, "no Grafana datasource provisioning file"
    sources = [d for f in files for d in load(f)["datasources"]]
    tempo = [d for d in sources if d["type"] == "tempo"]
    assert len(tempo) == 1, "one Tempo data source"
    host, port = host_port(tempo[0]["url"])
    assert host == "tempo" and port == load(DOCKER / "tempo.yaml")["server"]["http_listen_port"]
    grafana = compose()["services"]["grafana"]
    assert any(dst == "/etc/grafana/provisioning/datasources" for _, dst, _ in service_volumes(grafana))


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_like_the_readme():
    instr = dockerfile_instructions()
    froms = [a for i, a in instr if i == "FROM"]
    assert len(froms) == 2, f"two stages expected: {froms}"
    assert froms[0].split()[0] == "rust:1.95-bookworm" and froms[0].lower().endswith("as build")
    assert froms[1] == "debian:bookworm-slim"
    runs = [a for i, a in instr if i == "RUN"]
    assert TOOLCHAIN_SCRIPT in runs, f"RUN {TOOLCHAIN_SCRIPT} (the script itself) missing"
    assert BUILD_CMD in runs, f"RUN {BUILD_CMD} missing"
    assert runs.index(TOOLCHAIN_SCRIPT) < runs.index(BUILD_CMD)
    nightly = [a for i, a in instr if i == "ARG" and a.startswith("NIGHTLY=")]
    assert nightly and re.fullmatch(r"NIGHTLY=nightly-\d{4}-\d{2}-\d{2}", nightly[0]), nightly
    assert any("rustup toolchain install" in r and "rust-src" in r for r in runs)
    assert ("ENTRYPOINT", '["/usr/local/bin/wirespan"]') in instr
    assert ("CMD", '["run"]') in instr
    assert ("COPY", "docker/wirespan.yaml /etc/wirespan/wirespan.yaml") in instr
    assert ("ENV", "WIRESPAN_CONFIG=/etc/wirespan/wirespan.yaml") in instr
    # Files copied from the context exist.
    for i, a in instr:
        if i == "COPY" and not a.startswith("--from"):
            src = a.split()[0]
            if src != ".":
                assert (ROOT / src).exists(), f"COPY source {src} missing"
    # The README and scripts/setup.sh say the same.
    readme = (ROOT / "README.md").read_text()
    assert BUILD_CMD in readme, f"README.md no longer contains `{BUILD_CMD}`"
    assert TOOLCHAIN_SCRIPT in readme
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert BUILD_CMD in setup and TOOLCHAIN_SCRIPT in setup
    # The build context excludes build outputs.
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert "target" in ignore and ".git" in ignore


def test_dockerfile_nightly_is_the_developers_nightly():
    """The pinned nightly is the one preinstalled on the developers' machines.

    rustup names a nightly by its release date (the channel manifest's `date`),
    one day after the commit date that `rustc --version` prints."""
    try:
        sysroot = subprocess.run(["rustc", "+nightly", "--print", "sysroot"],
                                 capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        raise Skip("no rustc here")
    manifest = Path(sysroot.stdout.strip()) / "lib" / "rustlib" / "multirust-channel-manifest.toml"
    if sysroot.returncode != 0 or not manifest.is_file():
        raise Skip("no nightly toolchain installed here to compare with")
    m = re.search(r'^date = "(\d{4}-\d{2}-\d{2})"', manifest.read_text(), re.M)
    assert m, f"no date in {manifest}"
    arg = [a for i, a in dockerfile_instructions() if i == "ARG" and a.startswith("NIGHTLY=")][0]
    assert arg == f"NIGHTLY=nightly-{m.group(1)}", \
        f"Dockerfile {arg}, but the installed nightly is nightly-{m.group(1)}"


def test_image_default_config_is_accepted():
    cfg = load(DOCKER / "wirespan.yaml")
    assert cfg["metrics"]["listen"] == "0.0.0.0:9464"
    config_check((DOCKER / "wirespan.yaml").read_text(), "docker/wirespan.yaml")


# ---------------------------------------------------------------- Kubernetes


def test_k8s_files_have_the_expected_kinds():
    docs = k8s_docs()
    assert set(docs) == set(K8S_KINDS), f"deploy/kubernetes files: {sorted(docs)}"
    for name, kinds in K8S_KINDS.items():
        assert [d["kind"] for d in docs[name]] == kinds, f"{name}: {[d['kind'] for d in docs[name]]}"
        for d in docs[name]:
            if d["kind"] not in ("Namespace", "Kustomization"):
                assert d["metadata"].get("namespace") == "wirespan", f"{name}: {d['kind']} namespace"
    kust = docs["kustomization.yaml"][0]
    listed = kust["resources"]
    assert sorted(listed) == sorted(n for n in K8S_KINDS if n != "kustomization.yaml"), listed
    assert kust["namespace"] == "wirespan"
    ns = k8s_object("Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def _daemonset_parts():
    ds = k8s_object("DaemonSet", "wirespan")
    pod = ds["spec"]["template"]["spec"]
    containers = pod["containers"]
    assert len(containers) == 1
    return ds, pod, containers[0]


def _configmap_config():
    cm = k8s_object("ConfigMap", "wirespan-config")
    return cm, yaml.safe_load(cm["data"]["wirespan.yaml"])


def test_daemonset_host_access_and_least_capabilities():
    ds, pod, c = _daemonset_parts()
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert {"operator": "Exists"} in pod["tolerations"], "tolerate every taint"
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == DAEMONSET_CAPS, sc["capabilities"]["add"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    by_path = {m["mountPath"]: (m, vols[m["name"]]) for m in mounts.values()}
    btf_m, btf_v = by_path["/sys/kernel/btf"]
    assert btf_m.get("readOnly") is True and btf_v["hostPath"]["path"] == "/sys/kernel/btf"
    tr_m, tr_v = by_path["/sys/kernel/tracing"]
    assert tr_v["hostPath"]["path"] == "/sys/kernel/tracing"
    # The service account has a token, bound to a read-only role for
    # Kubernetes metadata, which the config turns on.
    sa = k8s_object("ServiceAccount", pod["serviceAccountName"])
    assert sa.get("automountServiceAccountToken") is True
    assert pod.get("automountServiceAccountToken") is True
    role = k8s_object("ClusterRole", "wirespan")
    for rule in role["rules"]:
        assert sorted(rule["verbs"]) == ["get", "list", "watch"], rule
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {("", "pods"), ("", "services"), ("apps", "replicasets")}, granted
    binding = k8s_object("ClusterRoleBinding", "wirespan")
    assert binding["roleRef"]["name"] == "wirespan"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "wirespan"}]
    _, cfg = _configmap_config()
    assert cfg["kubernetes"]["enabled"] is True
    # Memory is limited.
    assert c["resources"]["limits"]["memory"], "memory limit"


def test_daemonset_probes_use_the_configmap_metrics_port():
    ds, pod, c = _daemonset_parts()
    _, cfg = _configmap_config()
    _, listen_port = host_port(cfg["metrics"]["listen"])
    assert host_port(cfg["metrics"]["listen"])[0] == "0.0.0.0", "metrics.listen on every interface"
    named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, f"{probe} path {get['path']}"
        port = named.get(get["port"], get["port"])
        assert port == listen_port, f"{probe} port {port} != metrics.listen port {listen_port}"
    assert listen_port in named.values(), "the admin port is declared in ports:"


def test_daemonset_config_and_export_wiring():
    ds, pod, c = _daemonset_parts()
    cm, cfg = _configmap_config()
    env = {e["name"]: e for e in c["env"]}
    # The config file the agent reads is the ConfigMap's key, mounted.
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    cfg_vol = [n for n, v in vols.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
    assert len(cfg_vol) == 1, "the ConfigMap is mounted"
    mount_path = mounts[cfg_vol[0]]["mountPath"]
    assert env["WIRESPAN_CONFIG"]["value"] == f"{mount_path}/wirespan.yaml"
    # The endpoint env and the ConfigMap's exporter agree, and name the gateway Service.
    endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"]
    assert cfg["export"]["otlp"]["endpoint"] == endpoint, "ConfigMap export.otlp.endpoint != env"
    host, port = host_port(endpoint)
    svc = k8s_object("Service", "wirespan-collector-gateway")
    assert host in (f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local",
                    f"{svc['metadata']['name']}.{svc['metadata']['namespace']}"), host
    grpc = [p for p in svc["spec"]["ports"] if p["port"] == port]
    assert grpc and grpc[0]["name"] == "otlp-grpc", f"gateway Service has no OTLP/gRPC port {port}"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == cfg["export"]["otlp"]["protocol"] == "grpc"
    # Node name from the downward API into OTEL_RESOURCE_ATTRIBUTES.
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "k8s.node.name=$(NODE_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    # Telemetry ports are kept out of capture (no feedback loop).
    for p in (4317, 4318, listen_port_of(cfg)):
        assert p in cfg["capture"]["exclude_ports"], f"port {p} not in capture.exclude_ports"


def listen_port_of(cfg):
    return host_port(cfg["metrics"]["listen"])[1]


def test_configmap_wirespan_config_is_accepted_by_the_binary():
    cm, _ = _configmap_config()
    config_check(cm["data"]["wirespan.yaml"], "the ConfigMap's wirespan.yaml")


def test_gateway_collector():
    cm = k8s_object("ConfigMap", "wirespan-collector-gateway")
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    collector_pipeline_check(cfg, "gateway config.yaml")
    dep = k8s_object("Deployment", "wirespan-collector-gateway")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    tag = image_tag(c["image"])
    assert tag and tag != "latest"
    assert c["image"] == compose()["services"]["otel-collector"]["image"], \
        "the gateway and the compose Collector use the same pinned image"
    # Its config is the mounted ConfigMap key.
    vols = {v["name"]: v for v in pod["volumes"]}
    mount = [m for m in c["volumeMounts"]
             if vols[m["name"]].get("configMap", {}).get("name") == cm["metadata"]["name"]][0]
    assert f"--config={mount['mountPath']}/config.yaml" in c["args"]
    # The Service reaches the receiver's ports, and the probes the health_check port.
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    svc = k8s_object("Service", "wirespan-collector-gateway")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in named, f"Service targetPort {p['targetPort']} not a container port"
    recv = {host_port(v["endpoint"])[1] for v in cfg["receivers"]["otlp"]["protocols"].values()}
    assert recv == {named["otlp-grpc"], named["otlp-http"]}
    health = host_port(cfg["extensions"]["health_check"]["endpoint"])[1]
    for probe in ("readinessProbe", "livenessProbe"):
        port = c[probe]["httpGet"]["port"]
        assert named.get(port, port) == health, f"gateway {probe} not on health_check's port"


def test_k8s_schema_validation():
    try:
        import kubernetes_validate
    except ImportError:
        raise Skip("kubernetes-validate not installed (python3 -m pip install kubernetes-validate)")
    errors = []
    for name, docs in k8s_docs().items():
        for d in docs:
            if d["kind"] == "Kustomization":
                continue
            try:
                kubernetes_validate.validate(d, "1.30.0", strict=True)
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{name} {d['kind']}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)


def test_kustomize_build():
    try:
        r = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        raise Skip("kubectl not available for `kubectl kustomize`")
    assert r.returncode == 0, r.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(r.stdout) if d)
    expected = sorted(k for n, ks in K8S_KINDS.items() if n != "kustomization.yaml" for k in ks)
    assert kinds == expected, kinds
    ds = [d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "DaemonSet"][0]
    assert image_tag(ds["spec"]["template"]["spec"]["containers"][0]["image"]) not in (None, "latest")


# ---------------------------------------------------------------- runner


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = skipped = 0
    for name, fn in tests:
        try:
            fn()
        except unittest.SkipTest as e:
            skipped += 1
            print(f"SKIP {name}: {e}")
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            kind = "" if isinstance(e, AssertionError) else f"{type(e).__name__}: "
            print(f"FAIL {name}: {kind}{e}")
        else:
            passed += 1
            print(f"ok   {name}")
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
