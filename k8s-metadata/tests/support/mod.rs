//! The fake Kubernetes API server and API-shaped objects the integration
//! tests share.

use bytes::Bytes;
use http_body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_metadata::{PeerIdentity, PeerKind};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

pub const PODS: &str = "/api/v1/pods";
pub const SERVICES: &str = "/api/v1/services";
pub const REPLICASETS: &str = "/apis/apps/v1/replicasets";
pub const DEADLINE: Duration = Duration::from_secs(10);

// === The fake API server ===

pub enum TestBody {
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
pub struct FakeApi {
    /// Path → list pages (full JSON bodies), served by `continue` token `page-N`.
    pub lists: Mutex<HashMap<&'static str, Vec<String>>>,
    /// Path → (status, body) answered to every request instead.
    pub failures: Mutex<HashMap<&'static str, (StatusCode, String)>>,
    /// Path → the open watch stream's sender.
    pub watches: Mutex<HashMap<String, mpsc::UnboundedSender<Bytes>>>,
    /// Every request's path and query, in order.
    pub requests: Mutex<Vec<String>>,
    /// Every request's path and query with its Authorization header.
    pub authorizations: Mutex<Vec<(String, String)>>,
}

impl FakeApi {
    pub fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<TestBody> {
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

    pub fn set_list(&self, path: &'static str, pages: Vec<String>) {
        self.lists.lock().expect("lock").insert(path, pages);
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    /// Send one watch event line on `path`'s open stream.
    pub async fn send(&self, path: &str, event: Value) {
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
    pub fn close(&self, path: &str) {
        self.watches.lock().expect("lock").remove(path);
    }
}

pub fn respond(code: StatusCode, body: String) -> Response<TestBody> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(TestBody::Full(Some(Bytes::from(body))))
        .expect("response")
}

pub async fn start_server() -> (Arc<FakeApi>, String) {
    start_server_with(None).await
}

/// With `tls`, the server speaks HTTPS with the fixture certificate.
pub async fn start_server_with(tls: Option<tokio_rustls::TlsAcceptor>) -> (Arc<FakeApi>, String) {
    let api = Arc::new(FakeApi::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let server = api.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = server.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(req)) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                (match tls {
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                })
                .ok();
            });
        }
    });
    (api, url)
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(fixture("server.crt"))
        .expect("server.crt")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server.key");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Poll `f` every 5 ms until it answers, or panic at the deadline.
pub async fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
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

pub struct PodSpec<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub rv: &'a str,
    pub owner: Option<(&'a str, &'a str)>,
    pub hash: Option<&'a str>,
    pub node: &'a str,
    pub host_network: bool,
    pub phase: &'a str,
    pub ips: &'a [&'a str],
    /// (name, containerID) of app containers, then of init containers.
    pub containers: &'a [(&'a str, &'a str)],
    pub init_containers: &'a [(&'a str, &'a str)],
}

pub fn pod(p: &PodSpec<'_>) -> Value {
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

pub fn service(name: &str, namespace: &str, rv: &str, ips: &[&str]) -> Value {
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

pub fn replicaset(name: &str, namespace: &str, deployment: &str, replicas: i64) -> Value {
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

pub fn list(kind: &str, rv: &str, continue_token: Option<&str>, items: Vec<Value>) -> String {
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

pub fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

pub fn peer(name: &str, namespace: &str, kind: PeerKind) -> Option<PeerIdentity> {
    Some(PeerIdentity {
        name: name.into(),
        namespace: namespace.into(),
        kind,
    })
}

pub fn attrs(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

pub const WEB_UID: &str = "6d0f8d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f";
pub const WEB_ID: &str = "3b1f0e0b4c2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e";
pub const WEB_INIT_ID: &str = "9999999999999999999999999999999999999999999999999999999999999999";
pub const DB_UID: &str = "0a0b0c0d-1111-2222-3333-444455556666";
pub const DB_ID: &str = "d00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00dd00d";
pub const API_UID: &str = "a1a1a1a1-b2b2-c3c3-d4d4-e5e5e5e5e5e5";
pub const API_ID: &str = "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabca";

pub fn web_pod() -> Value {
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

pub fn db_pod() -> Value {
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

pub fn host_network_pod() -> Value {
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

pub fn api_pod(rv: &str, running: bool) -> Value {
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

pub fn web_cgroup() -> String {
    let uid = WEB_UID.replace('-', "_");
    format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{WEB_ID}.scope\n")
}
