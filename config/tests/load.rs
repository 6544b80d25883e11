//! Loading: unknown keys, bad values, environment overrides, file errors. Every
//! refusal must name the file (or variable), the dotted key and the reason.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::time::Duration;

use wirespan_config::{load, load_from_str, Config, ConfigError, Origin, OtlpProtocol};

const FILE: &str = "wirespan.yaml";

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(yaml: &str, vars: &[(&str, &str)]) -> String {
    match load_from_str(yaml, FILE, &env(vars)) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn ok(yaml: &str, vars: &[(&str, &str)]) -> Config {
    load_from_str(yaml, FILE, &env(vars)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(ok("", &[]), Config::default());
    assert_eq!(ok("# only a comment\n", &[]), Config::default());
    assert_eq!(ok("---\n", &[]), Config::default());
}

#[test]
fn empty_sections_keep_defaults() {
    assert_eq!(
        ok("capture:\nexport:\n  otlp:\nlog:\n", &[]),
        Config::default()
    );
}

#[test]
fn unknown_key_at_top_level() {
    assert_eq!(
        err("capture: {}\nbogus: 1\n", &[]),
        "wirespan.yaml: bogus: unknown key (known keys here: capture, connections, http, \
         service, traces, tls, kubernetes, export, metrics, log)"
    );
}

#[test]
fn tls_debug_dirs_from_the_file_and_the_environment() {
    let c = ok("tls:\n  debug_dirs: [/opt/debug, /srv/sym]\n", &[]);
    assert_eq!(
        c.tls.debug_dirs,
        vec![
            std::path::PathBuf::from("/opt/debug"),
            std::path::PathBuf::from("/srv/sym")
        ]
    );
    let c = ok("", &[("WIRESPAN_TLS__DEBUG_DIRS", "/a,/b")]);
    assert_eq!(c.tls.debug_dirs.len(), 2);
    assert_eq!(
        err("tls:\n  debug_dirs: [debug]\n", &[]),
        "wirespan.yaml: tls.debug_dirs: debug is a relative path (the agent's working \
         directory is not a place to look): give an absolute one"
    );
}

#[test]
fn unknown_key_nested() {
    assert_eq!(
        err("capture:\n  per_call_cap_bytes: 4096\n  bogus: 1\n", &[]),
        "wirespan.yaml: capture.bogus: unknown key (known keys here: per_call_cap_bytes, \
         ring_buffer_bytes, max_sockets, pids, ports, exclude_ports)"
    );
}

#[test]
fn unknown_key_deeply_nested() {
    let e = err("export:\n  otlp:\n    endpont: http://x:4317\n", &[]);
    assert!(
        e.starts_with(
            "wirespan.yaml: export.otlp.endpont: unknown key (known keys here: endpoint,"
        ),
        "{e}"
    );
    let e = err(
        "service:\n  peers:\n    - name: db\n      port: 5432\n      host: x\n",
        &[],
    );
    assert!(
        e.starts_with("wirespan.yaml: service.peers[0].host: unknown key"),
        "{e}"
    );
}

#[test]
fn unknown_keys_in_several_sections_are_all_reported() {
    let e = err("capture:\n  a: 1\nhttp:\n  b: 2\nc: 3\n", &[]);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(e.contains("wirespan.yaml: capture.a: unknown key"), "{e}");
    assert!(e.contains("wirespan.yaml: http.b: unknown key"), "{e}");
    assert!(e.contains("wirespan.yaml: c: unknown key"), "{e}");
}

#[test]
fn bad_enum_value() {
    assert_eq!(
        err("export:\n  otlp:\n    protocol: grcp\n", &[]),
        r#"wirespan.yaml: export.otlp.protocol: unknown variant "grcp", expected "grpc" or "http/protobuf""#
    );
}

#[test]
fn enum_values_parse() {
    let c = ok("export:\n  otlp:\n    protocol: http/protobuf\n", &[]);
    assert_eq!(
        c.export.otlp.map(|o| o.protocol),
        Some(OtlpProtocol::HttpProtobuf)
    );
}

#[test]
fn string_for_number() {
    assert_eq!(
        err("capture:\n  per_call_cap_bytes: lots\n", &[]),
        r#"wirespan.yaml: capture.per_call_cap_bytes: invalid type: string "lots", expected an integer"#
    );
}

#[test]
fn number_too_big_for_its_type() {
    assert_eq!(
        err("capture:\n  ports: [80, 70000]\n", &[]),
        "wirespan.yaml: capture.ports[1]: 70000 is out of range for an unsigned 16 bit integer"
    );
}

#[test]
fn negative_number() {
    let e = err("capture:\n  max_sockets: -1\n", &[]);
    assert!(
        e.starts_with("wirespan.yaml: capture.max_sockets: -1 is out of range"),
        "{e}"
    );
}

#[test]
fn list_where_map_expected() {
    assert_eq!(
        err("capture: [1, 2]\n", &[]),
        "wirespan.yaml: capture: expected a mapping of keys, found a list"
    );
    assert_eq!(
        err("service:\n  rules:\n    - [nginx, web]\n", &[]),
        "wirespan.yaml: service.rules[0]: expected a mapping of keys, found a list"
    );
    assert_eq!(
        err("export:\n  otlp: http://x:4317\n", &[]),
        r#"wirespan.yaml: export.otlp: expected a mapping of keys, found the string "http://x:4317""#
    );
}

#[test]
fn duration_without_unit() {
    assert_eq!(
        err("connections:\n  idle_timeout: 300\n", &[]),
        r#"wirespan.yaml: connections.idle_timeout: invalid value: string "300", expected a duration, such as 250ms, 30s, 5m or 1h 30m"#
    );
}

#[test]
fn durations_parse() {
    let c = ok(
        "connections:\n  idle_timeout: 1m 30s\nexport:\n  batch_timeout: 250ms\n",
        &[],
    );
    assert_eq!(c.connections.idle_timeout, Duration::from_secs(90));
    assert_eq!(c.export.batch_timeout, Duration::from_millis(250));
}

#[test]
fn missing_required_key_in_list_item() {
    assert_eq!(
        err("service:\n  rules:\n    - exe_name: nginx\n", &[]),
        "wirespan.yaml: service.rules[0].name: required key is missing"
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    assert_eq!(
        err("capture:\n  max_sockets: 10\nlog: a: b\n", &[]),
        "wirespan.yaml:3:7: invalid YAML: mapping values are not allowed in this context"
    );
    let e = err("capture:\n  ports: [80\n", &[]);
    assert!(e.starts_with("wirespan.yaml:3:1: invalid YAML: "), "{e}");
    assert!(matches!(
        load_from_str("a: [\n", FILE, &[]),
        Err(ConfigError::Syntax { line: Some(2), .. })
    ));
}

#[test]
fn root_must_be_a_mapping() {
    assert_eq!(
        err("- 1\n- 2\n", &[]),
        "wirespan.yaml: invalid YAML: the top level must be a mapping of sections (capture:, export:, ...), not a sequence"
    );
}

#[test]
fn env_override_applies() {
    let c = ok(
        "",
        &[
            ("WIRESPAN_EXPORT__QUEUE_SIZE", "100"),
            ("WIRESPAN_EXPORT__MAX_BATCH_SIZE", "50"),
            ("WIRESPAN_CAPTURE__PER_CALL_CAP_BYTES", "65536"),
            ("WIRESPAN_METRICS__LISTEN", "0.0.0.0:9464"),
            ("WIRESPAN_EXPORT__STDOUT", "true"),
            ("WIRESPAN_CONNECTIONS__IDLE_TIMEOUT", "30s"),
            ("WIRESPAN_LOG__LEVEL", "debug"),
        ],
    );
    assert_eq!(c.export.queue_size, 100);
    assert_eq!(c.export.max_batch_size, 50);
    assert_eq!(c.capture.per_call_cap_bytes, 65536);
    assert_eq!(c.metrics.listen, "0.0.0.0:9464");
    assert!(c.export.stdout);
    assert_eq!(c.connections.idle_timeout, Duration::from_secs(30));
    assert_eq!(c.log.level, "debug");
}

#[test]
fn env_overrides_the_file() {
    let yaml = "export:\n  queue_size: 5000\n  max_batch_size: 100\n  otlp:\n    endpoint: http://a:4317\n    protocol: grpc\n";
    let c = ok(
        yaml,
        &[
            ("WIRESPAN_EXPORT__QUEUE_SIZE", "1000"),
            ("WIRESPAN_EXPORT__OTLP__PROTOCOL", "http/protobuf"),
        ],
    );
    assert_eq!(c.export.queue_size, 1000);
    assert_eq!(
        c.export.max_batch_size, 100,
        "keys not overridden stay from the file"
    );
    let otlp = c.export.otlp.expect("otlp from the file");
    assert_eq!(otlp.endpoint, "http://a:4317");
    assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
}

#[test]
fn env_can_enable_otlp_alone() {
    let c = ok(
        "",
        &[(
            "WIRESPAN_EXPORT__OTLP__ENDPOINT",
            "https://collector.example:4317",
        )],
    );
    let otlp = c.export.otlp.expect("otlp from the environment");
    assert_eq!(otlp.endpoint, "https://collector.example:4317");
    assert_eq!(otlp.timeout, Duration::from_secs(10));
}

#[test]
fn env_lists_are_comma_separated() {
    let c = ok(
        "capture:\n  ports: [1, 2]\n",
        &[
            ("WIRESPAN_CAPTURE__PORTS", "80, 443,8080"),
            ("WIRESPAN_CAPTURE__PIDS", "42"),
            ("WIRESPAN_HTTP__ROUTES", "/users/{id},/orders"),
            (
                "WIRESPAN_HTTP__OPT_IN_ATTRIBUTES",
                "client.port,http.response.body.size",
            ),
        ],
    );
    assert_eq!(
        c.http.opt_in_attributes,
        vec![
            "client.port".to_string(),
            "http.response.body.size".to_string()
        ]
    );
    assert_eq!(c.capture.ports, vec![80, 443, 8080]);
    assert_eq!(c.capture.pids, vec![42]);
    assert_eq!(
        c.http.routes,
        vec!["/users/{id}".to_string(), "/orders".to_string()]
    );
    let c = ok(
        "capture:\n  ports: [1, 2]\n",
        &[("WIRESPAN_CAPTURE__PORTS", "")],
    );
    assert!(
        c.capture.ports.is_empty(),
        "an empty variable clears the list"
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    assert_eq!(
        err(
            "export:\n  queue_size: 10\n",
            &[("WIRESPAN_EXPORT__QUEUE_SIZE", "many")]
        ),
        r#"environment WIRESPAN_EXPORT__QUEUE_SIZE: export.queue_size: invalid type: string "many", expected an integer"#
    );
    assert_eq!(
        err("", &[("WIRESPAN_CAPTURE__PORTS", "80,http")]),
        r#"environment WIRESPAN_CAPTURE__PORTS: capture.ports[1]: invalid type: string "http", expected an integer"#
    );
    assert_eq!(
        err("", &[("WIRESPAN_EXPORT__OTLP__PROTOCOL", "grcp")]),
        r#"environment WIRESPAN_EXPORT__OTLP__PROTOCOL: export.otlp.protocol: unknown variant "grcp", expected "grpc" or "http/protobuf""#
    );
}

#[test]
fn unknown_env_key_names_the_variable() {
    let e = err("", &[("WIRESPAN_CAPTURE__BOGUS", "1")]);
    assert!(
        e.starts_with("environment WIRESPAN_CAPTURE__BOGUS: capture.bogus: unknown key"),
        "{e}"
    );
    let e = err("", &[("WIRESPAN_EXPROT__QUEUE_SIZE", "1")]);
    assert!(
        e.starts_with("environment WIRESPAN_EXPROT__QUEUE_SIZE: exprot: unknown key"),
        "{e}"
    );
}

#[test]
fn out_of_range_env_value_names_the_variable() {
    let e = err("", &[("WIRESPAN_EXPORT__QUEUE_SIZE", "0")]);
    assert!(
        e.contains("environment WIRESPAN_EXPORT__QUEUE_SIZE: export.queue_size: 0 is too small"),
        "{e}"
    );
    // max_batch_size (default 512) now exceeds the queue: blamed on the defaults' origin.
    assert!(
        e.contains("wirespan.yaml: export.max_batch_size: 512 is out of range"),
        "{e}"
    );
}

#[test]
fn other_wirespan_variables_are_ignored() {
    let c = ok(
        "",
        &[
            ("WIRESPAN_CONFIG", "/etc/wirespan.yaml"),
            ("OTHER__X", "1"),
            ("PATH", "/bin"),
        ],
    );
    assert_eq!(c, Config::default());
}

#[test]
fn validation_problems_name_the_file() {
    let e = err(
        "capture:\n  ring_buffer_bytes: 100000\nlog:\n  level: ''\n",
        &[],
    );
    assert_eq!(
        e,
        "wirespan.yaml: capture.ring_buffer_bytes: 100000 is not a power of two (the nearest are 65536 and 131072)\n\
         wirespan.yaml: log.level: is empty: use a filter such as `info`"
    );
    let Err(ConfigError::Invalid { problems }) = load_from_str("log:\n  level: ''\n", FILE, &[])
    else {
        panic!("expected Invalid");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].origin, Origin::File(FILE.to_string()));
    assert_eq!(problems[0].key, "log.level");
}

#[test]
fn missing_file_names_the_path() {
    let path = std::env::temp_dir().join("wirespan-config-test-does-not-exist/wirespan.yaml");
    let e = load(Some(&path)).expect_err("missing file");
    assert!(matches!(e, ConfigError::Read { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}: cannot read the configuration file: ",
            path.display()
        )),
        "{msg}"
    );
}

#[test]
fn load_reads_a_file() {
    let dir = std::env::temp_dir().join(format!("wirespan-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("wirespan.yaml");
    std::fs::write(&path, "http:\n  max_pending_requests: 8\n").expect("write");
    let c = load(Some(&path)).expect("valid file");
    assert_eq!(c.http.max_pending_requests, 8);

    std::fs::write(&path, "http:\n  max_pending: 8\n").expect("write");
    let msg = load(Some(&path)).expect_err("unknown key").to_string();
    assert!(
        msg.starts_with(&format!(
            "{}: http.max_pending: unknown key",
            path.display()
        )),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn load_without_a_file_gives_defaults() {
    // The test process has no WIRESPAN_ overrides of its own.
    if std::env::vars().any(|(k, _)| k.starts_with("WIRESPAN_") && k.contains("__")) {
        return;
    }
    assert_eq!(load(None).expect("defaults"), Config::default());
}
