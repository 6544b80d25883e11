//! One span per exchange, with everything that gives it meaning beyond the
//! exchange itself: the process it belongs to, the peer at the other end
//! (`peer_naming`, through the local sockets of `local_peers`), same-host
//! links, in-process causality and sampling. The pipeline tells it what
//! happened (connections opened and closed, processes started and ended,
//! request heads seen, bytes written) and hands it each exchange; it passes
//! the span on, or says that sampling left it out.
//!
//! It does not touch records, the connection table, the kernel or the export
//! queue, and counts nothing itself except through `causality`: the pipeline
//! counts what it sends on.

use conn_tracker::{ConnId, ConnInfo, ConnKey, MonotonicNs, Role};
use protocol_parsers::{HttpExchange, RequestHead};
use self_metrics::Registry;
use span_model::ExportSpan;
use std::sync::Arc;
use wirespan_config::ServiceRule;

use crate::causality::Causality;
use crate::host::HostFacts;
use crate::identity::{KubeLookup, ReverseDnsLookup};
use crate::links::ConnectionLinks;
use crate::local_peers::{AddressPair, LocalPeers};
use crate::peer_naming::PeerNaming;
use crate::peers::PeerNames;
use crate::process_table::{ProcessFacts, ProcessIdentity, ProcessTable};
use crate::span_builder::{parse_traceparent, FixedIds, SpanBuilder, SpanContext};
use crate::tls_twin::TLS_FD_BIT;

/// What a [`SpanComposer`] is made from.
pub struct ComposerSettings {
    /// Added to monotonic timestamps to get Unix-epoch nanoseconds.
    pub clock_offset_ns: i64,
    /// `service.rules`.
    pub service_rules: Vec<ServiceRule>,
    /// What is taken from the host (name, resource attributes, `/proc`).
    pub host: HostFacts,
    /// `service.peers`.
    pub peer_rules: PeerNames,
    /// Kubernetes metadata (`kubernetes`), already started; None: off.
    pub kube: Option<Arc<dyn KubeLookup>>,
    /// Share of traces kept (see `export.sample_ratio`).
    pub sample_ratio: f64,
    /// In-process causality (see `traces.in_process_parents`).
    pub in_process_parents: bool,
    pub span_builder: SpanBuilder,
}

/// See the module docs.
pub struct SpanComposer {
    processes: ProcessTable,
    spans: SpanBuilder,
    clock_offset_ns: i64,
    local_peers: LocalPeers,
    naming: PeerNaming,
    links: ConnectionLinks,
    sample_ratio: f64,
    causality: Option<Causality>,
}

impl SpanComposer {
    /// Registers the causality counters in `registry` (when it is on).
    pub fn new(mut settings: ComposerSettings, registry: &Registry) -> Self {
        let links = ConnectionLinks::new(settings.span_builder.fork_ids());
        let host = settings.host;
        let mut processes = ProcessTable::new(settings.service_rules, host.host_name)
            .with_host_attributes(host.resource_attributes);
        if let Some(kube) = &settings.kube {
            processes = processes.with_kubernetes(kube.clone());
        }
        if !host.read_proc {
            processes = processes.without_proc();
        }
        Self {
            processes,
            spans: settings.span_builder,
            clock_offset_ns: settings.clock_offset_ns,
            local_peers: LocalPeers::registered(registry),
            naming: PeerNaming::new(settings.peer_rules, settings.kube, None),
            links,
            sample_ratio: settings.sample_ratio,
            causality: settings
                .in_process_parents
                .then(|| Causality::new(registry)),
        }
    }

    /// Peers not otherwise named are named by reverse DNS.
    pub fn with_reverse_dns(mut self, lookup: Option<Box<dyn ReverseDnsLookup>>) -> Self {
        self.naming.set_reverse_dns(lookup);
        self
    }

    // === exchanges ===

    /// Builds the span of `exchange` on `conn` and hands it to `keep`, unless
    /// sampling leaves it out (`export.sample_ratio` or the caller's
    /// traceparent): then it returns false. (A callback rather than a
    /// returned value, so the span is not copied once more on its way.)
    #[inline]
    pub fn exchange(
        &mut self,
        conn: &ConnInfo,
        exchange: &HttpExchange,
        keep: impl FnOnce(ExportSpan),
    ) -> bool {
        let process = self.processes.get_or_load(conn.key.tgid);
        let peer = self
            .naming
            .peer_of(conn, &self.local_peers, &mut self.processes);
        // Ids fixed ahead (in-process causality) make the link ids moot.
        let fixed = self.causality.as_mut().and_then(|c| {
            c.take_ids(
                conn.role == Role::Server,
                ConnId(conn.conn_id),
                exchange.ordinal,
            )
        });
        let link = match fixed {
            Some(_) => None,
            None => self.links.ids_for(conn, exchange),
        };
        let ctx = SpanContext {
            conn,
            process: &process,
            peer_service: peer,
            clock_offset_ns: self.clock_offset_ns,
            scheme: if conn.key.fd & TLS_FD_BIT != 0 {
                "https"
            } else {
                "http"
            },
            link,
            fixed,
        };
        let span = self.spans.build(&ctx, exchange);
        let kept =
            crate::sampling::keep_span(&span, exchange, ctx.fixed.as_ref(), self.sample_ratio);
        if kept {
            keep(span);
        }
        kept
    }

    /// Thread `tid` completed the head of request `ordinal` on `conn`: the
    /// in-process causality glue. A server request is remembered as served by
    /// the thread; a client request sent while the thread serves exactly one
    /// becomes that request's child, and its ids are fixed now.
    pub fn request_started(&mut self, conn: &ConnInfo, head: &RequestHead, ordinal: u64, tid: u32) {
        let Some(causality) = self.causality.as_mut() else {
            return;
        };
        match conn.role {
            Role::Server => {
                let parent = head.traceparent().and_then(parse_traceparent);
                let link = self.links.ids_for_request(conn, head, ordinal);
                let conn_id = ConnId(conn.conn_id);
                causality.server_request(tid, conn.key.tgid, conn_id, ordinal, parent, link);
            }
            Role::Client => {
                let Some(serving) = causality.serving_for(tid, conn.key.tgid) else {
                    return;
                };
                let (parent_ids, adopt) = match serving.ids {
                    Some(ids) => (ids, None),
                    None => {
                        let ids =
                            self.spans
                                .decide_ids(true, serving.parent.as_ref(), serving.link);
                        serving.ids = Some(ids);
                        (ids, Some((serving.conn_id(), serving.ordinal())))
                    }
                };
                if let Some((conn_id, ordinal)) = adopt {
                    causality.adopt(conn_id, ordinal, parent_ids);
                }
                // A same-host server at the other end joins this trace too.
                let link = self.links.ids_for_request(conn, head, ordinal);
                if link.is_some() {
                    self.links.inherit(conn, ordinal, parent_ids.trace_id);
                }
                causality.link_outbound(
                    ConnId(conn.conn_id),
                    ordinal,
                    FixedIds {
                        trace_id: parent_ids.trace_id,
                        span_id: link.map(|l| l.client_span_id),
                        parent_span_id: parent_ids.span_id,
                        sampled: parent_ids.sampled,
                    },
                );
            }
            Role::Unknown => {}
        }
    }

    /// Something was written on connection `conn_id`.
    #[inline]
    pub fn wrote(&mut self, conn_id: ConnId) {
        if let Some(c) = self.causality.as_mut() {
            c.wrote(conn_id);
        }
    }

    // === connections ===

    /// A connection was opened (its open record).
    pub fn connection_opened(&mut self, info: &ConnInfo) {
        self.local_peers.opened(info.key, info.local, info.remote);
        self.links.open(info);
    }

    /// The local socket whose own (local, remote) pair is `pair`.
    pub fn socket_at(&self, pair: AddressPair) -> Option<ConnKey> {
        self.local_peers.socket_at(pair.0, pair.1)
    }

    /// Connection `conn_id` on `key` closed at `ts`, after the connection
    /// table ended it. `tracked_pair`: its addresses, if the table held this
    /// generation.
    pub fn connection_closed(
        &mut self,
        key: ConnKey,
        conn_id: ConnId,
        tracked_pair: Option<AddressPair>,
        ts: MonotonicNs,
    ) {
        self.local_peers.closed(key, tracked_pair, ts);
        self.links.close(key, conn_id.0);
        self.connection_ended(conn_id);
    }

    /// Connection `conn_id` (a socket, or the TLS twin of one) ended: a
    /// thread no longer serves a request on it.
    pub fn connection_ended(&mut self, conn_id: ConnId) {
        if let Some(c) = self.causality.as_mut() {
            c.closed(conn_id);
        }
    }

    /// Connection `conn_id` on `key` is forgotten without ending (the agent's
    /// own traffic, already tracked): it names no peer, now.
    pub fn connection_discarded(&mut self, key: ConnKey, conn_id: ConnId) {
        self.local_peers.discarded(key);
        self.links.close(key, conn_id.0);
        self.connection_ended(conn_id);
    }

    // === processes ===

    /// A process started (its exec record).
    pub fn process_started(&mut self, facts: ProcessFacts) {
        self.processes.on_exec(facts);
    }

    /// Process `tgid` exited at `ts`, after the connection table ended its
    /// connections. Returns the fds it still had open; it and its sockets keep
    /// naming peers for the grace period.
    pub fn process_exited(&mut self, tgid: u32, ts: MonotonicNs) -> Vec<i32> {
        let fds = self.local_peers.process_exited(tgid, ts);
        self.links.close_process(tgid);
        if let Some(c) = self.causality.as_mut() {
            c.process_exited(tgid);
        }
        if let Some(p) = self.processes.get(tgid) {
            let id = p.resource.id;
            self.local_peers
                .process_ended(ts, tgid, id, &mut self.processes);
        }
        fds
    }

    /// Forgets the peers whose grace period is over at `now`.
    pub fn expire(&mut self, now: MonotonicNs) {
        self.local_peers.expire(now, &mut self.processes);
    }

    /// Processes with a known identity.
    pub fn processes(&self) -> usize {
        self.processes.len()
    }

    /// The identity of `pid`, named from `/proc` if it is not known yet.
    pub fn process_identity(&mut self, pid: u32) -> Arc<ProcessIdentity> {
        self.processes.get_or_load(pid)
    }
}
