//! Config::validate: every rule, each refusal with its dotted key and a reason, and
//! every problem reported at once.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::time::Duration;

use wirespan_config::{Config, OtlpConfig, PeerRule, ServiceRule, ValidationError};

fn problems(c: &Config) -> Vec<ValidationError> {
    c.validate().err().unwrap_or_default()
}

/// The only problem is at `key`; its reason contains `reason`.
fn only(c: &Config, key: &str, reason: &str) {
    let p = problems(c);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, key, "{p:?}");
    assert!(
        p[0].reason.contains(reason),
        "{:?} lacks {reason:?}",
        p[0].reason
    );
}

fn with(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    f(&mut c);
    c
}

fn with_otlp(f: impl FnOnce(&mut OtlpConfig)) -> Config {
    with(|c| {
        let mut o = OtlpConfig::default();
        f(&mut o);
        c.export.otlp = Some(o);
    })
}

#[test]
fn defaults_are_valid() {
    assert_eq!(Config::default().validate(), Ok(()));
    assert_eq!(with_otlp(|_| {}).validate(), Ok(()));
}

#[test]
fn per_call_cap_bytes_range() {
    only(
        &with(|c| c.capture.per_call_cap_bytes = 0),
        "capture.per_call_cap_bytes",
        "must be 1 to 4194304",
    );
    only(
        &with(|c| c.capture.per_call_cap_bytes = 4194305),
        "capture.per_call_cap_bytes",
        "out of range",
    );
    assert!(with(|c| c.capture.per_call_cap_bytes = 1)
        .validate()
        .is_ok());
    assert!(with(|c| c.capture.per_call_cap_bytes = 4194304)
        .validate()
        .is_ok());
}

#[test]
fn ring_buffer_bytes_power_of_two_and_range() {
    only(
        &with(|c| c.capture.ring_buffer_bytes = 100_000),
        "capture.ring_buffer_bytes",
        "not a power of two",
    );
    only(
        &with(|c| c.capture.ring_buffer_bytes = 32768),
        "capture.ring_buffer_bytes",
        "must be 65536 to 1073741824",
    );
    only(
        &with(|c| c.capture.ring_buffer_bytes = 1 << 31),
        "capture.ring_buffer_bytes",
        "out of range",
    );
    only(
        &with(|c| c.capture.ring_buffer_bytes = 0),
        "capture.ring_buffer_bytes",
        "out of range",
    );
    assert!(with(|c| c.capture.ring_buffer_bytes = 65536)
        .validate()
        .is_ok());
    assert!(with(|c| c.capture.ring_buffer_bytes = 1 << 30)
        .validate()
        .is_ok());
}

#[test]
fn counts_at_least_one() {
    only(
        &with(|c| c.capture.max_sockets = 0),
        "capture.max_sockets",
        "at least 1",
    );
    only(
        &with(|c| c.connections.max_connections = 0),
        "connections.max_connections",
        "at least 1",
    );
    only(
        &with(|c| c.http.max_pending_requests = 0),
        "http.max_pending_requests",
        "at least 1",
    );
}

#[test]
fn port_zero() {
    only(
        &with(|c| c.capture.ports = vec![80, 0]),
        "capture.ports[1]",
        "port 0",
    );
    only(
        &with(|c| c.capture.exclude_ports = vec![0]),
        "capture.exclude_ports[0]",
        "port 0",
    );
}

#[test]
fn memory_limit_at_least_one_mib() {
    only(
        &with(|c| c.connections.memory_limit_bytes = 1024 * 1024 - 1),
        "connections.memory_limit_bytes",
        "at least 1048576",
    );
    assert!(with(|c| c.connections.memory_limit_bytes = 1024 * 1024)
        .validate()
        .is_ok());
}

#[test]
fn timeouts_above_zero() {
    only(
        &with(|c| c.connections.idle_timeout = Duration::ZERO),
        "connections.idle_timeout",
        "longer than zero",
    );
    only(
        &with(|c| c.export.batch_timeout = Duration::ZERO),
        "export.batch_timeout",
        "longer than zero",
    );
    only(
        &with_otlp(|o| o.timeout = Duration::ZERO),
        "export.otlp.timeout",
        "longer than zero",
    );
}

#[test]
fn max_header_bytes_range() {
    only(
        &with(|c| c.http.max_header_bytes = 255),
        "http.max_header_bytes",
        "must be 256 to 1048576",
    );
    only(
        &with(|c| c.http.max_header_bytes = 1024 * 1024 + 1),
        "http.max_header_bytes",
        "out of range",
    );
    assert!(with(|c| c.http.max_header_bytes = 256).validate().is_ok());
}

#[test]
fn queue_and_batch() {
    let c = with(|c| c.export.queue_size = 0);
    let p = problems(&c);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key, "export.queue_size");
    assert_eq!(p[1].key, "export.max_batch_size");
    only(
        &with(|c| c.export.max_batch_size = 0),
        "export.max_batch_size",
        "must be 1 to export.queue_size (8192)",
    );
    only(
        &with(|c| c.export.max_batch_size = 8193),
        "export.max_batch_size",
        "out of range",
    );
    assert!(with(|c| c.export.max_batch_size = 8192).validate().is_ok());
}

#[test]
fn max_request_bytes_range() {
    only(
        &with(|c| c.export.max_request_bytes = 4095),
        "export.max_request_bytes",
        "must be 4096 to 268435456",
    );
    only(
        &with(|c| c.export.max_request_bytes = 256 * 1024 * 1024 + 1),
        "export.max_request_bytes",
        "out of range",
    );
    assert!(with(|c| c.export.max_request_bytes = 4096)
        .validate()
        .is_ok());
    // Under the 4 MiB a gRPC receiver takes by default.
    assert!(Config::default().export.max_request_bytes < 4 * 1024 * 1024);
}

#[test]
fn max_queue_bytes_range() {
    only(
        &with(|c| c.export.max_queue_bytes = 4 * 1024 * 1024 - 1),
        "export.max_queue_bytes",
        "must be 4194304 to 17179869184",
    );
    only(
        &with(|c| c.export.max_queue_bytes = 16 * 1024 * 1024 * 1024 + 1),
        "export.max_queue_bytes",
        "out of range",
    );
    assert!(with(|c| c.export.max_queue_bytes = 4 * 1024 * 1024)
        .validate()
        .is_ok());
}

#[test]
fn max_concurrent_exports_range() {
    assert_eq!(Config::default().export.max_concurrent_exports, 4);
    for bad in [0, 65, 1000] {
        only(
            &with(|c| c.export.max_concurrent_exports = bad),
            "export.max_concurrent_exports",
            "out of range: must be 1 to 64",
        );
    }
    for good in [1, 64] {
        assert!(with(|c| c.export.max_concurrent_exports = good)
            .validate()
            .is_ok());
    }
}

#[test]
fn otlp_endpoint() {
    for good in [
        "http://localhost:4317",
        "https://collector.example.com",
        "http://10.0.0.1:4318/custom/path",
        "http://[::1]:4317",
        "https://otel-collector.observability.svc.cluster.local:4317/",
    ] {
        assert!(
            with_otlp(|o| o.endpoint = good.to_string())
                .validate()
                .is_ok(),
            "{good}"
        );
    }
    for (bad, reason) in [
        ("localhost:4317", "must be an http:// or https:// URL"),
        (
            "grpc://localhost:4317",
            "must be an http:// or https:// URL",
        ),
        ("http://", "has no host"),
        ("http://:4317", "has no host"),
        ("http://host:port", "is not a port"),
        ("http://host:70000", "is not a port"),
        ("http://[::1", "unclosed"),
        ("http://user:pw@host:4317", "credentials"),
        ("http://bad host:4317", "not a valid host name"),
        ("", "must be an http:// or https:// URL"),
    ] {
        only(
            &with_otlp(|o| o.endpoint = bad.to_string()),
            "export.otlp.endpoint",
            reason,
        );
    }
}

#[test]
fn otlp_header_names() {
    only(
        &with_otlp(|o| {
            o.headers.insert("bad header".to_string(), "x".to_string());
        }),
        "export.otlp.headers.bad header",
        "not a valid HTTP header name",
    );
    assert!(with_otlp(|o| {
        o.headers.insert("x-api-key".to_string(), "x".to_string());
    })
    .validate()
    .is_ok());
}

#[test]
fn metrics_listen_is_a_socket_address() {
    only(
        &with(|c| c.metrics.listen = "localhost:9464".to_string()),
        "metrics.listen",
        "not an IP address and port",
    );
    only(
        &with(|c| c.metrics.listen = "127.0.0.1".to_string()),
        "metrics.listen",
        "not an IP address and port",
    );
    assert!(with(|c| c.metrics.listen = "[::]:9464".to_string())
        .validate()
        .is_ok());
    assert!(with(|c| c.metrics.listen = "0.0.0.0:9464".to_string())
        .validate()
        .is_ok());
}

#[test]
fn log_level_not_empty() {
    only(
        &with(|c| c.log.level = "  ".to_string()),
        "log.level",
        "is empty",
    );
}

#[test]
fn routes_start_with_slash() {
    only(
        &with(|c| c.http.routes = vec!["/ok".into(), "users/{id}".into()]),
        "http.routes[1]",
        "must start with `/`",
    );
}

#[test]
fn opt_in_attributes_are_known_names() {
    only(
        &with(|c| {
            c.http.opt_in_attributes = vec!["client.port".into(), "network.peer.port".into()]
        }),
        "http.opt_in_attributes[1]",
        "\"network.peer.port\" is not an Opt-In attribute the agent sets",
    );
    let every: Vec<String> = wirespan_config::OPT_IN_ATTRIBUTES
        .iter()
        .map(|s| s.to_string())
        .chain(["all".to_string()])
        .collect();
    assert!(with(|c| c.http.opt_in_attributes = every.clone())
        .validate()
        .is_ok());
}

fn rule(exe_name: Option<&str>, exe_path_prefix: Option<&str>, name: &str) -> ServiceRule {
    ServiceRule {
        exe_name: exe_name.map(Into::into),
        exe_path_prefix: exe_path_prefix.map(Into::into),
        name: name.into(),
    }
}

fn peer(cidr: Option<&str>, port: Option<u16>, name: &str) -> PeerRule {
    PeerRule {
        cidr: cidr.map(Into::into),
        port,
        name: name.into(),
    }
}

#[test]
fn service_rules_need_a_matcher() {
    only(
        &with(|c| c.service.rules = vec![rule(Some("nginx"), None, "web"), rule(None, None, "x")]),
        "service.rules[1]",
        "at least one matcher",
    );
    only(
        &with(|c| c.service.rules = vec![rule(Some(""), None, "x")]),
        "service.rules[0].exe_name",
        "is empty",
    );
    only(
        &with(|c| c.service.rules = vec![rule(None, Some("opt/"), "x")]),
        "service.rules[0].exe_path_prefix",
        "absolute path",
    );
    only(
        &with(|c| c.service.rules = vec![rule(Some("a"), None, "")]),
        "service.rules[0].name",
        "is empty",
    );
    assert!(
        with(|c| c.service.rules = vec![rule(None, Some("/opt/"), "x")])
            .validate()
            .is_ok()
    );
}

#[test]
fn peer_rules() {
    only(
        &with(|c| c.service.peers = vec![peer(None, None, "x")]),
        "service.peers[0]",
        "at least one matcher",
    );
    only(
        &with(|c| c.service.peers = vec![peer(Some("10.1.0.0/33"), None, "x")]),
        "service.peers[0].cidr",
        "prefix length must be 0 to 32",
    );
    only(
        &with(|c| c.service.peers = vec![peer(Some("fd00::/129"), None, "x")]),
        "service.peers[0].cidr",
        "0 to 128",
    );
    only(
        &with(|c| c.service.peers = vec![peer(Some("10.1.0/16"), None, "x")]),
        "service.peers[0].cidr",
        "not an IP network",
    );
    only(
        &with(|c| c.service.peers = vec![peer(Some("db.local"), None, "x")]),
        "service.peers[0].cidr",
        "not an IP network",
    );
    only(
        &with(|c| c.service.peers = vec![peer(None, Some(0), "x")]),
        "service.peers[0].port",
        "port 0",
    );
    for good in ["10.1.0.0/16", "10.1.2.3", "fd00::/8", "::1", "0.0.0.0/0"] {
        assert!(
            with(|c| c.service.peers = vec![peer(Some(good), Some(5432), "db")])
                .validate()
                .is_ok(),
            "{good}"
        );
    }
}

#[test]
fn every_problem_is_reported() {
    let c = with(|c| {
        c.capture.per_call_cap_bytes = 0;
        c.capture.ring_buffer_bytes = 1000;
        c.capture.max_sockets = 0;
        c.connections.max_connections = 0;
        c.connections.memory_limit_bytes = 1;
        c.connections.idle_timeout = Duration::ZERO;
        c.http.max_header_bytes = 1;
        c.http.max_pending_requests = 0;
        c.export.max_batch_size = 0;
        c.export.batch_timeout = Duration::ZERO;
        c.metrics.listen = "nope".into();
        c.log.level = String::new();
    });
    let keys: Vec<String> = problems(&c).into_iter().map(|p| p.key).collect();
    for key in [
        "capture.per_call_cap_bytes",
        "capture.ring_buffer_bytes",
        "capture.max_sockets",
        "connections.max_connections",
        "connections.memory_limit_bytes",
        "connections.idle_timeout",
        "http.max_header_bytes",
        "http.max_pending_requests",
        "export.max_batch_size",
        "export.batch_timeout",
        "metrics.listen",
        "log.level",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
}

#[test]
fn validation_error_display() {
    let p = problems(&with(|c| c.capture.max_sockets = 0));
    assert_eq!(
        p[0].to_string(),
        "capture.max_sockets: 0 is too small: must be at least 1"
    );
}

#[test]
fn kubernetes_and_reverse_dns_values() {
    only(
        &with(|c| c.kubernetes.watch_scope = "namespace".into()),
        "kubernetes.watch_scope",
        "\"namespace\" is neither `cluster` nor `node`",
    );
    only(
        &with(|c| c.kubernetes.max_objects = 0),
        "kubernetes.max_objects",
        "must be at least 1",
    );
    only(
        &with(|c| c.kubernetes.api_url = Some("kubernetes.default".into())),
        "kubernetes.api_url",
        "\"kubernetes.default\" is not an http:// or https:// URL",
    );
    only(
        &with(|c| c.service.reverse_dns.max_in_flight = 0),
        "service.reverse_dns.max_in_flight",
        "must be at least 1",
    );
    only(
        &with(|c| c.service.reverse_dns.lookup_timeout = std::time::Duration::ZERO),
        "service.reverse_dns.lookup_timeout",
        "must be longer than zero",
    );
    assert!(with(|c| {
        c.kubernetes.watch_scope = "node".into();
        c.kubernetes.api_url = Some("https://10.96.0.1:443".into());
    })
    .validate()
    .is_ok());
}
