//! End to end against a local HTTP server that speaks the Kubernetes list/watch
//! wire format: paginated lists, newline-delimited watch events, bookmarks,
//! a 410 Gone ERROR event, and a 403.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod support;

use hyper::StatusCode;
use k8s_metadata::{KubeMetadata, KubeSettings, PeerKind, WatchScope};
use serde_json::json;
use support::*;

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
    std::fs::remove_file(&token_path).ok();

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

/// HTTPS to an IP address (as in-cluster, where KUBERNETES_SERVICE_HOST is the
/// Service's IP), verified against the CA file; a wrong CA is a counted `tls`
/// failure.
#[tokio::test]
async fn https_with_ca_file_and_bearer_token() {
    let (api, url) = start_server_with(Some(tls_acceptor())).await;
    api.set_list(PODS, vec![list("PodList", "5", None, vec![db_pod()])]);
    api.set_list(SERVICES, vec![list("ServiceList", "5", None, vec![])]);
    let token_path = std::env::temp_dir().join(format!(
        "k8s-metadata-test-tls-token-{}",
        std::process::id()
    ));
    std::fs::write(&token_path, "tls-token").expect("write token");
    let settings = KubeSettings {
        api_url: Some(url.clone()),
        token_path: Some(token_path.clone()),
        ca_path: fixture("ca.crt"),
        watch_replicasets: false,
        ..Default::default()
    };
    let registry = self_metrics::Registry::new();
    let (kube, task) = KubeMetadata::start(settings.clone(), &registry).expect("start");
    poll(|| kube.is_synced().then_some(())).await;
    assert_eq!(
        kube.for_ip(ip("10.244.2.7")),
        peer("db", "data", PeerKind::Pod)
    );
    let auths = api.authorizations.lock().expect("lock").clone();
    assert!(auths.contains(&(format!("{PODS}?limit=500"), "Bearer tls-token".to_string())));
    assert!(
        auths.iter().all(|(_, a)| a == "Bearer tls-token"),
        "{auths:?}"
    );
    task.abort();

    let wrong_ca = KubeSettings {
        ca_path: fixture("other-ca.crt"),
        ..settings
    };
    let registry = self_metrics::Registry::new();
    let (kube, task) = KubeMetadata::start(wrong_ca, &registry).expect("start");
    poll(|| {
        (registry.value(
            "wirespan_k8s_watch_restarts_total",
            &[("resource", "pods"), ("reason", "tls")],
        ) == Some(1))
        .then_some(())
    })
    .await;
    assert!(!kube.is_synced());
    assert_eq!(kube.for_ip(ip("10.244.2.7")), None);
    task.abort();
    std::fs::remove_file(&token_path).ok();
}
