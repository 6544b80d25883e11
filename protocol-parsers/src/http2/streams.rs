//! Open streams of one HTTP/2 connection and how they become
//! [`HttpExchange`]s: which header fields are kept, trailers and gRPC status,
//! informational responses, and every way a stream can end.
//!
//! Knows nothing about bytes or frames: the session hands it decoded events.

use super::grpc_wire::{self, Framing, GrpcEvidence};
use crate::request_head::FieldBytes;
use crate::RequestField;

/// A (start, end) in a block's buffer, bounded by the 64 KiB header block.
fn span_of((start, end): (usize, usize)) -> (u32, u32) {
    (
        u32::try_from(start).unwrap_or(u32::MAX),
        u32::try_from(end).unwrap_or(u32::MAX),
    )
}
use crate::{
    ExchangeEnd, ExchangeSink, HttpExchange, HttpVersion, ParseIssue, RequestHead, ResponseHead,
    Side, UnknownFields,
};

/// The header fields spans use, collected while a block is decoded. The
/// request's text fields are kept as raw bytes end to end in one buffer and
/// become text once, in [`RequestHead::from_bytes`]; everything else is
/// dropped unseen.
#[derive(Debug, Default)]
pub(super) struct Fields {
    /// Raw values of the request fields kept, where `spans` says.
    raw: Vec<u8>,
    /// Where each [`RequestField`] is in `raw`, if seen.
    spans: [Option<(u32, u32)>; RequestField::COUNT],
    status: Option<u16>,
    grpc_status: Option<u32>,
    grpc_message: Option<String>,
    /// Fields that referenced unknown dynamic entries (joined midway).
    pub unknown_refs: u32,
}

/// A header field spans use.
enum Kept {
    Request(RequestField),
    Status,
    GrpcStatus,
    GrpcMessage,
}

/// The one list of the fields kept, by name.
fn kept(name: &[u8]) -> Option<Kept> {
    Some(match name {
        b":method" => Kept::Request(RequestField::Method),
        b":path" => Kept::Request(RequestField::Target),
        b":authority" => Kept::Request(RequestField::Authority),
        b":scheme" => Kept::Request(RequestField::Scheme),
        b"user-agent" => Kept::Request(RequestField::UserAgent),
        b"content-type" => Kept::Request(RequestField::ContentType),
        b"traceparent" => Kept::Request(RequestField::Traceparent),
        b"tracestate" => Kept::Request(RequestField::Tracestate),
        b":status" => Kept::Status,
        b"grpc-status" => Kept::GrpcStatus,
        b"grpc-message" => Kept::GrpcMessage,
        _ => return None,
    })
}

fn number<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

impl Fields {
    /// Whether a field of this name is kept: the HPACK decoder does not
    /// even decode the others' values where it need not ([`super::hpack::
    /// Decoder::decode_wanted`]).
    pub fn wants(name: &[u8]) -> bool {
        kept(name).is_some()
    }

    pub fn on_field(&mut self, name: &[u8], value: &[u8]) {
        let field = match kept(name) {
            Some(Kept::Request(f)) => f,
            Some(Kept::Status) if self.status.is_none() => {
                self.status = number(value);
                return;
            }
            Some(Kept::GrpcStatus) => {
                self.grpc_status = number(value);
                return;
            }
            Some(Kept::GrpcMessage) => {
                self.grpc_message = Some(String::from_utf8_lossy(value).into_owned());
                return;
            }
            Some(Kept::Status) | None => return,
        };
        if self.raw.is_empty() {
            // Room for a usual request's fields, so they are not regrown.
            self.raw.reserve(192);
        }
        let slot = self.spans[field as usize];
        match slot {
            None => self.spans[field as usize] = Some(self.push(value)),
            // W3C trace context: several tracestate fields join with commas
            // (a comma ends any invalid sequence, so converting the joined
            // bytes replaces what converting each one would). Moved to the
            // end first unless it is there: at most once per other field.
            Some((start, end)) if field == RequestField::Tracestate => {
                let (start, end) = (start as usize, end as usize);
                let joined = if end == self.raw.len() {
                    self.raw.extend_from_slice(b",");
                    self.raw.extend_from_slice(value);
                    (start, self.raw.len())
                } else {
                    let at = self.raw.len();
                    self.raw.extend_from_within(start..end);
                    self.raw.extend_from_slice(b",");
                    self.raw.extend_from_slice(value);
                    (at, self.raw.len())
                };
                self.spans[field as usize] = Some(span_of(joined));
            }
            // First occurrence wins.
            Some(_) => {}
        }
    }

    /// Appends `value` to `raw`; where it is.
    fn push(&mut self, value: &[u8]) -> (u32, u32) {
        let start = self.raw.len();
        self.raw.extend_from_slice(value);
        span_of((start, self.raw.len()))
    }

    fn get(&self, field: RequestField) -> Option<&[u8]> {
        let (s, e) = self.spans[field as usize]?;
        self.raw.get(s as usize..e as usize)
    }

    fn has(&self, field: RequestField) -> bool {
        self.spans[field as usize].is_some()
    }

    fn incomplete(&self) -> bool {
        self.unknown_refs > 0
    }

    /// Which fields of a request header block are unknown: each required
    /// pseudo-header that is absent accounts for one unknown reference;
    /// references left over were other fields.
    fn request_unknown(&self) -> UnknownFields {
        let mut u = UnknownFields::default();
        if !self.incomplete() {
            return u;
        }
        let mut left = self.unknown_refs;
        if !self.has(RequestField::Method) {
            u.insert(UnknownFields::METHOD);
            left = left.saturating_sub(1);
        }
        if !self.has(RequestField::Target) && self.get(RequestField::Method) != Some(b"CONNECT") {
            u.insert(UnknownFields::PATH);
            left = left.saturating_sub(1);
        }
        if left > 0 {
            u.insert(UnknownFields::REQUEST_HEADERS);
        }
        u
    }

    /// The same for a response block: `first` for the response head (or a
    /// trailers-only response), `last` when it ends the stream.
    fn response_unknown(&self, first: bool, last: bool) -> UnknownFields {
        let mut u = UnknownFields::default();
        if !self.incomplete() {
            return u;
        }
        let mut left = self.unknown_refs;
        if first && self.status.is_none() {
            u.insert(UnknownFields::STATUS);
            left = left.saturating_sub(1);
        }
        if last && self.grpc_status.is_none() {
            u.insert(UnknownFields::GRPC_STATUS);
        }
        if left > 0 {
            u.insert(UnknownFields::RESPONSE_HEADERS);
        }
        u
    }

    fn into_request(self) -> RequestHead {
        let mut fields: FieldBytes<'_> = [None; RequestField::COUNT];
        for (slot, span) in fields.iter_mut().zip(self.spans) {
            *slot = span.and_then(|(s, e)| self.raw.get(s as usize..e as usize));
        }
        RequestHead::from_bytes(&fields, HttpVersion::Http2)
    }

    fn into_response(self) -> ResponseHead {
        ResponseHead {
            // 0 when :status could not be decoded (or was absent).
            status: self.status.unwrap_or(0),
            version: HttpVersion::Http2,
            content_type: self
                .get(RequestField::ContentType)
                .map(|v| String::from_utf8_lossy(v).into()),
            grpc_status: self.grpc_status,
            grpc_message: self.grpc_message,
        }
    }
}

#[derive(Debug)]
struct Stream {
    id: u32,
    request: RequestHead,
    response: Option<ResponseHead>,
    request_body: u64,
    response_body: u64,
    request_start_ns: u64,
    request_end_ns: u64,
    /// Last request-side activity, used as the request end if it never ended.
    request_last_ns: u64,
    request_ended: bool,
    response_start_ns: u64,
    response_end_ns: u64,
    incomplete: bool,
    unknown: UnknownFields,
    /// The request's `content-type` may have been among the unknown fields.
    content_type_unknown: bool,
    grpc: GrpcEvidence,
}

/// Open streams, bounded by `max`. A `Vec` with linear search: a few open
/// streams is the common case and 256 is the default bound.
#[derive(Debug)]
pub(super) struct Streams {
    open: Vec<Stream>,
    /// Bytes of the open streams' request heads' text.
    head_bytes: usize,
    max: usize,
    /// Highest client stream id opened: request HEADERS at or below it for a
    /// stream we no longer track are trailers of a finished stream.
    max_client_id: u32,
}

impl Streams {
    pub fn new(max: usize) -> Self {
        Streams {
            open: Vec::new(),
            head_bytes: 0,
            max,
            max_client_id: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Bytes of the open streams' request heads.
    pub fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    fn push(&mut self, s: Stream) {
        self.head_bytes += s.request.text().len();
        self.open.push(s);
    }

    /// Takes the stream at `pos` out, order not kept.
    fn take(&mut self, pos: usize) -> Stream {
        let s = self.open.swap_remove(pos);
        self.untrack(&s);
        s
    }

    /// `s` has left `open`: its head no longer counts.
    fn untrack(&mut self, s: &Stream) {
        self.head_bytes = self.head_bytes.saturating_sub(s.request.text().len());
    }

    fn find(&mut self, id: u32) -> Option<&mut Stream> {
        self.open.iter_mut().find(|s| s.id == id)
    }

    fn insert(&mut self, s: Stream, sink: &mut impl ExchangeSink) {
        if self.open.len() >= self.max {
            sink.issue(ParseIssue::Http2TooManyStreams);
            return;
        }
        self.push(s);
    }

    /// Stream 1 after an h2c upgrade: the HTTP/1.1 request, already complete.
    pub fn open_upgraded(&mut self, request: RequestHead, ts: u64) {
        self.max_client_id = 1;
        self.push(new_stream(1, request, ts, ts, true));
    }

    /// A complete header block on `id`.
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is one field of the frame, named at the call"
    )]
    pub fn on_headers(
        &mut self,
        side: Side,
        id: u32,
        fields: Fields,
        end_stream: bool,
        start_ts: u64,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) {
        match side {
            Side::Request => {
                if let Some(s) = self.find(id) {
                    // Request trailers: nothing kept but the timing.
                    s.incomplete |= fields.incomplete();
                    if fields.incomplete() {
                        s.unknown.insert(UnknownFields::REQUEST_HEADERS);
                    }
                    s.grpc.request_trailers = true;
                    s.request_last_ns = ts;
                    if end_stream {
                        s.request_ended = true;
                        s.request_end_ns = ts;
                    }
                    return;
                }
                if id <= self.max_client_id {
                    return; // trailers of a stream that already finished
                }
                if !fields.has(RequestField::Method)
                    && !fields.has(RequestField::Target)
                    && (end_stream || !fields.incomplete())
                {
                    // Trailers of a stream opened before we joined midway
                    // (trailers always end the stream; a request block with
                    // unknown fields that does not is a request).
                    return;
                }
                self.max_client_id = id;
                let incomplete = fields.incomplete();
                let unknown = fields.request_unknown();
                let content_type_unknown = incomplete && !fields.has(RequestField::ContentType);
                let mut s = new_stream(id, fields.into_request(), start_ts, ts, end_stream);
                s.incomplete = incomplete;
                s.unknown = unknown;
                s.content_type_unknown = content_type_unknown;
                if self.open.len() < self.max {
                    sink.request_started(&s.request, u64::from(id));
                }
                self.insert(s, sink);
            }
            Side::Response => {
                let Some(s) = self.find(id) else {
                    sink.issue(ParseIssue::UnpairedResponse);
                    return;
                };
                s.incomplete |= fields.incomplete();
                s.grpc.grpc_field_decoded |=
                    fields.grpc_status.is_some() || fields.grpc_message.is_some();
                match &mut s.response {
                    Some(r) => {
                        // Trailers (gRPC puts its status here).
                        s.grpc.response_trailers = true;
                        s.unknown.insert(fields.response_unknown(false, end_stream));
                        if fields.grpc_status.is_some() {
                            r.grpc_status = fields.grpc_status;
                        }
                        if fields.grpc_message.is_some() {
                            r.grpc_message = fields.grpc_message;
                        }
                    }
                    None => {
                        let informational =
                            fields.status.is_some_and(|st| (100..200).contains(&st));
                        // 1xx heads are not the response; the final one follows.
                        if informational && !end_stream && fields.incomplete() {
                            s.unknown.insert(UnknownFields::RESPONSE_HEADERS);
                        }
                        if !informational || end_stream {
                            s.unknown.insert(fields.response_unknown(true, end_stream));
                            s.response = Some(fields.into_response());
                            s.response_start_ns = start_ts;
                        }
                    }
                }
                if end_stream {
                    s.response_end_ns = ts;
                    self.finish(id, ExchangeEnd::Complete, ts, sink);
                }
            }
        }
    }

    /// PUSH_PROMISE: the server opens `promised` with a request it made up.
    pub fn on_push_promise(
        &mut self,
        promised: u32,
        fields: Fields,
        start_ts: u64,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) {
        if promised == 0 || self.find(promised).is_some() {
            return;
        }
        let incomplete = fields.incomplete();
        let unknown = fields.request_unknown();
        let mut s = new_stream(promised, fields.into_request(), start_ts, ts, true);
        s.incomplete = incomplete;
        s.unknown = unknown;
        self.insert(s, sink);
    }

    /// A DATA frame of `size` body bytes (padding excluded) starting with
    /// `prefix` (up to the gRPC prefix length).
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is one field of the frame, named at the call"
    )]
    pub fn on_data(
        &mut self,
        side: Side,
        id: u32,
        size: u64,
        prefix: &[u8],
        end_stream: bool,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) {
        let Some(s) = self.find(id) else { return };
        let framing = match side {
            Side::Request => &mut s.grpc.request_framing,
            Side::Response => &mut s.grpc.response_framing,
        };
        if *framing == Framing::NotSeen {
            *framing = grpc_wire::classify(prefix, size);
        }
        match side {
            Side::Request => {
                s.request_body += size;
                s.request_last_ns = ts;
                if end_stream {
                    s.request_ended = true;
                    s.request_end_ns = ts;
                }
            }
            Side::Response => {
                s.response_body += size;
                if end_stream {
                    s.response_end_ns = ts;
                    self.finish(id, ExchangeEnd::Complete, ts, sink);
                }
            }
        }
    }

    /// Emits stream `id` (if open) with `end`.
    pub fn finish(&mut self, id: u32, end: ExchangeEnd, ts: u64, sink: &mut impl ExchangeSink) {
        if let Some(pos) = self.open.iter().position(|s| s.id == id) {
            let s = self.take(pos);
            sink.exchange(into_exchange(s, end, ts));
        }
    }

    /// GOAWAY sent by `side`: streams the *other* peer opened above
    /// `last_stream_id` were not (and will not be) processed.
    pub fn on_goaway(&mut self, side: Side, last: u32, ts: u64, sink: &mut impl ExchangeSink) {
        // Client-initiated ids are odd, server-initiated (push) even.
        let peer_parity = match side {
            Side::Response => 1,
            Side::Request => 0,
        };
        self.finish_where(
            |s| s.id > last && s.id % 2 == peer_parity,
            ExchangeEnd::Reset,
            ts,
            sink,
        );
    }

    /// Emits every open stream with `end`, in stream id order.
    pub fn close_all(&mut self, end: ExchangeEnd, ts: u64, sink: &mut impl ExchangeSink) {
        self.finish_where(|_| true, end, ts, sink);
    }

    fn finish_where(
        &mut self,
        pred: impl Fn(&Stream) -> bool,
        end: ExchangeEnd,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) {
        self.open.sort_unstable_by_key(|s| s.id);
        let mut i = 0;
        while i < self.open.len() {
            if pred(&self.open[i]) {
                // In order (`remove`, not `take`): emitted by stream id.
                let s = self.open.remove(i);
                self.untrack(&s);
                sink.exchange(into_exchange(s, end, ts));
            } else {
                i += 1;
            }
        }
    }
}

fn new_stream(id: u32, request: RequestHead, start: u64, ts: u64, ended: bool) -> Stream {
    Stream {
        id,
        request,
        response: None,
        request_body: 0,
        response_body: 0,
        request_start_ns: start,
        request_end_ns: if ended { ts } else { 0 },
        request_last_ns: ts,
        request_ended: ended,
        response_start_ns: 0,
        response_end_ns: 0,
        incomplete: false,
        unknown: UnknownFields::default(),
        content_type_unknown: false,
        grpc: GrpcEvidence::default(),
    }
}

fn into_exchange(s: Stream, end: ExchangeEnd, ts: u64) -> HttpExchange {
    let path_known = !s.unknown.contains(UnknownFields::PATH);
    let grpc_by_wire =
        s.content_type_unknown && s.grpc.is_grpc(path_known.then_some(s.request.target()));
    HttpExchange {
        request: s.request,
        response: s.response,
        request_body_size: s.request_body,
        response_body_size: s.response_body,
        request_start_ns: s.request_start_ns,
        request_end_ns: if s.request_ended {
            s.request_end_ns
        } else {
            s.request_last_ns
        },
        response_start_ns: s.response_start_ns,
        // Complete: the END_STREAM data; otherwise the event that ended it.
        response_end_ns: if end == ExchangeEnd::Complete {
            s.response_end_ns
        } else {
            ts
        },
        stream_id: Some(s.id),
        ordinal: u64::from(s.id),
        end,
        headers_incomplete: s.incomplete,
        unknown: s.unknown,
        grpc_by_wire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_one_request_head() {
        let mut f = Fields::default();
        f.on_field(b"tracestate", b"a=1");
        f.on_field(b":method", b"GET");
        f.on_field(b":method", b"POST");
        f.on_field(b"tracestate", b"b=\xff");
        f.on_field(b":path", b"/p");
        f.on_field(b"tracestate", b"c=3");
        f.on_field(b"user-agent", b"ua\xc3");
        let h = f.into_request();
        assert_eq!((h.method(), h.target()), ("GET", "/p"));
        assert_eq!(h.tracestate(), Some("a=1,b=\u{fffd},c=3"));
        assert_eq!(h.user_agent(), Some("ua\u{fffd}"));
        assert_eq!(h.authority(), None);
    }
}
