//! The agent's own HTTP endpoint: `/metrics` (Prometheus text format),
//! `/readyz` (200 once every probe is attached) and `/healthz`.
//!
//! A deliberately small HTTP/1.1 responder: one request per connection, heads
//! bounded to 8 KiB, a read timeout, so a scraper or a port scan cannot hold it.

use anyhow::{Context as _, Result};
use self_metrics::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Shared readiness flag: set once the probes are attached and the pipeline runs.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Binds the listener (so a bad address fails at start-up) and serves it.
pub async fn bind(listen: &str) -> Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (metrics.listen)"))
}

pub async fn serve(listener: TcpListener, registry: Registry, ready: Readiness) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics endpoint accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), answer(stream, &registry, &ready))
                .await
                .ok();
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    registry: &Registry,
    ready: &Readiness,
) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || len == buf.len() {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let path = match req.parse(&buf[..len]) {
        Ok(_) => req.path.unwrap_or("/"),
        Err(_) => "",
    };
    let method = req.method.unwrap_or("");
    let (status, content_type, body) = route(method, path, registry, ready);
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

fn route(
    method: &str,
    path: &str,
    registry: &Registry,
    ready: &Readiness,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "only GET and HEAD\n".into());
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render(),
        ),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if ready.is_ready() => ("200 OK", TEXT, "ready\n".into()),
        "/readyz" => (
            "503 Service Unavailable",
            TEXT,
            "not ready: probes not attached yet\n".into(),
        ),
        _ => (
            "404 Not Found",
            TEXT,
            "try /metrics, /readyz or /healthz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_readiness() {
        let registry = Registry::new();
        registry
            .counter("wirespan_test_total", "A test counter.", &[("reason", "x")])
            .add(5);
        let ready = Readiness::default();
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, registry, ready.clone()));

        let r = get(addr, "/readyz").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        ready.set_ready(true);
        let r = get(addr, "/readyz").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let r = get(addr, "/metrics").await;
        assert!(r.contains("wirespan_test_total{reason=\"x\"} 5\n"), "{r}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
