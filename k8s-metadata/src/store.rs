//! The in-memory store of pods, Services and ReplicaSets, with the indexes the
//! lookups use (pod by IP, pod by container ID, Service by ClusterIP), and the
//! cap on how many objects it holds.
//!
//! Writers are the watch tasks; readers are lookups. It is plain data: the
//! caller wraps it in a lock.

use crate::records::{Change, PodRecord, Record, ReplicaSetRecord, Resource, ServiceRecord};
use std::collections::HashMap;
use std::net::IpAddr;

/// What happened to an upserted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Stored,
    Removed,
    /// New, and the store was full: not stored.
    Refused,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    max_objects: usize,
    pub(crate) pods: HashMap<String, PodRecord>,
    pod_by_ip: HashMap<IpAddr, String>,
    pod_by_container: HashMap<String, String>,
    services: HashMap<String, ServiceRecord>,
    service_by_ip: HashMap<IpAddr, String>,
    pub(crate) replicasets: HashMap<String, ReplicaSetRecord>,
}

impl Store {
    pub(crate) fn new(max_objects: usize) -> Self {
        Self {
            max_objects,
            ..Self::default()
        }
    }

    pub(crate) fn len(&self, resource: Resource) -> usize {
        match resource {
            Resource::Pods => self.pods.len(),
            Resource::Services => self.services.len(),
            Resource::ReplicaSets => self.replicasets.len(),
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.pods.len() + self.services.len() + self.replicasets.len()
    }

    fn contains(&self, resource: Resource, key: &str) -> bool {
        match resource {
            Resource::Pods => self.pods.contains_key(key),
            Resource::Services => self.services.contains_key(key),
            Resource::ReplicaSets => self.replicasets.contains_key(key),
        }
    }

    /// Apply one watch event's change. An object already stored is always
    /// updated; a new one only while the store holds fewer than `max_objects`.
    pub(crate) fn apply(&mut self, change: Change) -> Applied {
        match change {
            Change::Remove(resource, key) => {
                self.remove(resource, &key);
                Applied::Removed
            }
            Change::Upsert(record) => {
                let key = record.key();
                let resource = record.resource();
                if !self.contains(resource, &key) && self.total() >= self.max_objects {
                    return Applied::Refused;
                }
                self.insert(key, record);
                Applied::Stored
            }
        }
    }

    /// Replace every object of `resource` with a fresh list's; returns how many
    /// were refused by the cap.
    pub(crate) fn replace(&mut self, resource: Resource, changes: Vec<Change>) -> usize {
        match resource {
            Resource::Pods => {
                self.pods.clear();
                self.pod_by_ip.clear();
                self.pod_by_container.clear();
            }
            Resource::Services => {
                self.services.clear();
                self.service_by_ip.clear();
            }
            Resource::ReplicaSets => self.replicasets.clear(),
        }
        let mut refused = 0;
        for change in changes {
            if matches!(change, Change::Upsert(ref r) if r.resource() == resource)
                && self.apply(change) == Applied::Refused
            {
                refused += 1;
            }
        }
        refused
    }

    /// Exchange `resource`'s objects and indexes with `other`'s: a list is
    /// built into a fresh store without the lock, then swapped in.
    pub(crate) fn swap_resource(&mut self, resource: Resource, other: &mut Store) {
        use std::mem::swap;
        match resource {
            Resource::Pods => {
                swap(&mut self.pods, &mut other.pods);
                swap(&mut self.pod_by_ip, &mut other.pod_by_ip);
                swap(&mut self.pod_by_container, &mut other.pod_by_container);
            }
            Resource::Services => {
                swap(&mut self.services, &mut other.services);
                swap(&mut self.service_by_ip, &mut other.service_by_ip);
            }
            Resource::ReplicaSets => swap(&mut self.replicasets, &mut other.replicasets),
        }
    }

    /// Forget objects of `resource` past the first `keep`; returns how many.
    pub(crate) fn trim(&mut self, resource: Resource, keep: usize) -> usize {
        let excess: Vec<String> = match resource {
            Resource::Pods => self.pods.keys().skip(keep).cloned().collect(),
            Resource::Services => self.services.keys().skip(keep).cloned().collect(),
            Resource::ReplicaSets => self.replicasets.keys().skip(keep).cloned().collect(),
        };
        for key in &excess {
            self.remove(resource, key);
        }
        excess.len()
    }

    fn insert(&mut self, key: String, record: Record) {
        self.remove(record.resource(), &key);
        match record {
            Record::Pod(pod) => {
                for ip in &pod.ips {
                    self.pod_by_ip.insert(*ip, key.clone());
                }
                for (id, _) in &pod.containers {
                    self.pod_by_container.insert(id.clone(), key.clone());
                }
                self.pods.insert(key, pod);
            }
            Record::Service(service) => {
                for ip in &service.ips {
                    self.service_by_ip.insert(*ip, key.clone());
                }
                self.services.insert(key, service);
            }
            Record::ReplicaSet(rs) => {
                self.replicasets.insert(key, rs);
            }
        }
    }

    fn remove(&mut self, resource: Resource, key: &str) {
        match resource {
            Resource::Pods => {
                if let Some(pod) = self.pods.remove(key) {
                    // An IP or container may already point at a newer pod.
                    for ip in &pod.ips {
                        remove_if(&mut self.pod_by_ip, ip, key);
                    }
                    for (id, _) in &pod.containers {
                        remove_if(&mut self.pod_by_container, id, key);
                    }
                }
            }
            Resource::Services => {
                if let Some(service) = self.services.remove(key) {
                    for ip in &service.ips {
                        remove_if(&mut self.service_by_ip, ip, key);
                    }
                }
            }
            Resource::ReplicaSets => {
                self.replicasets.remove(key);
            }
        }
    }

    // === Lookups ===

    pub(crate) fn pod_by_uid(&self, uid: &str) -> Option<&PodRecord> {
        self.pods.get(uid)
    }

    pub(crate) fn pod_by_container(&self, container_id: &str) -> Option<&PodRecord> {
        self.pods.get(self.pod_by_container.get(container_id)?)
    }

    pub(crate) fn pod_by_ip(&self, ip: &IpAddr) -> Option<&PodRecord> {
        self.pods.get(self.pod_by_ip.get(ip)?)
    }

    pub(crate) fn service_by_ip(&self, ip: &IpAddr) -> Option<&ServiceRecord> {
        self.services.get(self.service_by_ip.get(ip)?)
    }

    pub(crate) fn replicaset(&self, key: &str) -> Option<&ReplicaSetRecord> {
        self.replicasets.get(key)
    }
}

fn remove_if<K: std::hash::Hash + Eq>(index: &mut HashMap<K, String>, k: &K, owner: &str) {
    if index.get(k).is_some_and(|v| v == owner) {
        index.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, ip: &str, container: &str) -> Change {
        Change::Upsert(Record::Pod(PodRecord {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
            node_name: "node-1".into(),
            ips: vec![ip.parse().expect("test ip")],
            containers: vec![(container.into(), "app".into())],
            owner: None,
            pod_template_hash: None,
        }))
    }

    fn service(name: &str, ip: &str) -> Change {
        Change::Upsert(Record::Service(ServiceRecord {
            namespace: "ns".into(),
            name: name.into(),
            ips: vec![ip.parse().expect("test ip")],
        }))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn cap_refuses_new_objects_but_updates_stored_ones() {
        let mut store = Store::new(2);
        assert_eq!(store.apply(pod("a", "10.0.0.1", "c1")), Applied::Stored);
        assert_eq!(store.apply(service("s", "10.96.0.1")), Applied::Stored);
        assert_eq!(store.apply(pod("b", "10.0.0.2", "c2")), Applied::Refused);
        assert!(store.pod_by_ip(&ip("10.0.0.2")).is_none());
        // Updating "a" (new IP) is allowed at the cap.
        assert_eq!(store.apply(pod("a", "10.0.0.9", "c1")), Applied::Stored);
        assert!(store.pod_by_ip(&ip("10.0.0.1")).is_none());
        assert_eq!(
            store.pod_by_ip(&ip("10.0.0.9")).map(|p| p.uid.as_str()),
            Some("a")
        );
        store.apply(Change::Remove(Resource::Services, "ns/s".into()));
        assert_eq!(store.apply(pod("b", "10.0.0.2", "c2")), Applied::Stored);
        assert_eq!(store.len(Resource::Pods), 2);
    }

    #[test]
    fn reused_ip_stays_with_the_newer_pod_when_the_older_is_deleted() {
        let mut store = Store::new(10);
        store.apply(pod("old", "10.0.0.1", "c1"));
        store.apply(pod("new", "10.0.0.1", "c2"));
        store.apply(Change::Remove(Resource::Pods, "old".into()));
        assert_eq!(
            store.pod_by_ip(&ip("10.0.0.1")).map(|p| p.uid.as_str()),
            Some("new")
        );
        assert_eq!(
            store.pod_by_container("c2").map(|p| p.uid.as_str()),
            Some("new")
        );
        assert!(store.pod_by_container("c1").is_none());
    }

    #[test]
    fn replace_swaps_one_resource_and_counts_refusals() {
        let mut store = Store::new(3);
        store.apply(service("s", "10.96.0.1"));
        store.apply(pod("gone", "10.0.0.5", "c5"));
        let refused = store.replace(
            Resource::Pods,
            vec![
                pod("a", "10.0.0.1", "c1"),
                pod("b", "10.0.0.2", "c2"),
                pod("c", "10.0.0.3", "c3"),
            ],
        );
        assert_eq!(refused, 1);
        assert_eq!(store.len(Resource::Pods), 2);
        assert_eq!(store.len(Resource::Services), 1);
        assert!(store.pod_by_ip(&ip("10.0.0.5")).is_none());
        assert!(store.pod_by_ip(&ip("10.0.0.3")).is_none());
        assert_eq!(
            store
                .service_by_ip(&ip("10.96.0.1"))
                .map(|s| s.name.as_str()),
            Some("s")
        );
    }

    #[test]
    fn swap_and_trim_move_one_resource() {
        let mut live = Store::new(10);
        live.apply(service("s", "10.96.0.1"));
        live.apply(pod("old", "10.0.0.9", "c9"));
        let mut fresh = Store::new(10);
        fresh.apply(pod("a", "10.0.0.1", "c1"));
        fresh.apply(pod("b", "10.0.0.2", "c2"));
        fresh.apply(service("ignored", "10.96.0.2"));
        assert_eq!(fresh.trim(Resource::Pods, 1), 1);
        live.swap_resource(Resource::Pods, &mut fresh);
        assert_eq!(live.len(Resource::Pods), 1);
        assert_eq!(live.len(Resource::Services), 1);
        assert!(live.pod_by_ip(&ip("10.0.0.9")).is_none());
        assert!(live.service_by_ip(&ip("10.96.0.2")).is_none());
        let kept = live.pods.keys().next().cloned().expect("one pod");
        let container = if kept == "a" { "c1" } else { "c2" };
        assert_eq!(
            live.pod_by_container(container).map(|p| p.uid.clone()),
            Some(kept)
        );
        // The old pod went to the fresh store, to be dropped outside the lock.
        assert_eq!(
            fresh.pod_by_container("c9").map(|p| p.uid.as_str()),
            Some("old")
        );
    }
}
