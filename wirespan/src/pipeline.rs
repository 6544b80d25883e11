//! The user-space pipeline: probe records in, spans out. It is synchronous and
//! runs on the task that drains the ring buffer (or reads a recording), so live
//! capture and replay run exactly the same code.
//!
//! It owns the connection table, the process table and the span builder. What
//! must reach the kernel (stop copying a connection, forget an exited process's
//! sockets) is queued as [`KernelAction`]s for the live runner to apply.

use conn_tracker::{
    ConnInfo, ConnKey, ConnectionTable, Direction, Endpoint, Protocol, Role, TrackerEvent,
    TrackerLimits, TrackerSink,
};
use probes_common::{direction, origin, role};
use protocol_parsers::{HttpExchange, ParseIssue, RequestHead};
use self_metrics::{Counter, Gauge, Registry};
use span_export::{AttrValue, ExportSpan};
use std::collections::{HashMap, HashSet, VecDeque};

pub use span_semantics::tls_twin::{TLS_CONN_BIT, TLS_FD_BIT};

/// How long a closed connection and an exited process still name the peer of
/// spans built after them.
const PEER_GRACE_NS: u64 = 5_000_000_000;
use std::sync::Arc;

use probes_common::records::{decode, Record};
use span_semantics::causality::Causality;
use span_semantics::peers::PeerNames;
use span_semantics::process_table::{ProcessFacts, ProcessTable};
use span_semantics::span_builder::{parse_traceparent, FixedIds, SpanBuilder, SpanContext};

/// Where finished spans go: the export queue, or a Vec in tests and replay.
pub trait SpanOutput {
    /// False when the span was dropped (already counted by the output).
    fn send(&mut self, span: ExportSpan) -> bool;
}

impl SpanOutput for span_export::SpanQueue {
    fn send(&mut self, span: ExportSpan) -> bool {
        self.try_send(span)
    }
}

impl SpanOutput for Vec<ExportSpan> {
    fn send(&mut self, span: ExportSpan) -> bool {
        self.push(span);
        true
    }
}

/// Something the kernel side should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelAction {
    /// Stop copying this socket's bytes (still counted in the kernel).
    Mute(ConnKey),
    /// The process exited: drop its socket from the kernel's map.
    Forget(ConnKey),
}

/// Everything the pipeline is configured with.
pub struct PipelineSettings {
    pub tracker: TrackerLimits,
    /// Added to monotonic timestamps to get Unix-epoch nanoseconds.
    pub clock_offset_ns: i64,
    pub peers: PeerNames,
    pub service_rules: Vec<wirespan_config::ServiceRule>,
    pub host_name: String,
    /// The agent's own OTEL_RESOURCE_ATTRIBUTES, for every resource.
    pub host_attributes: Vec<(String, String)>,
    /// Name processes without an exec record from /proc (live capture only).
    pub read_proc: bool,
    /// Share of traces kept (see `export.sample_ratio`).
    pub sample_ratio: f64,
    /// In-process causality (see `traces.in_process_parents`).
    pub in_process_parents: bool,
    /// Peer names from reverse DNS (`service.reverse_dns`); None: off.
    pub reverse_dns: Option<reverse_dns::ReverseDnsSettings>,
    /// Kubernetes metadata (`kubernetes`), already started; None: off.
    pub kube: Option<Arc<dyn span_semantics::identity::KubeLookup>>,
    pub span_builder: SpanBuilder,
    /// The agent's own listening sockets (`metrics.listen`): connections to
    /// them are the agent's own traffic, ignored from their open record on.
    pub own_listeners: Vec<std::net::SocketAddr>,
}

/// Counters the pipeline keeps, registered once.
struct PipelineMetrics {
    registry: Registry,
    records: [Counter; 8],
    bytes: [Counter; 2],
    spans_built: [Counter; 2],
    spans_not_queued: Counter,
    sampled_out: Counter,
    connections: Gauge,
    processes: Gauge,
    by_label: HashMap<(Family, &'static str), Counter>,
}

impl PipelineMetrics {
    fn new(registry: &Registry) -> Self {
        let rec = |k: &str| {
            registry.counter(
                "wirespan_records_total",
                "Probe records received, by kind.",
                &[("kind", k)],
            )
        };
        let bytes = |d: &str| {
            registry.counter(
                "wirespan_captured_bytes_total",
                "Socket payload bytes received from the probes, by direction.",
                &[("direction", d)],
            )
        };
        let built = |k: &str| {
            registry.counter(
                "wirespan_spans_built_total",
                "Spans built from request/response pairs, by span kind.",
                &[("kind", k)],
            )
        };
        let m = Self {
            registry: registry.clone(),
            records: [
                rec("data"),
                rec("conn_open"),
                rec("conn_close"),
                rec("proc_exec"),
                rec("proc_exit"),
                rec("proc_map"),
                rec("tls_sample"),
                rec("tls_bind"),
            ],
            bytes: [bytes("egress"), bytes("ingress")],
            spans_built: [built("server"), built("client")],
            sampled_out: registry.counter(
                "wirespan_spans_sampled_out_total",
                "Spans built but left out by sampling (export.sample_ratio or the caller's traceparent).",
                &[],
            ),
            spans_not_queued: registry.counter(
                "wirespan_pipeline_spans_not_queued_total",
                "Spans the export queue refused (also counted as dropped by the exporter).",
                &[],
            ),
            connections: registry.gauge(
                "wirespan_connections",
                "Connections tracked in user space.",
                &[],
            ),
            processes: registry.gauge(
                "wirespan_processes",
                "Processes with a known identity.",
                &[],
            ),
            by_label: HashMap::new(),
        };
        // Register every reason up front so a scrape shows zeros, not absences.
        for label in TrackerEvent::LABELS {
            let _ = m.tracker_counter(label);
        }
        m
    }

    fn tracker_counter(&self, label: &str) -> Counter {
        let (name, help) = if label.ends_with("_bytes") || label == "closed_with_missing_tail" {
            (
                "wirespan_stream_bytes_not_parsed_total",
                "Stream bytes not parsed, by reason (lost, duplicated, or of an unparsed protocol).",
            )
        } else {
            (
                "wirespan_connection_events_total",
                "Connection tracker events, by reason (evictions, stale generations, upgrades).",
            )
        };
        self.registry.counter(name, help, &[("reason", label)])
    }

    fn count(&mut self, family: Family, label: &'static str, n: u64) {
        if let Some(c) = self.by_label.get(&(family, label)) {
            c.add(n);
            return;
        }
        let c = match family.series() {
            Some((name, help, key)) => self.registry.counter(name, help, &[(key, label)]),
            None => self.tracker_counter(label),
        };
        c.add(n);
        self.by_label.insert((family, label), c);
    }
}

/// Each family of things the pipeline counts by a label: its metric, help
/// text and label key, in one place. A family is a value of this type, so a
/// misspelt one cannot compile (it used to be a string, and an unknown one
/// fell silently into the record errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Family {
    /// Connection tracker events (`TrackerEvent::label`): two metrics, by label.
    Tracker,
    HpackMidstream,
    OwnTraffic,
    OwnConnections,
    /// Parser issues (`ParseIssue::label`).
    Parse,
    /// Records that could not be used.
    Record,
}

impl Family {
    /// (metric name, help, label key); `None` for `Tracker`, whose metric
    /// depends on the label.
    fn series(self) -> Option<(&'static str, &'static str, &'static str)> {
        Some(match self {
            Family::Tracker => return None,
            Family::HpackMidstream => (
                "wirespan_hpack_midstream_references_total",
                "References to HPACK dynamic-table entries on HTTP/2 connections joined midway, by result: resolved (entries inserted after the join) or unknown (from before it; those fields are left out of spans).",
                "result",
            ),
            Family::OwnTraffic => (
                "wirespan_own_traffic_bytes_total",
                "Bytes of other processes' connections to and from the agent's own sockets (metrics scrapes, probes, exports) that reached user space and were dropped without spans, by direction (to_agent, from_agent).",
                "direction",
            ),
            Family::OwnConnections => (
                "wirespan_own_traffic_connections_total",
                "Other processes' connections to and from the agent's own sockets, ignored (no spans, muted in the kernel), by how they were recognised: listen_address (at open) or agent_socket (when the agent's own end was seen).",
                "via",
            ),
            Family::Parse => (
                "wirespan_parse_issues_total",
                "Protocol parser issues, by reason (malformed, oversized, unpaired, resynchronised).",
                "reason",
            ),
            Family::Record => (
                "wirespan_record_errors_total",
                "Probe records that could not be used, by reason.",
                "reason",
            ),
        })
    }
}

/// The half of the pipeline the connection table calls back into.
struct Emitter<O: SpanOutput> {
    processes: ProcessTable,
    spans: SpanBuilder,
    output: O,
    metrics: PipelineMetrics,
    clock_offset_ns: i64,
    peers: PeerNames,
    /// Connections by (local, remote), to name a peer that is a process here.
    by_tuple: HashMap<(Endpoint, Endpoint), ConnKey, foldhash::fast::RandomState>,
    /// The tuple of each open socket, so a process exit finds its own
    /// tuples (through `keys_by_tgid`) without scanning them all.
    tuple_of: HashMap<ConnKey, (Endpoint, Endpoint), foldhash::fast::RandomState>,
    /// Tuples and processes that ended, kept for `PEER_GRACE_NS` because the
    /// other end's spans are often built just after (a server closes first,
    /// then the client reads the response).
    ended_tuples: VecDeque<(u64, (Endpoint, Endpoint), ConnKey)>,
    ended_processes: VecDeque<(u64, u32, u64)>,
    actions: Vec<KernelAction>,
    links: span_semantics::links::ConnectionLinks,
    sample_ratio: f64,
    causality: Option<Causality>,
    reverse_dns: Option<reverse_dns::ReverseDns>,
    kube: Option<Arc<dyn span_semantics::identity::KubeLookup>>,
    /// Thread of the data record being fed to the tracker, if one is.
    current_tid: Option<u32>,
}

impl<O: SpanOutput> TrackerSink for Emitter<O> {
    fn exchange(&mut self, conn: &ConnInfo, exchange: HttpExchange) {
        let process = self.processes.get_or_load(conn.key.tgid);
        // The other end: a process on this host first, else a configured name.
        // The peer's process may not be named yet (it started before the agent
        // and its own span comes later): load it now rather than leave the
        // name out.
        let peer_tgid = self
            .by_tuple
            .get(&(conn.remote, conn.local))
            .map(|k| k.tgid);
        let local_peer = peer_tgid
            .map(|tgid| AttrValue::Shared(self.processes.get_or_load(tgid).service_name.clone()));
        let peer = local_peer
            .or_else(|| {
                self.peers
                    .lookup(conn.remote.ip, conn.remote.port)
                    .map(|name| AttrValue::Owned(name.to_string()))
            })
            .or_else(|| {
                let kube = self.kube.as_ref()?;
                kube.for_ip(conn.remote.ip)
                    .map(|p| AttrValue::Owned(p.name))
            })
            .or_else(|| {
                // Never blocks: a name not yet known is looked up in the
                // background for the next span.
                let ip = span_semantics::peers::canonical(conn.remote.ip);
                if ip.is_loopback() || ip.is_unspecified() {
                    return None;
                }
                self.reverse_dns.as_ref()?.lookup(ip).map(AttrValue::Shared)
            });
        // Ids fixed ahead (in-process causality) make the link ids moot.
        let fixed = self
            .causality
            .as_mut()
            .and_then(|c| c.take_ids(conn.role == Role::Server, conn.conn_id, exchange.ordinal));
        let link = match fixed {
            Some(_) => None,
            None => self.links.ids_for(conn, &exchange),
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
        let span = self.spans.build(&ctx, &exchange);
        let kind = usize::from(conn.role != Role::Server);
        self.metrics.spans_built[kind].inc();
        if !span_semantics::sampling::keep_span(
            &span,
            &exchange,
            ctx.fixed.as_ref(),
            self.sample_ratio,
        ) {
            self.metrics.sampled_out.inc();
            return;
        }
        if !self.output.send(span) {
            self.metrics.spans_not_queued.inc();
        }
    }

    fn parse_issue(&mut self, _conn: &ConnInfo, issue: ParseIssue) {
        let n = match issue {
            ParseIssue::ResyncSkippedBytes(n) => n,
            // Not an issue: the dynamic table being learnt after a midway join.
            ParseIssue::HpackMidstreamResolved(n) => {
                self.metrics.count(Family::HpackMidstream, "resolved", n);
                return;
            }
            ParseIssue::HpackUnknownIndex => {
                self.metrics.count(Family::HpackMidstream, "unknown", 1);
                1
            }
            _ => 1,
        };
        self.metrics.count(Family::Parse, issue.label(), n);
    }

    fn tracker_event(&mut self, event: TrackerEvent) {
        self.metrics
            .count(Family::Tracker, event.label(), event.amount());
    }

    fn mute(&mut self, conn: &ConnInfo) {
        self.actions.push(KernelAction::Mute(conn.key));
    }

    fn request_started(&mut self, conn: &ConnInfo, head: &RequestHead, ordinal: u64) {
        let (Some(causality), Some(tid)) = (self.causality.as_mut(), self.current_tid) else {
            return;
        };
        match conn.role {
            Role::Server => {
                let parent = head.traceparent.as_deref().and_then(parse_traceparent);
                let link = self.links.ids_for_request(conn, head, ordinal);
                causality.server_request(tid, conn.key.tgid, conn.conn_id, ordinal, parent, link);
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
                    conn.conn_id,
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
}

/// Records in, spans out.
pub struct Pipeline<O: SpanOutput> {
    tracker: ConnectionTable,
    emitter: Emitter<O>,
    /// Tuples of the agent's own connections, seen from the agent's side.
    own_tuples: HashSet<(Endpoint, Endpoint)>,
    /// Connections that are the far end of the agent's own (e.g. the collector
    /// receiving our exports): never traced, or every export would make a span.
    ignored: HashSet<(ConnKey, u64)>,
    /// See [`PipelineSettings::own_listeners`].
    own_listeners: Vec<std::net::SocketAddr>,
    /// Sockets per process, to forget them in the kernel when it exits.
    keys_by_tgid: HashMap<u32, Vec<i32>>,
    /// TLS twins open, by the real socket's key, with their conn_id.
    tls_twins: HashMap<ConnKey, u64>,
    /// TLS plaintext written before its socket was known (custom BIO).
    deferred_tls: crate::deferred_tls::DeferredTlsWrites,
    last_ts_ns: u64,
}

fn endpoint(addr: &probes_common::SockAddr) -> Endpoint {
    Endpoint::from_raw(addr.addr, addr.port)
}

impl<O: SpanOutput> Pipeline<O> {
    /// A connection from `local` to `remote` goes to one of the agent's own
    /// listening sockets: the same port and address, or (listening on an
    /// unspecified address) the same port on loopback or on the connection's
    /// own local address (a connection to this host).
    fn to_own_listener(
        listeners: &[std::net::SocketAddr],
        local: &Endpoint,
        remote: &Endpoint,
    ) -> bool {
        listeners.iter().any(|l| {
            l.port() == remote.port
                && (Endpoint::new(l.ip(), l.port()).ip == remote.ip
                    || (l.ip().is_unspecified()
                        && (remote.ip.is_loopback() || remote.ip == local.ip)))
        })
    }

    /// Ignores connection `key` from now on (no spans, muted in the kernel):
    /// it is the agent's own traffic, recognised `via` a listen address or
    /// the agent's own end. If it was already being parsed, it is forgotten
    /// unended, so a request already seen never becomes a span.
    fn ignore_own(&mut self, key: ConnKey, conn_id: u64, via: &'static str) {
        let sink = &mut self.emitter;
        self.ignored.insert((key, conn_id));
        sink.actions.push(KernelAction::Mute(key));
        sink.metrics.count(Family::OwnConnections, via, 1);
        if self.tracker.discard(key, conn_id) {
            if let Some(tuple) = sink.tuple_of.remove(&key) {
                if sink.by_tuple.get(&tuple) == Some(&key) {
                    sink.by_tuple.remove(&tuple);
                }
            }
            sink.links.close(key, conn_id);
            if let Some(c) = sink.causality.as_mut() {
                c.closed(conn_id);
            }
            if let Some(fds) = self.keys_by_tgid.get_mut(&key.tgid) {
                fds.retain(|fd| *fd != key.fd);
            }
        }
    }

    pub fn new(mut settings: PipelineSettings, output: O, registry: &Registry) -> Self {
        let links = span_semantics::links::ConnectionLinks::new(settings.span_builder.fork_ids());
        Self {
            tracker: ConnectionTable::new(settings.tracker),
            emitter: Emitter {
                processes: {
                    let mut t = ProcessTable::new(settings.service_rules, settings.host_name)
                        .with_host_attributes(settings.host_attributes);
                    if let Some(kube) = &settings.kube {
                        t = t.with_kubernetes(kube.clone());
                    }
                    if settings.read_proc {
                        t
                    } else {
                        t.without_proc()
                    }
                },
                spans: settings.span_builder,
                output,
                metrics: PipelineMetrics::new(registry),
                clock_offset_ns: settings.clock_offset_ns,
                peers: settings.peers,
                by_tuple: HashMap::default(),
                tuple_of: HashMap::default(),
                ended_tuples: VecDeque::new(),
                ended_processes: VecDeque::new(),
                actions: Vec::new(),
                links,
                sample_ratio: settings.sample_ratio,
                causality: settings
                    .in_process_parents
                    .then(|| Causality::new(registry)),
                reverse_dns: settings.reverse_dns.and_then(|rd| {
                    reverse_dns::ReverseDns::new(rd, registry)
                        .map_err(|e| tracing::warn!("reverse DNS is off: {e}"))
                        .ok()
                }),
                current_tid: None,
                kube: settings.kube,
            },
            own_tuples: HashSet::new(),
            ignored: HashSet::new(),
            own_listeners: settings.own_listeners,
            keys_by_tgid: HashMap::new(),
            tls_twins: HashMap::new(),
            deferred_tls: crate::deferred_tls::DeferredTlsWrites::new(registry),
            last_ts_ns: 0,
        }
    }

    /// Decodes and handles one raw record; bad records are counted, not fatal.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Ok(rec) => self.handle(&rec),
            Err(e) => self.emitter.metrics.count(Family::Record, e.label(), 1),
        }
    }

    pub fn handle(&mut self, rec: &Record<'_>) {
        match rec {
            Record::Data { header, payload }
                if header.source == probes_common::source::TLS_WRITE_UNBOUND =>
            {
                self.emitter.metrics.records[0].inc();
                self.deferred_tls.hold(header, payload);
                return;
            }
            Record::TlsBind(bind) => {
                self.emitter.metrics.records[7].inc();
                for (mut header, bytes) in self.deferred_tls.bind(bind) {
                    header.chunk_len = bytes.len() as u32;
                    self.handle(&Record::Data {
                        header,
                        payload: &bytes,
                    });
                }
                return;
            }
            _ => {}
        }
        let sink = &mut self.emitter;
        match rec {
            Record::Data { header, payload } => {
                sink.metrics.records[0].inc();
                let mut key = ConnKey {
                    tgid: header.header.tgid,
                    fd: header.header.fd,
                };
                let mut conn_id = header.conn_id;
                if !self.ignored.is_empty() && self.ignored.contains(&(key, conn_id)) {
                    // The far end of the agent's own traffic, before its mute
                    // reached the kernel.
                    let to_agent = header.direction == direction::EGRESS;
                    let label = if to_agent { "to_agent" } else { "from_agent" };
                    let n = u64::from(header.chunk_len);
                    if n > 0 {
                        sink.metrics.count(Family::OwnTraffic, label, n);
                    }
                    return;
                }
                if probes_common::source::is_tls(header.source) {
                    let real = key;
                    key.fd |= TLS_FD_BIT;
                    conn_id |= TLS_CONN_BIT;
                    if self.tls_twins.get(&real) != Some(&conn_id) {
                        // First plaintext of this socket: the twin inherits the
                        // socket's role and addresses.
                        let (mut info, socket_midway) = match self.tracker.get(real) {
                            Some(i) if i.conn_id == header.conn_id => (i.clone(), i.joined_midway),
                            _ => (
                                ConnInfo::unknown(real, header.conn_id, header.header.ts_ns),
                                false,
                            ),
                        };
                        info.key = key;
                        info.conn_id = conn_id;
                        info.protocol = Protocol::Undetected;
                        // The plaintext offsets start where the probes first
                        // saw the TLS session: a socket open before the agent
                        // (seeded from /proc) carries a session joined midway.
                        info.joined_midway = socket_midway || header.call_stream_offset != 0;
                        self.tls_twins.insert(real, conn_id);
                        self.tracker.open(info, sink);
                    }
                }
                let dir = if header.direction == direction::EGRESS {
                    Direction::Egress
                } else {
                    Direction::Ingress
                };
                // Offsets come from outside the process (a recording may be
                // anything): an impossible one is a bad record, not a panic.
                let Some(offset) = header
                    .call_stream_offset
                    .checked_add(u64::from(header.chunk_offset))
                else {
                    sink.metrics.count(Family::Record, "offset_overflow", 1);
                    return;
                };
                let ts = header.header.ts_ns;
                self.last_ts_ns = self.last_ts_ns.max(ts);
                if header.chunk_len == 0 {
                    let missing = header.call_len.saturating_sub(header.chunk_offset as u64);
                    self.tracker
                        .missing(key, conn_id, dir, offset, missing, ts, sink);
                } else {
                    sink.metrics.bytes[dir as usize].add(payload.len() as u64);
                    sink.current_tid = Some(header.header.tid);
                    self.tracker
                        .data(key, conn_id, dir, offset, ts, payload, sink);
                    sink.current_tid = None;
                }
                if dir == Direction::Egress {
                    if let Some(c) = sink.causality.as_mut() {
                        c.wrote(conn_id);
                    }
                }
            }
            Record::ConnOpen(r) => {
                sink.metrics.records[1].inc();
                let local = endpoint(&r.local);
                let remote = endpoint(&r.remote);
                let key = ConnKey {
                    tgid: r.header.tgid,
                    fd: r.header.fd,
                };
                if r.origin == origin::AGENT_OWN {
                    self.own_tuples.insert((local, remote));
                    // The far end may already be tracked (its connect or
                    // accept came first): forgotten, not ended, so what it
                    // already sent makes no span.
                    if let Some(other) = sink.by_tuple.get(&(remote, local)).copied() {
                        if let Some(id) = self.tracker.get(other).map(|i| i.conn_id) {
                            if !self.ignored.contains(&(other, id)) {
                                self.ignore_own(other, id, "agent_socket");
                            }
                        }
                    }
                    return;
                }
                if self.own_tuples.contains(&(remote, local)) {
                    self.ignore_own(key, r.conn_id, "agent_socket");
                    return;
                }
                if r.role == role::CLIENT
                    && Self::to_own_listener(&self.own_listeners, &local, &remote)
                {
                    self.ignore_own(key, r.conn_id, "listen_address");
                    return;
                }
                let info = ConnInfo {
                    key,
                    conn_id: r.conn_id,
                    role: match r.role {
                        role::CLIENT => Role::Client,
                        role::SERVER => Role::Server,
                        _ => Role::Unknown,
                    },
                    local,
                    remote,
                    opened_ns: r.header.ts_ns,
                    protocol: Protocol::Undetected,
                    joined_midway: r.origin == origin::SEEDED,
                };
                self.last_ts_ns = self.last_ts_ns.max(r.header.ts_ns);
                sink.by_tuple.insert((local, remote), key);
                sink.tuple_of.insert(key, (local, remote));
                sink.links.open(&info);
                let fds = self.keys_by_tgid.entry(key.tgid).or_default();
                if !fds.contains(&key.fd) {
                    fds.push(key.fd);
                }
                self.tracker.open(info, sink);
            }
            Record::ConnClose(r) => {
                sink.metrics.records[2].inc();
                let key = ConnKey {
                    tgid: r.header.tgid,
                    fd: r.header.fd,
                };
                self.last_ts_ns = self.last_ts_ns.max(r.header.ts_ns);
                if self.ignored.remove(&(key, r.conn_id)) {
                    return;
                }
                if let Some(info) = self.tracker.get(key) {
                    if info.conn_id == r.conn_id {
                        sink.ended_tuples.push_back((
                            r.header.ts_ns,
                            (info.local, info.remote),
                            key,
                        ));
                    }
                }
                if let Some(fds) = self.keys_by_tgid.get_mut(&key.tgid) {
                    fds.retain(|fd| *fd != key.fd);
                }
                sink.tuple_of.remove(&key);
                self.tracker.close(
                    key,
                    r.conn_id,
                    r.egress_total,
                    r.ingress_total,
                    r.header.ts_ns,
                    sink,
                );
                sink.links.close(key, r.conn_id);
                if let Some(c) = sink.causality.as_mut() {
                    c.closed(r.conn_id);
                }
                if let Some(twin_id) = self.tls_twins.remove(&key) {
                    if let Some(c) = sink.causality.as_mut() {
                        c.closed(twin_id);
                    }
                    // The plaintext totals are not in the close record: close
                    // at what was seen (a lost plaintext tail shows as a gap
                    // only if more plaintext arrives, which it cannot).
                    let twin = ConnKey {
                        tgid: key.tgid,
                        fd: key.fd | TLS_FD_BIT,
                    };
                    self.tracker
                        .close(twin, twin_id, 0, 0, r.header.ts_ns, sink);
                }
            }
            Record::ProcExec(view) => {
                sink.metrics.records[3].inc();
                sink.processes.on_exec(ProcessFacts::from_exec(view));
                sink.metrics.processes.set(sink.processes.len() as i64);
            }
            // TLS discovery's business (the run loop hands them over).
            Record::ProcMap(_) => sink.metrics.records[5].inc(),
            Record::TlsSample(_) => sink.metrics.records[6].inc(),
            Record::TlsBind(_) => {} // handled above
            Record::ProcExit(r) => {
                sink.metrics.records[4].inc();
                let tgid = r.header.tgid;
                self.last_ts_ns = self.last_ts_ns.max(r.header.ts_ns);
                self.tracker.close_process(tgid, r.header.ts_ns, sink);
                let ts = r.header.ts_ns;
                if let Some(fds) = self.keys_by_tgid.remove(&tgid) {
                    for fd in fds {
                        let key = ConnKey { tgid, fd };
                        sink.actions.push(KernelAction::Forget(key));
                        if let Some(tuple) = sink.tuple_of.remove(&key) {
                            if sink.by_tuple.get(&tuple) == Some(&key) {
                                sink.ended_tuples.push_back((ts, tuple, key));
                            }
                        }
                    }
                }
                if !self.ignored.is_empty() {
                    self.ignored.retain(|(k, _)| k.tgid != tgid);
                }
                if !self.tls_twins.is_empty() {
                    self.tls_twins.retain(|k, _| k.tgid != tgid);
                }
                sink.links.close_process(tgid);
                if let Some(c) = sink.causality.as_mut() {
                    c.process_exited(tgid);
                }
                if let Some(p) = sink.processes.get(tgid) {
                    let id = p.resource.id;
                    sink.ended_processes.push_back((ts, tgid, id));
                }
            }
        }
        sink.metrics.connections.set(self.tracker.len() as i64);
    }

    /// Periodic work: idle eviction, forgetting ended peers. `now_ns` is on the
    /// records' clock.
    pub fn tick(&mut self, now_ns: u64) {
        self.tracker.evict_idle(now_ns, &mut self.emitter);
        let e = &mut self.emitter;
        while let Some((ts, tuple, key)) = e.ended_tuples.front().copied() {
            if ts.saturating_add(PEER_GRACE_NS) > now_ns {
                break;
            }
            e.ended_tuples.pop_front();
            if e.by_tuple.get(&tuple) == Some(&key) {
                e.by_tuple.remove(&tuple);
            }
        }
        while let Some((ts, pid, id)) = e.ended_processes.front().copied() {
            if ts.saturating_add(PEER_GRACE_NS) > now_ns {
                break;
            }
            e.ended_processes.pop_front();
            // Unless the pid was reused by a new process meanwhile.
            if e.processes.get(pid).is_some_and(|p| p.resource.id == id) {
                e.processes.on_exit(pid);
            }
        }
        e.metrics.processes.set(e.processes.len() as i64);
        self.emitter
            .metrics
            .connections
            .set(self.tracker.len() as i64);
    }

    /// Ends every connection (shutdown, end of a replay): requests still waiting
    /// become spans with what is known.
    pub fn flush(&mut self) {
        let ts = self.last_ts_ns;
        self.tracker.flush_all(ts, &mut self.emitter);
    }

    /// Kernel-side actions requested since the last call.
    pub fn take_actions(&mut self) -> Vec<KernelAction> {
        std::mem::take(&mut self.emitter.actions)
    }

    pub fn output(&self) -> &O {
        &self.emitter.output
    }

    pub fn output_mut(&mut self) -> &mut O {
        &mut self.emitter.output
    }

    pub fn into_output(self) -> O {
        self.emitter.output
    }

    pub fn connections(&self) -> usize {
        self.tracker.len()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.deferred_tls.held_bytes() + self.tracker.buffered_bytes()
    }

    /// The newest record timestamp seen (monotonic ns).
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Names a process seeded from /proc before any record arrives.
    pub fn process_identity(
        &mut self,
        pid: u32,
    ) -> Arc<span_semantics::process_table::ProcessIdentity> {
        self.emitter.processes.get_or_load(pid)
    }
}

#[cfg(test)]
#[allow(clippy::too_many_arguments)]
mod tests {
    use super::*;
    use probes_common::records::encode;
    use probes_common::{
        kind, ConnCloseRecord, ConnOpenRecord, DataHeader, RecordHeader, SockAddr,
    };
    use span_export::any_value::Value;

    fn addr(last: u8, port: u16) -> SockAddr {
        SockAddr {
            addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, last],
            port,
            family: 2,
            _pad: 0,
        }
    }

    fn header(kind: u32, tgid: u32, fd: i32, ts: u64) -> RecordHeader {
        RecordHeader {
            kind,
            tgid,
            tid: tgid,
            fd,
            ts_ns: ts,
        }
    }

    struct Feed {
        pipeline: Pipeline<Vec<ExportSpan>>,
        buf: Vec<u8>,
    }

    impl Feed {
        fn new() -> Self {
            Self::with_config(wirespan_config::Config::default())
        }
        fn with_config(config: wirespan_config::Config) -> Self {
            let mut settings = crate::agent::pipeline_settings(&config, 0);
            settings.span_builder = SpanBuilder::new(
                span_semantics::span_builder::IdGenerator::with_seed(3),
                span_semantics::routes::RouteTable::default(),
            );
            Self {
                pipeline: Pipeline::new(settings, Vec::new(), &Registry::new()),
                buf: Vec::new(),
            }
        }
        fn push(&mut self) {
            self.pipeline.handle_bytes(&self.buf);
            self.buf.clear();
        }
        fn exec(&mut self, pid: u32, path: &str, env: &[u8]) {
            let comm = path.rsplit('/').next().unwrap_or(path).as_bytes();
            encode::proc_exec(
                header(kind::PROC_EXEC, pid, -1, 1),
                1,
                comm,
                path.as_bytes(),
                b"",
                env,
                &mut self.buf,
            );
            self.push();
        }
        fn open(
            &mut self,
            pid: u32,
            fd: i32,
            conn_id: u64,
            role: u32,
            local: SockAddr,
            remote: SockAddr,
            ts: u64,
        ) {
            encode::conn_open(
                &ConnOpenRecord {
                    header: header(kind::CONN_OPEN, pid, fd, ts),
                    conn_id,
                    local,
                    remote,
                    role,
                    origin: if role == role::CLIENT {
                        origin::CONNECT
                    } else {
                        origin::ACCEPT
                    },
                },
                &mut self.buf,
            );
            self.push();
        }
        fn data(
            &mut self,
            pid: u32,
            fd: i32,
            conn_id: u64,
            dir: u32,
            offset: u64,
            ts: u64,
            bytes: &[u8],
        ) {
            self.data_by(pid, pid, fd, conn_id, dir, offset, ts, bytes);
        }
        /// Data moved by thread `tid` of process `pid`.
        #[allow(clippy::too_many_arguments)]
        fn data_by(
            &mut self,
            pid: u32,
            tid: u32,
            fd: i32,
            conn_id: u64,
            dir: u32,
            offset: u64,
            ts: u64,
            bytes: &[u8],
        ) {
            let mut hdr = header(kind::DATA, pid, fd, ts);
            hdr.tid = tid;
            let h = DataHeader {
                header: hdr,
                conn_id,
                call_stream_offset: offset,
                call_len: bytes.len() as u64,
                chunk_offset: 0,
                chunk_len: bytes.len() as u32,
                direction: dir,
                source: probes_common::source::WRITE,
            };
            encode::data(&h, bytes, &mut self.buf);
            self.push();
        }
        fn close(&mut self, pid: u32, fd: i32, conn_id: u64, out: u64, inn: u64, ts: u64) {
            encode::conn_close(
                &ConnCloseRecord {
                    header: header(kind::CONN_CLOSE, pid, fd, ts),
                    conn_id,
                    egress_total: out,
                    ingress_total: inn,
                },
                &mut self.buf,
            );
            self.push();
        }
    }

    /// The value of attribute `key` as exported (leaked: test-only).
    fn attr(s: &ExportSpan, key: &str) -> Option<&'static Value> {
        let all: &'static Vec<span_export::KeyValue> = Box::leak(Box::new(s.attributes()));
        all.iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn service(s: &ExportSpan) -> Option<String> {
        s.resource
            .attributes
            .iter()
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                Value::StringValue(v) => Some(v.clone()),
                _ => None,
            })
    }

    const REQ: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: t\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    /// Both ends on this host: the server closes before the client has read
    /// the response, yet both spans name the other side.
    #[test]
    fn same_host_peers_name_each_other_even_after_close() {
        let mut f = Feed::new();
        f.exec(100, "/usr/bin/curl", b"OTEL_SERVICE_NAME=checkout\0");
        f.exec(200, "/usr/sbin/nginx", b"");
        let (client, server) = (addr(1, 50000), addr(2, 8080));
        f.open(100, 3, 1, role::CLIENT, client, server, 10);
        f.open(200, 7, 2, role::SERVER, server, client, 11);
        f.data(100, 3, 1, direction::EGRESS, 0, 20, REQ);
        f.data(200, 7, 2, direction::INGRESS, 0, 21, REQ);
        f.data(200, 7, 2, direction::EGRESS, 0, 30, RESP);
        f.close(200, 7, 2, RESP.len() as u64, REQ.len() as u64, 31);
        f.data(100, 3, 1, direction::INGRESS, 0, 40, RESP);
        f.close(100, 3, 1, REQ.len() as u64, RESP.len() as u64, 41);
        let spans = f.pipeline.into_output();
        assert_eq!(spans.len(), 2);
        let server_span = spans
            .iter()
            .find(|s| s.span.kind == span_export::span::SpanKind::Server as i32)
            .unwrap();
        let client_span = spans
            .iter()
            .find(|s| s.span.kind == span_export::span::SpanKind::Client as i32)
            .unwrap();
        assert_eq!(service(server_span).as_deref(), Some("nginx"));
        assert_eq!(service(client_span).as_deref(), Some("checkout"));
        assert_eq!(
            attr(server_span, "service.peer.name"),
            Some(&Value::StringValue("checkout".into()))
        );
        assert_eq!(
            attr(client_span, "service.peer.name"),
            Some(&Value::StringValue("nginx".into()))
        );
        assert_eq!(
            (
                server_span.span.start_time_unix_nano,
                server_span.span.end_time_unix_nano
            ),
            (21, 30)
        );
        assert_eq!(
            (
                client_span.span.start_time_unix_nano,
                client_span.span.end_time_unix_nano
            ),
            (20, 40)
        );
        assert_eq!(
            attr(client_span, "url.full"),
            Some(&Value::StringValue("http://127.0.0.1:8080/a?b=1".into()))
        );
    }

    /// curl → service A (thread 201 serves the request and calls B) → B, all
    /// on this host. Returns the spans of curl, A (server), A (client), B.
    fn call_chain(f: &mut Feed, curl_request: &[u8], a_second_request: bool) -> Vec<ExportSpan> {
        let (curl, a) = (addr(1, 50000), addr(2, 8080));
        let (a_out, b) = (addr(2, 50001), addr(3, 9090));
        f.open(100, 3, 1, role::CLIENT, curl, a, 10);
        f.open(200, 7, 2, role::SERVER, a, curl, 11);
        f.open(200, 8, 3, role::CLIENT, a_out, b, 12);
        f.open(300, 9, 4, role::SERVER, b, a_out, 13);
        f.data(100, 3, 1, direction::EGRESS, 0, 20, curl_request);
        f.data_by(200, 201, 7, 2, direction::INGRESS, 0, 21, curl_request);
        if a_second_request {
            // The same thread reads another request before answering: ambiguous.
            let other = addr(4, 50002);
            f.open(200, 10, 5, role::SERVER, a, other, 12);
            f.data_by(200, 201, 10, 5, direction::INGRESS, 0, 21, REQ);
        }
        let out = b"GET /inventory/7 HTTP/1.1\r\nHost: b:9090\r\n\r\n";
        f.data_by(200, 201, 8, 3, direction::EGRESS, 0, 22, out);
        f.data(300, 9, 4, direction::INGRESS, 0, 23, out);
        f.data(300, 9, 4, direction::EGRESS, 0, 24, RESP);
        f.data_by(200, 201, 8, 3, direction::INGRESS, 0, 25, RESP);
        f.data_by(200, 201, 7, 2, direction::EGRESS, 0, 26, RESP);
        f.data(100, 3, 1, direction::INGRESS, 0, 27, RESP);
        f.pipeline.flush();
        let spans = f.pipeline.output().clone();
        let pick = |pid_service: &str, kind: span_export::span::SpanKind| {
            spans
                .iter()
                .find(|s| service(s).as_deref() == Some(pid_service) && s.span.kind == kind as i32)
                .cloned()
                .unwrap_or_else(|| panic!("no {kind:?} span of {pid_service} in {spans:#?}"))
        };
        use span_export::span::SpanKind::{Client, Server};
        vec![
            pick("curl", Client),
            pick("svc-a", Server),
            pick("svc-a", Client),
            pick("svc-b", Server),
        ]
    }

    fn chain_feed(config: wirespan_config::Config) -> Feed {
        let mut f = Feed::with_config(config);
        f.exec(100, "/usr/bin/curl", b"");
        f.exec(200, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-a\0");
        f.exec(300, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-b\0");
        f
    }

    #[test]
    fn a_call_made_while_serving_is_a_child_of_the_server_span() {
        let mut f = chain_feed(wirespan_config::Config::default());
        let s = call_chain(&mut f, REQ, false);
        let (curl, a_server, a_client, b_server) = (&s[0].span, &s[1].span, &s[2].span, &s[3].span);
        // One trace, and each span's parent is the one before it.
        for span in [a_server, a_client, b_server] {
            assert_eq!(span.trace_id, curl.trace_id, "{span:#?}");
        }
        assert!(curl.parent_span_id.is_empty());
        assert_eq!(a_server.parent_span_id, curl.span_id);
        assert_eq!(a_client.parent_span_id, a_server.span_id);
        assert_eq!(b_server.parent_span_id, a_client.span_id);
        let ids: HashSet<&Vec<u8>> = s.iter().map(|x| &x.span.span_id).collect();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn a_callers_traceparent_reaches_the_whole_tree() {
        let mut f = chain_feed(wirespan_config::Config::default());
        let req = b"GET /a HTTP/1.1\r\nHost: a\r\ntraceparent: \
            00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
        let s = call_chain(&mut f, req, false);
        let tp =
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let trace = tp.trace_id.to_vec();
        for x in &s {
            assert_eq!(x.span.trace_id, trace, "{x:#?}");
        }
        let (a_server, a_client, b_server) = (&s[1].span, &s[2].span, &s[3].span);
        assert_eq!(a_server.parent_span_id, tp.parent_id.to_vec());
        assert_eq!(a_client.parent_span_id, a_server.span_id);
        assert_eq!(b_server.parent_span_id, a_client.span_id);
    }

    #[test]
    fn a_thread_serving_two_requests_gives_no_parent() {
        let registry = Registry::new();
        let mut f = chain_feed(wirespan_config::Config::default());
        let mut settings = crate::agent::pipeline_settings(&wirespan_config::Config::default(), 0);
        settings.span_builder = SpanBuilder::new(
            span_semantics::span_builder::IdGenerator::with_seed(3),
            span_semantics::routes::RouteTable::default(),
        );
        f.pipeline = Pipeline::new(settings, Vec::new(), &registry);
        f.exec(100, "/usr/bin/curl", b"");
        f.exec(200, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-a\0");
        f.exec(300, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-b\0");
        let s = call_chain(&mut f, REQ, true);
        let (curl, a_server, a_client, b_server) = (&s[0].span, &s[1].span, &s[2].span, &s[3].span);
        assert_eq!(a_server.trace_id, curl.trace_id);
        assert!(a_client.parent_span_id.is_empty());
        assert_ne!(a_client.trace_id, a_server.trace_id);
        // The call and its server end still form their own same-host trace.
        assert_eq!(b_server.trace_id, a_client.trace_id);
        assert_eq!(b_server.parent_span_id, a_client.span_id);
        assert_eq!(
            registry.value(
                "wirespan_in_process_parents_total",
                &[("result", "ambiguous")]
            ),
            Some(1)
        );
        assert_eq!(
            registry.value("wirespan_in_process_parents_total", &[("result", "linked")]),
            Some(0)
        );
    }

    #[test]
    fn in_process_parents_can_be_turned_off() {
        let mut config = wirespan_config::Config::default();
        config.traces.in_process_parents = false;
        let mut f = chain_feed(config);
        let s = call_chain(&mut f, REQ, false);
        let (curl, a_server, a_client) = (&s[0].span, &s[1].span, &s[2].span);
        assert_eq!(a_server.trace_id, curl.trace_id);
        assert!(a_client.parent_span_id.is_empty());
        assert_ne!(a_client.trace_id, a_server.trace_id);
    }

    /// The far end of the agent's own connection is never traced.
    #[test]
    fn agent_own_connections_are_ignored_at_both_ends() {
        let mut f = Feed::new();
        let (agent, collector) = (addr(1, 50001), addr(1, 4318));
        encode::conn_open(
            &ConnOpenRecord {
                header: header(kind::CONN_OPEN, 999, 5, 1),
                conn_id: 9,
                local: agent,
                remote: collector,
                role: role::CLIENT,
                origin: origin::AGENT_OWN,
            },
            &mut f.buf,
        );
        f.push();
        f.open(300, 8, 10, role::SERVER, collector, agent, 2);
        f.data(300, 8, 10, direction::INGRESS, 0, 3, REQ);
        f.data(300, 8, 10, direction::EGRESS, 0, 4, RESP);
        f.pipeline.flush();
        assert_eq!(
            f.pipeline.take_actions(),
            vec![KernelAction::Mute(ConnKey { tgid: 300, fd: 8 })]
        );
        assert!(f.pipeline.into_output().is_empty());
    }

    /// A pipeline whose agent listens on `listen`, and its registry.
    fn own_feed(listen: &str) -> (Feed, Registry) {
        let registry = Registry::new();
        let mut settings = crate::agent::pipeline_settings(&wirespan_config::Config::default(), 0);
        settings.own_listeners = vec![listen.parse().unwrap()];
        let f = Feed {
            pipeline: Pipeline::new(settings, Vec::new(), &registry),
            buf: Vec::new(),
        };
        (f, registry)
    }

    /// A client on this host scraping the agent's /metrics: ignored from its
    /// open record (the agent's accept may come later), counted, no span.
    #[test]
    fn connections_to_the_agents_listen_address_make_no_spans() {
        for listen in ["127.0.0.1:9464", "0.0.0.0:9464"] {
            let (mut f, registry) = own_feed(listen);
            let scrape = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\n\r\n";
            f.open(300, 8, 10, role::CLIENT, addr(1, 50000), addr(1, 9464), 1);
            f.data(300, 8, 10, direction::EGRESS, 0, 2, scrape);
            // A control request on the same host to another port is traced.
            f.open(300, 9, 11, role::CLIENT, addr(1, 50001), addr(1, 8080), 3);
            f.data(300, 9, 11, direction::EGRESS, 0, 4, REQ);
            f.data(300, 9, 11, direction::INGRESS, 0, 5, RESP);
            f.close(300, 8, 10, scrape.len() as u64, 0, 6);
            f.pipeline.flush();
            assert_eq!(
                f.pipeline.take_actions(),
                vec![KernelAction::Mute(ConnKey { tgid: 300, fd: 8 })],
                "{listen}"
            );
            let spans = f.pipeline.into_output();
            assert_eq!(spans.len(), 1, "{listen}");
            assert_eq!(
                spans[0].attrs.get("server.port").and_then(|v| match v {
                    AttrValue::Int(p) => Some(*p),
                    _ => None,
                }),
                Some(8080)
            );
            assert_eq!(
                registry.value(
                    "wirespan_own_traffic_bytes_total",
                    &[("direction", "to_agent")]
                ),
                Some(scrape.len() as i128),
                "{listen}"
            );
            assert_eq!(
                registry.value(
                    "wirespan_own_traffic_connections_total",
                    &[("via", "listen_address")]
                ),
                Some(1)
            );
        }
    }

    /// The agent's own end seen after the far end already sent a request:
    /// the far end is forgotten unended, so its request never becomes a
    /// `connection_closed` span, even when its process exits.
    #[test]
    fn a_far_end_seen_before_the_agents_own_end_is_forgotten_unended() {
        let (mut f, registry) = own_feed("127.0.0.1:1");
        let (client, agent) = (addr(1, 50002), addr(1, 9464));
        f.open(300, 8, 10, role::CLIENT, client, agent, 1);
        f.data(300, 8, 10, direction::EGRESS, 0, 2, REQ);
        encode::conn_open(
            &ConnOpenRecord {
                header: header(kind::CONN_OPEN, 999, 5, 3),
                conn_id: 9,
                local: agent,
                remote: client,
                role: role::SERVER,
                origin: origin::AGENT_OWN,
            },
            &mut f.buf,
        );
        f.push();
        f.data(300, 8, 10, direction::INGRESS, 0, 4, RESP);
        let mut exit = Vec::new();
        encode::proc_exit(
            &probes_common::ProcExitRecord {
                header: header(kind::PROC_EXIT, 300, -1, 5),
            },
            &mut exit,
        );
        f.pipeline.handle_bytes(&exit);
        f.pipeline.flush();
        assert!(f
            .pipeline
            .take_actions()
            .contains(&KernelAction::Mute(ConnKey { tgid: 300, fd: 8 })));
        assert!(f.pipeline.into_output().is_empty());
        assert_eq!(
            registry.value(
                "wirespan_own_traffic_bytes_total",
                &[("direction", "from_agent")]
            ),
            Some(RESP.len() as i128)
        );
        assert_eq!(
            registry.value(
                "wirespan_own_traffic_connections_total",
                &[("via", "agent_socket")]
            ),
            Some(1)
        );
    }

    #[test]
    fn process_exit_forgets_its_sockets_in_the_kernel() {
        let mut f = Feed::new();
        f.open(100, 3, 1, role::CLIENT, addr(1, 1), addr(2, 2), 1);
        f.open(100, 4, 2, role::CLIENT, addr(1, 3), addr(2, 2), 1);
        f.close(100, 4, 2, 0, 0, 2);
        let mut buf = Vec::new();
        encode::proc_exit(
            &probes_common::ProcExitRecord {
                header: header(kind::PROC_EXIT, 100, -1, 3),
            },
            &mut buf,
        );
        f.pipeline.handle_bytes(&buf);
        assert_eq!(
            f.pipeline.take_actions(),
            vec![KernelAction::Forget(ConnKey { tgid: 100, fd: 3 })]
        );
        assert_eq!(f.pipeline.connections(), 0);
    }
}
