//! One connection's parsing state: detection, then the HTTP/1 or HTTP/2 parser,
//! or nothing (muted). Maps directions to parser sides from the role and hands
//! an HTTP/1 connection over to HTTP/2 after an h2c upgrade.

use protocol_parsers::{ExchangeSink, HttpExchange, ParseIssue, RequestHead, Side};

use crate::backend::{Http1Session, Http2Session, Upgrade};
use crate::detect_state::{Detecting, Verdict};
use crate::events::{TrackerEvent, TrackerSink};
use crate::ids::StreamOffset;
use crate::types::{ConnInfo, Direction, Protocol, Role, TrackerLimits};

/// Which parser a connection has.
pub(crate) enum Parser {
    Detecting(Detecting),
    Http1(Box<Http1Session>),
    Http2(Box<Http2Session>),
    /// Not parsed: bytes are only counted.
    Muted,
}

/// The parsing state of one connection generation.
pub(crate) struct Session {
    pub info: ConnInfo,
    parser: Parser,
    mute_sent: bool,
}

/// Adapts a [`TrackerSink`] to the parsers' [`ExchangeSink`] for one connection.
struct Fwd<'a, S> {
    info: &'a ConnInfo,
    sink: &'a mut S,
    /// While data is fed: its direction and the stream offset just after it,
    /// from which `body_ahead` counts. None when that offset is not this
    /// data's end (detection replaying an earlier prefix), and off data.
    end: Option<(Direction, u64)>,
}

impl<'a, S> Fwd<'a, S> {
    fn new(info: &'a ConnInfo, sink: &'a mut S) -> Self {
        Fwd {
            info,
            sink,
            end: None,
        }
    }
}

impl<S: TrackerSink> ExchangeSink for Fwd<'_, S> {
    fn exchange(&mut self, exchange: HttpExchange) {
        self.sink.exchange(self.info, exchange);
    }
    fn issue(&mut self, issue: ParseIssue) {
        self.sink.parse_issue(self.info, issue);
    }
    fn request_started(&mut self, head: &RequestHead, ordinal: u64) {
        self.sink.request_started(self.info, head, ordinal);
    }
    fn body_ahead(&mut self, side: Side, bytes: u64) {
        if let Some((dir, end)) = self.end {
            if self.info.role.side(dir) == Some(side) {
                let until = StreamOffset(end.saturating_add(bytes));
                self.sink.body_ahead(self.info, dir, until);
            }
        }
    }
}

// === impl Session ===

impl Session {
    pub(crate) fn new(mut info: ConnInfo) -> Session {
        info.protocol = Protocol::Undetected;
        let parser = Parser::Detecting(Detecting::new(info.joined_midway));
        Session {
            info,
            parser,
            mute_sent: false,
        }
    }

    /// Bytes held by the parser or the detection buffers, request heads
    /// waiting for their response and HTTP/2's HPACK tables included: what
    /// `connections.memory_limit_bytes` bounds.
    pub(crate) fn buffered_bytes(&self) -> usize {
        match &self.parser {
            Parser::Detecting(d) => d.buffered_bytes(),
            Parser::Http1(h) => h.held_bytes(),
            Parser::Http2(h) => h.held_bytes(),
            Parser::Muted => 0,
        }
    }

    /// Feeds bytes that continue the stream of `dir`, ending at stream
    /// offset `end`.
    pub(crate) fn data(
        &mut self,
        dir: Direction,
        ts_ns: u64,
        bytes: &[u8],
        end: u64,
        limits: &TrackerLimits,
        sink: &mut impl TrackerSink,
    ) {
        if bytes.is_empty() {
            return;
        }
        let Parser::Detecting(d) = &mut self.parser else {
            return self.feed(dir, ts_ns, bytes, Some(end), limits, sink);
        };
        let offer = d.offer(
            dir,
            ts_ns,
            bytes,
            self.info.role,
            limits.detect_window_bytes,
            limits.http2.max_frame_size,
        );
        let parser = match offer.verdict {
            Verdict::Pending => return,
            Verdict::Unknown => {
                let skipped = d.held() + (bytes.len() - offer.copied) as u64;
                sink.tracker_event(TrackerEvent::UndetectedBytes(skipped));
                // Joined mid-conversation (agent restart, seeded socket): the
                // next chunk may well start a message; look again a while.
                if d.retry_after_unknown() {
                    return;
                }
                self.info.protocol = Protocol::Unknown;
                self.mute(sink);
                return;
            }
            Verdict::Http1 { role } => {
                self.set_role(role, sink);
                self.info.protocol = Protocol::Http1;
                Parser::Http1(Box::new(Http1Session::new(limits.http1)))
            }
            Verdict::Http2 { role } => {
                self.set_role(role, sink);
                self.info.protocol = Protocol::Http2;
                Parser::Http2(Box::new(Http2Session::new(limits.http2)))
            }
            Verdict::Http2Midstream => {
                self.info.protocol = Protocol::Http2;
                Parser::Http2(Box::new(Http2Session::new_midstream(limits.http2)))
            }
        };
        let Parser::Detecting(mut d) = std::mem::replace(&mut self.parser, parser) else {
            return;
        };
        // Replay what detection held, request side first, each direction's
        // buffered prefix followed (for this chunk's direction) by the rest.
        let rest = bytes.get(offer.copied..).unwrap_or(&[]);
        for replay in d.take_replays(self.info.role).into_iter().flatten() {
            // Only what ends this chunk ends at `end`.
            let last = replay.dir == dir && rest.is_empty();
            if !replay.bytes.is_empty() {
                let at = last.then_some(end);
                self.feed(replay.dir, replay.ts_ns, &replay.bytes, at, limits, sink);
            }
            if replay.dir == dir && !rest.is_empty() {
                self.feed(dir, ts_ns, rest, Some(end), limits, sink);
            }
        }
    }

    /// Feeds a decided parser.
    fn feed(
        &mut self,
        dir: Direction,
        ts_ns: u64,
        bytes: &[u8],
        end: Option<u64>,
        limits: &TrackerLimits,
        sink: &mut impl TrackerSink,
    ) {
        let Some(side) = self.info.role.side(dir) else {
            // A parser always has a role (detection sets it); stay safe anyway.
            sink.tracker_event(TrackerEvent::UndetectedBytes(bytes.len() as u64));
            return;
        };
        let info = &self.info;
        match &mut self.parser {
            Parser::Muted | Parser::Detecting(_) => {
                sink.tracker_event(TrackerEvent::UndetectedBytes(bytes.len() as u64));
            }
            Parser::Http1(h) => {
                let mut fwd = Fwd {
                    info,
                    sink,
                    end: end.map(|e| (dir, e)),
                };
                h.on_data(side, ts_ns, bytes, &mut fwd);
                if h.upgrade().is_some() {
                    self.after_upgrade(ts_ns, limits, sink);
                }
            }
            Parser::Http2(h) => {
                h.on_data(side, ts_ns, bytes, &mut Fwd::new(info, sink));
                if h.is_failed() {
                    self.give_up(ts_ns, sink);
                }
            }
        }
    }

    /// The HTTP/1 parser saw a protocol switch. h2c continues as HTTP/2: the
    /// HTTP/1 parser stops right after the 101 head and keeps the rest of that
    /// chunk (`take_leftover`), which the HTTP/2 session gets as the first
    /// response bytes. Anything else is not parsed from here on.
    fn after_upgrade(&mut self, ts_ns: u64, limits: &TrackerLimits, sink: &mut impl TrackerSink) {
        let Parser::Http1(h) = &mut self.parser else {
            return;
        };
        let upgraded = match h.upgrade() {
            Some(Upgrade::H2c) => h.take_upgrade_request(),
            _ => None,
        };
        let rest = h.take_leftover(Side::Response);
        match upgraded {
            Some((head, start_ns)) => {
                sink.tracker_event(TrackerEvent::H2cUpgrade);
                let h2 = Http2Session::new_after_upgrade(limits.http2, head, start_ns);
                self.parser = Parser::Http2(Box::new(h2));
                self.info.protocol = Protocol::Http2;
                if !rest.is_empty() {
                    if let Some(dir) = self.dir_of(Side::Response) {
                        self.feed(dir, ts_ns, &rest, None, limits, sink);
                    }
                }
            }
            None => {
                sink.tracker_event(TrackerEvent::UpgradeToUnparsed);
                self.give_up(ts_ns, sink);
            }
        }
    }

    fn dir_of(&self, side: Side) -> Option<Direction> {
        [Direction::Egress, Direction::Ingress]
            .into_iter()
            .find(|d| self.info.role.side(*d) == Some(side))
    }

    /// Stops parsing: what the parser still holds is ended as closed, and the
    /// connection is muted.
    fn give_up(&mut self, ts_ns: u64, sink: &mut impl TrackerSink) {
        self.end_parser(ts_ns, sink);
        self.mute(sink);
    }

    fn mute(&mut self, sink: &mut impl TrackerSink) {
        self.parser = Parser::Muted;
        if !self.mute_sent {
            self.mute_sent = true;
            sink.mute(&self.info);
        }
    }

    fn set_role(&mut self, role: Role, sink: &mut impl TrackerSink) {
        if self.info.role != role {
            if self.info.role != Role::Unknown {
                sink.tracker_event(TrackerEvent::RoleCorrected);
            }
            self.info.role = role;
        }
    }

    /// `len` bytes of `dir` were lost.
    pub(crate) fn gap(
        &mut self,
        dir: Direction,
        len: u64,
        ts_ns: u64,
        sink: &mut impl TrackerSink,
    ) {
        if len == 0 {
            return;
        }
        let side = self.info.role.side(dir);
        let info = &self.info;
        match (&mut self.parser, side) {
            (Parser::Detecting(d), _) => {
                let dropped = d.on_gap(dir);
                if dropped > 0 {
                    sink.tracker_event(TrackerEvent::UndetectedBytes(dropped));
                }
            }
            (Parser::Http1(h), Some(side)) => h.on_gap(side, len, ts_ns, &mut Fwd::new(info, sink)),
            (Parser::Http2(h), Some(side)) => {
                h.on_gap(side, len, ts_ns, &mut Fwd::new(info, sink));
                if h.is_failed() {
                    self.give_up(ts_ns, sink);
                }
            }
            _ => {}
        }
    }

    /// The connection ended (closed, evicted, process gone): pending requests
    /// are reported by the parser, detection bytes are counted as undetected.
    pub(crate) fn end(&mut self, ts_ns: u64, sink: &mut impl TrackerSink) {
        self.end_parser(ts_ns, sink);
        self.parser = Parser::Muted;
    }

    fn end_parser(&mut self, ts_ns: u64, sink: &mut impl TrackerSink) {
        let info = &self.info;
        match &mut self.parser {
            Parser::Detecting(d) => {
                let held = d.held();
                if held > 0 {
                    sink.tracker_event(TrackerEvent::UndetectedBytes(held));
                }
            }
            Parser::Http1(h) => h.on_close(ts_ns, &mut Fwd::new(info, sink)),
            Parser::Http2(h) => h.on_close(ts_ns, &mut Fwd::new(info, sink)),
            Parser::Muted => {}
        }
    }

    /// Whether bytes of this connection are only counted, not parsed.
    pub(crate) fn is_muted(&self) -> bool {
        matches!(self.parser, Parser::Muted)
    }
}
