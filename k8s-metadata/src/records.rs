//! The small records kept per object, made from decoded API objects: only what
//! the lookups need, with IP addresses parsed and container IDs stripped of their
//! runtime prefix.

use crate::objects::{controller_owner, ContainerStatus, Pod, ReplicaSet, Service};
use std::net::IpAddr;

/// The resources watched. The index is the position in [`Resource::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Pods,
    Services,
    ReplicaSets,
}

impl Resource {
    pub(crate) const ALL: [Resource; 3] =
        [Resource::Pods, Resource::Services, Resource::ReplicaSets];

    /// The metric label and log name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Services => "services",
            Resource::ReplicaSets => "replicasets",
        }
    }

    /// The cluster-wide collection path.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Resource::Pods => "/api/v1/pods",
            Resource::Services => "/api/v1/services",
            Resource::ReplicaSets => "/apis/apps/v1/replicasets",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A pod's controlling owner, for the kinds that name a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PodOwner {
    ReplicaSet(String),
    StatefulSet(String),
    DaemonSet(String),
    Job(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node_name: String,
    /// Empty for host-network pods (they share the node's address) and for pods
    /// that have finished (their address may already belong to another pod).
    pub ips: Vec<IpAddr>,
    /// (container ID without the `runtime://` prefix, container name).
    pub containers: Vec<(String, String)>,
    pub owner: Option<PodOwner>,
    pub pod_template_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceRecord {
    pub namespace: String,
    pub name: String,
    /// Empty for headless (`None`) and ExternalName services.
    pub ips: Vec<IpAddr>,
}

/// Only ReplicaSets that have, or want, pods are kept: the ten old revisions
/// a Deployment keeps at zero replicas are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplicaSetRecord {
    pub namespace: String,
    pub name: String,
    /// The controlling owner's (kind, name), such as ("Deployment", "web").
    pub owner: Option<(String, String)>,
}

/// What one decoded object means for the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Upsert(Record),
    /// Forget the object with this key if it is stored.
    Remove(Resource, String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Pod(PodRecord),
    Service(ServiceRecord),
    ReplicaSet(ReplicaSetRecord),
}

impl Record {
    pub(crate) fn resource(&self) -> Resource {
        match self {
            Record::Pod(_) => Resource::Pods,
            Record::Service(_) => Resource::Services,
            Record::ReplicaSet(_) => Resource::ReplicaSets,
        }
    }

    pub(crate) fn key(&self) -> String {
        match self {
            Record::Pod(p) => p.uid.clone(),
            Record::Service(s) => namespaced_key(&s.namespace, &s.name),
            Record::ReplicaSet(r) => namespaced_key(&r.namespace, &r.name),
        }
    }
}

pub(crate) fn namespaced_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

// === From API objects ===

pub(crate) fn pod_change(pod: Pod) -> Change {
    let Pod {
        metadata,
        spec,
        status,
    } = pod;
    if metadata.uid.is_empty() {
        return Change::Remove(Resource::Pods, String::new());
    }
    let finished = matches!(status.phase.as_str(), "Succeeded" | "Failed");
    let mut ips = Vec::new();
    if !spec.host_network && !finished {
        let listed = status.pod_ips.iter().map(|p| p.ip.as_str());
        let all = std::iter::once(status.pod_ip.as_str()).chain(listed);
        for ip in all.filter_map(|s| s.parse::<IpAddr>().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    let containers = [
        status.container_statuses,
        status.init_container_statuses,
        status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .filter_map(container_entry)
    .collect();
    let owner = controller_owner(&metadata.owner_references).and_then(|o| {
        let name = o.name.clone();
        match o.kind.as_str() {
            "ReplicaSet" => Some(PodOwner::ReplicaSet(name)),
            "StatefulSet" => Some(PodOwner::StatefulSet(name)),
            "DaemonSet" => Some(PodOwner::DaemonSet(name)),
            "Job" => Some(PodOwner::Job(name)),
            _ => None,
        }
    });
    Change::Upsert(Record::Pod(PodRecord {
        uid: metadata.uid,
        namespace: metadata.namespace,
        name: metadata.name,
        node_name: spec.node_name,
        ips,
        containers,
        owner,
        pod_template_hash: metadata.labels.pod_template_hash,
    }))
}

/// `containerd://<id>` → (`<id>`, name). Not started yet (no ID): skipped.
fn container_entry(status: ContainerStatus) -> Option<(String, String)> {
    let id = match status.container_id.split_once("://") {
        Some((_, id)) => id,
        None => status.container_id.as_str(),
    };
    (!id.is_empty()).then(|| (id.to_string(), status.name))
}

pub(crate) fn service_change(service: Service) -> Change {
    let Service { metadata, spec } = service;
    let mut ips = Vec::new();
    let all = std::iter::once(spec.cluster_ip.as_str())
        .chain(spec.cluster_ips.iter().map(String::as_str));
    // "None" (headless) and "" (ExternalName) do not parse.
    for ip in all.filter_map(|s| s.parse::<IpAddr>().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Change::Upsert(Record::Service(ServiceRecord {
        namespace: metadata.namespace,
        name: metadata.name,
        ips,
    }))
}

pub(crate) fn replicaset_change(rs: ReplicaSet) -> Change {
    let wanted = rs.spec.replicas.unwrap_or(1);
    if wanted == 0 && rs.status.replicas == 0 {
        return Change::Remove(
            Resource::ReplicaSets,
            namespaced_key(&rs.metadata.namespace, &rs.metadata.name),
        );
    }
    let owner =
        controller_owner(&rs.metadata.owner_references).map(|o| (o.kind.clone(), o.name.clone()));
    Change::Upsert(Record::ReplicaSet(ReplicaSetRecord {
        namespace: rs.metadata.namespace,
        name: rs.metadata.name,
        owner,
    }))
}

/// The key of a deleted object.
pub(crate) fn change_key(change: &Change) -> (Resource, String) {
    match change {
        Change::Upsert(record) => (record.resource(), record.key()),
        Change::Remove(resource, key) => (*resource, key.clone()),
    }
}
