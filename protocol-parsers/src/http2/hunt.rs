//! Finding a frame boundary when joining a connection midway: the first
//! bytes may start anywhere, so we accept an offset only when two
//! consecutive frame headers there are plausible (known type, defined flags
//! only, reserved bit clear, legal stream id and length for the type).
//!
//! Does not decode anything; a false match later shows up as a frame error.

use super::frame::{flags, FrameHeader, FrameType, FRAME_HEADER_LEN};

/// Bytes kept while hunting for a frame boundary midstream.
pub(super) const HUNT_WINDOW: usize = 64 * 1024;

pub(super) enum Boundary {
    /// Frames start at this offset.
    At(usize),
    /// No boundary before this offset; more bytes needed to decide the rest.
    Undecided(usize),
}

/// Plausible as the first frame seen midway: a stricter [`FrameHeader::plausible`]
/// that also rejects frames a real peer would not send (empty DATA without
/// END_STREAM, empty header blocks) and CONTINUATION (its HEADERS is missing).
fn plausible_start(h: &FrameHeader, max: u32) -> bool {
    h.plausible(max)
        && match h.kind {
            FrameType::Data => h.length > 0 || h.has(flags::END_STREAM),
            FrameType::Headers => h.length > 0,
            FrameType::Continuation => false,
            _ => true,
        }
}

/// `chunk` (the bytes of one read or write, nothing buffered before it) is
/// exactly one plausible frame: its declared length ends where the chunk
/// ends. Peers write whole frames, so this is a boundary even without a
/// second frame to confirm it (a lone request HEADERS frame, whose response
/// would otherwise arrive before the request side is found).
pub(super) fn is_single_frame(chunk: &[u8], max: u32) -> bool {
    chunk
        .get(..FRAME_HEADER_LEN)
        .and_then(FrameHeader::parse)
        .is_some_and(|h| {
            plausible_start(&h, max) && FRAME_HEADER_LEN + h.length as usize == chunk.len()
        })
}

pub(super) fn find_boundary(buf: &[u8], max: u32) -> Boundary {
    for off in 0..buf.len() {
        let Some(h) = buf.get(off..).and_then(FrameHeader::parse) else {
            return Boundary::Undecided(off);
        };
        if !plausible_start(&h, max) {
            continue;
        }
        let span = FRAME_HEADER_LEN + h.length as usize;
        let Some(h2) = buf.get(off + span..).and_then(FrameHeader::parse) else {
            if span + FRAME_HEADER_LEN > HUNT_WINDOW {
                continue; // cannot be confirmed within the window
            }
            return Boundary::Undecided(off);
        };
        let open_block = matches!(h.kind, FrameType::Headers | FrameType::PushPromise)
            && !h.has(flags::END_HEADERS);
        let chained = if open_block {
            h2.kind == FrameType::Continuation && h2.stream_id == h.stream_id && h2.plausible(max)
        } else {
            plausible_start(&h2, max)
        };
        if chained {
            return Boundary::At(off);
        }
    }
    Boundary::Undecided(buf.len())
}
