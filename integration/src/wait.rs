//! Bounded waiting: poll a condition until it holds or a deadline passes.

use std::time::{Duration, Instant};

/// Polls `cond` every 50 ms until it returns true (→ true) or `timeout`
/// passes (→ false). Callers assert on the result with a useful message.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
