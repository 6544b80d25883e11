//! [`Http2Session`]: one connection's two byte streams in, exchanges out.
//!
//! Each direction runs a small state machine (preface → frame header →
//! payload) that accepts input split at any byte. DATA payloads are measured
//! and skipped, never buffered; header blocks (HEADERS / PUSH_PROMISE +
//! CONTINUATION) are buffered up to `max_header_list_bytes` and decoded with
//! that direction's HPACK decoder; small control payloads (SETTINGS,
//! RST_STREAM, GOAWAY's first 8 bytes) are buffered; the rest is skipped.
//!
//! Fatal conditions stop parsing for the connection, count one issue and emit
//! the open streams with `ExchangeEnd::Gap` (we no longer know how they
//! ended, which is what `Gap` means; `Reset` is kept for a peer's explicit
//! RST_STREAM / GOAWAY):
//! - malformed framing → `Http2FrameError`;
//! - HPACK error → `HpackError` (the dynamic table is lost);
//! - a header block above `max_header_list_bytes` → `HeadTooLarge` (we could
//!   not keep the table in sync without decoding it);
//! - a gap we cannot absorb → `ResyncAfterGap` (see [`Http2Session::on_gap`]).
//!
//! Joining midway ([`Http2Session::new_midstream`]): each direction hunts for
//! a frame boundary (two consecutive plausible frames) and the HPACK tables
//! start "unknown" (see [`super::hpack::table`]).

use super::frame::{
    self, flags, header_fragment, FrameHeader, FrameType, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_LEN,
    MAX_FRAME_SIZE_LIMIT, PREFACE,
};
use super::grpc_wire;
use super::hpack::{Decoder, DecoderError};
use super::hunt::{find_boundary, find_headers_of, Boundary, HUNT_WINDOW};
use super::streams::{Fields, Streams};
use crate::{ExchangeEnd, ExchangeSink, ParseIssue, RequestHead, Side};

/// Resource bounds of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Http2Limits {
    /// Open streams tracked at once; more are counted and not tracked.
    pub max_streams: usize,
    /// Largest header block (HPACK-encoded, all frames) buffered.
    pub max_header_list_bytes: usize,
    /// Hard frame size ceiling, whatever SETTINGS_MAX_FRAME_SIZE says.
    pub max_frame_size: u32,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Http2Limits {
            max_streams: 256,
            max_header_list_bytes: 64 * 1024,
            max_frame_size: MAX_FRAME_SIZE_LIMIT,
        }
    }
}

/// Most SETTINGS payload bytes kept (a 2730-setting frame is not worth more).
const SETTINGS_KEEP: usize = 16 * 1024;
/// Payload buffers above this are released after use.
const SHRINK_ABOVE: usize = 32 * 1024;

#[derive(Clone, Copy, Debug)]
enum Read {
    /// Matching the client preface; the count of bytes matched so far.
    Preface(usize),
    /// Joined midway: looking for a frame boundary.
    Hunt,
    /// Collecting the 9-byte frame header.
    Header,
    /// Collecting `keep` payload bytes into `payload`, then skipping `skip`.
    Payload {
        hdr: FrameHeader,
        keep: usize,
        skip: u32,
    },
}

/// A header block waiting for CONTINUATION frames.
#[derive(Clone, Copy, Debug)]
struct BlockMeta {
    stream_id: u32,
    /// Some for PUSH_PROMISE.
    promised: Option<u32>,
    end_stream: bool,
    start_ts: u64,
}

/// Why parsing of a connection stopped (see [`Http2Session::error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fatal {
    Frame(frame::Error),
    Hpack(DecoderError),
    HeadTooLarge,
    Gap,
}

impl From<frame::Error> for Fatal {
    fn from(e: frame::Error) -> Self {
        Fatal::Frame(e)
    }
}

/// The steps in which [`Http2Session::held_bytes`] counts HPACK decoders.
pub const HPACK_ACCOUNTING_STEP: usize = 1024;

/// One direction of the connection.
#[derive(Debug)]
struct Dir {
    read: Read,
    hdr: [u8; FRAME_HEADER_LEN],
    hdr_len: usize,
    /// Timestamp of the chunk holding the current frame's first byte.
    frame_start_ts: u64,
    payload: Vec<u8>,
    block: Vec<u8>,
    pending_block: Option<BlockMeta>,
    hunt: Vec<u8>,
    /// Timestamp of the chunk that started the bytes held in `hunt`.
    hunt_ts: u64,
    /// Largest frame this direction may send (the receiver's SETTINGS).
    max_frame_size: u32,
    /// SETTINGS from the receiver not yet acknowledged by this direction.
    pending_frame_size: Option<u32>,
    pending_table_size: Option<usize>,
    decoder: Decoder,
    /// `decoder.held_bytes(HPACK_ACCOUNTING_STEP)` after its last block:
    /// only decoding changes it, and the memory bound reads it after every
    /// call.
    hpack_held: usize,
}

impl Dir {
    fn new(read: Read, max_frame_size: u32, decoder: Decoder) -> Self {
        Dir {
            read,
            hdr: [0; FRAME_HEADER_LEN],
            hdr_len: 0,
            frame_start_ts: 0,
            payload: Vec::new(),
            block: Vec::new(),
            pending_block: None,
            hunt: Vec::new(),
            hunt_ts: 0,
            max_frame_size,
            pending_frame_size: None,
            pending_table_size: None,
            hpack_held: decoder.held_bytes(HPACK_ACCOUNTING_STEP),
            decoder,
        }
    }

    fn buffered(&self) -> usize {
        self.hdr_len + self.payload.len() + self.block.len() + self.hunt.len()
    }
}

/// HTTP/2 parser for one connection. See the module docs.
#[derive(Debug)]
pub struct Http2Session {
    limits: Http2Limits,
    /// [Request side, Response side].
    dirs: [Dir; 2],
    streams: Streams,
    failed: bool,
    closed: bool,
    error: Option<Fatal>,
    /// Joined midway ([`Http2Session::new_midstream`]).
    midstream: bool,
    hpack_refs: HpackRefs,
}

/// References to HPACK dynamic-table entries on a connection joined midway,
/// both directions together (see [`Http2Session::hpack_midstream_refs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HpackRefs {
    /// Resolved: entries inserted after the join.
    pub resolved: u64,
    /// Still unknown: entries from before the join; those fields are absent.
    pub unknown: u64,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Request => 0,
        Side::Response => 1,
    }
}

fn side_of(i: usize) -> Side {
    if i == 0 {
        Side::Request
    } else {
        Side::Response
    }
}

impl Http2Session {
    /// From the start of the connection (the client preface is expected on
    /// the Request side).
    pub fn new(limits: Http2Limits) -> Self {
        let limits = clamp(limits);
        let mfs = DEFAULT_MAX_FRAME_SIZE.min(limits.max_frame_size);
        Http2Session {
            limits,
            dirs: [
                Dir::new(Read::Preface(0), mfs, Decoder::new()),
                Dir::new(Read::Header, mfs, Decoder::new()),
            ],
            streams: Streams::new(limits.max_streams),
            failed: false,
            closed: false,
            error: None,
            midstream: false,
            hpack_refs: HpackRefs::default(),
        }
    }

    /// Joining an established connection midway: no preface, frame
    /// boundaries found by plausibility, HPACK tables unknown. Frame sizes
    /// are bounded only by `limits.max_frame_size` until SETTINGS are seen.
    pub fn new_midstream(limits: Http2Limits) -> Self {
        let limits = clamp(limits);
        let mfs = limits.max_frame_size;
        Http2Session {
            limits,
            dirs: [
                Dir::new(Read::Hunt, mfs, Decoder::new_unknown()),
                Dir::new(Read::Hunt, mfs, Decoder::new_unknown()),
            ],
            streams: Streams::new(limits.max_streams),
            failed: false,
            closed: false,
            error: None,
            midstream: true,
            hpack_refs: HpackRefs::default(),
        }
    }

    /// After an HTTP/1.1 `Upgrade: h2c` + 101: stream 1 is that request
    /// (kept as the caller parsed it, already complete); the client still
    /// sends the preface.
    pub fn new_after_upgrade(
        limits: Http2Limits,
        request: RequestHead,
        request_start_ns: u64,
    ) -> Self {
        let mut s = Self::new(limits);
        s.streams.open_upgraded(request, request_start_ns);
        s
    }

    pub fn on_data(&mut self, side: Side, ts_ns: u64, data: &[u8], sink: &mut impl ExchangeSink) {
        if self.failed || self.closed {
            return;
        }
        if let Err(f) = self.feed(side, ts_ns, data, sink) {
            self.fail(f, ts_ns, sink);
        }
    }

    /// `len` bytes of `side` were lost. Absorbed when they fall inside the
    /// skipped part of a frame whose length we know (DATA payload, GOAWAY debug
    /// data, unknown frames): the frame's declared size still counts. Before
    /// a midstream join has found a boundary, the hunt just restarts. Anywhere
    /// else (a frame header, a header block, a control payload, or past the
    /// frame's end) the HPACK state or the framing is lost: HTTP/2 cannot
    /// resynchronise safely, so parsing stops (`ResyncAfterGap`, open
    /// streams end with `Gap`).
    pub fn on_gap(&mut self, side: Side, len: u64, ts_ns: u64, sink: &mut impl ExchangeSink) {
        if self.failed || self.closed || len == 0 {
            return;
        }
        let d = &mut self.dirs[idx(side)];
        match d.read {
            Read::Hunt => d.hunt.clear(),
            Read::Payload { hdr, keep, skip }
                if d.payload.len() >= keep && u64::from(skip) >= len =>
            {
                let skip = skip - len as u32; // len <= skip <= u32::MAX
                d.read = Read::Payload { hdr, keep, skip };
                if skip == 0 {
                    if let Err(f) = self.complete_frame(idx(side), ts_ns, sink) {
                        self.fail(f, ts_ns, sink);
                    }
                }
            }
            // A DATA frame whose first body bytes (kept only to look for a
            // gRPC message prefix) are lost: what was kept stays, the rest
            // of the frame is skipped.
            Read::Payload { hdr, keep, skip }
                if hdr.kind == FrameType::Data
                    && d.payload.len() >= usize::from(hdr.has(flags::PADDED))
                    && (keep - d.payload.len()) as u64 + u64::from(skip) >= len =>
            {
                let remaining = (keep - d.payload.len()) as u64 + u64::from(skip);
                // remaining - len <= frame length < 2^24
                let skip = (remaining - len) as u32;
                d.read = Read::Payload {
                    hdr,
                    keep: d.payload.len(),
                    skip,
                };
                if skip == 0 {
                    if let Err(f) = self.complete_frame(idx(side), ts_ns, sink) {
                        self.fail(f, ts_ns, sink);
                    }
                }
            }
            _ => self.fail(Fatal::Gap, ts_ns, sink),
        }
    }

    /// The connection closed: streams still open end with `ConnectionClosed`.
    pub fn on_close(&mut self, ts_ns: u64, sink: &mut impl ExchangeSink) {
        if !self.failed && !self.closed {
            self.streams
                .close_all(ExchangeEnd::ConnectionClosed, ts_ns, sink);
        }
        self.closed = true;
        self.release();
    }

    /// Input bytes held (partial frame headers, header blocks, control
    /// payloads, the midstream hunt window); HPACK tables not included.
    pub fn buffered_bytes(&self) -> usize {
        self.dirs.iter().map(Dir::buffered).sum()
    }

    /// What the connection table's memory bound counts: the input bytes held
    /// ([`buffered_bytes`](Self::buffered_bytes)), the open streams' request
    /// heads in whole [`HELD_HEADS_STEP`](crate::HELD_HEADS_STEP)s, and both
    /// HPACK decoders
    /// ([`Decoder::held_bytes`]: tables of up to 64 KiB each, kept for the
    /// connection's life), the decoders in steps of [`HPACK_ACCOUNTING_STEP`]
    /// so that a full table whose entries turn over does not move the
    /// table's memory index on every header block.
    pub fn held_bytes(&self) -> usize {
        let heads = self.streams.head_bytes();
        let dirs: usize = self.dirs.iter().map(|d| d.buffered() + d.hpack_held).sum();
        dirs + heads - heads % crate::HELD_HEADS_STEP
    }

    /// Parsing stopped after a fatal error.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// What stopped parsing, when [`is_failed`](Self::is_failed).
    pub fn error(&self) -> Option<Fatal> {
        self.error
    }

    /// On a connection joined midway, the references to dynamic-table
    /// entries so far: resolved (learnt since the join) and still unknown.
    /// None for a connection seen from its start (every reference resolves).
    pub fn hpack_midstream_refs(&self) -> Option<HpackRefs> {
        self.midstream.then_some(self.hpack_refs)
    }

    /// Streams currently tracked.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    fn fail(&mut self, f: Fatal, ts: u64, sink: &mut impl ExchangeSink) {
        if self.failed {
            return;
        }
        sink.issue(match f {
            Fatal::Frame(_) => ParseIssue::Http2FrameError,
            Fatal::Hpack(_) => ParseIssue::HpackError,
            Fatal::HeadTooLarge => ParseIssue::HeadTooLarge,
            Fatal::Gap => ParseIssue::ResyncAfterGap,
        });
        self.failed = true;
        self.error = Some(f);
        self.streams.close_all(ExchangeEnd::Gap, ts, sink);
        self.release();
    }

    fn release(&mut self) {
        for d in &mut self.dirs {
            d.payload = Vec::new();
            d.block = Vec::new();
            d.hunt = Vec::new();
            d.hdr_len = 0;
            d.decoder = Decoder::new();
            d.hpack_held = 0;
        }
    }

    fn feed(
        &mut self,
        side: Side,
        ts: u64,
        mut data: &[u8],
        sink: &mut impl ExchangeSink,
    ) -> Result<(), Fatal> {
        while !data.is_empty() {
            let n = self.step(idx(side), ts, data, sink)?;
            // Every step consumes at least one byte; guard anyway.
            if n == 0 {
                break;
            }
            data = data.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Consumes a prefix of `data` (at least one byte) and returns its length.
    fn step(
        &mut self,
        i: usize,
        ts: u64,
        data: &[u8],
        sink: &mut impl ExchangeSink,
    ) -> Result<usize, Fatal> {
        let d = &mut self.dirs[i];
        match d.read {
            Read::Preface(matched) => {
                let want = PREFACE.get(matched..).unwrap_or_default();
                let n = want.len().min(data.len());
                if data[..n] != want[..n] {
                    return Err(frame::Error::BadPreface.into());
                }
                d.read = if matched + n == PREFACE.len() {
                    Read::Header
                } else {
                    Read::Preface(matched + n)
                };
                Ok(n)
            }
            Read::Hunt => {
                self.hunt(i, ts, data, sink)?;
                Ok(data.len())
            }
            Read::Header => {
                if d.hdr_len == 0 {
                    d.frame_start_ts = ts;
                }
                let n = (FRAME_HEADER_LEN - d.hdr_len).min(data.len());
                d.hdr[d.hdr_len..d.hdr_len + n].copy_from_slice(&data[..n]);
                d.hdr_len += n;
                if d.hdr_len == FRAME_HEADER_LEN {
                    d.hdr_len = 0;
                    let hdr = FrameHeader::parse(&d.hdr).ok_or(frame::Error::BadLength)?;
                    self.begin_frame(i, hdr)?;
                    if let Read::Payload {
                        keep: 0, skip: 0, ..
                    } = self.dirs[i].read
                    {
                        self.complete_frame(i, ts, sink)?;
                    }
                }
                Ok(n)
            }
            Read::Payload { hdr, keep, skip } => {
                let mut n = 0;
                if d.payload.len() < keep {
                    n = (keep - d.payload.len()).min(data.len());
                    d.payload.extend_from_slice(&data[..n]);
                    if d.payload.len() < keep {
                        return Ok(n);
                    }
                }
                let s = (data.len() - n).min(skip as usize);
                let skip = skip - s as u32;
                d.read = Read::Payload { hdr, keep, skip };
                if skip == 0 {
                    self.complete_frame(i, ts, sink)?;
                }
                Ok(n + s)
            }
        }
    }

    /// Validates a frame header and decides how much of the payload to keep.
    fn begin_frame(&mut self, i: usize, hdr: FrameHeader) -> Result<(), Fatal> {
        let limit = self.limits.max_header_list_bytes;
        let d = &mut self.dirs[i];
        hdr.validate(d.max_frame_size.min(self.limits.max_frame_size))?;
        match (&d.pending_block, hdr.kind) {
            (Some(b), FrameType::Continuation) if b.stream_id == hdr.stream_id => {}
            (Some(_), _) => return Err(frame::Error::ExpectedContinuation.into()),
            (None, FrameType::Continuation) => {
                return Err(frame::Error::UnexpectedContinuation.into())
            }
            _ => {}
        }
        let len = hdr.length as usize;
        let keep = match hdr.kind {
            // The pad length, and the first bytes of the body: a gRPC
            // message prefix is looked for there (see `grpc_wire`).
            FrameType::Data => {
                (usize::from(hdr.has(flags::PADDED)) + grpc_wire::PREFIX_LEN).min(len)
            }
            FrameType::PushPromise if i == 0 => return Err(frame::Error::PushFromClient.into()),
            FrameType::Headers | FrameType::PushPromise | FrameType::Continuation => {
                if d.block.len().saturating_add(len) > limit {
                    return Err(Fatal::HeadTooLarge);
                }
                len
            }
            FrameType::Settings => len.min(SETTINGS_KEEP),
            FrameType::RstStream => 4,
            FrameType::GoAway => 8,
            _ => 0,
        };
        d.payload.clear();
        d.read = Read::Payload {
            hdr,
            keep,
            skip: hdr.length - keep as u32,
        };
        Ok(())
    }

    /// The whole frame has been read (or skipped): act on it.
    fn complete_frame(
        &mut self,
        i: usize,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) -> Result<(), Fatal> {
        let side = side_of(i);
        let d = &mut self.dirs[i];
        let Read::Payload { hdr, .. } = d.read else {
            return Ok(());
        };
        d.read = Read::Header;
        let sid = hdr.stream_id;
        match hdr.kind {
            FrameType::Data => {
                let mut size = u64::from(hdr.length);
                let mut body = &d.payload[..];
                if hdr.has(flags::PADDED) {
                    let pad = u64::from(*d.payload.first().ok_or(frame::Error::BadLength)?);
                    size = size.checked_sub(1 + pad).ok_or(frame::Error::BadPadding)?;
                    body = body.get(1..).unwrap_or_default();
                }
                let prefix = body
                    .get(..body.len().min(size as usize))
                    .unwrap_or_default();
                self.streams.on_data(
                    side,
                    sid,
                    size,
                    prefix,
                    hdr.has(flags::END_STREAM),
                    ts,
                    sink,
                );
            }
            FrameType::Headers | FrameType::PushPromise => {
                let (range, promised) = header_fragment(&hdr, &d.payload)?;
                let meta = BlockMeta {
                    stream_id: sid,
                    promised: (hdr.kind == FrameType::PushPromise).then_some(promised),
                    end_stream: hdr.kind == FrameType::Headers && hdr.has(flags::END_STREAM),
                    start_ts: d.frame_start_ts,
                };
                if hdr.has(flags::END_HEADERS) {
                    // Common case: decode straight from the frame payload.
                    self.finish_block(i, meta, Some(range), ts, sink)?;
                } else {
                    d.block.clear();
                    d.block
                        .extend_from_slice(d.payload.get(range).unwrap_or_default());
                    d.pending_block = Some(meta);
                }
            }
            FrameType::Continuation => {
                d.block.extend_from_slice(&d.payload);
                if hdr.has(flags::END_HEADERS) {
                    if let Some(meta) = d.pending_block.take() {
                        self.finish_block(i, meta, None, ts, sink)?;
                    }
                }
            }
            FrameType::Settings => self.on_settings(i, hdr)?,
            FrameType::RstStream => self.streams.finish(sid, ExchangeEnd::Reset, ts, sink),
            FrameType::GoAway => {
                let p = d.payload.get(..4).ok_or(frame::Error::BadLength)?;
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                self.streams.on_goaway(side, last, ts, sink);
            }
            _ => {}
        }
        let d = &mut self.dirs[i];
        d.payload.clear();
        if d.payload.capacity() > SHRINK_ABOVE {
            d.payload = Vec::new();
        }
        if d.pending_block.is_none() && d.block.capacity() > SHRINK_ABOVE {
            d.block = Vec::new();
        }
        Ok(())
    }

    /// Decodes a complete header block (from `payload[range]`, or from
    /// `block` when `range` is None) and hands it to the streams.
    fn finish_block(
        &mut self,
        i: usize,
        meta: BlockMeta,
        range: Option<core::ops::Range<usize>>,
        ts: u64,
        sink: &mut impl ExchangeSink,
    ) -> Result<(), Fatal> {
        let d = &mut self.dirs[i];
        let bytes = match range {
            Some(r) => d.payload.get(r).unwrap_or_default(),
            None => &d.block[..],
        };
        let mut fields = Fields::default();
        // Decoded even for streams we do not track: the table must stay in sync.
        let decoded = d
            .decoder
            .decode_wanted(bytes, Fields::wants, |n, v| fields.on_field(n, v));
        // The table may have changed even when the block failed part way.
        d.hpack_held = d.decoder.held_bytes(HPACK_ACCOUNTING_STEP);
        let stats = decoded.map_err(Fatal::Hpack)?;
        d.block.clear();
        for _ in 0..stats.unknown_refs {
            sink.issue(ParseIssue::HpackUnknownIndex);
        }
        if self.midstream {
            self.hpack_refs.resolved += u64::from(stats.dynamic_resolved);
            self.hpack_refs.unknown += u64::from(stats.unknown_refs);
            if stats.dynamic_resolved > 0 {
                sink.issue(ParseIssue::HpackMidstreamResolved(u64::from(
                    stats.dynamic_resolved,
                )));
            }
        }
        fields.unknown_refs = stats.unknown_refs;
        if i == 1 && meta.promised.is_none() {
            self.sync_request_side_on(meta.stream_id, sink)?;
        }
        match meta.promised {
            Some(p) => self
                .streams
                .on_push_promise(p, fields, meta.start_ts, ts, sink),
            None => self.streams.on_headers(
                side_of(i),
                meta.stream_id,
                fields,
                meta.end_stream,
                meta.start_ts,
                ts,
                sink,
            ),
        }
        Ok(())
    }

    /// SETTINGS from direction `i` bound what the *other* direction sends
    /// (frame size) and how its HPACK encoder may size the table. Raises
    /// apply at once, the exact value when the other side acknowledges, so
    /// frames in flight before the ACK are judged by the older, larger value.
    fn on_settings(&mut self, i: usize, hdr: FrameHeader) -> Result<(), Fatal> {
        let ceiling = self.limits.max_frame_size;
        let [req, resp] = &mut self.dirs;
        let (this, other) = if i == 0 { (req, resp) } else { (resp, req) };
        if hdr.has(flags::ACK) {
            if let Some(v) = this.pending_frame_size.take() {
                this.max_frame_size = v;
            }
            if let Some(v) = this.pending_table_size.take() {
                this.decoder.set_bound(v);
            }
            return Ok(());
        }
        for s in this.payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let val = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                0x1 => {
                    let v = val as usize;
                    let now = other.decoder.bound().map_or(v, |b| b.max(v));
                    other.decoder.set_bound(now);
                    other.pending_table_size = Some(v);
                }
                0x5 => {
                    if !(DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT).contains(&val) {
                        return Err(frame::Error::BadSetting.into());
                    }
                    let v = val.min(ceiling);
                    other.max_frame_size = other.max_frame_size.max(v);
                    other.pending_frame_size = Some(v);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Midstream, the response side in sync and the request side still
    /// hunting: a response on `stream_id` confirms a complete request
    /// HEADERS frame of that stream held in the request side's hunt buffer
    /// (see [`find_headers_of`]); parsing of the request side starts there,
    /// at the time its bytes arrived, before the response is handled.
    fn sync_request_side_on(
        &mut self,
        stream_id: u32,
        sink: &mut impl ExchangeSink,
    ) -> Result<(), Fatal> {
        let max = self.limits.max_frame_size;
        let d = &mut self.dirs[0];
        if !matches!(d.read, Read::Hunt) || d.hunt.is_empty() {
            return Ok(());
        }
        let Some(off) = find_headers_of(&d.hunt, stream_id, max) else {
            return Ok(());
        };
        if off > 0 {
            sink.issue(ParseIssue::ResyncSkippedBytes(off as u64));
        }
        let held = std::mem::take(&mut d.hunt);
        let ts = d.hunt_ts;
        d.read = Read::Header;
        self.feed(Side::Request, ts, held.get(off..).unwrap_or_default(), sink)
    }

    /// Midstream: buffer bytes until two consecutive plausible frames are
    /// found, then parse normally from the first one.
    fn hunt(
        &mut self,
        i: usize,
        ts: u64,
        data: &[u8],
        sink: &mut impl ExchangeSink,
    ) -> Result<(), Fatal> {
        let max = self.limits.max_frame_size;
        let d = &mut self.dirs[i];
        let scan: &[u8] = if d.hunt.is_empty() {
            data
        } else {
            d.hunt.extend_from_slice(data);
            &d.hunt
        };
        let len = scan.len();
        match find_boundary(scan, max) {
            Boundary::At(off) => {
                if off > 0 {
                    sink.issue(ParseIssue::ResyncSkippedBytes(off as u64));
                }
                let rest: Vec<u8> = if d.hunt.is_empty() {
                    Vec::new()
                } else {
                    std::mem::take(&mut d.hunt)
                };
                d.read = Read::Header;
                if rest.is_empty() {
                    self.feed(side_of(i), ts, data.get(off..).unwrap_or_default(), sink)
                } else {
                    self.feed(side_of(i), ts, rest.get(off..).unwrap_or_default(), sink)
                }
            }
            Boundary::Undecided(from) => {
                let mut from = from;
                // Keep at most a window; drop the oldest bytes beyond it.
                if len - from > HUNT_WINDOW {
                    from = len - HUNT_WINDOW / 2;
                }
                if from > 0 {
                    sink.issue(ParseIssue::ResyncSkippedBytes(from as u64));
                }
                if d.hunt.is_empty() {
                    d.hunt_ts = ts;
                    d.hunt
                        .extend_from_slice(data.get(from..).unwrap_or_default());
                } else {
                    d.hunt.drain(..from);
                }
                Ok(())
            }
        }
    }
}

fn clamp(mut l: Http2Limits) -> Http2Limits {
    l.max_frame_size = l.max_frame_size.min(MAX_FRAME_SIZE_LIMIT);
    l
}
