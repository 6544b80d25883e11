//! Finding where TLS plaintext can be read: every `libssl.so*` that a process
//! maps, and every executable that defines `SSL_write`/`SSL_read` itself (a TLS
//! library linked statically, as in Node.js). Each file is hooked once, by
//! (device, inode), for all processes; a new process that maps an already hooked
//! file is covered from its first instruction.
//!
//! Processes already running are found through /proc at start; new ones through
//! their exec record, checked once the dynamic loader has mapped their libraries.

use std::collections::{HashMap, HashSet, VecDeque};
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
    None,
}

impl TlsPath {
    pub fn label(self) -> &'static str {
        match self {
            TlsPath::SharedLibssl => "shared_libssl",
            TlsPath::Static => "static",
            TlsPath::None => "none",
        }
    }
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
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    // Mapped, not read: only the headers and symbol tables are touched.
    // SAFETY: the mapping is read-only and dropped before return; a file
    // truncated meanwhile could fault, which executables in use are not.
    let Ok(data) = (unsafe { memmap2::Mmap::map(&f) }) else {
        return false;
    };
    let Ok(file) = object::File::parse(&*data) else {
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

/// Hooks TLS libraries as they appear.
pub struct TlsAttacher {
    hooked: HashSet<(u64, u64)>,
    /// Files checked and found to hold no TLS functions.
    not_tls: HashSet<(u64, u64)>,
    pending: VecDeque<(Instant, u32, Option<PathBuf>)>,
    processes: HashMap<&'static str, Counter>,
    hooked_files: Counter,
    attach_failures: Counter,
}

/// What hooking needs from the probes: one call, so this module can be tested
/// without loading eBPF.
pub trait TlsHook {
    fn attach_tls(&mut self, target: &Path) -> anyhow::Result<usize>;
}

impl TlsHook for crate::probes::Probes {
    fn attach_tls(&mut self, target: &Path) -> anyhow::Result<usize> {
        crate::probes::Probes::attach_tls(self, target)
    }
}

impl TlsAttacher {
    pub fn new(registry: &Registry) -> Self {
        let mut processes = HashMap::new();
        for path in [TlsPath::SharedLibssl, TlsPath::Static, TlsPath::None] {
            processes.insert(
                path.label(),
                registry.counter(
                    "wirespan_tls_processes_total",
                    "Processes checked for a TLS library, by how their TLS is hooked.",
                    &[("path", path.label())],
                ),
            );
        }
        Self {
            hooked: HashSet::new(),
            not_tls: HashSet::new(),
            pending: VecDeque::new(),
            processes,
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
        }
    }

    /// Hooks `path` once; true when it is (now or already) hooked.
    fn hook(&mut self, hook: &mut impl TlsHook, path: &Path, static_check: bool) -> bool {
        let Some(id) = file_id(path) else {
            return false;
        };
        if self.hooked.contains(&id) {
            return true;
        }
        if self.not_tls.contains(&id) {
            return false;
        }
        if static_check && !defines_ssl_functions(path) {
            self.not_tls.insert(id);
            return false;
        }
        match hook.attach_tls(path) {
            Ok(n) if n > 0 => {
                tracing::info!(path = %path.display(), functions = n, "TLS uprobes attached");
                self.hooked.insert(id);
                self.hooked_files.inc();
                true
            }
            Ok(_) => {
                self.not_tls.insert(id);
                false
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "TLS uprobes not attached: {e:#}");
                self.attach_failures.inc();
                self.not_tls.insert(id);
                false
            }
        }
    }

    /// Checks one process: its mapped libssl files, else its executable
    /// (`exe`, from the exec record, still readable after a short process
    /// exits; else /proc/PID/exe).
    fn check_process(&mut self, hook: &mut impl TlsHook, pid: u32, exe: Option<&Path>) -> TlsPath {
        let mut path = TlsPath::None;
        for lib in mapped_libssl(pid) {
            if self.hook(hook, &lib, false) {
                path = TlsPath::SharedLibssl;
            }
        }
        if path == TlsPath::None {
            let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
            let exe = exe.unwrap_or(&proc_exe);
            if self.hook(hook, exe, true) {
                path = TlsPath::Static;
            }
        }
        if let Some(c) = self.processes.get(path.label()) {
            c.inc();
        }
        if path != TlsPath::None {
            tracing::info!(pid, tls = path.label(), "process TLS hooked");
        } else {
            tracing::debug!(pid, tls = path.label(), "process has no TLS library");
        }
        path
    }

    /// At start: well-known libraries, then every running process.
    pub fn discover_all(&mut self, hook: &mut impl TlsHook, own_pid: u32) {
        for lib in WELL_KNOWN_LIBSSL {
            let p = Path::new(lib);
            if p.exists() {
                self.hook(hook, p, false);
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

    /// A process called exec. An executable with a static TLS library is
    /// hooked at once (its path is known now); shared libraries are looked for
    /// once the dynamic loader has mapped them.
    pub fn on_exec(&mut self, hook: &mut impl TlsHook, pid: u32, exe: Option<PathBuf>) {
        if let Some(exe) = &exe {
            if self.hook(hook, exe, true) {
                if let Some(c) = self.processes.get(TlsPath::Static.label()) {
                    c.inc();
                }
                tracing::info!(pid, tls = TlsPath::Static.label(), "process TLS hooked");
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

    /// Checks the processes whose delay has passed.
    pub fn poll(&mut self, hook: &mut impl TlsHook) {
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
    }

    #[test]
    fn hooks_each_file_once() {
        let registry = Registry::new();
        let mut a = TlsAttacher::new(&registry);
        let mut r = Recorder(Vec::new());
        let lib = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        assert!(a.hook(&mut r, lib, false));
        assert!(a.hook(&mut r, lib, false));
        assert_eq!(r.0.len(), 1);
        assert!(!a.hook(&mut r, Path::new("/usr/bin/curl"), true));
        assert_eq!(r.0.len(), 1);
    }
}
