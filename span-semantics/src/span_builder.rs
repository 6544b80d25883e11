//! Turning one request/response pair into one OTLP span, with the stable HTTP
//! semantic conventions (https://opentelemetry.io/docs/specs/semconv/http/http-spans/).
//!
//! It does not decide which process a span belongs to (the pipeline does) and
//! does not export (span-export does).

use conn_tracker::{ConnInfo, Endpoint, Role};
use protocol_parsers::{ExchangeEnd, HttpExchange, RequestField, RequestHead, UnknownFields};
use span_model::{span, status, AttrValue, Attrs, ExportSpan, SpanData, Status, Text};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::process_table::ProcessIdentity;
use crate::routes::RouteTable;

/// Methods the conventions know; anything else is reported as `_OTHER`.
const KNOWN_METHODS: &[&str] = &[
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY",
];

/// The attribute naming the fields a span leaves out because they could not
/// be decoded (an HTTP/2 connection joined midway): a comma-separated list of
/// attribute names (see [`unknown_fields_value`]).
pub const UNKNOWN_FIELDS_ATTR: &str = "wirespan.capture.unknown_fields";

/// The value of [`UNKNOWN_FIELDS_ATTR`]: the span attributes whose values were
/// sent but are unknown, in a fixed order, comma-separated. `url.path` stands
/// for everything taken from `:path` (`url.query`, `http.route`, and the
/// span name's route); `http.request.header` / `http.response.header` for
/// other header fields, whose names are unknown too (`user_agent.original`,
/// `traceparent` may be among them).
pub fn unknown_fields_value(u: UnknownFields, grpc: bool, is_server: bool) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    if u.contains(UnknownFields::METHOD) {
        names.push("http.request.method");
    }
    if u.contains(UnknownFields::PATH) {
        names.push("url.path");
        if !is_server {
            names.push("url.full");
        }
        if grpc {
            names.push("rpc.method");
        }
    }
    if u.contains(UnknownFields::REQUEST_HEADERS) {
        names.push("http.request.header");
    }
    if u.contains(UnknownFields::STATUS) {
        names.push("http.response.status_code");
    }
    if grpc && u.contains(UnknownFields::GRPC_STATUS) {
        names.push("rpc.response.status_code");
    }
    if u.contains(UnknownFields::RESPONSE_HEADERS)
        || (!grpc && u.contains(UnknownFields::GRPC_STATUS))
    {
        names.push("http.response.header");
    }
    (!names.is_empty()).then(|| names.join(","))
}

/// gRPC codes that make a server span an error (RPC conventions).
const GRPC_SERVER_ERRORS: &[u32] = &[2, 4, 12, 13, 14, 15];

/// The canonical name of a gRPC status code.
pub fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}

/// Random trace and span ids (xorshift from a seed: the kernel's entropy in
/// production, through `HostFacts`, a fixed one in tests): ids must be
/// unique, not unpredictable.
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    /// Ids from `seed` (deterministic for a given seed).
    pub fn with_seed(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn span_id(&mut self) -> [u8; 8] {
        loop {
            let v = self.next();
            if v != 0 {
                return v.to_be_bytes();
            }
        }
    }

    pub fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.span_id());
        id
    }
}

/// A parsed W3C `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else (or all-zero ids) is None.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let v = value.trim();
    let parts: Vec<&str> = v.split('-').collect();
    if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" {
        return None;
    }
    if parts[0] == "00" && parts.len() != 4 {
        return None;
    }
    let trace_id: [u8; 16] = hex_bytes(parts[1])?;
    let parent_id: [u8; 8] = hex_bytes(parts[2])?;
    let flags: [u8; 1] = hex_bytes(parts[3])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags: flags[0],
    })
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2)?;
        if !pair
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Everything besides the exchange that a span needs.
pub struct SpanContext<'a> {
    pub conn: &'a ConnInfo,
    pub process: &'a Arc<ProcessIdentity>,
    /// The other side's service, when known.
    pub peer_service: Option<AttrValue>,
    /// Added to kernel monotonic timestamps to get Unix-epoch nanoseconds.
    pub clock_offset_ns: i64,
    /// "https" once TLS capture marks the connection.
    pub scheme: &'a str,
    /// Ids shared with the other end of a same-host connection, so that the
    /// client span and the server span of one request form one trace.
    pub link: Option<LinkIds>,
    /// Ids decided before the exchange ended (in-process causality); when set,
    /// `link` and the request's traceparent are not consulted for ids.
    pub fixed: Option<FixedIds>,
}

/// A span's ids, decided by [`SpanBuilder::decide_ids`] or ahead of the span
/// by in-process causality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedIds {
    pub trace_id: [u8; 16],
    /// None: a new id is drawn when the span is built.
    pub span_id: Option<[u8; 8]>,
    pub parent_span_id: Option<[u8; 8]>,
    /// The trace's sampling decision, when a traceparent carried one.
    pub sampled: Option<bool>,
}

/// The ids of one request seen at both ends of a connection on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkIds {
    pub trace_id: [u8; 16],
    pub client_span_id: [u8; 8],
    pub server_span_id: [u8; 8],
    /// The client end is traced here too: the server span's parent is the
    /// client span. Without it the server span stays a root (a parent that no
    /// backend will ever receive would show as missing).
    pub client_seen: bool,
}

impl LinkIds {
    /// Derives the ids of request `ordinal` (HTTP/1: its position on the
    /// connection; HTTP/2: its stream id) from the connection's shared random
    /// nonce and the request line, which both ends compute alike. A loss that
    /// shifts one end's ordinals yields different ids: no link, never a wrong one.
    pub fn derive(nonce: u64, ordinal: u64, method: &str, target: &str, client_seen: bool) -> Self {
        use std::hash::BuildHasher;
        // A fixed-seed hasher: both ends must derive the same ids, and SipHash
        // here cost 11% of span building.
        let state = foldhash::quality::FixedState::with_seed(0x7769_7265_7370_616e);
        // The request line is hashed once; each id mixes in its salt (hashing
        // the whole target four times was ~8 % of span building).
        let base = state.hash_one((nonce, ordinal, method, target));
        let h = |salt: u8| state.hash_one((base, salt));
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&h(1).to_be_bytes());
        trace_id[8..].copy_from_slice(&h(2).to_be_bytes());
        let nonzero = |v: u64| if v == 0 { 1 } else { v };
        LinkIds {
            trace_id,
            client_span_id: nonzero(h(3)).to_be_bytes(),
            server_span_id: nonzero(h(4)).to_be_bytes(),
            client_seen,
        }
    }
}

/// The ids of a span whose request carries `parent` (its traceparent) and
/// whose connection has `link`: a traceparent makes the span part of that
/// trace (server: its parent is the caller's span); else a same-host link
/// gives both ends' ids (the client span is the server span's parent);
/// else a new trace.
pub fn decide_ids(
    ids: &mut IdGenerator,
    is_server: bool,
    parent: Option<&TraceParent>,
    link: Option<LinkIds>,
) -> FixedIds {
    match (parent, link) {
        (Some(tp), _) => FixedIds {
            trace_id: tp.trace_id,
            span_id: Some(ids.span_id()),
            parent_span_id: Some(tp.parent_id),
            sampled: Some(tp.flags & 1 == 1),
        },
        (None, Some(link)) if is_server => FixedIds {
            trace_id: link.trace_id,
            span_id: Some(link.server_span_id),
            parent_span_id: link.client_seen.then_some(link.client_span_id),
            sampled: None,
        },
        (None, Some(link)) => FixedIds {
            trace_id: link.trace_id,
            span_id: Some(link.client_span_id),
            parent_span_id: None,
            sampled: None,
        },
        (None, None) => FixedIds {
            trace_id: ids.trace_id(),
            span_id: Some(ids.span_id()),
            parent_span_id: None,
            sampled: None,
        },
    }
}

/// `url.scheme` without an allocation for the usual two.
fn static_scheme(scheme: &str) -> AttrValue {
    match scheme {
        "http" => AttrValue::Static("http"),
        "https" => AttrValue::Static("https"),
        other => AttrValue::Owned(other.into()),
    }
}

/// `sub`, a slice of `value` (the request's `field`), as a part of the
/// request's text: shared, not copied.
fn head_part(req: &RequestHead, field: RequestField, value: &str, sub: &str) -> AttrValue {
    // `sub` points into `value`, so this is its offset there.
    let off = (sub.as_ptr() as usize).wrapping_sub(value.as_ptr() as usize);
    match req.range(field) {
        Some(r) if off <= value.len() => {
            AttrValue::part(req.text(), r.start + off, r.start + off + sub.len())
        }
        _ => AttrValue::Owned(sub.into()),
    }
}

/// Builds spans; holds the id generator, the route table, and the text of
/// recently seen addresses (formatting an address on every span was 15% of
/// span building) and of other repeated values (see [`Interner`]).
pub struct SpanBuilder {
    ids: IdGenerator,
    routes: RouteTable,
    templated_names: bool,
    opt_in: OptIn,
    redactor: crate::redact::QueryRedactor,
    addresses: HashMap<IpAddr, Arc<str>, foldhash::fast::FixedState>,
    strings: Interner,
    /// Reused to assemble a span name before interning it, and a URL before
    /// it is shared.
    scratch: String,
}

/// Which attributes the HTTP conventions mark Opt-In the spans carry
/// (`http.opt_in_attributes`; names in `wirespan_config::OPT_IN_ATTRIBUTES`).
/// None by default, as the conventions ask: each one is bytes in every span
/// exported, received and stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptIn {
    /// `client.port` on server spans.
    pub client_port: bool,
    pub network_local_address: bool,
    pub network_local_port: bool,
    pub network_transport: bool,
    /// `network.protocol.name` (always `http` here).
    pub network_protocol_name: bool,
    pub request_body_size: bool,
    pub response_body_size: bool,
    /// `url.scheme` on client spans (server spans always have it).
    pub client_url_scheme: bool,
    /// `user_agent.original` on client spans (server spans always have it).
    pub client_user_agent: bool,
}

impl OptIn {
    /// Every one of them.
    pub const ALL: OptIn = OptIn {
        client_port: true,
        network_local_address: true,
        network_local_port: true,
        network_transport: true,
        network_protocol_name: true,
        request_body_size: true,
        response_body_size: true,
        client_url_scheme: true,
        client_user_agent: true,
    };

    /// From the configured names (already validated; an unknown one is
    /// ignored). `all` turns every one on.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> OptIn {
        let on = |name: &str| {
            names
                .iter()
                .any(|n| n.as_ref() == name || n.as_ref() == wirespan_config::OPT_IN_ALL)
        };
        OptIn {
            client_port: on("client.port"),
            network_local_address: on("network.local.address"),
            network_local_port: on("network.local.port"),
            network_transport: on("network.transport"),
            network_protocol_name: on("network.protocol.name"),
            request_body_size: on("http.request.body.size"),
            response_body_size: on("http.response.body.size"),
            client_url_scheme: on("url.scheme"),
            client_user_agent: on("user_agent.original"),
        }
    }
}

/// Most address strings kept; the cache is cleared when it fills.
const ADDRESS_CACHE_MAX: usize = 4096;

/// Shared copies of values that repeat from span to span (span names; the
/// request's host and user agent are parts of its head's text, see
/// [`RequestHead::text`]): a lookup instead of an allocation and a free per
/// span. Bounded: values longer than [`Interner::MAX_LEN`] are not kept, and
/// the set is cleared when it holds [`Interner::MAX_ENTRIES`] (at most ~1 MiB
/// of text).
#[derive(Default)]
struct Interner {
    set: HashSet<Arc<str>, foldhash::fast::FixedState>,
}

impl Interner {
    const MAX_LEN: usize = 256;
    const MAX_ENTRIES: usize = 4096;

    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(v) = self.set.get(s) {
            return v.clone();
        }
        if self.set.len() >= Self::MAX_ENTRIES {
            self.set.clear();
        }
        let v: Arc<str> = s.into();
        self.set.insert(v.clone());
        v
    }

    /// `s` shared if it is short enough to keep, else an owned copy.
    fn value(&mut self, s: &str) -> Text {
        if s.len() <= Self::MAX_LEN {
            Text::Shared(self.get(s))
        } else {
            Text::Owned(s.to_string())
        }
    }
}

/// Appends `n` in decimal (what `format!("{n}")` writes), without `fmt`.
fn push_u16(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// `ip_string` through the builder's cache.
fn cached_address(
    cache: &mut HashMap<IpAddr, Arc<str>, foldhash::fast::FixedState>,
    ip: IpAddr,
) -> Arc<str> {
    if let Some(s) = cache.get(&ip) {
        return s.clone();
    }
    if cache.len() >= ADDRESS_CACHE_MAX {
        cache.clear();
    }
    let s: Arc<str> = ip_string(ip).into();
    cache.insert(ip, s.clone());
    s
}

fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Splits `Host`/`:authority` into host and port.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

impl SpanBuilder {
    pub fn new(ids: IdGenerator, routes: RouteTable) -> Self {
        Self {
            ids,
            routes,
            templated_names: false,
            opt_in: OptIn::default(),
            redactor: crate::redact::QueryRedactor::default(),
            addresses: HashMap::default(),
            strings: Interner::default(),
            scratch: String::new(),
        }
    }

    /// Name spans after the templated path when no route matches.
    pub fn with_templated_names(mut self, on: bool) -> Self {
        self.templated_names = on;
        self
    }

    /// The Opt-In attributes to set (see [`OptIn`]).
    pub fn with_opt_in(mut self, opt_in: OptIn) -> Self {
        self.opt_in = opt_in;
        self
    }

    /// Query parameters whose values are hidden (see `redact`).
    pub fn with_redaction(mut self, redactor: crate::redact::QueryRedactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// A second id generator seeded from this one: deterministic when this one is.
    pub fn fork_ids(&mut self) -> IdGenerator {
        IdGenerator::with_seed(u64::from_be_bytes(self.ids.span_id()))
    }

    /// See [`decide_ids`].
    pub fn decide_ids(
        &mut self,
        is_server: bool,
        parent: Option<&TraceParent>,
        link: Option<LinkIds>,
    ) -> FixedIds {
        decide_ids(&mut self.ids, is_server, parent, link)
    }

    pub fn build(&mut self, ctx: &SpanContext<'_>, ex: &HttpExchange) -> ExportSpan {
        let is_server = ctx.conn.role == Role::Server;
        let req = &ex.request;
        let known_method: Option<&'static str> =
            KNOWN_METHODS.iter().copied().find(|m| *m == req.method());
        let method_known = known_method.is_some();
        let method: &'static str = known_method.unwrap_or("_OTHER");
        // Joined an HTTP/2 connection midway: what could not be decoded is
        // left out, never guessed or set empty.
        let method_unknown = ex.unknown.contains(UnknownFields::METHOD);
        let path_unknown = ex.unknown.contains(UnknownFields::PATH);
        let status_unknown = ex.unknown.contains(UnknownFields::STATUS);

        // origin-form "/p?q", or absolute-form "http://h/p?q" from proxies
        // (RFC 9112 3.2): only a target that does not start with '/' can
        // have a scheme, and it ends at the first ':' (so "/p?u=http://x/y"
        // keeps its path "/p"). A char search, not a substring searcher.
        let target = req.target();
        let scheme_end = if target.starts_with('/') {
            None
        } else {
            target.find(':').filter(|&i| target[i..].starts_with("://"))
        };
        // Where the path starts in the target (None: "/" supplied here).
        let path_at = match scheme_end {
            Some(i) => target[i + 3..].find('/').map(|j| i + 3 + j),
            None => Some(0),
        };
        let path_and_query = path_at.map_or("/", |at| &target[at..]);
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(self.redactor.redact(q))),
            None => (path_and_query, None),
        };
        // Rebuilt only when redaction changed the query (rare); otherwise the
        // request's own text is borrowed.
        let path_and_query: std::borrow::Cow<'_, str> = match &query {
            Some(std::borrow::Cow::Owned(q)) => format!("{path}?{q}").into(),
            _ => path_and_query.into(),
        };
        let route = if path_unknown {
            None
        } else {
            self.routes.match_path(path)
        };

        let scheme = req.scheme().unwrap_or(ctx.scheme);
        let server_end: &Endpoint = if is_server {
            &ctx.conn.local
        } else {
            &ctx.conn.remote
        };
        let (server_address, server_port): (AttrValue, u16) = match req.authority() {
            Some(a) if !a.is_empty() => {
                let (h, p) = split_authority(a);
                (
                    head_part(req, RequestField::Authority, a, h),
                    p.unwrap_or(server_end.port),
                )
            }
            _ => (
                cached_address(&mut self.addresses, server_end.ip).into(),
                server_end.port,
            ),
        };
        let server_host = server_address.as_str().unwrap_or_default();

        // `url.full` (client spans), `url.path` and `url.query` share one
        // allocation: the full URL's text, or the path and query alone; the
        // path and query are parts of it (start, end). Without `url.full`
        // and redaction, that text is the request's own.
        let with_path = !path_unknown && !path.is_empty();
        let with_full = !is_server && !path_unknown;
        let in_head = match (&path_and_query, path_at, req.range(RequestField::Target)) {
            (std::borrow::Cow::Borrowed(pq), Some(at), Some(t)) if with_path && !with_full => {
                Some((req.text().clone(), t.start + at, t.start + at + pq.len()))
            }
            _ => None,
        };
        let url: Option<(Arc<str>, usize, usize)> = in_head.or_else(|| {
            if !(with_path || with_full) {
                return None;
            }
            let full = &mut self.scratch;
            full.clear();
            if with_full {
                // `{scheme}://{host}[:{port}]`, without `format!`.
                let default_port = if scheme == "https" { 443 } else { 80 };
                let with_port = server_port != default_port;
                let bracket = with_port && server_host.contains(':');
                full.push_str(scheme);
                full.push_str("://");
                if bracket {
                    full.push('[');
                }
                full.push_str(server_host);
                if bracket {
                    full.push(']');
                }
                if with_port {
                    full.push(':');
                    push_u16(full, server_port);
                }
            }
            let path_start = full.len();
            full.push_str(&path_and_query);
            Some((Arc::from(full.as_str()), path_start, full.len()))
        });

        let mut attrs = Attrs::with_capacity(24);
        if !method_unknown {
            attrs.push("http.request.method", method);
            if !method_known && !req.method().is_empty() {
                attrs.push(
                    "http.request.method_original",
                    head_part(req, RequestField::Method, req.method(), req.method()),
                );
            }
        }
        if let (true, Some((text, start, end))) = (with_path, &url) {
            let path_end = start + path.len();
            attrs.push("url.path", AttrValue::part(text, *start, path_end));
            if query.is_some() {
                // After the '?'.
                attrs.push("url.query", AttrValue::part(text, path_end + 1, *end));
            }
        }
        let opt_in = self.opt_in;
        if is_server || opt_in.client_url_scheme {
            attrs.push("url.scheme", static_scheme(scheme));
        }
        if let Some(r) = route {
            attrs.push("http.route", r.to_string());
        }
        if opt_in.network_protocol_name {
            attrs.push("network.protocol.name", "http");
        }
        attrs.push("network.protocol.version", req.version.as_otel());
        if opt_in.network_transport {
            attrs.push("network.transport", "tcp");
        }
        attrs.push("server.address", server_address);
        attrs.push("server.port", server_port as i64);
        // One lookup for the peer's address: on a server span it is also
        // `client.address`.
        let peer_address = cached_address(&mut self.addresses, ctx.conn.remote.ip);
        if is_server {
            attrs.push("client.address", peer_address.clone());
            if opt_in.client_port {
                attrs.push("client.port", ctx.conn.remote.port as i64);
            }
        } else if let (true, Some((text, _, _))) = (with_full, &url) {
            attrs.push("url.full", AttrValue::Shared(text.clone()));
        }
        attrs.push("network.peer.address", peer_address);
        attrs.push("network.peer.port", ctx.conn.remote.port as i64);
        if opt_in.network_local_address {
            attrs.push(
                "network.local.address",
                cached_address(&mut self.addresses, ctx.conn.local.ip),
            );
        }
        if opt_in.network_local_port {
            attrs.push("network.local.port", ctx.conn.local.port as i64);
        }
        if let (true, Some(ua)) = (is_server || opt_in.client_user_agent, req.user_agent()) {
            attrs.push(
                "user_agent.original",
                head_part(req, RequestField::UserAgent, ua, ua),
            );
        }
        if opt_in.request_body_size {
            attrs.push("http.request.body.size", ex.request_body_size as i64);
        }
        if let Some(peer) = &ctx.peer_service {
            attrs.push("service.peer.name", peer.clone());
        }

        let mut status = Status::default();
        let mut error_type: Option<String> = None;
        match &ex.response {
            Some(resp) => {
                if !status_unknown {
                    attrs.push("http.response.status_code", resp.status as i64);
                }
                if opt_in.response_body_size {
                    attrs.push("http.response.body.size", ex.response_body_size as i64);
                }
                let threshold = if is_server { 500 } else { 400 };
                if !status_unknown && resp.status >= threshold {
                    error_type = Some(resp.status.to_string());
                }
            }
            None => error_type = Some("no_response".to_string()),
        }
        match ex.end {
            ExchangeEnd::Complete => {}
            ExchangeEnd::ConnectionClosed if ex.response.is_none() => {
                error_type = Some("connection_closed".to_string())
            }
            // The connection ended (closed, evicted, or the agent stopped)
            // before the response was complete: what is known is reported,
            // marked as such.
            ExchangeEnd::ConnectionClosed => {
                attrs.push("wirespan.capture.incomplete", "response_truncated")
            }
            ExchangeEnd::Reset => error_type = Some("stream_reset".to_string()),
            ExchangeEnd::Gap => attrs.push("wirespan.capture.incomplete", "gap"),
        }
        if let Some(e) = &error_type {
            attrs.push("error.type", e.clone());
            status.code = status::StatusCode::Error as i32;
        }

        // gRPC over HTTP/2: the RPC conventions name and judge the span.
        // The content type says so, or (content type unknown, joined
        // midway) the wire does: message framing and trailers.
        let grpc = ex.grpc_by_wire
            || req
                .content_type()
                .is_some_and(|ct| ct.starts_with("application/grpc"));
        let mut rpc_method: Option<&str> = None;
        if let Some(v) = unknown_fields_value(ex.unknown, grpc, is_server) {
            attrs.push(UNKNOWN_FIELDS_ATTR, v);
        }
        if grpc {
            attrs.push("rpc.system.name", "grpc");
            if !path_unknown {
                let method_name = path.strip_prefix('/').unwrap_or(path);
                rpc_method = Some(method_name);
                attrs.push("rpc.method", method_name.to_string());
            }
            let code = ex.response.as_ref().and_then(|r| r.grpc_status);
            let code_unknown = ex.unknown.contains(UnknownFields::GRPC_STATUS);
            match code {
                Some(code) => {
                    let name = grpc_code_name(code);
                    attrs.push("rpc.response.status_code", name);
                    let is_error = if is_server {
                        GRPC_SERVER_ERRORS.contains(&code)
                    } else {
                        code != 0
                    };
                    if is_error {
                        error_type = Some(name.to_string());
                        status.code = status::StatusCode::Error as i32;
                    } else if error_type
                        .as_deref()
                        .is_some_and(|e| e.parse::<u16>().is_ok())
                    {
                        // An HTTP status judged above is not the verdict for gRPC.
                        error_type = None;
                        status.code = status::StatusCode::Unset as i32;
                    }
                }
                // Sent, but not decodable (joined midway): no verdict from it.
                None if code_unknown => {}
                // Stream ended without grpc-status: the client sees an error.
                None if ex.response.is_some() && error_type.is_none() && !is_server => {
                    error_type = Some("missing_grpc_status".to_string());
                    status.code = status::StatusCode::Error as i32;
                }
                None => {}
            }
            if let Some(e) = &error_type {
                attrs.remove("error.type");
                attrs.push("error.type", e.clone());
            } else {
                attrs.remove("error.type");
            }
            if let Some(m) = ex.response.as_ref().and_then(|r| r.grpc_message.as_deref()) {
                if status.code == status::StatusCode::Error as i32 {
                    // grpc-message is percent-encoded on the wire (gRPC over HTTP/2 spec).
                    status.message = crate::process_table::percent_decode(m);
                }
            }
        }

        let parent = req.traceparent().and_then(parse_traceparent);
        let ids = match ctx.fixed {
            Some(f) => f,
            None => decide_ids(&mut self.ids, is_server, parent.as_ref(), ctx.link),
        };
        let trace_id = ids.trace_id;
        let span_id = match ids.span_id {
            Some(id) => id,
            None => self.ids.span_id(),
        };
        let parent_span_id = ids.parent_span_id;
        let trace_state = match (&parent, req.tracestate()) {
            (Some(_), Some(ts)) => ts.to_owned(),
            _ => String::new(),
        };

        // HTTP conventions: `{method}` is `HTTP` when the method is unknown.
        let name_method = if method_unknown { "HTTP" } else { method };
        let name: Text = match (rpc_method, route) {
            (Some(m), _) => self.strings.value(m),
            (None, Some(r)) => {
                self.scratch.clear();
                self.scratch.push_str(name_method);
                self.scratch.push(' ');
                self.scratch.push_str(r);
                self.strings.value(&self.scratch)
            }
            (None, None) if self.templated_names && !path_unknown => {
                self.scratch.clear();
                self.scratch.push_str(name_method);
                self.scratch.push(' ');
                self.scratch.push_str(&crate::routes::templated_path(path));
                self.strings.value(&self.scratch)
            }
            (None, None) => Text::Static(name_method),
        };
        let start = ex.request_start_ns;
        let end = if ex.response_end_ns >= start {
            ex.response_end_ns
        } else {
            ex.request_end_ns.max(start)
        };
        let to_unix = |ns: u64| (ns as i64).saturating_add(ctx.clock_offset_ns).max(0) as u64;
        let span = SpanData {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            name,
            kind: if is_server {
                span::SpanKind::Server as i32
            } else {
                span::SpanKind::Client as i32
            },
            start_time_unix_nano: to_unix(start),
            end_time_unix_nano: to_unix(end),
            status: Some(status),
            attributes: Vec::new(),
        };
        ExportSpan {
            resource: ctx.process.resource.clone(),
            span,
            attrs,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use test_support::spans::ExportSpanExt;

    #[test]
    fn traceparent_parsing() {
        let tp =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.parent_id[7], 0xb7);
        assert_eq!(tp.flags, 1);
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(parse_traceparent("garbage").is_none());
        assert!(parse_traceparent("00-4bf9-00f0-01").is_none());
    }

    #[test]
    fn absolute_form_targets_keep_their_path() {
        for (target, path, query) in [
            ("http://h.example:8080/a/b?x=1", "/a/b", Some("x=1")),
            ("http://h.example", "/", None),
            ("/no:scheme:here", "/no:scheme:here", None),
            ("/p?u=http://x/y", "/p", Some("u=http://x/y")),
            ("/a://b", "/a://b", None),
        ] {
            let span = build(Role::Server, &exchange("GET", target, Some(200)), &[]);
            assert_eq!(attr(&span, "url.path"), s(path), "{target}");
            assert_eq!(attr(&span, "url.query"), query.and_then(s), "{target}");
        }
    }

    #[test]
    fn port_digits_as_format_writes_them() {
        for n in [
            0u16, 7, 9, 10, 99, 100, 443, 999, 1000, 8080, 9999, 10000, 65535,
        ] {
            let mut out = String::from("x");
            push_u16(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn url_full_brackets_an_ipv6_host_with_a_port() {
        let mut ex = exchange("GET", "/x?a=1", Some(200));
        ex.request.set(RequestField::Authority, Some("[::1]:8080"));
        let span = build(Role::Client, &ex, &[]);
        assert_eq!(attr(&span, "url.full"), s("http://[::1]:8080/x?a=1"));
        ex.request
            .set(RequestField::Authority, Some("h.example:80"));
        let span = build(Role::Client, &ex, &[]);
        assert_eq!(attr(&span, "url.full"), s("http://h.example/x?a=1"));
    }

    #[test]
    fn authority_split() {
        assert_eq!(
            split_authority("example.com:8080"),
            ("example.com", Some(8080))
        );
        assert_eq!(split_authority("example.com"), ("example.com", None));
        assert_eq!(split_authority("[::1]:443"), ("::1", Some(443)));
        assert_eq!(split_authority("::1"), ("::1", None));
        assert_eq!(split_authority("h:notaport"), ("h:notaport", None));
    }

    use crate::process_table::{ProcessFacts, ProcessTable};
    use conn_tracker::{ConnKey, Protocol};
    use protocol_parsers::{HttpVersion, RequestField, RequestHead, ResponseHead};
    use span_model::any_value::Value;

    fn conn(role: Role) -> ConnInfo {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (local, remote) = match role {
            Role::Server => ((ip("10.0.0.1"), 8080), (ip("10.0.0.2"), 40000)),
            _ => ((ip("10.0.0.2"), 40000), (ip("10.0.0.1"), 8080)),
        };
        ConnInfo {
            key: ConnKey { tgid: 7, fd: 3 },
            conn_id: 1,
            role,
            local: Endpoint::new(local.0, local.1),
            remote: Endpoint::new(remote.0, remote.1),
            opened_ns: 0,
            protocol: Protocol::Http1,
            joined_midway: false,
        }
    }

    pub(crate) fn exchange(method: &str, target: &str, status: Option<u16>) -> HttpExchange {
        HttpExchange {
            request: {
                let mut r = RequestHead::new(method, target, HttpVersion::Http11);
                r.set(RequestField::Authority, Some("shop.example:8080"));
                r.set(RequestField::UserAgent, Some("curl/7.88.1"));
                r
            },
            response: status.map(|s| ResponseHead {
                status: s,
                version: HttpVersion::Http11,
                content_type: None,
                grpc_status: None,
                grpc_message: None,
            }),
            request_body_size: 0,
            response_body_size: 42,
            request_start_ns: 1_000,
            request_end_ns: 1_500,
            response_start_ns: 2_000,
            response_end_ns: 3_000,
            stream_id: None,
            ordinal: 1,
            end: ExchangeEnd::Complete,
            headers_incomplete: false,
            unknown: Default::default(),
            grpc_by_wire: false,
        }
    }

    /// The value of attribute `key` as exported.
    fn attr(s: &ExportSpan, key: &str) -> Option<Value> {
        s.attr_value(key)
    }

    /// A span with every Opt-In attribute, so the tests can check each one.
    fn build(role: Role, ex: &HttpExchange, routes: &[String]) -> ExportSpan {
        build_with(role, ex, routes, OptIn::ALL)
    }

    fn build_with(role: Role, ex: &HttpExchange, routes: &[String], opt_in: OptIn) -> ExportSpan {
        let mut table = ProcessTable::new(Vec::new(), "host".into());
        let process = table.on_exec(ProcessFacts {
            pid: 7,
            exe_path: "/usr/bin/shop".into(),
            ..Default::default()
        });
        let c = conn(role);
        let mut b = SpanBuilder::new(IdGenerator::with_seed(1), RouteTable::new(routes))
            .with_opt_in(opt_in);
        b.build(
            &SpanContext {
                conn: &c,
                process: &process,
                peer_service: Some(AttrValue::Static("frontend")),
                clock_offset_ns: 1_000_000,
                scheme: "http",
                link: None,
                fixed: None,
            },
            ex,
        )
    }

    fn s(v: &str) -> Option<Value> {
        Some(Value::StringValue(v.to_string()))
    }
    fn i(v: i64) -> Option<Value> {
        Some(Value::IntValue(v))
    }

    /// Of `wirespan_config::OPT_IN_ATTRIBUTES`, those that are Opt-In on
    /// client spans only (the rest are Opt-In on both kinds).
    const OPT_IN_ON_CLIENT_ONLY: &[&str] = &["url.scheme", "user_agent.original"];

    fn opt_in_on_server() -> impl Iterator<Item = &'static str> {
        wirespan_config::OPT_IN_ATTRIBUTES
            .iter()
            .copied()
            .filter(|k| !OPT_IN_ON_CLIENT_ONLY.contains(k))
    }

    #[test]
    fn opt_in_attributes_only_when_asked_for() {
        let ex = exchange("GET", "/x?q=1", Some(200));
        let server = build_with(Role::Server, &ex, &[], OptIn::default());
        let client = build_with(Role::Client, &ex, &[], OptIn::default());
        for key in opt_in_on_server() {
            assert_eq!(attr(&server, key), None, "{key} on a default server span");
            assert_eq!(attr(&client, key), None, "{key} on a default client span");
        }
        for key in OPT_IN_ON_CLIENT_ONLY {
            assert!(
                attr(&server, key).is_some(),
                "{key} is not Opt-In on server spans"
            );
            assert_eq!(attr(&client, key), None, "{key} on a default client span");
        }
        // What the conventions require or recommend stays.
        for key in [
            "http.request.method",
            "url.path",
            "url.query",
            "http.response.status_code",
            "network.protocol.version",
            "server.address",
            "server.port",
            "client.address",
            "network.peer.address",
            "network.peer.port",
        ] {
            assert!(
                attr(&server, key).is_some(),
                "{key} on a default server span"
            );
        }
        assert_eq!(
            attr(&client, "url.full"),
            s("http://shop.example:8080/x?q=1")
        );

        // Each configured name turns on its attribute and no other.
        let all_server = build_with(Role::Server, &ex, &[], OptIn::ALL);
        let all_client = build_with(Role::Client, &ex, &[], OptIn::ALL);
        for name in wirespan_config::OPT_IN_ATTRIBUTES {
            let opt_in = OptIn::from_names(&[*name]);
            assert_ne!(opt_in, OptIn::default(), "{name} turns nothing on");
            let (full, one) = if OPT_IN_ON_CLIENT_ONLY.contains(name) {
                (&all_client, build_with(Role::Client, &ex, &[], opt_in))
            } else {
                (&all_server, build_with(Role::Server, &ex, &[], opt_in))
            };
            assert!(attr(full, name).is_some(), "{name} with all");
            assert_eq!(attr(&one, name), attr(full, name), "{name} alone");
            let base = if OPT_IN_ON_CLIENT_ONLY.contains(name) {
                &client
            } else {
                &server
            };
            assert_eq!(
                one.attributes().len(),
                base.attributes().len() + 1,
                "{name} alone adds one attribute"
            );
        }
        assert_eq!(
            OptIn::from_names(&[wirespan_config::OPT_IN_ALL]),
            OptIn::ALL
        );
        assert_eq!(OptIn::from_names::<&str>(&[]), OptIn::default());
    }

    #[test]
    fn server_span_follows_http_conventions() {
        let span = build(
            Role::Server,
            &exchange("GET", "/users/42?q=1", Some(503)),
            &["/users/{id}".to_string()],
        );
        assert_eq!(span.span.name, "GET /users/{id}");
        assert_eq!(span.span.kind, span::SpanKind::Server as i32);
        assert_eq!(span.span.start_time_unix_nano, 1_001_000);
        assert_eq!(span.span.end_time_unix_nano, 1_003_000);
        assert_eq!(attr(&span, "http.request.method"), s("GET"));
        assert_eq!(attr(&span, "url.path"), s("/users/42"));
        assert_eq!(attr(&span, "url.query"), s("q=1"));
        assert_eq!(attr(&span, "http.route"), s("/users/{id}"));
        assert_eq!(attr(&span, "http.response.status_code"), i(503));
        assert_eq!(attr(&span, "server.address"), s("shop.example"));
        assert_eq!(attr(&span, "server.port"), i(8080));
        assert_eq!(attr(&span, "client.address"), s("10.0.0.2"));
        assert_eq!(attr(&span, "client.port"), i(40000));
        assert_eq!(attr(&span, "network.peer.address"), s("10.0.0.2"));
        assert_eq!(attr(&span, "service.peer.name"), s("frontend"));
        assert_eq!(attr(&span, "http.response.body.size"), i(42));
        assert_eq!(attr(&span, "error.type"), s("503"));
        assert!(attr(&span, "url.full").is_none());
        assert_eq!(
            span.span.status.as_ref().map(|st| st.code),
            Some(status::StatusCode::Error as i32)
        );
    }

    #[test]
    fn client_span_has_url_full_and_errors_from_400() {
        let span = build(Role::Client, &exchange("FOO", "/x", Some(404)), &[]);
        assert_eq!(span.span.name, "_OTHER");
        assert_eq!(span.span.kind, span::SpanKind::Client as i32);
        assert_eq!(attr(&span, "http.request.method_original"), s("FOO"));
        assert_eq!(attr(&span, "url.full"), s("http://shop.example:8080/x"));
        assert_eq!(attr(&span, "error.type"), s("404"));
        let ok = build(Role::Client, &exchange("GET", "/x", Some(200)), &[]);
        assert!(attr(&ok, "error.type").is_none());
        assert_eq!(ok.span.status.as_ref().map(|st| st.code), Some(0));
        let none = build(Role::Client, &exchange("GET", "/x", None), &[]);
        assert_eq!(attr(&none, "error.type"), s("no_response"));
    }

    #[test]
    fn grpc_spans_use_rpc_conventions() {
        let mut ex = exchange("POST", "/shop.Cart/AddItem", Some(200));
        ex.request
            .set(RequestField::ContentType, Some("application/grpc"));
        ex.request.version = HttpVersion::Http2;
        if let Some(r) = ex.response.as_mut() {
            r.grpc_status = Some(5);
            r.grpc_message = Some("no%20such%20cart".into());
        }
        let server = build(Role::Server, &ex, &[]);
        assert_eq!(server.span.name, "shop.Cart/AddItem");
        assert_eq!(attr(&server, "rpc.system.name"), s("grpc"));
        assert_eq!(attr(&server, "rpc.method"), s("shop.Cart/AddItem"));
        assert_eq!(attr(&server, "rpc.response.status_code"), s("NOT_FOUND"));
        assert_eq!(attr(&server, "network.protocol.version"), s("2"));
        // NOT_FOUND is not a server error; it is a client error.
        assert_eq!(server.span.status.as_ref().map(|st| st.code), Some(0));
        let client = build(Role::Client, &ex, &[]);
        assert_eq!(client.span.status.as_ref().map(|st| st.code), Some(2));
        assert_eq!(
            client.span.status.as_ref().map(|st| st.message.as_str()),
            Some("no such cart")
        );
        assert_eq!(attr(&client, "error.type"), s("NOT_FOUND"));
    }

    /// HTTP/2 joined midway: unknown fields are left out (never empty), one
    /// attribute names them, gRPC recognised from the wire gets the RPC
    /// conventions with what is known, and no error is made up.
    #[test]
    fn joined_midway_unknowns_are_omitted_and_named_once() {
        let mut add = exchange("POST", "", Some(200));
        add.request.version = HttpVersion::Http2;
        add.request.set(RequestField::Authority, None);
        add.headers_incomplete = true;
        add.grpc_by_wire = true;
        for u in [
            UnknownFields::PATH,
            UnknownFields::REQUEST_HEADERS,
            UnknownFields::GRPC_STATUS,
        ] {
            add.unknown.insert(u);
        }
        for role in [Role::Client, Role::Server] {
            let span = build(role, &add, &["/{x}".to_string()]);
            assert_eq!(span.span.name, "POST", "{role:?}");
            assert!(attr(&span, "url.path").is_none());
            assert!(attr(&span, "url.full").is_none());
            assert!(attr(&span, "http.route").is_none());
            assert!(attr(&span, "rpc.method").is_none());
            assert!(attr(&span, "rpc.response.status_code").is_none());
            assert!(attr(&span, "error.type").is_none());
            assert_eq!(attr(&span, "rpc.system.name"), s("grpc"));
            assert_eq!(attr(&span, "http.request.method"), s("POST"));
            assert_eq!(attr(&span, "http.response.status_code"), i(200));
            let expected = if role == Role::Client {
                "url.path,url.full,rpc.method,http.request.header,rpc.response.status_code"
            } else {
                "url.path,rpc.method,http.request.header,rpc.response.status_code"
            };
            assert_eq!(attr(&span, UNKNOWN_FIELDS_ATTR), s(expected));
            assert_eq!(span.span.status.as_ref().map(|st| st.code), Some(0));
            // One attribute, once.
            let n = span
                .attributes()
                .iter()
                .filter(|a| a.key.starts_with("wirespan.capture"))
                .count();
            assert_eq!(n, 1);
        }

        let mut remove = add.clone();
        remove
            .request
            .set(RequestField::Target, Some("/shop.Cart/Remove"));
        remove.unknown = UnknownFields::default();
        remove.unknown.insert(UnknownFields::GRPC_STATUS);
        let span = build(Role::Client, &remove, &[]);
        assert_eq!(span.span.name, "shop.Cart/Remove");
        assert_eq!(attr(&span, "rpc.method"), s("shop.Cart/Remove"));
        assert_eq!(attr(&span, "url.path"), s("/shop.Cart/Remove"));
        assert_eq!(
            attr(&span, UNKNOWN_FIELDS_ATTR),
            s("rpc.response.status_code")
        );

        // Method and status unknown on plain HTTP/2.
        let mut plain = exchange("", "/x", Some(0));
        plain.request.version = HttpVersion::Http2;
        plain.headers_incomplete = true;
        plain.unknown.insert(UnknownFields::METHOD);
        plain.unknown.insert(UnknownFields::STATUS);
        plain.unknown.insert(UnknownFields::GRPC_STATUS);
        let span = build(Role::Client, &plain, &[]);
        assert_eq!(span.span.name, "HTTP");
        assert!(attr(&span, "http.request.method").is_none());
        assert!(attr(&span, "http.request.method_original").is_none());
        assert!(attr(&span, "http.response.status_code").is_none());
        assert!(attr(&span, "rpc.system.name").is_none());
        assert!(attr(&span, "error.type").is_none());
        assert_eq!(
            attr(&span, UNKNOWN_FIELDS_ATTR),
            s("http.request.method,http.response.status_code,http.response.header")
        );
        // Seen from the start: no such attribute.
        let whole = build(Role::Client, &exchange("GET", "/x", Some(200)), &[]);
        assert!(attr(&whole, UNKNOWN_FIELDS_ATTR).is_none());
    }

    #[test]
    fn secrets_in_the_query_are_redacted_everywhere() {
        let mut table = ProcessTable::new(Vec::new(), "host".into());
        let process = table.on_exec(ProcessFacts {
            pid: 7,
            exe_path: "/usr/bin/shop".into(),
            ..Default::default()
        });
        let c = conn(Role::Client);
        let mut b = SpanBuilder::new(IdGenerator::with_seed(1), RouteTable::default())
            .with_redaction(crate::redact::QueryRedactor::new(&["api_key".to_string()]));
        let span = b.build(
            &SpanContext {
                conn: &c,
                process: &process,
                peer_service: None,
                clock_offset_ns: 0,
                scheme: "http",
                link: None,
                fixed: None,
            },
            &exchange("GET", "/x?q=1&API_KEY=hunter2", Some(200)),
        );
        assert_eq!(attr(&span, "url.query"), s("q=1&API_KEY=REDACTED"));
        assert_eq!(
            attr(&span, "url.full"),
            s("http://shop.example:8080/x?q=1&API_KEY=REDACTED")
        );
        let text = format!("{:?}", span.attributes());
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn templated_span_names_only_when_asked_and_no_route() {
        let mut table = ProcessTable::new(Vec::new(), "host".into());
        let process = table.on_exec(ProcessFacts {
            pid: 7,
            exe_path: "/usr/bin/shop".into(),
            ..Default::default()
        });
        let c = conn(Role::Server);
        let ctx = SpanContext {
            conn: &c,
            process: &process,
            peer_service: None,
            clock_offset_ns: 0,
            scheme: "http",
            link: None,
            fixed: None,
        };
        let ex = exchange("GET", "/users/42/cart", Some(200));
        let mut b = SpanBuilder::new(IdGenerator::with_seed(1), RouteTable::default())
            .with_templated_names(true);
        let span = b.build(&ctx, &ex);
        assert_eq!(span.span.name, "GET /users/{id}/cart");
        assert!(attr(&span, "http.route").is_none());
        let mut plain = SpanBuilder::new(IdGenerator::with_seed(1), RouteTable::default());
        assert_eq!(plain.build(&ctx, &ex).span.name, "GET");
    }

    #[test]
    fn traceparent_joins_the_callers_trace() {
        let mut ex = exchange("GET", "/", Some(200));
        ex.request.set(
            RequestField::Traceparent,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        ex.request.set(RequestField::Tracestate, Some("vendor=1"));
        let span = build(Role::Server, &ex, &[]);
        assert_eq!(span.span.trace_id[0], 0x4b);
        assert_eq!(
            span.span.parent_span_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(span.span.trace_state, "vendor=1");
    }

    #[test]
    fn ids_are_nonzero_and_distinct() {
        let mut g = IdGenerator::with_seed(7);
        let a = g.span_id();
        let b = g.span_id();
        assert_ne!(a, b);
        assert_ne!(a, [0; 8]);
        assert_ne!(g.trace_id(), g.trace_id());
    }
}
