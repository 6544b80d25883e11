//! rotel, a real OTLP collector, from the PyPI package (`pip install rotel`).
//! Its `rotel-agent` binary sits inside the Python package's folder.

use crate::net::{free_port, wait_port};
use crate::process::Guarded;
use crate::python::python;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `rotel-agent` binary, or a LOUD panic telling how to install it.
pub fn rotel_agent() -> PathBuf {
    if let Some(p) = std::env::var_os("ROTEL_AGENT") {
        return PathBuf::from(p);
    }
    let out = Command::new(python())
        .args([
            "-c",
            "import rotel,os;print(os.path.dirname(rotel.__file__))",
        ])
        .output()
        .expect("run python");
    // pip may have installed into another interpreter than /usr/bin/python3
    // (pyenv, venv): try `python3` from PATH too.
    let out = if out.status.success() {
        out
    } else {
        Command::new("python3")
            .args([
                "-c",
                "import rotel,os;print(os.path.dirname(rotel.__file__))",
            ])
            .output()
            .expect("run python3")
    };
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bin = PathBuf::from(&dir).join("rotel-agent");
    assert!(
        out.status.success() && bin.is_file(),
        "\n\n*** rotel is NOT INSTALLED: this test needs the real collector. ***\n\
         *** Install it with `pip install rotel` (or set ROTEL_AGENT=/path/to/rotel-agent). ***\n\
         python said: {}\n\n",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// A running rotel that receives OTLP gRPC on `grpc_port` and forwards every
/// trace over OTLP gRPC to `forward_to` (a `http://host:port` URL).
pub struct Rotel {
    pub process: Guarded,
    pub grpc_port: u16,
    pub dir: tempfile::TempDir,
}

impl Rotel {
    pub fn start(forward_to: &str) -> Rotel {
        let bin = rotel_agent();
        let dir = tempfile::Builder::new()
            .prefix("wirespan-rotel-")
            .tempdir()
            .expect("temp dir");
        let grpc_port = free_port();
        let http_port = free_port();
        let log = std::fs::File::create(dir.path().join("rotel.out")).expect("log");
        let child = Command::new(&bin)
            .arg("start")
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--exporter")
            .arg("otlp")
            .arg("--otlp-exporter-endpoint")
            .arg(forward_to)
            .arg("--otlp-exporter-protocol")
            .arg("grpc")
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel.log"))
            .arg("--batch-timeout")
            .arg("100ms")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut r = Rotel {
            process: Guarded::new("rotel-agent", child),
            grpc_port,
            dir,
        };
        let up = wait_port(grpc_port, Duration::from_secs(30));
        if let Some(s) = r.process.exited() {
            panic!("rotel-agent exited ({s}) at start:\n{}", r.log());
        }
        assert!(
            up,
            "rotel-agent never listened on {grpc_port}:\n{}",
            r.log()
        );
        r
    }

    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("rotel.out"), read("rotel.log"))
    }
}
