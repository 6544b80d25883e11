//! Skipping and measuring one HTTP/1 message body: Content-Length, chunked
//! (extensions and trailers tolerated) or delimited by connection close.
//!
//! Body bytes are never copied: data inside a known length is skipped in bulk;
//! only chunk-size lines and trailers are looked at byte by byte (without
//! buffering them). The decoder counts decoded body bytes (chunk framing
//! excluded). It does not know about heads or pairing.

/// How a message body is delimited, decided from its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A chunk-size line longer than this (extensions included) is malformed:
/// real ones are a few bytes; this bounds how long garbage is mistaken for one.
const MAX_CHUNK_LINE: usize = 4096;
/// Hex digits in a chunk size beyond which it would overflow u64.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length {
        remaining: u64,
    },
    UntilClose,
    /// Hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the digits: whitespace, `;extensions`, CR; up to LF.
    SizeRest {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    /// The CRLF after chunk data (`bool`: CR seen).
    DataEnd(bool),
    /// Trailer fields after the last chunk; `bool`: the current line is empty so far.
    Trailer(bool),
    Done,
}

/// What `advance` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// All bytes given were body; more are needed.
    NeedMore,
    /// The body ended; bytes after it belong to the next message.
    Done,
    /// Invalid chunked framing at the returned position (that byte not consumed).
    Malformed,
}

/// What a gap does to the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GapFit {
    /// The lost bytes were body data; the position is still known.
    Absorbed,
    /// ... and they were its last bytes: the body is complete.
    Completed,
    /// The gap crossed framing we cannot reconstruct.
    Lost,
}

#[derive(Clone, Debug)]
pub(crate) struct BodyDecoder {
    state: State,
    decoded: u64,
    /// Bytes of the current chunk-size line or of the trailers so far.
    line_bytes: usize,
    max_trailer_bytes: usize,
    /// `decoded` at the end of the stretch last given by `skip_hint`, so
    /// that each stretch (the body, or one chunk's data) is given once.
    hinted_end: Option<u64>,
}

impl BodyDecoder {
    /// None when the body is empty (nothing to decode).
    pub(crate) fn new(kind: BodyKind, max_trailer_bytes: usize) -> Option<Self> {
        let state = match kind {
            BodyKind::None | BodyKind::Length(0) => return None,
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::Size {
                value: 0,
                digits: 0,
            },
            BodyKind::UntilClose => State::UntilClose,
        };
        Some(BodyDecoder {
            state,
            decoded: 0,
            line_bytes: 0,
            max_trailer_bytes,
            hinted_end: None,
        })
    }

    /// The bytes still to come that are plain body data (the rest of a
    /// Content-Length body, or of the current chunk's data, not the framing
    /// after it), if at least `min`; each stretch once. Those bytes are only
    /// counted, so the caller may ask for them not to be copied at all.
    pub(crate) fn skip_hint(&mut self, min: u64) -> Option<u64> {
        let remaining = match self.state {
            State::Length { remaining } | State::Data { remaining } => remaining,
            _ => return None,
        };
        let end = self.decoded.saturating_add(remaining);
        if remaining < min || self.hinted_end == Some(end) {
            return None;
        }
        self.hinted_end = Some(end);
        Some(remaining)
    }

    /// Decoded body bytes so far.
    pub(crate) fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Whether the body ends only when the connection does.
    pub(crate) fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Consumes body bytes from the front of `data`; returns how many.
    pub(crate) fn advance(&mut self, data: &[u8]) -> (usize, Progress) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Length { remaining } => {
                    let take = bulk(remaining, data.len() - i);
                    i += take;
                    self.decoded = self.decoded.saturating_add(take as u64);
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.state = State::Done;
                        return (i, Progress::Done);
                    }
                    self.state = State::Length { remaining };
                }
                State::UntilClose => {
                    self.decoded = self.decoded.saturating_add((data.len() - i) as u64);
                    return (data.len(), Progress::NeedMore);
                }
                State::Data { remaining } => {
                    let take = bulk(remaining, data.len() - i);
                    i += take;
                    self.decoded = self.decoded.saturating_add(take as u64);
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::DataEnd(false)
                    } else {
                        State::Data { remaining }
                    };
                }
                State::Size { value, digits } => {
                    let b = data[i];
                    if let Some(d) = hex(b) {
                        if digits == MAX_SIZE_DIGITS {
                            return (i, Progress::Malformed);
                        }
                        self.state = State::Size {
                            value: (value << 4) | u64::from(d),
                            digits: digits + 1,
                        };
                        self.line_bytes += 1;
                        i += 1;
                    } else if digits == 0 {
                        return (i, Progress::Malformed);
                    } else if b == b'\n' {
                        i += 1;
                        self.end_size_line(value);
                    } else if matches!(b, b';' | b' ' | b'\t' | b'\r') {
                        self.state = State::SizeRest { value };
                    } else {
                        return (i, Progress::Malformed);
                    }
                }
                State::SizeRest { value } => {
                    // Extensions are tolerated, not interpreted: skip to LF.
                    let rest = &data[i..];
                    let (n, lf) = match memchr::memchr(b'\n', rest) {
                        Some(p) => (p, true),
                        None => (rest.len(), false),
                    };
                    // Report the exact byte that exceeds the bound, so the
                    // outcome does not depend on how the stream was split.
                    let allowed = MAX_CHUNK_LINE.saturating_sub(self.line_bytes);
                    if n > allowed {
                        return (i + allowed, Progress::Malformed);
                    }
                    self.line_bytes += n;
                    i += n;
                    if lf {
                        i += 1;
                        self.end_size_line(value);
                    }
                }
                State::DataEnd(cr_seen) => match data[i] {
                    b'\r' if !cr_seen => {
                        self.state = State::DataEnd(true);
                        i += 1;
                    }
                    b'\n' => {
                        self.state = State::Size {
                            value: 0,
                            digits: 0,
                        };
                        self.line_bytes = 0;
                        i += 1;
                    }
                    _ => return (i, Progress::Malformed),
                },
                State::Trailer(line_empty) => {
                    let rest = &data[i..];
                    let (n, lf) = match memchr::memchr(b'\n', rest) {
                        Some(p) => (p, true),
                        None => (rest.len(), false),
                    };
                    // A line of only CRs counts as empty (a lone "\r\n").
                    let empty = line_empty && rest[..n].iter().all(|&b| b == b'\r');
                    let allowed = self.max_trailer_bytes.saturating_sub(self.line_bytes);
                    if n + usize::from(lf) > allowed {
                        return (i + allowed.min(n), Progress::Malformed);
                    }
                    self.line_bytes += n + usize::from(lf);
                    i += n;
                    if !lf {
                        self.state = State::Trailer(empty);
                        continue;
                    }
                    i += 1;
                    if empty {
                        self.state = State::Done;
                        return (i, Progress::Done);
                    }
                    self.state = State::Trailer(true);
                }
                State::Done => return (i, Progress::Done),
            }
        }
        (i, Progress::NeedMore)
    }

    fn end_size_line(&mut self, value: u64) {
        self.line_bytes = 0;
        self.state = if value == 0 {
            State::Trailer(true)
        } else {
            State::Data { remaining: value }
        };
    }

    /// `len` bytes at the current position were lost. Only data of known
    /// remaining length (or a close-delimited body) can absorb them.
    pub(crate) fn gap(&mut self, len: u64) -> GapFit {
        match self.state {
            State::Length { remaining } if len <= remaining => {
                self.decoded = self.decoded.saturating_add(len);
                if len == remaining {
                    self.state = State::Done;
                    GapFit::Completed
                } else {
                    self.state = State::Length {
                        remaining: remaining - len,
                    };
                    GapFit::Absorbed
                }
            }
            State::Data { remaining } if len <= remaining => {
                self.decoded = self.decoded.saturating_add(len);
                self.state = if len == remaining {
                    State::DataEnd(false)
                } else {
                    State::Data {
                        remaining: remaining - len,
                    }
                };
                GapFit::Absorbed
            }
            State::UntilClose => {
                self.decoded = self.decoded.saturating_add(len);
                GapFit::Absorbed
            }
            _ => GapFit::Lost,
        }
    }
}

fn bulk(remaining: u64, avail: usize) -> usize {
    usize::try_from(remaining).map_or(avail, |r| r.min(avail))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `step` bytes; returns (consumed, progress, decoded).
    fn run(kind: BodyKind, data: &[u8], step: usize) -> (usize, Progress, u64) {
        let mut d = BodyDecoder::new(kind, 1024).unwrap();
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + step).min(data.len());
            let (n, p) = d.advance(&data[pos..end]);
            pos += n;
            if p != Progress::NeedMore {
                return (pos, p, d.decoded());
            }
            assert_eq!(n, end - (pos - n), "NeedMore consumes everything");
        }
        (pos, Progress::NeedMore, d.decoded())
    }

    #[test]
    fn skip_hints_name_each_stretch_of_plain_data_once() {
        let mut d = BodyDecoder::new(BodyKind::Length(100_000), 1024).unwrap();
        assert_eq!(d.skip_hint(32_768), Some(100_000));
        assert_eq!(d.skip_hint(32_768), None, "once per stretch");
        d.advance(&[0u8; 10_000]);
        assert_eq!(d.skip_hint(32_768), None, "the same stretch, further on");
        assert_eq!(d.gap(50_000), GapFit::Absorbed);
        assert_eq!(d.skip_hint(1), None);

        // Below the minimum: nothing.
        let mut small = BodyDecoder::new(BodyKind::Length(1_000), 1024).unwrap();
        assert_eq!(small.skip_hint(32_768), None);
        // Close-delimited: no end to name.
        let mut close = BodyDecoder::new(BodyKind::UntilClose, 1024).unwrap();
        assert_eq!(close.skip_hint(1), None);

        // Chunked: each large chunk's data, never its framing.
        let mut c = BodyDecoder::new(BodyKind::Chunked, 1024).unwrap();
        assert_eq!(c.skip_hint(1), None, "inside a size line");
        let (n, p) = c.advance(b"9c40\r\nabc");
        assert_eq!((n, p), (9, Progress::NeedMore));
        assert_eq!(c.skip_hint(32_768), Some(40_000 - 3));
        assert_eq!(c.skip_hint(32_768), None);
        let mut rest = vec![b'x'; 40_000 - 3];
        rest.extend_from_slice(b"\r\n9c40\r\n");
        let (n, p) = c.advance(&rest);
        assert_eq!((n, p), (rest.len(), Progress::NeedMore));
        assert_eq!(
            c.skip_hint(32_768),
            Some(40_000),
            "the next chunk is a new stretch"
        );
    }

    #[test]
    fn content_length_stops_at_its_end() {
        assert_eq!(
            run(BodyKind::Length(5), b"helloGET", 64),
            (5, Progress::Done, 5)
        );
        assert_eq!(
            run(BodyKind::Length(5), b"helloGET", 1),
            (5, Progress::Done, 5)
        );
        assert!(BodyDecoder::new(BodyKind::Length(0), 10).is_none());
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"5;name=\"v\"\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                run(BodyKind::Chunked, body, step),
                (body.len() - 4, Progress::Done, 15),
                "step {step}"
            );
        }
    }

    #[test]
    fn chunked_tolerates_bare_lf() {
        let body = b"3\nabc\n0\n\n";
        assert_eq!(
            run(BodyKind::Chunked, body, 1),
            (body.len(), Progress::Done, 3)
        );
    }

    #[test]
    fn malformed_chunks() {
        assert_eq!(run(BodyKind::Chunked, b"zz\r\n", 1).1, Progress::Malformed);
        assert_eq!(
            run(BodyKind::Chunked, b"3\r\nabcX", 1),
            (6, Progress::Malformed, 3)
        );
        let huge = b"11111111111111111\r\n";
        assert_eq!(run(BodyKind::Chunked, huge, 4).1, Progress::Malformed);
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(MAX_CHUNK_LINE + 10, b'a');
        assert_eq!(
            run(BodyKind::Chunked, &long_ext, 100).1,
            Progress::Malformed
        );
    }

    #[test]
    fn gaps() {
        let mut d = BodyDecoder::new(BodyKind::Length(10), 0).unwrap();
        assert_eq!(d.gap(4), GapFit::Absorbed);
        assert_eq!(d.gap(6), GapFit::Completed);
        assert_eq!(d.decoded(), 10);
        let mut d = BodyDecoder::new(BodyKind::Length(10), 0).unwrap();
        assert_eq!(d.gap(11), GapFit::Lost);
        let mut d = BodyDecoder::new(BodyKind::Chunked, 64).unwrap();
        assert_eq!(d.advance(b"a\r\nxy"), (5, Progress::NeedMore));
        assert_eq!(d.gap(8), GapFit::Absorbed);
        assert_eq!(d.advance(b"\r\n0\r\n\r\n"), (7, Progress::Done));
        assert_eq!(d.decoded(), 10);
        let mut d = BodyDecoder::new(BodyKind::Chunked, 0).unwrap();
        assert_eq!(d.gap(1), GapFit::Lost);
        let mut d = BodyDecoder::new(BodyKind::UntilClose, 0).unwrap();
        assert_eq!(d.gap(1 << 40), GapFit::Absorbed);
        // Sizes saturate rather than overflow on absurd gap lengths.
        assert_eq!(d.gap(u64::MAX), GapFit::Absorbed);
        assert_eq!(d.decoded(), u64::MAX);
        assert!(d.until_close());
    }
}
