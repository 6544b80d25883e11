//! One agent at a time: every test that loads the probes holds this guard.
//!
//! A process-wide mutex serialises the tests of one test binary; an exclusive
//! `flock` on `$TMPDIR/wirespan-integration.lock` serialises separate test
//! binaries (cargo runs them one after the other anyway, but `cargo nextest`
//! or two concurrent `cargo test`s would not).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());

/// Held for the whole test.
pub struct SerialGuard {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Waits for the other tests' agents to finish, then returns the guard.
pub fn serial() -> SerialGuard {
    // A test that panicked while holding the lock poisons it; the next test
    // must still run.
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = std::env::temp_dir().join("wirespan-integration.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the lock file {}: {e}", path.display()));
    // SAFETY: a valid open file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    SerialGuard {
        _file: file,
        _guard: guard,
    }
}
