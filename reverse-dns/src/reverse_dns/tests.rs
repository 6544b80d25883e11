//! Tests of [`ReverseDns`]: a scripted resolver that can be held shut, and a
//! clock moved by hand, so nothing here asserts on timing. Waits poll a
//! condition and only fail (as a hang guard) after many seconds.

use super::*;
use crate::metrics::{CACHE_ENTRIES, CACHE_EVICTIONS_TOTAL, LOOKUPS_IN_FLIGHT, LOOKUPS_TOTAL};
use crate::resolver::tests::getent_name;
use self_metrics::Registry;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Condvar;
use std::time::Duration;

// === test doubles ===

/// The answer for the `n`th call (from 1) about an address.
type Script = Box<dyn Fn(IpAddr, usize) -> Result<String, ResolveError> + Send + Sync>;

/// A resolver that answers from a script, records its calls, and waits for
/// its gate to open before answering.
struct ScriptedResolver {
    script: Script,
    calls: Mutex<Vec<IpAddr>>,
    gate_open: Mutex<bool>,
    gate: Condvar,
}

impl ScriptedResolver {
    fn new(
        open: bool,
        script: impl Fn(IpAddr, usize) -> Result<String, ResolveError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            calls: Mutex::new(Vec::new()),
            gate_open: Mutex::new(open),
            gate: Condvar::new(),
        })
    }

    /// Answers `h<last byte>.example.` for every address.
    fn named(open: bool) -> Arc<Self> {
        Self::new(open, |ip, _| Ok(format!("h{}.example.", last_byte(ip))))
    }

    fn open_gate(&self) {
        *self.gate_open.lock().expect("gate") = true;
        self.gate.notify_all();
    }

    fn calls(&self) -> Vec<IpAddr> {
        self.calls.lock().expect("calls").clone()
    }
}

impl Resolve for ScriptedResolver {
    fn resolve(&self, ip: IpAddr) -> Result<String, ResolveError> {
        let n = {
            let mut calls = self.calls.lock().expect("calls");
            calls.push(ip);
            calls.iter().filter(|&&c| c == ip).count()
        };
        let mut open = self.gate_open.lock().expect("gate");
        // Bounded so a failed test cannot hang the runtime's shutdown forever.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !*open && std::time::Instant::now() < deadline {
            open = self
                .gate
                .wait_timeout(open, Duration::from_millis(100))
                .expect("gate")
                .0;
        }
        drop(open);
        (self.script)(ip, n)
    }
}

struct ManualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.offset.lock().expect("clock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + *self.offset.lock().expect("clock")
    }
}

// === harness ===

struct Harness {
    dns: ReverseDns,
    resolver: Arc<ScriptedResolver>,
    clock: Arc<ManualClock>,
    registry: Registry,
}

impl Harness {
    /// Must be called inside a Tokio runtime.
    fn new(settings: ReverseDnsSettings, resolver: Arc<ScriptedResolver>) -> Self {
        let registry = Registry::new();
        let clock = Arc::new(ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        });
        let dns = ReverseDns::build(settings, &registry, resolver.clone(), clock.clone())
            .expect("valid settings inside a runtime");
        Self {
            dns,
            resolver,
            clock,
            registry,
        }
    }

    fn lookup(&self, ip: IpAddr) -> Option<String> {
        self.dns.lookup(ip).map(|n| n.to_string())
    }

    fn count(&self, result: LookupResult) -> i128 {
        count(&self.registry, result)
    }

    fn in_flight(&self) -> i128 {
        self.registry
            .value(LOOKUPS_IN_FLIGHT, &[])
            .expect("registered")
    }
}

fn count(registry: &Registry, result: LookupResult) -> i128 {
    registry
        .value(LOOKUPS_TOTAL, &[("result", result.label())])
        .expect("registered")
}

/// Lookups that finished (anything but `dropped`).
fn finished(registry: &Registry) -> i128 {
    LookupResult::ALL
        .into_iter()
        .filter(|&r| r != LookupResult::Dropped)
        .map(|r| count(registry, r))
        .sum()
}

/// Yields to the runtime until `cond` holds; panics after 20 s as a hang guard.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn settings() -> ReverseDnsSettings {
    ReverseDnsSettings {
        max_entries: 16,
        positive_ttl: Duration::from_secs(300),
        negative_ttl: Duration::from_secs(60),
        max_in_flight: 4,
        // Long: only the timeout test lets a lookup time out.
        lookup_timeout: Duration::from_secs(30),
    }
}

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

fn last_byte(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(v6) => v6.octets()[15],
    }
}

// === behaviour ===

#[tokio::test]
async fn first_lookup_is_none_and_a_later_one_has_the_name() {
    let h = Harness::new(settings(), ScriptedResolver::named(true));
    assert_eq!(h.lookup(ip(7)), None);
    until("the lookup to finish", || h.count(LookupResult::Found) == 1).await;
    // The trailing dot is gone.
    assert_eq!(h.lookup(ip(7)).as_deref(), Some("h7.example"));
    assert_eq!(h.resolver.calls(), vec![ip(7)]);
    assert_eq!(h.registry.value(CACHE_ENTRIES, &[]), Some(1));
    assert_eq!(h.dns.len(), 1);
}

#[tokio::test]
async fn loopback_resolves_through_the_system_resolver() {
    let registry = Registry::new();
    let dns = ReverseDns::new(settings(), &registry).expect("inside a runtime");
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        dns.lookup(loopback),
        None,
        "the first lookup never has a name"
    );
    until("the loopback lookup to finish", || finished(&registry) == 1).await;
    // Whatever this machine's hosts/NSS setup says, as `getent` reports it.
    match getent_name("127.0.0.1") {
        Some(expected) => {
            assert_eq!(count(&registry, LookupResult::Found), 1);
            assert_eq!(dns.lookup(loopback).as_deref(), Some(expected.as_str()));
        }
        None => {
            assert_eq!(count(&registry, LookupResult::NotFound), 1);
            assert_eq!(dns.lookup(loopback), None);
        }
    }
}

#[test]
fn an_address_without_ptr_yields_none_and_is_counted() {
    // A runtime of our own, shut down without waiting: the host's resolver may
    // keep the blocking call for its full resolv.conf timeout.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let registry = Registry::new();
    runtime.block_on(async {
        let dns = ReverseDns::new(
            ReverseDnsSettings {
                lookup_timeout: Duration::from_millis(500),
                ..settings()
            },
            &registry,
        )
        .expect("inside a runtime");
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no PTR anywhere.
        let test_net = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(dns.lookup(test_net), None);
        until("the TEST-NET lookup to end", || finished(&registry) == 1).await;
        assert_eq!(dns.lookup(test_net), None);
        let no_name = [
            LookupResult::NotFound,
            LookupResult::Timeout,
            LookupResult::Failed,
        ]
        .map(|r| count(&registry, r));
        assert_eq!(no_name.iter().sum::<i128>(), 1, "{no_name:?}");
        assert_eq!(count(&registry, LookupResult::Found), 0);
    });
    runtime.shutdown_background();
}

#[tokio::test]
async fn one_lookup_in_flight_per_address() {
    let h = Harness::new(settings(), ScriptedResolver::named(false));
    for _ in 0..10 {
        assert_eq!(h.lookup(ip(1)), None);
    }
    // The IPv4-mapped form is the same address.
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    assert_eq!(h.lookup(mapped), None);
    assert_eq!(h.in_flight(), 1);
    h.resolver.open_gate();
    until("the lookup to finish", || h.count(LookupResult::Found) == 1).await;
    assert_eq!(h.resolver.calls(), vec![ip(1)]);
    assert_eq!(h.lookup(mapped).as_deref(), Some("h1.example"));
    assert_eq!(h.count(LookupResult::Dropped), 0);
    until("the slot to come back", || h.in_flight() == 0).await;
}

#[tokio::test]
async fn requests_beyond_max_in_flight_are_dropped_and_counted() {
    let h = Harness::new(
        ReverseDnsSettings {
            max_in_flight: 2,
            ..settings()
        },
        ScriptedResolver::named(false),
    );
    assert_eq!(h.lookup(ip(1)), None);
    assert_eq!(h.lookup(ip(2)), None);
    assert_eq!(h.in_flight(), 2);
    assert_eq!(h.lookup(ip(3)), None);
    assert_eq!(h.lookup(ip(3)), None);
    assert_eq!(h.count(LookupResult::Dropped), 2);
    // Asking again about an address already being looked up is not a drop.
    assert_eq!(h.lookup(ip(1)), None);
    assert_eq!(h.count(LookupResult::Dropped), 2);

    h.resolver.open_gate();
    until("both lookups to finish", || {
        h.count(LookupResult::Found) == 2
    })
    .await;
    until("the slots to come back", || h.in_flight() == 0).await;
    let mut calls = h.resolver.calls();
    calls.sort();
    assert_eq!(calls, vec![ip(1), ip(2)]);
    // A dropped request left nothing behind: the next lookup asks.
    assert_eq!(h.lookup(ip(3)), None);
    until("the third lookup", || h.count(LookupResult::Found) == 3).await;
    assert_eq!(h.lookup(ip(3)).as_deref(), Some("h3.example"));
}

#[tokio::test]
async fn cache_is_bounded_and_evictions_are_counted() {
    let h = Harness::new(
        ReverseDnsSettings {
            max_entries: 2,
            ..settings()
        },
        ScriptedResolver::named(true),
    );
    let evictions = || {
        h.registry
            .value(CACHE_EVICTIONS_TOTAL, &[("reason", "capacity")])
            .expect("registered")
    };
    for (n, found) in [(1, 1), (2, 2)] {
        h.lookup(ip(n));
        until("a lookup", || h.count(LookupResult::Found) == found).await;
    }
    // Reading 1 gives it a second chance; 2 is never read after its lookup.
    assert_eq!(h.lookup(ip(1)).as_deref(), Some("h1.example"));
    h.lookup(ip(3));
    until("the third lookup", || h.count(LookupResult::Found) == 3).await;
    assert_eq!(evictions(), 1);
    assert_eq!(h.dns.len(), 2);
    assert_eq!(h.registry.value(CACHE_ENTRIES, &[]), Some(2));
    assert_eq!(h.lookup(ip(1)).as_deref(), Some("h1.example"));
    assert_eq!(h.lookup(ip(3)).as_deref(), Some("h3.example"));
    // 2 was evicted: asking again is a miss and a new lookup.
    assert_eq!(h.lookup(ip(2)), None);
    until("the repeated lookup", || h.count(LookupResult::Found) == 4).await;
    assert_eq!(
        h.resolver.calls().iter().filter(|&&c| c == ip(2)).count(),
        2
    );
    assert_eq!(evictions(), 2);
    assert_eq!(h.dns.len(), 2);
}

#[tokio::test]
async fn negative_answers_expire_after_negative_ttl() {
    let resolver = ScriptedResolver::new(true, |_, n| match n {
        1 => Err(ResolveError::NotFound),
        _ => Ok("late.example".to_string()),
    });
    let h = Harness::new(settings(), resolver);
    assert_eq!(h.lookup(ip(5)), None);
    until("the first lookup", || h.count(LookupResult::NotFound) == 1).await;
    until("the slot to come back", || h.in_flight() == 0).await;

    // Remembered: no new lookup starts (it would take a slot synchronously).
    assert_eq!(h.lookup(ip(5)), None);
    h.clock.advance(Duration::from_secs(59));
    assert_eq!(h.lookup(ip(5)), None);
    assert_eq!(h.in_flight(), 0);
    assert_eq!(h.resolver.calls().len(), 1);

    h.clock.advance(Duration::from_secs(1));
    assert_eq!(h.lookup(ip(5)), None);
    assert_eq!(h.in_flight(), 1, "expired: a new lookup started");
    until("the second lookup", || h.count(LookupResult::Found) == 1).await;
    assert_eq!(h.lookup(ip(5)).as_deref(), Some("late.example"));
    assert_eq!(h.resolver.calls().len(), 2);
}

#[tokio::test]
async fn stale_name_is_served_while_refreshing_and_kept_when_refresh_fails() {
    let resolver = ScriptedResolver::new(true, |_, n| match n {
        1 => Ok("api.example".to_string()),
        2 => Err(ResolveError::Failed {
            code: libc::EAI_AGAIN,
            reason: "temporary failure in name resolution",
        }),
        _ => Err(ResolveError::NotFound),
    });
    let h = Harness::new(settings(), resolver);
    h.lookup(ip(9));
    until("the first lookup", || h.count(LookupResult::Found) == 1).await;
    until("the slot to come back", || h.in_flight() == 0).await;

    h.clock.advance(Duration::from_secs(300));
    assert_eq!(h.lookup(ip(9)).as_deref(), Some("api.example"), "stale");
    assert_eq!(h.in_flight(), 1, "a refresh started");
    until("the failed refresh", || h.count(LookupResult::Failed) == 1).await;
    until("the slot to come back", || h.in_flight() == 0).await;
    // The failure kept the name, fresh for negative_ttl: no new lookup.
    assert_eq!(h.lookup(ip(9)).as_deref(), Some("api.example"));
    assert_eq!(h.in_flight(), 0);

    h.clock.advance(Duration::from_secs(60));
    assert_eq!(h.lookup(ip(9)).as_deref(), Some("api.example"), "stale");
    until("the third lookup", || h.count(LookupResult::NotFound) == 1).await;
    // "No name" does replace it.
    assert_eq!(h.lookup(ip(9)), None);
}

#[tokio::test]
async fn timed_out_lookup_is_cached_negatively_and_keeps_its_slot() {
    let h = Harness::new(
        ReverseDnsSettings {
            max_in_flight: 1,
            lookup_timeout: Duration::from_millis(20),
            ..settings()
        },
        ScriptedResolver::named(false),
    );
    assert_eq!(h.lookup(ip(1)), None);
    until("the timeout", || h.count(LookupResult::Timeout) == 1).await;
    // Negatively cached: no new lookup and no drop.
    assert_eq!(h.lookup(ip(1)), None);
    assert_eq!(h.count(LookupResult::Dropped), 0);
    // The resolver call is still blocked and still holds the only slot.
    assert_eq!(h.in_flight(), 1);
    assert_eq!(h.lookup(ip(2)), None);
    assert_eq!(h.count(LookupResult::Dropped), 1);

    h.resolver.open_gate();
    until("the blocked call to return", || h.in_flight() == 0).await;
    // Its late answer is not used.
    assert_eq!(h.lookup(ip(1)), None);
    assert_eq!(h.count(LookupResult::Found), 0);
    assert_eq!(h.lookup(ip(2)), None);
    assert_eq!(h.in_flight(), 1, "the slot is free again");
    until("the next lookup", || h.count(LookupResult::Found) == 1).await;
    assert_eq!(h.lookup(ip(2)).as_deref(), Some("h2.example"));
}

#[tokio::test]
async fn invalid_names_are_rejected_and_counted() {
    let resolver = ScriptedResolver::new(true, |ip, _| {
        Ok(match last_byte(ip) {
            1 => "not a hostname".to_string(),
            2 => "10.9.8.7".to_string(),
            _ => "x\u{7}bell.example".to_string(),
        })
    });
    let h = Harness::new(settings(), resolver);
    for n in 1..=3 {
        h.lookup(ip(n));
    }
    until("three lookups", || h.count(LookupResult::Invalid) == 3).await;
    until("the slots to come back", || h.in_flight() == 0).await;
    for n in 1..=3 {
        assert_eq!(h.lookup(ip(n)), None);
    }
    assert_eq!(h.in_flight(), 0, "cached negatively, not asked again");
    assert_eq!(h.count(LookupResult::Found), 0);
}

#[tokio::test]
async fn a_panicking_resolver_is_a_failure_and_frees_its_slot() {
    let resolver = ScriptedResolver::new(true, |_, _| panic!("resolver bug"));
    let h = Harness::new(settings(), resolver);
    assert_eq!(h.lookup(ip(1)), None);
    until("the failure", || h.count(LookupResult::Failed) == 1).await;
    until("the slot to come back", || h.in_flight() == 0).await;
    assert_eq!(h.lookup(ip(1)), None);
}

#[tokio::test]
async fn ipv6_addresses_are_looked_up_as_they_are() {
    let h = Harness::new(settings(), ScriptedResolver::named(true));
    let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x2a));
    h.lookup(v6);
    until("the lookup", || h.count(LookupResult::Found) == 1).await;
    assert_eq!(h.lookup(v6).as_deref(), Some("h42.example"));
    assert_eq!(h.resolver.calls(), vec![v6]);
}

// === construction ===

#[test]
fn needs_a_runtime() {
    let err = ReverseDns::new(settings(), &Registry::new()).expect_err("no runtime here");
    assert_eq!(err, ReverseDnsError::NoRuntime);
}

#[test]
fn rejects_zero_limits() {
    for (settings, field) in [
        (
            ReverseDnsSettings {
                max_entries: 0,
                ..settings()
            },
            "max_entries",
        ),
        (
            ReverseDnsSettings {
                max_in_flight: 0,
                ..settings()
            },
            "max_in_flight",
        ),
        (
            ReverseDnsSettings {
                lookup_timeout: Duration::ZERO,
                ..settings()
            },
            "lookup_timeout",
        ),
    ] {
        assert_eq!(settings.validate(), Err(ReverseDnsError::Zero(field)));
        assert_eq!(
            ReverseDns::new(settings, &Registry::new()).expect_err("zero"),
            ReverseDnsError::Zero(field)
        );
    }
    assert_eq!(ReverseDnsSettings::default().validate(), Ok(()));
}
