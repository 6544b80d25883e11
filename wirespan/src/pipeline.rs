//! The user-space pipeline: probe records in, spans out. It is synchronous and
//! runs on the task that drains the ring buffer (or reads a recording), so live
//! capture and replay run exactly the same code.
//!
//! It is a dispatcher: each record goes to the connection table
//! (`conn_tracker`) and to span meaning (`span_semantics::span_composer`),
//! and each exchange the table reports goes to span meaning and then to the
//! output. It keeps only what is about records themselves: the far ends of
//! the agent's own traffic (ignored), the TLS twin of each socket, the
//! counters, and what must reach the kernel (stop copying a connection or a
//! large body, forget an exited process's sockets), queued as
//! [`KernelAction`]s for the live runner to apply.

mod metrics;
#[cfg(test)]
mod tests;

use conn_tracker::{
    ConnId, ConnInfo, ConnKey, ConnectionTable, Direction, Endpoint, FastSet, MonotonicNs,
    ProcessMap, Protocol, Role, StreamOffset, TrackerEvent, TrackerLimits, TrackerSink,
};
use probes_common::records::{decode, Record};
use probes_common::{direction, origin, role};
use protocol_parsers::{HttpExchange, ParseIssue, RequestHead};
use self_metrics::Registry;
use span_export::ExportSpan;
use span_semantics::host::HostFacts;
use span_semantics::identity::{KubeLookup, ReverseDnsLookup};
use span_semantics::peers::PeerNames;
use span_semantics::process_table::{ProcessFacts, ProcessIdentity};
use span_semantics::span_builder::SpanBuilder;
use span_semantics::span_composer::{ComposerSettings, SpanComposer};
use std::sync::Arc;

use metrics::{Family, PipelineMetrics};

pub use span_semantics::tls_twin::{TLS_CONN_BIT, TLS_FD_BIT};

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
    /// Do not copy the bytes of `dir` of connection `conn_id` before stream
    /// offset `until`: body the parser only counts
    /// ([`TrackerSink::body_ahead`]).
    SkipBody {
        key: ConnKey,
        conn_id: ConnId,
        dir: Direction,
        until: StreamOffset,
    },
}

/// Everything the pipeline is configured with. Nothing in it is read from
/// the host by the pipeline itself: the host's name, environment and id seed
/// come in [`PipelineSettings::host`].
pub struct PipelineSettings {
    pub tracker: TrackerLimits,
    /// Added to monotonic timestamps to get Unix-epoch nanoseconds.
    pub clock_offset_ns: i64,
    pub peers: PeerNames,
    pub service_rules: Vec<wirespan_config::ServiceRule>,
    /// What is taken from the host: [`HostFacts::of_this_host`] live,
    /// [`HostFacts::hermetic`] in tests.
    pub host: HostFacts,
    /// Share of traces kept (see `export.sample_ratio`).
    pub sample_ratio: f64,
    /// In-process causality (see `traces.in_process_parents`).
    pub in_process_parents: bool,
    /// Peer names from reverse DNS (`service.reverse_dns`); None: off.
    pub reverse_dns: Option<reverse_dns::ReverseDnsSettings>,
    /// Kubernetes metadata (`kubernetes`), already started; None: off.
    pub kube: Option<Arc<dyn KubeLookup>>,
    pub span_builder: SpanBuilder,
    /// The agent's own listening sockets (`metrics.listen`): connections to
    /// them are the agent's own traffic, ignored from their open record on.
    pub own_listeners: Vec<std::net::SocketAddr>,
}

/// Reverse DNS as a source of peer names.
struct ReverseDnsNames(reverse_dns::ReverseDns);

impl ReverseDnsLookup for ReverseDnsNames {
    fn name_of(&self, ip: std::net::IpAddr) -> Option<Arc<str>> {
        self.0.lookup(ip)
    }
}

/// The half of the pipeline the connection table calls back into.
struct Emitter<O: SpanOutput> {
    composer: SpanComposer,
    output: O,
    metrics: PipelineMetrics,
    actions: Vec<KernelAction>,
    /// Thread of the data record being fed to the tracker, if one is.
    current_tid: Option<u32>,
}

impl<O: SpanOutput> TrackerSink for Emitter<O> {
    fn exchange(&mut self, conn: &ConnInfo, exchange: HttpExchange) {
        let (output, metrics) = (&mut self.output, &self.metrics);
        let mut queued = true;
        let kept = self
            .composer
            .exchange(conn, &exchange, |span| queued = output.send(span));
        let kind = usize::from(conn.role != Role::Server);
        metrics.spans_built[kind].inc();
        if !kept {
            metrics.sampled_out.inc();
        } else if !queued {
            metrics.spans_not_queued.inc();
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

    fn body_ahead(&mut self, conn: &ConnInfo, dir: Direction, until: StreamOffset) {
        // A TLS twin keeps its key (the probes look its plaintext up under
        // the fd with the twin bit) but the kernel knows the socket's id.
        self.actions.push(KernelAction::SkipBody {
            key: conn.key,
            conn_id: ConnId(conn.conn_id & !TLS_CONN_BIT),
            dir,
            until,
        });
    }

    fn request_started(&mut self, conn: &ConnInfo, head: &RequestHead, ordinal: u64) {
        if let Some(tid) = self.current_tid {
            self.composer.request_started(conn, head, ordinal, tid);
        }
    }
}

/// Records in, spans out.
pub struct Pipeline<O: SpanOutput> {
    tracker: ConnectionTable,
    emitter: Emitter<O>,
    /// Tuples of the agent's own connections, seen from the agent's side.
    own_tuples: FastSet<(Endpoint, Endpoint)>,
    /// Connections that are the far end of the agent's own (e.g. the collector
    /// receiving our exports): never traced, or every export would make a span.
    ignored: FastSet<(ConnKey, ConnId)>,
    /// See [`PipelineSettings::own_listeners`].
    own_listeners: Vec<std::net::SocketAddr>,
    /// TLS twins open, by the real socket's key, with their conn_id; by
    /// process too, so that an exit forgets its own without a scan.
    tls_twins: ProcessMap<ConnKey, ConnId>,
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
    fn ignore_own(&mut self, key: ConnKey, conn_id: ConnId, via: &'static str) {
        let sink = &mut self.emitter;
        self.ignored.insert((key, conn_id));
        sink.actions.push(KernelAction::Mute(key));
        sink.metrics.count(Family::OwnConnections, via, 1);
        if self.tracker.discard(key, conn_id) {
            sink.composer.connection_discarded(key, conn_id);
        }
    }

    pub fn new(settings: PipelineSettings, output: O, registry: &Registry) -> Self {
        let metrics = PipelineMetrics::new(registry);
        let composer = SpanComposer::new(
            ComposerSettings {
                clock_offset_ns: settings.clock_offset_ns,
                service_rules: settings.service_rules,
                host: settings.host,
                peer_rules: settings.peers,
                kube: settings.kube,
                sample_ratio: settings.sample_ratio,
                in_process_parents: settings.in_process_parents,
                span_builder: settings.span_builder,
            },
            registry,
        );
        let reverse_dns = settings.reverse_dns.and_then(|rd| {
            reverse_dns::ReverseDns::new(rd, registry)
                .map(|r| Box::new(ReverseDnsNames(r)) as Box<dyn ReverseDnsLookup>)
                .map_err(|e| tracing::warn!("reverse DNS is off: {e}"))
                .ok()
        });
        Self {
            tracker: ConnectionTable::new(settings.tracker),
            emitter: Emitter {
                composer: composer.with_reverse_dns(reverse_dns),
                output,
                metrics,
                actions: Vec::new(),
                current_tid: None,
            },
            own_tuples: FastSet::default(),
            ignored: FastSet::default(),
            own_listeners: settings.own_listeners,
            tls_twins: ProcessMap::default(),
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
                let socket_id = ConnId(header.conn_id);
                let mut conn_id = socket_id;
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
                    conn_id = ConnId(conn_id.0 | TLS_CONN_BIT);
                    if self.tls_twins.get(&real) != Some(&conn_id) {
                        // First plaintext of this socket: the twin inherits the
                        // socket's role and addresses.
                        let (mut info, socket_midway) = match self.tracker.get(real) {
                            Some(i) if i.conn_id == socket_id.0 => (i.clone(), i.joined_midway),
                            _ => (
                                ConnInfo::unknown(real, header.conn_id, header.header.ts_ns),
                                false,
                            ),
                        };
                        info.key = key;
                        info.conn_id = conn_id.0;
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
                    .map(StreamOffset)
                else {
                    sink.metrics.count(Family::Record, "offset_overflow", 1);
                    return;
                };
                let ts = MonotonicNs(header.header.ts_ns);
                self.last_ts_ns = self.last_ts_ns.max(ts.0);
                if header.chunk_len == 0 {
                    let missing = header.call_len.saturating_sub(header.chunk_offset as u64);
                    if header.source & probes_common::source::BODY_SKIPPED != 0 {
                        self.tracker
                            .skipped_body(key, conn_id, dir, offset, missing, ts, sink);
                    } else {
                        self.tracker
                            .missing(key, conn_id, dir, offset, missing, ts, sink);
                    }
                } else {
                    sink.metrics.bytes[dir as usize].add(payload.len() as u64);
                    sink.current_tid = Some(header.header.tid);
                    self.tracker
                        .data(key, conn_id, dir, offset, ts, payload, sink);
                    sink.current_tid = None;
                }
                if dir == Direction::Egress {
                    sink.composer.wrote(conn_id);
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
                    if let Some(other) = sink.composer.socket_at((remote, local)) {
                        if let Some(id) = self.tracker.get(other).map(|i| ConnId(i.conn_id)) {
                            if !self.ignored.contains(&(other, id)) {
                                self.ignore_own(other, id, "agent_socket");
                            }
                        }
                    }
                    return;
                }
                if self.own_tuples.contains(&(remote, local)) {
                    self.ignore_own(key, ConnId(r.conn_id), "agent_socket");
                    return;
                }
                if r.role == role::CLIENT
                    && Self::to_own_listener(&self.own_listeners, &local, &remote)
                {
                    self.ignore_own(key, ConnId(r.conn_id), "listen_address");
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
                sink.composer.connection_opened(&info);
                self.tracker.open(info, sink);
            }
            Record::ConnClose(r) => {
                sink.metrics.records[2].inc();
                let key = ConnKey {
                    tgid: r.header.tgid,
                    fd: r.header.fd,
                };
                let ts = MonotonicNs(r.header.ts_ns);
                self.last_ts_ns = self.last_ts_ns.max(ts.0);
                let conn_id = ConnId(r.conn_id);
                if self.ignored.remove(&(key, conn_id)) {
                    return;
                }
                let tracked_pair = self
                    .tracker
                    .get(key)
                    .filter(|info| info.conn_id == conn_id.0)
                    .map(|info| (info.local, info.remote));
                let (egress_total, ingress_total) =
                    (StreamOffset(r.egress_total), StreamOffset(r.ingress_total));
                self.tracker
                    .close(key, conn_id, egress_total, ingress_total, ts, sink);
                sink.composer
                    .connection_closed(key, conn_id, tracked_pair, ts);
                if let Some(twin_id) = self.tls_twins.remove(&key) {
                    sink.composer.connection_ended(twin_id);
                    // The plaintext totals are not in the close record: close
                    // at what was seen (a lost plaintext tail shows as a gap
                    // only if more plaintext arrives, which it cannot).
                    let twin = ConnKey {
                        tgid: key.tgid,
                        fd: key.fd | TLS_FD_BIT,
                    };
                    let nothing_seen = StreamOffset(0);
                    self.tracker
                        .close(twin, twin_id, nothing_seen, nothing_seen, ts, sink);
                }
            }
            Record::ProcExec(view) => {
                sink.metrics.records[3].inc();
                sink.composer.process_started(ProcessFacts::from_exec(view));
                sink.metrics.processes.set(sink.composer.processes() as i64);
            }
            // TLS discovery's business (the run loop hands them over).
            Record::ProcMap(_) => sink.metrics.records[5].inc(),
            Record::TlsSample(_) => sink.metrics.records[6].inc(),
            Record::TlsBind(_) => {} // handled above
            Record::ProcExit(r) => {
                sink.metrics.records[4].inc();
                let tgid = r.header.tgid;
                let ts = MonotonicNs(r.header.ts_ns);
                self.last_ts_ns = self.last_ts_ns.max(ts.0);
                self.tracker.close_process(tgid, ts.0, sink);
                self.deferred_tls.process_exited(tgid);
                for fd in sink.composer.process_exited(tgid, ts) {
                    sink.actions
                        .push(KernelAction::Forget(ConnKey { tgid, fd }));
                }
                // Only the far ends of the agent's own connections: a handful.
                if !self.ignored.is_empty() {
                    self.ignored.retain(|(k, _)| k.tgid != tgid);
                }
                self.tls_twins.remove_process(tgid);
            }
        }
        sink.metrics.connections.set(self.tracker.len() as i64);
    }

    /// Periodic work: idle eviction, forgetting ended peers. `now_ns` is on the
    /// records' clock.
    pub fn tick(&mut self, now_ns: u64) {
        self.tracker.evict_idle(now_ns, &mut self.emitter);
        let e = &mut self.emitter;
        e.composer.expire(MonotonicNs(now_ns));
        e.metrics.processes.set(e.composer.processes() as i64);
        e.metrics.connections.set(self.tracker.len() as i64);
    }

    /// Ends every connection (shutdown, end of a replay): requests still waiting
    /// become spans with what is known.
    pub fn flush(&mut self) {
        let ts = self.last_ts_ns;
        self.tracker.flush_all(ts, &mut self.emitter);
        self.deferred_tls.drop_all();
    }

    /// Whether kernel-side actions are waiting (see `take_actions`).
    pub fn has_actions(&self) -> bool {
        !self.emitter.actions.is_empty()
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
    pub fn process_identity(&mut self, pid: u32) -> Arc<ProcessIdentity> {
        self.emitter.composer.process_identity(pid)
    }
}
