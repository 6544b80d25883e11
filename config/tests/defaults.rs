//! The documented default file cannot drift from the types: it loads to
//! `Config::default()`, names every key, and the default round-trips.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::collections::BTreeSet;

use wirespan_config::{default_yaml, load_from_str, Config, OtlpConfig, PeerRule, ServiceRule};

/// Every key path in a YAML/JSON value: `capture`, `capture.ports`, ...
fn key_paths(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(path.clone());
            key_paths(&path, child, out);
        }
    }
}

fn paths_of<T: serde::Serialize>(v: &T) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    key_paths("", &serde_json::to_value(v).expect("serializes"), &mut out);
    out
}

#[test]
fn default_yaml_loads_to_the_default() {
    let c = load_from_str(default_yaml(), "default.yaml", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c, Config::default());
}

#[test]
fn default_yaml_parses_as_plain_yaml_too() {
    let c: Config = serde_yaml::from_str(default_yaml()).expect("serde_yaml parses it");
    assert_eq!(c, Config::default());
}

#[test]
fn default_yaml_names_every_key() {
    let doc: serde_json::Value = serde_yaml::from_str(default_yaml()).expect("yaml");
    let mut in_doc = BTreeSet::new();
    key_paths("", &doc, &mut in_doc);
    let in_type = paths_of(&Config::default());
    let missing: Vec<_> = in_type.difference(&in_doc).collect();
    assert!(
        missing.is_empty(),
        "keys of Config::default() not in default.yaml: {missing:?}"
    );
    let extra: Vec<_> = in_doc.difference(&in_type).collect();
    assert!(
        extra.is_empty(),
        "keys in default.yaml not in Config: {extra:?}"
    );
}

/// `export.otlp` is null by default, so its keys are documented in a commented
/// block; uncommented, that block must give `OtlpConfig::default()`.
#[test]
fn default_yaml_documents_otlp_at_its_defaults() {
    let text = default_yaml();
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        if line == "  # otlp:" {
            in_block = true;
        } else if in_block && !line.starts_with("  #   ") {
            in_block = false;
        }
        if line == "  otlp: null" {
            continue;
        }
        if in_block {
            let uncommented = line.replacen("  # ", "  ", 1);
            if !uncommented.trim_start().starts_with('#') {
                out.push_str(&uncommented);
                out.push('\n');
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let c = load_from_str(&out, "uncommented default.yaml", &[])
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(c.export.otlp, Some(OtlpConfig::default()));
    let doc: serde_json::Value = serde_yaml::from_str(&out).expect("yaml");
    let mut in_doc = BTreeSet::new();
    key_paths("", &doc, &mut in_doc);
    for key in paths_of(&OtlpConfig::default()) {
        assert!(
            in_doc.contains(&format!("export.otlp.{key}")),
            "export.otlp.{key} undocumented"
        );
    }
}

/// The list items' keys (lists are empty by default) appear in the examples.
#[test]
fn default_yaml_documents_list_item_keys() {
    let rule = ServiceRule {
        exe_name: Some("a".into()),
        exe_path_prefix: Some("/a".into()),
        name: "a".into(),
    };
    let peer = PeerRule {
        cidr: Some("10.0.0.0/8".into()),
        port: Some(1),
        name: "a".into(),
    };
    let text = default_yaml();
    for key in paths_of(&rule).into_iter().chain(paths_of(&peer)) {
        assert!(
            text.contains(&format!(" {key}: ")),
            "{key} undocumented in default.yaml"
        );
    }
}

#[test]
fn serialized_default_round_trips() {
    let yaml = serde_yaml::to_string(&Config::default()).expect("serializes");
    let c = load_from_str(&yaml, "serialized", &[]).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(c, Config::default());
}

#[test]
fn serialized_full_config_round_trips() {
    let mut c = Config::default();
    c.capture.ports = vec![80, 443];
    c.capture.pids = vec![1];
    c.http.routes = vec!["/users/{id}".into()];
    c.service.rules = vec![ServiceRule {
        exe_name: Some("nginx".into()),
        exe_path_prefix: None,
        name: "web".into(),
    }];
    c.service.peers = vec![PeerRule {
        cidr: Some("10.1.0.0/16".into()),
        port: Some(5432),
        name: "db".into(),
    }];
    let mut otlp = OtlpConfig {
        protocol: wirespan_config::OtlpProtocol::HttpProtobuf,
        ..OtlpConfig::default()
    };
    otlp.headers.insert("api-key".into(), "secret".into());
    c.export.otlp = Some(otlp);
    let yaml = serde_yaml::to_string(&c).expect("serializes");
    let back = load_from_str(&yaml, "serialized", &[]).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back, c);
}
