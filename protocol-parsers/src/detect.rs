//! Protocol detection from the first bytes of one direction of a connection.
//!
//! Recognises the HTTP/2 client connection preface, an HTTP/1 request line
//! start (a known method followed by a space) and an HTTP/1 status line start
//! (`HTTP/1.`). It says [`Detected::NeedMore`] while the bytes are a proper
//! prefix of one of those, so the caller can wait for the next chunk. It does
//! not detect TLS or other protocols (they are all [`Detected::Unknown`]), and
//! does not validate more than the start: the parsers do that.

use crate::http1::start::{known_method_sp, prefix_verdict, Verdict};

/// The HTTP/2 client connection preface (RFC 9113 3.4).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a direction look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Http1Request,
    Http1Response,
    Http2Preface,
    /// A proper prefix of something recognisable: wait for more bytes.
    NeedMore,
    Unknown,
}

/// Look at the first bytes of one direction of a connection.
pub fn detect(first_bytes: &[u8]) -> Detected {
    let checks = [
        (
            prefix_verdict(HTTP2_PREFACE, first_bytes),
            Detected::Http2Preface,
        ),
        (
            prefix_verdict(b"HTTP/1.", first_bytes),
            Detected::Http1Response,
        ),
        (known_method_sp(first_bytes), Detected::Http1Request),
    ];
    let mut need_more = false;
    for (verdict, what) in checks {
        match verdict {
            Verdict::Yes => return what,
            Verdict::NeedMore => need_more = true,
            Verdict::No => {}
        }
    }
    if need_more {
        Detected::NeedMore
    } else {
        Detected::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_preface() {
        assert_eq!(detect(HTTP2_PREFACE), Detected::Http2Preface);
        let mut more = HTTP2_PREFACE.to_vec();
        more.extend_from_slice(b"\x00\x00\x12\x04\x00");
        assert_eq!(detect(&more), Detected::Http2Preface);
        for n in 1..HTTP2_PREFACE.len() {
            assert_eq!(
                detect(&HTTP2_PREFACE[..n]),
                Detected::NeedMore,
                "prefix {n}"
            );
        }
        // Diverges from the preface after a matching start.
        assert_eq!(detect(b"PRI * HTTP/1.1\r\n"), Detected::Unknown);
    }

    #[test]
    fn http1_requests() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            let line = format!("{m} / HTTP/1.1\r\n");
            assert_eq!(detect(line.as_bytes()), Detected::Http1Request, "{m}");
            assert_eq!(
                detect(format!("{m} ").as_bytes()),
                Detected::Http1Request,
                "{m}"
            );
            assert_eq!(detect(m.as_bytes()), Detected::NeedMore, "{m}");
        }
        assert_eq!(detect(b"P"), Detected::NeedMore);
        assert_eq!(detect(b"GETS / HTTP/1.1"), Detected::Unknown);
        assert_eq!(detect(b"get / HTTP/1.1"), Detected::Unknown);
        assert_eq!(detect(b"BREW /pot HTTP/1.1"), Detected::Unknown);
    }

    #[test]
    fn http1_responses() {
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n"), Detected::Http1Response);
        assert_eq!(detect(b"HTTP/1.0"), Detected::Http1Response);
        assert_eq!(detect(b"HTTP/1."), Detected::Http1Response);
        assert_eq!(detect(b"HTTP/"), Detected::NeedMore);
        assert_eq!(detect(b"H"), Detected::NeedMore);
        assert_eq!(detect(b"HTTP/2 200"), Detected::Unknown);
    }

    #[test]
    fn other_bytes() {
        assert_eq!(detect(b""), Detected::NeedMore);
        assert_eq!(detect(b"\x16\x03\x01\x02\x00"), Detected::Unknown);
        assert_eq!(detect(b"SSH-2.0-OpenSSH"), Detected::Unknown);
        assert_eq!(detect(b"\r\nGET / HTTP/1.1"), Detected::Unknown);
    }
}
