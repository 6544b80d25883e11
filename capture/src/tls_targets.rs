//! Finding where TLS plaintext can be read: every `libssl.so*` that a process
//! maps, every executable that defines `SSL_write`/`SSL_read` itself (a TLS
//! library linked statically, as in Node.js), every Go executable that
//! contains crypto/tls (read by `go_binary`, stripped or not), and every other
//! executable or shared object whose code holds OpenSSL or BoringSSL without
//! symbols for it (grpcio's `cygrpc*.so`, a `strip`ped program linked with
//! `libssl.a`): those are located by `tls-locate` on a background thread
//! ([`crate::tls_locator`]), and checked at run time ([`crate::tls_integrity`])
//! until their calls are shown to return plaintext, or detached.
//! Each file is hooked once, by (device, inode), for all processes; a new
//! process that maps an already hooked file is covered from its first
//! instruction.
//!
//! Processes already running are found through /proc at start; new ones through
//! their exec record, checked once the dynamic loader has mapped their
//! libraries; libraries loaded later (`dlopen`) through the probes' record of
//! an executable `mmap`.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self_metrics::{Counter, Registry};

use crate::tls_integrity::{check_sample, FileIntegrity, Verdict, FINDING_LABELS};
use crate::tls_locator::{Found, LocateAnswer, LocateIn, LocateJob, TlsLocator};

/// Libraries present on most hosts even before any process maps them, so that
/// a 10 ms curl is hooked before it starts.
const WELL_KNOWN_LIBSSL: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib64/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
];

/// How a process's TLS is hooked, for the log line and the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsPath {
    SharedLibssl,
    Static,
    /// Go's crypto/tls, hooked at `(*Conn).Write`/`Read`.
    Go,
    /// A Go executable with crypto/tls that could not be hooked, and why
    /// (`go_binary::GoBinaryError::reason`).
    GoSkipped(&'static str),
    /// SSL_* functions located in a file without symbols for them (or in a
    /// shared object not named libssl), hooked at proven entries.
    Located,
    /// A file with a TLS library whose functions could not be located with
    /// confidence, or whose hooks failed the integrity check, and why
    /// (`tls_locate::LocateError::reason`, `integrity_failed`, ...).
    LocateSkipped(&'static str),
    /// Handed to the background locator; no answer yet.
    Locating,
    None,
}

impl TlsPath {
    pub fn label(self) -> &'static str {
        match self {
            TlsPath::SharedLibssl => "shared_libssl",
            TlsPath::Static => "static",
            TlsPath::Go => "go",
            TlsPath::GoSkipped(_) => "go_skipped",
            TlsPath::Located => "located",
            TlsPath::LocateSkipped(_) => "located_skipped",
            TlsPath::Locating => "locating",
            TlsPath::None => "none",
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            TlsPath::GoSkipped(reason) | TlsPath::LocateSkipped(reason) => Some(reason),
            _ => None,
        }
    }

    fn is_hooked(self) -> bool {
        matches!(
            self,
            TlsPath::SharedLibssl | TlsPath::Static | TlsPath::Go | TlsPath::Located
        )
    }

    /// Which of two ways a process's TLS is hooked to report: a hooked one
    /// over a skipped one over none.
    fn rank(self) -> u8 {
        match self {
            TlsPath::SharedLibssl | TlsPath::Static | TlsPath::Go | TlsPath::Located => 3,
            TlsPath::GoSkipped(_) | TlsPath::LocateSkipped(_) => 2,
            TlsPath::Locating => 1,
            TlsPath::None => 0,
        }
    }
}

/// Maps `path` read-only; `None` when it cannot be opened or mapped.
fn map_file(path: &Path) -> Option<memmap2::Mmap> {
    let f = std::fs::File::open(path).ok()?;
    // Mapped, not read: only the pages a reader touches are brought in.
    // SAFETY: the mapping is read-only and dropped by the caller before
    // returning; a file truncated meanwhile could fault, which executables in
    // use are not.
    unsafe { memmap2::Mmap::map(&f) }.ok()
}

/// True when `path`'s file name is a libssl shared object.
pub fn is_libssl(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("libssl.so"))
}

/// Largest `.symtab` walked when `.dynsym` has no SSL functions: walking a
/// symbol table brings its pages into memory, and the agent's resident set
/// must stay small even when it meets very large unstripped binaries.
const SYMTAB_WALK_MAX: u64 = 8 * 1024 * 1024;

/// True when the ELF file defines (not imports) SSL_write and SSL_read: in its
/// dynamic symbols (Node.js exports them), else in a `.symtab` of bounded size
/// (an unstripped binary with BoringSSL linked in).
pub fn defines_ssl_functions(path: &Path) -> bool {
    match map_file(path) {
        Some(data) => defines_ssl_functions_in(&data),
        None => false,
    }
}

fn defines_ssl_functions_in(data: &[u8]) -> bool {
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(file) = object::File::parse(data) else {
        return false;
    };
    let defines = |symbols: &mut dyn Iterator<Item = object::Symbol<'_, '_>>| {
        let mut found = [false; 2];
        for sym in symbols {
            if !sym.is_definition() {
                continue;
            }
            match sym.name() {
                Ok("SSL_write") => found[0] = true,
                Ok("SSL_read") => found[1] = true,
                _ => {}
            }
            if found == [true, true] {
                return true;
            }
        }
        false
    };
    if defines(&mut file.dynamic_symbols()) {
        return true;
    }
    let symtab_size = file
        .section_by_name(".symtab")
        .map(|s| s.size())
        .unwrap_or(0);
    symtab_size > 0 && symtab_size <= SYMTAB_WALK_MAX && defines(&mut file.symbols())
}

/// The files one process maps executable (its executable, the dynamic
/// loader, every shared object), as seen from the agent's mount namespace
/// through /proc/PID/root.
pub fn mapped_code_files(pid: u32) -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    code_paths_in_maps(&maps)
        .into_iter()
        .map(|path| stable_path(pid, path))
        .collect()
}

/// The distinct paths of the executable mappings in a `/proc/PID/maps` text
/// (`r-xp` and the like; not `[vdso]`, anonymous or deleted files).
fn code_paths_in_maps(maps: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let perms = fields.nth(1).unwrap_or("");
        let Some(path) = fields.nth(3) else {
            continue;
        };
        if perms.as_bytes().get(2) != Some(&b'x') || !path.starts_with('/') {
            continue;
        }
        if line.ends_with(" (deleted)") || out.contains(&path) {
            continue;
        }
        out.push(path);
    }
    out
}

/// A path to `path` as `pid` sees it that stays valid after the process exits:
/// our own view of the same path when it is the same file (the common case,
/// no container), else the process's root view.
pub fn stable_path(pid: u32, path: &str) -> PathBuf {
    let ours = PathBuf::from(path);
    let theirs = PathBuf::from(format!("/proc/{pid}/root{path}"));
    match (file_id(&ours), file_id(&theirs)) {
        (Some(a), Some(b)) if a == b => ours,
        (_, Some(_)) => theirs,
        _ => ours,
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The pid and executable path of an exec record.
pub fn exec_target(bytes: &[u8]) -> Option<(u32, Option<PathBuf>)> {
    let kind = u32::from_ne_bytes(bytes.get(0..4)?.try_into().ok()?);
    if kind != probes_common::kind::PROC_EXEC {
        return None;
    }
    match probes_common::records::decode(bytes) {
        Ok(probes_common::records::Record::ProcExec(e)) => {
            let path = std::str::from_utf8(e.filename)
                .ok()
                .filter(|p| p.starts_with('/'));
            let exe = path.map(|p| stable_path(e.header.tgid, p));
            Some((e.header.tgid, exe))
        }
        _ => None,
    }
}

/// Hooks TLS libraries as they appear.
pub struct TlsAttacher {
    registry: Registry,
    /// What each file checked so far turned out to be (by device and inode).
    verdicts: HashMap<(u64, u64), TlsPath>,
    /// Processes to check once their delay has passed: after exec (the
    /// loader maps the libraries), or after an executable `mmap` (dlopen).
    pending: VecDeque<PendingCheck>,
    /// Processes with a check in `pending` for an `mmap` (one is enough).
    map_checks: std::collections::HashSet<u32>,
    hooked_files: Counter,
    attach_failures: Counter,
    dwarf: DwarfChecker,
    located: LocatedFiles,
    /// When `poll` last ran (see `next_poll`).
    last_poll: Instant,
}

/// How often the background jobs (DWARF checks, the TLS locator) are polled
/// for results while any is out. Their answers arrive on channels that do not
/// wake the agent's loop.
pub const JOB_POLL: Duration = Duration::from_millis(25);

/// A process to check later.
struct PendingCheck {
    due: Instant,
    pid: u32,
    exe: Option<PathBuf>,
    /// Counted in `wirespan_tls_processes_total` (an exec): a re-check after
    /// an `mmap` only counts files it finds located.
    after_exec: bool,
}

/// Files handed to [`TlsLocator`], and those hooked from its answers.
struct LocatedFiles {
    locator: TlsLocator,
    /// Processes whose count waits for a file's answer (bounded per file).
    waiting: HashMap<(u64, u64), Vec<u32>>,
    /// Hooked files whose integrity slot is in use, by slot.
    slots: HashMap<u32, SlotFile>,
    next_slot: u32,
    /// (pid, file) pairs already counted as `located`, so that re-checks do
    /// not count a process twice (bounded: cleared when full).
    counted: std::collections::HashSet<(u32, (u64, u64))>,
    answers: HashMap<&'static str, Counter>,
    registry: Registry,
    queue_full: Counter,
    /// The last `submit` was refused (queue full).
    refused: bool,
    samples: HashMap<&'static str, Counter>,
    checks: HashMap<&'static str, Counter>,
}

/// A file hooked at located entries, with its integrity check.
struct SlotFile {
    id: (u64, u64),
    path: PathBuf,
    integrity: FileIntegrity,
    verdict: Verdict,
}

/// Processes waiting for one file's answer, at most.
const WAITING_PER_FILE: usize = 64;
/// (pid, file) pairs remembered as counted, at most.
const COUNTED_MAX: usize = 65_536;

/// A Go executable hooked with the version table's offsets (or none), whose
/// DWARF is read afterwards, off the capture path, to confirm or correct them.
struct DwarfCheck {
    path: PathBuf,
    targets: go_binary::GoTlsTargets,
}

/// What reading one executable's DWARF gave.
struct DwarfResult {
    check: DwarfCheck,
    outcome: Result<go_binary::dwarf_offsets::DwarfOutcome, String>,
}

/// One background thread that reads DWARF (10–20 ms per unstripped binary:
/// too long for the loop that drains the ring buffer) and hands the results
/// back to [`TlsAttacher::poll`].
struct DwarfChecker {
    requests: Option<std::sync::mpsc::SyncSender<DwarfCheck>>,
    results: Option<std::sync::mpsc::Receiver<DwarfResult>>,
    outcomes: HashMap<&'static str, Counter>,
    /// Checks submitted whose results have not been taken.
    in_flight: usize,
}

/// How many executables may wait for their DWARF check.
const DWARF_QUEUE: usize = 64;

impl DwarfChecker {
    fn new(registry: &Registry) -> Self {
        let mut outcomes = HashMap::new();
        for result in ["confirmed", "corrected", "unavailable", "dropped"] {
            outcomes.insert(
                result,
                registry.counter(
                    "wirespan_tls_go_dwarf_checks_total",
                    "Go executables hooked before their DWARF was read, by what the DWARF said of \
                     the tls.Conn offsets: confirmed, corrected (probes re-attached), unavailable \
                     (no usable DWARF: the attached offsets stay), dropped (queue full).",
                    &[("result", result)],
                ),
            );
        }
        Self {
            requests: None,
            results: None,
            outcomes,
            in_flight: 0,
        }
    }

    fn count(&self, result: &'static str) {
        if let Some(c) = self.outcomes.get(result) {
            c.inc();
        }
    }

    fn submit(&mut self, check: DwarfCheck) {
        if self.requests.is_none() {
            let (req_tx, req_rx) = std::sync::mpsc::sync_channel::<DwarfCheck>(DWARF_QUEUE);
            let (res_tx, res_rx) = std::sync::mpsc::channel::<DwarfResult>();
            let spawned = std::thread::Builder::new()
                .name("wirespan-dwarf".into())
                .spawn(move || {
                    for check in req_rx {
                        let outcome = match map_file(&check.path) {
                            Some(data) => {
                                go_binary::dwarf_conn_offsets(&data).map_err(|e| e.to_string())
                            }
                            None => Err("the file could not be opened again".into()),
                        };
                        if res_tx.send(DwarfResult { check, outcome }).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("no thread for Go DWARF checks: {e}");
                self.count("dropped");
                return;
            }
            self.requests = Some(req_tx);
            self.results = Some(res_rx);
        }
        if let Some(tx) = &self.requests {
            if tx.try_send(check).is_err() {
                self.count("dropped");
            } else {
                self.in_flight += 1;
            }
        }
    }

    fn take_results(&mut self) -> Vec<DwarfResult> {
        let (ready, thread_gone) =
            crate::tls_locator::take_ready(self.results.as_ref(), &mut self.in_flight);
        if thread_gone {
            // The next submit starts another thread.
            self.requests = None;
            self.results = None;
        }
        ready
    }
}

/// Which kind of file is being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// A libssl shared object, hooked at its SSL_* symbols.
    Libssl,
    /// An executable: Go (crypto/tls) or with a static TLS library.
    Executable,
    /// Any other shared object a process maps executable: checked by the
    /// locator (symbols, then analysis), off the capture path.
    Library,
}

/// What hooking needs from the probes, so this module can be tested without
/// loading eBPF.
pub trait TlsHook {
    /// Hooks the SSL_* functions `target` defines; returns how many.
    fn attach_tls(&mut self, target: &Path) -> anyhow::Result<usize>;
    /// Hooks Go's crypto/tls in `target`; returns how many probes.
    fn attach_go_tls(
        &mut self,
        target: &Path,
        go: &go_binary::GoTlsTargets,
    ) -> anyhow::Result<usize>;
    /// Hooks SSL_* functions at located file offsets, with the file's
    /// integrity slot (0: not sampled); returns how many functions.
    fn attach_tls_located(
        &mut self,
        target: &Path,
        functions: &[(&'static str, u64)],
        slot: u32,
    ) -> anyhow::Result<usize>;
    /// Removes what `attach_tls_located` attached to `target`.
    fn detach_tls_located(&mut self, target: &Path) -> bool;
    /// Starts or stops sampling the calls of the file in `slot`.
    fn set_tls_verify(&mut self, slot: u32, on: bool) -> anyhow::Result<()>;
}

impl TlsHook for crate::probes::Probes {
    fn attach_tls(&mut self, target: &Path) -> anyhow::Result<usize> {
        crate::probes::Probes::attach_tls(self, target)
    }
    fn attach_go_tls(
        &mut self,
        target: &Path,
        go: &go_binary::GoTlsTargets,
    ) -> anyhow::Result<usize> {
        crate::probes::Probes::attach_go_tls(self, target, go)
    }
    fn attach_tls_located(
        &mut self,
        target: &Path,
        functions: &[(&'static str, u64)],
        slot: u32,
    ) -> anyhow::Result<usize> {
        crate::probes::Probes::attach_tls_located(self, target, functions, slot)
    }
    fn detach_tls_located(&mut self, target: &Path) -> bool {
        crate::probes::Probes::detach_tls_located(self, target)
    }
    fn set_tls_verify(&mut self, slot: u32, on: bool) -> anyhow::Result<()> {
        crate::probes::Probes::set_tls_verify(self, slot, on)
    }
}

impl TlsAttacher {
    pub fn new(registry: &Registry) -> Self {
        for path in [
            TlsPath::SharedLibssl,
            TlsPath::Static,
            TlsPath::Go,
            TlsPath::Located,
            TlsPath::None,
        ] {
            process_counter(registry, path);
        }
        Self {
            registry: registry.clone(),
            verdicts: HashMap::new(),
            pending: VecDeque::new(),
            map_checks: std::collections::HashSet::new(),
            located: LocatedFiles::new(registry),
            hooked_files: registry.counter(
                "wirespan_tls_hooked_files_total",
                "Distinct libssl files and executables with TLS uprobes attached.",
                &[],
            ),
            attach_failures: registry.counter(
                "wirespan_tls_attach_failures_total",
                "Files whose TLS functions could not be hooked.",
                &[],
            ),
            dwarf: DwarfChecker::new(registry),
            last_poll: Instant::now(),
        }
    }

    /// Where analyses run (the agent: a child process of itself) and which
    /// extra directories hold debug files.
    pub fn with_locator(mut self, run_in: LocateIn, debug_dirs: Vec<PathBuf>) -> Self {
        self.located.locator = TlsLocator::new(debug_dirs, run_in);
        self
    }

    /// Hooks `path` once; says how its TLS is (now or already) hooked.
    fn hook(&mut self, hook: &mut impl TlsHook, path: &Path, kind: FileKind) -> TlsPath {
        let Some(id) = file_id(path) else {
            return TlsPath::None;
        };
        if let Some(verdict) = self.verdicts.get(&id) {
            return *verdict;
        }
        self.located.refused = false;
        let verdict = self.check_file(hook, path, kind, id);
        // A file the locator could not take now is not remembered: the next
        // process that maps it tries again.
        if !self.located.refused {
            self.verdicts.insert(id, verdict);
        }
        verdict
    }

    /// The first and only check of one file.
    fn check_file(
        &mut self,
        hook: &mut impl TlsHook,
        path: &Path,
        kind: FileKind,
        id: (u64, u64),
    ) -> TlsPath {
        match kind {
            FileKind::Libssl => return self.attach_ssl(hook, path, TlsPath::SharedLibssl),
            FileKind::Library => return self.located.submit(id, path),
            FileKind::Executable => {}
        }
        let Some(data) = map_file(path) else {
            return TlsPath::None;
        };
        if go_binary::is_go_executable(&data) {
            let started = Instant::now();
            // DWARF later: a short-lived process must be hooked first.
            let inspected = go_binary::inspect_tls_bytes_quick(&data);
            drop(data);
            return self.attach_go(hook, path, inspected, started.elapsed());
        }
        let has_ssl = defines_ssl_functions_in(&data);
        drop(data);
        if !has_ssl {
            // Stripped, or no TLS at all: the locator decides, off this path.
            return self.located.submit(id, path);
        }
        self.attach_ssl(hook, path, TlsPath::Static)
    }

    fn attach_ssl(&mut self, hook: &mut impl TlsHook, path: &Path, as_path: TlsPath) -> TlsPath {
        match hook.attach_tls(path) {
            Ok(n) if n > 0 => {
                tracing::info!(path = %path.display(), functions = n, "TLS uprobes attached");
                self.hooked_files.inc();
                as_path
            }
            Ok(_) => TlsPath::None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "TLS uprobes not attached: {e:#}");
                self.attach_failures.inc();
                TlsPath::None
            }
        }
    }

    fn attach_go(
        &mut self,
        hook: &mut impl TlsHook,
        path: &Path,
        inspected: Result<go_binary::GoTlsTargets, go_binary::GoBinaryError>,
        took: Duration,
    ) -> TlsPath {
        let go = match inspected {
            Ok(go) => go,
            Err(e) if e.reason() == "no_tls" => {
                tracing::debug!(path = %path.display(), "Go executable without crypto/tls");
                return TlsPath::None;
            }
            Err(e) => {
                // Once per file: the verdict is kept by inode.
                tracing::warn!(
                    path = %path.display(),
                    reason = e.reason(),
                    "Go crypto/tls not hooked: {e}"
                );
                return TlsPath::GoSkipped(e.reason());
            }
        };
        let started = Instant::now();
        match hook.attach_go_tls(path, &go) {
            Ok(probes) => {
                tracing::info!(
                    path = %path.display(),
                    go_version = %go.version,
                    stripped = !go.has_symtab,
                    conn_offsets = offsets_label(go.offsets),
                    dwarf_check = go.has_dwarf,
                    probes,
                    inspect_us = took.as_micros() as u64,
                    attach_us = started.elapsed().as_micros() as u64,
                    "Go crypto/tls uprobes attached"
                );
                self.hooked_files.inc();
                if go.has_dwarf {
                    self.dwarf.submit(DwarfCheck {
                        path: path.to_path_buf(),
                        targets: go,
                    });
                }
                TlsPath::Go
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "Go crypto/tls uprobes not attached: {e:#}");
                self.attach_failures.inc();
                TlsPath::GoSkipped("attach_failed")
            }
        }
    }

    fn count_process(&self, pid: u32, path: TlsPath) {
        process_counter(&self.registry, path).inc();
        if path.is_hooked() {
            tracing::info!(pid, tls = path.label(), "process TLS hooked");
        } else {
            tracing::debug!(pid, tls = path.label(), "process TLS not hooked");
        }
    }

    /// Checks one process: its mapped libssl files, else its executable
    /// (`exe`, from the exec record, still readable after a short process
    /// exits; else /proc/PID/exe).
    fn check_process(
        &mut self,
        hook: &mut impl TlsHook,
        pid: u32,
        exe: Option<&Path>,
        count: bool,
    ) -> TlsPath {
        // The executable by a path that outlives the process (the locator
        // may read it after the process has exited), else /proc/PID/exe.
        let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let resolved = match exe {
            Some(_) => None,
            None => std::fs::read_link(&proc_exe)
                .ok()
                .and_then(|p| p.to_str().map(|p| stable_path(pid, p)))
                .filter(|p| file_id(p).is_some() && file_id(p) == file_id(&proc_exe)),
        };
        let exe = exe.or(resolved.as_deref()).unwrap_or(&proc_exe);
        let exe_id = file_id(exe);
        let mut path = TlsPath::None;
        let mut libssl_hooked = false;
        let mut waiting_on = Vec::new();
        for file in mapped_code_files(pid) {
            let Some(id) = file_id(&file) else {
                continue;
            };
            if Some(id) == exe_id {
                continue;
            }
            let name = file.to_string_lossy();
            let kind = if is_libssl(&name) {
                FileKind::Libssl
            } else {
                FileKind::Library
            };
            let verdict = self.hook(hook, &file, kind);
            libssl_hooked |= kind == FileKind::Libssl && verdict.is_hooked();
            match verdict {
                TlsPath::Locating => waiting_on.push(id),
                TlsPath::Located | TlsPath::LocateSkipped(_) if !count => {
                    self.located.count_once(pid, id, verdict);
                }
                _ => {}
            }
            if verdict.rank() > path.rank() {
                path = verdict;
            }
        }
        if !libssl_hooked {
            let verdict = self.hook(hook, exe, FileKind::Executable);
            if let (TlsPath::Locating, Some(id)) = (verdict, exe_id) {
                waiting_on.push(id);
            }
            if verdict.rank() > path.rank() {
                path = verdict;
            }
        }
        if count {
            if path == TlsPath::Locating {
                // Counted when the first answer comes.
                for id in waiting_on {
                    self.located.wait(id, pid);
                }
            } else {
                self.count_process(pid, path);
            }
        } else {
            for id in waiting_on {
                self.located.wait(id, pid);
            }
        }
        path
    }

    /// At start: well-known libraries, then every running process.
    pub fn discover_all(&mut self, hook: &mut impl TlsHook, own_pid: u32) {
        for lib in WELL_KNOWN_LIBSSL {
            let p = Path::new(lib);
            if p.exists() {
                self.hook(hook, p, FileKind::Libssl);
            }
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            {
                if pid != own_pid {
                    self.check_process(hook, pid, None, true);
                }
            }
        }
    }

    /// A process called exec. An executable with its own TLS (Go, or a static
    /// library) is hooked at once: its path is known now, and a short-lived
    /// process must be covered before it makes its first TLS call. Shared
    /// libraries are looked for once the dynamic loader has mapped them.
    pub fn on_exec(&mut self, hook: &mut impl TlsHook, pid: u32, exe: Option<PathBuf>) {
        if let Some(exe) = &exe {
            let path = self.hook(hook, exe, FileKind::Executable);
            if path.is_hooked() || matches!(path, TlsPath::GoSkipped(_)) {
                self.count_process(pid, path);
                return;
            }
        }
        self.queue_check(PendingCheck {
            due: Instant::now() + Duration::from_millis(20),
            pid,
            exe,
            after_exec: true,
        });
    }

    /// A process is mapping a file executable (the loader, or `dlopen`):
    /// its maps are read again shortly, once however many such calls it
    /// makes meanwhile. Files already checked cost a `stat` each.
    pub fn on_map(&mut self, pid: u32) {
        if !self.map_checks.insert(pid) {
            return;
        }
        self.queue_check(PendingCheck {
            due: Instant::now() + Duration::from_millis(2),
            pid,
            exe: None,
            after_exec: false,
        });
    }

    /// Hands a record to TLS discovery: exec, executable `mmap` and
    /// integrity samples; other records are ignored. Cheap for them (the
    /// kind is the first word).
    pub fn on_record(&mut self, hook: &mut impl TlsHook, bytes: &[u8]) {
        let Some(kind) = bytes.get(0..4).and_then(|b| b.try_into().ok()) else {
            return;
        };
        match u32::from_ne_bytes(kind) {
            probes_common::kind::PROC_EXEC => {
                if let Some((pid, exe)) = exec_target(bytes) {
                    self.on_exec(hook, pid, exe);
                }
            }
            probes_common::kind::PROC_MAP => {
                if let Ok(probes_common::records::Record::ProcMap(m)) =
                    probes_common::records::decode(bytes)
                {
                    self.on_map(m.header.tgid);
                }
            }
            probes_common::kind::TLS_SAMPLE => {
                if let Ok(probes_common::records::Record::TlsSample(s)) =
                    probes_common::records::decode(bytes)
                {
                    self.on_sample(hook, &s);
                }
            }
            _ => {}
        }
    }

    /// One sampled call of a located file: adds it to the file's check, and
    /// acts on a verdict.
    pub fn on_sample(&mut self, hook: &mut impl TlsHook, sample: &probes_common::TlsSampleRecord) {
        let finding = check_sample(sample);
        self.located.count_sample(finding.label());
        let Some(file) = self.located.slots.get_mut(&sample.slot) else {
            return;
        };
        if file.verdict != Verdict::Pending {
            return; // samples already in the ring when sampling stopped
        }
        let verdict = file.integrity.add(finding);
        if verdict == Verdict::Pending {
            return;
        }
        file.verdict = verdict;
        let (id, path, tally) = (file.id, file.path.clone(), file.integrity);
        self.located.count_check(verdict.label());
        if let Err(e) = hook.set_tls_verify(sample.slot, false) {
            tracing::warn!(path = %path.display(), "TLS integrity sampling not stopped: {e:#}");
        }
        match verdict {
            Verdict::Failed(why) => {
                let detached = hook.detach_tls_located(&path);
                tracing::warn!(
                    path = %path.display(),
                    why,
                    samples = tally.samples,
                    violations = tally.violations,
                    http = tally.http,
                    text = tally.text,
                    binary = tally.binary,
                    detached,
                    "located TLS functions failed the integrity check: their probes are detached"
                );
                self.located.slots.remove(&sample.slot);
                self.verdicts
                    .insert(id, TlsPath::LocateSkipped("integrity_failed"));
            }
            _ => tracing::info!(
                path = %path.display(),
                result = verdict.label(),
                samples = tally.samples,
                http = tally.http,
                text = tally.text,
                binary = tally.binary,
                "located TLS functions checked: their calls return plaintext"
            ),
        }
    }

    fn queue_check(&mut self, check: PendingCheck) {
        // Bounded: under an exec storm the oldest checks are dropped, not queued forever.
        if self.pending.len() >= 4096 {
            if let Some(dropped) = self.pending.pop_front() {
                if !dropped.after_exec {
                    self.map_checks.remove(&dropped.pid);
                }
            }
        }
        // The queue stays ordered by due time: an mmap check (short delay)
        // goes before exec checks due later.
        let at = self
            .pending
            .iter()
            .rposition(|c| c.due <= check.due)
            .map_or(0, |i| i + 1);
        self.pending.insert(at, check);
    }

    /// Acts on what DWARF said of the offsets a Go executable was hooked with.
    fn apply_dwarf(&mut self, hook: &mut impl TlsHook, result: DwarfResult) {
        use go_binary::dwarf_offsets::DwarfOutcome;
        let DwarfResult { mut check, outcome } = result;
        let path = check.path.display().to_string();
        let attached = check.targets.offsets.map(|(o, _)| o);
        let found = match outcome {
            Ok(DwarfOutcome::Found(o)) => o,
            Ok(other) => {
                tracing::info!(path, outcome = ?other, "Go DWARF gives no tls.Conn offsets; the attached ones stay");
                self.dwarf.count("unavailable");
                return;
            }
            Err(e) => {
                tracing::info!(path, "Go DWARF not read ({e}); the attached offsets stay");
                self.dwarf.count("unavailable");
                return;
            }
        };
        if attached == Some(found) {
            tracing::debug!(path, "Go DWARF confirms the tls.Conn offsets");
            self.dwarf.count("confirmed");
            return;
        }
        check.targets.offsets = Some((found, go_binary::OffsetsSource::Dwarf));
        match hook.attach_go_tls(&check.path, &check.targets) {
            Ok(_) => {
                tracing::info!(
                    path,
                    was = offsets_label(attached.map(|o| (o, go_binary::OffsetsSource::VersionTable))),
                    now = ?found,
                    "Go crypto/tls probes re-attached with the offsets DWARF gives"
                );
                self.dwarf.count("corrected");
            }
            Err(e) => {
                tracing::warn!(
                    path,
                    "Go crypto/tls probes not re-attached with DWARF offsets: {e:#}"
                );
                self.attach_failures.inc();
            }
        }
    }

    /// When [`TlsAttacher::poll`] has work next: the first queued process
    /// check's due time, or [`JOB_POLL`] after the last poll while a DWARF
    /// check or a locator job is out. `None` when there is nothing to do, so
    /// an idle agent does not wake up for TLS discovery at all.
    pub fn next_poll(&self) -> Option<Instant> {
        let due = self.pending.front().map(|c| c.due);
        let jobs_out = self.dwarf.in_flight > 0 || self.located.locator.in_flight() > 0;
        let for_jobs = jobs_out.then(|| self.last_poll + JOB_POLL);
        match (due, for_jobs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Checks the processes whose delay has passed, and applies the DWARF
    /// checks that have finished.
    pub fn poll(&mut self, hook: &mut impl TlsHook) {
        self.last_poll = Instant::now();
        for result in self.dwarf.take_results() {
            self.apply_dwarf(hook, result);
        }
        for answer in self.located.locator.take_answers() {
            self.apply_answer(hook, answer);
        }
        let now = Instant::now();
        while self.pending.front().is_some_and(|c| c.due <= now) {
            if let Some(check) = self.pending.pop_front() {
                if !check.after_exec {
                    self.map_checks.remove(&check.pid);
                }
                self.check_process(hook, check.pid, check.exe.as_deref(), check.after_exec);
            }
        }
    }

    /// Hooks a file from the locator's answer, and counts the processes that
    /// waited for it.
    fn apply_answer(&mut self, hook: &mut impl TlsHook, answer: LocateAnswer) {
        let LocateAnswer { job, result, took } = answer;
        let path = job.path.display().to_string();
        let verdict = match result {
            Ok(found) => self.attach_located(hook, &job, &found, took),
            Err(e) if e.reason == "no_tls" => {
                self.located.count_answer("no_tls");
                TlsPath::None
            }
            Err(e) if e.reason == "io" => {
                // Gone or unreadable now (a process that exited): not a
                // verdict on the file; the next process that maps it retries.
                tracing::debug!(path, "TLS locator could not read the file: {}", e.message);
                self.located.count_answer("io");
                self.verdicts.remove(&job.id);
                for pid in self.located.waiting.remove(&job.id).unwrap_or_default() {
                    self.count_process(pid, TlsPath::None);
                }
                return;
            }
            Err(e) => {
                // Once per file: the verdict is kept by inode.
                tracing::warn!(
                    path,
                    reason = e.reason,
                    took_ms = took.as_millis() as u64,
                    "TLS library found but its functions not hooked: {}",
                    e.message
                );
                self.located.count_answer(e.reason);
                TlsPath::LocateSkipped(e.reason)
            }
        };
        self.verdicts.insert(job.id, verdict);
        for pid in self.located.waiting.remove(&job.id).unwrap_or_default() {
            if verdict == TlsPath::None {
                self.count_process(pid, verdict);
            } else {
                self.located.count_once(pid, job.id, verdict);
            }
        }
    }

    fn attach_located(
        &mut self,
        hook: &mut impl TlsHook,
        job: &LocateJob,
        found: &Found,
        took: Duration,
    ) -> TlsPath {
        let path = job.path.display().to_string();
        let functions: Vec<(&'static str, u64)> = found
            .functions
            .iter()
            .map(|f| (f.name, f.file_offset))
            .collect();
        let reads = functions.iter().any(|(n, _)| n.starts_with("SSL_read"));
        let writes = functions.iter().any(|(n, _)| n.starts_with("SSL_write"));
        if !(reads && writes) {
            // One direction only would give requests without responses.
            tracing::warn!(path, found = ?functions, "TLS functions located for one direction only: not hooked");
            self.located.count_answer("one_direction");
            return TlsPath::LocateSkipped("one_direction");
        }
        let named_by = found.functions[0].source;
        let by_analysis = found.by_analysis();
        let slot = if by_analysis {
            match self.located.free_slot() {
                Some(slot) => slot,
                None => {
                    tracing::warn!(
                        path,
                        "no integrity slot left: located TLS functions not hooked"
                    );
                    self.located.count_answer("slots_full");
                    return TlsPath::LocateSkipped("slots_full");
                }
            }
        } else {
            0
        };
        match hook.attach_tls_located(&job.path, &functions, slot) {
            Ok(n) => {
                tracing::info!(
                    path,
                    library = found.library,
                    named_by,
                    evidence = found.functions[0].detail,
                    functions = n,
                    locate_ms = took.as_millis() as u64,
                    integrity_check = by_analysis,
                    "TLS uprobes attached at located functions"
                );
                self.hooked_files.inc();
                self.located.count_answer(named_by);
                if by_analysis {
                    self.located.slots.insert(
                        slot,
                        SlotFile {
                            id: job.id,
                            path: job.path.clone(),
                            integrity: FileIntegrity::default(),
                            verdict: Verdict::Pending,
                        },
                    );
                    if let Err(e) = hook.set_tls_verify(slot, true) {
                        // Unverifiable: not left attached on analysis alone.
                        tracing::warn!(
                            path,
                            "TLS integrity sampling not started ({e:#}): probes detached"
                        );
                        hook.detach_tls_located(&job.path);
                        self.located.slots.remove(&slot);
                        return TlsPath::LocateSkipped("integrity_unavailable");
                    }
                }
                TlsPath::Located
            }
            Err(e) => {
                tracing::warn!(path, "TLS uprobes not attached at located functions: {e:#}");
                self.attach_failures.inc();
                self.located.count_answer("attach_failed");
                TlsPath::LocateSkipped("attach_failed")
            }
        }
    }
}

impl LocatedFiles {
    fn new(registry: &Registry) -> Self {
        let mut samples = HashMap::new();
        for label in FINDING_LABELS {
            samples.insert(
                label,
                registry.counter(
                    "wirespan_tls_integrity_samples_total",
                    "Calls of TLS functions located without a symbol, sampled while their file \
                     is checked, by what the sample showed: http, text, binary, unknown (no \
                     bytes), or a violation (longer_than_buffer, ahead_of_ciphertext).",
                    &[("result", label)],
                ),
            );
        }
        let mut checks = HashMap::new();
        for label in ["verified", "failed", "inconclusive"] {
            checks.insert(
                label,
                registry.counter(
                    "wirespan_tls_integrity_checks_total",
                    "Files whose located TLS functions finished their integrity check: \
                     verified (plaintext), failed (probes detached), inconclusive (no \
                     decision after the sample budget; probes stay).",
                    &[("result", label)],
                ),
            );
        }
        Self {
            locator: TlsLocator::new(Vec::new(), LocateIn::Thread),
            waiting: HashMap::new(),
            slots: HashMap::new(),
            next_slot: 1,
            counted: std::collections::HashSet::new(),
            answers: HashMap::new(),
            registry: registry.clone(),
            refused: false,
            queue_full: registry.counter(
                "wirespan_tls_locate_dropped_total",
                "Files not handed to the TLS locator because its queue was full (tried again \
                 when another process maps them).",
                &[],
            ),
            samples,
            checks,
        }
    }

    /// Hands a file to the locator: `Locating` when it took it, `None` when
    /// its queue was full (counted; not remembered, see `TlsAttacher::hook`).
    fn submit(&mut self, id: (u64, u64), path: &Path) -> TlsPath {
        let job = LocateJob {
            id,
            path: path.to_path_buf(),
        };
        if self.locator.submit(job) {
            TlsPath::Locating
        } else {
            self.queue_full.inc();
            self.refused = true;
            TlsPath::None
        }
    }

    fn wait(&mut self, id: (u64, u64), pid: u32) {
        let list = self.waiting.entry(id).or_default();
        if list.len() < WAITING_PER_FILE && !list.contains(&pid) {
            list.push(pid);
        }
    }

    /// Counts `pid` as hooked (or skipped) through file `id`, once.
    fn count_once(&mut self, pid: u32, id: (u64, u64), path: TlsPath) {
        if self.counted.len() >= COUNTED_MAX {
            self.counted.clear();
        }
        if self.counted.insert((pid, id)) {
            process_counter(&self.registry, path).inc();
            tracing::info!(
                pid,
                tls = path.label(),
                reason = path.reason(),
                "process TLS checked"
            );
        }
    }

    fn count_answer(&mut self, result: &'static str) {
        // Labels are a closed set: the locator's reasons, symbol sources and
        // this module's own words.
        let registry = &self.registry;
        self.answers
            .entry(result)
            .or_insert_with(|| {
                registry.counter(
                    "wirespan_tls_located_files_total",
                    "Files the TLS locator answered for, by how their SSL_* functions were \
                     named (symtab, dynsym, debug_file, analysis) or why they were not hooked \
                     (no_tls, no_unwind_info, not_identified, integrity slots full, ...).",
                    &[("result", result)],
                )
            })
            .inc();
    }

    fn count_sample(&self, label: &'static str) {
        if let Some(c) = self.samples.get(label) {
            c.inc();
        }
    }

    fn count_check(&self, label: &'static str) {
        if let Some(c) = self.checks.get(label) {
            c.inc();
        }
    }

    /// A slot no hooked file uses, or `None` when all are taken.
    fn free_slot(&mut self) -> Option<u32> {
        let n = probes_common::TLS_VERIFY_SLOTS;
        for _ in 1..n {
            let slot = self.next_slot;
            self.next_slot = if slot + 1 >= n { 1 } else { slot + 1 };
            if !self.slots.contains_key(&slot) {
                return Some(slot);
            }
        }
        None
    }
}

fn offsets_label(
    offsets: Option<(go_binary::ConnFdOffsets, go_binary::OffsetsSource)>,
) -> &'static str {
    match offsets {
        Some((_, go_binary::OffsetsSource::Dwarf)) => "dwarf",
        Some((_, go_binary::OffsetsSource::VersionTable)) => "version_table",
        None => "unknown (socket from the nested syscall)",
    }
}

/// `wirespan_tls_processes_total` for one way of hooking (and, for a Go
/// executable that could not be hooked, why).
fn process_counter(registry: &Registry, path: TlsPath) -> Counter {
    const HELP: &str = "Processes checked for a TLS library, by how their TLS is hooked \
                        (go_skipped: a Go executable with crypto/tls that could not be, by reason).";
    match path.reason() {
        Some(reason) => registry.counter(
            "wirespan_tls_processes_total",
            HELP,
            &[("path", path.label()), ("reason", reason)],
        ),
        None => registry.counter(
            "wirespan_tls_processes_total",
            HELP,
            &[("path", path.label())],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_libssl_names() {
        assert!(is_libssl("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl("/opt/x/libssl.so"));
        assert!(!is_libssl("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
        assert!(!is_libssl("/usr/lib/libssl3.so"));
    }

    #[test]
    fn finds_static_and_shared_ssl_definitions() {
        let libssl = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        assert!(
            libssl.exists(),
            "Debian's libssl3 is expected on this machine"
        );
        assert!(defines_ssl_functions(libssl));
        // curl imports SSL_write from libssl; it does not define it.
        assert!(!defines_ssl_functions(Path::new("/usr/bin/curl")));
        assert!(!defines_ssl_functions(Path::new("/nonexistent")));
        // Node.js links OpenSSL statically.
        let node = Path::new("/usr/bin/node");
        if node.exists() {
            assert!(defines_ssl_functions(node));
        }
    }

    struct Recorder(Vec<PathBuf>);
    impl TlsHook for Recorder {
        fn attach_tls(&mut self, target: &Path) -> anyhow::Result<usize> {
            self.0.push(target.to_path_buf());
            Ok(4)
        }
        fn attach_go_tls(
            &mut self,
            target: &Path,
            _go: &go_binary::GoTlsTargets,
        ) -> anyhow::Result<usize> {
            self.0.push(target.to_path_buf());
            Ok(6)
        }
        fn attach_tls_located(
            &mut self,
            target: &Path,
            functions: &[(&'static str, u64)],
            _slot: u32,
        ) -> anyhow::Result<usize> {
            self.0.push(target.to_path_buf());
            Ok(functions.len())
        }
        fn detach_tls_located(&mut self, target: &Path) -> bool {
            self.0.retain(|p| p != target);
            true
        }
        fn set_tls_verify(&mut self, _slot: u32, _on: bool) -> anyhow::Result<()> {
            Ok(())
        }
    }

    /// Debian's Go compiler is itself a stripped Go program with crypto/tls.
    const DEBIAN_GO: &str = "/usr/lib/go-1.19/bin/go";

    #[test]
    fn go_executables_are_hooked_once_and_skips_are_counted() {
        let go = Path::new(DEBIAN_GO);
        assert!(
            go.exists(),
            "{DEBIAN_GO} is missing: run scripts/setup.sh (apt-get install golang-1.19-go)"
        );
        let registry = Registry::new();
        let mut a = TlsAttacher::new(&registry);
        let mut r = Recorder(Vec::new());
        assert_eq!(a.hook(&mut r, go, FileKind::Executable), TlsPath::Go);
        assert_eq!(a.hook(&mut r, go, FileKind::Executable), TlsPath::Go);
        assert_eq!(r.0, vec![go.to_path_buf()]);
        a.count_process(1, TlsPath::Go);
        assert_eq!(
            registry.value("wirespan_tls_processes_total", &[("path", "go")]),
            Some(1)
        );

        // A Go executable whose function table is damaged: skipped, with why.
        let dir = tempfile::tempdir().expect("temp dir");
        let damaged = dir.path().join("go-damaged");
        let mut bytes = std::fs::read(go).expect("read go");
        let pos = {
            use object::{Object, ObjectSection};
            let file = object::File::parse(&*bytes).expect("ELF");
            let section = file.section_by_name(".gopclntab").expect(".gopclntab");
            section.file_range().expect("in the file").0 as usize
        };
        bytes[pos..pos + 4].copy_from_slice(&[0, 0, 0, 0]);
        std::fs::write(&damaged, bytes).expect("write");
        let verdict = a.hook(&mut r, &damaged, FileKind::Executable);
        assert_eq!(verdict, TlsPath::GoSkipped("bad_pclntab"));
        assert_eq!(r.0.len(), 1, "nothing attached to the damaged file");
        a.count_process(2, verdict);
        assert_eq!(
            registry.value(
                "wirespan_tls_processes_total",
                &[("path", "go_skipped"), ("reason", "bad_pclntab")]
            ),
            Some(1)
        );
    }

    #[test]
    fn hooks_each_file_once() {
        let registry = Registry::new();
        let mut a = TlsAttacher::new(&registry);
        let mut r = Recorder(Vec::new());
        let lib = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        assert_eq!(a.hook(&mut r, lib, FileKind::Libssl), TlsPath::SharedLibssl);
        assert_eq!(a.hook(&mut r, lib, FileKind::Libssl), TlsPath::SharedLibssl);
        assert_eq!(r.0.len(), 1);
        // curl has no TLS of its own: the locator says so, off this path.
        let curl = Path::new("/usr/bin/curl");
        assert_eq!(
            a.hook(&mut r, curl, FileKind::Executable),
            TlsPath::Locating
        );
        assert_eq!(
            a.hook(&mut r, curl, FileKind::Executable),
            TlsPath::Locating
        );
        let answered = wait_verdict(&mut a, &mut r, curl);
        assert_eq!(answered, Some(TlsPath::None));
        assert_eq!(r.0.len(), 1);
    }

    /// An idle agent is not woken for TLS discovery: `next_poll` is `None`
    /// until there is a process to check or a job out, and then names when.
    #[test]
    fn discovery_asks_for_a_poll_only_with_work() {
        let registry = Registry::new();
        let mut a = TlsAttacher::new(&registry);
        let mut r = Recorder(Vec::new());
        assert_eq!(a.next_poll(), None, "nothing queued, nothing out");

        // A pid no process has: its check finds no maps and submits nothing.
        let gone = 0x7fff_fff0;
        let before = Instant::now();
        a.on_map(gone);
        let due = a.next_poll().expect("an mmap check is queued");
        assert!(due > before && due <= Instant::now() + Duration::from_millis(2));
        a.on_map(gone);
        assert_eq!(a.next_poll(), Some(due), "one check per process");

        // Once due, the check runs and nothing is left to poll for.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        a.poll(&mut r);
        assert_eq!(a.next_poll(), None);

        // A locator job out: polled every JOB_POLL until its answer is taken.
        let curl = Path::new("/usr/bin/curl");
        assert_eq!(
            a.hook(&mut r, curl, FileKind::Executable),
            TlsPath::Locating
        );
        a.poll(&mut r);
        let polled = Instant::now();
        let next = a.next_poll().expect("polled while the job is out");
        assert!(next <= polled + JOB_POLL && next + JOB_POLL >= polled);
        assert_eq!(wait_verdict(&mut a, &mut r, curl), Some(TlsPath::None));
        assert_eq!(a.next_poll(), None, "the answer was taken");
    }

    fn wait_verdict(a: &mut TlsAttacher, r: &mut Recorder, path: &Path) -> Option<TlsPath> {
        let id = file_id(path)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            a.poll(r);
            match a.verdicts.get(&id) {
                Some(TlsPath::Locating) | None => std::thread::sleep(Duration::from_millis(10)),
                Some(v) => return Some(*v),
            }
        }
        None
    }

    fn sample(slot: u32, bytes: &[u8], len: u64, requested: u64) -> probes_common::TlsSampleRecord {
        let mut s = probes_common::TlsSampleRecord {
            slot,
            len,
            requested,
            direction: probes_common::direction::EGRESS,
            ..Default::default()
        };
        s.sample[..bytes.len()].copy_from_slice(bytes);
        s.sample_len = bytes.len() as u32;
        s
    }

    /// A stripped static-libssl program is located by analysis, hooked with
    /// an integrity slot, verified by plaintext samples; a second file that
    /// sends impossible samples fails its check and is detached.
    #[test]
    fn located_files_are_verified_or_detached() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("c.c");
        std::fs::write(
            &src,
            "#include <openssl/ssl.h>\nint main(int c, char **v) { SSL *s = SSL_new(SSL_CTX_new(TLS_client_method())); char b[9];\n\
             if (c > 5) { SSL_write(s, v[0], 1); SSL_read(s, b, 9); } return s == 0; }\n",
        )
        .expect("write");
        let exe = dir.path().join("c");
        let built = std::process::Command::new("cc")
            .arg("-O2")
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .args([
                "/usr/lib/x86_64-linux-gnu/libssl.a",
                "/usr/lib/x86_64-linux-gnu/libcrypto.a",
                "-lpthread",
                "-ldl",
            ])
            .status()
            .expect("cc (scripts/setup.sh installs gcc and libssl-dev)");
        assert!(built.success());
        assert!(std::process::Command::new("strip")
            .arg(&exe)
            .status()
            .expect("strip")
            .success());
        let copy = dir.path().join("c2");
        std::fs::copy(&exe, &copy).expect("copy");

        let registry = Registry::new();
        let mut a = TlsAttacher::new(&registry);
        let mut r = Recorder(Vec::new());
        assert_eq!(
            a.hook(&mut r, &exe, FileKind::Executable),
            TlsPath::Locating
        );
        assert_eq!(wait_verdict(&mut a, &mut r, &exe), Some(TlsPath::Located));
        assert_eq!(
            a.hook(&mut r, &copy, FileKind::Executable),
            TlsPath::Locating
        );
        assert_eq!(wait_verdict(&mut a, &mut r, &copy), Some(TlsPath::Located));
        assert_eq!(r.0, vec![exe.clone(), copy.clone()]);
        let slot_of = |a: &TlsAttacher, p: &Path| {
            a.located
                .slots
                .iter()
                .find(|(_, f)| f.path == p)
                .map(|(s, _)| *s)
                .expect("an integrity slot")
        };
        let (good, bad) = (slot_of(&a, &exe), slot_of(&a, &copy));
        assert_ne!(good, bad);

        for _ in 0..2 {
            a.on_sample(&mut r, &sample(good, b"GET / HTTP/1.1\r\n", 18, 18));
            a.on_sample(&mut r, &sample(good, b"HTTP/1.1 200 OK\r\n", 17, 4096));
        }
        // More bytes than the buffer it was given, twice: not SSL_write.
        a.on_sample(&mut r, &sample(bad, b"GET / HTTP/1.1\r\n", 900, 18));
        a.on_sample(&mut r, &sample(bad, b"GET / HTTP/1.1\r\n", 900, 18));
        assert_eq!(r.0, vec![exe.clone()], "the failing file is detached");
        let checks =
            |result| registry.value("wirespan_tls_integrity_checks_total", &[("result", result)]);
        assert_eq!(checks("verified"), Some(1));
        assert_eq!(checks("failed"), Some(1));
        assert_eq!(
            a.verdicts.get(&file_id(&copy).expect("id")),
            Some(&TlsPath::LocateSkipped("integrity_failed"))
        );
        assert_eq!(
            registry.value(
                "wirespan_tls_integrity_samples_total",
                &[("result", "longer_than_buffer")]
            ),
            Some(2)
        );
    }
}
