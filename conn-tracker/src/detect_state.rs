//! Protocol detection for one connection: looks at the first bytes of each
//! direction, keeps at most `detect_window_bytes` of them per direction, and
//! decides which parser (if any) the connection gets.
//!
//! Rules:
//! - `detect()` on a direction's first bytes: an HTTP/1 request or response or
//!   the HTTP/2 preface decides, and fixes which side the direction is.
//! - On a connection joined midway (or after a gap during detection), bytes
//!   that start with a plausible HTTP/2 frame header also decide (HTTP/2
//!   without a preface), provided the role is known: frames alone do not tell
//!   requests from responses.
//! - An HTTP/2 server may send its SETTINGS frame (its connection preface)
//!   before it reads the client's preface: on the response side of a
//!   connection whose role is known, a SETTINGS frame on stream 0 waits for
//!   the request side to decide, buffered up to `SERVER_PREFACE_WINDOW`.
//! - `Unknown`, or `NeedMore` with a full window, decides "not parsed".
//! - A chunk is looked at in place; bytes are copied only while undecided, and
//!   never more than the window.

use protocol_parsers::http2::frame::{FrameHeader, FRAME_HEADER_LEN};
use protocol_parsers::Side;

use crate::backend::{detect, Detected};

/// Most bytes of a server's first flight (SETTINGS, maybe WINDOW_UPDATE) held
/// while waiting for the client's preface.
const SERVER_PREFACE_WINDOW: usize = 4096;

/// Whether `bytes` could start an HTTP/2 server's connection preface.
fn server_preface_candidate(bytes: &[u8], dir: Direction, role: Role, max_frame_size: u32) -> bool {
    if role.side(dir) != Some(Side::Response) {
        return false;
    }
    match FrameHeader::parse(bytes) {
        Some(h) => {
            h.plausible(max_frame_size)
                && h.stream_id == 0
                && matches!(h.kind, protocol_parsers::http2::frame::FrameType::Settings)
        }
        // Too short to tell: a SETTINGS frame header starts with a small length.
        None => bytes.len() >= 4 && bytes[0] == 0 && bytes[3] == 4,
    }
}
use crate::types::{Direction, Role};

/// What detection concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pending,
    /// HTTP/1; `role` is what the traffic says the process is.
    Http1 {
        role: Role,
    },
    /// HTTP/2 starting with the client preface.
    Http2 {
        role: Role,
    },
    /// HTTP/2 frames without a preface (joined midway); role as known before.
    Http2Midstream,
    Unknown,
}

/// Bytes held while undecided, per direction.
#[derive(Debug, Default)]
pub(crate) struct Detecting {
    bufs: [Vec<u8>; 2],
    /// Timestamp of the first buffered byte of each direction.
    first_ts: [u64; 2],
    /// The first bytes may be mid-conversation.
    midway: bool,
    /// On a connection joined midway, how many more chunks may be looked at
    /// after an "unknown" verdict: the next write usually starts a message.
    retries_left: u32,
}

/// Chunks looked at on a connection joined midway before giving up on it.
pub(crate) const MIDWAY_DETECTION_CHUNKS: u32 = 32;

/// Result of [`Detecting::offer`].
#[derive(Debug)]
pub(crate) struct Offer {
    pub verdict: Verdict,
    /// How many leading bytes of the offered chunk were copied into the buffer
    /// of its direction (the rest is still only in the chunk).
    pub copied: usize,
}

/// A buffered prefix to replay into the parser once decided.
pub(crate) struct Replay {
    pub dir: Direction,
    pub ts_ns: u64,
    pub bytes: Vec<u8>,
}

// === impl Detecting ===

impl Detecting {
    pub(crate) fn new(midway: bool) -> Detecting {
        Detecting {
            retries_left: if midway { MIDWAY_DETECTION_CHUNKS } else { 0 },
            bufs: [Vec::new(), Vec::new()],
            first_ts: [0; 2],
            midway,
        }
    }

    pub(crate) fn buffered_bytes(&self) -> usize {
        self.bufs[0].capacity() + self.bufs[1].capacity()
    }

    /// A gap in `dir`: what was buffered there no longer continues; drop it and
    /// treat what follows as mid-conversation. Returns the bytes dropped.
    pub(crate) fn on_gap(&mut self, dir: Direction) -> u64 {
        self.midway = true;
        let b = &mut self.bufs[dir.index()];
        let n = b.len() as u64;
        b.clear();
        n
    }

    /// After an "unknown" verdict on a connection joined midway: forget what
    /// was held and look again at the next chunk. False once the retries are
    /// spent (then the caller gives up on the connection).
    pub(crate) fn retry_after_unknown(&mut self) -> bool {
        if self.retries_left == 0 {
            return false;
        }
        self.retries_left -= 1;
        self.bufs = [Vec::new(), Vec::new()];
        true
    }

    /// Bytes held (not capacity): what is counted as undetected when given up.
    pub(crate) fn held(&self) -> u64 {
        (self.bufs[0].len() + self.bufs[1].len()) as u64
    }

    /// Looks at `bytes`, newly arrived in `dir`.
    pub(crate) fn offer(
        &mut self,
        dir: Direction,
        ts_ns: u64,
        bytes: &[u8],
        role: Role,
        window: usize,
        max_frame_size: u32,
    ) -> Offer {
        let i = dir.index();
        let candidate_bytes = if self.bufs[i].is_empty() {
            bytes
        } else {
            &self.bufs[i][..]
        };
        let server_preface = server_preface_candidate(candidate_bytes, dir, role, max_frame_size);
        let window = if server_preface {
            SERVER_PREFACE_WINDOW
        } else {
            window.max(1)
        };
        if self.bufs[i].is_empty() {
            // Look at the chunk in place first: the common case copies nothing.
            let v = if server_preface && bytes.len() < window {
                Verdict::Pending
            } else {
                classify(
                    bytes,
                    dir,
                    role,
                    self.midway,
                    max_frame_size,
                    bytes.len() >= window,
                )
            };
            if v != Verdict::Pending {
                return Offer {
                    verdict: v,
                    copied: 0,
                };
            }
        }
        let buf = &mut self.bufs[i];
        if buf.is_empty() {
            buf.reserve_exact(window);
            self.first_ts[i] = ts_ns;
        }
        let take = window.saturating_sub(buf.len()).min(bytes.len());
        buf.extend_from_slice(&bytes[..take]);
        let full = buf.len() >= window;
        let v = if server_preface && !full {
            Verdict::Pending
        } else {
            classify(buf, dir, role, self.midway, max_frame_size, full)
        };
        Offer {
            verdict: v,
            copied: take,
        }
    }

    /// The buffered prefixes, request side first, for replay into the parser
    /// chosen for `role` (the buffers are emptied and freed).
    pub(crate) fn take_replays(&mut self, role: Role) -> [Option<Replay>; 2] {
        let mut out = [None, None];
        let order = match role.side(Direction::Egress) {
            Some(Side::Response) => [Direction::Ingress, Direction::Egress],
            _ => [Direction::Egress, Direction::Ingress],
        };
        for (slot, dir) in out.iter_mut().zip(order) {
            let i = dir.index();
            let bytes = std::mem::take(&mut self.bufs[i]);
            *slot = Some(Replay {
                dir,
                ts_ns: self.first_ts[i],
                bytes,
            });
        }
        out
    }
}

/// Decides on one direction's first bytes. `full`: no more bytes will be
/// looked at for this direction, so "need more" means "give up".
fn classify(
    bytes: &[u8],
    dir: Direction,
    role: Role,
    midway: bool,
    max_frame_size: u32,
    full: bool,
) -> Verdict {
    if bytes.is_empty() {
        return Verdict::Pending;
    }
    let v = match detect(bytes) {
        Detected::Http1Request => Verdict::Http1 {
            role: Role::from_side(Side::Request, dir),
        },
        Detected::Http1Response => Verdict::Http1 {
            role: Role::from_side(Side::Response, dir),
        },
        Detected::Http2Preface => Verdict::Http2 {
            role: Role::from_side(Side::Request, dir),
        },
        Detected::NeedMore => Verdict::Pending,
        Detected::Unknown => Verdict::Unknown,
    };
    let v = if midway && role != Role::Unknown && v == Verdict::Unknown {
        match FrameHeader::parse(bytes) {
            Some(h) if h.plausible(max_frame_size) => Verdict::Http2Midstream,
            Some(_) => Verdict::Unknown,
            None if bytes.len() < FRAME_HEADER_LEN => Verdict::Pending,
            None => Verdict::Unknown,
        }
    } else {
        v
    };
    match v {
        Verdict::Pending if full => Verdict::Unknown,
        v => v,
    }
}
