//! Locating TLS functions in files without symbols for them, off the capture
//! path: one background thread runs [`tls_locate::locate`] (symbols, debug
//! files, then analysis of the code) on each file handed to it, and hands
//! the answers back to [`crate::tls_targets::TlsAttacher::poll`].
//!
//! It does not attach anything: it only answers "where are `SSL_read` and
//! `SSL_write` in this file, proven, and how were they named". Analysis of
//! a large executable takes up to a second (Chromium: BENCHMARKS.md), which
//! must never stall the loop that drains the ring buffer.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Files that may wait for their analysis; more are refused (counted).
pub const LOCATE_QUEUE: usize = 256;

/// Bounds of one analysis: a file with more code, or one that takes longer,
/// is refused with a reason (`too_large`, `time_budget`).
pub const MAX_CODE_BYTES: u64 = 512 << 20;
pub const TIME_BUDGET: Duration = Duration::from_secs(10);

/// One file to look at, named by (device, inode).
#[derive(Clone, Debug)]
pub struct LocateJob {
    pub id: (u64, u64),
    pub path: PathBuf,
}

/// What [`tls_locate::locate`] said of one file.
#[derive(Debug)]
pub struct LocateAnswer {
    pub job: LocateJob,
    pub result: Result<tls_locate::TlsFunctions, tls_locate::LocateError>,
    pub took: Duration,
}

/// The background thread and its two queues. The thread starts with the
/// first job.
pub struct TlsLocator {
    options: tls_locate::LocateOptions,
    jobs: Option<SyncSender<LocateJob>>,
    answers: Option<Receiver<LocateAnswer>>,
}

impl TlsLocator {
    /// `debug_dirs`: extra directories of debug files, searched before
    /// `/usr/lib/debug`.
    pub fn new(debug_dirs: Vec<PathBuf>) -> Self {
        Self {
            options: tls_locate::LocateOptions {
                debug_dirs,
                max_code_bytes: MAX_CODE_BYTES,
                time_budget: TIME_BUDGET,
                symbols_only: false,
            },
            jobs: None,
            answers: None,
        }
    }

    /// Queues `job`; false when the queue is full or no thread could be
    /// started (the caller counts it).
    pub fn submit(&mut self, job: LocateJob) -> bool {
        if self.jobs.is_none() && !self.start() {
            return false;
        }
        match self.jobs.as_ref().map(|tx| tx.try_send(job)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) => false,
            Some(Err(TrySendError::Disconnected(_))) | None => {
                self.jobs = None;
                false
            }
        }
    }

    fn start(&mut self) -> bool {
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<LocateJob>(LOCATE_QUEUE);
        let (answer_tx, answer_rx) = std::sync::mpsc::channel::<LocateAnswer>();
        let options = self.options.clone();
        let spawned = std::thread::Builder::new()
            .name("wirespan-tls-locate".into())
            .spawn(move || {
                for job in job_rx {
                    let started = Instant::now();
                    let result = tls_locate::locate(&job.path, &options);
                    let answer = LocateAnswer {
                        job,
                        result,
                        took: started.elapsed(),
                    };
                    if answer_tx.send(answer).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => {
                self.jobs = Some(job_tx);
                self.answers = Some(answer_rx);
                true
            }
            Err(e) => {
                tracing::warn!("no thread for locating TLS functions: {e}");
                false
            }
        }
    }

    /// The answers ready now.
    pub fn take_answers(&mut self) -> Vec<LocateAnswer> {
        match &self.answers {
            Some(rx) => rx.try_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Waits up to `timeout` for the next answer (tests).
    pub fn wait_answer(&mut self, timeout: Duration) -> Option<LocateAnswer> {
        self.answers.as_ref()?.recv_timeout(timeout).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn job(path: &str) -> LocateJob {
        let m = std::fs::metadata(path).expect("file exists");
        LocateJob {
            id: (m.dev(), m.ino()),
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn answers_come_back_from_the_thread() {
        let mut locator = TlsLocator::new(Vec::new());
        // Debian's libssl names its functions in .dynsym.
        assert!(locator.submit(job("/usr/lib/x86_64-linux-gnu/libssl.so.3")));
        let answer = locator
            .wait_answer(Duration::from_secs(30))
            .expect("an answer");
        let found = answer.result.expect("libssl located");
        assert!(found.get("SSL_read").is_some() && found.get("SSL_write").is_some());
        assert_eq!(found.functions[0].source.label(), "dynsym");

        // curl has no TLS library of its own: a typed refusal, no address.
        assert!(locator.submit(job("/usr/bin/curl")));
        let answer = locator
            .wait_answer(Duration::from_secs(30))
            .expect("an answer");
        let err = answer.result.expect_err("curl defines no SSL_*");
        assert_eq!(err.reason(), "no_tls");
    }
}
