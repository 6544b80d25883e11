//! The few fields of Kubernetes API objects that wirespan reads, as serde structs
//! that ignore everything else, and the watch event envelope.
//!
//! Every field has a default, so an object missing a field (or a BOOKMARK, whose
//! object carries only `metadata.resourceVersion`) still decodes.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub owner_references: Vec<OwnerReference>,
    pub labels: PodLabels,
}

/// Only the label the workload heuristics need.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PodLabels {
    #[serde(rename = "pod-template-hash")]
    pub pod_template_hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OwnerReference {
    pub kind: String,
    pub name: String,
    pub controller: Option<bool>,
}

/// The controlling owner (`controller: true`), else the first owner.
pub(crate) fn controller_owner(owners: &[OwnerReference]) -> Option<&OwnerReference> {
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())
}

// === Pod ===

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PodSpec {
    pub node_name: String,
    pub host_network: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PodStatus {
    pub phase: String,
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    #[serde(rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    pub container_statuses: Vec<ContainerStatus>,
    pub init_container_statuses: Vec<ContainerStatus>,
    pub ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PodIp {
    pub ip: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ContainerStatus {
    pub name: String,
    /// `containerd://<id>`, `docker://<id>`, `cri-o://<id>`; empty until started.
    #[serde(rename = "containerID")]
    pub container_id: String,
}

// === Service ===

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ServiceSpec {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
}

// === ReplicaSet ===

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReplicaSet {
    pub metadata: ObjectMeta,
    pub spec: ReplicaSetSpec,
    pub status: ReplicaSetStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReplicaSetSpec {
    pub replicas: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReplicaSetStatus {
    pub replicas: i64,
}

// === Lists, watch events, Status ===

/// `PodList`, `ServiceList`, `ReplicaSetList`: one page.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub(crate) struct List<T> {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    pub items: Vec<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ListMeta {
    pub resource_version: String,
    #[serde(rename = "continue")]
    pub continue_token: String,
}

/// One line of a watch stream, with the object left undecoded until its type
/// says what it is (an object, or a `Status` for ERROR).
#[derive(Debug, Deserialize)]
pub(crate) struct RawWatchEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(borrow)]
    pub object: &'a RawValue,
}

/// `metav1.Status`, the body of an error response and of an ERROR event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// The object's `metadata.resourceVersion` alone (BOOKMARK events).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MetadataOnly {
    pub metadata: ObjectMeta,
}
