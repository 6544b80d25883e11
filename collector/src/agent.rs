//! `wirespan run` and `wirespan record`: load the probes, drain the ring buffer
//! into the pipeline (or a recording), serve /metrics, and stop cleanly on
//! SIGINT/SIGTERM. Also `wirespan replay`, which feeds a recording through the
//! same pipeline without root or eBPF.

use anyhow::{Context as _, Result};
use aya::maps::MapData;
use probes_common::{counter, SocketKey, SocketState};
use self_metrics::{Counter, Registry};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};
use wirespan_config::Config;

use crate::admin_server::{self, Readiness};
use crate::pipeline::{KernelAction, Pipeline, PipelineSettings, SpanOutput};
use crate::probes::{self, KernelCounters, ProbeOptions, Probes};
use crate::recording::{RecordingHeader, RecordingReader, RecordingWriter};

/// What `run` does with each record.
pub enum Mode {
    /// Build and export spans.
    Spans,
    /// Write raw records to a file (and build no spans).
    Record(PathBuf),
}

/// Wall-clock minus monotonic, to turn kernel timestamps into Unix time.
pub fn clock_offset_ns() -> i64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer to a timespec.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let mono = read(libc::CLOCK_MONOTONIC);
    let real = read(libc::CLOCK_REALTIME);
    real - mono
}

/// Monotonic now, on the probes' clock.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn pipeline_settings(config: &Config, clock_offset_ns: i64) -> PipelineSettings {
    let c = &config.connections;
    let h = &config.http;
    let mut tracker = conn_tracker::TrackerLimits {
        max_connections: c.max_connections,
        idle_timeout_ns: c.idle_timeout.as_nanos() as u64,
        memory_limit_bytes: c.memory_limit_bytes,
        ..Default::default()
    };
    tracker.http1.max_head_bytes = h.max_header_bytes;
    tracker.http1.max_pending_requests = h.max_pending_requests;
    PipelineSettings {
        tracker,
        clock_offset_ns,
        peers: crate::peers::PeerNames::new(&config.service.peers),
        service_rules: config.service.rules.clone(),
        host_name: crate::process_table::host_name(),
        read_proc: true,
        host_attributes: std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .map(|v| crate::process_table::parse_resource_attributes(&v))
            .unwrap_or_default(),
        span_builder: crate::span_builder::SpanBuilder::new(
            crate::span_builder::IdGenerator::new(),
            crate::routes::RouteTable::new(&config.http.routes),
        )
        .with_redaction(crate::redact::QueryRedactor::new(
            &config.http.redact_query_params,
        ))
        .with_templated_names(config.http.templated_span_names),
        sample_ratio: config.export.sample_ratio,
        in_process_parents: config.traces.in_process_parents,
        reverse_dns: {
            let r = &config.service.reverse_dns;
            r.enabled.then_some(reverse_dns::ReverseDnsSettings {
                max_entries: r.max_entries,
                positive_ttl: r.positive_ttl,
                negative_ttl: r.negative_ttl,
                max_in_flight: r.max_in_flight,
                lookup_timeout: r.lookup_timeout,
            })
        },
        kube: None,
        own_listeners: Vec::new(),
    }
}

/// Starts listing and watching the API server (`kubernetes.enabled`).
fn start_kubernetes(
    config: &wirespan_config::KubernetesConfig,
    registry: &Registry,
) -> Result<k8s_metadata::KubeMetadata> {
    let settings = k8s_metadata::KubeSettings {
        api_url: config.api_url.clone(),
        node_name: config
            .node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok()),
        watch_scope: if config.watch_scope == "node" {
            k8s_metadata::WatchScope::Node
        } else {
            k8s_metadata::WatchScope::Cluster
        },
        max_objects: config.max_objects,
        ..Default::default()
    };
    // Outside a pod (an explicit api_url) there may be no service account:
    // then requests carry no token, and a refusal is counted as unauthorized.
    let settings = k8s_metadata::KubeSettings {
        token_path: settings.token_path.clone().filter(|p| p.exists()),
        ..settings
    };
    // The watch task runs for the agent's life; its handle is not needed.
    let (kube, _task) = k8s_metadata::KubeMetadata::start(settings, registry)
        .context("kubernetes.enabled is true but Kubernetes metadata cannot start")?;
    tracing::info!("watching the Kubernetes API for pods, Services and ReplicaSets");
    Ok(kube)
}

/// The probes' counters as Prometheus series.
struct KernelCounterMetrics {
    series: Vec<(usize, Counter)>,
}

impl KernelCounterMetrics {
    fn new(registry: &Registry) -> Self {
        let mut series = Vec::new();
        for (i, name) in counter::NAMES.iter().enumerate() {
            let c = match i as u32 {
                counter::DATA_RECORDS => registry.counter(
                    "wirespan_kernel_data_records_total",
                    "Data records the probes emitted.",
                    &[],
                ),
                counter::DATA_BYTES => registry.counter(
                    "wirespan_kernel_data_bytes_total",
                    "Payload bytes the probes copied into the ring buffer.",
                    &[],
                ),
                counter::TRUNCATED_CALLS => registry.counter(
                    "wirespan_kernel_truncated_calls_total",
                    "Syscalls whose payload was cut by the per-call cap or the iovec limit.",
                    &[],
                ),
                counter::TLS_CALLS | counter::GO_TLS_CALLS => registry.counter(
                    "wirespan_tls_calls_total",
                    "TLS library calls that moved plaintext: SSL_read/SSL_write (OpenSSL, \
                     BoringSSL) or Go crypto/tls (*Conn).Read/Write.",
                    &[(
                        "library",
                        if i as u32 == counter::GO_TLS_CALLS {
                            "go"
                        } else {
                            "openssl"
                        },
                    )],
                ),
                counter::GO_FD_CHECK_AGREED | counter::GO_FD_CHECK_DISAGREED => registry.counter(
                    "wirespan_tls_go_fd_cross_checks_total",
                    "Go TLS calls whose socket was found both in the tls.Conn and by the \
                     syscall made inside the call, by whether the two agreed (the tls.Conn's is used).",
                    &[(
                        "result",
                        if i as u32 == counter::GO_FD_CHECK_AGREED {
                            "agreed"
                        } else {
                            "disagreed"
                        },
                    )],
                ),
                counter::TLS_FD_NESTED
                | counter::TLS_FD_CACHED
                | counter::TLS_FD_THREAD
                | counter::TLS_FD_UNKNOWN
                | counter::TLS_SOCKET_UNTRACKED
                | counter::TLS_FD_GO_CONN
                | counter::TLS_FD_GO_CACHED => {
                    let how = match i as u32 {
                        counter::TLS_FD_NESTED => "nested_syscall",
                        counter::TLS_FD_CACHED => "remembered_ssl",
                        counter::TLS_FD_THREAD => "thread_last_read",
                        counter::TLS_FD_UNKNOWN => "not_found",
                        counter::TLS_FD_GO_CONN => "go_conn_struct",
                        counter::TLS_FD_GO_CACHED => "remembered_go_conn",
                        _ => "socket_untracked",
                    };
                    registry.counter(
                        "wirespan_tls_calls_by_socket_source_total",
                        "TLS calls by how their socket was found; not_found and socket_untracked lose their plaintext.",
                        &[("source", how)],
                    )
                }
                counter::GO_ORPHAN_READ_GAP | counter::GO_ORPHAN_LOST | counter::GO_WRITE_SHORT => {
                    registry.counter(
                        "wirespan_tls_go_incomplete_calls_total",
                        "Go TLS calls seen only in part: a Read whose entry came before the probes \
                         (gap_marked: an exact gap on its socket; lost: no socket to mark), a Write \
                         emitted at entry that sent less (write_short).",
                        &[(
                            "result",
                            match i as u32 {
                                counter::GO_ORPHAN_READ_GAP => "gap_marked",
                                counter::GO_ORPHAN_LOST => "lost",
                                _ => "write_short",
                            },
                        )],
                    )
                }
                counter::TRUNCATED_BYTES
                | counter::MUTED_BYTES
                | counter::RINGBUF_FULL_BYTES
                | counter::TLS_CIPHERTEXT_BYTES => {
                    let reason = match i as u32 {
                        counter::TRUNCATED_BYTES => "per_call_cap",
                        counter::MUTED_BYTES => "muted_connection",
                        counter::TLS_CIPHERTEXT_BYTES => "tls_ciphertext",
                        _ => "ringbuf_full",
                    };
                    registry.counter(
                        "wirespan_kernel_bytes_not_copied_total",
                        "Socket bytes the probes counted but did not copy, by reason.",
                        &[("reason", reason)],
                    )
                }
                _ => registry.counter(
                    "wirespan_kernel_records_lost_total",
                    "Records or captures the probes could not make, by reason.",
                    &[("reason", name)],
                ),
            };
            series.push((i, c));
        }
        Self { series }
    }

    fn update(&self, counters: &KernelCounters) {
        if let Ok(totals) = counters.read() {
            for (i, c) in &self.series {
                c.set_total(totals[*i]);
            }
        }
    }
}

/// The kernel maps user space writes to.
struct KernelMaps {
    sockets: crate::probes::TrackedSockets,
    muted: crate::probes::MutedSockets,
}

fn apply_actions(actions: Vec<KernelAction>, maps: &mut KernelMaps) {
    for action in actions {
        match action {
            KernelAction::Mute(key) => {
                let k = SocketKey {
                    tgid: key.tgid,
                    fd: key.fd,
                };
                // Only sockets the probes track; MUTED is an LRU map of its own
                // so this never overwrites offsets the probes advance.
                if maps.sockets.get(&k, 0).is_ok() {
                    let _ = maps.muted.insert(k, 1u8, 0);
                }
            }
            KernelAction::Forget(key) => {
                let k = SocketKey {
                    tgid: key.tgid,
                    fd: key.fd,
                };
                let _ = maps.sockets.remove(&k);
                let _ = maps.muted.remove(&k);
            }
        }
    }
}

/// Seeds connections open before start into the kernel map and the pipeline.
fn seed_existing(
    sockets: &mut crate::probes::TrackedSockets,
    opts: &ProbeOptions,
    mut sink: impl FnMut(&[u8]),
) -> usize {
    const BPF_NOEXIST: u64 = 1;
    let mut seeded = 0;
    for (n, s) in crate::seed::established_sockets(std::process::id())
        .into_iter()
        .filter(|s| crate::seed::allowed(s, &opts.pids, &opts.ports, &opts.exclude_ports))
        .enumerate()
    {
        // User-space ids have the top bit set; the probes' never do.
        let conn_id = (1u64 << 63) | n as u64;
        let key = SocketKey {
            tgid: s.tgid,
            fd: s.fd,
        };
        let state = SocketState {
            conn_id,
            role: s.role,
            ..Default::default()
        };
        // NOEXIST: a connection the probes registered since attaching wins.
        if sockets.insert(key, state, BPF_NOEXIST).is_err() {
            continue;
        }
        let (la, lf) = crate::seed::raw_addr(s.local.0);
        let (ra, rf) = crate::seed::raw_addr(s.remote.0);
        let rec = probes_common::ConnOpenRecord {
            header: probes_common::RecordHeader {
                kind: probes_common::kind::CONN_OPEN,
                tgid: s.tgid,
                tid: s.tgid,
                fd: s.fd,
                ts_ns: monotonic_ns(),
            },
            conn_id,
            local: probes_common::SockAddr {
                addr: la,
                port: s.local.1,
                family: lf,
                _pad: 0,
            },
            remote: probes_common::SockAddr {
                addr: ra,
                port: s.remote.1,
                family: rf,
                _pad: 0,
            },
            role: s.role,
            origin: probes_common::origin::SEEDED,
        };
        let mut buf = Vec::with_capacity(128);
        crate::records::encode::conn_open(&rec, &mut buf);
        sink(&buf);
        seeded += 1;
    }
    seeded
}

/// SIGTERM and SIGINT, installed at once: a signal that arrives before the
/// main loop first waits must still mean "stop cleanly", not the default
/// action (an async fn would only install them when first polled).
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

/// The pid and executable path of an exec record.
fn exec_target(bytes: &[u8]) -> Option<(u32, Option<PathBuf>)> {
    let kind = u32::from_ne_bytes(bytes.get(0..4)?.try_into().ok()?);
    if kind != probes_common::kind::PROC_EXEC {
        return None;
    }
    match crate::records::decode(bytes) {
        Ok(crate::records::Record::ProcExec(e)) => {
            let path = std::str::from_utf8(e.filename)
                .ok()
                .filter(|p| p.starts_with('/'));
            let exe = path.map(|p| crate::tls_targets::stable_path(e.header.tgid, p));
            Some((e.header.tgid, exe))
        }
        _ => None,
    }
}

/// Hands every waiting record to the handler; exec records also go to TLS
/// discovery.
fn drain(
    rb: &mut aya::maps::RingBuf<MapData>,
    handler: &mut dyn RecordHandler,
    tls: &mut crate::tls_targets::TlsAttacher,
    probes: &mut Probes,
) {
    while let Some(item) = rb.next() {
        if let Some((pid, exe)) = exec_target(&item) {
            tls.on_exec(probes, pid, exe);
        }
        handler.handle(&item);
    }
}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run(config: Config, mode: Mode) -> Result<()> {
    let mut signals = ShutdownSignals::install()?;
    probes::preflight()?;
    let registry = Registry::new();
    let ready = Readiness::default();
    let listener = admin_server::bind(&config.metrics.listen).await?;
    let own_listeners: Vec<std::net::SocketAddr> = listener.local_addr().into_iter().collect();
    tokio::spawn(admin_server::serve(
        listener,
        registry.clone(),
        ready.clone(),
    ));

    let opts = ProbeOptions::from(&config.capture);
    let mut probes = Probes::load(&opts)?;
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged
    // for as long as the AsyncFd owns the ring buffer.
    let mut ring = unsafe {
        AsyncFd::register_with_interest(probes.take_ring()?, tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)
    .context("polling the ring buffer")?;
    let mut maps = KernelMaps {
        sockets: probes.take_sockets()?,
        muted: probes.take_muted()?,
    };
    let kernel_counters = probes.take_counters()?;
    let mut tls = crate::tls_targets::TlsAttacher::new(&registry);
    tls.discover_all(&mut probes, std::process::id());
    let kernel_metrics = KernelCounterMetrics::new(&registry);
    let clock_offset = clock_offset_ns();
    tracing::info!(
        programs = probes.attached,
        ring_buffer_bytes = opts.ring_buffer_bytes,
        per_call_cap_bytes = opts.per_call_cap_bytes,
        "probes attached"
    );

    let mut handler: Box<dyn RecordHandler> = match &mode {
        Mode::Spans => {
            let settings =
                span_export::ExportSettings::resolve(&config.export, &|k| std::env::var(k).ok())
                    .context("export settings")?;
            let (queue, handle) = span_export::start(settings, &registry);
            let mut settings = pipeline_settings(&config, clock_offset);
            settings.own_listeners = own_listeners;
            if config.kubernetes.enabled {
                settings.kube = Some(start_kubernetes(&config.kubernetes, &registry)?);
            }
            let pipeline = Pipeline::new(settings, queue, &registry);
            Box::new(SpanHandler {
                pipeline,
                exporter: Some(handle),
            })
        }
        Mode::Record(path) => Box::new(RecordingSink::create(path, clock_offset)?),
    };

    // Loading parsed the kernel's BTF and every executable checked for TLS:
    // give that memory back rather than carry it as resident set.
    // SAFETY: plain libc call, no pointers.
    unsafe { libc::malloc_trim(0) };
    let seeded = seed_existing(&mut maps.sockets, &opts, |bytes| handler.handle(bytes));
    tracing::info!(seeded, "connections open before start are now traced");
    ready.set_ready(true);

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The probes wake us only when much is waiting; drain on a timer too.
    let mut drain_tick = tokio::time::interval(probes::DRAIN_INTERVAL);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // New processes are checked for TLS libraries soon after exec.
    let mut tls_tick = tokio::time::interval(Duration::from_millis(25));
    tls_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                drain(guard.get_inner_mut(), handler.as_mut(), &mut tls, &mut probes);
                guard.clear_ready();
                apply_actions(handler.take_actions(), &mut maps);
            }
            _ = drain_tick.tick() => {
                drain(ring.get_mut(), handler.as_mut(), &mut tls, &mut probes);
                apply_actions(handler.take_actions(), &mut maps);
            }
            _ = tls_tick.tick() => {
                tls.poll(&mut probes);
            }
            _ = tick.tick() => {
                kernel_metrics.update(&kernel_counters);
                handler.tick(monotonic_ns());
                apply_actions(handler.take_actions(), &mut maps);
            }
            _ = signals.recv() => break,
        }
    }
    ready.set_ready(false);
    tracing::info!("stopping: draining the ring buffer and flushing spans");
    {
        let rb = ring.get_mut();
        while let Some(item) = rb.next() {
            handler.handle(&item);
        }
    }
    kernel_metrics.update(&kernel_counters);
    handler.finish().await?;
    drop(probes);
    tracing::info!("probes detached");
    Ok(())
}

/// Live records go either to the pipeline or to a recording.
trait RecordHandler {
    fn handle(&mut self, bytes: &[u8]);
    fn tick(&mut self, _now_ns: u64) {}
    fn take_actions(&mut self) -> Vec<KernelAction> {
        Vec::new()
    }
    fn finish(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>>;
}

struct SpanHandler {
    pipeline: Pipeline<span_export::SpanQueue>,
    exporter: Option<span_export::ExporterHandle>,
}

impl RecordHandler for SpanHandler {
    fn handle(&mut self, bytes: &[u8]) {
        self.pipeline.handle_bytes(bytes);
    }
    fn tick(&mut self, now_ns: u64) {
        self.pipeline.tick(now_ns);
    }
    fn take_actions(&mut self) -> Vec<KernelAction> {
        self.pipeline.take_actions()
    }
    fn finish(
        mut self: Box<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>> {
        Box::pin(async move {
            self.pipeline.flush();
            if let Some(h) = self.exporter.take() {
                let report = h.shutdown(Duration::from_secs(10)).await;
                tracing::info!(?report, "exporter stopped");
            }
            Ok(())
        })
    }
}

struct RecordingSink {
    writer: RecordingWriter<BufWriter<std::fs::File>>,
    errors: u64,
}

impl RecordingSink {
    fn create(path: &Path, clock_offset_ns: i64) -> Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        let writer = RecordingWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            RecordingHeader { clock_offset_ns },
        )
        .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { writer, errors: 0 })
    }
}

impl RecordHandler for RecordingSink {
    fn handle(&mut self, bytes: &[u8]) {
        if self.writer.write_record(bytes).is_err() {
            self.errors += 1;
        }
    }
    fn finish(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>> {
        Box::pin(async move {
            let records = self.writer.records();
            let errors = self.errors;
            self.writer.finish().context("flushing the recording")?;
            tracing::info!(records, write_errors = errors, "recording written");
            if errors > 0 {
                anyhow::bail!("{errors} records could not be written to the recording");
            }
            Ok(())
        })
    }
}

/// Runs the pipeline over a recording and exports what it builds.
pub async fn replay(config: Config, path: &Path) -> Result<ReplaySummary> {
    let registry = Registry::new();
    let settings = span_export::ExportSettings::resolve(&config.export, &|k| std::env::var(k).ok())
        .context("export settings")?;
    let (queue, handle) = span_export::start(settings, &registry);
    let (summary, _) = replay_into(&config, path, queue, &registry)?;
    let report = handle.shutdown(Duration::from_secs(30)).await;
    tracing::info!(?report, "exporter stopped");
    Ok(summary)
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplaySummary {
    pub records: u64,
}

/// Feeds a recording through a pipeline writing to `output`.
pub fn replay_into<O: SpanOutput>(
    config: &Config,
    path: &Path,
    output: O,
    registry: &Registry,
) -> Result<(ReplaySummary, O)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = RecordingReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut settings = pipeline_settings(config, reader.header().clock_offset_ns);
    settings.read_proc = false;
    // A recording's addresses belong to another host or time.
    settings.reverse_dns = None;
    let mut pipeline = Pipeline::new(settings, output, registry);
    let mut summary = ReplaySummary::default();
    while let Some(bytes) = reader
        .next_record()
        .with_context(|| format!("reading {}", path.display()))?
    {
        pipeline.handle_bytes(bytes);
        summary.records += 1;
    }
    pipeline.flush();
    Ok((summary, pipeline.into_output()))
}
