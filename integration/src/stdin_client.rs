//! `scripts/get_on_stdin.py` as a test helper: a client process started first
//! (so its pid can go into the agent's config) that sends one GET per
//! [`StdinClient::get`], optionally inside a given cgroup.

use crate::process::Guarded;
use crate::python::{python, script};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

pub struct StdinClient {
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    pub process: Guarded,
}

impl StdinClient {
    /// Starts the client for `url`; with `cgroup`, it first moves itself into
    /// that cgroup v2 directory (then execs Python, so the pid stays).
    pub fn start(url: &str, cgroup: Option<&Path>) -> StdinClient {
        let py = python();
        let mut cmd = match cgroup {
            Some(dir) => crate::process::in_cgroup(dir, &py),
            None => Command::new(&py),
        };
        cmd.arg(script("get_on_stdin.py")).arg(url);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start get_on_stdin.py");
        let to = child.stdin.take().expect("client stdin");
        let from = BufReader::new(child.stdout.take().expect("client stdout"));
        StdinClient {
            to,
            from,
            process: Guarded::new("get_on_stdin.py", child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// One GET; panics unless it answered 200.
    pub fn get(&mut self) {
        writeln!(self.to, "go").expect("tell the client");
        let mut line = String::new();
        self.from.read_line(&mut line).expect("client answer");
        assert_eq!(line.trim(), "200", "the client's GET failed");
    }
}
