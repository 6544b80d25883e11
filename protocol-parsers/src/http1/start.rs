//! Recognising where an HTTP/1 message starts and where its head ends.
//!
//! Three small byte-level checks shared by the session reader, the resync
//! scanner and [`crate::detect`]:
//! - a *lenient* start check for a head expected at a known boundary (any method
//!   token, or `HTTP/1.`), used to reject garbage before buffering it;
//! - a *strict* candidate automaton used while out of sync, which only accepts
//!   a known method (`GET /x HTTP/1.1` request line, verified to its end) or a
//!   status line start (`HTTP/1.1 200`);
//! - the search for the empty line that ends a head, which works across chunk
//!   boundaries by looking at the last bytes already buffered.
//!
//! None of these parse header fields; `httparse` does that (see `head.rs`).

/// Request methods accepted when resynchronising and by protocol detection.
/// While in sync any method token is accepted (httparse validates it).
pub(crate) const KNOWN_METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

/// The verdict of a check over a prefix of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Yes,
    No,
    NeedMore,
}

/// RFC 9110 `tchar`: the bytes a method token is made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Lenient request start: `token SP`. `from` is where the previous call on the
/// same (growing) head stopped, so a long token is not rescanned per chunk.
/// Says No only on a byte no request line can have there; so it never rejects
/// what httparse would accept, and its verdict does not depend on how the
/// bytes were split.
pub(crate) fn lenient_request_start(head: &[u8], from: &mut usize) -> Verdict {
    while *from < head.len() {
        let b = head[*from];
        if b == b' ' {
            return if *from > 0 { Verdict::Yes } else { Verdict::No };
        }
        if !is_tchar(b) {
            return Verdict::No;
        }
        *from += 1;
    }
    Verdict::NeedMore
}

/// Lenient response start: `HTTP/1.`.
pub(crate) fn lenient_response_start(head: &[u8]) -> Verdict {
    prefix_verdict(b"HTTP/1.", head)
}

/// Whether `bytes` starts with `pattern` (Yes), is a proper prefix of it
/// (NeedMore) or neither (No).
pub(crate) fn prefix_verdict(pattern: &[u8], bytes: &[u8]) -> Verdict {
    let n = pattern.len().min(bytes.len());
    if pattern[..n] != bytes[..n] {
        Verdict::No
    } else if n == pattern.len() {
        Verdict::Yes
    } else {
        Verdict::NeedMore
    }
}

/// A known method followed by a space (what detection looks for).
pub(crate) fn known_method_sp(bytes: &[u8]) -> Verdict {
    let mut need_more = false;
    for m in KNOWN_METHODS {
        let n = bytes.len().min(m.len() + 1);
        let matches =
            bytes[..n]
                .iter()
                .enumerate()
                .all(|(i, &b)| if i < m.len() { b == m[i] } else { b == b' ' });
        if matches {
            if n == m.len() + 1 {
                return Verdict::Yes;
            }
            need_more = true;
        }
    }
    if need_more {
        Verdict::NeedMore
    } else {
        Verdict::No
    }
}

/// Bytes that can begin a strict candidate, per side (request side: first
/// letters of known methods; response side: `H`). A table so that scanning
/// random bytes costs one load and compare per byte.
const fn initials(request: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if request {
        let mut i = 0;
        while i < KNOWN_METHODS.len() {
            t[KNOWN_METHODS[i][0] as usize] = true;
            i += 1;
        }
    } else {
        t[b'H' as usize] = true;
    }
    t
}
pub(crate) const REQUEST_INITIALS: [bool; 256] = initials(true);
pub(crate) const RESPONSE_INITIALS: [bool; 256] = initials(false);

/// Bytes allowed in a request target by the strict matcher: visible ASCII and
/// obs-text (httparse accepts the latter too).
fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Where the strict candidate matcher is inside a candidate message start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Matching `METHOD SP` (request) or `HTTP/1.x SP DDD` (response) by offset.
    Fixed,
    /// Request target; `bool`: at least one target byte seen.
    Target(bool),
    /// `HTTP/1.x` after the target; the offset within it.
    Version(usize),
    /// After the version: optional CR (`bool`: seen), then LF.
    LineEnd(bool),
    /// Response: one byte after `DDD` (SP, CR or LF).
    AfterCode,
}

/// Strict candidate matcher, fed one byte at a time so that its verdicts are
/// identical however the stream is split. Request candidates are verified to
/// the end of the request line (`METHOD SP target SP HTTP/1.x CRLF`), response
/// candidates to `HTTP/1.x DDD` plus one delimiter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    request: bool,
    stage: Stage,
    /// Bytes accepted so far.
    len: usize,
    /// The first bytes (enough for the longest `METHOD SP`).
    fixed: [u8; 8],
}

const STATUS_PREFIX: &[u8] = b"HTTP/1.";

impl Candidate {
    pub(crate) fn new(request: bool) -> Self {
        Candidate {
            request,
            stage: Stage::Fixed,
            len: 0,
            fixed: [0; 8],
        }
    }

    /// Bytes accepted so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Offers the next byte. Yes: the byte is accepted and completes the
    /// candidate; NeedMore: accepted, more needed; No: the byte is rejected
    /// (and not counted in `len`).
    pub(crate) fn push(&mut self, b: u8) -> Verdict {
        let v = if self.request {
            self.push_request(b)
        } else {
            self.push_response(b)
        };
        if v != Verdict::No {
            if self.len < self.fixed.len() {
                self.fixed[self.len] = b;
            }
            self.len += 1;
        }
        v
    }

    fn push_request(&mut self, b: u8) -> Verdict {
        match self.stage {
            Stage::Fixed => {
                let n = self.len;
                let mut any = false;
                for m in KNOWN_METHODS {
                    if m.len() < n || m[..n] != self.fixed[..n] {
                        continue;
                    }
                    if n < m.len() {
                        any |= m[n] == b;
                    } else if b == b' ' {
                        self.stage = Stage::Target(false);
                        return Verdict::NeedMore;
                    }
                }
                if any {
                    Verdict::NeedMore
                } else {
                    Verdict::No
                }
            }
            Stage::Target(seen) => {
                if b == b' ' && seen {
                    self.stage = Stage::Version(0);
                    Verdict::NeedMore
                } else if is_target_byte(b) {
                    self.stage = Stage::Target(true);
                    Verdict::NeedMore
                } else {
                    Verdict::No
                }
            }
            Stage::Version(i) => {
                let ok = if i < STATUS_PREFIX.len() {
                    b == STATUS_PREFIX[i]
                } else {
                    b == b'0' || b == b'1'
                };
                if !ok {
                    return Verdict::No;
                }
                self.stage = if i == STATUS_PREFIX.len() {
                    Stage::LineEnd(false)
                } else {
                    Stage::Version(i + 1)
                };
                Verdict::NeedMore
            }
            Stage::LineEnd(cr_seen) => match b {
                b'\n' => Verdict::Yes,
                b'\r' if !cr_seen => {
                    self.stage = Stage::LineEnd(true);
                    Verdict::NeedMore
                }
                _ => Verdict::No,
            },
            Stage::AfterCode => Verdict::No,
        }
    }

    fn push_response(&mut self, b: u8) -> Verdict {
        match self.stage {
            Stage::Fixed => {
                let i = self.len;
                let ok = match i {
                    0..=6 => b == STATUS_PREFIX[i],
                    7 => b == b'0' || b == b'1',
                    8 => b == b' ',
                    9..=11 => b.is_ascii_digit(),
                    _ => false,
                };
                if !ok {
                    return Verdict::No;
                }
                if i == 11 {
                    // One more byte (SP/CR/LF) so that `HTTP/1.1 2000` is not taken.
                    self.stage = Stage::AfterCode;
                }
                Verdict::NeedMore
            }
            Stage::AfterCode => {
                if matches!(b, b' ' | b'\r' | b'\n') {
                    Verdict::Yes
                } else {
                    Verdict::No
                }
            }
            _ => Verdict::No,
        }
    }
}

/// Finds the end of a head: the position just past the LF of the empty line
/// (`\n\n` or `\n\r\n`), searching `data` only. `tail` holds the (at most two)
/// head bytes that precede `data` in the same head, so that a terminator split
/// across chunks is found without re-scanning what was already scanned.
pub(crate) fn find_head_end(tail: &[u8], data: &[u8]) -> Option<usize> {
    let before = |i: usize, k: usize| -> Option<u8> {
        if i >= k {
            Some(data[i - k])
        } else {
            let back = k - i;
            tail.len().checked_sub(back).map(|j| tail[j])
        }
    };
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\n', &data[from..]) {
        let i = from + off;
        match before(i, 1) {
            Some(b'\n') => return Some(i + 1),
            Some(b'\r') if before(i, 2) == Some(b'\n') => return Some(i + 1),
            _ => {}
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(request: bool, bytes: &[u8]) -> (Verdict, usize) {
        let mut c = Candidate::new(request);
        for &b in bytes {
            match c.push(b) {
                Verdict::NeedMore => {}
                v => return (v, c.len()),
            }
        }
        (Verdict::NeedMore, c.len())
    }

    #[test]
    fn strict_request_candidates() {
        assert_eq!(run(true, b"GET /a?b HTTP/1.1\r\nHost"), (Verdict::Yes, 19));
        assert_eq!(run(true, b"OPTIONS * HTTP/1.0\n"), (Verdict::Yes, 19));
        assert_eq!(run(true, b"PATCH /x HTTP/1.1\r\r\n").0, Verdict::No);
        assert_eq!(run(true, b"GET  / HTTP/1.1\r\n").0, Verdict::No);
        assert_eq!(run(true, b"GET / HTTP/2.0\r\n"), (Verdict::No, 11));
        assert_eq!(run(true, b"GETX / HTTP/1.1\r\n"), (Verdict::No, 3));
        assert_eq!(run(true, b"PUT /a b HTTP/1.1\r\n").0, Verdict::No);
        assert_eq!(run(true, b"POST /a HTTP/1."), (Verdict::NeedMore, 15));
    }

    #[test]
    fn strict_response_candidates() {
        assert_eq!(run(false, b"HTTP/1.1 200 OK"), (Verdict::Yes, 13));
        assert_eq!(run(false, b"HTTP/1.0 404\r\n"), (Verdict::Yes, 13));
        assert_eq!(run(false, b"HTTP/1.1 2000"), (Verdict::No, 12));
        assert_eq!(run(false, b"HTTP/2 200 "), (Verdict::No, 5));
        assert_eq!(run(false, b"HTTP/1.1 20"), (Verdict::NeedMore, 11));
    }

    #[test]
    fn lenient_starts() {
        let mut from = 0;
        assert_eq!(
            lenient_request_start(b"PROPF", &mut from),
            Verdict::NeedMore
        );
        assert_eq!(from, 5);
        assert_eq!(
            lenient_request_start(b"PROPFIND /", &mut from),
            Verdict::Yes
        );
        assert_eq!(lenient_request_start(b" GET", &mut 0), Verdict::No);
        assert_eq!(lenient_request_start(b"G\x00T", &mut 0), Verdict::No);
        assert_eq!(lenient_response_start(b"HTTP/"), Verdict::NeedMore);
        assert_eq!(lenient_response_start(b"HTTP/1.1"), Verdict::Yes);
        assert_eq!(lenient_response_start(b"HTTPS"), Verdict::No);
    }

    #[test]
    fn head_end_across_chunks() {
        assert_eq!(find_head_end(b"", b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"", b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(find_head_end(b"\r\n", b"\r\nX"), Some(2));
        assert_eq!(find_head_end(b"\n\r", b"\nX"), Some(1));
        assert_eq!(find_head_end(b"\n", b"\n"), Some(1));
        assert_eq!(find_head_end(b"a\r", b"\n\r"), None);
        assert_eq!(find_head_end(b"", b"\n"), None);
    }
}
