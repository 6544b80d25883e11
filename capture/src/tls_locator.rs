//! Locating TLS functions in files without symbols for them, off the capture
//! path: one background thread answers, for each file handed to it, "where
//! are `SSL_read` and `SSL_write` in this file, proven, and how were they
//! named" ([`tls_locate::locate`]: symbols, debug files, then analysis of the
//! code), and hands the answers back to
//! [`crate::tls_targets::TlsAttacher::poll`].
//!
//! The agent runs each analysis in a child process (`wirespan locate-tls
//! --machine FILE`, [`LocateIn::ChildProcess`]): analysing a large
//! executable takes seconds and, while it runs, hundreds of MB (Chromium:
//! BENCHMARKS.md), which must neither stall the loop that drains the ring
//! buffer nor stay in the agent's resident set. The child gets an address
//! space limit and a deadline; exceeding either is a counted refusal.
//!
//! It does not attach anything.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Files that may wait for their analysis; more are refused (counted). At
/// start every distinct file mapped by any process is queued at once (most
/// are answered by the quick look within milliseconds); a job is a path.
pub const LOCATE_QUEUE: usize = 4096;

/// Bounds of one analysis: a file with more code, or one that takes longer,
/// is refused with a reason (`too_large`, `time_budget`).
pub const MAX_CODE_BYTES: u64 = 512 << 20;
pub const TIME_BUDGET: Duration = Duration::from_secs(30);
/// Address space of the child process: the mapped file (up to a few hundred
/// MB) plus the analysis' heap (about 100 MB for Chromium).
pub const CHILD_ADDRESS_SPACE: u64 = 2 << 30;

/// One file to look at, named by (device, inode).
#[derive(Clone, Debug)]
pub struct LocateJob {
    pub id: (u64, u64),
    pub path: PathBuf,
}

/// One function found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundFunction {
    /// One of `tls_locate::FUNCTION_NAMES`.
    pub name: &'static str,
    pub vaddr: u64,
    pub file_offset: u64,
    /// `tls_locate::Source::label`: symtab, dynsym, debug_file, analysis.
    pub source: &'static str,
    /// The evidence (analysis) or the debug file's path.
    pub detail: String,
}

/// What was found in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// `OpenSsl`, `BoringSsl` or `Unknown`.
    pub library: String,
    pub functions: Vec<FoundFunction>,
}

impl Found {
    /// True when the functions were named by analysis of the code (no
    /// symbol, no debug file): then the integrity check applies.
    pub fn by_analysis(&self) -> bool {
        self.functions.iter().any(|f| f.source == "analysis")
    }
}

/// Why nothing is hooked in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// One of `tls_locate::REASONS`, or `child_failed` / `child_killed`.
    pub reason: &'static str,
    pub message: String,
}

/// What the locator said of one file.
#[derive(Debug)]
pub struct LocateAnswer {
    pub job: LocateJob,
    pub result: Result<Found, Refusal>,
    pub took: Duration,
}

/// Where the analysis runs.
#[derive(Clone, Debug)]
pub enum LocateIn {
    /// In the locator's thread (tests; tools).
    Thread,
    /// In a child process: this executable, run as `locate-tls --machine`.
    ChildProcess(PathBuf),
}

/// The background thread and its two queues. The thread starts with the
/// first job.
pub struct TlsLocator {
    options: tls_locate::LocateOptions,
    run_in: LocateIn,
    jobs: Option<SyncSender<LocateJob>>,
    answers: Option<Receiver<LocateAnswer>>,
    /// Jobs queued or running whose answer has not been taken: while any
    /// are, the agent polls for answers (see [`TlsLocator::in_flight`]).
    in_flight: usize,
}

/// The options every analysis runs with.
pub fn locate_options(debug_dirs: Vec<PathBuf>) -> tls_locate::LocateOptions {
    tls_locate::LocateOptions {
        debug_dirs,
        max_code_bytes: MAX_CODE_BYTES,
        time_budget: TIME_BUDGET,
        symbols_only: false,
    }
}

impl TlsLocator {
    /// `debug_dirs`: extra directories of debug files, searched before
    /// `/usr/lib/debug`.
    pub fn new(debug_dirs: Vec<PathBuf>, run_in: LocateIn) -> Self {
        Self {
            options: locate_options(debug_dirs),
            run_in,
            jobs: None,
            answers: None,
            in_flight: 0,
        }
    }

    /// Queues `job`; false when the queue is full or no thread could be
    /// started (the caller counts it).
    pub fn submit(&mut self, job: LocateJob) -> bool {
        if self.jobs.is_none() && !self.start() {
            return false;
        }
        match self.jobs.as_ref().map(|tx| tx.try_send(job)) {
            Some(Ok(())) => {
                self.in_flight += 1;
                true
            }
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
        let run_in = self.run_in.clone();
        let spawned = std::thread::Builder::new()
            .name("wirespan-tls-locate".into())
            .spawn(move || {
                for job in job_rx {
                    let started = Instant::now();
                    let result = match (&run_in, may_hold_tls(&job.path)) {
                        (_, Ok(false)) => Err(Refusal {
                            reason: "no_tls",
                            message: "no SSL_* names and no ssl_lib source-file strings".into(),
                        }),
                        (_, Err(e)) => Err(Refusal {
                            reason: "io",
                            message: e.to_string(),
                        }),
                        (LocateIn::Thread, Ok(true)) => locate_here(&job.path, &options),
                        (LocateIn::ChildProcess(exe), Ok(true)) => {
                            locate_in_child(exe, &job.path, &options.debug_dirs)
                        }
                    };
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
        let (ready, thread_gone) = take_ready(self.answers.as_ref(), &mut self.in_flight);
        if thread_gone {
            // The next submit starts another thread.
            self.jobs = None;
            self.answers = None;
        }
        ready
    }

    /// Jobs submitted whose answers have not been taken yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Waits up to `timeout` for the next answer (tests).
    pub fn wait_answer(&mut self, timeout: Duration) -> Option<LocateAnswer> {
        let answer = self.answers.as_ref()?.recv_timeout(timeout).ok()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(answer)
    }
}

/// What a background thread has sent back on `rx`, taken without waiting,
/// with `in_flight` (jobs whose results are not taken yet) counted down; and
/// whether the thread is gone (then nothing else will come: `in_flight` is
/// 0, and the caller drops its channels).
pub(crate) fn take_ready<T>(rx: Option<&Receiver<T>>, in_flight: &mut usize) -> (Vec<T>, bool) {
    let mut ready = Vec::new();
    let Some(rx) = rx else {
        return (ready, false);
    };
    loop {
        match rx.try_recv() {
            Ok(item) => ready.push(item),
            Err(std::sync::mpsc::TryRecvError::Empty) => break,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                *in_flight = 0;
                return (ready, true);
            }
        }
    }
    *in_flight = in_flight.saturating_sub(ready.len());
    (ready, false)
}

/// A quick first look, before any analysis: does the file hold an SSL_*
/// name (a symbol, defined or imported) or OpenSSL's / BoringSSL's
/// `ssl_lib.c(c)` file name (its error sites)? Most files on a host hold
/// neither, and are answered `no_tls` without starting a child process.
/// Read in chunks, not mapped, so a large file does not pass through the
/// agent's resident set.
pub fn may_hold_tls(path: &Path) -> std::io::Result<bool> {
    const NEEDLES: [&[u8]; 2] = [b"SSL_read", b"ssl_lib.c"];
    const CHUNK: usize = 1 << 20;
    let finders: Vec<memchr::memmem::Finder<'_>> =
        NEEDLES.iter().map(memchr::memmem::Finder::new).collect();
    let keep = NEEDLES.iter().map(|n| n.len()).max().unwrap_or(0) - 1;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK + keep];
    let mut have = 0;
    loop {
        let n = file.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(false);
        }
        have += n;
        if finders.iter().any(|f| f.find(&buf[..have]).is_some()) {
            return Ok(true);
        }
        // Keep the tail: a needle may straddle two reads.
        let tail = have.saturating_sub(keep);
        buf.copy_within(tail..have, 0);
        have -= tail;
    }
}

/// [`tls_locate::locate`] in this process, as an answer.
pub fn locate_here(path: &Path, options: &tls_locate::LocateOptions) -> Result<Found, Refusal> {
    match tls_locate::locate(path, options) {
        Ok(found) => Ok(Found {
            library: format!("{:?}", found.library),
            functions: found
                .functions
                .iter()
                .map(|f| FoundFunction {
                    name: f.name,
                    vaddr: f.vaddr,
                    file_offset: f.file_offset,
                    source: f.source.label(),
                    detail: match &f.source {
                        tls_locate::Source::Analysis { evidence } => evidence.clone(),
                        tls_locate::Source::DebugFile(p) => p.display().to_string(),
                        _ => String::new(),
                    },
                })
                .collect(),
        }),
        Err(e) => Err(Refusal {
            reason: e.reason(),
            message: e.to_string(),
        }),
    }
}

// === the child's answer, as lines ===
//
//   library <name>
//   function <name> <vaddr hex> <file offset hex> <source> <detail...>
//   refused <reason> <message...>
//
// Fields are separated by one tab; the last field is free text with tabs
// and newlines replaced by spaces.

fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// The lines `wirespan locate-tls --machine` prints for `result`.
pub fn encode_answer(result: &Result<Found, Refusal>) -> String {
    match result {
        Ok(found) => {
            let mut out = format!("library\t{}\n", one_line(&found.library));
            for f in &found.functions {
                out += &format!(
                    "function\t{}\t{:x}\t{:x}\t{}\t{}\n",
                    f.name,
                    f.vaddr,
                    f.file_offset,
                    f.source,
                    one_line(&f.detail)
                );
            }
            out
        }
        Err(r) => format!("refused\t{}\t{}\n", r.reason, one_line(&r.message)),
    }
}

fn known<'a>(label: &str, set: &[&'a str]) -> Option<&'a str> {
    set.iter().find(|s| **s == label).copied()
}

const SOURCES: [&str; 4] = ["symtab", "dynsym", "debug_file", "analysis"];

/// Reads what [`encode_answer`] wrote; anything else is a refusal
/// (`child_failed`), never a function.
pub fn decode_answer(text: &str) -> Result<Found, Refusal> {
    let bad = |why: &str| Refusal {
        reason: "child_failed",
        message: format!("unreadable answer from the locator process ({why})"),
    };
    let mut library = None;
    let mut functions = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(6, '\t').collect();
        match fields.as_slice() {
            ["library", name] => library = Some(name.to_string()),
            ["function", name, vaddr, offset, source, detail] => {
                let name = known(name, &tls_locate::FUNCTION_NAMES).ok_or_else(|| bad(name))?;
                let source = known(source, &SOURCES).ok_or_else(|| bad(source))?;
                let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad(s));
                functions.push(FoundFunction {
                    name,
                    vaddr: hex(vaddr)?,
                    file_offset: hex(offset)?,
                    source,
                    detail: detail.to_string(),
                });
            }
            ["refused", reason, message] => {
                let reason = known(reason, &tls_locate::REASONS).unwrap_or("child_failed");
                return Err(Refusal {
                    reason,
                    message: message.to_string(),
                });
            }
            _ => return Err(bad("unexpected line")),
        }
    }
    match library {
        Some(library) if !functions.is_empty() => Ok(Found { library, functions }),
        _ => Err(bad("no functions")),
    }
}

/// Runs `exe locate-tls --machine [--debug-dir DIR]... path` with an address-space limit and a
/// deadline, and reads its answer.
fn locate_in_child(exe: &Path, path: &Path, debug_dirs: &[PathBuf]) -> Result<Found, Refusal> {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(exe);
    cmd.arg("locate-tls").arg("--machine");
    for dir in debug_dirs {
        cmd.arg("--debug-dir").arg(dir);
    }
    cmd.arg(path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (setrlimit, nice) between fork
    // and exec; no allocation, no lock.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: CHILD_ADDRESS_SPACE,
                rlim_max: CHILD_ADDRESS_SPACE,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            // Analysis yields to the traced workload.
            libc::nice(10);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Refusal {
        reason: "child_failed",
        message: format!("starting {} locate-tls: {e}", exe.display()),
    })?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout.as_mut() {
            // At most 64 KiB: an answer is a few lines.
            out.take(64 * 1024).read_to_string(&mut text).ok();
        }
        text
    });
    let deadline = Instant::now() + TIME_BUDGET + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                child.kill().ok();
                child.wait().ok();
                break None;
            }
        }
    };
    let text = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => decode_answer(&text),
        Some(s) => Err(Refusal {
            reason: "child_failed",
            message: format!("the locator process ended with {s} (address space limited to {CHILD_ADDRESS_SPACE} bytes)"),
        }),
        None => Err(Refusal {
            reason: "child_killed",
            message: format!("the locator process ran past its deadline ({TIME_BUDGET:?} + 5 s)"),
        }),
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
        let mut locator = TlsLocator::new(Vec::new(), LocateIn::Thread);
        // Debian's libssl names its functions in .dynsym.
        assert_eq!(locator.in_flight(), 0);
        assert!(locator.submit(job("/usr/lib/x86_64-linux-gnu/libssl.so.3")));
        assert_eq!(locator.in_flight(), 1, "the agent polls while a job is out");
        let answer = locator
            .wait_answer(Duration::from_secs(30))
            .expect("an answer");
        assert_eq!(locator.in_flight(), 0);
        let found = answer.result.expect("libssl located");
        let names: Vec<&str> = found.functions.iter().map(|f| f.name).collect();
        assert!(names.contains(&"SSL_read") && names.contains(&"SSL_write"));
        assert_eq!(found.functions[0].source, "dynsym");
        assert!(!found.by_analysis());

        // curl has no TLS library of its own: a typed refusal, no address.
        assert!(locator.submit(job("/usr/bin/curl")));
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = loop {
            if let Some(a) = locator.take_answers().pop() {
                break a;
            }
            assert!(Instant::now() < deadline, "no answer for curl");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(locator.in_flight(), 0, "answers taken by polling count too");
        assert_eq!(
            answer.result.expect_err("curl defines no SSL_*").reason,
            "no_tls"
        );
    }

    #[test]
    fn the_quick_look_finds_names_across_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f");
        // A name straddling the first 1 MiB read.
        let mut data = vec![0u8; (1 << 20) - 4];
        data.extend_from_slice(b"ssl_lib.c");
        std::fs::write(&p, &data).expect("write");
        assert!(may_hold_tls(&p).expect("read"));
        std::fs::write(&p, vec![7u8; 3 << 20]).expect("write");
        assert!(!may_hold_tls(&p).expect("read"));
        assert!(may_hold_tls(&dir.path().join("missing")).is_err());
        // Real files: libcurl imports SSL_read; true has nothing.
        let libcurl = Path::new("/usr/lib/x86_64-linux-gnu/libcurl.so.4");
        assert!(may_hold_tls(libcurl).expect("libcurl (Debian's curl needs it)"));
        assert!(!may_hold_tls(Path::new("/usr/bin/true")).expect("true"));
    }

    #[test]
    fn answers_survive_the_line_protocol() {
        let found = Found {
            library: "BoringSsl".into(),
            functions: vec![
                FoundFunction {
                    name: "SSL_read",
                    vaddr: 0x9db6fd0,
                    file_offset: 0x9db5fd0,
                    source: "analysis",
                    detail: "evidence\twith a tab\nand a newline".into(),
                },
                FoundFunction {
                    name: "SSL_write",
                    vaddr: 0x10,
                    file_offset: 0x10,
                    source: "symtab",
                    detail: String::new(),
                },
            ],
        };
        let back = decode_answer(&encode_answer(&Ok(found.clone()))).expect("decodes");
        assert_eq!(
            back.functions[0].detail,
            "evidence with a tab and a newline"
        );
        assert_eq!(back.functions[1], found.functions[1]);
        assert!(back.by_analysis());
        let refused = Refusal {
            reason: "not_identified",
            message: "no".into(),
        };
        assert_eq!(
            decode_answer(&encode_answer(&Err(refused.clone()))),
            Err(refused)
        );
    }

    #[test]
    fn a_garbled_answer_is_a_refusal_never_a_function() {
        for text in [
            "",
            "library\tBoringSsl\n",
            "library\tX\nfunction\tSSL_evil\t10\t10\tanalysis\tx\n",
            "library\tX\nfunction\tSSL_read\tzz\t10\tanalysis\tx\n",
            "library\tX\nfunction\tSSL_read\t10\t10\tguess\tx\n",
            "hello",
        ] {
            let r = decode_answer(text).expect_err(text);
            assert_eq!(r.reason, "child_failed", "{text:?}");
        }
        // An unknown refusal reason keeps a fixed label.
        let r = decode_answer("refused\tsomething_new\twhy\n").expect_err("refused");
        assert_eq!(r.reason, "child_failed");
    }
}
