//! Kubernetes metadata end to end: real processes in real cgroups laid out as
//! the kubelet's systemd driver lays out pods, real probes, and spans over
//! OTLP with the `k8s.*` resource attributes, workload service names and peer
//! names the pods' metadata gives.
//!
//! There is no cluster here, so the API server is `scripts/fake_kube_api.py`,
//! which answers the list and watch requests the agent makes with real API
//! objects (PodList, ServiceList, ReplicaSetList). What is real: the cgroup v2
//! hierarchy, the processes and their cgroup ids, the agent's HTTP client, its
//! parsing of the API's JSON, and everything after.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::net::{global_ipv4, wait_addr};
use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::process::in_cgroup;
use integration::span_run::SPAN_TIMEOUT;
use integration::spans::show;
use integration::stdin_client::StdinClient;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The cgroup v2 mount (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> PathBuf {
    span_semantics::cgroups::cgroup2_root()
        .expect("this test needs a cgroup v2 (unified) hierarchy mounted")
}

/// A pod's container cgroup as the kubelet's systemd driver names it; removed
/// (with its parents) when dropped, once its processes are gone.
struct PodCgroup {
    dirs: Vec<PathBuf>,
}

impl PodCgroup {
    fn create(root: &Path, pod_uid: &str, container_id: &str) -> PodCgroup {
        let slice = format!("kubepods-besteffort-pod{}.slice", pod_uid.replace('-', "_"));
        let pod = root
            .join("kubepods.slice")
            .join("kubepods-besteffort.slice")
            .join(slice);
        let leaf = pod.join(format!("cri-containerd-{container_id}.scope"));
        std::fs::create_dir_all(&leaf)
            .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", leaf.display()));
        let qos = root
            .join("kubepods.slice")
            .join("kubepods-besteffort.slice");
        PodCgroup {
            dirs: vec![leaf, pod, qos, root.join("kubepods.slice")],
        }
    }

    fn leaf(&self) -> &Path {
        &self.dirs[0]
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // Waits briefly for killed processes to leave the container's cgroup;
        // the shared parents go only once empty (the last pod removes them).
        for (i, d) in self.dirs.iter().enumerate() {
            if i < 2 {
                wait_until(Duration::from_secs(5), || std::fs::remove_dir(d).is_ok());
            } else {
                std::fs::remove_dir(d).ok();
            }
        }
    }
}

const CHECKOUT_UID: &str = "4f3c2b1a-0d9e-4c8b-a7f6-e5d4c3b2a190";
const CHECKOUT_CONTAINER: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const LOADGEN_UID: &str = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a";
const LOADGEN_CONTAINER: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const INVENTORY_UID: &str = "11112222-3333-4444-5555-666677778888";

/// A pod as the API server returns it.
fn pod(
    name: &str,
    uid: &str,
    owner: (&str, &str),
    ip: &str,
    container: (&str, &str),
) -> serde_json::Value {
    serde_json::json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": "shop", "uid": uid, "resourceVersion": "90",
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "labels": {"app": owner.1},
            "ownerReferences": [{
                "apiVersion": if owner.0 == "Job" { "batch/v1" } else { "apps/v1" },
                "kind": owner.0, "name": owner.1, "uid": "0000aaaa-0000-0000-0000-000000000000",
                "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "nodeName": "node-1", "hostNetwork": false,
            "containers": [{"name": container.0, "image": "example/app:1"}]
        },
        "status": {
            "phase": "Running", "hostIP": "192.168.1.10", "podIP": ip, "podIPs": [{"ip": ip}],
            "containerStatuses": [{
                "name": container.0, "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-11-25T10:00:01Z"}},
                "image": "example/app:1", "imageID": "example/app@sha256:00",
                "containerID": format!("containerd://{}", container.1)
            }]
        }
    })
}

fn replicaset(name: &str, deployment: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("rs-{name}"), "resourceVersion": "80",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                 "uid": "dddd0000-0000-0000-0000-000000000000", "controller": true}]
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": deployment}}},
        "status": {"replicas": 1}
    })
}

/// Starts the stand-in API server with these objects; returns it and its URL.
fn fake_api(dir: &Path, state: serde_json::Value) -> (Guarded, String) {
    let path = dir.join("state.json");
    std::fs::write(&path, state.to_string()).expect("write API state");
    let port = free_port();
    let child = Command::new(python())
        .arg(script("fake_kube_api.py"))
        .arg(port.to_string())
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("api.log")).expect("api log"))
        .spawn()
        .expect("start fake_kube_api.py");
    let api = Guarded::new("fake_kube_api.py", child);
    assert!(
        wait_port(port, Duration::from_secs(30)),
        "the stand-in API server did not listen"
    );
    (api, format!("http://127.0.0.1:{port}"))
}

/// An agent with Kubernetes metadata from `api_url`, once it has listed pods.
fn agent_with_kubernetes(api_url: &str, extra_yaml: &str) -> SpanRun {
    let run = SpanRun::start_with(
        OtlpProtocol::Grpc,
        AgentOptions::default().config(&format!(
            "kubernetes:\n  enabled: true\n  api_url: {api_url}\n  node_name: node-1\n{extra_yaml}"
        )),
    );
    let listed = wait_until(SPAN_TIMEOUT, || {
        ["pods", "services", "replicasets"].iter().all(|r| {
            run.agent
                .metrics()
                .get("wirespan_k8s_lists_total", &[("resource", r)])
                >= 1.0
        })
    });
    assert!(
        listed,
        "the agent never listed: {}",
        run.agent.diagnostics()
    );
    run
}

fn state() -> serde_json::Value {
    serde_json::json!({
        "pods": [
            pod("checkout-7d9f8b6c5d-x2x4z", CHECKOUT_UID, ("ReplicaSet", "checkout-7d9f8b6c5d"),
                "10.244.1.7", ("server", CHECKOUT_CONTAINER)),
            pod("loadgen-29001234-q7w8e", LOADGEN_UID, ("Job", "loadgen-29001234"),
                "10.244.1.8", ("curl", LOADGEN_CONTAINER)),
        ],
        "services": [],
        "replicasets": [replicaset("checkout-7d9f8b6c5d", "checkout")],
    })
}

/// A server pod (Deployment `checkout`) and a 10 ms curl in a CronJob's pod:
/// both are named from their pods, and name each other as peers.
#[test]
fn processes_in_pods_get_their_pod_and_workload() {
    require_root("processes_in_pods_get_their_pod_and_workload");
    let _g = serial();
    let root = cgroup2_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let (_api, url) = fake_api(dir.path(), state());
    let checkout_cg = PodCgroup::create(&root, CHECKOUT_UID, CHECKOUT_CONTAINER);
    let loadgen_cg = PodCgroup::create(&root, LOADGEN_UID, LOADGEN_CONTAINER);
    let run = agent_with_kubernetes(&url, "");

    // The server, inside the checkout pod's container cgroup.
    let port = free_port();
    let server = in_cgroup(checkout_cg.leaf(), python())
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .arg("--directory")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let server = Guarded::new("http.server", server);
    assert!(
        wait_port(port, Duration::from_secs(30)),
        "server did not listen"
    );

    // The client: curl, inside the loadgen pod's cgroup, living milliseconds;
    // then once more with its own OTEL_SERVICE_NAME, which wins over the pod's.
    let curl_in_loadgen = |env: &[(&str, &str)]| {
        let out = in_cgroup(loadgen_cg.leaf(), "/usr/bin/curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}/state.json"))
            .envs(env.iter().copied())
            .output()
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    };
    curl_in_loadgen(&[]);
    curl_in_loadgen(&[("OTEL_SERVICE_NAME", "probe")]);

    let (spans, _exit) = run.finish(port, 4);
    drop(server);
    assert_eq!(spans.len(), 4, "{}", show(&spans));
    let server_span = spans.iter().find(|s| s.is_server()).expect("server span");
    let by_service = |name: &str| {
        spans
            .iter()
            .find(|s| s.is_client() && s.res_str("service.name") == Some(name))
            .unwrap_or_else(|| panic!("no client span of {name}:\n{}", show(&spans)))
    };
    let client_span = by_service("loadgen");
    let named_itself = by_service("probe");
    let expect = |s: &FlatSpan, pairs: &[(&str, &str)]| {
        for (k, v) in pairs {
            assert_eq!(s.res_str(k), Some(*v), "{k}\n{}", show(&spans));
        }
    };
    expect(
        server_span,
        &[
            ("service.name", "checkout"),
            ("service.namespace", "shop"),
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "checkout-7d9f8b6c5d-x2x4z"),
            ("k8s.pod.uid", CHECKOUT_UID),
            ("k8s.container.name", "server"),
            ("k8s.node.name", "node-1"),
            ("k8s.replicaset.name", "checkout-7d9f8b6c5d"),
            ("k8s.deployment.name", "checkout"),
        ],
    );
    expect(
        client_span,
        &[
            ("service.name", "loadgen"),
            ("service.namespace", "shop"),
            ("k8s.pod.name", "loadgen-29001234-q7w8e"),
            ("k8s.pod.uid", LOADGEN_UID),
            ("k8s.container.name", "curl"),
            ("k8s.job.name", "loadgen-29001234"),
            ("k8s.cronjob.name", "loadgen"),
        ],
    );
    // Its own OTEL_SERVICE_NAME wins; the pod's attributes stay.
    expect(
        named_itself,
        &[
            ("service.name", "probe"),
            ("k8s.pod.name", "loadgen-29001234-q7w8e"),
            ("k8s.cronjob.name", "loadgen"),
        ],
    );
    assert_eq!(client_span.str("service.peer.name"), Some("checkout"));
    assert_eq!(named_itself.str("service.peer.name"), Some("checkout"));
    let mut server_peers: Vec<&str> = spans
        .iter()
        .filter(|s| s.is_server())
        .filter_map(|s| s.str("service.peer.name"))
        .collect();
    server_peers.sort();
    assert_eq!(server_peers, ["loadgen", "probe"]);
}

/// A peer that is not traced here but is a pod in the API: named from its pod.
#[test]
fn a_remote_pod_ip_is_named_from_its_workload() {
    require_root("a_remote_pod_ip_is_named_from_its_workload");
    let _g = serial();
    // The "remote" pod's IP must be a real address here that the server can
    // bind; the server stays out of capture (capture.pids), so only the API
    // can name it.
    let ip = global_ipv4().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut st = state();
    st["pods"].as_array_mut().expect("pods").push(pod(
        "inventory-5c6d7e8f9a-k3j4h",
        INVENTORY_UID,
        ("ReplicaSet", "inventory-5c6d7e8f9a"),
        &ip,
        (
            "api",
            "ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000",
        ),
    ));
    st["replicasets"]
        .as_array_mut()
        .expect("replicasets")
        .push(replicaset("inventory-5c6d7e8f9a", "inventory"));
    let (_api, url) = fake_api(dir.path(), st);

    let port = free_port();
    let server = Command::new(python())
        .args(["-m", "http.server", "--bind", &ip, &port.to_string()])
        .arg("--directory")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let _server = Guarded::new("http.server", server);
    let addr = format!("{ip}:{port}");
    assert!(
        wait_addr(
            addr.parse().expect("socket address"),
            Duration::from_secs(30)
        ),
        "server did not listen on {addr}"
    );
    let loadgen_cg = PodCgroup::create(&cgroup2_root(), LOADGEN_UID, LOADGEN_CONTAINER);
    let mut client = StdinClient::start(
        &format!("http://{addr}/state.json"),
        Some(loadgen_cg.leaf()),
    );
    let run = agent_with_kubernetes(&url, &format!("capture:\n  pids: [{}]\n", client.pid()));
    client.get();
    let spans = run
        .receiver
        .wait_for(SPAN_TIMEOUT, |s| s.iter().any(|x| x.involves_port(port)))
        .unwrap_or_else(|s| panic!("no span:\n{}", show(&s)));
    let span = spans
        .iter()
        .find(|s| s.involves_port(port))
        .expect("client span");
    assert!(span.is_client(), "{}", show(&spans));
    assert_eq!(
        span.str("service.peer.name"),
        Some("inventory"),
        "{}",
        show(&spans)
    );
    assert_eq!(span.res_str("service.name"), Some("loadgen"));
    let exit = run.agent.stop();
    assert!(exit.status.success(), "{}", exit.diagnostics());
    drop(client);
}
