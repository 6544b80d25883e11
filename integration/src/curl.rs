//! Running curl and reading what it reports about each transfer (`-w`).

use std::process::Command;

/// What curl reported for one URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub local_port: u16,
    pub size_download: u64,
    pub size_upload: u64,
    pub response_code: u16,
}

/// One curl run.
#[derive(Clone, Debug)]
pub struct CurlRun {
    pub pid: u32,
    pub transfers: Vec<Transfer>,
    pub stderr: String,
}

pub const CURL: &str = "/usr/bin/curl";

/// Runs `/usr/bin/curl -sS -o /dev/null -w ... <args>` with extra `env`;
/// panics if curl fails. One [`Transfer`] per URL, in order.
pub fn curl(args: &[&str], env: &[(&str, &str)]) -> CurlRun {
    assert!(
        std::path::Path::new(CURL).is_file(),
        "curl not found at {CURL}: install the Debian package curl"
    );
    let mut cmd = Command::new(CURL);
    cmd.args([
        "-sS",
        "-w",
        "%{local_port} %{size_download} %{size_upload} %{response_code}\\n",
    ]);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run curl");
    let pid = child.id();
    let out = child.wait_with_output().expect("curl output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}\n{stderr}",
        out.status
    );
    let transfers = stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 {
                return None;
            }
            Some(Transfer {
                local_port: f[0].parse().ok()?,
                size_download: f[1].parse().ok()?,
                size_upload: f[2].parse().ok()?,
                response_code: f[3].parse().ok()?,
            })
        })
        .collect();
    CurlRun {
        pid,
        transfers,
        stderr,
    }
}
