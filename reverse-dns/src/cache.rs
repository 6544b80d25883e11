//! The answer cache: at most `capacity` addresses, each with its name (or none)
//! and when that answer stops being fresh. Full means CLOCK (second-chance)
//! eviction: an entry read since the hand last passed it survives one more
//! round, so frequently named peers stay while one-off addresses go first.
//!
//! Stale entries are not swept: they stay until replaced or evicted, so the
//! owner can serve a stale name while refreshing it. Memory is bounded by
//! `capacity` entries of at most one 253-byte name each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One cached answer.
#[derive(Clone, Debug)]
pub(crate) struct CachedAnswer {
    /// The validated name, or `None` for a negative answer.
    pub(crate) name: Option<Arc<str>>,
    /// When the answer was stored.
    pub(crate) stored_at: Instant,
    /// How long after `stored_at` it is fresh.
    pub(crate) ttl: Duration,
}

impl CachedAnswer {
    /// Whether the answer is still fresh at `now`. Comparing elapsed time with
    /// the TTL (instead of storing `stored_at + ttl`) cannot overflow however
    /// large the configured TTL is.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.ttl
    }
}

#[derive(Debug)]
struct Slot {
    ip: IpAddr,
    answer: CachedAnswer,
    /// Read since the clock hand last passed: spares the slot once.
    referenced: bool,
}

/// A fixed-capacity map from address to answer with CLOCK eviction.
#[derive(Debug)]
pub(crate) struct ClockCache {
    index: HashMap<IpAddr, usize>,
    slots: Vec<Slot>,
    hand: usize,
    capacity: usize,
}

/// What [`ClockCache::insert`] did to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// The address was cached already, or there was a free slot.
    WithoutEviction,
    /// Another address was evicted to make room.
    Evicted,
}

impl ClockCache {
    /// A cache for `capacity` addresses; `capacity` is at least 1 (checked by
    /// the settings), and a 0 is treated as 1.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            // Grows with use; `capacity` may be large and mostly unused.
            index: HashMap::new(),
            slots: Vec::new(),
            hand: 0,
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The answer for `ip`, marking it recently used.
    pub(crate) fn get(&mut self, ip: IpAddr) -> Option<&CachedAnswer> {
        let i = *self.index.get(&ip)?;
        let slot = &mut self.slots[i];
        slot.referenced = true;
        Some(&slot.answer)
    }

    /// The answer for `ip` without marking it used.
    pub(crate) fn peek(&self, ip: IpAddr) -> Option<&CachedAnswer> {
        self.index.get(&ip).map(|&i| &self.slots[i].answer)
    }

    /// Stores `answer` for `ip`, replacing an older answer for it or, when
    /// full, evicting the first unreferenced entry under the clock hand. A new
    /// entry starts unreferenced: it must be read to earn a second chance.
    pub(crate) fn insert(&mut self, ip: IpAddr, answer: CachedAnswer) -> Inserted {
        if let Some(&i) = self.index.get(&ip) {
            self.slots[i].answer = answer;
            return Inserted::WithoutEviction;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(ip, self.slots.len());
            self.slots.push(Slot {
                ip,
                answer,
                referenced: false,
            });
            return Inserted::WithoutEviction;
        }
        // Full. Each pass clears the flags it skips, so within two passes the
        // hand finds an unreferenced slot.
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[i];
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            self.index.remove(&slot.ip);
            *slot = Slot {
                ip,
                answer,
                referenced: false,
            };
            self.index.insert(ip, i);
            return Inserted::Evicted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    fn answer(name: &str, at: Instant) -> CachedAnswer {
        CachedAnswer {
            name: Some(Arc::from(name)),
            stored_at: at,
            ttl: Duration::from_secs(60),
        }
    }

    fn name_of(cache: &ClockCache, n: u8) -> Option<String> {
        cache
            .peek(ip(n))
            .and_then(|a| a.name.as_deref().map(str::to_string))
    }

    #[test]
    fn holds_at_most_capacity_and_evicts_unreferenced_first() {
        let now = Instant::now();
        let mut cache = ClockCache::new(3);
        for n in 1..=3 {
            assert_eq!(
                cache.insert(ip(n), answer(&format!("h{n}"), now)),
                Inserted::WithoutEviction
            );
        }
        // 1 and 3 are read; 2 is not, so 2 goes.
        assert!(cache.get(ip(1)).is_some());
        assert!(cache.get(ip(3)).is_some());
        assert_eq!(cache.insert(ip(4), answer("h4", now)), Inserted::Evicted);
        assert_eq!(cache.len(), 3);
        assert_eq!(name_of(&cache, 2), None);
        assert_eq!(name_of(&cache, 1).as_deref(), Some("h1"));
        assert_eq!(name_of(&cache, 3).as_deref(), Some("h3"));
        assert_eq!(name_of(&cache, 4).as_deref(), Some("h4"));
        // The hand cleared 1's flag on its way to 2 and now stands at 3, whose
        // flag is still set: 3 is spared (flag cleared) and 1, not read since
        // its second chance, goes.
        assert_eq!(cache.insert(ip(5), answer("h5", now)), Inserted::Evicted);
        assert_eq!(cache.len(), 3);
        assert_eq!(name_of(&cache, 1), None);
        assert_eq!(name_of(&cache, 3).as_deref(), Some("h3"));
        assert_eq!(name_of(&cache, 4).as_deref(), Some("h4"));
        assert_eq!(name_of(&cache, 5).as_deref(), Some("h5"));
    }

    #[test]
    fn all_referenced_still_evicts_one() {
        let now = Instant::now();
        let mut cache = ClockCache::new(2);
        cache.insert(ip(1), answer("h1", now));
        cache.insert(ip(2), answer("h2", now));
        cache.get(ip(1));
        cache.get(ip(2));
        assert_eq!(cache.insert(ip(3), answer("h3", now)), Inserted::Evicted);
        assert_eq!(cache.len(), 2);
        assert_eq!(name_of(&cache, 3).as_deref(), Some("h3"));
    }

    #[test]
    fn replacing_an_answer_does_not_evict() {
        let now = Instant::now();
        let mut cache = ClockCache::new(1);
        cache.insert(ip(1), answer("old", now));
        assert_eq!(
            cache.insert(ip(1), answer("new", now)),
            Inserted::WithoutEviction
        );
        assert_eq!(name_of(&cache, 1).as_deref(), Some("new"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn freshness_is_elapsed_against_ttl() {
        let t0 = Instant::now();
        let a = CachedAnswer {
            name: None,
            stored_at: t0,
            ttl: Duration::from_secs(10),
        };
        assert!(a.is_fresh(t0));
        assert!(a.is_fresh(t0 + Duration::from_secs(9)));
        assert!(!a.is_fresh(t0 + Duration::from_secs(10)));
        let forever = CachedAnswer {
            ttl: Duration::MAX,
            ..a
        };
        assert!(forever.is_fresh(t0 + Duration::from_secs(1 << 40)));
    }
}
