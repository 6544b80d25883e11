//! One HTTP/1 connection: both directions' readers, the pairing queue, and
//! what ends the HTTP/1 part of a connection (close, 101, CONNECT tunnel).
//!
//! This is the glue: it turns reader events into queued requests and emitted
//! [`HttpExchange`]s, decides response body framing (which needs the request
//! method), and applies gaps. It does not look at bytes itself.

use super::body::BodyKind;
use super::head::{Framing, ParsedResponse};
use super::pairing::{Assigned, Pairing, PendingRequest};
use super::reader::{Event, GapOutcome, Reader};
use super::{Http1Limits, Upgrade};
use crate::exchange::{
    ExchangeEnd, ExchangeSink, HttpExchange, ParseIssue, RequestHead, ResponseHead, Side,
    BODY_AHEAD_MIN,
};

/// The response being received.
#[derive(Debug)]
struct InFlight {
    /// None for a response that answers no known request (still parsed, to stay in sync).
    req: Option<PendingRequest>,
    head: ResponseHead,
    start_ns: u64,
    /// Bytes of this response were lost (absorbed by its body).
    had_gap: bool,
}

/// Incremental HTTP/1 parser for one connection. Feed each direction's bytes
/// in stream order with [`on_data`](Self::on_data); exchanges and issues go to
/// the sink as soon as they are known.
///
/// Both directions share the caller's clock: pairing after a loss compares
/// request and response start timestamps (see the `pairing` module docs), so
/// the caller should feed the two directions in timestamp order.
#[derive(Debug)]
pub struct Http1Session {
    limits: Http1Limits,
    req: Reader,
    resp: Reader,
    pairing: Pairing,
    /// The queued request whose body the request reader is reading.
    req_body_of: Option<u64>,
    inflight: Option<InFlight>,
    upgrade: Option<Upgrade>,
    upgrade_request: Option<(RequestHead, u64)>,
    /// Response bytes that followed a 101 head in the same chunk.
    leftover: Vec<u8>,
    closed: bool,
}

impl Http1Session {
    pub fn new(limits: Http1Limits) -> Self {
        Http1Session {
            limits,
            req: Reader::new(true, limits.max_head_bytes),
            resp: Reader::new(false, limits.max_head_bytes),
            pairing: Pairing::default(),
            req_body_of: None,
            inflight: None,
            upgrade: None,
            upgrade_request: None,
            leftover: Vec::new(),
            closed: false,
        }
    }

    /// Bytes of one side, in stream order. `ts_ns` = timestamp of this chunk
    /// (caller's clock). Ignored after close or a protocol switch.
    pub fn on_data(&mut self, side: Side, ts_ns: u64, data: &[u8], sink: &mut impl ExchangeSink) {
        if self.closed || self.upgrade.is_some() {
            return;
        }
        let mut pos = 0;
        match side {
            Side::Request => {
                while let Some(ev) = self.req.step(data, &mut pos, ts_ns, sink) {
                    self.request_event(ev, sink);
                }
                if let Some(n) = self.req.body_skip_hint(BODY_AHEAD_MIN) {
                    sink.body_ahead(side, n);
                }
            }
            Side::Response => {
                while let Some(ev) = self.resp.step(data, &mut pos, ts_ns, sink) {
                    self.response_event(ev, ts_ns, sink);
                    if self.upgrade.is_some() {
                        // The rest of this chunk is the new protocol's.
                        self.leftover = data[pos..].to_vec();
                        return;
                    }
                }
                if let Some(n) = self.resp.body_skip_hint(BODY_AHEAD_MIN) {
                    sink.body_ahead(side, n);
                }
            }
        }
    }

    /// `len` bytes of `side` were lost (never delivered) at this point of the stream.
    pub fn on_gap(&mut self, side: Side, len: u64, ts_ns: u64, sink: &mut impl ExchangeSink) {
        if self.closed || self.upgrade.is_some() || len == 0 {
            return;
        }
        match side {
            Side::Request => match self.req.gap(len, sink) {
                GapOutcome::Ignored | GapOutcome::Absorbed => {}
                GapOutcome::Completed { decoded } => self.request_event(
                    Event::BodyDone {
                        decoded,
                        end_ns: ts_ns,
                    },
                    sink,
                ),
                GapOutcome::Desync { partial_body } => {
                    self.request_event(Event::Desync { partial_body }, sink)
                }
            },
            Side::Response => match self.resp.gap(len, sink) {
                // A gap inside a body of known length loses only body bytes,
                // which are never reported: sizes and timestamps stay exact, so
                // the exchange is complete (the loss itself is counted by the
                // connection tracker).
                GapOutcome::Ignored | GapOutcome::Absorbed => {}
                GapOutcome::Completed { decoded } => {
                    self.finish_response(decoded, ts_ns, ExchangeEnd::Complete, sink);
                }
                GapOutcome::Desync { partial_body } => {
                    self.response_event(Event::Desync { partial_body }, ts_ns, sink)
                }
            },
        }
    }

    /// The connection closed: finish a close-delimited response; emit requests
    /// still waiting as exchanges with end = ConnectionClosed (response None
    /// if no head). Later calls are ignored.
    pub fn on_close(&mut self, ts_ns: u64, sink: &mut impl ExchangeSink) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(id) = self.req_body_of.take() {
            let (seen, last) = (self.req.body_so_far(), self.req.last_ns());
            if let (Some(r), Some(seen)) = (self.request_mut(id), seen) {
                r.body_size = seen;
                r.end_ns = last;
            }
        }
        let resp_seen = self.resp.body_so_far().unwrap_or(0);
        self.req.close(sink);
        match self.resp.close(sink) {
            Some(decoded) => {
                let last = self.resp.last_ns();
                self.finish_response(decoded, last, ExchangeEnd::Complete, sink);
            }
            None => self.finish_response(resp_seen, ts_ns, ExchangeEnd::ConnectionClosed, sink),
        }
        for r in self.pairing.drain() {
            sink.exchange(r.without_response(ts_ns, ExchangeEnd::ConnectionClosed));
        }
    }

    /// Some(..) after a 101 Switching Protocols (or a 2xx answer to CONNECT):
    /// HTTP/1 parsing has stopped.
    pub fn upgrade(&self) -> Option<Upgrade> {
        self.upgrade
    }

    /// For an h2c Upgrade: the request head that asked for it and its
    /// request_start_ns (HTTP/2 stream 1 answers it). Taken once.
    pub fn take_upgrade_request(&mut self) -> Option<(RequestHead, u64)> {
        self.upgrade_request.take()
    }

    /// After an upgrade: the bytes of `side` that followed the switch in the
    /// chunk that carried it (for the response side, what the server sent
    /// right after the 101 head; the request side never has any, as the
    /// client only speaks the new protocol after receiving the 101). Taken once.
    pub fn take_leftover(&mut self, side: Side) -> Vec<u8> {
        match side {
            Side::Response => std::mem::take(&mut self.leftover),
            Side::Request => Vec::new(),
        }
    }

    /// Bytes currently buffered (partial heads, upgrade leftover): at most
    /// `max_head_bytes` per direction plus the leftover.
    pub fn buffered_bytes(&self) -> usize {
        self.req.buffered() + self.resp.buffered() + self.leftover.len()
    }

    /// What the connection table's memory bound counts: the bytes buffered,
    /// and the heads of requests waiting for their response in whole
    /// [`HELD_HEADS_STEP`](crate::HELD_HEADS_STEP)s (pipelining can queue
    /// `max_pending_requests` of them).
    pub fn held_bytes(&self) -> usize {
        let heads = self.pairing.head_bytes();
        self.buffered_bytes() + heads - heads % crate::HELD_HEADS_STEP
    }

    fn request_mut(&mut self, id: u64) -> Option<&mut PendingRequest> {
        match &mut self.inflight {
            Some(InFlight { req: Some(r), .. }) if r.id == id => Some(r),
            _ => self.pairing.request_mut(id),
        }
    }

    fn request_event(&mut self, ev: Event, sink: &mut impl ExchangeSink) {
        match ev {
            Event::Request {
                parsed,
                start_ns,
                end_ns,
            } => {
                let is_connect = parsed.head.method() == "CONNECT";
                let kind = if is_connect {
                    BodyKind::None
                } else {
                    request_body(parsed.framing)
                };
                let has_body = self.req.begin_body(kind);
                if is_connect {
                    // Tunnel bytes may follow at once; they are not HTTP. The
                    // response decides (see `response_event`).
                    self.req.pause();
                }
                let pending = PendingRequest {
                    id: 0,
                    is_head: parsed.head.method() == "HEAD",
                    is_connect,
                    wants_h2c: parsed.wants_h2c,
                    head: parsed.head,
                    start_ns,
                    end_ns,
                    body_size: 0,
                };
                let busy = matches!(self.inflight, Some(InFlight { req: Some(_), .. }));
                let id = self
                    .pairing
                    .push(pending, self.limits.max_pending_requests, busy, sink);
                if let Some(id) = id {
                    if let Some(r) = self.request_mut(id) {
                        sink.request_started(&r.head, id);
                    }
                }
                self.req_body_of = id.filter(|_| has_body);
            }
            Event::BodyDone { decoded, end_ns } => {
                if let Some(id) = self.req_body_of.take() {
                    if let Some(r) = self.request_mut(id) {
                        r.body_size = decoded;
                        r.end_ns = end_ns;
                    }
                }
            }
            Event::Desync { partial_body } => {
                if let Some(id) = self.req_body_of.take() {
                    let last = self.req.last_ns();
                    if let (Some(r), Some(seen)) = (self.request_mut(id), partial_body) {
                        r.body_size = seen;
                        r.end_ns = last;
                    }
                }
                self.pairing.push_lost();
            }
            Event::Response { .. } => {}
        }
    }

    fn response_event(&mut self, ev: Event, ts_ns: u64, sink: &mut impl ExchangeSink) {
        match ev {
            Event::Response {
                parsed,
                start_ns,
                end_ns,
            } => self.response_head(parsed, start_ns, end_ns, sink),
            Event::BodyDone { decoded, end_ns } => {
                self.finish_response(decoded, end_ns, ExchangeEnd::Complete, sink)
            }
            Event::Desync { partial_body } => {
                // The response in progress is cut short; how many whole
                // responses went with it is unknown (see `pairing`).
                self.finish_response(partial_body.unwrap_or(0), ts_ns, ExchangeEnd::Gap, sink);
                self.pairing.mark_responses_lost();
            }
            Event::Request { .. } => {}
        }
    }

    fn response_head(
        &mut self,
        parsed: ParsedResponse,
        start_ns: u64,
        end_ns: u64,
        sink: &mut impl ExchangeSink,
    ) {
        let status = parsed.head.status;
        if (100..200).contains(&status) && status != 101 {
            // Interim (e.g. 100 Continue): the final response is still to come.
            self.resp.begin_body(BodyKind::None);
            return;
        }
        if self.inflight.is_some() {
            // Not expected (a body ends before the next head); be safe.
            self.finish_response(0, start_ns, ExchangeEnd::Gap, sink);
        }
        let req = match self.pairing.assign(start_ns, sink) {
            Assigned::Request(r) => Some(r),
            Assigned::Overflowed | Assigned::Unpaired => None,
        };
        let (is_head, is_connect) = req
            .as_ref()
            .map_or((false, false), |r| (r.is_head, r.is_connect));
        if status == 101 || (is_connect && (200..300).contains(&status)) {
            self.switch_protocols(req, parsed.head, start_ns, end_ns, sink);
            return;
        }
        // Any other final response ends a pending CONNECT's wait: if it was
        // refused, the client may send requests again.
        self.req.resume();
        let kind = if is_head || status == 204 || status == 304 {
            BodyKind::None
        } else {
            response_body(parsed.framing)
        };
        let has_body = self.resp.begin_body(kind);
        self.inflight = Some(InFlight {
            req,
            head: parsed.head,
            start_ns,
            had_gap: false,
        });
        if !has_body {
            self.finish_response(0, end_ns, ExchangeEnd::Complete, sink);
        }
    }

    fn switch_protocols(
        &mut self,
        req: Option<PendingRequest>,
        head: ResponseHead,
        start_ns: u64,
        end_ns: u64,
        sink: &mut impl ExchangeSink,
    ) {
        sink.issue(ParseIssue::ProtocolUpgrade);
        let h2c = head.status == 101 && req.as_ref().is_some_and(|r| r.wants_h2c);
        self.upgrade = Some(if h2c { Upgrade::H2c } else { Upgrade::Other });
        if let (true, Some(r)) = (h2c, &req) {
            // h2c: HTTP/2 stream 1 carries this request's real response, so the
            // request is handed over (take_upgrade_request) instead of being
            // reported here with its 101, which would make two spans of one call.
            self.upgrade_request = Some((r.head.clone(), r.start_ns));
        } else {
            self.inflight = Some(InFlight {
                req,
                head,
                start_ns,
                had_gap: false,
            });
            self.finish_response(0, end_ns, ExchangeEnd::Complete, sink);
        }
        self.req.stop();
        self.resp.stop();
        // Requests queued behind the switch are never answered over HTTP/1.
        for r in self.pairing.drain() {
            sink.exchange(r.without_response(end_ns, ExchangeEnd::ConnectionClosed));
        }
    }

    /// Emits the response in flight (if it answers a known request).
    fn finish_response(
        &mut self,
        body: u64,
        end_ns: u64,
        end: ExchangeEnd,
        sink: &mut impl ExchangeSink,
    ) {
        let Some(f) = self.inflight.take() else {
            return;
        };
        let Some(mut r) = f.req else {
            return;
        };
        if self.req_body_of == Some(r.id) {
            // Answered before the request body ended (early response, or the
            // connection closed): report the request as seen so far.
            self.req_body_of = None;
            if let Some(seen) = self.req.body_so_far() {
                r.body_size = seen;
                r.end_ns = self.req.last_ns();
            }
        }
        let end = if f.had_gap && end == ExchangeEnd::Complete {
            ExchangeEnd::Gap
        } else {
            end
        };
        sink.exchange(HttpExchange {
            request: r.head,
            response: Some(f.head),
            request_body_size: r.body_size,
            response_body_size: body,
            request_start_ns: r.start_ns,
            request_end_ns: r.end_ns,
            response_start_ns: f.start_ns,
            response_end_ns: end_ns,
            stream_id: None,
            ordinal: r.id,
            end,
            headers_incomplete: false,
            unknown: Default::default(),
            grpc_by_wire: false,
        });
    }
}

/// A request without Content-Length or chunked framing has no body
/// (RFC 9112 6.3); a non-chunked Transfer-Encoding cannot be delimited, so it
/// is treated the same way and resync handles what follows.
fn request_body(f: Framing) -> BodyKind {
    if f.chunked {
        BodyKind::Chunked
    } else if f.transfer_encoding {
        BodyKind::None
    } else {
        f.content_length.map_or(BodyKind::None, BodyKind::Length)
    }
}

/// A response without Content-Length or chunked framing lasts until close.
fn response_body(f: Framing) -> BodyKind {
    if f.chunked {
        BodyKind::Chunked
    } else if f.transfer_encoding {
        BodyKind::UntilClose
    } else {
        f.content_length
            .map_or(BodyKind::UntilClose, BodyKind::Length)
    }
}
