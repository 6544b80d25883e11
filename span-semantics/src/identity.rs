//! Kubernetes identities of processes and peers, as span meaning sees them,
//! and the lookup that supplies them. The `k8s-metadata` crate fills them from
//! a list/watch of the API server; tests use a table.

use std::net::IpAddr;

/// The Kubernetes identity of a local process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodIdentity {
    /// OpenTelemetry resource attributes, in this order when present:
    /// `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name`,
    /// `k8s.node.name`, `k8s.replicaset.name`, `k8s.deployment.name`,
    /// `k8s.statefulset.name`, `k8s.daemonset.name`, `k8s.job.name`,
    /// `k8s.cronjob.name`.
    pub attributes: Vec<(&'static str, String)>,
    /// A suggested `service.name`: the workload's name (Deployment, then the
    /// ReplicaSet's other owner, StatefulSet, DaemonSet, CronJob, Job,
    /// ReplicaSet), else the pod's name.
    pub service_name: String,
    /// A suggested `service.namespace`: the pod's namespace.
    pub service_namespace: String,
}

impl PodIdentity {
    /// The value of one attribute, such as `"k8s.deployment.name"`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a remote address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// A pod's IP (`status.podIPs`), named by its workload.
    Pod,
    /// A Service's ClusterIP (`spec.clusterIPs`), named by the Service.
    Service,
}

/// The service name of a remote address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The workload name (as [`PodIdentity::service_name`]) or the Service name.
    pub name: String,
    pub namespace: String,
    pub kind: PeerKind,
}

/// Where Kubernetes identities come from.
pub trait KubeLookup: Send + Sync {
    /// The pod and container of a process, from the text of its
    /// `/proc/<pid>/cgroup`; `None` outside any pod or for a pod not yet known.
    fn for_cgroup(&self, proc_cgroup_text: &str) -> Option<PodIdentity>;
    /// The workload of a pod IP or the Service of a ClusterIP.
    fn for_ip(&self, ip: IpAddr) -> Option<PeerIdentity>;
    /// True when the cgroup text names a pod (known or not): such a process
    /// is worth asking about again once the pod is listed.
    fn is_pod_cgroup(&self, proc_cgroup_text: &str) -> bool;
}

/// Where reverse-DNS names of remote peers come from (`service.reverse_dns`;
/// the `reverse-dns` crate, adapted by the agent). Must never block: a name
/// not yet known is `None` now and may be known for a later span.
pub trait ReverseDnsLookup: Send {
    fn name_of(&self, ip: IpAddr) -> Option<std::sync::Arc<str>>;
}
