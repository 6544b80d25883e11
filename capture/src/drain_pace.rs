//! When user space drains the ring buffer.
//!
//! While records come, every [`DRAIN_INTERVAL`]: the probes wake user space
//! only once many bytes wait ([`crate::probes::wakeup_bytes`]), so the timer
//! is what bounds a record's wait under light load. While drains find
//! nothing, the timer backs off (doubling, up to [`IDLE_DRAIN_MAX`]) and the
//! probes are told to wake user space at the very next record instead
//! ([`crate::probes::WakeControl`]). So an idle agent wakes a few times a
//! second instead of a hundred, and a record after an idle spell (an exec,
//! a `dlopen` of a TLS library, the first request) still reaches user space
//! at once.
//!
//! This module only decides; the agent's loop drains and writes the probes'
//! setting.

use std::time::Duration;

/// How long records may wait before user space drains them anyway, while
/// records come.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest wait between drains after drains have found nothing. Every
/// record wakes user space then, so this bounds only a record whose probe
/// read the old setting while user space was switching (see
/// [`DrainPace::after_drain`]): such a record is late by at most this, never
/// lost.
pub const IDLE_DRAIN_MAX: Duration = Duration::from_millis(500);

/// The drain timer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainPace {
    interval: Duration,
    every_record_wakes: bool,
    /// False once the probes' setting could not be written.
    can_back_off: bool,
}

/// What the probes must be told after a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeChange {
    /// Nothing to change.
    Keep,
    /// Wake user space at every record: it is about to sleep long. Drain
    /// once more after setting it, for records written before the probes
    /// saw the change.
    EveryRecord,
    /// Back to waking only past the byte threshold: records are coming.
    AtThreshold,
}

impl Default for DrainPace {
    fn default() -> Self {
        Self::new()
    }
}

impl DrainPace {
    pub fn new() -> Self {
        Self {
            interval: DRAIN_INTERVAL,
            every_record_wakes: false,
            can_back_off: true,
        }
    }

    /// How long until the next timed drain.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the probes are (to be) waking user space at every record.
    pub fn every_record_wakes(&self) -> bool {
        self.every_record_wakes
    }

    /// After a drain that handed over `records`; `timed` when the drain
    /// timer ran it (a wake-up that finds nothing does not back off).
    pub fn after_drain(&mut self, records: usize, timed: bool) -> WakeChange {
        if records > 0 {
            self.interval = DRAIN_INTERVAL;
            if self.every_record_wakes {
                self.every_record_wakes = false;
                return WakeChange::AtThreshold;
            }
            return WakeChange::Keep;
        }
        if !timed || !self.can_back_off {
            return WakeChange::Keep;
        }
        self.interval = (self.interval * 2).min(IDLE_DRAIN_MAX);
        if self.every_record_wakes {
            WakeChange::Keep
        } else {
            self.every_record_wakes = true;
            WakeChange::EveryRecord
        }
    }

    /// The probes' setting could not be written: drain at the short
    /// interval from now on, since records might not wake user space.
    pub fn wake_change_failed(&mut self) {
        self.interval = DRAIN_INTERVAL;
        self.every_record_wakes = false;
        self.can_back_off = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_while_idle_and_returns_at_the_first_record() {
        let mut p = DrainPace::new();
        assert_eq!(p.interval(), DRAIN_INTERVAL);
        assert_eq!(p.after_drain(3, true), WakeChange::Keep);
        assert_eq!(p.interval(), DRAIN_INTERVAL);

        // The first empty timed drain asks the probes to wake at every record.
        assert_eq!(p.after_drain(0, true), WakeChange::EveryRecord);
        assert!(p.every_record_wakes());
        assert_eq!(p.interval(), DRAIN_INTERVAL * 2);
        let mut waits = vec![p.interval()];
        for _ in 0..10 {
            assert_eq!(p.after_drain(0, true), WakeChange::Keep);
            waits.push(p.interval());
        }
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert_eq!(p.interval(), IDLE_DRAIN_MAX);

        // A wake-up that finds nothing changes nothing.
        assert_eq!(p.after_drain(0, false), WakeChange::Keep);
        assert_eq!(p.interval(), IDLE_DRAIN_MAX);

        // A record, by wake-up or timer: short interval, threshold back.
        assert_eq!(p.after_drain(1, false), WakeChange::AtThreshold);
        assert!(!p.every_record_wakes());
        assert_eq!(p.interval(), DRAIN_INTERVAL);
        assert_eq!(p.after_drain(1, true), WakeChange::Keep);
    }

    #[test]
    fn a_failed_setting_keeps_the_short_timer() {
        let mut p = DrainPace::new();
        assert_eq!(p.after_drain(0, true), WakeChange::EveryRecord);
        p.wake_change_failed();
        assert_eq!(p.interval(), DRAIN_INTERVAL);
        assert!(!p.every_record_wakes());
        // It does not try again: the short timer for good.
        assert_eq!(p.after_drain(0, true), WakeChange::Keep);
        assert_eq!(p.interval(), DRAIN_INTERVAL);
    }
}
