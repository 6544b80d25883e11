//! wirespan's own counters and gauges, rendered in the Prometheus text exposition
//! format (version 0.0.4). Components register what they count once, at start-up,
//! and then increment lock-free handles on the hot path.
//!
//! It does not serve HTTP and keeps no history: a scrape reads the current values.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count. Cloning shares the value.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Raise the counter to `total` when `total` is larger: for totals kept
    /// elsewhere (such as per-CPU kernel counters) that are sampled.
    pub fn set_total(&self, total: u64) {
        self.0.fetch_max(total, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down. Cloning shares the value.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Adds `v` (≥ 0) unless the gauge would pass `max`; true if added. One
    /// atomic add on the way in (a second to undo it), for bounds kept on the
    /// hot path. Concurrent callers may be refused while another's refused
    /// add is still counted, and a scrape may then see it above `max`; what
    /// is added and kept never passes `max`.
    #[inline]
    pub fn try_add(&self, v: i64, max: i64) -> bool {
        let before = self.0.fetch_add(v, Ordering::Relaxed);
        if before.saturating_add(v) > max {
            self.0.fetch_sub(v, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug)]
enum Value {
    Counter(Counter),
    Gauge(Gauge),
}

#[derive(Debug)]
struct Series {
    labels: Vec<(String, String)>,
    value: Value,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    series: Vec<Series>,
}

/// All registered metrics. Registration takes a lock; reading and incrementing
/// the returned handles does not.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Family>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter `name` (which should end in `_total`) with these labels.
    /// Registering the same name and labels twice returns the same counter.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        match self.register(name, help, Kind::Counter, labels, || {
            Value::Counter(Counter::default())
        }) {
            Value::Counter(c) => c,
            Value::Gauge(_) => unreachable!("register checks the kind"),
        }
    }

    /// A gauge `name` with these labels.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.register(name, help, Kind::Gauge, labels, || {
            Value::Gauge(Gauge::default())
        }) {
            Value::Gauge(g) => g,
            Value::Counter(_) => unreachable!("register checks the kind"),
        }
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Value,
    ) -> Value {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = match families.iter().position(|f| f.name == name) {
            Some(i) => &mut families[i],
            None => {
                families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    series: Vec::new(),
                });
                families.last_mut().expect("just pushed")
            }
        };
        // A name used with two kinds is a programming error in wirespan itself.
        assert_eq!(family.kind, kind, "metric {name} registered with two kinds");
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(s) = family.series.iter().find(|s| s.labels == labels) {
            return match &s.value {
                Value::Counter(c) => Value::Counter(c.clone()),
                Value::Gauge(g) => Value::Gauge(g.clone()),
            };
        }
        let value = make();
        let handle = match &value {
            Value::Counter(c) => Value::Counter(c.clone()),
            Value::Gauge(g) => Value::Gauge(g.clone()),
        };
        family.series.push(Series { labels, value });
        handle
    }

    /// The current value of one series, for tests and self-checks.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i128> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = families.iter().find(|f| f.name == name)?;
        let series = family.series.iter().find(|s| {
            s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        })?;
        Some(match &series.value {
            Value::Counter(c) => c.get() as i128,
            Value::Gauge(g) => g.get() as i128,
        })
    }

    /// Sum over every series of `name`.
    pub fn sum(&self, name: &str) -> i128 {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families
            .iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.series.iter())
            .map(|s| match &s.value {
                Value::Counter(c) => c.get() as i128,
                Value::Gauge(g) => g.get() as i128,
            })
            .sum()
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(families.len() * 128);
        for f in families.iter() {
            writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help)).ok();
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            writeln!(out, "# TYPE {} {}", f.name, kind).ok();
            for s in &f.series {
                out.push_str(&f.name);
                if !s.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write!(out, "{}=\"{}\"", k, escape_label(v)).ok();
                    }
                    out.push('}');
                }
                (match &s.value {
                    Value::Counter(c) => writeln!(out, " {}", c.get()),
                    Value::Gauge(g) => writeln!(out, " {}", g.get()),
                })
                .ok();
            }
        }
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_add_stops_at_the_bound_and_leaves_the_gauge_as_it_was() {
        let g = Gauge::default();
        assert!(g.try_add(60, 100));
        assert!(!g.try_add(41, 100));
        assert_eq!(g.get(), 60, "a refused add is undone");
        assert!(g.try_add(40, 100), "exactly the bound fits");
        assert!(!g.try_add(i64::MAX, 100), "no wrap-around under the bound");
        assert_eq!(g.get(), 100);
    }

    #[test]
    fn renders_prometheus_text() {
        let r = Registry::new();
        let a = r.counter(
            "wirespan_lost_total",
            "Things lost.",
            &[("reason", "ringbuf_full")],
        );
        let b = r.counter("wirespan_lost_total", "Things lost.", &[("reason", "x\"y")]);
        let g = r.gauge("wirespan_connections", "Tracked connections.", &[]);
        a.add(3);
        b.inc();
        g.set(-2);
        let text = r.render();
        assert_eq!(
            text,
            "# HELP wirespan_lost_total Things lost.\n# TYPE wirespan_lost_total counter\n\
             wirespan_lost_total{reason=\"ringbuf_full\"} 3\n\
             wirespan_lost_total{reason=\"x\\\"y\"} 1\n\
             # HELP wirespan_connections Tracked connections.\n# TYPE wirespan_connections gauge\n\
             wirespan_connections -2\n"
        );
        assert_eq!(r.sum("wirespan_lost_total"), 4);
        assert_eq!(
            r.value("wirespan_lost_total", &[("reason", "ringbuf_full")]),
            Some(3)
        );
    }

    #[test]
    fn same_series_is_shared() {
        let r = Registry::new();
        let a = r.counter("c_total", "h", &[("reason", "a")]);
        let b = r.counter("c_total", "h", &[("reason", "a")]);
        a.inc();
        b.inc();
        assert_eq!(a.get(), 2);
        let t = r.counter("t_total", "h", &[]);
        t.set_total(10);
        t.set_total(7);
        assert_eq!(t.get(), 10);
    }
}
