//! The configuration schema: one serde type per YAML section. Every struct refuses
//! unknown keys, and every field has a default, so an empty file is a valid config.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The whole `wirespan.yaml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureConfig,
    pub connections: ConnectionsConfig,
    pub http: HttpConfig,
    pub service: ServiceConfig,
    pub traces: TracesConfig,
    pub tls: TlsConfig,
    pub kubernetes: KubernetesConfig,
    pub export: ExportConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

/// What the kernel probes copy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Most payload bytes copied from one syscall; the rest is counted, not copied.
    /// At most 4194304 (4 MiB).
    pub per_call_cap_bytes: u32,
    /// Size of the BPF ring buffer, a power of two of at least 65536.
    pub ring_buffer_bytes: u32,
    /// Most sockets tracked by the probes at once (BPF hash map size).
    pub max_sockets: u32,
    /// Only trace these processes (empty: every process).
    pub pids: Vec<u32>,
    /// Only trace connections with one of these local or remote ports (empty: all).
    pub ports: Vec<u16>,
    /// Never trace connections with one of these local or remote ports.
    pub exclude_ports: Vec<u16>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            per_call_cap_bytes: 256 * 1024,
            ring_buffer_bytes: 8 * 1024 * 1024,
            max_sockets: 65536,
            pids: Vec::new(),
            ports: Vec::new(),
            exclude_ports: Vec::new(),
        }
    }
}

/// Connection tracking in user space.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Most connections tracked; the idlest is evicted (and counted) beyond it.
    pub max_connections: usize,
    /// A connection with no traffic for this long is evicted (and counted).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Hard bound on bytes buffered by all connections' parsers together.
    pub memory_limit_bytes: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max_connections: 65536,
            idle_timeout: Duration::from_secs(300),
            memory_limit_bytes: 64 * 1024 * 1024,
        }
    }
}

/// HTTP parsing limits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request or response head (start line plus headers) parsed; a larger
    /// one is skipped and counted.
    pub max_header_bytes: usize,
    /// Most requests waiting for their response on one connection (pipelining).
    pub max_pending_requests: usize,
    /// Route patterns for `http.route`, such as `/users/{id}`; first match wins.
    pub routes: Vec<String>,
    /// Query parameters whose values are replaced by `REDACTED` in `url.query`
    /// and `url.full` (names compared without case).
    pub redact_query_params: Vec<String>,
    /// When no route matches, name spans after the path with numeric, UUID and
    /// hexadecimal-hash segments replaced by `{id}`, `{uuid}` and `{hash}`
    /// (the span name only; `http.route` stays unset).
    pub templated_span_names: bool,
    /// Attributes the HTTP semantic conventions mark Opt-In (off unless asked
    /// for) that the agent can set: names from [`OPT_IN_ATTRIBUTES`], or `all`.
    pub opt_in_attributes: Vec<String>,
}

/// The Opt-In attributes of the HTTP span conventions that the agent can set
/// when `http.opt_in_attributes` names them (`all`: every one). Each is Opt-In
/// on the spans listed; where the conventions ask for it (`url.scheme` and
/// `user_agent.original` on server spans) it is always set.
pub const OPT_IN_ATTRIBUTES: &[&str] = &[
    // Server spans.
    "client.port",
    // Server and client spans.
    "network.local.address",
    "network.local.port",
    "network.transport",
    // Conditionally required only when the protocol is not HTTP, so for these
    // spans (always HTTP) it is extra.
    "network.protocol.name",
    "http.request.body.size",
    "http.response.body.size",
    // Client spans.
    "url.scheme",
    "user_agent.original",
];

/// The `http.opt_in_attributes` entry that turns on every one of them.
pub const OPT_IN_ALL: &str = "all";

/// Query parameters that carry secrets often enough to hide by default.
pub const DEFAULT_REDACTED_QUERY_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "cookie",
    "session",
    "sessionid",
    "session_id",
    "sig",
    "signature",
    "awsaccesskeyid",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_pending_requests: 64,
            routes: Vec::new(),
            redact_query_params: DEFAULT_REDACTED_QUERY_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            templated_span_names: false,
            opt_in_attributes: Vec::new(),
        }
    }
}

/// How processes and peers are named.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Names for processes that set no OTEL_SERVICE_NAME; first match wins.
    pub rules: Vec<ServiceRule>,
    /// Names for remote peers by address; first match wins.
    pub peers: Vec<PeerRule>,
    /// Names for other remote peers from reverse DNS.
    pub reverse_dns: ReverseDnsConfig,
}

/// `service.reverse_dns`: peer names from the host's resolver (PTR, /etc/hosts).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReverseDnsConfig {
    pub enabled: bool,
    /// Addresses remembered.
    pub max_entries: usize,
    /// How long a found name is used before it is looked up again.
    #[serde(with = "humantime_serde")]
    pub positive_ttl: Duration,
    /// How long "no name" or a failed lookup is remembered.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Lookups running at once; more are dropped (counted).
    pub max_in_flight: usize,
    /// A lookup that takes longer counts as timed out.
    #[serde(with = "humantime_serde")]
    pub lookup_timeout: Duration,
}

impl Default for ReverseDnsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_entries: 4096,
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(60),
            max_in_flight: 4,
            lookup_timeout: Duration::from_secs(2),
        }
    }
}

/// Kubernetes metadata from the API server.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    pub enabled: bool,
    /// API server URL; None: in-cluster.
    pub api_url: Option<String>,
    /// This node's name; None: `$NODE_NAME`.
    pub node_name: Option<String>,
    /// `cluster` or `node`.
    pub watch_scope: String,
    /// Pods, Services and ReplicaSets kept at most.
    pub max_objects: usize,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_url: None,
            node_name: None,
            watch_scope: "cluster".to_string(),
            max_objects: 20_000,
        }
    }
}

/// How spans are joined into traces.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Outbound requests a thread sends while it serves an inbound request
    /// become children of that request's server span.
    pub in_process_parents: bool,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            in_process_parents: true,
        }
    }
}

/// Finding TLS libraries to hook.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Directories of debug files (a `.build-id/xx/yyyy.debug` tree, or files
    /// named by `.gnu_debuglink`), searched before `/usr/lib/debug` for the
    /// symbols of stripped executables and libraries. Absolute paths.
    pub debug_dirs: Vec<std::path::PathBuf>,
}

/// `service.name` for processes whose executable name or path matches.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceRule {
    /// Executable name (as in /proc/PID/comm or the exec path's last part).
    #[serde(default)]
    pub exe_name: Option<String>,
    /// Prefix of the executable's full path.
    #[serde(default)]
    pub exe_path_prefix: Option<String>,
    /// The service name to use.
    pub name: String,
}

/// `service.peer.name` for remote addresses.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerRule {
    /// An IP network such as `10.1.0.0/16` or a single address.
    #[serde(default)]
    pub cidr: Option<String>,
    /// A port; with `cidr`, both must match.
    #[serde(default)]
    pub port: Option<u16>,
    pub name: String,
}

/// Where spans go. The standard OTEL_EXPORTER_OTLP_* variables override these.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// OTLP export; absent (and no OTEL_EXPORTER_OTLP_ENDPOINT): spans go to stdout.
    pub otlp: Option<OtlpConfig>,
    /// Print spans to stdout, one line each, even when OTLP is configured.
    pub stdout: bool,
    /// Spans waiting for export; beyond it new spans are dropped and counted.
    pub queue_size: usize,
    /// Most bytes of spans the export path holds: queued, in a batch, or in
    /// a request being sent or retried (each span counted as its protobuf
    /// size). Beyond it new spans are dropped and counted, as with
    /// `queue_size`, whichever is reached first.
    pub max_queue_bytes: usize,
    /// Most spans in one batch (one export request, unless over `max_request_bytes`).
    pub max_batch_size: usize,
    /// Largest export request, in bytes of protobuf before compression; a
    /// batch above it is sent as several requests. The default stays under
    /// the 4 MiB that gRPC receivers accept by default.
    pub max_request_bytes: usize,
    /// Longest a span waits before its batch is sent.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Most OTLP export requests in flight at once (each a batch, retried on
    /// its own), 1 to 64. More than one keeps the export path busy while a
    /// request waits for its answer.
    pub max_concurrent_exports: usize,
    /// Share of traces kept, 0.0 to 1.0, decided from the trace id (so both
    /// ends of a same-host request decide alike); a request whose traceparent
    /// carries a sampling decision follows it.
    pub sample_ratio: f64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            otlp: None,
            stdout: false,
            queue_size: 8192,
            max_queue_bytes: 16 * 1024 * 1024,
            max_batch_size: 512,
            max_request_bytes: 3 * 1024 * 1024,
            batch_timeout: Duration::from_secs(1),
            max_concurrent_exports: 4,
            sample_ratio: 1.0,
        }
    }
}

/// The OTLP transport: `grpc` or `http/protobuf` in the file.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The names used in the file, as the OTLP exporter spec spells them.
    pub const NAMES: &'static [&'static str] = &["grpc", "http/protobuf"];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

impl std::str::FromStr for OtlpProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            other => Err(format!(
                "unknown variant \"{other}\", expected \"grpc\" or \"http/protobuf\""
            )),
        }
    }
}

// By hand rather than derived: deserializing from a plain string gives serde's
// "unknown variant" message (with the expected names) from every data format,
// where the `config` crate's own enum support does not name them.
impl<'de> Deserialize<'de> for OtlpProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = OtlpProtocol;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"grpc\" or \"http/protobuf\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OtlpProtocol, E> {
                v.parse()
                    .map_err(|_| E::unknown_variant(v, OtlpProtocol::NAMES))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// OTLP exporter settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// `http://host:4317` for gRPC, `http://host:4318` for HTTP (the signal path
    /// `/v1/traces` is appended for HTTP, as the OTLP exporter spec says).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Extra request headers, such as an API key.
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://localhost:4317".to_string(),
            protocol: OtlpProtocol::Grpc,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The agent's own HTTP endpoint (/metrics, /readyz, /healthz).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to listen on; loopback by default so it is not exposed.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".to_string(),
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `wirespan=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
        }
    }
}

/// Parses a `service.peers[].cidr`: an IPv4 or IPv6 network with its prefix length
/// (`10.1.0.0/16`, `fd00::/8`) or one address (`10.1.2.3`, meaning `/32` or `/128`).
/// Returns the address and the prefix length.
pub fn parse_cidr(cidr: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (addr, prefix) = match cidr.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (cidr, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| {
        format!("{cidr:?} is not an IP network such as 10.1.0.0/16 or fd00::/8, nor an IP address")
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{cidr:?}: the prefix length must be 0 to {max}")),
        },
    };
    Ok((ip, len))
}
