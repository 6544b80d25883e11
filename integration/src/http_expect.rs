//! The HTTP spans the tests expect, built from what the test itself sent and
//! what the programs reported: every attribute the agent sets for HTTP/1 over
//! TCP on 127.0.0.1 (stable HTTP semantic conventions).

use crate::spans::{ExpectedSpan, KIND_CLIENT, KIND_SERVER};

/// One request/response exchange as the test knows it.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The server's port (127.0.0.1).
    pub server_port: u16,
    /// The client's ephemeral port.
    pub client_port: u16,
    pub status: u16,
    pub request_body: u64,
    pub response_body: u64,
    pub user_agent: Option<String>,
    /// "1.1" or "1.0" (the request's version).
    pub version: String,
}

/// The process a span belongs to.
#[derive(Clone, Debug)]
pub struct Proc {
    pub service: String,
    pub pid: u32,
    pub exe: String,
}

impl Proc {
    /// A process whose service name is its executable's name, as for a
    /// program started without `OTEL_SERVICE_NAME`.
    pub fn named(name: &str, pid: u32) -> Proc {
        Proc {
            service: name.into(),
            pid,
            exe: name.into(),
        }
    }
}

impl Exchange {
    /// Both spans: the client's and the server's.
    pub fn spans(&self, client: &Proc, server: &Proc) -> [ExpectedSpan; 2] {
        [
            self.client_span(client, server),
            self.server_span(server, client),
        ]
    }

    pub fn get(path: &str, server_port: u16, client_port: u16, status: u16, body: u64) -> Self {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path.to_string(), None),
        };
        Exchange {
            method: "GET".into(),
            path,
            query,
            server_port,
            client_port,
            status,
            request_body: 0,
            response_body: body,
            user_agent: None,
            version: "1.1".into(),
        }
    }

    pub fn method(mut self, m: &str) -> Self {
        self.method = m.into();
        self
    }

    pub fn ua(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    pub fn request_body(mut self, n: u64) -> Self {
        self.request_body = n;
        self
    }

    fn common(&self, kind: i32, proc_: &Proc) -> ExpectedSpan {
        let mut s = ExpectedSpan::new(kind, &self.method)
            .attr("http.request.method", self.method.as_str())
            .attr("url.path", self.path.as_str())
            .attr("url.scheme", "http")
            .attr("network.protocol.name", "http")
            .attr("network.protocol.version", self.version.as_str())
            .attr("network.transport", "tcp")
            .attr("server.address", "127.0.0.1")
            .attr("server.port", self.server_port)
            .attr("http.request.body.size", self.request_body)
            .attr("http.response.status_code", self.status as i64)
            .attr("http.response.body.size", self.response_body)
            .res("service.name", proc_.service.as_str())
            .res("process.pid", proc_.pid)
            .res("process.executable.name", proc_.exe.as_str());
        if let Some(q) = &self.query {
            s = s.attr("url.query", q.as_str());
        }
        if let Some(ua) = &self.user_agent {
            s = s.attr("user_agent.original", ua.as_str());
        }
        s
    }

    fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The client's span (ERROR from 400 up). `server` is the process on the
    /// other end: a process on this host names the peer (`service.peer.name`).
    pub fn client_span(&self, client: &Proc, server: &Proc) -> ExpectedSpan {
        let mut s = self
            .common(KIND_CLIENT, client)
            .attr("service.peer.name", server.service.as_str())
            .attr(
                "url.full",
                format!(
                    "http://127.0.0.1:{}{}",
                    self.server_port,
                    self.path_and_query()
                ),
            )
            .attr("network.peer.address", "127.0.0.1")
            .attr("network.peer.port", self.server_port)
            .attr("network.local.address", "127.0.0.1")
            .attr("network.local.port", self.client_port);
        if self.status >= 400 {
            s = s.error(&self.status.to_string());
        }
        s
    }

    /// The server's span (ERROR from 500 up); `client` names the peer.
    pub fn server_span(&self, server: &Proc, client: &Proc) -> ExpectedSpan {
        let mut s = self
            .common(KIND_SERVER, server)
            .attr("service.peer.name", client.service.as_str())
            .attr("client.address", "127.0.0.1")
            .attr("client.port", self.client_port)
            .attr("network.peer.address", "127.0.0.1")
            .attr("network.peer.port", self.client_port)
            .attr("network.local.address", "127.0.0.1")
            .attr("network.local.port", self.server_port);
        if self.status >= 500 {
            s = s.error(&self.status.to_string());
        }
        s
    }
}
