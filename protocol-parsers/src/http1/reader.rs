//! One direction of an HTTP/1 connection as a byte-level state machine: find
//! and parse heads, skip bodies, and resynchronise after malformed input or
//! lost bytes.
//!
//! The reader turns bytes into [`Event`]s (a head, a body end, a loss of sync)
//! and counts the issues it alone can see (malformed/too-large heads, chunk
//! errors, resync). It does not pair requests with responses and does not
//! decide a response's body framing: after a head it waits in `Framing` for
//! the session to call [`Reader::begin_body`].
//!
//! Every outcome depends only on the bytes, never on where the stream was
//! split into chunks: the checks below are run in a fixed order on the same
//! bytes whichever way they arrive (the property tests rely on this).
//! A head is searched for its end first and parsed once; a head still
//! incomplete gets at most one cheap start check and one start-line parse, so
//! garbage is rejected without buffering it.
//!
//! Resync: out of sync, bytes are scanned for a strict candidate start (see
//! `start.rs`), anywhere (not only at line starts: bodies often do not end in
//! a newline). `ResyncSkippedBytes(n)` counts every received byte that was not
//! part of a parsed message (scanned-over bytes, failed candidates, malformed
//! heads, a partial head cut by a gap; not an oversized head, which counts as
//! `HeadTooLarge`), reported once when a head parses again, or at close.

use super::body::{BodyDecoder, BodyKind, GapFit, Progress};
use super::head::{self, ParsedRequest, ParsedResponse};
use super::start::{
    find_head_end, lenient_request_start, lenient_response_start, Candidate, Verdict,
    REQUEST_INITIALS, RESPONSE_INITIALS,
};
use crate::exchange::{ExchangeSink, ParseIssue};

/// What the reader found.
#[derive(Debug)]
pub(crate) enum Event {
    Request {
        parsed: ParsedRequest,
        start_ns: u64,
        end_ns: u64,
    },
    Response {
        parsed: ParsedResponse,
        start_ns: u64,
        end_ns: u64,
    },
    /// The body of the last head ended (decoded size).
    BodyDone { decoded: u64, end_ns: u64 },
    /// Sync was lost (malformed input or a gap). `partial_body`: decoded bytes
    /// of the body that was in progress, if one was.
    Desync { partial_body: Option<u64> },
}

/// What a gap did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GapOutcome {
    /// Nothing to do (stopped, paused, or already out of sync).
    Ignored,
    /// Inside a body of known length: sync kept.
    Absorbed,
    /// ... and the body is now complete.
    Completed { decoded: u64 },
    /// Sync lost.
    Desync { partial_body: Option<u64> },
}

#[derive(Debug)]
enum State {
    /// Expecting or reading a head; its bytes so far are in `buf`.
    Head,
    /// A head was returned; waiting for `begin_body`.
    Framing,
    Body(BodyDecoder),
    /// Skipping a head over the size limit up to its empty line; `tail` holds
    /// its last bytes so a terminator split across chunks is still found.
    SkipHead {
        tail: [u8; 2],
        tail_len: u8,
    },
    /// Out of sync, looking for a message start. A candidate being verified
    /// has its bytes in `buf`.
    Scan(Option<Candidate>),
    /// Data ignored until resumed (after CONNECT, before its response).
    Paused,
    /// Data ignored for good (protocol switched).
    Stopped,
}

/// Progress of the checks on a head that is still incomplete, kept so that
/// nothing is re-checked when more bytes arrive.
#[derive(Debug, Default)]
struct HeadChecks {
    prefix_ok: bool,
    /// Where the lenient request start check stopped.
    prefix_pos: usize,
    first_line_checked: bool,
    /// Bytes of the head known to contain no LF.
    lf_from: usize,
}

/// What to do with a head's bytes so far.
#[derive(Debug, PartialEq, Eq)]
enum Judgement {
    Continue,
    Parse,
    /// The head cannot start like this: scan from its first byte.
    BadStart,
    /// The start line is invalid: drop it (this many bytes) and scan after it.
    BadFirstLine(usize),
    TooLarge,
}

#[derive(Debug)]
pub(crate) struct Reader {
    request: bool,
    state: State,
    /// Bytes of the current head (or resync candidate), never over the limit.
    buf: Vec<u8>,
    checks: HeadChecks,
    head_start_ns: u64,
    /// The current head began at a resync candidate (not yet proven).
    tentative: bool,
    /// False from a loss of sync until a head parses again.
    synced: bool,
    /// Bytes passed over while out of sync, not yet reported.
    skipped: u64,
    /// Timestamp of the chunk with the last byte consumed by a message.
    last_ns: u64,
    max_head: usize,
}

impl Reader {
    pub(crate) fn new(request: bool, max_head: usize) -> Self {
        Reader {
            request,
            state: State::Head,
            buf: Vec::new(),
            checks: HeadChecks::default(),
            head_start_ns: 0,
            tentative: false,
            synced: true,
            skipped: 0,
            last_ns: 0,
            max_head,
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn last_ns(&self) -> u64 {
        self.last_ns
    }

    /// Decoded bytes of the body in progress, if any.
    pub(crate) fn body_so_far(&self) -> Option<u64> {
        match &self.state {
            State::Body(d) => Some(d.decoded()),
            _ => None,
        }
    }

    /// See [`BodyDecoder::skip_hint`]: the plain body data still to come in
    /// this direction, if at least `min`, once per stretch.
    pub(crate) fn body_skip_hint(&mut self, min: u64) -> Option<u64> {
        match &mut self.state {
            State::Body(d) => d.skip_hint(min),
            _ => None,
        }
    }

    /// After a head: the session says how its body is delimited. Returns false
    /// when there is no body (the message is complete).
    pub(crate) fn begin_body(&mut self, kind: BodyKind) -> bool {
        match BodyDecoder::new(kind, self.max_head) {
            Some(d) => {
                self.state = State::Body(d);
                true
            }
            None => {
                self.state = State::Head;
                false
            }
        }
    }

    pub(crate) fn pause(&mut self) {
        self.state = State::Paused;
    }

    pub(crate) fn resume(&mut self) {
        if matches!(self.state, State::Paused) {
            self.state = State::Head;
        }
    }

    pub(crate) fn stop(&mut self) {
        self.state = State::Stopped;
        self.buf = Vec::new();
    }

    /// The connection ended: a close-delimited body is complete (its decoded
    /// size is returned); unreported skipped bytes are counted.
    pub(crate) fn close(&mut self, sink: &mut impl ExchangeSink) -> Option<u64> {
        self.report_skipped(sink);
        let done = match &self.state {
            State::Body(d) if d.until_close() => Some(d.decoded()),
            _ => None,
        };
        self.state = State::Stopped;
        self.buf = Vec::new();
        done
    }

    fn report_skipped(&mut self, sink: &mut impl ExchangeSink) {
        if self.skipped > 0 {
            sink.issue(ParseIssue::ResyncSkippedBytes(self.skipped));
            self.skipped = 0;
        }
    }

    /// Drops sync: from now on, scan for a message start. Returns whether
    /// this is a new loss (the reader was in sync).
    fn lose_sync(&mut self) -> bool {
        self.skipped += self.buf.len() as u64;
        self.buf.clear();
        self.tentative = false;
        self.state = State::Scan(None);
        std::mem::replace(&mut self.synced, false)
    }

    /// `len` bytes of this direction were lost here.
    pub(crate) fn gap(&mut self, len: u64, sink: &mut impl ExchangeSink) -> GapOutcome {
        let partial_body = match &mut self.state {
            State::Stopped | State::Paused => return GapOutcome::Ignored,
            State::Body(d) => match d.gap(len) {
                GapFit::Absorbed => return GapOutcome::Absorbed,
                GapFit::Completed => {
                    let decoded = d.decoded();
                    self.state = State::Head;
                    return GapOutcome::Completed { decoded };
                }
                GapFit::Lost => Some(d.decoded()),
            },
            _ => None,
        };
        if self.lose_sync() {
            sink.issue(ParseIssue::ResyncAfterGap);
            GapOutcome::Desync { partial_body }
        } else {
            GapOutcome::Ignored
        }
    }

    /// Consumes bytes from `data[*pos..]` up to the next event. None: all of
    /// `data` was consumed without one.
    pub(crate) fn step(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) -> Option<Event> {
        loop {
            let ev = match &mut self.state {
                State::Head | State::Framing => self.head(data, pos, ts, sink),
                State::Body(d) => {
                    let (n, progress) = d.advance(&data[*pos..]);
                    *pos += n;
                    if n > 0 {
                        self.last_ns = ts;
                    }
                    match progress {
                        Progress::NeedMore => return None,
                        Progress::Done => {
                            let decoded = d.decoded();
                            self.state = State::Head;
                            return Some(Event::BodyDone {
                                decoded,
                                end_ns: ts,
                            });
                        }
                        Progress::Malformed => {
                            let decoded = d.decoded();
                            sink.issue(ParseIssue::MalformedChunk);
                            self.lose_sync();
                            return Some(Event::Desync {
                                partial_body: Some(decoded),
                            });
                        }
                    }
                }
                State::SkipHead { tail, tail_len } => {
                    let rest = &data[*pos..];
                    match find_head_end(&tail[..usize::from(*tail_len)], rest) {
                        Some(e) => {
                            *pos += e;
                            self.state = State::Scan(None);
                            Step::Again
                        }
                        None => {
                            for &b in rest.iter().rev().take(2).rev() {
                                if *tail_len == 2 {
                                    tail[0] = tail[1];
                                    tail[1] = b;
                                } else {
                                    tail[usize::from(*tail_len)] = b;
                                    *tail_len += 1;
                                }
                            }
                            *pos = data.len();
                            Step::Exhausted
                        }
                    }
                }
                State::Scan(_) => self.scan(data, pos, ts),
                State::Paused | State::Stopped => {
                    *pos = data.len();
                    Step::Exhausted
                }
            };
            match ev {
                Step::Event(e) => return Some(e),
                Step::Exhausted => return None,
                Step::Again => {}
            }
        }
    }

    /// Head state: find the end, judge, parse.
    fn head(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) -> Step {
        self.state = State::Head;
        let old = self.buf.len();
        if old == 0 {
            // Blank lines between messages are tolerated (RFC 9112 2.2).
            while *pos < data.len() && matches!(data[*pos], b'\r' | b'\n') {
                *pos += 1;
            }
            if *pos == data.len() {
                return Step::Exhausted;
            }
            self.head_start_ns = ts;
            self.checks = HeadChecks::default();
            if let Some(step) = self.whole_head(data, pos, ts, sink) {
                return step;
            }
        }
        let rest = &data[*pos..];
        let tail = &self.buf[old.saturating_sub(2)..];
        let end = find_head_end(tail, rest);
        let avail = end.unwrap_or(rest.len());
        // Bytes of this chunk that belong to the head, at most one past the limit.
        let take = avail.min((self.max_head + 1).saturating_sub(old));
        let complete = end.is_some() && take == avail;
        let judgement = if old == 0 {
            judge(
                &mut self.checks,
                self.request,
                &rest[..take],
                complete,
                self.max_head,
            )
        } else {
            self.buf.extend_from_slice(&rest[..take]);
            judge(
                &mut self.checks,
                self.request,
                &self.buf,
                complete,
                self.max_head,
            )
        };
        let head_len = old + take;
        match judgement {
            Judgement::Continue => {
                if old == 0 {
                    self.buf.extend_from_slice(&rest[..take]);
                }
                *pos += take;
                Step::Exhausted
            }
            Judgement::Parse => {
                let parsed = {
                    let h = if old == 0 {
                        &rest[..take]
                    } else {
                        &self.buf[..]
                    };
                    self.parse(h, ts)
                };
                match parsed {
                    Ok(ev) => {
                        *pos += take;
                        self.parsed(ev, ts, sink)
                    }
                    Err(()) => {
                        // Drop the start line if it is the culprit, else the head.
                        let n = if self.checks.first_line_checked {
                            head_len
                        } else {
                            let h = if old == 0 {
                                &rest[..take]
                            } else {
                                &self.buf[..]
                            };
                            match memchr::memchr(b'\n', h) {
                                Some(j) if !head::first_line_ok(self.request, &h[..=j]) => j + 1,
                                _ => head_len,
                            }
                        };
                        self.discard(n, old, pos, sink)
                    }
                }
            }
            Judgement::BadFirstLine(n) => self.discard(n, old, pos, sink),
            Judgement::BadStart => {
                // Rescan from the head's first byte (the strict scanner cannot
                // accept what the lenient check refused). Buffered bytes hold no
                // possible start (see `lenient_request_start`), so they are skipped.
                self.buf.truncate(old);
                self.malformed(sink)
            }
            Judgement::TooLarge => {
                sink.issue(ParseIssue::HeadTooLarge);
                let new_loss = self.synced;
                self.synced = false;
                self.tentative = false;
                if end.is_some() {
                    *pos += avail;
                    self.state = State::Scan(None);
                } else {
                    let h: &[u8] = if old == 0 { &rest[..take] } else { &self.buf };
                    let mut tail = [0u8; 2];
                    let t = &h[h.len().saturating_sub(2)..];
                    tail[..t.len()].copy_from_slice(t);
                    *pos += take;
                    self.state = State::SkipHead {
                        tail,
                        tail_len: t.len() as u8,
                    };
                }
                self.buf.clear();
                if new_loss {
                    Step::Event(Event::Desync { partial_body: None })
                } else {
                    Step::Again
                }
            }
        }
    }

    /// A head that starts at `data[*pos]` (no bytes buffered) and ends
    /// within this chunk, the usual case: httparse finds its end while
    /// parsing, so its bytes are scanned once (searching for the empty line
    /// first, then parsing, was ~450 instructions a head). httparse ends a
    /// head at its first empty line, as `find_head_end` does, and a start that
    /// parses passes the lenient start check, so the outcome is the one the
    /// checks below would reach. None (a partial, malformed or oversized
    /// head): nothing consumed; the checks below decide.
    fn whole_head(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) -> Option<Step> {
        let rest = &data[*pos..];
        // Bounded by the limit, so a long partial head is not parsed twice in full.
        let window = &rest[..rest.len().min(self.max_head)];
        let (ev, n) = if self.request {
            let (parsed, n) = head::parse_request_prefix(window).ok()?;
            let ev = Event::Request {
                parsed,
                start_ns: self.head_start_ns,
                end_ns: ts,
            };
            (ev, n)
        } else {
            let (parsed, n) = head::parse_response_prefix(window).ok()?;
            let ev = Event::Response {
                parsed,
                start_ns: self.head_start_ns,
                end_ns: ts,
            };
            (ev, n)
        };
        debug_assert_eq!(find_head_end(&[], &window[..n]), Some(n));
        *pos += n;
        Some(self.parsed(ev, ts, sink))
    }

    /// A head parsed: back in sync, waiting for its body framing.
    fn parsed(&mut self, ev: Event, ts: u64, sink: &mut impl ExchangeSink) -> Step {
        self.last_ns = ts;
        self.buf.clear();
        if self.buf.capacity() > 4 * 1024 {
            // Do not keep a rare huge head's buffer per connection.
            self.buf.shrink_to(1024);
        }
        if !self.synced {
            self.report_skipped(sink);
            self.synced = true;
        }
        self.tentative = false;
        self.state = State::Framing;
        Step::Event(ev)
    }

    /// Drops the first `n` bytes of the head (`old` of them were buffered
    /// before this chunk) and scans after them.
    fn discard(
        &mut self,
        n: usize,
        old: usize,
        pos: &mut usize,
        sink: &mut impl ExchangeSink,
    ) -> Step {
        *pos += n.saturating_sub(old);
        self.skipped += n as u64;
        self.buf.clear();
        self.malformed(sink)
    }

    fn malformed(&mut self, sink: &mut impl ExchangeSink) -> Step {
        // A failed resync candidate is not a malformed message: its bytes
        // are just skipped.
        if self.lose_sync() {
            sink.issue(ParseIssue::MalformedHead);
            Step::Event(Event::Desync { partial_body: None })
        } else {
            Step::Again
        }
    }

    fn parse(&self, h: &[u8], ts: u64) -> Result<Event, ()> {
        if self.request {
            head::parse_request(h)
                .map(|parsed| Event::Request {
                    parsed,
                    start_ns: self.head_start_ns,
                    end_ns: ts,
                })
                .map_err(|_| ())
        } else {
            head::parse_response(h)
                .map(|parsed| Event::Response {
                    parsed,
                    start_ns: self.head_start_ns,
                    end_ns: ts,
                })
                .map_err(|_| ())
        }
    }

    /// Out of sync: look for the next strict candidate start.
    fn scan(&mut self, data: &[u8], pos: &mut usize, ts: u64) -> Step {
        let State::Scan(cand) = &mut self.state else {
            return Step::Again;
        };
        loop {
            let Some(c) = cand else {
                let rest = &data[*pos..];
                let found = if self.request {
                    rest.iter().position(|&b| REQUEST_INITIALS[usize::from(b)])
                } else {
                    memchr::memchr(b'H', rest).filter(|&k| RESPONSE_INITIALS[usize::from(rest[k])])
                };
                match found {
                    Some(k) => {
                        self.skipped += k as u64;
                        *pos += k;
                        self.head_start_ns = ts;
                        *cand = Some(Candidate::new(self.request));
                        continue;
                    }
                    None => {
                        self.skipped += rest.len() as u64;
                        *pos = data.len();
                        return Step::Exhausted;
                    }
                }
            };
            let from = *pos;
            let mut verdict = Verdict::NeedMore;
            while *pos < data.len() {
                // A candidate line longer than a head may be is not one.
                verdict = if c.len() >= self.max_head {
                    Verdict::No
                } else {
                    c.push(data[*pos])
                };
                if verdict == Verdict::No {
                    break;
                }
                *pos += 1;
                if verdict == Verdict::Yes {
                    break;
                }
            }
            self.buf.extend_from_slice(&data[from..*pos]);
            match verdict {
                Verdict::NeedMore => return Step::Exhausted,
                Verdict::Yes => {
                    // A plausible start: parse a head from here, tentatively.
                    self.tentative = true;
                    self.checks = HeadChecks {
                        prefix_ok: true,
                        ..HeadChecks::default()
                    };
                    self.state = State::Head;
                    return Step::Again;
                }
                Verdict::No => {
                    // The rejected byte may itself start a candidate.
                    self.skipped += self.buf.len() as u64;
                    self.buf.clear();
                    *cand = None;
                }
            }
        }
    }
}

/// What one state of the reader did. Short-lived, so its size does not matter.
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived: one per reader step, never stored"
)]
enum Step {
    Event(Event),
    Exhausted,
    Again,
}

/// The checks on a head so far, in a fixed order so that the outcome does not
/// depend on chunking: start prefix, start line (once its LF is within the
/// limit), then parse if complete, else size.
fn judge(c: &mut HeadChecks, request: bool, h: &[u8], complete: bool, max: usize) -> Judgement {
    if !c.prefix_ok {
        let v = if request {
            lenient_request_start(h, &mut c.prefix_pos)
        } else {
            lenient_response_start(h)
        };
        match v {
            Verdict::Yes => c.prefix_ok = true,
            Verdict::No => return Judgement::BadStart,
            Verdict::NeedMore => {}
        }
    }
    if complete && h.len() <= max {
        // A complete head always decides the prefix (it contains an LF).
        return if c.prefix_ok {
            Judgement::Parse
        } else {
            Judgement::BadStart
        };
    }
    if !c.first_line_checked {
        let lim = h.len().min(max);
        if c.lf_from < lim {
            match memchr::memchr(b'\n', &h[c.lf_from..lim]) {
                Some(off) => {
                    let j = c.lf_from + off;
                    if !head::first_line_ok(request, &h[..=j]) {
                        return Judgement::BadFirstLine(j + 1);
                    }
                    c.first_line_checked = true;
                }
                None => c.lf_from = lim,
            }
        }
    }
    if h.len() > max {
        Judgement::TooLarge
    } else {
        Judgement::Continue
    }
}
