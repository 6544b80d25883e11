//! TLS plaintext written before its socket was known (a custom BIO: gRPC,
//! for example, encrypts with `SSL_write` and sends the ciphertext itself
//! afterwards). The probes send such plaintext at once
//! (`source::TLS_WRITE_UNBOUND`, per thread, in order) and, when the thread
//! next writes to a tracked socket, a `TlsBindRecord` saying which socket
//! and where in its plaintext stream the run belongs. This module holds the
//! runs per thread, bounded, and turns a bound run into an ordinary TLS
//! data record for the pipeline.
//!
//! It does not guess: a run is only ever placed where the kernel said. A
//! run that is replaced, evicted, cut by the bounds or never bound is
//! counted (a run still held when its process exits or the agent stops is
//! `unbound`); a bound run whose bytes were cut becomes an exact gap.

use std::collections::HashMap;

use probes_common::{direction, kind, source, DataHeader, RecordHeader, TlsBindRecord};
use self_metrics::{Counter, Registry};

/// Bytes held for one thread's run; a longer run keeps its first bytes and
/// the rest becomes a gap when it is bound.
pub const MAX_RUN_BYTES: usize = 256 * 1024;
/// Threads with a run held at once; the oldest run is dropped beyond.
pub const MAX_THREADS: usize = 1024;

struct Run {
    bytes: Vec<u8>,
    /// False once a chunk did not continue the held bytes (a cap or loss).
    contiguous: bool,
    seq: u64,
}

/// Runs waiting for their socket, by (tgid, tid).
pub struct DeferredTlsWrites {
    runs: HashMap<(u32, u32), Run>,
    seq: u64,
    held_bytes: usize,
    outcomes: [Counter; 5],
}

const BOUND: usize = 0;
const REPLACED: usize = 1;
const EVICTED: usize = 2;
const CUT: usize = 3;
const UNBOUND: usize = 4;

impl DeferredTlsWrites {
    pub fn new(registry: &Registry) -> Self {
        let c = |result: &'static str| {
            registry.counter(
                "wirespan_tls_deferred_runs_total",
                "Runs of TLS plaintext written before their socket was known, by what became \
                 of them: bound (placed on their socket), replaced (the thread began another \
                 run, on another SSL*, first: dropped), evicted (too many threads waiting: \
                 dropped), cut (longer than a run may hold: the rest is an exact gap), \
                 unbound (its process exited, or the agent stopped, before it was bound: \
                 dropped).",
                &[("result", result)],
            )
        };
        Self {
            runs: HashMap::new(),
            seq: 0,
            held_bytes: 0,
            outcomes: [
                c("bound"),
                c("replaced"),
                c("evicted"),
                c("cut"),
                c("unbound"),
            ],
        }
    }

    /// Bytes held now (for the memory accounting).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// A `TLS_WRITE_UNBOUND` chunk: appended to its thread's run, or the
    /// start of a new one (position 0).
    pub fn hold(&mut self, header: &DataHeader, payload: &[u8]) {
        let key = (header.header.tgid, header.header.tid);
        let position = header
            .call_stream_offset
            .saturating_add(u64::from(header.chunk_offset));
        if position == 0 && header.chunk_offset == 0 {
            if let Some(old) = self.runs.remove(&key) {
                self.held_bytes -= old.bytes.len();
                self.outcomes[REPLACED].inc();
            }
        }
        if !self.runs.contains_key(&key) {
            if self.runs.len() >= MAX_THREADS {
                self.evict_oldest();
            }
            self.seq += 1;
            self.runs.insert(
                key,
                Run {
                    bytes: Vec::new(),
                    contiguous: position == 0,
                    seq: self.seq,
                },
            );
        }
        let Some(run) = self.runs.get_mut(&key) else {
            return;
        };
        if run.contiguous && position == run.bytes.len() as u64 {
            let room = MAX_RUN_BYTES.saturating_sub(run.bytes.len());
            let take = payload.len().min(room);
            run.bytes.extend_from_slice(&payload[..take]);
            self.held_bytes += take;
            if take < payload.len() {
                run.contiguous = false;
                self.outcomes[CUT].inc();
            }
        } else if !payload.is_empty() {
            run.contiguous = false;
        }
    }

    /// Process `tgid` exited: its threads' runs will never be bound.
    pub fn process_exited(&mut self, tgid: u32) {
        if self.runs.is_empty() {
            return;
        }
        self.drop_runs(|(t, _)| t == tgid);
    }

    /// The agent stops: every run still held is dropped, counted.
    pub fn drop_all(&mut self) {
        self.drop_runs(|_| true);
    }

    fn drop_runs(&mut self, mut matches: impl FnMut((u32, u32)) -> bool) {
        let (mut dropped, mut bytes) = (0, 0);
        self.runs.retain(|key, run| {
            let keep = !matches(*key);
            if !keep {
                dropped += 1;
                bytes += run.bytes.len();
            }
            keep
        });
        self.held_bytes -= bytes;
        self.outcomes[UNBOUND].add(dropped);
    }

    fn evict_oldest(&mut self) {
        if let Some(key) = self.runs.iter().min_by_key(|(_, r)| r.seq).map(|(k, _)| *k) {
            if let Some(run) = self.runs.remove(&key) {
                self.held_bytes -= run.bytes.len();
                self.outcomes[EVICTED].inc();
            }
        }
    }

    /// The kernel bound a thread's run: the TLS data record(s) to feed,
    /// as (header, payload). The bytes held go first; whatever the run had
    /// beyond them is a header-only record (an exact gap). Empty when the
    /// thread has no run (the agent started in the middle of one).
    pub fn bind(&mut self, bind: &TlsBindRecord) -> Vec<(DataHeader, Vec<u8>)> {
        let key = (bind.header.tgid, bind.header.tid);
        let Some(run) = self.runs.remove(&key) else {
            // Its bytes were dropped (replaced or evicted, counted then) or
            // came before the agent: the stream gets an exact gap.
            return vec![(self.header(bind, 0, bind.len), Vec::new())];
        };
        self.held_bytes -= run.bytes.len();
        self.outcomes[BOUND].inc();
        let mut out = Vec::with_capacity(2);
        let held = (run.bytes.len() as u64).min(bind.len);
        if held > 0 {
            let mut bytes = run.bytes;
            bytes.truncate(held as usize);
            out.push((self.header(bind, 0, held), bytes));
        }
        if held < bind.len {
            out.push((self.header(bind, held, bind.len - held), Vec::new()));
        }
        out
    }

    /// A TLS egress record on the bound socket: `len` bytes at `at` within
    /// the run; no payload means a gap of that size.
    fn header(&self, bind: &TlsBindRecord, at: u64, len: u64) -> DataHeader {
        DataHeader {
            header: RecordHeader {
                kind: kind::DATA,
                ..bind.header
            },
            conn_id: bind.conn_id,
            call_stream_offset: bind.stream_offset + at,
            call_len: len,
            chunk_offset: 0,
            chunk_len: 0,
            direction: direction::EGRESS,
            source: source::TLS_WRITE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unbound(tid: u32, position: u64, bytes: &[u8]) -> DataHeader {
        DataHeader {
            header: RecordHeader {
                kind: kind::DATA,
                tgid: 7,
                tid,
                fd: -1,
                ts_ns: 1,
            },
            conn_id: 0,
            call_stream_offset: position,
            call_len: bytes.len() as u64,
            chunk_offset: 0,
            chunk_len: bytes.len() as u32,
            direction: direction::EGRESS,
            source: source::TLS_WRITE_UNBOUND,
        }
    }

    fn bind(tid: u32, offset: u64, len: u64) -> TlsBindRecord {
        TlsBindRecord {
            header: RecordHeader {
                kind: kind::TLS_BIND,
                tgid: 7,
                tid,
                fd: 9,
                ts_ns: 2,
            },
            conn_id: 42,
            stream_offset: offset,
            len,
        }
    }

    fn with_len(mut records: Vec<(DataHeader, Vec<u8>)>) -> Vec<(DataHeader, Vec<u8>)> {
        for (h, b) in &mut records {
            h.chunk_len = b.len() as u32;
        }
        records
    }

    #[test]
    fn a_run_of_writes_is_placed_where_the_kernel_says() {
        let registry = Registry::new();
        let mut d = DeferredTlsWrites::new(&registry);
        d.hold(&unbound(1, 0, b"PRI * HTTP/2.0\r\n"), b"PRI * HTTP/2.0\r\n");
        d.hold(&unbound(1, 16, b"\r\nSM\r\n\r\n"), b"\r\nSM\r\n\r\n");
        // Another thread's run does not mix in.
        d.hold(&unbound(2, 0, b"other"), b"other");
        assert_eq!(d.held_bytes(), 29);
        let out = with_len(d.bind(&bind(1, 100, 24)));
        assert_eq!(out.len(), 1);
        let (h, b) = &out[0];
        assert_eq!(b, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(
            (h.header.fd, h.conn_id, h.call_stream_offset, h.call_len),
            (9, 42, 100, 24)
        );
        assert_eq!(h.source, source::TLS_WRITE);
        assert_eq!(d.held_bytes(), 5);
        assert_eq!(
            registry.value("wirespan_tls_deferred_runs_total", &[("result", "bound")]),
            Some(1)
        );
    }

    #[test]
    fn missing_and_cut_bytes_become_exact_gaps() {
        let registry = Registry::new();
        let mut d = DeferredTlsWrites::new(&registry);
        // No run at all (the agent started in the middle of one): a gap.
        let out = d.bind(&bind(1, 0, 10));
        assert_eq!(out.len(), 1);
        assert!(out[0].1.is_empty());
        assert_eq!((out[0].0.call_stream_offset, out[0].0.call_len), (0, 10));

        // A chunk that does not continue the run: what came before is
        // placed, the rest is a gap.
        d.hold(&unbound(1, 0, b"abc"), b"abc");
        d.hold(&unbound(1, 10, b"xyz"), b"xyz");
        let out = d.bind(&bind(1, 50, 13));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].1, b"abc");
        assert_eq!((out[1].0.call_stream_offset, out[1].0.call_len), (53, 10));

        // Longer than a run may hold.
        let big = vec![b'a'; MAX_RUN_BYTES + 10];
        d.hold(&unbound(3, 0, &big), &big);
        assert_eq!(d.held_bytes(), MAX_RUN_BYTES);
        let out = d.bind(&bind(3, 0, big.len() as u64));
        assert_eq!(out[0].1.len(), MAX_RUN_BYTES);
        assert_eq!(out[1].0.call_len, 10);
        assert_eq!(d.held_bytes(), 0);
        assert_eq!(
            registry.value("wirespan_tls_deferred_runs_total", &[("result", "cut")]),
            Some(1)
        );
    }

    #[test]
    fn replaced_and_evicted_runs_are_counted() {
        let registry = Registry::new();
        let mut d = DeferredTlsWrites::new(&registry);
        d.hold(&unbound(1, 0, b"first"), b"first");
        d.hold(&unbound(1, 0, b"second"), b"second");
        for tid in 10..10 + MAX_THREADS as u32 {
            d.hold(&unbound(tid, 0, b"x"), b"x");
        }
        let value = |r| registry.value("wirespan_tls_deferred_runs_total", &[("result", r)]);
        assert_eq!(value("replaced"), Some(1));
        assert_eq!(value("evicted"), Some(1));
        assert_eq!(d.held_bytes(), MAX_THREADS);
    }

    /// Found by fuzzing (`recording_reader`): runs held when their process
    /// exited, or when the agent flushed at its end, stayed held, uncounted.
    #[test]
    fn runs_of_an_exited_process_and_at_the_end_are_dropped_and_counted() {
        let registry = Registry::new();
        let mut d = DeferredTlsWrites::new(&registry);
        d.hold(&unbound(1, 0, b"abc"), b"abc");
        d.hold(&unbound(2, 0, b"de"), b"de");
        let mut other = unbound(3, 0, b"f");
        other.header.tgid = 8;
        d.hold(&other, b"f");
        let value = |r| registry.value("wirespan_tls_deferred_runs_total", &[("result", r)]);
        d.process_exited(7);
        assert_eq!(d.held_bytes(), 1);
        assert_eq!(value("unbound"), Some(2));
        d.drop_all();
        assert_eq!(d.held_bytes(), 0);
        assert_eq!(value("unbound"), Some(3));
        // The exited process's threads have nothing left to bind.
        let out = d.bind(&bind(1, 0, 3));
        assert!(out[0].1.is_empty(), "an exact gap, not the dropped bytes");
    }
}
