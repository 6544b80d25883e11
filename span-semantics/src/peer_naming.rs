//! `service.peer.name`: who is at the other end of a connection, from four
//! sources, first answer wins:
//!
//! 1. a process on this host (its `service.name`), found through
//!    [`LocalPeers`];
//! 2. the `service.peers` rules (CIDR and/or port, [`PeerNames`]);
//! 3. Kubernetes: the workload of a pod IP or the Service of a ClusterIP
//!    ([`KubeLookup`]);
//! 4. reverse DNS ([`ReverseDnsLookup`]), never for loopback or unspecified
//!    addresses.
//!
//! A new source of peer identity is one more step here. It never blocks: the
//! Kubernetes and reverse-DNS lookups answer from what they already hold.

use conn_tracker::ConnInfo;
use span_model::AttrValue;
use std::sync::Arc;

use crate::identity::{KubeLookup, ReverseDnsLookup};
use crate::local_peers::LocalPeers;
use crate::peers::{canonical, PeerNames};
use crate::process_table::ProcessTable;

/// The sources of peer names other than the local processes; see the module
/// docs.
pub struct PeerNaming {
    rules: PeerNames,
    kube: Option<Arc<dyn KubeLookup>>,
    reverse_dns: Option<Box<dyn ReverseDnsLookup>>,
}

impl PeerNaming {
    pub fn new(
        rules: PeerNames,
        kube: Option<Arc<dyn KubeLookup>>,
        reverse_dns: Option<Box<dyn ReverseDnsLookup>>,
    ) -> Self {
        Self {
            rules,
            kube,
            reverse_dns,
        }
    }

    /// Peers not otherwise named are named by reverse DNS (None: off).
    pub fn set_reverse_dns(&mut self, lookup: Option<Box<dyn ReverseDnsLookup>>) {
        self.reverse_dns = lookup;
    }

    /// The `service.peer.name` of `conn`'s other end, if any source knows it.
    /// A peer process on this host that is not named yet (it started before
    /// the agent and its own span comes later) is loaded now rather than left
    /// out.
    pub fn peer_of(
        &self,
        conn: &ConnInfo,
        local_peers: &LocalPeers,
        processes: &mut ProcessTable,
    ) -> Option<AttrValue> {
        let local_peer = local_peers
            .other_end(conn.local, conn.remote)
            .map(|k| AttrValue::Shared(processes.get_or_load(k.tgid).service_name.clone()));
        local_peer
            .or_else(|| {
                self.rules
                    .lookup(conn.remote.ip, conn.remote.port)
                    .map(|name| AttrValue::Owned(name.into()))
            })
            .or_else(|| {
                let kube = self.kube.as_ref()?;
                kube.for_ip(conn.remote.ip)
                    .map(|p| AttrValue::Owned(p.name.into_boxed_str()))
            })
            .or_else(|| {
                // Never blocks: a name not yet known is looked up in the
                // background for the next span.
                let ip = canonical(conn.remote.ip);
                if ip.is_loopback() || ip.is_unspecified() {
                    return None;
                }
                self.reverse_dns
                    .as_ref()?
                    .name_of(ip)
                    .map(AttrValue::Shared)
            })
    }
}
