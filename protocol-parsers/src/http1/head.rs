//! Parsing one complete HTTP/1 head with `httparse` and extracting what spans
//! and body framing need.
//!
//! Input is a whole head (start line through the empty line), or bytes that
//! start with one (`parse_*_prefix`: httparse finds its end, the reader's fast
//! path for a head whole in one chunk); each head is parsed once. Output is the
//! shared [`RequestHead`]/[`ResponseHead`] plus the framing headers
//! (Content-Length, Transfer-Encoding) and the few flags pairing needs.
//! This module does not decide body framing for responses (that needs the
//! request method; see `session.rs`). Its one state is the per-thread cache of
//! heads parsed a moment ago (`recent.rs`), which never changes an outcome.

use super::recent::Recent;
use crate::exchange::{HttpVersion, RequestField, RequestHead, ResponseHead};
use crate::request_head::FieldBytes;
use httparse::{Header, ParserConfig, Status, EMPTY_HEADER};
use std::cell::RefCell;
use std::mem::MaybeUninit;

thread_local! {
    /// Heads this thread parsed a moment ago (see `recent.rs`).
    static RECENT_REQUESTS: RefCell<Recent<ParsedRequest>> = RefCell::new(Recent::new());
    static RECENT_RESPONSES: RefCell<Recent<ParsedResponse>> = RefCell::new(Recent::new());
}

/// Headers parsed on the stack; a head with more is retried with a heap array
/// sized from its length (rare, once per such message).
const STACK_HEADERS: usize = 64;

/// httparse fills the slots it uses, so they need no initialising (an
/// initialised array of 64 was ~210 instructions a head).
type HeaderSlot<'b> = MaybeUninit<Header<'b>>;
const UNINIT: MaybeUninit<Header<'static>> = MaybeUninit::uninit();

/// The framing-relevant headers of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Framing {
    /// Content-Length, when present and valid.
    pub content_length: Option<u64>,
    /// A Transfer-Encoding header was present.
    pub transfer_encoding: bool,
    /// ... and its final coding is `chunked`.
    pub chunked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedRequest {
    pub head: RequestHead,
    pub framing: Framing,
    /// `Upgrade: h2c` was asked for.
    pub wants_h2c: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedResponse {
    pub head: ResponseHead,
    pub framing: Framing,
}

/// The head could not be used (httparse error, or contradictory framing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Tolerant like a browser or proxy: we observe traffic, we do not enforce.
fn config() -> ParserConfig {
    let mut c = ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

fn version(v: Option<u8>) -> HttpVersion {
    match v {
        Some(0) => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

/// Whether `line` (a start line including its LF) is a valid request or status
/// line. httparse reports Partial for a valid line followed by nothing.
pub(crate) fn first_line_ok(request: bool, line: &[u8]) -> bool {
    let cfg = config();
    let mut headers = [EMPTY_HEADER; 1];
    let res = if request {
        cfg.parse_request(&mut httparse::Request::new(&mut headers), line)
    } else {
        cfg.parse_response(&mut httparse::Response::new(&mut headers), line)
    };
    // Complete is possible only for a start line followed by an empty line,
    // which `line` (one line) cannot contain; either way the line is valid.
    res.is_ok()
}

/// Parses a complete request head: all of `buf`, which ends with its empty line.
pub(crate) fn parse_request(buf: &[u8]) -> Result<ParsedRequest, Malformed> {
    match parse_request_prefix(buf)? {
        // The caller found the empty line, so anything else means httparse saw
        // the head differently (e.g. a lone CR): not usable.
        (parsed, n) if n == buf.len() => Ok(parsed),
        _ => Err(Malformed),
    }
}

/// Parses the request head that `buf` starts with, and says where it ends.
/// Malformed also when `buf` holds only part of a head. The same head seen a
/// moment ago (the other end of a local connection) is not parsed again.
pub(crate) fn parse_request_prefix(buf: &[u8]) -> Result<(ParsedRequest, usize), Malformed> {
    RECENT_REQUESTS.with_borrow_mut(|recent| recent.get_or_parse(buf, parse_request_uncached))
}

fn parse_request_uncached(buf: &[u8]) -> Result<(ParsedRequest, usize), Malformed> {
    let mut stack = [UNINIT; STACK_HEADERS];
    match parse_request_with(buf, &mut stack) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut heap = vec![UNINIT; buf.len() / 3 + 1];
            parse_request_with(buf, &mut heap).map_err(|_| Malformed)?
        }
        other => other.map_err(|_| Malformed)?,
    }
}

fn parse_request_with<'b>(
    buf: &'b [u8],
    headers: &mut [HeaderSlot<'b>],
) -> Result<Result<(ParsedRequest, usize), Malformed>, httparse::Error> {
    let mut req = httparse::Request::new(&mut []);
    let Status::Complete(len) =
        config().parse_request_with_uninit_headers(&mut req, buf, headers)?
    else {
        return Ok(Err(Malformed));
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Ok(Err(Malformed));
    };
    let mut fields: FieldBytes<'_> = [None; RequestField::COUNT];
    fields[RequestField::Method as usize] = Some(method.as_bytes());
    fields[RequestField::Target as usize] = Some(target.as_bytes());
    let mut framing = FramingBuilder::default();
    let mut wants_h2c = false;
    for h in req.headers.iter() {
        let field = match known(h.name.as_bytes()) {
            Known::Field(f) => f,
            Known::Upgrade => {
                wants_h2c |= list_has(h.value, b"h2c");
                continue;
            }
            Known::Other => continue,
            framing_header => {
                framing.take(framing_header, h.value);
                continue;
            }
        };
        // First occurrence wins (a repeated Host is malformed anyway).
        let slot = &mut fields[field as usize];
        if slot.is_none() {
            *slot = Some(h.value.trim_ascii());
        }
    }
    let framing = match framing.finish() {
        Ok(f) => f,
        Err(m) => return Ok(Err(m)),
    };
    let parsed = ParsedRequest {
        // One allocation for all the text the head's spans use.
        head: RequestHead::from_bytes(&fields, version(req.version)),
        framing,
        wants_h2c,
    };
    Ok(Ok((parsed, len)))
}

/// Parses a complete response head: all of `buf`, which ends with its empty line.
pub(crate) fn parse_response(buf: &[u8]) -> Result<ParsedResponse, Malformed> {
    match parse_response_prefix(buf)? {
        // The caller found the empty line, so anything else means httparse saw
        // the head differently (e.g. a lone CR): not usable.
        (parsed, n) if n == buf.len() => Ok(parsed),
        _ => Err(Malformed),
    }
}

/// Parses the response head that `buf` starts with, and says where it ends.
/// Malformed also when `buf` holds only part of a head. Reuses a recent
/// parse of the same bytes, as [`parse_request_prefix`] does.
pub(crate) fn parse_response_prefix(buf: &[u8]) -> Result<(ParsedResponse, usize), Malformed> {
    RECENT_RESPONSES.with_borrow_mut(|recent| recent.get_or_parse(buf, parse_response_uncached))
}

fn parse_response_uncached(buf: &[u8]) -> Result<(ParsedResponse, usize), Malformed> {
    let mut stack = [UNINIT; STACK_HEADERS];
    match parse_response_with(buf, &mut stack) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut heap = vec![UNINIT; buf.len() / 3 + 1];
            parse_response_with(buf, &mut heap).map_err(|_| Malformed)?
        }
        other => other.map_err(|_| Malformed)?,
    }
}

fn parse_response_with<'b>(
    buf: &'b [u8],
    headers: &mut [HeaderSlot<'b>],
) -> Result<Result<(ParsedResponse, usize), Malformed>, httparse::Error> {
    let mut resp = httparse::Response::new(&mut []);
    let Status::Complete(len) =
        config().parse_response_with_uninit_headers(&mut resp, buf, headers)?
    else {
        return Ok(Err(Malformed));
    };
    let Some(status) = resp.code else {
        return Ok(Err(Malformed));
    };
    let mut head = ResponseHead {
        status,
        version: version(resp.version),
        content_type: None,
        grpc_status: None,
        grpc_message: None,
    };
    let mut framing = FramingBuilder::default();
    for h in resp.headers.iter() {
        match known(h.name.as_bytes()) {
            Known::Field(RequestField::ContentType) if head.content_type.is_none() => {
                head.content_type = Some(text(h.value));
            }
            k @ (Known::ContentLength | Known::TransferEncoding) => framing.take(k, h.value),
            _ => {}
        }
    }
    Ok(framing
        .finish()
        .map(|framing| (ParsedResponse { head, framing }, len)))
}

/// A response header value as text: trimmed, invalid UTF-8 replaced (never
/// fails). Request values become text in [`RequestHead::from_bytes`].
fn text(v: &[u8]) -> std::sync::Arc<str> {
    let v = v.trim_ascii();
    // Valid UTF-8 (nearly always ASCII) is checked once and copied;
    // `from_utf8_lossy` walks its chunk iterator even then.
    match std::str::from_utf8(v) {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(v).into(),
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn list_has(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[derive(Default)]
struct FramingBuilder {
    framing: Framing,
    bad_length: bool,
}

/// The header names the parser acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    ContentLength,
    TransferEncoding,
    Upgrade,
    /// A request field spans use (`content-type` on either side).
    Field(RequestField),
    Other,
}

/// Which of the known names `name` (a header name from httparse: token
/// characters only) is, case-insensitively. Told apart by length first: one
/// comparison per header instead of up to eight.
fn known(name: &[u8]) -> Known {
    let is = |k: &[u8]| token_is(name, k);
    match name.len() {
        4 if is(b"host") => Known::Field(RequestField::Authority),
        7 if is(b"upgrade") => Known::Upgrade,
        10 if is(b"user-agent") => Known::Field(RequestField::UserAgent),
        10 if is(b"tracestate") => Known::Field(RequestField::Tracestate),
        11 if is(b"traceparent") => Known::Field(RequestField::Traceparent),
        12 if is(b"content-type") => Known::Field(RequestField::ContentType),
        14 if is(b"content-length") => Known::ContentLength,
        17 if is(b"transfer-encoding") => Known::TransferEncoding,
        _ => Known::Other,
    }
}

/// Whether the token `name` is `lower` (lowercase letters and `-`, at least
/// 4 bytes, as long as `name`) in any case, a word at a time
/// (`eq_ignore_ascii_case` goes byte by byte). Setting bit 0x20 lowercases
/// a letter, keeps `-`, and turns no other token character into a letter or
/// `-`, so this is exact for tokens.
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    fn word(b: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        if let Some(src) = b.get(at..at + 8) {
            w.copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    }
    fn half(b: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        if let Some(src) = b.get(at..at + 4) {
            w.copy_from_slice(src);
        }
        u32::from_le_bytes(w)
    }
    let n = lower.len();
    if name.len() != n {
        return false;
    }
    if n < 8 {
        // Two 4-byte words, overlapping when n < 8 (n >= 4).
        const CASE: u32 = 0x2020_2020;
        return n >= 4
            && half(name, 0) | CASE == half(lower, 0)
            && half(name, n - 4) | CASE == half(lower, n - 4);
    }
    const CASE: u64 = 0x2020_2020_2020_2020;
    // 8-byte words from the front, the last one ending at the end.
    let mut at = 0;
    loop {
        let at_now = at.min(n - 8);
        if word(name, at_now) | CASE != word(lower, at_now) {
            return false;
        }
        if at_now == n - 8 {
            return true;
        }
        at += 8;
    }
}

impl FramingBuilder {
    /// Consumes a framing header (`ContentLength` or `TransferEncoding`).
    fn take(&mut self, name: Known, value: &[u8]) {
        match name {
            Known::ContentLength => {
                match (parse_content_length(value), self.framing.content_length) {
                    (Some(n), None) => self.framing.content_length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    // Unparsable, or two different lengths: the body end is unknowable.
                    _ => self.bad_length = true,
                }
            }
            Known::TransferEncoding => {
                self.framing.transfer_encoding = true;
                // The final coding of the last Transfer-Encoding field decides.
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
                self.framing.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
            _ => {}
        }
    }

    fn finish(self) -> Result<Framing, Malformed> {
        // With Transfer-Encoding, Content-Length is ignored (RFC 9112 6.3), so
        // a bad one does not matter then.
        if self.bad_length && !self.framing.transfer_encoding {
            Err(Malformed)
        } else {
            Ok(self.framing)
        }
    }
}

/// `1234` or a list of identical values (`5, 5`); None when invalid.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut result: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let n = decimal(part.trim_ascii())?;
        match result {
            Some(prev) if prev != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// 1 to 19 ASCII digits (so no overflow) as a number.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Heads assembled from a few pieces, so that the same bytes recur, with
    /// line ends that vary (CRLF, bare LF) and bytes after the head.
    fn heads() -> impl Strategy<Value = Vec<u8>> {
        let start = prop::sample::select(vec![
            &b"GET / HTTP/1.1"[..],
            b"POST /a?b=1 HTTP/1.0",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 204 No Content",
            b"HTTP/1.0 404 Not Found",
            b"GET /x HTTP/1.1 junk",
        ]);
        let header = prop::sample::select(vec![
            &b"Host: h"[..],
            b"Content-Length: 5",
            b"Content-Length: 5, 6",
            b"Transfer-Encoding: chunked",
            b"Content-Type: text/plain",
            b"Upgrade: h2c",
            b"bad header",
            b" folded",
        ]);
        let eol = prop::sample::select(vec![&b"\r\n"[..], b"\n", b"\r"]);
        (
            start,
            prop::collection::vec((header, eol.clone()), 0..4),
            eol.clone(),
            eol,
            prop::sample::select(vec![&b""[..], b"body", b"\r\n\r\nmore"]),
        )
            .prop_map(|(start, headers, eol, last, after)| {
                let mut b = start.to_vec();
                b.extend_from_slice(eol);
                for (h, e) in headers {
                    b.extend_from_slice(h);
                    b.extend_from_slice(e);
                }
                b.extend_from_slice(last);
                b.extend_from_slice(after);
                b
            })
    }

    proptest! {
        /// A head taken from the recent ones is exactly what parsing it gives,
        /// for requests and responses, whatever came before on this thread.
        #[test]
        fn reused_heads_are_the_parse(seq in prop::collection::vec(heads(), 1..40)) {
            for b in &seq {
                prop_assert_eq!(parse_request_prefix(b), parse_request_uncached(b));
                prop_assert_eq!(parse_response_prefix(b), parse_response_uncached(b));
                prop_assert_eq!(parse_request(b), parse_request_uncached(b).and_then(
                    |(p, n)| if n == b.len() { Ok(p) } else { Err(Malformed) }));
            }
        }
    }

    #[test]
    fn the_second_end_of_a_local_exchange_reuses_the_parse() {
        let head = b"GET /reuse-check HTTP/1.1\r\nHost: h\r\n\r\n";
        let before = RECENT_REQUESTS.with_borrow(|r| (r.reused, r.parsed));
        let written = parse_request_prefix(head).unwrap();
        let read = parse_request_prefix(head).unwrap();
        assert_eq!(written, read);
        let after = RECENT_REQUESTS.with_borrow(|r| (r.reused, r.parsed));
        assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    }

    #[test]
    fn request_fields_are_extracted_case_insensitively() {
        let head = b"POST /a?b=1 HTTP/1.0\r\nhOsT: example.com\r\nUSER-AGENT: curl/8\r\n\
content-type:  application/json \r\nTraceParent: 00-aa-bb-01\r\ntracestate: k=v\r\n\
Content-Length: 12\r\n\r\n";
        let p = parse_request(head).unwrap();
        assert_eq!(p.head.method(), "POST");
        assert_eq!(p.head.target(), "/a?b=1");
        assert_eq!(p.head.version, HttpVersion::Http10);
        assert_eq!(p.head.authority(), Some("example.com"));
        assert_eq!(p.head.user_agent(), Some("curl/8"));
        assert_eq!(p.head.content_type(), Some("application/json"));
        assert_eq!(p.head.traceparent(), Some("00-aa-bb-01"));
        assert_eq!(p.head.tracestate(), Some("k=v"));
        assert_eq!(p.head.scheme(), None);
        assert_eq!(p.framing.content_length, Some(12));
        assert!(!p.framing.chunked);
        assert!(!p.wants_h2c);
    }

    #[test]
    fn invalid_utf8_values_are_kept_lossily() {
        let head = b"GET / HTTP/1.1\r\nUser-Agent: a\xff\xfeb\r\n\r\n";
        let p = parse_request(head).unwrap();
        assert_eq!(p.head.user_agent(), Some("a\u{fffd}\u{fffd}b"));
    }

    #[test]
    fn upgrade_h2c_is_seen_in_a_list() {
        let head = b"GET / HTTP/1.1\r\nUpgrade: websocket, H2C\r\n\r\n";
        assert!(parse_request(head).unwrap().wants_h2c);
    }

    #[test]
    fn framing_rules() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(r.unwrap().framing.chunked);
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        let f = r.unwrap().framing;
        assert!(f.transfer_encoding && !f.chunked);
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(r.unwrap().framing.content_length, Some(5));
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert_eq!(r.unwrap_err(), Malformed);
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(r.unwrap_err(), Malformed);
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n");
        assert_eq!(r.unwrap_err(), Malformed);
    }

    #[test]
    fn response_fields() {
        let r =
            parse_response(b"HTTP/1.0 404 Not Found\r\nContent-Type: text/html\r\n\r\n").unwrap();
        assert_eq!(r.head.status, 404);
        assert_eq!(r.head.version, HttpVersion::Http10);
        assert_eq!(r.head.content_type.as_deref(), Some("text/html"));
        assert_eq!(r.head.grpc_status, None);
        assert_eq!(r.head.grpc_message, None);
    }

    #[test]
    fn many_headers_fall_back_to_the_heap() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"Host: h\r\n\r\n");
        assert_eq!(parse_request(&head).unwrap().head.authority(), Some("h"));
    }

    #[test]
    fn known_names_in_any_case() {
        for (name, k) in [
            (&b"HOST"[..], Known::Field(RequestField::Authority)),
            (b"Upgrade", Known::Upgrade),
            (b"uSER-aGENT", Known::Field(RequestField::UserAgent)),
            (b"TraceState", Known::Field(RequestField::Tracestate)),
            (b"traceparent", Known::Field(RequestField::Traceparent)),
            (b"Content-Type", Known::Field(RequestField::ContentType)),
            (b"CONTENT-LENGTH", Known::ContentLength),
            (b"Transfer-Encoding", Known::TransferEncoding),
        ] {
            assert_eq!(known(name), k, "{}", String::from_utf8_lossy(name));
        }
        for other in [
            &b"hos"[..],
            b"hosts",
            b"Hist",
            b"user_agent",
            b"content-typf",
            b"Content~Length",
            b"transfer-encodinG!",
            b"x",
            b"",
        ] {
            assert_eq!(known(other), Known::Other);
        }
    }

    #[test]
    fn first_line_check() {
        assert!(first_line_ok(true, b"GET / HTTP/1.1\r\n"));
        assert!(!first_line_ok(true, b"GET / HTTP/2.0\r\n"));
        assert!(first_line_ok(false, b"HTTP/1.1 200 OK\r\n"));
        assert!(!first_line_ok(false, b"HTTP/1.1 2x0 OK\r\n"));
    }

    #[test]
    fn incomplete_or_garbage_is_malformed() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n").unwrap_err(), Malformed);
        assert_eq!(
            parse_request(b"\x16\x03\x01\r\n\r\n").unwrap_err(),
            Malformed
        );
    }
}
