//! HTTP/2 frame headers (RFC 9113 §4.1, §6): parsing the 9-byte header and the
//! per-type structural checks that do not need the payload.
//!
//! This module does not buffer anything and knows nothing about streams or
//! HPACK; the session decides what to keep of each payload. The checks here
//! are the connection-level framing rules a passive observer can verify; the
//! stricter [`FrameHeader::plausible`] is used to find a frame boundary when
//! joining a connection midway.

/// Length of the fixed frame header.
pub const FRAME_HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE before any SETTINGS frame (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest value the 24-bit length field (and SETTINGS_MAX_FRAME_SIZE) can take.
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;
/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame flags (their meaning depends on the frame type).
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Frame types of RFC 9113; anything else is `Unknown` and is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    Unknown(u8),
}

impl FrameType {
    pub fn from_u8(v: u8) -> FrameType {
        match v {
            0x0 => FrameType::Data,
            0x1 => FrameType::Headers,
            0x2 => FrameType::Priority,
            0x3 => FrameType::RstStream,
            0x4 => FrameType::Settings,
            0x5 => FrameType::PushPromise,
            0x6 => FrameType::Ping,
            0x7 => FrameType::GoAway,
            0x8 => FrameType::WindowUpdate,
            0x9 => FrameType::Continuation,
            other => FrameType::Unknown(other),
        }
    }

    /// The type's byte on the wire: the inverse of [`from_u8`](Self::from_u8)
    /// (`Unknown(v)` gives `v`).
    pub fn to_u8(self) -> u8 {
        match self {
            FrameType::Data => 0x0,
            FrameType::Headers => 0x1,
            FrameType::Priority => 0x2,
            FrameType::RstStream => 0x3,
            FrameType::Settings => 0x4,
            FrameType::PushPromise => 0x5,
            FrameType::Ping => 0x6,
            FrameType::GoAway => 0x7,
            FrameType::WindowUpdate => 0x8,
            FrameType::Continuation => 0x9,
            FrameType::Unknown(v) => v,
        }
    }

    /// Flags a sender may set on this type; used only for plausibility.
    fn defined_flags(self) -> u8 {
        use flags::*;
        match self {
            FrameType::Data => END_STREAM | PADDED,
            FrameType::Headers => END_STREAM | END_HEADERS | PADDED | PRIORITY,
            FrameType::PushPromise => END_HEADERS | PADDED,
            FrameType::Continuation => END_HEADERS,
            FrameType::Settings | FrameType::Ping => ACK,
            _ => 0,
        }
    }
}

/// A framing error: the connection cannot be followed any further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The client preface did not match.
    #[error("the client connection preface did not match")]
    BadPreface,
    /// Length above the SETTINGS_MAX_FRAME_SIZE in force (or the hard ceiling).
    #[error("frame longer than SETTINGS_MAX_FRAME_SIZE")]
    TooLarge,
    /// A frame type on stream 0 that needs a stream, or the reverse.
    #[error("frame type on the wrong stream (0 or not 0)")]
    BadStreamId,
    /// A fixed-size frame with the wrong length (SETTINGS not a multiple of 6, ...).
    #[error("fixed-size frame with the wrong length")]
    BadLength,
    /// Padding longer than the payload.
    #[error("padding longer than the frame payload")]
    BadPadding,
    /// A CONTINUATION that does not follow an unfinished header block.
    #[error("CONTINUATION without an unfinished header block")]
    UnexpectedContinuation,
    /// Another frame while a header block waits for its CONTINUATION.
    #[error("another frame while a header block waits for its CONTINUATION")]
    ExpectedContinuation,
    /// PUSH_PROMISE sent by the client.
    #[error("PUSH_PROMISE sent by the client")]
    PushFromClient,
    /// A SETTINGS value out of range (SETTINGS_MAX_FRAME_SIZE).
    #[error("SETTINGS value out of range")]
    BadSetting,
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub length: u32,
    pub kind: FrameType,
    pub flags: u8,
    pub stream_id: u32,
    /// The reserved high bit of the stream id field (ignored on receipt, but a
    /// frame boundary candidate with it set is implausible).
    pub reserved: bool,
}

impl FrameHeader {
    /// Parses the first 9 bytes; `None` if fewer are given.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; FRAME_HEADER_LEN] = b.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        let length = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let sid = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Some(FrameHeader {
            length,
            kind: FrameType::from_u8(b[3]),
            flags: b[4],
            stream_id: sid & 0x7fff_ffff,
            reserved: sid & 0x8000_0000 != 0,
        })
    }

    /// Serializes a header (used by tests and benches to build fixtures).
    pub fn encode(length: u32, kind: u8, flags: u8, stream_id: u32) -> [u8; FRAME_HEADER_LEN] {
        let l = length.to_be_bytes();
        let s = stream_id.to_be_bytes();
        [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The framing rules of RFC 9113 §6 that only need the header.
    pub fn validate(&self, max_frame_size: u32) -> Result<(), Error> {
        if self.length > max_frame_size {
            return Err(Error::TooLarge);
        }
        let on_stream = self.stream_id != 0;
        let len = self.length;
        let ok_stream = match self.kind {
            FrameType::Data
            | FrameType::Headers
            | FrameType::Priority
            | FrameType::RstStream
            | FrameType::PushPromise
            | FrameType::Continuation => on_stream,
            FrameType::Settings | FrameType::Ping | FrameType::GoAway => !on_stream,
            FrameType::WindowUpdate | FrameType::Unknown(_) => true,
        };
        if !ok_stream {
            return Err(Error::BadStreamId);
        }
        let padded = self.has(flags::PADDED);
        let ok_len = match self.kind {
            FrameType::Data => !padded || len >= 1,
            FrameType::Headers => {
                len >= u32::from(padded) + if self.has(flags::PRIORITY) { 5 } else { 0 }
            }
            FrameType::PushPromise => len >= u32::from(padded) + 4,
            FrameType::Priority => len == 5,
            FrameType::RstStream | FrameType::WindowUpdate => len == 4,
            FrameType::Settings => len.is_multiple_of(6) && (!self.has(flags::ACK) || len == 0),
            FrameType::Ping => len == 8,
            FrameType::GoAway => len >= 8,
            FrameType::Continuation | FrameType::Unknown(_) => true,
        };
        if !ok_len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// Stricter than [`validate`](Self::validate): a known type, only defined
    /// flags, reserved bit clear. Used to pick a frame boundary midstream.
    pub fn plausible(&self, max_frame_size: u32) -> bool {
        !matches!(self.kind, FrameType::Unknown(_))
            && !self.reserved
            && self.flags & !self.kind.defined_flags() == 0
            && self.validate(max_frame_size).is_ok()
    }
}

/// Splits a HEADERS / PUSH_PROMISE payload into (header block fragment range,
/// promised stream id). Strips padding and the priority fields.
pub fn header_fragment(
    hdr: &FrameHeader,
    payload: &[u8],
) -> Result<(core::ops::Range<usize>, u32), Error> {
    let mut start = 0usize;
    let mut pad = 0usize;
    let padded =
        matches!(hdr.kind, FrameType::Headers | FrameType::PushPromise) && hdr.has(flags::PADDED);
    if padded {
        pad = usize::from(*payload.first().ok_or(Error::BadLength)?);
        start = 1;
    }
    let mut promised = 0;
    match hdr.kind {
        FrameType::Headers if hdr.has(flags::PRIORITY) => start += 5,
        FrameType::PushPromise => {
            let p = payload.get(start..start + 4).ok_or(Error::BadLength)?;
            promised = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
            start += 4;
        }
        _ => {}
    }
    let end = payload.len().checked_sub(pad).ok_or(Error::BadPadding)?;
    if end < start {
        return Err(Error::BadPadding);
    }
    Ok((start..end, promised))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let b = FrameHeader::encode(0x01_0203, 1, 0x5, 0x7fff_ffff);
        let h = FrameHeader::parse(&b).unwrap();
        assert_eq!(h.length, 0x01_0203);
        assert_eq!(h.kind, FrameType::Headers);
        assert_eq!(h.stream_id, 0x7fff_ffff);
        assert!(!h.reserved);
        assert!(FrameHeader::parse(&b[..8]).is_none());
    }

    #[test]
    fn type_byte_round_trip() {
        for v in 0..=u8::MAX {
            assert_eq!(FrameType::from_u8(v).to_u8(), v);
        }
        assert_eq!(FrameType::Continuation.to_u8(), 0x9);
        assert_eq!(FrameType::from_u8(0x9), FrameType::Continuation);
    }

    #[test]
    fn validation_rules() {
        let h = |len, kind, fl, sid| {
            FrameHeader::parse(&FrameHeader::encode(len, kind, fl, sid)).unwrap()
        };
        assert_eq!(h(0, 0, 0, 0).validate(16384), Err(Error::BadStreamId));
        assert_eq!(h(7, 6, 0, 0).validate(16384), Err(Error::BadLength));
        assert_eq!(h(6, 4, 1, 0).validate(16384), Err(Error::BadLength));
        assert_eq!(h(16385, 0, 0, 1).validate(16384), Err(Error::TooLarge));
        assert!(h(8, 6, 0, 0).validate(16384).is_ok());
        assert!(h(3, 0xee, 0, 0).validate(16384).is_ok());
        assert!(!h(3, 0xee, 0, 0).plausible(16384));
        assert!(!h(0, 0, 0x40, 1).plausible(16384));
    }

    #[test]
    fn fragment_with_padding_and_priority() {
        let hdr = FrameHeader::parse(&FrameHeader::encode(10, 1, 0x28 | 0x4, 1)).unwrap();
        let payload = [2, 0, 0, 0, 0, 9, 0xaa, 0xbb, 0, 0];
        let (r, _) = header_fragment(&hdr, &payload).unwrap();
        assert_eq!(&payload[r], &[0xaa, 0xbb]);
        let bad = [9, 0, 0, 0, 0, 9, 0xaa, 0xbb, 0, 0];
        assert_eq!(header_fragment(&hdr, &bad), Err(Error::BadPadding));
    }
}
