//! HTTP/2 frames for fixtures, on top of `protocol-parsers`' own header
//! encoder ([`FrameHeader::encode`]) and frame types ([`FrameType`]), so a
//! frame's layout is written once in the workspace.
//!
//! Payloads are built by hand here (SETTINGS pairs, RST_STREAM codes, ...);
//! header blocks come from [`crate::hpack`].

pub use protocol_parsers::http2::frame::flags::*;
pub use protocol_parsers::http2::frame::{FrameHeader, FrameType, PREFACE};

/// A frame: the 9-byte header (length taken from `payload`), then `payload`.
pub fn frame(kind: FrameType, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    frame_claiming(payload.len() as u32, kind, flags, stream, payload)
}

/// A frame whose header claims `length` bytes whatever `payload` holds: for
/// fixtures that lie about the length (oversized frames, truncated payloads).
pub fn frame_claiming(
    length: u32,
    kind: FrameType,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = FrameHeader::encode(length, kind.to_u8(), flags, stream).to_vec();
    f.extend_from_slice(payload);
    f
}

/// The client connection preface.
pub fn preface() -> Vec<u8> {
    PREFACE.to_vec()
}

/// A HEADERS frame carrying a whole header block (END_HEADERS set).
pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let end = if end_stream { END_STREAM } else { 0 };
    frame(FrameType::Headers, END_HEADERS | end, stream, block)
}

/// A DATA frame of `len` bytes `x`.
pub fn data(stream: u32, len: usize, end_stream: bool) -> Vec<u8> {
    let end = if end_stream { END_STREAM } else { 0 };
    frame(FrameType::Data, end, stream, &vec![b'x'; len])
}

/// A SETTINGS frame with these (identifier, value) pairs.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(6 * pairs.len());
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(FrameType::Settings, 0, 0, &p)
}

/// An empty SETTINGS frame with ACK.
pub fn settings_ack() -> Vec<u8> {
    frame(FrameType::Settings, ACK, 0, &[])
}

/// RST_STREAM with an error code.
pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(FrameType::RstStream, 0, stream, &code.to_be_bytes())
}

/// GOAWAY naming the last stream, with an error code and debug data `debug`.
pub fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(b"debug");
    frame(FrameType::GoAway, 0, 0, &p)
}

/// PING with 8 bytes of opaque data, an answer if `ack`.
pub fn ping(ack: bool) -> Vec<u8> {
    let flags = if ack { ACK } else { 0 };
    frame(FrameType::Ping, flags, 0, &[1, 2, 3, 4, 5, 6, 7, 8])
}

/// WINDOW_UPDATE by `increment`.
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(FrameType::WindowUpdate, 0, stream, &increment.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_back() {
        let f = headers(3, &[0x82], true);
        let h = FrameHeader::parse(&f).unwrap();
        assert_eq!(
            (h.length, h.kind, h.flags, h.stream_id),
            (1, FrameType::Headers, END_HEADERS | END_STREAM, 3)
        );
        assert_eq!(&f[9..], &[0x82]);
        let lie = frame_claiming(0xff_ffff, FrameType::Data, 0, 1, &[]);
        assert_eq!(FrameHeader::parse(&lie).unwrap().length, 0xff_ffff);
        assert_eq!(lie.len(), 9);
        let u = frame(FrameType::Unknown(0xfa), 0, 0, b"x");
        assert_eq!(u[3], 0xfa);
    }
}
