//! What the protocol parsers produce: one request/response pair, and the issues
//! they count. Shared by HTTP/1 and HTTP/2 so span building does not care which.
//! A request head's text fields are one shared string ([`RequestHead`], in
//! `request_head.rs`).

pub use crate::request_head::{RequestField, RequestHead};

/// Which half of a connection a byte stream is: the requests (client to server)
/// or the responses (server to client). The connection tracker maps egress and
/// ingress onto these from the connection's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Request,
    Response,
}

/// HTTP version seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

impl HttpVersion {
    /// The value of `network.protocol.version`.
    pub fn as_otel(&self) -> &'static str {
        match self {
            HttpVersion::Http10 => "1.0",
            HttpVersion::Http11 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

/// The parts of a response head that spans use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: HttpVersion,
    /// Shared, not a `String`: a head reused from `http1::recent` is cloned
    /// at every hit, and this was its only allocation.
    pub content_type: Option<std::sync::Arc<str>>,
    /// `grpc-status` from the trailers (or a trailers-only response).
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeEnd {
    /// The whole response was seen.
    Complete,
    /// The connection closed before the response completed.
    ConnectionClosed,
    /// The stream was reset (HTTP/2 RST_STREAM) or the connection went away (GOAWAY).
    Reset,
    /// Bytes were lost (a gap) inside the response; the end is approximate.
    Gap,
}

/// One request paired with its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpExchange {
    pub request: RequestHead,
    /// None when the connection ended before any response head.
    pub response: Option<ResponseHead>,
    /// Body bytes after decoding transfer framing (chunk sizes excluded).
    pub request_body_size: u64,
    pub response_body_size: u64,
    /// Timestamp (the caller's clock, ns) of the data carrying the first request byte.
    pub request_start_ns: u64,
    /// Timestamp of the data carrying the last request byte.
    pub request_end_ns: u64,
    /// Timestamp of the data carrying the first response byte (0 without a response).
    pub response_start_ns: u64,
    /// Timestamp of the data carrying the last response byte (or of the end event).
    pub response_end_ns: u64,
    /// HTTP/2 stream id; None for HTTP/1.
    pub stream_id: Option<u32>,
    /// Which request of the connection this is: HTTP/1, its 1-based position
    /// among the requests queued on the connection (requests dropped by the
    /// pending limit take no number); HTTP/2, its stream id. Both ends of a
    /// connection number requests alike, and [`ExchangeSink::request_started`]
    /// gives the same number when the request head is first parsed.
    pub ordinal: u64,
    pub end: ExchangeEnd,
    /// HTTP/2 only: some header fields could not be decoded because the agent
    /// joined after the HPACK dynamic table was built; those fields are absent.
    pub headers_incomplete: bool,
    /// HTTP/2 only: which of the fields spans use were present on the wire but
    /// could not be decoded (joined midway). Empty when `headers_incomplete`
    /// is false.
    pub unknown: UnknownFields,
    /// HTTP/2 only: `content-type` could not be decoded, and the wire says
    /// this stream is gRPC anyway (see [`crate::http2::grpc_wire`]).
    pub grpc_by_wire: bool,
}

/// Fields of an exchange that were sent but could not be decoded, because the
/// agent joined an HTTP/2 connection after the HPACK dynamic table entries
/// they reference were made. A small bit set; `Default` is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UnknownFields(u8);

impl UnknownFields {
    /// `:method` (required in every request).
    pub const METHOD: Self = Self(1);
    /// `:path` (required in every non-CONNECT request): path and query.
    pub const PATH: Self = Self(1 << 1);
    /// Some other request header fields (which ones cannot be known: a
    /// reference to an unknown entry carries neither name nor value).
    pub const REQUEST_HEADERS: Self = Self(1 << 2);
    /// `:status` (required in every response).
    pub const STATUS: Self = Self(1 << 3);
    /// Some other response header or trailer fields.
    pub const RESPONSE_HEADERS: Self = Self(1 << 4);
    /// The response's final header block (trailers, or a trailers-only
    /// response) had undecodable fields and no decodable `grpc-status`: on a
    /// gRPC stream the status is one of them.
    pub const GRPC_STATUS: Self = Self(1 << 5);

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn contains(&self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

/// A counted parser event: everything a parser skips, rejects or cannot pair.
/// `label()` is the `reason` label in /metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseIssue {
    /// Bytes that could not be parsed as the expected protocol.
    MalformedHead,
    /// A head larger than the configured limit.
    HeadTooLarge,
    /// A response with no request waiting for it.
    UnpairedResponse,
    /// A request dropped because too many were waiting (pipelining limit).
    PendingOverflow,
    /// A gap forced the parser to look for the next message boundary.
    ResyncAfterGap,
    /// Bytes skipped while looking for a message boundary.
    ResyncSkippedBytes(u64),
    /// Malformed chunked body framing.
    MalformedChunk,
    /// A connection switched protocols (101); parsing stops for it.
    ProtocolUpgrade,
    /// HTTP/2 frame-level error; parsing stops for the connection.
    Http2FrameError,
    /// HTTP/2 HPACK decoding error.
    HpackError,
    /// HTTP/2 header field that referenced a dynamic-table entry from before the
    /// agent joined the connection.
    HpackUnknownIndex,
    /// HTTP/2 stream limit reached; the new stream is not tracked.
    Http2TooManyStreams,
    /// On a connection joined midway, this many references to HPACK
    /// dynamic-table entries resolved (entries inserted after the join): not
    /// a problem, counted to show the table being learnt.
    HpackMidstreamResolved(u64),
}

impl ParseIssue {
    pub fn label(&self) -> &'static str {
        match self {
            ParseIssue::MalformedHead => "malformed_head",
            ParseIssue::HeadTooLarge => "head_too_large",
            ParseIssue::UnpairedResponse => "unpaired_response",
            ParseIssue::PendingOverflow => "pending_overflow",
            ParseIssue::ResyncAfterGap => "resync_after_gap",
            ParseIssue::ResyncSkippedBytes(_) => "resync_skipped_bytes",
            ParseIssue::MalformedChunk => "malformed_chunk",
            ParseIssue::ProtocolUpgrade => "protocol_upgrade",
            ParseIssue::Http2FrameError => "http2_frame_error",
            ParseIssue::HpackError => "hpack_error",
            ParseIssue::HpackUnknownIndex => "hpack_unknown_index",
            ParseIssue::Http2TooManyStreams => "http2_too_many_streams",
            ParseIssue::HpackMidstreamResolved(_) => "hpack_midstream_resolved",
        }
    }
}

/// Where a parser puts what it finds. Implemented by the connection tracker.
pub trait ExchangeSink {
    fn exchange(&mut self, exchange: HttpExchange);
    fn issue(&mut self, issue: ParseIssue);
    /// A request head was parsed and queued; its exchange (with the same
    /// `ordinal`) follows once it is answered or ends. Called while the data
    /// that completed the head is being fed, so the caller knows which event
    /// (and thread) carried it. HTTP/1: when the head is queued; HTTP/2: when
    /// a stream's request header block is complete (not for pushed streams).
    fn request_started(&mut self, _head: &RequestHead, _ordinal: u64) {}
    /// The next `bytes` bytes of `side`, after the data just fed, are body
    /// the parser only counts: the caller may have them not copied, and
    /// deliver them as a gap. HTTP/1 only, for stretches of at least
    /// [`BODY_AHEAD_MIN`] bytes, once each.
    fn body_ahead(&mut self, _side: Side, _bytes: u64) {}
}

/// Smallest stretch of body worth a [`ExchangeSink::body_ahead`]: telling
/// the kernel costs a map update (a syscall), which copying this much costs
/// several times over.
pub const BODY_AHEAD_MIN: u64 = 32 * 1024;

/// A sink that keeps everything, for tests and tools.
#[derive(Debug, Default)]
pub struct CollectingSink {
    pub exchanges: Vec<HttpExchange>,
    pub issues: Vec<ParseIssue>,
    /// (request target, ordinal) of every `request_started`, in order.
    pub started: Vec<(String, u64)>,
    /// Every `body_ahead`, in order.
    pub body_ahead: Vec<(Side, u64)>,
}

impl ExchangeSink for CollectingSink {
    fn request_started(&mut self, head: &RequestHead, ordinal: u64) {
        self.started.push((head.target().to_owned(), ordinal));
    }
    fn exchange(&mut self, exchange: HttpExchange) {
        self.exchanges.push(exchange);
    }
    fn issue(&mut self, issue: ParseIssue) {
        self.issues.push(issue);
    }
    fn body_ahead(&mut self, side: Side, bytes: u64) {
        self.body_ahead.push((side, bytes));
    }
}
