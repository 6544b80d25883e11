//! How the YAML `export` section and the OTEL_EXPORTER_OTLP_* variables combine.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use span_export::{Compression, ExportError, ExportSettings, OtlpSettings};
use std::collections::BTreeMap;
use std::time::Duration;
use wirespan_config::{ExportConfig, OtlpConfig, OtlpProtocol};

fn resolve(cfg: &ExportConfig, vars: &[(&str, &str)]) -> Result<ExportSettings, ExportError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ExportSettings::resolve(cfg, &move |k| {
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
}

fn otlp(cfg: &ExportConfig, vars: &[(&str, &str)]) -> OtlpSettings {
    resolve(cfg, vars).unwrap().otlp.expect("OTLP enabled")
}

fn yaml(endpoint: &str, protocol: OtlpProtocol) -> ExportConfig {
    ExportConfig {
        otlp: Some(OtlpConfig {
            endpoint: endpoint.into(),
            protocol,
            headers: BTreeMap::from([
                ("authorization".into(), "yaml".into()),
                ("x-yaml".into(), "1".into()),
            ]),
            timeout: Duration::from_secs(3),
        }),
        ..Default::default()
    }
}

#[test]
fn nothing_configured_means_stdout_only() {
    let s = resolve(
        &ExportConfig::default(),
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    )
    .unwrap();
    assert_eq!(s.otlp, None);
    assert!(s.stdout);
    assert_eq!((s.queue_size, s.max_batch_size), (8192, 512));
    assert_eq!(s.max_request_bytes, 3 * 1024 * 1024);
    assert_eq!(s.max_queue_bytes, 16 * 1024 * 1024);
    assert_eq!(s.batch_timeout, Duration::from_secs(1));
    // Empty variables count as unset.
    let s = resolve(
        &ExportConfig::default(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")],
    )
    .unwrap();
    assert_eq!(s.otlp, None);
}

#[test]
fn stdout_flag_prints_as_well_as_exporting() {
    let mut cfg = yaml("http://c:4317", OtlpProtocol::Grpc);
    assert!(!resolve(&cfg, &[]).unwrap().stdout);
    cfg.stdout = true;
    let s = resolve(&cfg, &[]).unwrap();
    assert!(s.stdout && s.otlp.is_some());
}

/// YAML, env, expected protocol and endpoint.
type Case<'a> = (
    &'a ExportConfig,
    Vec<(&'a str, &'a str)>,
    OtlpProtocol,
    &'a str,
);

#[test]
fn endpoint_table() {
    use OtlpProtocol::{Grpc, HttpProtobuf as Http};
    let none = ExportConfig::default();
    let g = yaml("http://yaml:4317", Grpc);
    let h = yaml("http://yaml:4318", Http);
    let default_otlp = ExportConfig {
        otlp: Some(OtlpConfig::default()),
        ..Default::default()
    };
    let cases: Vec<Case> = vec![
        // YAML alone; HTTP appends the signal path.
        (&g, vec![], Grpc, "http://yaml:4317"),
        (&h, vec![], Http, "http://yaml:4318/v1/traces"),
        // Generic env endpoint wins over YAML and is a base URL for HTTP.
        (
            &g,
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")],
            Grpc,
            "http://env:4317",
        ),
        (
            &h,
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")],
            Http,
            "http://env:4318/v1/traces",
        ),
        (
            &h,
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318/base/")],
            Http,
            "http://env:4318/base/v1/traces",
        ),
        // The traces endpoint is used as given, and wins over the generic one.
        (
            &h,
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://tr:9999/custom",
                ),
            ],
            Http,
            "http://tr:9999/custom",
        ),
        // Env alone enables OTLP, with the YAML defaults (gRPC).
        (
            &none,
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")],
            Grpc,
            "http://env:4317",
        ),
        (
            &none,
            vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317")],
            Grpc,
            "http://collector:4317",
        ),
        // Protocol env overrides YAML; the traces one wins.
        (
            &g,
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ],
            Http,
            "http://env:4318/v1/traces",
        ),
        // Switching only the protocol to HTTP moves the default port too.
        (
            &default_otlp,
            vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
            Http,
            "http://localhost:4318/v1/traces",
        ),
    ];
    for (cfg, vars, protocol, endpoint) in cases {
        let o = otlp(cfg, &vars);
        assert_eq!(
            (o.protocol, o.endpoint.as_str()),
            (protocol, endpoint),
            "{vars:?}"
        );
    }
}

#[test]
fn headers_merge_and_decode() {
    let cfg = yaml("http://yaml:4317", OtlpProtocol::Grpc);
    let o = otlp(&cfg, &[]);
    assert_eq!(
        o.headers,
        vec![
            ("authorization".into(), "yaml".into()),
            ("x-yaml".into(), "1".into())
        ]
    );
    let o = otlp(
        &cfg,
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20generic, x-env=a%3Db ,x-both=generic",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-both=traces"),
        ],
    );
    assert_eq!(
        o.headers,
        vec![
            ("authorization".into(), "Bearer generic".into()),
            ("x-yaml".into(), "1".into()),
            ("x-env".into(), "a=b".into()),
            ("x-both".into(), "traces".into()),
        ]
    );
    for bad in ["novalue", "=v", "k=%zz", "bad key=v"] {
        let err = resolve(&cfg, &[("OTEL_EXPORTER_OTLP_HEADERS", bad)]).unwrap_err();
        assert!(
            matches!(
                err,
                ExportError::InvalidEnv { .. } | ExportError::InvalidHeader { .. }
            ),
            "{bad}: {err}"
        );
    }
}

#[test]
fn timeout_and_compression() {
    let cfg = yaml("http://yaml:4317", OtlpProtocol::Grpc);
    let o = otlp(&cfg, &[]);
    assert_eq!(
        (o.timeout, o.compression),
        (Duration::from_secs(3), Compression::None)
    );
    let o = otlp(
        &cfg,
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    );
    assert_eq!(
        (o.timeout, o.compression),
        (Duration::from_millis(2500), Compression::Gzip)
    );
    let o = otlp(
        &cfg,
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ],
    );
    assert_eq!(
        (o.timeout, o.compression),
        (Duration::from_millis(700), Compression::None)
    );
    for (var, bad) in [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
    ] {
        let err = resolve(&cfg, &[(var, bad)]).unwrap_err();
        assert!(
            matches!(&err, ExportError::InvalidEnv { var: v, .. } if v == var),
            "{var}={bad}: {err}"
        );
    }
}

#[test]
fn unsupported_and_invalid_endpoints_are_clear_errors() {
    let cfg = yaml("http://yaml:4317", OtlpProtocol::Grpc);
    let err = resolve(&cfg, &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")]).unwrap_err();
    assert!(matches!(err, ExportError::UnsupportedProtocol(ref p) if p == "http/json"));
    assert!(err.to_string().contains("not supported"), "{err}");

    let err = resolve(
        &cfg,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://secure:4317")],
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::TlsUnsupported(_)), "{err}");
    for bad in ["ftp://x:1", "http://", "http://a b"] {
        let err = resolve(&cfg, &[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)]).unwrap_err();
        assert!(
            matches!(err, ExportError::InvalidEndpoint { .. }),
            "{bad}: {err}"
        );
    }
    let zero = ExportConfig {
        queue_size: 0,
        ..Default::default()
    };
    assert!(matches!(
        resolve(&zero, &[]),
        Err(ExportError::InvalidSetting(_))
    ));
}

#[test]
fn max_concurrent_exports_is_taken_and_bounded() {
    let four = resolve(&ExportConfig::default(), &[]).unwrap();
    assert_eq!(four.max_concurrent_exports, 4);
    for bad in [0, 65] {
        let cfg = ExportConfig {
            max_concurrent_exports: bad,
            ..Default::default()
        };
        let err = resolve(&cfg, &[]).unwrap_err();
        assert!(
            err.to_string().contains("export.max_concurrent_exports"),
            "{bad}: {err}"
        );
    }
    let cfg = ExportConfig {
        max_concurrent_exports: 64,
        ..Default::default()
    };
    assert_eq!(resolve(&cfg, &[]).unwrap().max_concurrent_exports, 64);
}
