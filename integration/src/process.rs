//! Child processes that are killed (SIGKILL) and reaped when dropped, so a
//! failing test never leaves servers behind.

use std::process::{Child, ExitStatus};

pub struct Guarded {
    pub child: Child,
    pub name: String,
}

impl Guarded {
    pub fn new(name: &str, child: Child) -> Self {
        Self {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().expect("wait for child")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// A command that first moves itself into the cgroup v2 directory `cgroup`,
/// then execs `program` (so the pid, and the exec record, are the program's).
pub fn in_cgroup(
    cgroup: &std::path::Path,
    program: impl AsRef<std::ffi::OsStr>,
) -> std::process::Command {
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg("echo $$ > \"$1/cgroup.procs\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(cgroup)
        .arg(program);
    c
}
