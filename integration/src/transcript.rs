//! What a helper program says it sent and received on each connection
//! (written by `scripts/capture_peer.py`), and the comparison of a captured
//! stream with it.

use crate::capture::{bytes_diff, Stream};
use std::path::Path;

/// One connection as the program saw it.
#[derive(Clone, Debug)]
pub struct ConnTranscript {
    pub index: u64,
    pub local_port: u16,
    pub peer_port: u16,
    pub sent: Vec<u8>,
    pub received: Vec<u8>,
}

/// Reads a transcript file: per connection a line
/// `index local_port peer_port sent_len recv_len` then the two byte strings.
pub fn read_transcript(path: &Path) -> Vec<ConnTranscript> {
    let data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("cannot read the transcript {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let nl = data[at..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("transcript header line")
            + at;
        let fields: Vec<u64> = std::str::from_utf8(&data[at..nl])
            .expect("ascii header")
            .split_whitespace()
            .map(|f| f.parse().expect("number"))
            .collect();
        assert_eq!(fields.len(), 5, "bad transcript header");
        let (s, r) = (fields[3] as usize, fields[4] as usize);
        let body = nl + 1;
        out.push(ConnTranscript {
            index: fields[0],
            local_port: fields[1] as u16,
            peer_port: fields[2] as u16,
            sent: data[body..body + s].to_vec(),
            received: data[body + s..body + s + r].to_vec(),
        });
        at = body + s + r;
    }
    out
}

/// How a captured stream compares with the bytes the program moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCheck {
    /// Offsets never copied.
    pub missing: u64,
    /// Offsets copied with a different byte: never acceptable.
    pub wrong: u64,
    /// Bytes copied beyond what the program moved: never acceptable.
    pub extra: u64,
    pub detail: String,
}

impl StreamCheck {
    pub fn exact(&self) -> bool {
        self.missing == 0 && self.wrong == 0 && self.extra == 0
    }
}

/// Compares `stream` with `want` offset by offset.
pub fn check_stream(stream: &Stream, want: &[u8]) -> StreamCheck {
    let mut c = StreamCheck::default();
    let covered = stream.covered();
    for (i, w) in want.iter().enumerate() {
        match covered.get(i) {
            Some(true) if stream.bytes[i] == *w => {}
            Some(true) => c.wrong += 1,
            _ => c.missing += 1,
        }
    }
    c.extra = covered.iter().skip(want.len()).filter(|x| **x).count() as u64;
    if !c.exact() {
        c.detail = format!(
            "missing {} wrong {} extra {}; {}",
            c.missing,
            c.wrong,
            c.extra,
            bytes_diff(&stream.bytes, want)
        );
    }
    c
}
