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
use protocol_parsers::{HttpExchange, ParseIssue};
use self_metrics::{Counter, Gauge, Registry};
use span_export::ExportSpan;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::peers::PeerNames;
use crate::process_table::{ProcessFacts, ProcessTable};
use crate::records::{decode, Record};
use crate::span_builder::{SpanBuilder, SpanContext};

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
    pub span_builder: SpanBuilder,
}

/// Counters the pipeline keeps, registered once.
struct PipelineMetrics {
    registry: Registry,
    records: [Counter; 5],
    bytes: [Counter; 2],
    spans_built: [Counter; 2],
    spans_not_queued: Counter,
    connections: Gauge,
    processes: Gauge,
    by_label: HashMap<(&'static str, &'static str), Counter>,
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
            ],
            bytes: [bytes("egress"), bytes("ingress")],
            spans_built: [built("server"), built("client")],
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

    fn count(&mut self, family: &'static str, label: &'static str, n: u64) {
        if let Some(c) = self.by_label.get(&(family, label)) {
            c.add(n);
            return;
        }
        let c = match family {
            "tracker" => self.tracker_counter(label),
            "parse" => self.registry.counter(
                "wirespan_parse_issues_total",
                "Protocol parser issues, by reason (malformed, oversized, unpaired, resynchronised).",
                &[("reason", label)],
            ),
            _ => self.registry.counter(
                "wirespan_record_errors_total",
                "Probe records that could not be used, by reason.",
                &[("reason", label)],
            ),
        };
        c.add(n);
        self.by_label.insert((family, label), c);
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
    by_tuple: HashMap<(Endpoint, Endpoint), ConnKey>,
    actions: Vec<KernelAction>,
}

impl<O: SpanOutput> TrackerSink for Emitter<O> {
    fn exchange(&mut self, conn: &ConnInfo, exchange: HttpExchange) {
        let process = self.processes.get_or_load(conn.key.tgid);
        // The other end: a process on this host first, else a configured name.
        let local_peer = self
            .by_tuple
            .get(&(conn.remote, conn.local))
            .and_then(|k| self.processes.get(k.tgid))
            .map(|p| p.service_name.clone());
        let peer = local_peer.or_else(|| {
            self.peers
                .lookup(conn.remote.ip, conn.remote.port)
                .map(str::to_string)
        });
        let ctx = SpanContext {
            conn,
            process: &process,
            peer_service: peer.as_deref(),
            clock_offset_ns: self.clock_offset_ns,
            scheme: "http",
        };
        let span = self.spans.build(&ctx, &exchange);
        let kind = usize::from(conn.role != Role::Server);
        self.metrics.spans_built[kind].inc();
        if !self.output.send(span) {
            self.metrics.spans_not_queued.inc();
        }
    }

    fn parse_issue(&mut self, _conn: &ConnInfo, issue: ParseIssue) {
        let n = match issue {
            ParseIssue::ResyncSkippedBytes(n) => n,
            _ => 1,
        };
        self.metrics.count("parse", issue.label(), n);
    }

    fn tracker_event(&mut self, event: TrackerEvent) {
        self.metrics.count("tracker", event.label(), event.amount());
    }

    fn mute(&mut self, conn: &ConnInfo) {
        self.actions.push(KernelAction::Mute(conn.key));
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
    /// Sockets per process, to forget them in the kernel when it exits.
    keys_by_tgid: HashMap<u32, Vec<i32>>,
    last_ts_ns: u64,
}

fn endpoint(addr: &probes_common::SockAddr) -> Endpoint {
    Endpoint::from_raw(addr.addr, addr.port)
}

impl<O: SpanOutput> Pipeline<O> {
    pub fn new(settings: PipelineSettings, output: O, registry: &Registry) -> Self {
        Self {
            tracker: ConnectionTable::new(settings.tracker),
            emitter: Emitter {
                processes: ProcessTable::new(settings.service_rules, settings.host_name),
                spans: settings.span_builder,
                output,
                metrics: PipelineMetrics::new(registry),
                clock_offset_ns: settings.clock_offset_ns,
                peers: settings.peers,
                by_tuple: HashMap::new(),
                actions: Vec::new(),
            },
            own_tuples: HashSet::new(),
            ignored: HashSet::new(),
            keys_by_tgid: HashMap::new(),
            last_ts_ns: 0,
        }
    }

    /// Decodes and handles one raw record; bad records are counted, not fatal.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Ok(rec) => self.handle(&rec),
            Err(e) => self.emitter.metrics.count("record", e.label(), 1),
        }
    }

    pub fn handle(&mut self, rec: &Record<'_>) {
        let sink = &mut self.emitter;
        match rec {
            Record::Data { header, payload } => {
                sink.metrics.records[0].inc();
                let key = ConnKey {
                    tgid: header.header.tgid,
                    fd: header.header.fd,
                };
                if !self.ignored.is_empty() && self.ignored.contains(&(key, header.conn_id)) {
                    return;
                }
                let dir = if header.direction == direction::EGRESS {
                    Direction::Egress
                } else {
                    Direction::Ingress
                };
                let offset = header.call_stream_offset + header.chunk_offset as u64;
                let ts = header.header.ts_ns;
                self.last_ts_ns = self.last_ts_ns.max(ts);
                if header.chunk_len == 0 {
                    let missing = header.call_len.saturating_sub(header.chunk_offset as u64);
                    self.tracker
                        .missing(key, header.conn_id, dir, offset, missing, ts, sink);
                } else {
                    sink.metrics.bytes[dir as usize].add(payload.len() as u64);
                    self.tracker
                        .data(key, header.conn_id, dir, offset, ts, payload, sink);
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
                    // The far end may already be tracked (its accept came first).
                    if let Some(other) = sink.by_tuple.get(&(remote, local)).copied() {
                        if let Some(info) = self.tracker.get(other) {
                            self.ignored.insert((other, info.conn_id));
                            sink.actions.push(KernelAction::Mute(other));
                        }
                    }
                    return;
                }
                if self.own_tuples.contains(&(remote, local)) {
                    self.ignored.insert((key, r.conn_id));
                    sink.actions.push(KernelAction::Mute(key));
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
                        sink.by_tuple.remove(&(info.local, info.remote));
                    }
                }
                if let Some(fds) = self.keys_by_tgid.get_mut(&key.tgid) {
                    fds.retain(|fd| *fd != key.fd);
                }
                self.tracker.close(
                    key,
                    r.conn_id,
                    r.egress_total,
                    r.ingress_total,
                    r.header.ts_ns,
                    sink,
                );
            }
            Record::ProcExec(view) => {
                sink.metrics.records[3].inc();
                sink.processes.on_exec(ProcessFacts::from_exec(view));
                sink.metrics.processes.set(sink.processes.len() as i64);
            }
            Record::ProcExit(r) => {
                sink.metrics.records[4].inc();
                let tgid = r.header.tgid;
                self.last_ts_ns = self.last_ts_ns.max(r.header.ts_ns);
                self.tracker.close_process(tgid, r.header.ts_ns, sink);
                if let Some(fds) = self.keys_by_tgid.remove(&tgid) {
                    for fd in fds {
                        sink.actions
                            .push(KernelAction::Forget(ConnKey { tgid, fd }));
                    }
                }
                sink.by_tuple.retain(|_, k| k.tgid != tgid);
                self.ignored.retain(|(k, _)| k.tgid != tgid);
                sink.processes.on_exit(tgid);
                sink.metrics.processes.set(sink.processes.len() as i64);
            }
        }
        sink.metrics.connections.set(self.tracker.len() as i64);
    }

    /// Periodic work: idle eviction. `now_ns` is on the records' clock.
    pub fn tick(&mut self, now_ns: u64) {
        self.tracker.evict_idle(now_ns, &mut self.emitter);
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
        self.tracker.buffered_bytes()
    }

    /// The newest record timestamp seen (monotonic ns).
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Names a process seeded from /proc before any record arrives.
    pub fn process_identity(&mut self, pid: u32) -> Arc<crate::process_table::ProcessIdentity> {
        self.emitter.processes.get_or_load(pid)
    }
}
