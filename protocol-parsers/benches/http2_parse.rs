//! HTTP/2 session throughput: streams per second for a request + response
//! with a few headers (HPACK literals and dynamic-table hits) and small DATA.
//! `hpack/huffman_decode`: Huffman-coded header values of the kinds a server
//! sends unindexed on every response (`date`, `etag`, `last-modified`) and a
//! client on every request (paths), in bytes decoded per second; the same
//! through `recent_strings::decode_recent` when they recur (`recent_hits`)
//! and when none recurs (`recent_misses`: 4,096 distinct dates, more than
//! the slots, in turn).
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use protocol_parsers::http2::hpack::{huffman, recent_strings};
use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::{ExchangeSink, HttpExchange, ParseIssue, Side};
use test_support::hpack::{block, Name, Rep};
use test_support::http2::{frame, preface, FrameType, END_HEADERS, END_STREAM};

/// Counts instead of collecting, so the bench measures the parser.
#[derive(Default)]
struct Count(u64);

impl ExchangeSink for Count {
    fn exchange(&mut self, e: HttpExchange) {
        self.0 += e.response_body_size;
    }
    fn issue(&mut self, _: ParseIssue) {}
}

const STREAMS: u32 = 1000;
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// (request side bytes, response side bytes) for `STREAMS` streams.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut q = preface();
    q.extend(frame(FrameType::Settings, 0, 0, &[]));
    let mut r = frame(FrameType::Settings, 0, 0, &[]);
    for n in 0..STREAMS {
        let sid = 2 * n + 1;
        // POST https, :path literal (not indexed), :authority + user-agent
        // indexed on first use then referenced (dynamic 63 and 62),
        // content-type (static 31) and traceparent literals without indexing.
        let path = format!("/api/v1/items/{n}");
        let mut reps = vec![
            Rep::Indexed(3),
            Rep::Indexed(7),
            Rep::NoIdx(Name::Idx(4), &path),
        ];
        if n == 0 {
            reps.push(Rep::Inc(Name::Idx(1), "api.example.com"));
            reps.push(Rep::Inc(Name::Idx(58), "bench-client/1.0"));
        } else {
            reps.extend([Rep::Indexed(63), Rep::Indexed(62)]);
        }
        reps.push(Rep::NoIdx(Name::Idx(31), "application/json"));
        reps.push(Rep::NoIdx(Name::Lit("traceparent"), TRACEPARENT));
        q.extend(frame(FrameType::Headers, END_HEADERS, sid, &block(&reps)));
        q.extend(frame(FrameType::Data, END_STREAM, sid, &[b'{'; 64]));
        let h = block(&[
            Rep::Indexed(8),
            Rep::NoIdx(Name::Idx(31), "application/json"),
        ]);
        r.extend(frame(FrameType::Headers, END_HEADERS, sid, &h));
        r.extend(frame(FrameType::Data, END_STREAM, sid, &[b'}'; 200]));
    }
    (q, r)
}

fn bench(c: &mut Criterion) {
    let (q, r) = conversation();
    let mut g = c.benchmark_group("http2");
    g.throughput(Throughput::Elements(u64::from(STREAMS)));
    g.bench_function("streams_whole_buffers", |b| {
        b.iter_batched(
            || Http2Session::new(Http2Limits::default()),
            |mut s| {
                let mut sink = Count::default();
                // Alternate sides per 4 KiB, as a capture would.
                let (mut cq, mut cr) = (q.chunks(4096), r.chunks(4096));
                loop {
                    let (a, b) = (cq.next(), cr.next());
                    if a.is_none() && b.is_none() {
                        break;
                    }
                    if let Some(a) = a {
                        s.on_data(Side::Request, 1, a, &mut sink);
                    }
                    if let Some(b) = b {
                        s.on_data(Side::Response, 2, b, &mut sink);
                    }
                }
                s.on_close(3, &mut sink);
                assert_eq!(sink.0, 200 * u64::from(STREAMS));
                sink.0
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let values = [
        "Mon, 07 Dec 2026 19:00:00 GMT",
        "\"6954fa0c-1a4\"",
        "Sun, 06 Dec 2026 10:11:12 GMT",
        "/api/v1/items/123456?page=2&limit=50",
        "nghttpd nghttp2/1.52.0",
        "application/grpc+proto",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ];
    let encoded: Vec<Vec<u8>> = values.iter().map(|v| huffman_encoded(v)).collect();
    let plain: usize = values.iter().map(|v| v.len()).sum();
    let mut g = c.benchmark_group("hpack");
    g.throughput(Throughput::Bytes(plain as u64));
    g.bench_function("huffman_decode", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let n = decode_each(encoded.iter(), &mut out, huffman::decode);
            assert_eq!(n, plain);
            n
        })
    });
    g.bench_function("recent_hits", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let n = decode_each(encoded.iter(), &mut out, recent_strings::decode_recent);
            assert_eq!(n, plain);
            n
        })
    });
    // Same sizes as the dates above, never the same string twice in a row of
    // 512 slots: every lookup misses.
    let distinct: Vec<Vec<u8>> = (0..4096)
        .map(|i| {
            huffman_encoded(&format!(
                "Mon, 07 Dec 2026 {:02}:{:02}:{:02} GMT",
                i / 3600,
                (i / 60) % 60,
                i % 60
            ))
        })
        .collect();
    let mut next = 0usize;
    g.throughput(Throughput::Bytes(29 * 7));
    let misses: [(&str, Decode); 2] = [
        ("recent_misses", recent_strings::decode_recent),
        ("huffman_decode_dates", huffman::decode),
    ];
    for (name, decode) in misses {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                let seven = (next..next + 7).map(|k| &distinct[k % distinct.len()]);
                next += 7;
                decode_each(seven, &mut out, decode)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

fn huffman_encoded(v: &str) -> Vec<u8> {
    let mut e = Vec::new();
    huffman::encode(v.as_bytes(), &mut e);
    e
}

/// A Huffman string decoder, plain or through the recent-strings slots.
type Decode = fn(&[u8], &mut Vec<u8>) -> Result<(), huffman::HuffmanError>;

/// Decodes each string with `decode` into `out` (cleared each time); the
/// decoded bytes in all.
fn decode_each<'a>(
    strings: impl Iterator<Item = &'a Vec<u8>>,
    out: &mut Vec<u8>,
    decode: Decode,
) -> usize {
    let mut n = 0;
    for e in strings {
        out.clear();
        decode(std::hint::black_box(e), out).expect("valid");
        n += out.len();
    }
    n
}
