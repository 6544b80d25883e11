//! [`ReverseDns`]: the non-blocking front (cache read, lookup scheduling) and
//! the background side (resolver call, timeout, storing the answer).

use crate::cache::{CachedAnswer, ClockCache, Inserted};
use crate::metrics::{LookupResult, Metrics};
use crate::resolver::{Resolve, ResolveError, SystemResolver};
use crate::{hostname, ReverseDnsError, ReverseDnsSettings};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::runtime::Handle;

/// Where "now" comes from for cache freshness; tests move it by hand.
pub(crate) trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Reverse DNS names with a bounded cache and bounded background lookups.
/// Cloning shares the cache. See the crate docs for the behaviour.
#[derive(Clone)]
pub struct ReverseDns {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReverseDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseDns")
            .field("settings", &self.shared.settings)
            .field("cached", &self.len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    settings: ReverseDnsSettings,
    resolver: Arc<dyn Resolve>,
    clock: Arc<dyn Clock>,
    runtime: Handle,
    metrics: Metrics,
    state: Mutex<State>,
}

/// Everything mutable, behind one mutex that is held only for map updates:
/// never across a resolver call, an await or a task spawn.
struct State {
    cache: ClockCache,
    /// Addresses with a lookup whose answer is not stored yet, with the
    /// ticket of that lookup. At most `max_in_flight` entries: each holds an
    /// in-flight slot until its answer (or its timeout) is stored.
    pending: HashMap<IpAddr, u64>,
    next_ticket: u64,
    /// Resolver calls not yet returned, timed out or not.
    in_flight: usize,
}

// === impl ReverseDns ===

impl ReverseDns {
    /// A reverse resolver using the host's resolver (`getnameinfo`). Must be
    /// called inside a Tokio runtime with its timer enabled; lookups run there.
    pub fn new(
        settings: ReverseDnsSettings,
        registry: &self_metrics::Registry,
    ) -> Result<Self, ReverseDnsError> {
        Self::with_resolver(settings, registry, Arc::new(SystemResolver))
    }

    /// Like [`ReverseDns::new`] with another resolver (for tests and replays).
    pub fn with_resolver(
        settings: ReverseDnsSettings,
        registry: &self_metrics::Registry,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, ReverseDnsError> {
        Self::build(settings, registry, resolver, Arc::new(SystemClock))
    }

    pub(crate) fn build(
        settings: ReverseDnsSettings,
        registry: &self_metrics::Registry,
        resolver: Arc<dyn Resolve>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ReverseDnsError> {
        settings.validate()?;
        let runtime = Handle::try_current().map_err(|_| ReverseDnsError::NoRuntime)?;
        let state = State {
            cache: ClockCache::new(settings.max_entries),
            pending: HashMap::with_capacity(settings.max_in_flight.min(64)),
            next_ticket: 0,
            in_flight: 0,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                settings,
                resolver,
                clock,
                runtime,
                metrics: Metrics::register(registry),
                state: Mutex::new(state),
            }),
        })
    }

    /// The name of `ip` if one is known, without waiting.
    ///
    /// A fresh answer is returned as it is. Otherwise a background lookup is
    /// started (unless one is already running for `ip`, or `max_in_flight`
    /// are running, which is counted as `dropped`) and the stale name, if
    /// any, is returned meanwhile. The first call for a new address therefore
    /// returns `None`; a later call returns the name once the lookup finished.
    ///
    /// Cost: one short mutex section (a hash lookup, and on a miss an insert)
    /// and, on a miss, one task spawn. No resolver call, I/O or await.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<str>> {
        let ip = canonical(ip);
        let now = self.shared.clock.now();
        let (ticket, name) = {
            let mut state = self.shared.lock();
            let (name, fresh) = match state.cache.get(ip) {
                Some(answer) => (answer.name.clone(), answer.is_fresh(now)),
                None => (None, false),
            };
            if fresh || state.pending.contains_key(&ip) {
                return name;
            }
            if state.in_flight >= self.shared.settings.max_in_flight {
                drop(state);
                self.shared.metrics.lookup(LookupResult::Dropped).inc();
                return name;
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.pending.insert(ip, ticket);
            state.in_flight += 1;
            self.shared.metrics.in_flight.set(state.in_flight as i64);
            (ticket, name)
        };
        self.spawn_lookup(ip, ticket);
        name
    }

    /// Addresses cached, fresh or stale.
    pub fn len(&self) -> usize {
        self.shared.lock().cache.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs one resolver call for `ip` on the blocking pool, under the
    /// timeout, and stores its answer. The in-flight slot (taken by the
    /// caller) goes back when the resolver call returns, however late; the
    /// pending mark goes when the answer or the timeout is stored, or when
    /// the task is dropped unrun (runtime shutting down).
    fn spawn_lookup(&self, ip: IpAddr, ticket: u64) {
        let slot = InFlightSlot(self.shared.clone());
        let pending = PendingMark {
            shared: self.shared.clone(),
            ip,
            ticket,
        };
        let resolver = self.shared.resolver.clone();
        let timeout = self.shared.settings.lookup_timeout;
        // The JoinHandle is not needed: the task stores its own result.
        drop(self.shared.runtime.spawn(async move {
            let call = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                resolver.resolve(ip)
            });
            let outcome = match tokio::time::timeout(timeout, call).await {
                Ok(Ok(answer)) => Outcome::Answer(answer),
                // The resolver panicked, or the runtime is shutting down.
                Ok(Err(_join_error)) => Outcome::Failed,
                Err(_elapsed) => Outcome::Timeout,
            };
            pending.shared.store(ip, ticket, outcome);
            drop(pending);
        }));
    }
}

/// IPv4-mapped IPv6 addresses are looked up and cached as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

// === impl Shared ===

/// How a background lookup ended.
enum Outcome {
    Answer(Result<String, ResolveError>),
    Timeout,
    Failed,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind, still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the outcome and caches the answer it implies.
    fn store(&self, ip: IpAddr, ticket: u64, outcome: Outcome) {
        let (result, name) = match outcome {
            Outcome::Answer(Ok(raw)) => match hostname::normalize(&raw) {
                Some(name) => (LookupResult::Found, Some(Arc::<str>::from(name))),
                None => (LookupResult::Invalid, None),
            },
            Outcome::Answer(Err(ResolveError::NotFound)) => (LookupResult::NotFound, None),
            Outcome::Answer(Err(ResolveError::Failed { .. })) | Outcome::Failed => {
                (LookupResult::Failed, None)
            }
            Outcome::Timeout => (LookupResult::Timeout, None),
        };
        self.metrics.lookup(result).inc();
        let now = self.clock.now();
        let mut state = self.lock();
        if state.pending.get(&ip) == Some(&ticket) {
            state.pending.remove(&ip);
        }
        let answer = match result {
            LookupResult::Found => CachedAnswer {
                name,
                stored_at: now,
                ttl: self.settings.positive_ttl,
            },
            // No answer this time: keep a name we had, for negative_ttl.
            LookupResult::Timeout | LookupResult::Failed => CachedAnswer {
                name: state.cache.peek(ip).and_then(|a| a.name.clone()),
                stored_at: now,
                ttl: self.settings.negative_ttl,
            },
            LookupResult::NotFound | LookupResult::Invalid | LookupResult::Dropped => {
                CachedAnswer {
                    name: None,
                    stored_at: now,
                    ttl: self.settings.negative_ttl,
                }
            }
        };
        if state.cache.insert(ip, answer) == Inserted::Evicted {
            self.metrics.evictions.inc();
        }
        self.metrics.entries.set(state.cache.len() as i64);
    }
}

/// One in-flight resolver call; gives its slot back when dropped.
struct InFlightSlot(Arc<Shared>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        self.0.metrics.in_flight.set(state.in_flight as i64);
    }
}

/// The dedup mark of one lookup; removed when dropped unless a newer lookup
/// of the same address owns it.
struct PendingMark {
    shared: Arc<Shared>,
    ip: IpAddr,
    ticket: u64,
}

impl Drop for PendingMark {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.pending.get(&self.ip) == Some(&self.ticket) {
            state.pending.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests;
