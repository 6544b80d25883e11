//! Real servers for the tests, each on a free port of 127.0.0.1, started and
//! waited for (bounded); killed when dropped.

use crate::net::{free_port, wait_port};
use crate::process::Guarded;
use crate::python::{python, script};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server.
pub struct Server {
    pub port: u16,
    pub process: Guarded,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's one child process (nginx's worker: a fork of the
    /// master, never exec'd, which serves the requests), waited for
    /// (bounded); panics with the log if there is not exactly one.
    pub fn only_child(&self) -> u32 {
        let mut kids = Vec::new();
        assert!(
            crate::wait::wait_until(Duration::from_secs(10), || {
                kids = children(self.pid());
                kids.len() == 1
            }),
            "the server should have exactly one child process: {kids:?}\n{}",
            self.log()
        );
        kids[0]
    }

    /// Spawns `cmd` (output to `<dir>/server.log`) and waits (bounded) for
    /// 127.0.0.1:`port` to accept connections; panics with the log if not.
    pub fn spawn(name: &str, mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let mut server = Server {
            port,
            process: Guarded::new(name, child),
            dir,
        };
        let up = wait_port(port, START_TIMEOUT);
        if let Some(status) = server.process.exited() {
            panic!(
                "{name} exited ({status}) at start; its log:\n{}",
                server.log()
            );
        }
        assert!(
            up,
            "{name} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}; its log:\n{}",
            server.log()
        );
        server
    }
}

impl Drop for Server {
    /// Killing nginx's master alone would leave its worker running,
    /// reparented to init and still listening: the server's children go
    /// too, after the master (which would otherwise respawn them).
    fn drop(&mut self) {
        let kids = children(self.pid());
        if let Ok(None) = self.process.child.try_wait() {
            self.process.child.kill().ok();
            self.process.child.wait().ok();
        }
        for kid in kids {
            // SAFETY: plain kill(2) on a pid that was our server's child a
            // moment ago; a worker outlives its master, so it is still its.
            unsafe { libc::kill(kid as i32, libc::SIGKILL) };
        }
    }
}

fn temp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// `python3 -m http.server` serving a fresh directory; put files in `dir()`
/// with [`python_http_server_files`].
pub fn python_http_server(files: &[(&str, &[u8])]) -> Server {
    let dir = temp("wirespan-www-");
    let root = dir.path().join("www");
    std::fs::create_dir(&root).expect("www dir");
    for (name, content) in files {
        std::fs::write(root.join(name), content).expect("write served file");
    }
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .arg("--directory")
        .arg(&root);
    Server::spawn("python http.server", cmd, port, dir)
}

/// `scripts/http11_server.py`: an HTTP/1.1 keep-alive server with
/// `/status/<code>`, `/bytes/<n>`, `/echo` (POST, chunked or not) routes.
pub fn http11_server() -> Server {
    let dir = temp("wirespan-http11-");
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(script("http11_server.py")).arg(port.to_string());
    Server::spawn("http11_server.py", cmd, port, dir)
}

/// A Python helper script started as a server on a free port: `args` follow
/// the port. Returns when the port accepts connections.
pub fn python_script_server(name: &str, args: &[&str]) -> Server {
    let dir = temp("wirespan-pysrv-");
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(script(name)).arg(port.to_string()).args(args);
    Server::spawn(name, cmd, port, dir)
}

/// Like [`python_script_server`], with extra environment variables (such as
/// OTEL_SERVICE_NAME) and a port chosen by the caller.
pub fn python_script_server_env(
    name: &str,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let dir = temp("wirespan-pysrv-");
    let mut cmd = Command::new(python());
    cmd.arg(script(name)).arg(port.to_string()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::spawn(name, cmd, port, dir)
}

/// Where nginx is: `$INTEGRATION_NGINX`, else /usr/sbin/nginx.
pub fn nginx_bin() -> PathBuf {
    let p = std::env::var_os("INTEGRATION_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    assert!(
        p.is_file(),
        "\n\n*** nginx not found at {}: install the Debian package nginx-light ***\n\n",
        p.display()
    );
    p
}

/// nginx (one worker, foreground) with a temp prefix; `locations` is the
/// inside of the `server { }` block after `listen`. Static files go to
/// `<dir>/html`, written before start.
pub fn nginx(files: &[(&str, &[u8])], locations: &str) -> Server {
    nginx_configured("nginx", files, "", |_| locations.to_string())
}

/// Server-block directives that pace nginx's responses at 16 MiB/s, so an
/// 8 MiB body takes half a second: long enough that the agent has parsed
/// the response head, and asked the probes to skip the body, while most of
/// it is still to come. On loopback an unpaced 8 MiB body is read in a few
/// milliseconds, a race the tests of body skipping must not depend on.
pub const LARGE_BODY_PACE: &str = "        limit_rate 16m;";

/// [`nginx`] with `listen_options` after the listen address (such as
/// `" ssl http2"`) and the server-block directives `server_block` returns,
/// given the prefix directory (to write certificates into, say).
pub fn nginx_configured(
    name: &str,
    files: &[(&str, &[u8])],
    listen_options: &str,
    server_block: impl FnOnce(&Path) -> String,
) -> Server {
    let dir = temp("wirespan-nginx-");
    let html = dir.path().join("html");
    std::fs::create_dir(&html).expect("html dir");
    for (name, content) in files {
        std::fs::write(html.join(name), content).expect("write static file");
    }
    for sub in ["logs", "tmp"] {
        std::fs::create_dir(dir.path().join(sub)).expect("nginx dir");
    }
    let locations = server_block(dir.path());
    let port = free_port();
    let p = dir.path().display();
    let conf = format!(
        "daemon off;
master_process on;
worker_processes 1;
user root;
pid {p}/logs/nginx.pid;
error_log {p}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    keepalive_timeout 30s;
    default_type application/octet-stream;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port}{listen_options};
        root {p}/html;
{locations}
    }}
}}
"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let mut cmd = Command::new(nginx_bin());
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("logs/error.log"));
    Server::spawn(name, cmd, port, dir)
}

/// The children of `pid` (e.g. nginx's worker), from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
    }
    out
}

/// The last path component, as the agent names executables.
pub fn exe_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
