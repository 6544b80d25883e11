//! The agent's `/metrics` (Prometheus text format) as a map.

use std::collections::BTreeMap;

/// Every sample, keyed by `name{label="v",...}` exactly as printed.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The value is the last field; label values may contain spaces.
            if let Some((key, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    samples.insert(key.trim().to_string(), v);
                }
            }
        }
        Self {
            samples,
            text: text.to_string(),
        }
    }

    /// One series: `get("x_total", &[("reason", "a")])`; 0 when absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", l.join(","))
        };
        self.samples.get(&key).copied().unwrap_or(0.0)
    }

    /// The sum of every series of a metric.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether the metric exists at all (any series).
    pub fn has(&self, name: &str) -> bool {
        self.samples
            .keys()
            .any(|k| k == name || k.starts_with(&format!("{name}{{")))
    }

    /// The non-zero samples, one a line, for failure messages.
    pub fn nonzero(&self) -> String {
        self.samples
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(k, v)| format!("  {k} {v}\n"))
            .collect()
    }
}

/// Asserts that at least half of a `body_len`-byte body was skipped by the
/// probes and counted as skipped at both ends of the accounting: the
/// kernel's `body_skipped` and the stream's `skipped_body_bytes`.
pub fn assert_body_mostly_skipped(m: &Metrics, body_len: usize, diagnostics: &str) {
    let kernel = m.get(
        "wirespan_kernel_bytes_not_copied_total",
        &[("reason", "body_skipped")],
    );
    let stream = m.get(
        "wirespan_stream_bytes_not_parsed_total",
        &[("reason", "skipped_body_bytes")],
    );
    let half = (body_len / 2) as f64;
    assert!(
        kernel >= half && stream >= half,
        "expected most of the body skipped by the probes and counted as skipped: \
         kernel {kernel}, stream {stream} of {body_len} bytes\n{diagnostics}"
    );
}
