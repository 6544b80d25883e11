//! `wirespan run` and `wirespan record`: load the probes, drain the ring buffer
//! into the pipeline (or a recording), serve /metrics, and stop cleanly on
//! SIGINT/SIGTERM. Also `wirespan replay`, which feeds a recording through the
//! same pipeline without root or eBPF.

use anyhow::{Context as _, Result};
use capture::clock::{clock_offset_ns, monotonic_ns};
use capture::drain_pace::{DrainPace, WakeChange};
use capture::kernel_counters::KernelCounterMetrics;
use capture::kernel_maps::KernelMaps;
use capture::probes::{self, EventRing, ProbeOptions, Probes, WakeControl};
use capture::tls_targets::TlsAttacher;
use self_metrics::Registry;
use span_semantics::host::HostFacts;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};
use wirespan_config::Config;

use crate::admin_server::{self, Readiness};
use crate::pipeline::{KernelAction, Pipeline, PipelineSettings, SpanOutput};
use crate::recording::{RecordingHeader, RecordingReader, RecordingWriter};
use conn_tracker::Direction;

/// What `run` does with each record.
pub enum Mode {
    /// Build and export spans.
    Spans,
    /// Write raw records to a file (and build no spans).
    Record(PathBuf),
}

/// The pipeline's settings from `config`; `host` is what it takes from the
/// host ([`HostFacts::of_this_host`] live, [`HostFacts::hermetic`] in tests
/// and benches): nothing else is read from the machine.
pub fn pipeline_settings(
    config: &Config,
    clock_offset_ns: i64,
    host: HostFacts,
) -> PipelineSettings {
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
    let span_builder = span_semantics::span_builder::SpanBuilder::new(
        span_semantics::span_builder::IdGenerator::with_seed(host.id_seed),
        span_semantics::routes::RouteTable::new(&config.http.routes),
    )
    .with_redaction(span_semantics::redact::QueryRedactor::new(
        &config.http.redact_query_params,
    ))
    .with_templated_names(config.http.templated_span_names)
    .with_opt_in(span_semantics::span_builder::OptIn::from_names(
        &config.http.opt_in_attributes,
    ));
    PipelineSettings {
        tracker,
        clock_offset_ns,
        peers: span_semantics::peers::PeerNames::new(&config.service.peers),
        service_rules: config.service.rules.clone(),
        host,
        span_builder,
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
) -> Result<std::sync::Arc<dyn span_semantics::identity::KubeLookup>> {
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
    Ok(std::sync::Arc::new(kube))
}

/// Carries out what the pipeline asked of the kernel.
fn apply_actions(actions: Vec<KernelAction>, maps: &mut KernelMaps) {
    for action in actions {
        match action {
            KernelAction::Mute(key) => maps.mute(key.tgid, key.fd),
            KernelAction::Forget(key) => maps.forget(key.tgid, key.fd),
            KernelAction::SkipBody {
                key,
                conn_id,
                dir,
                until,
            } => {
                let dir = match dir {
                    Direction::Egress => probes_common::direction::EGRESS,
                    Direction::Ingress => probes_common::direction::INGRESS,
                };
                maps.skip_body(key.tgid, key.fd, conn_id.0, dir, until.0);
            }
        }
    }
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

/// Hands every waiting record to the handler; exec, executable-mmap and
/// TLS integrity records also go to TLS discovery. What the handler asks of
/// the kernel is applied at once, not after the drain: a body to skip must
/// reach the probes while the body is still being read. Returns how many.
fn drain(
    rb: &mut EventRing,
    handler: &mut dyn RecordHandler,
    tls: &mut TlsAttacher,
    probes: &mut Probes,
    maps: &mut KernelMaps,
) -> usize {
    let mut records = 0;
    while let Some(item) = rb.next() {
        tls.on_record(probes, &item);
        handler.handle(&item);
        if handler.has_actions() {
            apply_actions(handler.take_actions(), maps);
        }
        records += 1;
    }
    records
}

/// Moves the drain pace on after a drain, and tells the probes when to wake
/// us. If they cannot be told, the pace stays short.
fn pace_after_drain(
    pace: &mut DrainPace,
    wake: &mut WakeControl,
    records: usize,
    timed: bool,
) -> WakeChange {
    let change = pace.after_drain(records, timed);
    let written = match change {
        WakeChange::Keep => return change,
        WakeChange::EveryRecord => wake.wake_at_every_record(true),
        WakeChange::AtThreshold => wake.wake_at_every_record(false),
    };
    if let Err(e) = written {
        // Once: the pace never asks again.
        tracing::warn!("the drain timer stays at its short interval for good: {e:#}");
        pace.wake_change_failed();
        return WakeChange::Keep;
    }
    change
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
    let mut maps = KernelMaps::take(&mut probes)?;
    let kernel_counters = probes.take_counters()?;
    // Stripped TLS code is analysed in a child process of this executable
    // (bounded memory and time, nothing left in the agent's resident set).
    let locate_in = match std::env::current_exe() {
        Ok(exe) => capture::tls_locator::LocateIn::ChildProcess(exe),
        Err(e) => {
            tracing::warn!("own executable not found ({e}): TLS analysis runs in a thread");
            capture::tls_locator::LocateIn::Thread
        }
    };
    let mut tls =
        TlsAttacher::new(&registry).with_locator(locate_in, config.tls.debug_dirs.clone());
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
            let mut settings = pipeline_settings(&config, clock_offset, HostFacts::of_this_host());
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
    let seeded = maps.seed_existing(&opts, |bytes| handler.handle(bytes));
    tracing::info!(seeded, "connections open before start are now traced");
    ready.set_ready(true);

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The probes wake us only when much is waiting, or at every record while
    // we back off; drain on a timer too (capture::drain_pace).
    let mut wake = probes.take_wake_control()?;
    let mut pace = DrainPace::new();
    let drain_timer = tokio::time::sleep(pace.interval());
    tokio::pin!(drain_timer);
    // TLS discovery wakes us only while it has work (TlsAttacher::next_poll).
    let tls_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(tls_timer);

    loop {
        let tls_due = tls.next_poll();
        if let Some(due) = tls_due {
            let due = tokio::time::Instant::from_std(due);
            if tls_timer.deadline() != due {
                tls_timer.as_mut().reset(due);
            }
        }
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                let records = drain(
                    guard.get_inner_mut(), handler.as_mut(), &mut tls, &mut probes, &mut maps,
                );
                guard.clear_ready();
                if records > 0 {
                    pace_after_drain(&mut pace, &mut wake, records, false);
                    drain_timer.as_mut().reset(tokio::time::Instant::now() + pace.interval());
                }
            }
            _ = &mut drain_timer => {
                let mut records =
                    drain(ring.get_mut(), handler.as_mut(), &mut tls, &mut probes, &mut maps);
                if pace_after_drain(&mut pace, &mut wake, records, true) == WakeChange::EveryRecord {
                    // Records written before the probes saw the change
                    // would not wake us: take them now.
                    records =
                        drain(ring.get_mut(), handler.as_mut(), &mut tls, &mut probes, &mut maps);
                    pace_after_drain(&mut pace, &mut wake, records, false);
                }
                drain_timer.as_mut().reset(tokio::time::Instant::now() + pace.interval());
            }
            _ = &mut tls_timer, if tls_due.is_some() => {
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
    fn has_actions(&self) -> bool {
        false
    }
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
    fn has_actions(&self) -> bool {
        self.pipeline.has_actions()
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
    let (summary, _) = replay_into(&config, path, queue, &registry, HostFacts::of_this_host())?;
    let report = handle.shutdown(Duration::from_secs(30)).await;
    tracing::info!(?report, "exporter stopped");
    Ok(summary)
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplaySummary {
    pub records: u64,
}

/// Feeds a recording through a pipeline writing to `output`. `host` is what
/// the pipeline takes from the host replaying it; `/proc` is never read (the
/// recording's pids belong to another host or time).
pub fn replay_into<O: SpanOutput>(
    config: &Config,
    path: &Path,
    output: O,
    registry: &Registry,
    host: HostFacts,
) -> Result<(ReplaySummary, O)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = RecordingReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut settings = pipeline_settings(config, reader.header().clock_offset_ns, host);
    settings.host.read_proc = false;
    // A recording's addresses belong to another host or time.
    settings.reverse_dns = None;
    let mut pipeline = Pipeline::new(settings, output, registry);
    let mut summary = ReplaySummary::default();
    while let Some(bytes) = reader
        .next_record()
        .with_context(|| format!("reading {}", path.display()))?
    {
        pipeline.handle_bytes(bytes);
        // No kernel to tell: dropped, so they do not pile up over a long recording.
        drop(pipeline.take_actions());
        summary.records += 1;
    }
    pipeline.flush();
    Ok((summary, pipeline.into_output()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wirespan-config` is the one source of each default: the defaults the
    /// libraries carry for their own tests must be the same values.
    #[test]
    fn library_defaults_are_the_config_defaults() {
        let config = Config::default();
        let from_config = pipeline_settings(&config, 0, HostFacts::hermetic()).tracker;
        let library = conn_tracker::TrackerLimits::default();
        assert_eq!(from_config.max_connections, library.max_connections);
        assert_eq!(from_config.idle_timeout_ns, library.idle_timeout_ns);
        assert_eq!(from_config.memory_limit_bytes, library.memory_limit_bytes);
        assert_eq!(
            from_config.http1.max_head_bytes,
            library.http1.max_head_bytes
        );
        assert_eq!(
            from_config.http1.max_pending_requests,
            library.http1.max_pending_requests
        );
        assert_eq!(
            config.kubernetes.max_objects,
            k8s_metadata::KubeSettings::default().max_objects
        );
    }
}
