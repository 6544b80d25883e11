//! What a lookup returns: a process's pod and workload as OpenTelemetry `k8s.*`
//! resource attributes, and a remote address's service name. Workloads are
//! resolved from the pod's controlling owner when the lookup is made, so a
//! ReplicaSet seen after its pod still names the Deployment.

use crate::cgroup::CgroupRef;
use crate::records::{namespaced_key, PodOwner, PodRecord};
use crate::store::Store;
use std::net::IpAddr;

pub use span_semantics::identity::{PeerIdentity, PeerKind, PodIdentity};

/// A pod's workload, as far as its owners say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Workload {
    pub replicaset: Option<String>,
    pub deployment: Option<String>,
    /// A ReplicaSet's controller that is not a Deployment (an Argo Rollout…).
    pub replicaset_owner: Option<String>,
    pub statefulset: Option<String>,
    pub daemonset: Option<String>,
    pub job: Option<String>,
    pub cronjob: Option<String>,
}

impl Workload {
    pub(crate) fn service_name<'a>(&'a self, pod_name: &'a str) -> &'a str {
        [
            &self.deployment,
            &self.replicaset_owner,
            &self.statefulset,
            &self.daemonset,
            &self.cronjob,
            &self.job,
            &self.replicaset,
        ]
        .into_iter()
        .find_map(|n| n.as_deref())
        .unwrap_or(pod_name)
    }
}

pub(crate) fn workload(store: &Store, pod: &PodRecord) -> Workload {
    let mut w = Workload::default();
    match &pod.owner {
        None => {}
        Some(PodOwner::ReplicaSet(rs)) => {
            w.replicaset = Some(rs.clone());
            match store.replicaset(&namespaced_key(&pod.namespace, rs)) {
                Some(record) => match &record.owner {
                    Some((kind, name)) if kind == "Deployment" => w.deployment = Some(name.clone()),
                    Some((_, name)) => w.replicaset_owner = Some(name.clone()),
                    None => {}
                },
                // Not watched (or not seen yet): a Deployment names its
                // ReplicaSets `<deployment>-<pod-template-hash>`.
                None => {
                    w.deployment = pod
                        .pod_template_hash
                        .as_deref()
                        .and_then(|hash| rs.strip_suffix(hash)?.strip_suffix('-'))
                        .filter(|d| !d.is_empty())
                        .map(str::to_string)
                }
            }
        }
        Some(PodOwner::StatefulSet(n)) => w.statefulset = Some(n.clone()),
        Some(PodOwner::DaemonSet(n)) => w.daemonset = Some(n.clone()),
        Some(PodOwner::Job(n)) => {
            w.job = Some(n.clone());
            w.cronjob = cronjob_of_job(n).map(str::to_string);
        }
    }
    w
}

/// The CronJob controller names its Jobs `<cronjob>-<scheduled time in minutes
/// since the epoch>`: eight digits or more until the year 2160. A Job named
/// like that by hand is taken for a CronJob's too (a heuristic: Jobs are not
/// watched).
pub(crate) fn cronjob_of_job(job: &str) -> Option<&str> {
    let (base, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()) && !base.is_empty())
        .then_some(base)
}

pub(crate) fn pod_identity(
    store: &Store,
    pod: &PodRecord,
    container_id: Option<&str>,
) -> PodIdentity {
    let w = workload(store, pod);
    let mut attributes = vec![
        ("k8s.namespace.name", pod.namespace.clone()),
        ("k8s.pod.name", pod.name.clone()),
        ("k8s.pod.uid", pod.uid.clone()),
    ];
    if let Some(id) = container_id {
        if let Some((_, name)) = pod.containers.iter().find(|(c, _)| c == id) {
            attributes.push(("k8s.container.name", name.clone()));
        }
    }
    if !pod.node_name.is_empty() {
        attributes.push(("k8s.node.name", pod.node_name.clone()));
    }
    for (key, value) in [
        ("k8s.replicaset.name", &w.replicaset),
        ("k8s.deployment.name", &w.deployment),
        ("k8s.statefulset.name", &w.statefulset),
        ("k8s.daemonset.name", &w.daemonset),
        ("k8s.job.name", &w.job),
        ("k8s.cronjob.name", &w.cronjob),
    ] {
        if let Some(v) = value {
            attributes.push((key, v.clone()));
        }
    }
    PodIdentity {
        service_name: w.service_name(&pod.name).to_string(),
        service_namespace: pod.namespace.clone(),
        attributes,
    }
}

/// The pod a cgroup names: by container ID first (it also finds static pods,
/// whose cgroup carries the kubelet's hash instead of the mirror pod's UID),
/// then by pod UID.
pub(crate) fn for_cgroup(store: &Store, cgroup: &CgroupRef) -> Option<PodIdentity> {
    let id = cgroup.container_id.as_deref();
    let pod = id
        .and_then(|id| store.pod_by_container(id))
        .or_else(|| store.pod_by_uid(cgroup.pod_uid.as_deref()?))?;
    Some(pod_identity(store, pod, id))
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

pub(crate) fn for_ip(store: &Store, ip: IpAddr) -> Option<PeerIdentity> {
    let ip = canonical(ip);
    if let Some(pod) = store.pod_by_ip(&ip) {
        let w = workload(store, pod);
        return Some(PeerIdentity {
            name: w.service_name(&pod.name).to_string(),
            namespace: pod.namespace.clone(),
            kind: PeerKind::Pod,
        });
    }
    let service = store.service_by_ip(&ip)?;
    Some(PeerIdentity {
        name: service.name.clone(),
        namespace: service.namespace.clone(),
        kind: PeerKind::Service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Change, Record, ReplicaSetRecord};

    fn pod(owner: Option<PodOwner>, hash: Option<&str>) -> PodRecord {
        PodRecord {
            uid: "u1".into(),
            namespace: "shop".into(),
            name: "web-7d4b9c8f6-x2x9q".into(),
            node_name: "node-1".into(),
            ips: vec!["10.1.0.7".parse().expect("ip")],
            containers: vec![("abc".into(), "nginx".into())],
            owner,
            pod_template_hash: hash.map(str::to_string),
        }
    }

    #[test]
    fn replicaset_owner_from_watched_replicaset() {
        let mut store = Store::new(10);
        store.apply(Change::Upsert(Record::ReplicaSet(ReplicaSetRecord {
            namespace: "shop".into(),
            name: "web-7d4b9c8f6".into(),
            owner: Some(("Deployment".into(), "web".into())),
        })));
        let p = pod(Some(PodOwner::ReplicaSet("web-7d4b9c8f6".into())), None);
        let id = pod_identity(&store, &p, Some("abc"));
        assert_eq!(
            id.attributes,
            vec![
                ("k8s.namespace.name", "shop".to_string()),
                ("k8s.pod.name", "web-7d4b9c8f6-x2x9q".to_string()),
                ("k8s.pod.uid", "u1".to_string()),
                ("k8s.container.name", "nginx".to_string()),
                ("k8s.node.name", "node-1".to_string()),
                ("k8s.replicaset.name", "web-7d4b9c8f6".to_string()),
                ("k8s.deployment.name", "web".to_string()),
            ]
        );
        assert_eq!(id.service_name, "web");
        assert_eq!(id.service_namespace, "shop");
    }

    #[test]
    fn replicaset_with_other_controller_or_none() {
        let mut store = Store::new(10);
        store.apply(Change::Upsert(Record::ReplicaSet(ReplicaSetRecord {
            namespace: "shop".into(),
            name: "web-7d4b9c8f6".into(),
            owner: Some(("Rollout".into(), "web-rollout".into())),
        })));
        let p = pod(
            Some(PodOwner::ReplicaSet("web-7d4b9c8f6".into())),
            Some("7d4b9c8f6"),
        );
        let w = workload(&store, &p);
        assert_eq!(w.deployment, None);
        assert_eq!(w.service_name(&p.name), "web-rollout");

        store.apply(Change::Upsert(Record::ReplicaSet(ReplicaSetRecord {
            namespace: "shop".into(),
            name: "web-7d4b9c8f6".into(),
            owner: None,
        })));
        let w = workload(&store, &p);
        assert_eq!(w.deployment, None);
        assert_eq!(w.service_name(&p.name), "web-7d4b9c8f6");
    }

    #[test]
    fn deployment_from_pod_template_hash_when_replicaset_unknown() {
        let store = Store::new(10);
        let p = pod(
            Some(PodOwner::ReplicaSet("web-7d4b9c8f6".into())),
            Some("7d4b9c8f6"),
        );
        assert_eq!(workload(&store, &p).deployment.as_deref(), Some("web"));
        // Hash label that does not match the name: no guess.
        let p = pod(
            Some(PodOwner::ReplicaSet("web-7d4b9c8f6".into())),
            Some("zzz"),
        );
        assert_eq!(workload(&store, &p).deployment, None);
        assert_eq!(workload(&store, &p).service_name(&p.name), "web-7d4b9c8f6");
        // No label: no guess.
        let p = pod(Some(PodOwner::ReplicaSet("web-7d4b9c8f6".into())), None);
        assert_eq!(workload(&store, &p).deployment, None);
    }

    #[test]
    fn other_owners_and_none() {
        let store = Store::new(10);
        let cases = [
            (
                Some(PodOwner::StatefulSet("db".into())),
                "k8s.statefulset.name",
                "db",
            ),
            (
                Some(PodOwner::DaemonSet("agent".into())),
                "k8s.daemonset.name",
                "agent",
            ),
            (
                Some(PodOwner::Job("migrate".into())),
                "k8s.job.name",
                "migrate",
            ),
        ];
        for (owner, key, name) in cases {
            let id = pod_identity(&store, &pod(owner, None), None);
            assert_eq!(id.attribute(key), Some(name));
            assert_eq!(id.attribute("k8s.container.name"), None);
            assert_eq!(id.service_name, name);
        }
        let id = pod_identity(
            &store,
            &pod(Some(PodOwner::Job("backup-29412345".into())), None),
            None,
        );
        assert_eq!(id.attribute("k8s.job.name"), Some("backup-29412345"));
        assert_eq!(id.attribute("k8s.cronjob.name"), Some("backup"));
        assert_eq!(id.service_name, "backup");
        let id = pod_identity(&store, &pod(None, None), None);
        assert_eq!(id.service_name, "web-7d4b9c8f6-x2x9q");
        assert_eq!(id.attributes.len(), 4);
    }

    #[test]
    fn cronjob_heuristic() {
        assert_eq!(cronjob_of_job("backup-29412345"), Some("backup"));
        assert_eq!(
            cronjob_of_job("nightly-report-29412345"),
            Some("nightly-report")
        );
        assert_eq!(cronjob_of_job("migrate-2"), None);
        assert_eq!(cronjob_of_job("migrate"), None);
        assert_eq!(cronjob_of_job("-29412345"), None);
        assert_eq!(cronjob_of_job("x-2941234a"), None);
    }

    #[test]
    fn ip_lookup_canonicalises_mapped_ipv4() {
        let mut store = Store::new(10);
        store.apply(Change::Upsert(Record::Pod(pod(
            Some(PodOwner::StatefulSet("db".into())),
            None,
        ))));
        let mapped: IpAddr = "::ffff:10.1.0.7".parse().expect("ip");
        assert_eq!(
            for_ip(&store, mapped),
            Some(PeerIdentity {
                name: "db".into(),
                namespace: "shop".into(),
                kind: PeerKind::Pod
            })
        );
    }
}
