//! Ports and a tiny blocking HTTP/1.0 client (for /readyz and /metrics).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A TCP port free on 127.0.0.1 right now (bound to port 0, then released).
/// Ports are taken from a range above the ephemeral range when possible so a
/// client's ephemeral port never collides with a server started later.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // 20000..32000 is below Linux's default ephemeral range (32768..60999).
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed = 20000 + (std::process::id() % 6000) as u16;
        NEXT.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed)
            .ok();
    }
    for _ in 0..12000 {
        let mut p = NEXT.fetch_add(1, Ordering::Relaxed);
        if p >= 32000 {
            NEXT.store(20000, Ordering::Relaxed);
            p = 20000;
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free TCP port on 127.0.0.1 in 20000..32000")
}

/// The first global-scope IPv4 address of this host (`ip -4 addr`), for tests
/// that need a peer address that is not loopback. Panics, saying why, when
/// there is none.
pub fn global_ipv4() -> std::net::Ipv4Addr {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("run `ip` (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "this test needs a non-loopback IPv4 address on the host (the agent \
                 treats loopback peers as local); `ip -4 addr show scope global` printed:\n{text}"
            )
        })
}

/// Waits until something accepts connections on `addr` (any host).
pub fn wait_addr(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    crate::wait::wait_until(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    crate::wait::wait_until(timeout, || {
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
    })
}

/// GET http://`addr``path` with HTTP/1.0; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
