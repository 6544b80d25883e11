//! The integrity check of TLS functions located without a symbol: after a
//! file's probes are attached, its calls are sampled (`TlsSampleRecord`)
//! until the samples show that the hooks return plaintext of the connection,
//! or that they do not. A file that fails is detached by the caller.
//!
//! Pure: no probes, no I/O. What counts as evidence:
//! - **violations** (a wrong hook): a call that reports more bytes than the
//!   buffer it was given, or plaintext read from a socket far ahead of the
//!   ciphertext that socket has delivered (a record decrypts to fewer bytes
//!   than it carries, so plaintext never leads by more than what the library
//!   had buffered before the socket was tracked);
//! - **plaintext**: the start of an HTTP/1 message, the HTTP/2 preface, a
//!   well-formed HTTP/2 frame header, or printable text;
//! - **binary**: anything else (compressed bodies, protocols we do not know,
//!   or ciphertext from a wrong hook).
//!
//! It does not decide on one sample: see [`FileIntegrity::add`].

use probes_common::{direction, TlsSampleRecord};

/// How far the plaintext read from a socket may lead its ciphertext: what a
/// library may have buffered before the socket was tracked (a few records).
pub const INGRESS_LEAD_SLACK: u64 = 64 * 1024;

/// What the first bytes of one call look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    Http,
    Text,
    Binary,
    /// No sample bytes (the read failed, or the call returned nothing).
    Unknown,
}

/// What one sample says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    Plausible(Content),
    Violation(&'static str),
}

impl Finding {
    /// Label for `wirespan_tls_integrity_samples_total{result}`.
    pub fn label(self) -> &'static str {
        match self {
            Finding::Plausible(Content::Http) => "http",
            Finding::Plausible(Content::Text) => "text",
            Finding::Plausible(Content::Binary) => "binary",
            Finding::Plausible(Content::Unknown) => "unknown",
            Finding::Violation(reason) => reason,
        }
    }
}

/// Every label [`Finding::label`] can give.
pub const FINDING_LABELS: [&str; 6] = [
    "http",
    "text",
    "binary",
    "unknown",
    "longer_than_buffer",
    "ahead_of_ciphertext",
];

const HTTP1_STARTS: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"HTTP/1.",
];

/// Classifies the first bytes of a call that returned `call_len` bytes.
pub fn classify(sample: &[u8], call_len: u64) -> Content {
    if sample.is_empty() {
        return Content::Unknown;
    }
    if HTTP1_STARTS.iter().any(|s| sample.starts_with(s))
        || sample.starts_with(b"PRI * HTTP/2.0")
        || plausible_h2_frame(sample, call_len)
    {
        return Content::Http;
    }
    let printable = |b: &u8| b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n' | b'\t');
    if sample.len() >= 16 && sample.iter().all(printable) {
        return Content::Text;
    }
    Content::Binary
}

/// An HTTP/2 frame header (RFC 9113 §4.1) whose type, flags and stream id
/// agree with each other, and whose payload fits in the call unless it is
/// DATA (a writer may split a DATA frame's payload across calls).
fn plausible_h2_frame(b: &[u8], call_len: u64) -> bool {
    if b.len() < 9 {
        return false;
    }
    let len = u64::from(u32::from_be_bytes([0, b[0], b[1], b[2]]));
    let kind = b[3];
    let flags = b[4];
    let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
    if stream & 0x8000_0000 != 0 {
        return false;
    }
    // (allowed flags, must have a stream id, must not)
    let (allowed, on_stream, connection_only) = match kind {
        0x0 => (0x01 | 0x08, true, false),               // DATA
        0x1 => (0x01 | 0x04 | 0x08 | 0x20, true, false), // HEADERS
        0x2 => (0, true, false),                         // PRIORITY
        0x3 => (0, true, false),                         // RST_STREAM
        0x4 => (0x01, false, true),                      // SETTINGS
        0x5 => (0x04 | 0x08, true, false),               // PUSH_PROMISE
        0x6 => (0x01, false, true),                      // PING
        0x7 => (0, false, true),                         // GOAWAY
        0x8 => (0, false, false),                        // WINDOW_UPDATE
        0x9 => (0x04, true, false),                      // CONTINUATION
        _ => return false,
    };
    if flags & !allowed != 0 || (on_stream && stream == 0) || (connection_only && stream != 0) {
        return false;
    }
    let fixed_len_ok = match kind {
        0x2 => len == 5,
        0x3 | 0x8 => len == 4,
        0x4 => len % 6 == 0,
        0x6 => len == 8,
        _ => true,
    };
    fixed_len_ok && (kind == 0x0 || len + 9 <= call_len)
}

/// Checks one sample.
pub fn check_sample(s: &TlsSampleRecord) -> Finding {
    // `requested` is the caller's `int num` (sign-extended) or `size_t num`.
    if (s.requested as i64) <= 0 || s.len > s.requested {
        return Finding::Violation("longer_than_buffer");
    }
    if s.direction == direction::INGRESS
        && s.tracked != 0
        && s.plaintext_offset.saturating_add(s.len)
            > s.wire_offset.saturating_add(INGRESS_LEAD_SLACK)
    {
        return Finding::Violation("ahead_of_ciphertext");
    }
    let n = (s.sample_len as usize).min(s.sample.len());
    Finding::Plausible(classify(&s.sample[..n], s.len))
}

/// Where a file's check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    /// The hooks return plaintext: sampling stops, the probes stay.
    Verified,
    /// The hooks do not return plaintext of the connection: detach.
    Failed(&'static str),
    /// Many samples and no decision (a binary protocol we do not know over
    /// TLS): sampling stops, the probes stay (nothing contradicts them).
    Inconclusive,
}

impl Verdict {
    /// Label for `wirespan_tls_integrity_checks_total{result}`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Verified => "verified",
            Verdict::Failed(_) => "failed",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Samples needed before any verdict but a failure.
pub const MIN_SAMPLES: u32 = 4;
/// Violations that fail a file.
pub const MAX_VIOLATIONS: u32 = 2;
/// Binary samples, with nothing plaintext-like among them, that fail a file.
pub const MAX_BINARY_ONLY: u32 = 16;
/// Samples after which an undecided file is left as it is.
pub const MAX_SAMPLES: u32 = 64;

/// The running tally of one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileIntegrity {
    pub samples: u32,
    pub violations: u32,
    pub http: u32,
    pub text: u32,
    pub binary: u32,
    pub last_violation: Option<&'static str>,
}

impl FileIntegrity {
    /// Adds one finding and says where the file stands. HTTP needs two
    /// samples (a random 9 bytes pass as an HTTP/2 frame header about once
    /// in a thousand), text four; any violation rules verification out.
    pub fn add(&mut self, finding: Finding) -> Verdict {
        self.samples += 1;
        match finding {
            Finding::Violation(reason) => {
                self.violations += 1;
                self.last_violation = Some(reason);
            }
            Finding::Plausible(Content::Http) => self.http += 1,
            Finding::Plausible(Content::Text) => self.text += 1,
            Finding::Plausible(Content::Binary) => self.binary += 1,
            Finding::Plausible(Content::Unknown) => {}
        }
        if self.violations >= MAX_VIOLATIONS {
            return Verdict::Failed(self.last_violation.unwrap_or("violation"));
        }
        if self.binary >= MAX_BINARY_ONLY && self.http == 0 && self.text == 0 {
            return Verdict::Failed("not_plaintext");
        }
        if self.violations == 0 && self.samples >= MIN_SAMPLES && (self.http >= 2 || self.text >= 4)
        {
            return Verdict::Verified;
        }
        if self.samples >= MAX_SAMPLES {
            return Verdict::Inconclusive;
        }
        Verdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes_common::TLS_SAMPLE_BYTES;

    fn sample(dir: u32, bytes: &[u8], len: u64, requested: u64) -> TlsSampleRecord {
        let mut s = TlsSampleRecord {
            len,
            requested,
            direction: dir,
            tracked: 1,
            wire_offset: 10_000,
            plaintext_offset: 1_000,
            ..Default::default()
        };
        let n = bytes.len().min(TLS_SAMPLE_BYTES);
        s.sample[..n].copy_from_slice(&bytes[..n]);
        s.sample_len = n as u32;
        s
    }

    #[test]
    fn http1_h2_and_text_are_plaintext() {
        assert_eq!(classify(b"GET /x HTTP/1.1\r\n", 17), Content::Http);
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n", 17), Content::Http);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24),
            Content::Http
        );
        // SETTINGS with two settings, HEADERS on stream 1, DATA split.
        assert_eq!(classify(&[0, 0, 12, 4, 0, 0, 0, 0, 0], 21), Content::Http);
        assert_eq!(
            classify(&[0, 0, 3, 1, 0x04, 0, 0, 0, 1, 0x82, 0x86, 0x84], 12),
            Content::Http
        );
        assert_eq!(
            classify(&[0, 0x40, 0, 0, 0, 0, 0, 0, 3], 100),
            Content::Http
        );
        assert_eq!(classify(b"EHLO mail.example.org\r\n", 23), Content::Text);
    }

    #[test]
    fn malformed_frames_and_noise_are_binary() {
        // SETTINGS on a stream, HEADERS on stream 0, unknown type, a
        // HEADERS frame longer than the call, PING of the wrong length.
        for frame in [
            [0u8, 0, 6, 4, 0, 0, 0, 0, 1],
            [0, 0, 3, 1, 0x04, 0, 0, 0, 0],
            [0, 0, 3, 0x42, 0, 0, 0, 0, 1],
            [0, 1, 0, 1, 0x04, 0, 0, 0, 1],
            [0, 0, 7, 6, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(classify(&frame, 20), Content::Binary, "{frame:?}");
        }
        // Ciphertext-like bytes from a fixed generator: not one of 1,000
        // 64-byte windows passes as plaintext twice in a row.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut plausible = 0;
        for _ in 0..1000 {
            let mut b = [0u8; 64];
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            if classify(&b, 16384) != Content::Binary {
                plausible += 1;
            }
        }
        assert!(
            plausible < 10,
            "{plausible} random windows looked like plaintext"
        );
        assert_eq!(classify(&[], 10), Content::Unknown);
    }

    #[test]
    fn violations_are_found() {
        let s = sample(direction::INGRESS, b"GET / HTTP/1.1\r\n", 100, 50);
        assert_eq!(check_sample(&s), Finding::Violation("longer_than_buffer"));
        let s = sample(direction::INGRESS, b"GET / HTTP/1.1\r\n", 100, u64::MAX);
        assert_eq!(check_sample(&s), Finding::Violation("longer_than_buffer"));
        let mut s = sample(direction::INGRESS, b"GET / HTTP/1.1\r\n", 100, 16384);
        s.plaintext_offset = 200_000;
        assert_eq!(check_sample(&s), Finding::Violation("ahead_of_ciphertext"));
        // Egress is not checked against the wire: a custom BIO sends later.
        s.direction = direction::EGRESS;
        assert_eq!(check_sample(&s), Finding::Plausible(Content::Http));
        // An untracked socket's offsets mean nothing.
        s.direction = direction::INGRESS;
        s.tracked = 0;
        assert_eq!(check_sample(&s), Finding::Plausible(Content::Http));
    }

    #[test]
    fn verdicts() {
        let http = Finding::Plausible(Content::Http);
        let binary = Finding::Plausible(Content::Binary);
        let mut f = FileIntegrity::default();
        assert_eq!(f.add(http), Verdict::Pending);
        assert_eq!(f.add(binary), Verdict::Pending);
        assert_eq!(f.add(http), Verdict::Pending);
        assert_eq!(f.add(binary), Verdict::Verified);

        let mut f = FileIntegrity::default();
        assert_eq!(
            f.add(Finding::Violation("longer_than_buffer")),
            Verdict::Pending
        );
        for _ in 0..3 {
            assert_eq!(
                f.add(http),
                Verdict::Pending,
                "a violation rules out verification"
            );
        }
        assert_eq!(
            f.add(Finding::Violation("ahead_of_ciphertext")),
            Verdict::Failed("ahead_of_ciphertext")
        );

        let mut f = FileIntegrity::default();
        for _ in 0..MAX_BINARY_ONLY - 1 {
            assert_eq!(f.add(binary), Verdict::Pending);
        }
        assert_eq!(f.add(binary), Verdict::Failed("not_plaintext"));

        // One HTTP sample among binary ones: neither verified nor failed,
        // until the sample budget ends.
        let mut f = FileIntegrity::default();
        f.add(http);
        let mut last = Verdict::Pending;
        for _ in 1..MAX_SAMPLES {
            last = f.add(binary);
        }
        assert_eq!(last, Verdict::Inconclusive);
    }
}
