//! End-to-end export throughput: spans per second from `SpanQueue::try_send`
//! through the real exporter task to an OTLP receiver over loopback, over
//! gRPC and over HTTP/protobuf.
//!
//! Method: a producer thread offers `SPANS` realistic HTTP server spans (22
//! attributes, 4 shared process resources with 11 attributes each, as
//! `collector`'s span builder makes them), cloning a template and changing the
//! ids. It never lets the queue overflow: it waits while the queue holds more
//! than `queue_size - max_batch_size` spans, so the export path alone sets the
//! pace (drops are reported, and should be 0). The exporter runs on a
//! 2-worker tokio runtime, like the agent, with the agent's default settings
//! (queue 8192, batches of 512) except the varied ones. Timing runs from the
//! first offer until exported + dropped = `SPANS`.
//!
//! The receiver is another process (this executable re-run with
//! `EXPORT_BENCH_RECEIVER=grpc|http`), so its CPU is not ours: the tests' OTLP
//! receiver (`test_support::otlp`, tonic or hyper HTTP/1, 2 workers) with a
//! counting inbox, which decodes each request fully and keeps only its span
//! count. With `EXPORT_BENCH_ROTEL=/path/to/rotel-agent`, rotel
//! (`--exporter blackhole`) is measured as well.
//!
//! CPU is read from `/proc/<pid>/stat` (utime + stime, 10 ms ticks) for this
//! process (exporter + producer) and the receiver.
//!
//! ```sh
//! cargo bench -p span-export --bench export_throughput
//! EXPORT_BENCH_SPANS=400000 EXPORT_BENCH_ROTEL=$(python3 -c 'import rotel,os;print(os.path.dirname(rotel.__file__))')/rotel-agent \
//!   cargo bench -p span-export --bench export_throughput
//! ```
//!
//! `EXPORT_BENCH_FILTER=grpc` runs only the cases whose label contains it.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use span_export::{span, ExportSettings, ExportSpan, ProcessResource, SpanData};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::otlp::{BlockingReceiver, Inbox};
use test_support::spans::{int_kv as i, string_kv as s};
use wirespan_config::{ExportConfig, OtlpConfig, OtlpProtocol};

// === spans ===

/// Resource attributes as `collector`'s process table sets them.
fn resources() -> Vec<Arc<ProcessResource>> {
    (0..4u64)
        .map(|id| {
            Arc::new(ProcessResource {
                id,
                attributes: vec![
                    s("service.name", &format!("service-{id}")),
                    i("process.pid", 1000 + id as i64),
                    i("process.parent_pid", 1),
                    s("process.executable.name", "nginx"),
                    s("process.executable.path", "/usr/sbin/nginx"),
                    s("host.name", "bench-host"),
                    s("telemetry.sdk.name", "wirespan"),
                    s("telemetry.sdk.language", "rust"),
                    s("telemetry.sdk.version", "0.1.0"),
                    s("telemetry.distro.name", "wirespan"),
                    s("telemetry.distro.version", "0.1.0"),
                ],
            })
        })
        .collect()
}

/// An HTTP/1 server span with the attributes `collector`'s span builder sets.
fn template(resource: Arc<ProcessResource>) -> ExportSpan {
    let attributes = vec![
        s("http.request.method", "GET"),
        s("url.path", "/api/v1/items/12345"),
        s("url.query", "page=2&limit=50"),
        s("url.scheme", "http"),
        s("http.route", "/api/v1/items/{id}"),
        s("network.protocol.name", "http"),
        s("network.protocol.version", "1.1"),
        s("network.transport", "tcp"),
        s("server.address", "api.internal"),
        i("server.port", 8080),
        s("client.address", "10.1.2.3"),
        i("client.port", 51234),
        s("network.peer.address", "10.1.2.3"),
        i("network.peer.port", 51234),
        s("network.local.address", "10.1.2.4"),
        i("network.local.port", 8080),
        s("user_agent.original", "wrk/4.2.0 (x86_64-pc-linux-gnu)"),
        i("http.request.body.size", 0),
        s("service.peer.name", "frontend"),
        i("http.response.status_code", 200),
        i("http.response.body.size", 1024),
        s("wirespan.capture.incomplete", "gap"),
    ];
    ExportSpan {
        resource,
        attrs: Default::default(),
        span: SpanData {
            trace_id: [0; 16],
            span_id: [0; 8],
            parent_span_id: Some([7; 8]),
            name: "GET /api/v1/items/{id}".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_764_099_601_123_000_000,
            end_time_unix_nano: 1_764_099_601_124_200_000,
            attributes,
            status: Some(span_export::Status::default()),
            ..Default::default()
        },
    }
}

fn nth(templates: &[ExportSpan], n: u64) -> ExportSpan {
    let mut span = templates[n as usize % templates.len()].clone();
    span.span.trace_id[..8].copy_from_slice(&n.to_be_bytes());
    span.span
        .span_id
        .copy_from_slice(&(n ^ 0x5a5a).to_be_bytes());
    span.span.start_time_unix_nano += n * 1000;
    span.span.end_time_unix_nano += n * 1000;
    span
}

// === receivers (child process) ===

/// Runs the receiver named by `kind` and prints its port; never returns.
fn run_receiver(kind: &str) -> ! {
    let protocol = match kind {
        "grpc" => OtlpProtocol::Grpc,
        "http" => OtlpProtocol::HttpProtobuf,
        other => panic!("unknown receiver {other}"),
    };
    // Two workers, like a small collector; the bench machine has 2 cores.
    let rx = BlockingReceiver::start_on(protocol, "127.0.0.1:0", Inbox::counting());
    println!("PORT {}", rx.addr.port());
    loop {
        std::thread::park();
    }
}

struct ReceiverProcess {
    child: Child,
    grpc: String,
    http: String,
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn spawn_own_receiver(kind: &str) -> ReceiverProcess {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("EXPORT_BENCH_RECEIVER", kind)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    ReceiverProcess {
        child,
        grpc: url.clone(),
        http: url,
    }
}

fn spawn_rotel(path: &str) -> ReceiverProcess {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (g, h) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("export-bench-rotel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(path)
        .args(["start", "--otlp-grpc-endpoint", &format!("127.0.0.1:{g}")])
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{h}")])
        .args(["--exporter", "blackhole", "--pid-file"])
        .arg(dir.join("rotel.pid"))
        .arg("--log-file")
        .arg(dir.join("rotel.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rotel-agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", g)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", h)).is_err()
    {
        assert!(Instant::now() < deadline, "rotel-agent did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    ReceiverProcess {
        child,
        grpc: format!("http://127.0.0.1:{g}"),
        http: format!("http://127.0.0.1:{h}"),
    }
}

// === measuring ===

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11] + f[12]) as f64 / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

struct Case {
    label: String,
    protocol: OtlpProtocol,
    endpoint: String,
    receiver_pid: u32,
    gzip: bool,
    concurrent: usize,
}

struct Result_ {
    spans_per_s: f64,
    our_cpu_us_per_span: f64,
    receiver_cpu_us_per_span: f64,
    dropped: u64,
    requests: u64,
}

fn run_case(case: &Case, spans: u64) -> Result_ {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = ExportConfig {
        otlp: Some(OtlpConfig {
            endpoint: case.endpoint.clone(),
            protocol: case.protocol,
            ..Default::default()
        }),
        ..Default::default()
    };
    let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_COMPRESSION" && case.gzip).then(|| "gzip".into());
    let mut settings = ExportSettings::resolve(&cfg, &env).expect("settings");
    set_concurrency(&mut settings, case.concurrent);
    let limit = (settings.queue_size - settings.max_batch_size) as i64;
    let registry = self_metrics::Registry::new();
    let (queue, handle) = {
        let _guard = rt.enter();
        span_export::start(settings, &registry)
    };
    let queued = registry.gauge("wirespan_export_queue_spans", "", &[]);
    let exported = registry.counter("wirespan_spans_exported_total", "", &[]);
    let requests = registry.counter("wirespan_export_requests_total", "", &[("result", "ok")]);
    let resources = resources();
    let templates: Vec<ExportSpan> = resources.iter().cloned().map(template).collect();

    // Warm up: connect, and let allocators and windows settle.
    for n in 0..2048 {
        queue.try_send(nth(&templates, n));
    }
    while exported.get() < 2048 {
        std::thread::sleep(Duration::from_millis(1));
    }

    let dropped_before = registry.sum("wirespan_spans_dropped_total") as u64;
    let exported_before = exported.get();
    let requests_before = requests.get();
    let (cpu0, rcpu0) = (
        cpu_seconds(std::process::id()),
        cpu_seconds(case.receiver_pid),
    );
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || {
        for n in 0..spans {
            while queued.get() > limit {
                std::thread::sleep(Duration::from_micros(200));
            }
            queue.try_send(nth(&templates, 1_000_000 + n));
        }
        queue
    });
    let queue = producer.join().unwrap();
    loop {
        let done = exported.get() - exported_before
            + (registry.sum("wirespan_spans_dropped_total") as u64 - dropped_before);
        if done >= spans {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rcpu1) = (
        cpu_seconds(std::process::id()),
        cpu_seconds(case.receiver_pid),
    );
    drop(queue);
    rt.block_on(handle.shutdown(Duration::from_secs(5)));
    Result_ {
        spans_per_s: spans as f64 / elapsed,
        our_cpu_us_per_span: (cpu1 - cpu0) * 1e6 / spans as f64,
        receiver_cpu_us_per_span: (rcpu1 - rcpu0) * 1e6 / spans as f64,
        dropped: registry.sum("wirespan_spans_dropped_total") as u64 - dropped_before,
        requests: requests.get() - requests_before,
    }
}

fn set_concurrency(settings: &mut ExportSettings, n: usize) {
    settings.max_concurrent_exports = n;
}

/// Producer alone: what cloning the spans costs, to subtract mentally.
fn producer_cost(spans: u64) -> f64 {
    let templates: Vec<ExportSpan> = resources().into_iter().map(template).collect();
    let t0 = Instant::now();
    for n in 0..spans {
        std::hint::black_box(nth(&templates, n));
    }
    t0.elapsed().as_secs_f64() * 1e6 / spans as f64
}

fn main() {
    if let Ok(kind) = std::env::var("EXPORT_BENCH_RECEIVER") {
        run_receiver(&kind);
    }
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs benches with `--test`-like flags: stay quick.
    let quick = !args.iter().any(|a| a == "--bench");
    let spans: u64 = std::env::var("EXPORT_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5_000 } else { 200_000 });
    let concurrency: Vec<usize> = std::env::var("EXPORT_BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1]);
    let filter = std::env::var("EXPORT_BENCH_FILTER").unwrap_or_default();

    let own_grpc = spawn_own_receiver("grpc");
    let own_http = spawn_own_receiver("http");
    let rotel = std::env::var("EXPORT_BENCH_ROTEL")
        .ok()
        .map(|p| spawn_rotel(&p));

    let mut cases = Vec::new();
    let mut add = |name: &str, protocol, endpoint: String, pid: u32| {
        for gzip in [false, true] {
            for &c in &concurrency {
                cases.push(Case {
                    label: format!("{name} {} c={c}", if gzip { "gzip" } else { "none" }),
                    protocol,
                    endpoint: endpoint.clone(),
                    receiver_pid: pid,
                    gzip,
                    concurrent: c,
                });
            }
        }
    };
    add(
        "grpc/tonic",
        OtlpProtocol::Grpc,
        own_grpc.grpc.clone(),
        own_grpc.child.id(),
    );
    add(
        "http/hyper",
        OtlpProtocol::HttpProtobuf,
        own_http.http.clone(),
        own_http.child.id(),
    );
    if let Some(r) = &rotel {
        add(
            "grpc/rotel",
            OtlpProtocol::Grpc,
            r.grpc.clone(),
            r.child.id(),
        );
        add(
            "http/rotel",
            OtlpProtocol::HttpProtobuf,
            r.http.clone(),
            r.child.id(),
        );
    }

    println!(
        "export_throughput: {spans} spans per case, producer alone {:.2} µs/span, load average {}",
        producer_cost(spans.min(50_000)),
        load_average()
    );
    println!(
        "{:<26} {:>10} {:>12} {:>14} {:>8} {:>8} {:>6}",
        "case", "spans/s", "our µs/span", "recv µs/span", "requests", "dropped", "load"
    );
    for case in cases.iter().filter(|c| c.label.contains(&filter)) {
        let r = run_case(case, spans);
        println!(
            "{:<26} {:>10.0} {:>12.2} {:>14.2} {:>8} {:>8} {:>6}",
            case.label,
            r.spans_per_s,
            r.our_cpu_us_per_span,
            r.receiver_cpu_us_per_span,
            r.requests,
            r.dropped,
            load_average()
        );
    }
}
