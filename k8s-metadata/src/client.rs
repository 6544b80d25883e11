//! A minimal Kubernetes API client: HTTP/1.1 GETs over TCP or TLS (rustls with
//! the ring provider), a bearer token re-read from its file for every request
//! (bound service account tokens rotate), and bounded reads of response bodies.

use crate::error::KubeError;
use crate::objects::Status;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// An error body is read for its message only.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Where the API server is and how to reach it.
#[derive(Clone)]
pub(crate) struct ApiClient {
    host: String,
    port: u16,
    /// The `Host` header: host (bracketed when IPv6) and port.
    authority: String,
    /// A path prefix from the URL (such as a proxy's), without a trailing `/`.
    base_path: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    token_path: Option<PathBuf>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ApiClient {
    /// `url` is `http://host:port[/prefix]` or `https://…` (verified with the
    /// certificates in `ca_path`).
    pub(crate) fn new(
        url: &str,
        ca_path: &Path,
        token_path: Option<PathBuf>,
    ) -> Result<Self, KubeError> {
        let bad = |reason: &str| KubeError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let base_path = uri.path().trim_end_matches('/').to_string();
        let tls = if tls {
            let name = ServerName::try_from(host.clone()).map_err(|e| bad(&e.to_string()))?;
            Some((TlsConnector::from(Arc::new(tls_config(ca_path)?)), name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            authority,
            base_path,
            tls,
            token_path,
        })
    }

    /// A new HTTP/1.1 connection; several requests may follow one another on it.
    pub(crate) async fn connect(&self) -> Result<Connection, KubeError> {
        let addr = self.authority.clone();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| KubeError::Timeout("connecting to the API server"))?
        .map_err(|source| KubeError::Connect {
            addr: addr.clone(),
            source,
        })?;
        tcp.set_nodelay(true).ok();
        let sender = match &self.tls {
            None => handshake(tcp).await?,
            Some((connector, name)) => {
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| KubeError::Timeout("in the TLS handshake"))?
                        .map_err(|source| KubeError::TlsHandshake { addr, source })?;
                handshake(stream).await?
            }
        };
        Ok(Connection {
            sender,
            client: self.clone(),
        })
    }

    fn bearer(&self) -> Result<Option<String>, KubeError> {
        let Some(path) = &self.token_path else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).map_err(|source| KubeError::Token {
            path: path.clone(),
            source,
        })?;
        Ok(Some(format!("Bearer {}", token.trim())))
    }
}

fn tls_config(ca_path: &Path) -> Result<ClientConfig, KubeError> {
    let ca_err = |reason: String| KubeError::Ca {
        path: ca_path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_path).map_err(|e| ca_err(e.to_string()))? {
        let cert = cert.map_err(|e| ca_err(e.to_string()))?;
        roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_err("no certificate in the file".to_string()));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Empty<Bytes>>, KubeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Ends when the sender and every response body are dropped, or on error
    // (which the request or body read then reports).
    tokio::spawn(async move {
        connection.await.ok();
    });
    Ok(sender)
}

/// One open connection to the API server.
pub(crate) struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    client: ApiClient,
}

impl Connection {
    /// GET `path_and_query` (appended to the URL's path). A non-2xx answer is
    /// returned as [`KubeError::Status`] with the `Status` body's reason and
    /// message when it has one.
    pub(crate) async fn get(
        &mut self,
        path_and_query: &str,
    ) -> Result<Response<Incoming>, KubeError> {
        let mut request = Request::get(format!("{}{}", self.client.base_path, path_and_query))
            .header(hyper::header::HOST, &self.client.authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "wirespan-k8s-metadata");
        if let Some(bearer) = self.client.bearer()? {
            request = request.header(hyper::header::AUTHORIZATION, bearer);
        }
        let request = request.body(Empty::new())?;
        tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, self.sender.ready())
            .await
            .map_err(|_| KubeError::Timeout("waiting for the connection"))??;
        let response =
            tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, self.sender.send_request(request))
                .await
                .map_err(|_| KubeError::Timeout("waiting for the response head"))??;
        let code = response.status();
        if code.is_success() {
            return Ok(response);
        }
        let mut body = response.into_body();
        let text = read_body(
            &mut body,
            ERROR_BODY_LIMIT,
            RESPONSE_HEAD_TIMEOUT,
            "error body",
        )
        .await
        .unwrap_or_default();
        let status: Status = serde_json::from_slice(&text).unwrap_or_default();
        Err(KubeError::Status {
            code: code.as_u16(),
            reason: if status.reason.is_empty() {
                code.canonical_reason().unwrap_or("").to_string()
            } else {
                status.reason
            },
            message: status.message,
        })
    }
}

/// The whole body, at most `limit` bytes, within `timeout`.
pub(crate) async fn read_body(
    body: &mut Incoming,
    limit: usize,
    timeout: Duration,
    what: &'static str,
) -> Result<Vec<u8>, KubeError> {
    let read = async {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if out.len() + data.len() > limit {
                    return Err(KubeError::TooLarge { what, limit });
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| KubeError::Timeout("reading a response body"))?
}

/// `s` percent-encoded for a query value.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = ApiClient::new(
            "http://127.0.0.1:8001/proxy/",
            Path::new("/nonexistent"),
            None,
        )
        .expect("url");
        assert_eq!(c.authority, "127.0.0.1:8001");
        assert_eq!(c.base_path, "/proxy");
        assert!(c.tls.is_none());
        let c =
            ApiClient::new("http://[fd00::1]:6443", Path::new("/nonexistent"), None).expect("url");
        assert_eq!(c.host, "fd00::1");
        assert_eq!(c.authority, "[fd00::1]:6443");
        assert_eq!(c.base_path, "");
        assert!(matches!(
            ApiClient::new("ftp://x", Path::new("/nonexistent"), None),
            Err(KubeError::BadUrl { .. })
        ));
        // https needs a readable CA file.
        assert!(matches!(
            ApiClient::new(
                "https://10.96.0.1:443",
                Path::new("/nonexistent/ca.crt"),
                None
            ),
            Err(KubeError::Ca { .. })
        ));
    }

    #[test]
    fn escapes_field_selectors() {
        assert_eq!(
            query_escape("spec.nodeName=node-1"),
            "spec.nodeName%3Dnode-1"
        );
        assert_eq!(query_escape("a b/c"), "a%20b%2Fc");
    }
}
