//! The crate's error, with the short reason each failure is counted under.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("in-cluster configuration: environment variable {0} is not set")]
    MissingEnv(&'static str),
    #[error("API server URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("reading CA certificates {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("reading service account token {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr}: {source}")]
    TlsHandshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("API server answered {code} {reason}: {message}")]
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("decoding {what}: {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{what} larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("settings: {0}")]
    Settings(String),
    #[error("start must be called within a Tokio runtime")]
    NoRuntime,
}

impl KubeError {
    /// The `reason` label of the failure counters.
    pub fn reason(&self) -> &'static str {
        match self {
            KubeError::MissingEnv(_)
            | KubeError::BadUrl { .. }
            | KubeError::Ca { .. }
            | KubeError::Settings(_)
            | KubeError::NoRuntime => "config",
            KubeError::Token { .. } => "token",
            KubeError::Connect { .. } => "connect",
            KubeError::TlsHandshake { .. } => "tls",
            KubeError::Timeout(_) => "timeout",
            KubeError::Http(_) | KubeError::Request(_) => "http",
            KubeError::Status { code: 401, .. } => "unauthorized",
            KubeError::Status { code: 403, .. } => "forbidden",
            KubeError::Status { code: 410, .. } => "expired",
            KubeError::Status { .. } => "status",
            KubeError::Decode { .. } => "decode",
            KubeError::TooLarge { .. } => "too_large",
        }
    }

    /// 410 Gone: the resource version is too old; only a new list helps.
    pub(crate) fn is_expired(&self) -> bool {
        matches!(self, KubeError::Status { code: 410, .. })
    }
}

/// Every `reason` a list or watch can end with, for registering the counters.
pub(crate) const RESTART_REASONS: &[&str] = &[
    "end_of_stream",
    "expired",
    "config",
    "token",
    "connect",
    "tls",
    "timeout",
    "http",
    "unauthorized",
    "forbidden",
    "status",
    "decode",
    "too_large",
];
