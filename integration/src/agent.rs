//! Starting and stopping the agent under test.
//!
//! The agent gets a temp directory, its own metrics port, a scrubbed
//! environment (no inherited `OTEL_*`/`WIRESPAN_*`) plus what the test adds;
//! stdout and stderr go to files so neither can fill a pipe.

use crate::metrics::Metrics;
use crate::net::{free_port, http_get};
use crate::process::Guarded;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// `http.opt_in_attributes` from the environment.
const OPT_IN_VARIABLE: &str = "WIRESPAN_HTTP__OPT_IN_ATTRIBUTES";

/// How long the probes may take to attach.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    /// `WIRESPAN_*`, `OTEL_*` or `RUST_LOG` variables for the agent.
    pub env: Vec<(String, String)>,
    /// YAML written to a temp file and passed with `--config`.
    pub config_yaml: Option<String>,
    /// A command that runs the agent: the agent's path and arguments follow
    /// it (e.g. `setpriv ... --`). It must exec the agent, so that the pid is
    /// the agent's.
    pub wrapper: Vec<String>,
}

impl AgentOptions {
    pub fn env(mut self, k: &str, v: impl ToString) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn config(mut self, yaml: &str) -> Self {
        self.config_yaml = Some(yaml.to_string());
        self
    }

    /// Exports over OTLP to `endpoint` with `protocol` (`grpc` or `http/protobuf`),
    /// with a short batch timeout so tests wait less.
    pub fn otlp(self, endpoint: &str, protocol: &str) -> Self {
        self.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("WIRESPAN_EXPORT__BATCH_TIMEOUT", "200ms")
    }

    /// Runs the agent through `argv` (see [`AgentOptions::wrapper`]).
    pub fn wrapped(mut self, argv: &[&str]) -> Self {
        self.wrapper = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The agent's default attribute set: none of the conventions' Opt-In
    /// attributes (the harness asks for all of them otherwise).
    pub fn default_attributes(self) -> Self {
        self.env(OPT_IN_VARIABLE, "")
    }

    /// Large per-call cap and ring buffer, for exact-capture tests.
    pub fn capture_everything(self) -> Self {
        self.env("WIRESPAN_CAPTURE__PER_CALL_CAP_BYTES", 4_194_304)
            .env("WIRESPAN_CAPTURE__RING_BUFFER_BYTES", 268_435_456)
    }
}

/// A running agent; killed if dropped without `stop`.
pub struct Agent {
    process: Option<Guarded>,
    pub metrics_addr: String,
    pub dir: tempfile::TempDir,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
    /// The recording file for `wirespan record`.
    pub recording: Option<PathBuf>,
}

/// How the agent ended.
#[derive(Debug)]
pub struct AgentExit {
    /// The agent's process id.
    pub pid: u32,
    pub status: ExitStatus,
    pub stderr: String,
    pub stdout: String,
    /// `/metrics` read just before the stop signal (see [`Agent::settled_metrics`]).
    pub metrics: Metrics,
    /// The agent's temp directory (kept alive for the recording).
    pub dir: tempfile::TempDir,
    /// The recording file for `wirespan record`.
    pub recording: Option<PathBuf>,
}

impl Agent {
    /// `wirespan run`, waiting until `/readyz` is 200.
    pub fn run(opts: AgentOptions) -> Agent {
        Self::start(&["run"], opts, None)
    }

    /// `wirespan record --out <tempdir>/capture.wsrec`, waiting until ready.
    pub fn record(opts: AgentOptions) -> Agent {
        Self::start(&["record"], opts, Some("capture.wsrec"))
    }

    /// Starts without waiting for readiness.
    pub fn spawn(args: &[&str], opts: AgentOptions, recording: Option<&str>) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("wirespan-agent-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let stderr_path = dir.path().join("stderr.log");
        let stdout_path = dir.path().join("stdout.log");
        let mut cmd = match opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(crate::binary::wirespan_bin());
                c
            }
            None => Command::new(crate::binary::wirespan_bin()),
        };
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("OTEL_") || k.starts_with("WIRESPAN_") || k == "RUST_LOG" {
                cmd.env_remove(&*k);
            }
        }
        if let Some(yaml) = &opts.config_yaml {
            let path = dir.path().join("wirespan.yaml");
            std::fs::write(&path, yaml).expect("write config");
            cmd.arg("--config").arg(path);
        }
        cmd.args(args);
        let recording = recording.map(|name| {
            let p = dir.path().join(name);
            cmd.arg("--out").arg(&p);
            p
        });
        cmd.env("WIRESPAN_METRICS__LISTEN", &metrics_addr);
        // Every Opt-In attribute, so tests can match spans on ports and check
        // sizes; `default_attributes()` (a later value of the variable) or a
        // config file that sets the key keeps the agent's default.
        if !opts
            .config_yaml
            .as_deref()
            .is_some_and(|y| y.contains("opt_in_attributes"))
        {
            cmd.env(OPT_IN_VARIABLE, "all");
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        let child = cmd.spawn().expect("spawn wirespan");
        Agent {
            process: Some(Guarded::new("wirespan", child)),
            metrics_addr,
            dir,
            stderr_path,
            stdout_path,
            recording,
        }
    }

    fn start(args: &[&str], opts: AgentOptions, recording: Option<&str>) -> Agent {
        let mut agent = Self::spawn(args, opts, recording);
        agent.wait_ready();
        agent
    }

    /// Waits (bounded) until `/readyz` answers 200; panics with stderr if the
    /// agent exits or never gets ready.
    pub fn wait_ready(&mut self) {
        let mut last = String::new();
        let ok = crate::wait::wait_until(READY_TIMEOUT, || {
            if let Some(status) = self.process.as_mut().and_then(|p| p.exited()) {
                panic!(
                    "the agent exited ({status}) before becoming ready; stderr:\n{}",
                    self.stderr()
                );
            }
            match self.readyz() {
                Ok(200) => true,
                Ok(s) => {
                    last = format!("status {s}");
                    false
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        assert!(
            ok,
            "/readyz of the agent never answered 200 within {READY_TIMEOUT:?} (last: {last}); stderr:\n{}",
            self.stderr()
        );
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").pid()
    }

    /// `/readyz`'s HTTP status.
    pub fn readyz(&self) -> std::io::Result<u16> {
        http_get(&self.metrics_addr, "/readyz").map(|(s, _)| s)
    }

    /// `/metrics`, parsed. Panics (with stderr) if it cannot be read.
    pub fn metrics(&self) -> Metrics {
        match http_get(&self.metrics_addr, "/metrics") {
            Ok((200, body)) => Metrics::parse(&body),
            other => panic!(
                "cannot read /metrics: {other:?}; agent stderr:\n{}",
                self.stderr()
            ),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// stderr and non-zero metrics, for failure messages.
    pub fn diagnostics(&self) -> String {
        let metrics = http_get(&self.metrics_addr, "/metrics")
            .map(|(_, b)| Metrics::parse(&b).nonzero())
            .unwrap_or_else(|e| format!("(metrics unavailable: {e})"));
        format!(
            "--- agent stderr ---\n{}\n--- agent metrics (non-zero) ---\n{metrics}",
            self.stderr()
        )
    }

    /// `/metrics` read 1.5 s from now: the agent copies the kernel counters
    /// into /metrics every second, so this includes everything the probes
    /// counted up to the call (every process on the host is traced, so the
    /// counters never stop moving; waiting for them to settle would not end).
    pub fn settled_metrics(&self) -> Metrics {
        std::thread::sleep(Duration::from_millis(1500));
        self.metrics()
    }

    /// Reads `/metrics`, sends SIGTERM and waits (bounded) for the exit.
    pub fn stop(mut self) -> AgentExit {
        let metrics = self.settled_metrics();
        let mut p = self.process.take().expect("running");
        let pid = p.pid();
        p.signal(libc::SIGTERM);
        let mut status = None;
        let exited = crate::wait::wait_until(Duration::from_secs(60), || {
            status = p.exited();
            status.is_some()
        });
        assert!(
            exited,
            "the agent did not exit within 60 s of SIGTERM; stderr:\n{}",
            self.stderr()
        );
        AgentExit {
            pid,
            status: status.expect("exited"),
            stderr: self.stderr(),
            stdout: self.stdout(),
            metrics,
            recording: self.recording.take(),
            dir: std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")),
        }
    }

    /// Waits (bounded) for an agent that was already signalled to exit.
    pub fn stop_after_signal(mut self) -> AgentExit {
        let mut p = self.process.take().expect("running");
        let pid = p.pid();
        let mut status = None;
        let exited = crate::wait::wait_until(Duration::from_secs(60), || {
            status = p.exited();
            status.is_some()
        });
        assert!(
            exited,
            "the agent did not exit within 60 s of the signal; stderr:\n{}",
            self.stderr()
        );
        AgentExit {
            pid,
            status: status.expect("exited"),
            stderr: self.stderr(),
            stdout: self.stdout(),
            metrics: Metrics::default(),
            recording: self.recording.take(),
            dir: std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")),
        }
    }

    /// Stops the agent and asserts it exited 0; returns the exit record.
    pub fn stop_ok(self) -> AgentExit {
        let exit = self.stop();
        assert!(
            exit.status.success(),
            "the agent exited with {} after SIGTERM; stderr:\n{}",
            exit.status,
            exit.stderr
        );
        exit
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl AgentExit {
    pub fn diagnostics(&self) -> String {
        format!(
            "--- agent stderr ---\n{}\n--- agent metrics before stop (non-zero) ---\n{}",
            self.stderr,
            self.metrics.nonzero()
        )
    }
}
