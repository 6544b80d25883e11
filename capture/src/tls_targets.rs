//! Finding where TLS plaintext can be read: every `libssl.so*` that a process
//! maps, every executable that defines `SSL_write`/`SSL_read` itself (a TLS
//! library linked statically, as in Node.js), and every Go executable that
//! contains crypto/tls (read by `go_binary`, stripped or not). Each file is
//! hooked once, by (device, inode), for all processes; a new process that maps
//! an already hooked file is covered from its first instruction.
//!
//! Processes already running are found through /proc at start; new ones through
//! their exec record, checked once the dynamic loader has mapped their libraries.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self_metrics::{Counter, Registry};

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
    None,
}

impl TlsPath {
    pub fn label(self) -> &'static str {
        match self {
            TlsPath::SharedLibssl => "shared_libssl",
            TlsPath::Static => "static",
            TlsPath::Go => "go",
            TlsPath::GoSkipped(_) => "go_skipped",
            TlsPath::None => "none",
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            TlsPath::GoSkipped(reason) => Some(reason),
            _ => None,
        }
    }

    fn is_hooked(self) -> bool {
        matches!(self, TlsPath::SharedLibssl | TlsPath::Static | TlsPath::Go)
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

/// The libssl paths in one process's memory map (as seen from the agent's
/// mount namespace through /proc/PID/root).
pub fn mapped_libssl(pid: u32) -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        if is_libssl(path) {
            let p = stable_path(pid, path);
            if !out.contains(&p) {
                out.push(p);
            }
        }
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
    pending: VecDeque<(Instant, u32, Option<PathBuf>)>,
    hooked_files: Counter,
    attach_failures: Counter,
    dwarf: DwarfChecker,
}

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
            }
        }
    }

    fn take_results(&mut self) -> Vec<DwarfResult> {
        match &self.results {
            Some(rx) => rx.try_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// Which kind of file is being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// A libssl shared object, hooked at its SSL_* symbols.
    Libssl,
    /// An executable: Go (crypto/tls) or with a static TLS library.
    Executable,
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
}

impl TlsAttacher {
    pub fn new(registry: &Registry) -> Self {
        for path in [
            TlsPath::SharedLibssl,
            TlsPath::Static,
            TlsPath::Go,
            TlsPath::None,
        ] {
            process_counter(registry, path);
        }
        Self {
            registry: registry.clone(),
            verdicts: HashMap::new(),
            pending: VecDeque::new(),
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
        }
    }

    /// Hooks `path` once; says how its TLS is (now or already) hooked.
    fn hook(&mut self, hook: &mut impl TlsHook, path: &Path, kind: FileKind) -> TlsPath {
        let Some(id) = file_id(path) else {
            return TlsPath::None;
        };
        if let Some(verdict) = self.verdicts.get(&id) {
            return *verdict;
        }
        let verdict = self.check_file(hook, path, kind);
        self.verdicts.insert(id, verdict);
        verdict
    }

    /// The first and only check of one file.
    fn check_file(&mut self, hook: &mut impl TlsHook, path: &Path, kind: FileKind) -> TlsPath {
        if kind == FileKind::Libssl {
            return self.attach_ssl(hook, path, TlsPath::SharedLibssl);
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
            return TlsPath::None;
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
    fn check_process(&mut self, hook: &mut impl TlsHook, pid: u32, exe: Option<&Path>) -> TlsPath {
        let mut path = TlsPath::None;
        for lib in mapped_libssl(pid) {
            if self.hook(hook, &lib, FileKind::Libssl).is_hooked() {
                path = TlsPath::SharedLibssl;
            }
        }
        if path == TlsPath::None {
            let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
            let exe = exe.unwrap_or(&proc_exe);
            path = self.hook(hook, exe, FileKind::Executable);
        }
        self.count_process(pid, path);
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
                    self.check_process(hook, pid, None);
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
            if path != TlsPath::None {
                self.count_process(pid, path);
                return;
            }
        }
        // Bounded: under an exec storm the oldest checks are dropped, not queued forever.
        if self.pending.len() >= 4096 {
            self.pending.pop_front();
        }
        self.pending
            .push_back((Instant::now() + Duration::from_millis(20), pid, exe));
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

    /// Checks the processes whose delay has passed, and applies the DWARF
    /// checks that have finished.
    pub fn poll(&mut self, hook: &mut impl TlsHook) {
        for result in self.dwarf.take_results() {
            self.apply_dwarf(hook, result);
        }
        let now = Instant::now();
        while let Some((due, _, _)) = self.pending.front() {
            if *due > now {
                break;
            }
            if let Some((_, pid, exe)) = self.pending.pop_front() {
                self.check_process(hook, pid, exe.as_deref());
            }
        }
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
        assert_eq!(
            a.hook(&mut r, Path::new("/usr/bin/curl"), FileKind::Executable),
            TlsPath::None
        );
        assert_eq!(r.0.len(), 1);
    }
}
