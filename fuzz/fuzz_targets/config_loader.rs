//! `wirespan_config::load_from_str` on arbitrary UTF-8.
//!
//! Input: YAML text; if it contains a NUL byte, the text after the first one
//! is environment overrides, one `NAME=VALUE` per line (`WIRESPAN_` is
//! prepended to names that lack it), so the env merging and list splitting
//! are fuzzed too. The plain `load_from_str(yaml, "fuzz.yaml", &[])` case is
//! every input without a NUL.
//!
//! Invariants:
//! - no panic;
//! - `Ok(config)` ⇒ `config.validate()` is Ok (loading validates);
//! - `Err(e)`: the error renders (`Display`) to a non-empty message, and
//!   every refused key names its origin: "fuzz.yaml" or one of the given
//!   variables (never the defaults).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirespan_config::Origin;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (yaml, env_text) = match text.split_once('\0') {
        Some((y, e)) => (y, Some(e)),
        None => (text, None),
    };
    let env: Vec<(String, String)> = env_text
        .map(|e| {
            e.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| {
                    let k = if k.starts_with("WIRESPAN_") {
                        k.to_string()
                    } else {
                        format!("WIRESPAN_{k}")
                    };
                    (k, v.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    match wirespan_config::load_from_str(yaml, "fuzz.yaml", &env) {
        Ok(config) => {
            if let Err(errors) = config.validate() {
                panic!("load_from_str returned Ok but validate() refuses: {errors:?}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "empty error message");
            // Every refusal names where the value came from: this text or one
            // of the given variables (never the built-in defaults).
            for p in e.problems() {
                match &p.origin {
                    Origin::File(f) => assert_eq!(f, "fuzz.yaml"),
                    Origin::Env(v) => {
                        assert!(env.iter().any(|(k, _)| k == v), "unknown origin {v}")
                    }
                    Origin::Defaults => panic!("problem blamed on the defaults: {p}"),
                }
            }
        }
    }
});
