//! Loading and attaching the embedded eBPF programs, writing their settings,
//! and the checks that turn a missing privilege or kernel feature into one
//! clear sentence. Dropping [`Probes`] detaches everything.

use anyhow::{anyhow, Context as _, Result};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{uprobe::UProbeLinkId, TracePoint, UProbe};
use aya::{Ebpf, EbpfLoader};
use probes_common::{counter, go_cookie, ProbeSettings, SocketKey, SocketState};
use std::path::Path;

/// The compiled programs, built by build.rs (aya-build) and embedded.
static PROBES_ELF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wirespan-probes"));

/// Tracepoint programs and where each is attached.
/// The read/write-family and connect hooks are exit tracepoints only: they
/// read the call's arguments from the task's saved user registers (checked at
/// start-up by [`check_user_regs`]).
const ATTACHMENTS: &[(&str, &str, &str)] = &[
    ("sys_exit_data", "syscalls", "sys_exit_read"),
    ("sys_exit_data", "syscalls", "sys_exit_readv"),
    ("sys_exit_data", "syscalls", "sys_exit_recvfrom"),
    ("sys_exit_data", "syscalls", "sys_exit_recvmsg"),
    ("sys_exit_data", "syscalls", "sys_exit_write"),
    ("sys_exit_data", "syscalls", "sys_exit_writev"),
    ("sys_exit_data", "syscalls", "sys_exit_sendto"),
    ("sys_exit_data", "syscalls", "sys_exit_sendmsg"),
    ("sys_exit_data", "syscalls", "sys_exit_sendfile64"),
    ("sys_exit_connect", "syscalls", "sys_exit_connect"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept4"),
    ("sys_enter_close", "syscalls", "sys_enter_close"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("sys_enter_mmap", "syscalls", "sys_enter_mmap"),
];

/// What the probes capture, from the `capture` section of the config.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub per_call_cap_bytes: u32,
    pub ring_buffer_bytes: u32,
    pub max_sockets: u32,
    pub pids: Vec<u32>,
    pub ports: Vec<u16>,
    pub exclude_ports: Vec<u16>,
}

impl From<&wirespan_config::CaptureConfig> for ProbeOptions {
    fn from(c: &wirespan_config::CaptureConfig) -> Self {
        Self {
            per_call_cap_bytes: c.per_call_cap_bytes,
            ring_buffer_bytes: c.ring_buffer_bytes,
            max_sockets: c.max_sockets,
            pids: c.pids.clone(),
            ports: c.ports.clone(),
            exclude_ports: c.exclude_ports.clone(),
        }
    }
}

/// Bytes waiting in the ring buffer that wake user space at once: a sixteenth
/// of the ring, at most 256 KiB. Below it, records wait for the drain timer
/// (`crate::drain_pace`), except while user space sleeps long: then every
/// record wakes it ([`WakeControl`]).
/// The probes wake user space when a record crosses this, and again at each
/// multiple of four times it while user space lags, not at every record
/// above it (each wake-up is a self-IPI: BENCHMARKS "Probe cost, session 5").
/// Why not more: an eighth of the ring, at most 1 MiB, halved the agent's
/// wake-ups and cut the probes' time per request by 5-11 %, but every case's
/// throughput fell by 2-7 % with more CPU left idle: longer drains delay
/// the traced programs more than the wake-ups they save (BENCHMARKS
/// "Session 12").
pub fn wakeup_bytes(ring_buffer_bytes: u32) -> u32 {
    (ring_buffer_bytes / 16).min(256 * 1024)
}

/// Loaded and attached programs. Dropping it detaches them all.
pub struct Probes {
    ebpf: Ebpf,
    /// Attached program count, for /readyz and the start-up log.
    pub attached: usize,
    /// The Go TLS probes of each Go executable, so that they can be replaced
    /// when DWARF corrects the offsets they were attached with.
    go_links:
        std::collections::HashMap<std::path::PathBuf, Vec<aya::programs::uprobe::UProbeLinkId>>,
    /// The SSL_* probes of each file whose functions were located without a
    /// symbol, so that a file failing its integrity check can be detached.
    located_links: std::collections::HashMap<std::path::PathBuf, Vec<(&'static str, UProbeLinkId)>>,
    /// The settings written at load, for [`Probes::take_wake_control`].
    settings: ProbeSettings,
}

/// The uprobe program `name`, loaded on first use (TLS programs are only
/// loaded once a file needs them).
fn loaded_uprobe<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut UProbe> {
    let prog: &mut UProbe = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the eBPF object"))?
        .try_into()?;
    if prog.fd().is_err() {
        prog.load().map_err(|e| {
            anyhow!(
                "the kernel refused eBPF program {name}: {}",
                verifier_summary(&e)
            )
        })?;
    }
    Ok(prog)
}

/// The entry program of each SSL_* function the probes know.
fn ssl_entry_program(function: &str) -> Option<&'static str> {
    match function {
        "SSL_write" => Some("ssl_write"),
        "SSL_read" => Some("ssl_read"),
        "SSL_write_ex" => Some("ssl_write_ex"),
        "SSL_read_ex" => Some("ssl_read_ex"),
        _ => None,
    }
}

/// Checks made before loading, each failing with one sentence a person can act on.
pub fn preflight() -> Result<()> {
    let caps = effective_capabilities().unwrap_or(0);
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
            .into_iter()
            .filter(|(c, _)| !has(*c))
            .map(|(_, name)| name)
            .collect();
        return Err(anyhow!(
            "needs CAP_BPF and CAP_PERFMON (or root) to load its eBPF probes, and lacks {}: run it as root or grant those capabilities",
            missing.join(" and ")
        ));
    }
    if !Path::new(kernel_btf::SYS_FS_VMLINUX).exists() {
        return Err(anyhow!(
            "this kernel exposes no BTF at {} (CONFIG_DEBUG_INFO_BTF is off): wirespan needs it to find socket addresses",
            kernel_btf::SYS_FS_VMLINUX
        ));
    }
    ensure_tracefs()?;
    // Not needed to capture, but without them other users' processes cannot
    // be named (their /proc/PID/environ and fd/ are closed to us): say so once.
    const CAP_DAC_READ_SEARCH: u32 = 2;
    const CAP_SYS_PTRACE: u32 = 19;
    for (cap, name) in [
        (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
        (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
    ] {
        if !has(cap) {
            tracing::warn!(
                "running without {name}: processes of other users are captured but may be named only by their executable, and their sockets open before start are not seeded"
            );
        }
    }
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use
    // memcg and ignore it. Raising it is harmless either way.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    Ok(())
}

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// aya finds tracepoint ids under tracefs; mount it when it is missing.
fn ensure_tracefs() -> Result<()> {
    let tracing = Path::new("/sys/kernel/tracing");
    match tracing.join("events").try_exists() {
        Ok(true) => return Ok(()),
        // Mounted, but closed to this user (mode 700, root's): without
        // CAP_DAC_READ_SEARCH a non-root agent cannot read tracepoint ids.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(anyhow!(
                "cannot read tracefs at /sys/kernel/tracing (permission denied), where tracepoint ids are: run it as root or grant CAP_DAC_READ_SEARCH"
            ));
        }
        _ => {}
    }
    if Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    let src = c"nodev";
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(anyhow!(
            "tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({err}): mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
        ));
    }
    Ok(())
}

impl Probes {
    /// Loads the programs with the configured map sizes, writes their settings
    /// (including kernel struct offsets from BTF) and attaches every tracepoint.
    pub fn load(opts: &ProbeOptions) -> Result<Self> {
        let btf = kernel_btf::Btf::from_sys_fs().context("reading the kernel's BTF")?;
        let offsets = kernel_btf::resolve_kernel_offsets(&btf)
            .context("resolving kernel struct offsets from BTF")?;

        if PROBES_ELF.is_empty() {
            return Err(anyhow!(
                "this wirespan was built with AYA_BUILD_SKIP=1 and carries no eBPF programs: rebuild it without that variable"
            ));
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", opts.ring_buffer_bytes)
            .map_max_entries("SOCKETS", opts.max_sockets)
            .load(PROBES_ELF)
            .map_err(|e| anyhow!("loading the eBPF programs failed: {e}"))?;

        let settings = ProbeSettings {
            self_tgid: std::process::id(),
            per_call_cap: opts.per_call_cap_bytes,
            pid_filter_enabled: u32::from(!opts.pids.is_empty()),
            port_filter_enabled: u32::from(!opts.ports.is_empty()),
            wakeup_bytes: wakeup_bytes(opts.ring_buffer_bytes),
            _pad: 0,
            offsets,
        };
        let mut settings_map: Array<_, ProbeSettings> =
            Array::try_from(ebpf.map_mut("SETTINGS").context("map SETTINGS missing")?)?;
        settings_map.set(0, settings, 0)?;

        if !opts.pids.is_empty() {
            let mut pids: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(
                ebpf.map_mut("PID_FILTER")
                    .context("map PID_FILTER missing")?,
            )?;
            for pid in &opts.pids {
                pids.insert(pid, 1u8, 0)?;
            }
        }
        if !opts.ports.is_empty() || !opts.exclude_ports.is_empty() {
            let mut ports: BpfHashMap<_, u16, u8> = BpfHashMap::try_from(
                ebpf.map_mut("PORT_FILTER")
                    .context("map PORT_FILTER missing")?,
            )?;
            let mut rules: std::collections::BTreeMap<u16, u8> = Default::default();
            for p in &opts.ports {
                *rules.entry(*p).or_default() |= 1;
            }
            for p in &opts.exclude_ports {
                *rules.entry(*p).or_default() |= 2;
            }
            for (port, rule) in rules {
                ports.insert(port, rule, 0)?;
            }
        }

        check_user_regs(&btf, &mut ebpf)?;

        let mut attached = 0;
        for (program, category, name) in ATTACHMENTS {
            let prog: &mut TracePoint = ebpf
                .program_mut(program)
                .with_context(|| format!("program {program} missing from the eBPF object"))?
                .try_into()?;
            if prog.fd().is_err() {
                let started = std::time::Instant::now();
                tracing::debug!(program, "loading");
                let loaded = prog.load();
                tracing::debug!(program, elapsed = ?started.elapsed(), "verified");
                loaded.map_err(|e| {
                    anyhow!(
                        "the kernel refused eBPF program {program}: {}",
                        verifier_summary(&e)
                    )
                })?;
            }
            prog.attach(category, name)
                .map_err(|e| anyhow!("attaching to tracepoint {category}:{name} failed: {e}"))?;
            attached += 1;
        }
        Ok(Self {
            ebpf,
            attached,
            go_links: std::collections::HashMap::new(),
            located_links: std::collections::HashMap::new(),
            settings,
        })
    }

    /// A handle on the probes' wake-up threshold; can be taken once.
    pub fn take_wake_control(&mut self) -> Result<WakeControl> {
        let map = self
            .ebpf
            .take_map("SETTINGS")
            .context("settings map already taken")?;
        Ok(WakeControl {
            map: Array::try_from(map)?,
            settings: self.settings,
        })
    }

    /// The ring buffer; can be taken once.
    pub fn take_ring(&mut self) -> Result<EventRing> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .context("ring buffer already taken")?;
        Ok(EventRing(RingBuf::try_from(map)?))
    }

    /// A handle on the socket map, for seeding and muting.
    pub fn take_sockets(&mut self) -> Result<TrackedSockets> {
        let map = self
            .ebpf
            .take_map("SOCKETS")
            .context("socket map already taken")?;
        let seeded = self
            .ebpf
            .take_map("PROC_SEEDED")
            .context("map PROC_SEEDED missing")?;
        Ok(TrackedSockets {
            sockets: BpfHashMap::try_from(map)?,
            seeded: Array::try_from(seeded)?,
        })
    }

    /// A handle on the map of bodies the probes need not copy.
    pub fn take_body_skip(
        &mut self,
    ) -> Result<BpfHashMap<MapData, SocketKey, probes_common::BodySkip>> {
        let map = self
            .ebpf
            .take_map("BODY_SKIP")
            .context("map BODY_SKIP missing or already taken")?;
        Ok(BpfHashMap::try_from(map)?)
    }

    /// A handle on the muted-socket map.
    pub fn take_muted(&mut self) -> Result<MutedSockets> {
        let map = self
            .ebpf
            .take_map("MUTED")
            .context("muted map already taken")?;
        let flags = self
            .ebpf
            .take_map("PROC_MUTED")
            .context("map PROC_MUTED missing")?;
        Ok(MutedSockets {
            muted: BpfHashMap::try_from(map)?,
            procs: Array::try_from(flags)?,
        })
    }

    /// Attaches the TLS uprobes to every SSL_* function `target` (a libssl or
    /// an executable that links a TLS library statically) defines. Returns how
    /// many functions were hooked.
    pub fn attach_tls(&mut self, target: &Path) -> Result<usize> {
        const FUNCTIONS: [(&str, &str); 4] = [
            ("ssl_write", "SSL_write"),
            ("ssl_read", "SSL_read"),
            ("ssl_write_ex", "SSL_write_ex"),
            ("ssl_read_ex", "SSL_read_ex"),
        ];
        self.load_ssl_programs()?;
        let mut hooked = 0;
        for (program, symbol) in FUNCTIONS {
            // The return probe first: an entry without its return would leave
            // a per-thread entry behind (harmless, LRU, but wasted).
            let ret: &mut UProbe = self
                .ebpf
                .program_mut("ssl_return")
                .context("program ssl_return missing")?
                .try_into()?;
            if ret
                .attach(
                    symbol,
                    target,
                    aya::programs::uprobe::UProbeScope::AllProcesses,
                )
                .is_err()
            {
                continue;
            }
            let entry: &mut UProbe = self
                .ebpf
                .program_mut(program)
                .with_context(|| format!("program {program} missing"))?
                .try_into()?;
            entry
                .attach(
                    symbol,
                    target,
                    aya::programs::uprobe::UProbeScope::AllProcesses,
                )
                .map_err(|e| {
                    anyhow!(
                        "attaching a uprobe to {symbol} in {}: {e}",
                        target.display()
                    )
                })?;
            hooked += 1;
        }
        Ok(hooked)
    }

    fn load_ssl_programs(&mut self) -> Result<()> {
        for program in [
            "ssl_write",
            "ssl_read",
            "ssl_write_ex",
            "ssl_read_ex",
            "ssl_return",
        ] {
            loaded_uprobe(&mut self.ebpf, program)?;
        }
        Ok(())
    }

    /// Attaches the SSL_* probes at file offsets that `tls-locate` proved to
    /// be the entries of those functions in `target` (a file without symbols
    /// for them). `slot` (1 ..= `TLS_VERIFY_SLOTS - 1`) goes into every
    /// probe's cookie, so the file's calls can be sampled for the integrity
    /// check. All or nothing: on a failure the probes already attached to
    /// this file are detached. Returns how many functions were hooked.
    pub fn attach_tls_located(
        &mut self,
        target: &Path,
        functions: &[(&'static str, u64)],
        slot: u32,
    ) -> Result<usize> {
        use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
        self.load_ssl_programs()?;
        let mut links: Vec<(&'static str, UProbeLinkId)> = Vec::new();
        let mut result = Ok(());
        for &(function, offset) in functions {
            let Some(entry) = ssl_entry_program(function) else {
                result = Err(anyhow!("no probe for function {function}"));
                break;
            };
            // The return probe first, as in `attach_tls`.
            for program in ["ssl_return", entry] {
                let point = UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(offset),
                    cookie: Some(u64::from(slot)),
                };
                let attached = loaded_uprobe(&mut self.ebpf, program).and_then(|prog| {
                    prog.attach(point, target, UProbeScope::AllProcesses)
                        .map_err(anyhow::Error::from)
                });
                match attached {
                    Ok(link) => links.push((program, link)),
                    Err(e) => {
                        result = Err(e.context(format!(
                            "attaching a uprobe to {function} at file offset {offset:#x} of {}",
                            target.display()
                        )));
                        break;
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result {
            self.detach_links(links);
            return Err(e);
        }
        if let Some(old) = self.located_links.insert(target.to_path_buf(), links) {
            self.detach_links(old);
        }
        Ok(functions.len())
    }

    /// Detaches the probes `attach_tls_located` put on `target`; false when
    /// it had none.
    pub fn detach_tls_located(&mut self, target: &Path) -> bool {
        match self.located_links.remove(target) {
            Some(links) => {
                self.detach_links(links);
                true
            }
            None => false,
        }
    }

    fn detach_links(&mut self, links: Vec<(&'static str, UProbeLinkId)>) {
        for (program, link) in links {
            if let Ok(prog) = loaded_uprobe(&mut self.ebpf, program) {
                if let Err(e) = prog.detach(link) {
                    tracing::warn!("detaching a {program} uprobe: {e}");
                }
            }
        }
    }

    /// Turns sampling of a located file's calls on or off (`TLS_VERIFY`).
    pub fn set_tls_verify(&mut self, slot: u32, on: bool) -> Result<()> {
        let map = self
            .ebpf
            .map_mut("TLS_VERIFY")
            .context("map TLS_VERIFY missing from the eBPF object")?;
        let mut verify: Array<&mut MapData, u32> = Array::try_from(map)?;
        verify
            .set(slot, u32::from(on), 0)
            .with_context(|| format!("setting TLS_VERIFY[{slot}]"))
    }

    /// Attaches the Go crypto/tls probes to one Go executable: the `go_tls`
    /// program at the entry and at every `RET` of `(*Conn).Write` and
    /// `(*Conn).Read`, each with a cookie saying which it is and carrying the
    /// binary's struct offsets. All or nothing: on a failure the probes
    /// already attached to this file are detached. Attaching a file again
    /// replaces its probes: the new ones are attached before the old ones
    /// are detached, so no call is missed (a call seen by both sets emits
    /// once: the first return takes the goroutine's entry). Returns the
    /// probe count.
    pub fn attach_go_tls(&mut self, target: &Path, go: &go_binary::GoTlsTargets) -> Result<usize> {
        let prog = loaded_uprobe(&mut self.ebpf, "go_tls")?;
        let offsets = go.offsets.and_then(|(o, _)| {
            Some(go_cookie::ConnFdOffsets {
                tls_conn_conn: u8::try_from(o.tls_conn_conn).ok()?,
                net_conn_fd: u8::try_from(o.net_conn_fd).ok()?,
                netfd_pfd: u8::try_from(o.netfd_pfd).ok()?,
                pfd_sysfd: u8::try_from(o.pfd_sysfd).ok()?,
            })
        });
        // Returns first: an entry without its returns would leave a
        // per-goroutine entry behind (harmless, LRU, but wasted).
        // Each function's entry right after its returns, so that the window
        // in which a call's return is probed but not its entry is short.
        let mut points: Vec<(u64, u64)> = Vec::new();
        for (f, ret_kind, entry_kind) in [
            (
                &go.write,
                go_cookie::kind::WRITE_RETURN,
                go_cookie::kind::WRITE_ENTRY,
            ),
            (
                &go.read,
                go_cookie::kind::READ_RETURN,
                go_cookie::kind::READ_ENTRY,
            ),
        ] {
            for &ret in &f.return_file_offsets {
                points.push((ret, go_cookie::pack(ret_kind, None)));
            }
            points.push((f.entry_file_offset, go_cookie::pack(entry_kind, offsets)));
        }
        let mut links = Vec::with_capacity(points.len());
        for (offset, cookie) in points {
            let point = aya::programs::uprobe::UProbeAttachPoint {
                location: aya::programs::uprobe::UProbeAttachLocation::AbsoluteOffset(offset),
                cookie: Some(cookie),
            };
            match prog.attach(
                point,
                target,
                aya::programs::uprobe::UProbeScope::AllProcesses,
            ) {
                Ok(link) => links.push(link),
                Err(e) => {
                    for link in links {
                        prog.detach(link).ok();
                    }
                    return Err(anyhow!(
                        "attaching a Go TLS uprobe at file offset {offset:#x} of {}: {e}",
                        target.display()
                    ));
                }
            }
        }
        let n = links.len();
        if let Some(old) = self.go_links.insert(target.to_path_buf(), links) {
            for link in old {
                prog.detach(link).ok();
            }
        }
        Ok(n)
    }

    /// A handle on the per-CPU counters.
    pub fn take_counters(&mut self) -> Result<KernelCounters> {
        let map = self
            .ebpf
            .take_map("COUNTERS")
            .context("counter map already taken")?;
        Ok(KernelCounters {
            map: PerCpuArray::try_from(map)?,
        })
    }
}

/// The probes' socket map as user space may change it. The probes test a
/// per-process count before they look a socket up (`PROC_SOCKETS`), so an
/// entry user space inserts must be announced first: its process's slot in
/// `PROC_SEEDED` is set before the insert (and never cleared: at worst a
/// process that had seeded sockets keeps paying the lookup).
pub struct TrackedSockets {
    sockets: BpfHashMap<MapData, SocketKey, SocketState>,
    seeded: Array<MapData, u32>,
}

impl TrackedSockets {
    pub fn get(&self, key: &SocketKey, flags: u64) -> Result<SocketState, aya::maps::MapError> {
        self.sockets.get(key, flags)
    }

    pub fn insert(
        &mut self,
        key: SocketKey,
        value: SocketState,
        flags: u64,
    ) -> Result<(), aya::maps::MapError> {
        self.seeded
            .set(probes_common::proc_sockets::slot(key.tgid), 1, 0)?;
        self.sockets.insert(key, value, flags)
    }

    /// Removing needs no announcement: a count left too high only costs a
    /// lookup.
    pub fn remove(&mut self, key: &SocketKey) -> Result<(), aya::maps::MapError> {
        self.sockets.remove(key)
    }
}

/// Whether the probes wake user space at every record or only once
/// `wakeup_bytes` wait. The agent asks for every record while it drains on
/// a long timer (`crate::drain_pace`). The whole settings entry is written
/// again with only that field changed; the probes read each field with one
/// load, so they see the old or the new threshold, and the other fields
/// unchanged either way.
pub struct WakeControl {
    map: Array<MapData, ProbeSettings>,
    settings: ProbeSettings,
}

impl WakeControl {
    pub fn wake_at_every_record(&mut self, every: bool) -> Result<()> {
        let mut settings = self.settings;
        if every {
            settings.wakeup_bytes = 0;
        }
        self.map
            .set(0, settings, 0)
            .context("writing the probes' wake-up setting")
    }
}

/// The probes' muted-socket map. The probes look a socket up there only for
/// processes whose slot in `PROC_MUTED` is set, so an insert sets it first
/// (never cleared).
pub struct MutedSockets {
    muted: BpfHashMap<MapData, SocketKey, u8>,
    procs: Array<MapData, u32>,
}

impl MutedSockets {
    pub fn insert(
        &mut self,
        key: SocketKey,
        value: u8,
        flags: u64,
    ) -> Result<(), aya::maps::MapError> {
        self.procs
            .set(probes_common::proc_sockets::slot(key.tgid), 1, 0)?;
        self.muted.insert(key, value, flags)
    }

    pub fn remove(&mut self, key: &SocketKey) -> Result<(), aya::maps::MapError> {
        self.muted.remove(key)
    }
}

/// The exit hooks read syscall arguments at fixed offsets of the saved user
/// `struct pt_regs` (`probes_common::pt_regs`). Before relying on them: the
/// running kernel's BTF must give the same layout, and one known call,
/// `fadvise64(fd, offset, len, advice)` with distinctive values (it fails
/// with EBADF and does nothing), must be read back exactly by the same code
/// the hooks use (`check_user_regs`, attached to `sys_exit_fadvise64` only
/// for that call).
fn check_user_regs(btf: &kernel_btf::Btf, ebpf: &mut Ebpf) -> Result<()> {
    use probes_common::{pt_regs, syscall_nr};
    let layout = [
        ("di", pt_regs::DI),
        ("si", pt_regs::SI),
        ("dx", pt_regs::DX),
        ("r10", pt_regs::R10),
        ("orig_ax", pt_regs::ORIG_AX),
    ];
    for (member, expected) in layout {
        let got = btf
            .member_offset("pt_regs", member)
            .with_context(|| format!("finding pt_regs.{member} in the kernel's BTF"))?;
        if u64::from(got) != expected {
            return Err(anyhow!(
                "this kernel's struct pt_regs has {member} at byte {got}, not {expected}: the probes cannot read syscall arguments on it"
            ));
        }
    }
    let size = btf.struct_size("pt_regs").context("sizing pt_regs")?;
    if u64::from(size) != pt_regs::SIZE {
        return Err(anyhow!(
            "this kernel's struct pt_regs is {size} bytes, not {}: the probes cannot read syscall arguments on it",
            pt_regs::SIZE
        ));
    }

    let prog: &mut TracePoint = ebpf
        .program_mut("check_user_regs")
        .context("program check_user_regs missing from the eBPF object")?
        .try_into()?;
    prog.load().map_err(|e| {
        anyhow!(
            "the kernel refused eBPF program check_user_regs: {}",
            verifier_summary(&e)
        )
    })?;
    let link = prog
        .attach("syscalls", "sys_exit_fadvise64")
        .map_err(|e| anyhow!("attaching to tracepoint syscalls:sys_exit_fadvise64 failed: {e}"))?;
    // An fd that is not open here, so the call fails at once with EBADF.
    let known: [u64; 4] = [0x7e57, 0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321, 0x5ee];
    // SAFETY: a plain syscall with integer arguments only; it touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_fadvise64,
            known[0] as libc::c_long,
            known[1] as libc::c_long,
            known[2] as libc::c_long,
            known[3] as libc::c_long,
        )
    };
    prog.detach(link)?;
    let seen: Array<_, [u64; 5]> =
        Array::try_from(ebpf.map("REGS_CHECK").context("map REGS_CHECK missing")?)?;
    let seen = seen.get(&0, 0)?;
    let expected = [
        known[0],
        known[1],
        known[2],
        known[3],
        u64::from(syscall_nr::FADVISE64),
    ];
    if seen != expected {
        return Err(anyhow!(
            "reading syscall arguments from the saved user registers failed its start-up check (expected {expected:x?}, read {seen:x?}): the probes cannot capture on this kernel"
        ));
    }
    tracing::debug!("syscall arguments readable from the saved user registers");
    Ok(())
}

/// The verifier log is long; its last lines say what failed.
fn verifier_summary(e: &aya::programs::ProgramError) -> String {
    let text = format!("{e:#}");
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines.len().saturating_sub(6);
    lines[tail..].join(" | ")
}

/// The probes' ring buffer: records in reservation order, as bytes. Poll its
/// fd for readability (tokio's `AsyncFd`), then take records until `None`.
pub struct EventRing(RingBuf<MapData>);

impl EventRing {
    /// The next record, borrowed from the ring until dropped. (Not an
    /// `Iterator`: each item borrows the ring.)
    #[allow(
        clippy::should_implement_trait,
        reason = "items borrow the ring: not an Iterator"
    )]
    pub fn next(&mut self) -> Option<impl std::ops::Deref<Target = [u8]> + '_> {
        self.0.next()
    }
}

impl std::os::fd::AsRawFd for EventRing {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// The probes' per-CPU counters, summed over CPUs.
pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
}

impl KernelCounters {
    /// Current totals, indexed like `probes_common::counter`.
    pub fn read(&self) -> Result<[u64; counter::COUNT as usize]> {
        let mut totals = [0u64; counter::COUNT as usize];
        for (i, total) in totals.iter_mut().enumerate() {
            let values = self.map.get(&(i as u32), 0)?;
            *total = values.iter().sum();
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::wakeup_bytes;
    use wirespan_config::{MAX_RING_BUFFER_BYTES, MIN_RING_BUFFER_BYTES};

    /// For every ring size the config accepts, the first wake-up comes with
    /// most of the ring still free, and the repeated one of a lagging user
    /// space (at four times the threshold) comes before the ring is full.
    #[test]
    fn wakeups_leave_room_in_every_ring_size() {
        let mut ring = MIN_RING_BUFFER_BYTES;
        while ring <= MAX_RING_BUFFER_BYTES {
            let t = wakeup_bytes(ring);
            assert!(t > 0, "ring {ring}: no threshold");
            assert!(t <= ring / 8, "ring {ring}: threshold {t}");
            assert!(
                4 * u64::from(t) <= u64::from(ring) / 2,
                "ring {ring}: threshold {t}"
            );
            assert!(t <= 256 * 1024, "ring {ring}: threshold {t}");
            ring *= 2;
        }
        assert_eq!(wakeup_bytes(8 * 1024 * 1024), 256 * 1024);
    }
}
