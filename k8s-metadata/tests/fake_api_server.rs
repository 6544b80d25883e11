//! End to end against a local HTTP server that speaks the Kubernetes list/watch
//! wire format: paginated lists, newline-delimited watch events, bookmarks,
//! a 410 Gone ERROR event, and a 403.

use bytes::Bytes;
use http_body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_metadata::{KubeMetadata, KubeSettings, PeerIdentity, PeerKind, WatchScope};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

const PODS: &str = "/api/v1/pods";
const SERVICES: &str = "/api/v1/services";
const REPLICASETS: &str = "/apis/apps/v1/replicasets";
const DEADLINE: Duration = Duration::from_secs(10);

// === The fake API server ===

enum TestBody {
    Full(Option<Bytes>),
    Stream(mpsc::UnboundedReceiver<Bytes>),
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }
}

#[derive(Default)]
struct FakeApi {
    /// Path → list pages (full JSON bodies), served by `continue` token `page-N`.
    lists: Mutex<HashMap<&'static str, Vec<String>>>,
    /// Path → (status, body) answered to every request instead.
    failures: Mutex<HashMap<&'static str, (StatusCode, String)>>,
    /// Path → the open watch stream's sender.
    watches: Mutex<HashMap<String, mpsc::UnboundedSender<Bytes>>>,
    /// Every request's path and query, in order.
    requests: Mutex<Vec<String>>,
    /// Every request's path and query with its Authorization header.
    authorizations: Mutex<Vec<(String, String)>>,
}

impl FakeApi {
    fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<TestBody> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        self.requests
            .lock()
            .expect("lock")
            .push(format!("{path}?{query}"));
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        self.authorizations
            .lock()
            .expect("lock")
            .push((format!("{path}?{query}"), auth));
        let params: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if let Some((code, body)) = self.failures.lock().expect("lock").get(path.as_str()) {
            return respond(*code, body.clone());
        }
        if params.get("watch") == Some(&"1") {
            let (tx, rx) = mpsc::unbounded_channel();
            self.watches.lock().expect("lock").insert(path, tx);
            return Response::builder()
                .header("content-type", "application/json")
                .body(TestBody::Stream(rx))
                .expect("response");
        }
        let page = params
            .get("continue")
            .and_then(|c| c.strip_prefix("page-"))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        match self.lists.lock().expect("lock").get(path.as_str()).and_then(|p| p.get(page)) {
            Some(body) => respond(StatusCode::OK, body.clone()),
            None => respond(
                StatusCode::NOT_FOUND,
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"the server could not find the requested resource","reason":"NotFound","code":404})
                .to_string(),
            ),
        }
    }

    fn set_list(&self, path: &'static str, pages: Vec<String>) {
        self.lists.lock().expect("lock").insert(path, pages);
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    /// Send one watch event line on `path`'s open stream.
    async fn send(&self, path: &str, event: Value) {
        let line = Bytes::from(format!("{event}\n"));
        poll(|| {
            let watches = self.watches.lock().expect("lock");
            watches
                .get(path)
                .is_some_and(|tx| tx.send(line.clone()).is_ok())
                .then_some(())
        })
        .await;
    }

    /// End `path`'s watch stream, as the server does after an ERROR or a timeout.
    fn close(&self, path: &str) {
        self.watches.lock().expect("lock").remove(path);
    }
}

fn respond(code: StatusCode, body: String) -> Response<TestBody> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(TestBody::Full(Some(Bytes::from(body))))
        .expect("response")
}

async fn start_server() -> (Arc<FakeApi>, String) {
    let api = Arc::new(FakeApi::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = api.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = server.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (api, url)
}

/// Poll `f` every 5 ms until it answers, or panic at the deadline.
async fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// === Objects shaped like the API server's ===

struct PodSpec<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
    rv: &'a str,
    owner: Option<(&'a str, &'a str)>,
    hash: Option<&'a str>,
    node: &'a str,
    host_network: bool,
    phase: &'a str,
    ips: &'a [&'a str],
    /// (name, containerID) of app containers, then of init containers.
    containers: &'a [(&'a str, &'a str)],
    init_containers: &'a [(&'a str, &'a str)],
}

fn pod(p: &PodSpec<'_>) -> Value {
    let mut labels = json!({"app": p.name.split('-').next().unwrap_or(p.name)});
    if let Some(hash) = p.hash {
        labels["pod-template-hash"] = json!(hash);
    }
    let owners: Vec<Value> = p
        .owner
        .iter()
        .map(|(kind, name)| {
            json!({"apiVersion": if *kind == "Job" { "batch/v1" } else { "apps/v1" }, "kind": kind, "name": name,
                   "uid": "aaaaaaaa-0000-0000-0000-000000000000", "controller": true, "blockOwnerDeletion": true})
        })
        .collect();
    let status = |list: &[(&str, &str)]| -> Vec<Value> {
        list.iter()
            .map(|(name, id)| {
                json!({"name": name, "state": {"running": {"startedAt": "2026-11-25T10:00:00Z"}}, "lastState": {},
                       "ready": true, "restartCount": 0, "image": "docker.io/library/nginx:1.27",
                       "imageID": "docker.io/library/nginx@sha256:0123", "containerID": id, "started": true})
            })
            .collect()
    };
    let mut status_obj = json!({
        "phase": p.phase,
        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-25T10:00:01Z"}],
        "hostIP": "192.168.1.10",
        "hostIPs": [{"ip": "192.168.1.10"}],
        "startTime": "2026-11-25T10:00:00Z",
        "qosClass": "Burstable",
    });
    if !p.ips.is_empty() {
        status_obj["podIP"] = json!(p.ips[0]);
        status_obj["podIPs"] = json!(p.ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>());
    }
    if !p.containers.is_empty() {
        status_obj["containerStatuses"] = json!(status(p.containers));
    }
    if !p.init_containers.is_empty() {
        status_obj["initContainerStatuses"] = json!(status(p.init_containers));
    }
    let mut spec = json!({
        "containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {}, "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "nodeName": p.node,
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
    });
    if p.host_network {
        spec["hostNetwork"] = json!(true);
    }
    let mut metadata = json!({
        "name": p.name, "namespace": p.namespace, "uid": p.uid, "resourceVersion": p.rv,
        "creationTimestamp": "2026-11-25T10:00:00Z", "labels": labels,
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-25T09:59:00Z"},
        "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}],
    });
    if !owners.is_empty() {
        metadata["ownerReferences"] = json!(owners);
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": status_obj})
}

fn service(name: &str, namespace: &str, rv: &str, ips: &[&str]) -> Value {
    let cluster_ip = ips.first().copied().unwrap_or("None");
    json!({"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": namespace, "uid": format!("svc-{name}"), "resourceVersion": rv,
                        "creationTimestamp": "2026-11-25T09:00:00Z", "labels": {"app": name}},
           "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                    "selector": {"app": name}, "clusterIP": cluster_ip,
                    "clusterIPs": if ips.is_empty() { json!(["None"]) } else { json!(ips) },
                    "type": "ClusterIP", "sessionAffinity": "None",
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
           "status": {"loadBalancer": {}}})
}

fn replicaset(name: &str, namespace: &str, deployment: &str, replicas: i64) -> Value {
    json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
           "metadata": {"name": name, "namespace": namespace, "uid": format!("rs-{name}"), "resourceVersion": "90",
                        "generation": 1, "labels": {"app": deployment},
                        "annotations": {"deployment.kubernetes.io/revision": "3"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                             "uid": "dddddddd-0000-0000-0000-000000000000", "controller": true, "blockOwnerDeletion": true}]},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": deployment}}, "template": {"metadata": {}, "spec": {}}},
           "status": {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas,
                      "availableReplicas": replicas, "observedGeneration": 1}})
}

fn list(kind: &str, rv: &str, continue_token: Option<&str>, items: Vec<Value>) -> String {
    let mut metadata = json!({"resourceVersion": rv});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
        metadata["remainingItemCount"] = json!(1);
    }
    let api_version = if kind == "ReplicaSetList" {
        "apps/v1"
    } else {
        "v1"
    };
    json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items})
        .to_string()
}

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

fn peer(name: &str, namespace: &str, kind: PeerKind) -> Option<PeerIdentity> {
    Some(PeerIdentity {
        name: name.into(),
        namespace: namespace.into(),
        kind,
    })
}

fn attrs(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

const WEB_UID: &str = "6d0f8d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f";
const WEB_ID: &str = "3b1f0e0b4c2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e";
const WEB_INIT_ID: &str = "9999999999999999999999999999999999999999999999999999999999999999";
const DB_UID: &str = "0a0b0c0d-1111-2222-3333-444455556666";
const DB_ID: &str = "d00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00d";
const API_UID: &str = "a1a1a1a1-b2b2-c3c3-d4d4-e5e5e5e5e5e5";
const API_ID: &str = "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabca";

fn web_pod() -> Value {
    pod(&PodSpec {
        name: "web-7c9f8b6d5d-q8x2z",
        namespace: "shop",
        uid: WEB_UID,
        rv: "950",
        owner: Some(("ReplicaSet", "web-7c9f8b6d5d")),
        hash: Some("7c9f8b6d5d"),
        node: "node-a",
        host_network: false,
        phase: "Running",
        ips: &["10.244.1.5", "fd00:244::5"],
        containers: &[("nginx", &format!("containerd://{WEB_ID}"))],
        init_containers: &[("migrate", &format!("containerd://{WEB_INIT_ID}"))],
    })
}

fn db_pod() -> Value {
    pod(&PodSpec {
        name: "db-0",
        namespace: "data",
        uid: DB_UID,
        rv: "960",
        owner: Some(("StatefulSet", "db")),
        hash: None,
        node: "node-b",
        host_network: false,
        phase: "Running",
        ips: &["10.244.2.7"],
        containers: &[("postgres", &format!("docker://{DB_ID}"))],
        init_containers: &[],
    })
}

fn host_network_pod() -> Value {
    pod(&PodSpec {
        name: "node-exporter-x7k2p",
        namespace: "monitoring",
        uid: "ffffffff-eeee-dddd-cccc-bbbbbbbbbbbb",
        rv: "970",
        owner: Some(("DaemonSet", "node-exporter")),
        hash: None,
        node: "node-a",
        host_network: true,
        phase: "Running",
        ips: &["192.168.1.10"],
        containers: &[(
            "exporter",
            "cri-o://eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        )],
        init_containers: &[],
    })
}

fn api_pod(rv: &str, running: bool) -> Value {
    let id = format!("containerd://{API_ID}");
    let containers = [("api", id.as_str())];
    pod(&PodSpec {
        name: "api-5f6d7c8b9-mm2kd",
        namespace: "shop",
        uid: API_UID,
        rv,
        owner: Some(("ReplicaSet", "api-5f6d7c8b9")),
        hash: Some("5f6d7c8b9"),
        node: "node-a",
        host_network: false,
        phase: if running { "Running" } else { "Pending" },
        ips: if running { &["10.244.1.9"] } else { &[] },
        containers: if running { &containers } else { &[] },
        init_containers: &[],
    })
}

fn web_cgroup() -> String {
    let uid = WEB_UID.replace('-', "_");
    format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{WEB_ID}.scope\n")
}

#[tokio::test]
async fn list_watch_bookmark_and_relist_after_410() {
    let (api, url) = start_server().await;
    api.set_list(
        PODS,
        vec![
            list(
                "PodList",
                "",
                Some("page-1"),
                vec![web_pod(), host_network_pod()],
            ),
            list("PodList", "1000", None, vec![db_pod()]),
        ],
    );
    api.set_list(
        SERVICES,
        vec![list(
            "ServiceList",
            "1000",
            None,
            vec![
                service("kubernetes", "default", "10", &["10.96.0.1"]),
                service("checkout", "shop", "500", &["10.96.10.20", "fd00:10::20"]),
                service("db-headless", "data", "501", &[]),
            ],
        )],
    );
    api.set_list(
        REPLICASETS,
        vec![list(
            "ReplicaSetList",
            "1000",
            None,
            vec![
                replicaset("web-7c9f8b6d5d", "shop", "web", 2),
                // An old revision at zero replicas: not kept.
                replicaset("web-55b9c8d7f4", "shop", "web", 0),
            ],
        )],
    );
    let registry = self_metrics::Registry::new();
    let settings = KubeSettings {
        api_url: Some(url),
        token_path: None,
        max_objects: 100,
        ..Default::default()
    };
    let (kube, task) = KubeMetadata::start(settings, &registry).expect("start");
    poll(|| kube.is_synced().then_some(())).await;

    // --- After the list ---
    let web = kube.for_cgroup(&web_cgroup()).expect("web pod");
    assert_eq!(
        web.attributes,
        attrs(&[
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "web-7c9f8b6d5d-q8x2z"),
            ("k8s.pod.uid", WEB_UID),
            ("k8s.container.name", "nginx"),
            ("k8s.node.name", "node-a"),
            ("k8s.replicaset.name", "web-7c9f8b6d5d"),
            ("k8s.deployment.name", "web"),
        ])
    );
    assert_eq!(
        (web.service_name.as_str(), web.service_namespace.as_str()),
        ("web", "shop")
    );
    // The init container, found by its ID, and through the cgroupfs driver.
    let init = kube
        .for_cgroup(&format!(
            "0::/kubepods/burstable/pod{WEB_UID}/{WEB_INIT_ID}"
        ))
        .expect("init container");
    assert_eq!(init.attribute("k8s.container.name"), Some("migrate"));
    // cgroup v1, Docker under the systemd driver, pod on a second list page.
    let db_uid = DB_UID.replace('-', "_");
    let db = kube
        .for_cgroup(&format!(
            "12:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{db_uid}.slice/docker-{DB_ID}.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{db_uid}.slice/docker-{DB_ID}.scope\n"
        ))
        .expect("db pod");
    assert_eq!(
        db.attributes,
        attrs(&[
            ("k8s.namespace.name", "data"),
            ("k8s.pod.name", "db-0"),
            ("k8s.pod.uid", DB_UID),
            ("k8s.container.name", "postgres"),
            ("k8s.node.name", "node-b"),
            ("k8s.statefulset.name", "db"),
        ])
    );
    assert_eq!(db.service_name, "db");
    assert_eq!(kube.for_cgroup("0::/system.slice/sshd.service\n"), None);

    assert_eq!(
        kube.for_ip(ip("10.244.1.5")),
        peer("web", "shop", PeerKind::Pod)
    );
    assert_eq!(
        kube.for_ip(ip("fd00:244::5")),
        peer("web", "shop", PeerKind::Pod)
    );
    assert_eq!(
        kube.for_ip(ip("10.244.2.7")),
        peer("db", "data", PeerKind::Pod)
    );
    assert_eq!(
        kube.for_ip(ip("192.168.1.10")),
        None,
        "host-network pods are not indexed by IP"
    );
    assert_eq!(
        kube.for_ip(ip("10.96.10.20")),
        peer("checkout", "shop", PeerKind::Service)
    );
    assert_eq!(
        kube.for_ip(ip("fd00:10::20")),
        peer("checkout", "shop", PeerKind::Service)
    );
    assert_eq!(
        kube.for_ip(ip("10.96.0.1")),
        peer("kubernetes", "default", PeerKind::Service)
    );
    assert_eq!(
        registry.value("wirespan_k8s_objects", &[("resource", "pods")]),
        Some(3)
    );
    assert_eq!(
        registry.value("wirespan_k8s_objects", &[("resource", "services")]),
        Some(3)
    );
    assert_eq!(
        registry.value("wirespan_k8s_objects", &[("resource", "replicasets")]),
        Some(1)
    );
    assert_eq!(
        registry.value("wirespan_k8s_lists_total", &[("resource", "pods")]),
        Some(1)
    );

    // The list was paginated, and the watch starts at the last page's version.
    let requests = api.requests();
    assert!(
        requests.contains(&format!("{PODS}?limit=500")),
        "{requests:?}"
    );
    assert!(
        requests.contains(&format!("{PODS}?limit=500&continue=page-1")),
        "{requests:?}"
    );

    // --- Watch: ADDED (pending, no IP yet), MODIFIED (running), DELETED ---
    api.send(PODS, event("ADDED", api_pod("1001", false))).await;
    poll(|| {
        (registry.value("wirespan_k8s_objects", &[("resource", "pods")]) == Some(4)).then_some(())
    })
    .await;
    assert_eq!(kube.for_ip(ip("10.244.1.9")), None);
    api.send(PODS, event("MODIFIED", api_pod("1002", true)))
        .await;
    let found = poll(|| kube.for_ip(ip("10.244.1.9"))).await;
    // Its ReplicaSet is not known: the Deployment comes from pod-template-hash.
    assert_eq!(Some(found), peer("api", "shop", PeerKind::Pod));
    let api_cgroup = format!("0::/kubepods/pod{API_UID}/{API_ID}");
    assert_eq!(
        kube.for_cgroup(&api_cgroup)
            .and_then(|p| p.attribute("k8s.deployment.name").map(str::to_string)),
        Some("api".to_string())
    );
    api.send(PODS, event("DELETED", web_pod())).await;
    poll(|| kube.for_ip(ip("10.244.1.5")).is_none().then_some(())).await;
    assert_eq!(kube.for_cgroup(&web_cgroup()), None);
    assert_eq!(kube.for_ip(ip("fd00:244::5")), None);
    api.send(
        SERVICES,
        event(
            "ADDED",
            service("payments", "shop", "1003", &["10.96.30.30"]),
        ),
    )
    .await;
    poll(|| kube.for_ip(ip("10.96.30.30"))).await;
    assert_eq!(
        kube.for_ip(ip("10.96.30.30")),
        peer("payments", "shop", PeerKind::Service)
    );

    // --- Bookmark then end of stream: the watch resumes from the bookmark ---
    let bookmark = json!({"kind": "Pod", "apiVersion": "v1",
                          "metadata": {"resourceVersion": "1500", "creationTimestamp": null},
                          "spec": {"containers": null}, "status": {}});
    api.send(PODS, event("BOOKMARK", bookmark)).await;
    let watch_1500 = format!("{PODS}?watch=1&allowWatchBookmarks=true&resourceVersion=1500&");
    // The stream delivers what was sent before it ends.
    api.close(PODS);
    poll(|| {
        api.requests()
            .iter()
            .any(|r| r.starts_with(&watch_1500))
            .then_some(())
    })
    .await;
    assert_eq!(
        registry.value(
            "wirespan_k8s_watch_restarts_total",
            &[("resource", "pods"), ("reason", "end_of_stream")]
        ),
        Some(1)
    );
    assert_eq!(
        registry.value("wirespan_k8s_lists_total", &[("resource", "pods")]),
        Some(1)
    );

    // --- 410 Gone: list again, replacing what was stored ---
    let late = pod(&PodSpec {
        name: "late",
        namespace: "batch",
        uid: "12121212-3434-5656-7878-909090909090",
        rv: "2000",
        owner: Some(("Job", "report-29412345")),
        hash: None,
        node: "node-a",
        host_network: false,
        phase: "Running",
        ips: &["10.244.1.77"],
        containers: &[],
        init_containers: &[],
    });
    api.set_list(
        PODS,
        vec![list("PodList", "2000", None, vec![db_pod(), late])],
    );
    let gone = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "too old resource version: 1500 (1900)", "reason": "Expired", "code": 410});
    api.send(PODS, event("ERROR", gone)).await;
    api.close(PODS);
    let late_peer = poll(|| kube.for_ip(ip("10.244.1.77"))).await;
    assert_eq!(Some(late_peer), peer("report", "batch", PeerKind::Pod));
    // The api pod, only in the old list and watch, is gone; db-0 stays.
    assert_eq!(kube.for_ip(ip("10.244.1.9")), None);
    assert_eq!(
        kube.for_ip(ip("10.244.2.7")),
        peer("db", "data", PeerKind::Pod)
    );
    assert_eq!(
        registry.value("wirespan_k8s_objects", &[("resource", "pods")]),
        Some(2)
    );
    assert_eq!(
        registry.value("wirespan_k8s_lists_total", &[("resource", "pods")]),
        Some(2)
    );
    assert_eq!(
        registry.value(
            "wirespan_k8s_watch_restarts_total",
            &[("resource", "pods"), ("reason", "expired")]
        ),
        Some(1)
    );
    let watch_2000 = format!("{PODS}?watch=1&allowWatchBookmarks=true&resourceVersion=2000&");
    poll(|| {
        api.requests()
            .iter()
            .any(|r| r.starts_with(&watch_2000))
            .then_some(())
    })
    .await;
    // Nothing failed along the way.
    let failures: i128 = [
        "connect",
        "timeout",
        "http",
        "decode",
        "status",
        "too_large",
    ]
    .iter()
    .map(|reason| {
        registry
            .value(
                "wirespan_k8s_watch_restarts_total",
                &[("resource", "pods"), ("reason", reason)],
            )
            .unwrap_or(0)
    })
    .sum();
    assert_eq!(failures, 0);
    assert_eq!(registry.sum("wirespan_k8s_events_skipped_total"), 0);
    assert_eq!(registry.sum("wirespan_k8s_objects_refused_total"), 0);
    task.abort();
}

#[tokio::test]
async fn object_cap_is_enforced_and_counted_in_node_scope() {
    let (api, url) = start_server().await;
    let node_pod = |i: u32| {
        let name = format!("worker-{i}");
        let uid = format!("00000000-0000-0000-0000-00000000000{i}");
        let ip = format!("10.244.1.{i}");
        pod(&PodSpec {
            name: &name,
            namespace: "jobs",
            uid: &uid,
            rv: "300",
            owner: None,
            hash: None,
            node: "node-a",
            host_network: false,
            phase: "Running",
            ips: &[&ip],
            containers: &[],
            init_containers: &[],
        })
    };
    api.set_list(
        PODS,
        vec![list(
            "PodList",
            "300",
            None,
            (1..=4).map(node_pod).collect(),
        )],
    );
    api.set_list(SERVICES, vec![list("ServiceList", "300", None, vec![])]);
    // ReplicaSets are forbidden to this service account: counted, retried, and
    // the rest still works.
    api.failures.lock().expect("lock").insert(
        REPLICASETS,
        (
            StatusCode::FORBIDDEN,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "replicasets.apps is forbidden: User \"system:serviceaccount:wirespan:wirespan\" cannot list resource \"replicasets\" in API group \"apps\" at the cluster scope",
                   "reason": "Forbidden", "details": {"group": "apps", "kind": "replicasets"}, "code": 403})
            .to_string(),
        ),
    );
    // The token is read again for each request: a rotated one is used at once.
    let token_path =
        std::env::temp_dir().join(format!("k8s-metadata-test-token-{}", std::process::id()));
    std::fs::write(&token_path, "first-token\n").expect("write token");
    let registry = self_metrics::Registry::new();
    let settings = KubeSettings {
        api_url: Some(url),
        token_path: Some(token_path.clone()),
        max_objects: 3,
        watch_scope: WatchScope::Node,
        node_name: Some("node-a".into()),
        ..Default::default()
    };
    let (kube, task) = KubeMetadata::start(settings, &registry).expect("start");
    let refused = |r: &self_metrics::Registry| {
        r.value(
            "wirespan_k8s_objects_refused_total",
            &[("resource", "pods")],
        )
    };
    poll(|| {
        (registry.value("wirespan_k8s_lists_total", &[("resource", "pods")]) == Some(1))
            .then_some(())
    })
    .await;
    assert!(!kube.is_synced(), "replicasets were never listed");
    assert_eq!(refused(&registry), Some(1));
    assert_eq!(
        registry.value("wirespan_k8s_objects", &[("resource", "pods")]),
        Some(3)
    );
    assert_eq!(
        kube.for_ip(ip("10.244.1.3")),
        peer("worker-3", "jobs", PeerKind::Pod)
    );
    assert_eq!(kube.for_ip(ip("10.244.1.4")), None, "refused by the cap");
    assert!(api.requests().contains(&format!(
        "{PODS}?limit=500&fieldSelector=spec.nodeName%3Dnode-a"
    )));

    // A new pod at the cap is refused; a stored one is still updated.
    api.send(PODS, event("ADDED", node_pod(5))).await;
    poll(|| (refused(&registry) == Some(2)).then_some(())).await;
    let mut moved = node_pod(1);
    moved["status"]["podIP"] = json!("10.244.1.100");
    moved["status"]["podIPs"] = json!([{"ip": "10.244.1.100"}]);
    api.send(PODS, event("MODIFIED", moved)).await;
    poll(|| kube.for_ip(ip("10.244.1.100"))).await;
    assert_eq!(kube.for_ip(ip("10.244.1.1")), None);
    // Room again after a delete.
    api.send(PODS, event("DELETED", node_pod(2))).await;
    api.send(PODS, event("ADDED", node_pod(5))).await;
    poll(|| kube.for_ip(ip("10.244.1.5"))).await;
    assert_eq!(refused(&registry), Some(2));
    assert_eq!(
        registry.value("wirespan_k8s_objects", &[("resource", "pods")]),
        Some(3)
    );

    let forbidden = poll(|| {
        registry
            .value(
                "wirespan_k8s_watch_restarts_total",
                &[("resource", "replicasets"), ("reason", "forbidden")],
            )
            .filter(|n| *n >= 1)
    })
    .await;
    assert!(forbidden >= 1);
    std::fs::write(&token_path, "rotated-token").expect("write token");
    api.close(PODS);
    let rewatch = poll(|| {
        let auths = api.authorizations.lock().expect("lock").clone();
        let watches: Vec<_> = auths
            .into_iter()
            .filter(|(r, _)| r.starts_with(&format!("{PODS}?watch=1")))
            .collect();
        (watches.len() == 2).then_some(watches)
    })
    .await;
    assert_eq!(rewatch[0].1, "Bearer first-token");
    assert_eq!(rewatch[1].1, "Bearer rotated-token");
    let _ = std::fs::remove_file(&token_path);

    let restarts = |resource: &str, reason: &str| {
        registry
            .value(
                "wirespan_k8s_watch_restarts_total",
                &[("resource", resource), ("reason", reason)],
            )
            .unwrap_or(0)
    };
    assert_eq!(restarts("pods", "end_of_stream"), 1);
    // Nothing else restarted.
    assert_eq!(
        registry.sum("wirespan_k8s_watch_restarts_total")
            - restarts("replicasets", "forbidden")
            - restarts("pods", "end_of_stream"),
        0
    );
    task.abort();
}
