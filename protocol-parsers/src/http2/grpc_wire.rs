//! Recognising gRPC from the wire when its `content-type` cannot be decoded
//! (the agent joined the connection after the HPACK entry for
//! `application/grpc` was made). Only evidence that needs no HPACK state:
//!
//! - the gRPC length-prefixed message framing at the start of each
//!   direction's first DATA frame: a 1-byte compressed flag (0 or 1) and a
//!   4-byte big-endian length that, with the prefix, fill the frame exactly
//!   (or overflow a full-size frame: a message split across frames);
//! - request trailers absent, response trailers present;
//! - a path of the form `/pkg.Service/Method`, when the path is known;
//! - a `grpc-status` or `grpc-message` decoded from a literal.
//!
//! Any one piece is weak (a binary body can start with a zero byte); the
//! rule in [`GrpcEvidence::is_grpc`] asks for all that could be seen. It
//! does not decide anything when `content-type` is known: that wins.

use super::frame::DEFAULT_MAX_FRAME_SIZE;

/// Length of the gRPC message prefix (flag + length).
pub const PREFIX_LEN: usize = 5;

/// What the first DATA frame of one direction of a stream says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// No DATA with a body seen yet.
    #[default]
    NotSeen,
    /// The frame starts with a message prefix that fits it.
    Framed,
    /// Not a gRPC message prefix.
    NotFramed,
    /// Could be gRPC (several messages in one frame, or a message split
    /// across frames smaller than the default frame size): no evidence
    /// either way.
    Undecided,
}

/// Classifies the first DATA frame of a direction from its first body bytes
/// (`prefix`, up to [`PREFIX_LEN`]) and its body size (padding excluded).
pub fn classify(prefix: &[u8], body_len: u64) -> Framing {
    if body_len == 0 {
        return Framing::NotSeen;
    }
    let Some(p) = prefix.get(..PREFIX_LEN) else {
        // A body shorter than a prefix cannot start a gRPC message.
        return if body_len < PREFIX_LEN as u64 {
            Framing::NotFramed
        } else {
            Framing::Undecided
        };
    };
    if p[0] > 1 {
        return Framing::NotFramed;
    }
    let msg = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
    let framed = msg + PREFIX_LEN as u64;
    // Exactly one message, or the start of one that continues in the next
    // frames (then this frame is full-size).
    let exact = framed == body_len;
    let continues = framed > body_len && body_len >= u64::from(DEFAULT_MAX_FRAME_SIZE);
    if exact || continues {
        Framing::Framed
    } else {
        Framing::Undecided
    }
}

/// `/Service/Method` or `/pkg.Service/Method`: two non-empty segments of
/// identifier characters and dots, no query.
pub fn is_grpc_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let Some((service, method)) = rest.split_once('/') else {
        return false;
    };
    let ident = |s: &str, dots: bool| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
            && !s.starts_with('.')
            && !s.ends_with('.')
    };
    ident(service, true) && ident(method, false)
}

/// Everything one stream showed about being gRPC, gathered as it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrpcEvidence {
    pub request_framing: Framing,
    pub response_framing: Framing,
    pub request_trailers: bool,
    pub response_trailers: bool,
    /// `grpc-status` or `grpc-message` was decoded.
    pub grpc_field_decoded: bool,
}

impl GrpcEvidence {
    /// gRPC by the wire, for a stream whose `content-type` could not be
    /// decoded; `path` is the decoded `:path`, None when unknown.
    pub fn is_grpc(&self, path: Option<&str>) -> bool {
        if path.is_some_and(|p| !is_grpc_path(p)) {
            return false;
        }
        if self.grpc_field_decoded {
            return true;
        }
        self.request_framing == Framing::Framed
            && self.response_framing == Framing::Framed
            && !self.request_trailers
            && self.response_trailers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    fn first_frame(body: &[u8]) -> Framing {
        let frame = &body[..body.len().min(DEFAULT_MAX_FRAME_SIZE as usize)];
        classify(&frame[..frame.len().min(PREFIX_LEN)], frame.len() as u64)
    }

    #[test]
    fn grpc_messages_are_framed() {
        assert_eq!(first_frame(&framed(b"\x0a\x03abc")), Framing::Framed);
        // The empty message still has its prefix.
        assert_eq!(first_frame(&framed(b"")), Framing::Framed);
        // A message larger than one frame: the first frame is full.
        assert_eq!(first_frame(&framed(&[7u8; 40_000])), Framing::Framed);
        // Compressed flag.
        let mut c = framed(b"xyz");
        c[0] = 1;
        assert_eq!(first_frame(&c), Framing::Framed);
    }

    /// Non-gRPC bodies that start with a zero byte are never "framed".
    #[test]
    fn bodies_starting_with_zero_are_not_framed() {
        // An MP4 file: 00 00 00 18 'ftyp' ...
        let mut mp4 = vec![0x00, 0x00, 0x00, 0x18];
        mp4.extend_from_slice(b"ftypisom\x00\x00\x02\x00isomiso2avc1mp41");
        mp4.resize(3000, 0xab);
        assert_ne!(first_frame(&mp4), Framing::Framed);
        // A full-size frame of an MP4 that is 6251 bytes long would need the
        // length 0x00001866 to match: this one does not.
        let mut big = mp4.clone();
        big.resize(100_000, 0x11);
        assert_ne!(first_frame(&big), Framing::Framed);
        // Zeros: flag 0 and length 0, which fits only a 5-byte body.
        assert_ne!(first_frame(&[0u8; 100]), Framing::Framed);
        assert_ne!(first_frame(&[0u8; 20_000]), Framing::Framed);
        // A little-endian u32 count followed by records.
        let mut le = 3u32.to_le_bytes().to_vec();
        le.extend_from_slice(&[0u8; 60]);
        assert_ne!(first_frame(&le), Framing::Framed);
        // Short bodies.
        assert_eq!(first_frame(&[0, 0, 0]), Framing::NotFramed);
        // Flag byte above 1.
        assert_eq!(first_frame(&[2, 0, 0, 0, 0]), Framing::NotFramed);
    }

    #[test]
    fn grpc_paths() {
        assert!(is_grpc_path("/shop.Cart/Remove"));
        assert!(is_grpc_path("/grpc.health.v1.Health/Check"));
        assert!(is_grpc_path("/Greeter/SayHello"));
        assert!(!is_grpc_path("/"));
        assert!(!is_grpc_path("/index.html"));
        assert!(!is_grpc_path("/a/b/c"));
        assert!(!is_grpc_path("/shop.Cart/Add?x=1"));
        assert!(!is_grpc_path("/shop.Cart/"));
        assert!(!is_grpc_path("/.Cart/Add"));
        assert!(!is_grpc_path("shop.Cart/Add"));
    }

    fn all_but_fields() -> GrpcEvidence {
        GrpcEvidence {
            request_framing: Framing::Framed,
            response_framing: Framing::Framed,
            request_trailers: false,
            response_trailers: true,
            grpc_field_decoded: false,
        }
    }

    #[test]
    fn the_rule_needs_every_piece_seen() {
        let e = all_but_fields();
        assert!(e.is_grpc(None));
        assert!(e.is_grpc(Some("/shop.Cart/Remove")));
        // A known path of another shape rules it out.
        assert!(!e.is_grpc(Some("/upload")));
        assert!(!e.is_grpc(Some("/a/b/c")));
        // Each missing piece rules it out.
        for broken in [
            GrpcEvidence {
                response_trailers: false,
                ..e
            },
            GrpcEvidence {
                request_trailers: true,
                ..e
            },
            GrpcEvidence {
                request_framing: Framing::Undecided,
                ..e
            },
            GrpcEvidence {
                response_framing: Framing::NotFramed,
                ..e
            },
            GrpcEvidence {
                request_framing: Framing::NotSeen,
                ..e
            },
        ] {
            assert!(!broken.is_grpc(None), "{broken:?}");
        }
        // A decoded grpc-status is enough (a trailers-only error response).
        let status_only = GrpcEvidence {
            grpc_field_decoded: true,
            ..GrpcEvidence::default()
        };
        assert!(status_only.is_grpc(None));
        assert!(!status_only.is_grpc(Some("/upload")));
    }
}
