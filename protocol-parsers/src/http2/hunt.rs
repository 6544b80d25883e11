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

/// Where in `buf` (bytes held while hunting) a complete HEADERS frame of
/// stream `stream_id` starts, if one does. Used when the *other* direction,
/// already in sync, shows that stream: a lone request HEADERS frame cannot
/// be confirmed by a second frame until the next request, and its response
/// would otherwise arrive unpaired. The stream id seen in both directions is
/// the confirmation.
pub(super) fn find_headers_of(buf: &[u8], stream_id: u32, max: u32) -> Option<usize> {
    (0..buf.len()).find(|&off| {
        buf.get(off..)
            .and_then(FrameHeader::parse)
            .is_some_and(|h| {
                h.kind == FrameType::Headers
                    && h.stream_id == stream_id
                    && h.has(flags::END_HEADERS)
                    && plausible_start(&h, max)
                    && off + FRAME_HEADER_LEN + h.length as usize <= buf.len()
            })
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
