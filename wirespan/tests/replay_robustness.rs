//! Replays that must not depend on luck: the same recording twice gives the
//! same spans, and a recording cut short or missing a record never panics and
//! says what it lost.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

#[path = "fixtures/support.rs"]
mod support;

use probes_common::records::{decode, Record};
use self_metrics::Registry;
use span_export::ExportSpan;
use span_semantics::host::HostFacts;
use span_semantics::routes::RouteTable;
use span_semantics::span_builder::{IdGenerator, OptIn, SpanBuilder};
use support::{describe, records, replay, replay_config, without_ids, ALL_FIXTURES, S};
use wirespan::agent::pipeline_settings;
use wirespan::pipeline::Pipeline;

/// Runs `recs` through a pipeline with seeded ids and every Opt-In attribute
/// (as `support::replay`); returns spans and metrics.
fn run(clock: i64, recs: &[&[u8]], seed: u64) -> (Vec<ExportSpan>, Registry) {
    let registry = Registry::new();
    let config = wirespan_config::Config::default();
    let mut settings = pipeline_settings(&config, clock, HostFacts::hermetic());
    settings.span_builder = SpanBuilder::new(
        IdGenerator::with_seed(seed),
        RouteTable::new(&config.http.routes),
    )
    .with_opt_in(OptIn::ALL);
    let mut p = Pipeline::new(settings, Vec::new(), &registry);
    for r in recs {
        p.handle_bytes(r);
    }
    p.flush();
    (p.into_output(), registry)
}

#[test]
fn replaying_twice_gives_identical_spans() {
    for name in ALL_FIXTURES {
        let (_, a, _) = replay(name);
        let (_, b, _) = replay(name);
        assert_eq!(without_ids(&a), without_ids(&b), "{name}");
        // With the same seed even the ids match.
        let (clock, recs) = records(name);
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let (x, _) = run(clock, &refs, 42);
        let (y, _) = run(clock, &refs, 42);
        assert_eq!(x, y, "{name}");
        assert_eq!(without_ids(&x), without_ids(&a), "{name}");
        // And every span has distinct ids.
        let mut ids: Vec<&[u8]> = x.iter().map(|s| s.span.span_id.as_slice()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), x.len(), "{name}");
    }
}

/// The default configuration leaves out exactly the attributes the HTTP
/// conventions mark Opt-In (`http.opt_in_attributes`), and nothing else: every
/// span of every fixture is the `all` span without them.
#[test]
fn default_spans_are_the_full_spans_without_opt_in_attributes() {
    // Opt-In on client spans only; server spans always carry them.
    const CLIENT_ONLY: &[&str] = &["url.scheme", "user_agent.original"];
    let mut seen_in_full = std::collections::BTreeSet::new();
    let (mut full_bytes, mut default_bytes) = (0, 0);
    for name in ALL_FIXTURES {
        let (_, full, _) = replay(name);
        let (_, default, _) = replay_config(name, &wirespan_config::Config::default());
        assert_eq!(full.len(), default.len(), "{name}: {}", describe(&default));
        for (f, d) in full.iter().zip(&default) {
            let is_client = S(f).is_client();
            let opted = |key: &str| {
                wirespan_config::OPT_IN_ATTRIBUTES.contains(&key)
                    && (is_client || !CLIENT_ONLY.contains(&key))
            };
            let mut expected = f.clone();
            for key in wirespan_config::OPT_IN_ATTRIBUTES {
                if opted(key) {
                    expected.attrs.remove(key);
                }
            }
            for a in f.attributes() {
                if opted(&a.key) {
                    seen_in_full.insert(a.key.clone());
                }
            }
            assert_eq!(
                without_ids(std::slice::from_ref(d)),
                without_ids(std::slice::from_ref(&expected)),
                "{name}"
            );
            full_bytes += f.encoded_len();
            default_bytes += d.encoded_len();
        }
    }
    // Not vacuous: the fixtures have every one of them when asked for.
    let every: std::collections::BTreeSet<String> = wirespan_config::OPT_IN_ATTRIBUTES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen_in_full, every);
    assert!(
        default_bytes < full_bytes,
        "{default_bytes} >= {full_bytes} bytes"
    );
    println!("encoded span bytes: all {full_bytes}, default {default_bytes}");
}

/// Attributes that may legitimately differ between a cut replay and the full one.
fn comparable(s: &ExportSpan) -> ExportSpan {
    let mut s = without_ids(std::slice::from_ref(s)).remove(0);
    s.span.end_time_unix_nano = 0;
    s
}

fn is_marked_incomplete(s: &S<'_>) -> bool {
    matches!(
        s.str("error.type"),
        Some("no_response" | "connection_closed" | "stream_reset")
    ) || s.str("wirespan.capture.incomplete").is_some()
}

#[test]
fn cut_at_every_record_boundary_never_panics_and_counts_records() {
    for name in ALL_FIXTURES {
        let (clock, recs) = records(name);
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let (full, _) = run(clock, &refs, 1);
        for cut in 0..=refs.len() {
            let (spans, registry) = run(clock, &refs[..cut], 1);
            assert_eq!(
                registry.sum("wirespan_records_total"),
                cut as i128,
                "{name} cut at {cut}"
            );
            assert!(
                spans.len() <= full.len(),
                "{name} cut at {cut}: more spans than the whole recording\n{}",
                describe(&spans)
            );
        }
    }
}

/// What a cut loses is said: every span of a cut replay is either one of the
/// full replay's (its end may be earlier) or marked incomplete (error.type
/// no_response / connection_closed / stream_reset, or
/// wirespan.capture.incomplete). Collects every violation before failing.
#[test]
fn cut_at_every_record_boundary_marks_what_it_lost() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for name in ALL_FIXTURES {
        let (clock, recs) = records(name);
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let (full, _) = run(clock, &refs, 1);
        let full_cmp: Vec<ExportSpan> = full.iter().map(comparable).collect();
        for cut in 0..=refs.len() {
            let (spans, _) = run(clock, &refs[..cut], 1);
            for s in &spans {
                checked += 1;
                if !(is_marked_incomplete(&S(s)) || full_cmp.contains(&comparable(s))) {
                    bad.push(format!(
                        "{name} cut after {cut} records: {}",
                        describe(std::slice::from_ref(s)).trim_end()
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {checked} spans from cut replays look complete but are not:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn not_parsed(r: &Registry, reason: &str) -> i128 {
    r.value(
        "wirespan_stream_bytes_not_parsed_total",
        &[("reason", reason)],
    )
    .unwrap_or(0)
}

/// Replays each fixture once per data record, without that record.
fn each_dropped_data_record(mut f: impl FnMut(&str, usize, usize, &Registry)) {
    for name in ALL_FIXTURES {
        let (clock, recs) = records(name);
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let (_, base) = run(clock, &refs, 1);
        assert_eq!(
            not_parsed(&base, "gap_bytes"),
            0,
            "{name} lost bytes itself"
        );
        for (i, rec) in refs.iter().enumerate() {
            let Ok(Record::Data { payload, .. }) = decode(rec) else {
                continue;
            };
            let mut without: Vec<&[u8]> = refs.clone();
            without.remove(i);
            let (_, registry) = run(clock, &without, 1);
            f(name, i, payload.len(), &registry);
        }
    }
}

/// A lost record in the middle of a stream is a gap; one at its end is a
/// missing tail found at close. Either way its bytes are counted as lost.
#[test]
fn a_missing_data_record_is_counted_as_lost_bytes() {
    let mut bad = Vec::new();
    each_dropped_data_record(|name, i, len, r| {
        let lost = not_parsed(r, "gap_bytes") + not_parsed(r, "closed_with_missing_tail");
        if lost != len as i128 {
            bad.push(format!(
                "{name} without record {i} ({len} bytes): gap_bytes {} + closed_with_missing_tail {}",
                not_parsed(r, "gap_bytes"),
                not_parsed(r, "closed_with_missing_tail")
            ));
        }
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Summing `wirespan_stream_bytes_not_parsed_total` over its reasons must not
/// count a byte twice.
#[test]
fn lost_bytes_are_counted_once_in_the_not_parsed_family() {
    let mut bad = Vec::new();
    let mut cases = 0;
    each_dropped_data_record(|name, i, len, r| {
        cases += 1;
        let family =
            r.sum("wirespan_stream_bytes_not_parsed_total") - not_parsed(r, "undetected_bytes");
        if family != len as i128 {
            bad.push(format!(
                "{name} without record {i} ({len} bytes): gap_bytes {} + closed_with_missing_tail {}",
                not_parsed(r, "gap_bytes"),
                not_parsed(r, "closed_with_missing_tail")
            ));
        }
    });
    assert!(
        bad.is_empty(),
        "{} of {cases} dropped records counted more than once:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn bytes_cut_inside_the_file_are_an_error_not_a_panic() {
    let path = support::fixture("http1_keepalive");
    let bytes = std::fs::read(&path).unwrap();
    let dir = std::env::temp_dir().join(format!("wirespan-replay-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut_path = dir.join("cut.rec");
    // Cut inside the 5th record's length, and inside its body.
    let (_, recs) = records("http1_keepalive");
    let mut at = 20;
    for r in &recs[..4] {
        at += 4 + r.len();
    }
    for cut in [at + 2, at + 4 + recs[4].len() / 2] {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let registry = Registry::new();
        let r = wirespan::agent::replay_into(
            &wirespan_config::Config::default(),
            &cut_path,
            Vec::new(),
            &registry,
            HostFacts::hermetic(),
        );
        let Err(err) = r else {
            panic!("a cut record must be an error")
        };
        assert!(
            format!("{err:#}").contains("ends inside record 4"),
            "{err:#}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
