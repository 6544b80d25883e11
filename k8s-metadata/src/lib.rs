//! Kubernetes metadata for wirespan: which pod, container and workload a local
//! process belongs to (from its `/proc/<pid>/cgroup`), and which workload or
//! Service a remote IP address is, as OpenTelemetry `k8s.*` resource attributes
//! and a suggested `service.name` / `service.namespace`.
//!
//! It lists then watches pods, Services and (optionally) ReplicaSets on the API
//! server in a tokio task, over plain HTTP/1.1 (hyper) with rustls, and keeps only
//! the few fields the lookups need, up to [`KubeSettings::max_objects`] objects.
//! Lookups are synchronous reads of that store behind an `RwLock`: they never
//! wait on the network, and writers hold the lock only to apply one event or to
//! swap in a list built beside it.
//!
//! Memory: lists are read in pages of 500 objects (64 MiB at most a page), a
//! watch event may be 8 MiB at most, and the store keeps at most `max_objects`
//! small records (pod: names, UID, node, IPs, container IDs and names, owner).
//! It does not: read `/proc` itself (the caller passes the cgroup text), watch
//! Jobs, Deployments, Nodes or Namespaces (CronJob names are a heuristic from the
//! Job's name; Deployment names come from ReplicaSets, or from the
//! `pod-template-hash` label when ReplicaSets are not watched), read pod labels
//! or annotations beyond `pod-template-hash`, support client certificates or
//! kubeconfig files, or use HTTP/2.
//!
//! Counters (all with a `resource` label: `pods`, `services`, `replicasets`):
//! `wirespan_k8s_watch_restarts_total{reason}`, `wirespan_k8s_lists_total`,
//! `wirespan_k8s_objects` (gauge), `wirespan_k8s_objects_refused_total`,
//! `wirespan_k8s_events_skipped_total{reason}`.
//!
//! ```no_run
//! # async fn run() -> Result<(), k8s_metadata::KubeError> {
//! let registry = self_metrics::Registry::new();
//! let settings = k8s_metadata::KubeSettings {
//!     node_name: std::env::var("NODE_NAME").ok(),
//!     ..Default::default()
//! };
//! let (kube, _task) = k8s_metadata::KubeMetadata::start(settings, &registry)?;
//! let cgroup = std::fs::read_to_string("/proc/1234/cgroup").unwrap_or_default();
//! if let Some(pod) = kube.for_cgroup(&cgroup) {
//!     println!("{} in {}: {:?}", pod.service_name, pod.service_namespace, pod.attributes);
//! }
//! if let Some(peer) = kube.for_ip("10.96.0.10".parse().expect("literal")) {
//!     println!("{}.{}", peer.name, peer.namespace);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies of the package's test and bench targets"
    )
)]

mod cgroup;
mod client;
mod error;
mod identity;
mod metrics;
mod objects;
mod records;
mod store;
mod watch;

pub use cgroup::{parse_cgroup, CgroupRef};
pub use error::KubeError;
pub use identity::{PeerIdentity, PeerKind, PodIdentity};

use records::Resource;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use store::Store;
use watch::{ResourceWatcher, Shared};

/// The default service account directory of a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Which pods to watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchScope {
    /// Every pod of the cluster: local processes and remote peers anywhere are
    /// named. Memory and API traffic grow with the cluster.
    #[default]
    Cluster,
    /// Only pods on [`KubeSettings::node_name`] (`fieldSelector=spec.nodeName=`):
    /// local processes are named, remote peers only when they are Services or
    /// pods on this node.
    Node,
}

/// How to reach the API server and what to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSettings {
    /// `http://host:port` or `https://host:port`, optionally with a path prefix.
    /// `None`: in-cluster, `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    pub api_url: Option<String>,
    /// This node's name (the downward API's `spec.nodeName`); required by
    /// [`WatchScope::Node`].
    pub node_name: Option<String>,
    pub watch_scope: WatchScope,
    /// Watch ReplicaSets to name Deployments exactly (needs `list`/`watch` on
    /// `apps/replicasets`). Without it the `pod-template-hash` label is used.
    pub watch_replicasets: bool,
    /// Objects (pods + Services + ReplicaSets) held at most; new ones past it
    /// are refused and counted in `wirespan_k8s_objects_refused_total`.
    /// Default 20,000, as `kubernetes.max_objects` in `wirespan-config` (a
    /// test in `wirespan` checks that the two agree).
    pub max_objects: usize,
    /// The bearer token, re-read for every request. `None`: no token.
    pub token_path: Option<PathBuf>,
    /// CA certificates (PEM) for an `https` API server.
    pub ca_path: PathBuf,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            api_url: None,
            node_name: None,
            watch_scope: WatchScope::Cluster,
            watch_replicasets: true,
            max_objects: 20_000,
            token_path: Some(PathBuf::from(SERVICE_ACCOUNT_DIR).join("token")),
            ca_path: PathBuf::from(SERVICE_ACCOUNT_DIR).join("ca.crt"),
        }
    }
}

impl KubeSettings {
    /// The API server URL: [`KubeSettings::api_url`], or the in-cluster one from
    /// the environment.
    pub fn resolved_url(&self) -> Result<String, KubeError> {
        if let Some(url) = &self.api_url {
            return Ok(url.clone());
        }
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| KubeError::MissingEnv("KUBERNETES_SERVICE_HOST"))?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT")
            .map_err(|_| KubeError::MissingEnv("KUBERNETES_SERVICE_PORT"))?;
        Ok(if host.contains(':') {
            format!("https://[{host}]:{port}")
        } else {
            format!("https://{host}:{port}")
        })
    }
}

/// Lookups of Kubernetes metadata. Cloning is cheap and shares the store.
#[derive(Clone, Debug)]
pub struct KubeMetadata {
    shared: Arc<Shared>,
}

impl KubeMetadata {
    /// Check the settings, register the counters and spawn the watch task on
    /// the current tokio runtime. Lookups answer `None` until the first lists
    /// arrive ([`KubeMetadata::is_synced`]). Aborting the returned task stops
    /// every watch.
    pub fn start(
        settings: KubeSettings,
        metrics: &self_metrics::Registry,
    ) -> Result<(KubeMetadata, tokio::task::JoinHandle<()>), KubeError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| KubeError::NoRuntime)?;
        let url = settings.resolved_url()?;
        let client = client::ApiClient::new(&url, &settings.ca_path, settings.token_path.clone())?;
        let field_selector = match settings.watch_scope {
            WatchScope::Cluster => None,
            WatchScope::Node => match settings.node_name.as_deref() {
                Some(node) if !node.is_empty() => Some(format!("spec.nodeName={node}")),
                _ => {
                    return Err(KubeError::Settings(
                        "watch scope `node` needs the node name".to_string(),
                    ))
                }
            },
        };
        let kube = KubeMetadata {
            shared: Arc::new(Shared {
                store: RwLock::new(Store::new(settings.max_objects)),
                synced: Default::default(),
            }),
        };
        let mut watchers = Vec::new();
        for resource in Resource::ALL {
            let watched = resource != Resource::ReplicaSets || settings.watch_replicasets;
            if !watched {
                kube.shared.synced[resource.index()].store(true, Ordering::Release);
                continue;
            }
            watchers.push(ResourceWatcher {
                resource,
                client: client.clone(),
                shared: kube.shared.clone(),
                metrics: metrics::ResourceMetrics::new(metrics, resource),
                field_selector: (resource == Resource::Pods)
                    .then(|| field_selector.clone())
                    .flatten(),
                max_objects: settings.max_objects,
                last_logged: None,
                backoff: watch::BACKOFF_FIRST,
            });
        }
        let task = runtime.spawn(async move {
            // Dropping the set (when this task is aborted) aborts every watch.
            let mut set = tokio::task::JoinSet::new();
            for w in watchers {
                set.spawn(w.run());
            }
            while set.join_next().await.is_some() {}
        });
        Ok((kube, task))
    }

    /// The pod and container of a process, from the text of its
    /// `/proc/<pid>/cgroup`. `None` for a process outside any pod, or a pod not
    /// (yet) known.
    pub fn for_cgroup(&self, proc_cgroup_text: &str) -> Option<PodIdentity> {
        let cgroup = parse_cgroup(proc_cgroup_text)?;
        identity::for_cgroup(&self.shared.read(), &cgroup)
    }

    /// The workload of a pod IP (host-network and finished pods are not indexed)
    /// or the Service of a ClusterIP.
    pub fn for_ip(&self, ip: IpAddr) -> Option<PeerIdentity> {
        identity::for_ip(&self.shared.read(), ip)
    }

    /// Every watched resource has been listed at least once.
    pub fn is_synced(&self) -> bool {
        self.shared.synced.iter().all(|s| s.load(Ordering::Acquire))
    }
}

impl span_semantics::identity::KubeLookup for KubeMetadata {
    fn for_cgroup(&self, proc_cgroup_text: &str) -> Option<PodIdentity> {
        KubeMetadata::for_cgroup(self, proc_cgroup_text)
    }
    fn for_ip(&self, ip: IpAddr) -> Option<PeerIdentity> {
        KubeMetadata::for_ip(self, ip)
    }
    fn is_pod_cgroup(&self, proc_cgroup_text: &str) -> bool {
        parse_cgroup(proc_cgroup_text).is_some_and(|c| c.pod_uid.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_needs_a_runtime() {
        let settings = KubeSettings {
            api_url: Some("http://127.0.0.1:1".into()),
            token_path: None,
            ..Default::default()
        };
        let err =
            KubeMetadata::start(settings, &self_metrics::Registry::new()).expect_err("no runtime");
        assert!(matches!(err, KubeError::NoRuntime));
    }

    #[tokio::test]
    async fn node_scope_needs_the_node_name() {
        let settings = KubeSettings {
            api_url: Some("http://127.0.0.1:1".into()),
            token_path: None,
            watch_scope: WatchScope::Node,
            ..Default::default()
        };
        let err =
            KubeMetadata::start(settings, &self_metrics::Registry::new()).expect_err("no node");
        assert_eq!(err.reason(), "config");
        assert_eq!(
            err.to_string(),
            "settings: watch scope `node` needs the node name"
        );
    }

    #[tokio::test]
    async fn lookups_answer_none_before_the_first_list() {
        let settings = KubeSettings {
            // Nothing listens on port 1: every request fails and is retried.
            api_url: Some("http://127.0.0.1:1".into()),
            token_path: None,
            watch_replicasets: false,
            ..Default::default()
        };
        let registry = self_metrics::Registry::new();
        let (kube, task) = KubeMetadata::start(settings, &registry).expect("start");
        assert!(!kube.is_synced());
        assert_eq!(kube.for_ip("10.0.0.1".parse().expect("ip")), None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while registry.value(
            "wirespan_k8s_watch_restarts_total",
            &[("resource", "pods"), ("reason", "connect")],
        ) != Some(1)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "connect failure not counted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // No ReplicaSet counters when they are not watched.
        assert_eq!(
            registry.value("wirespan_k8s_lists_total", &[("resource", "replicasets")]),
            None
        );
        task.abort();
    }
}
