//! HTTP/2 session throughput: streams per second for a request + response
//! with a few headers (HPACK literals and dynamic-table hits) and small DATA.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use protocol_parsers::http2::frame::{FrameHeader, PREFACE};
use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::{ExchangeSink, HttpExchange, ParseIssue, Side};

/// Counts instead of collecting, so the bench measures the parser.
#[derive(Default)]
struct Count(u64);

impl ExchangeSink for Count {
    fn exchange(&mut self, e: HttpExchange) {
        self.0 += e.response_body_size;
    }
    fn issue(&mut self, _: ParseIssue) {}
}

fn frame(kind: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = FrameHeader::encode(payload.len() as u32, kind, flags, sid).to_vec();
    f.extend_from_slice(payload);
    f
}

fn lit(out: &mut Vec<u8>, first: u8, s: &str) {
    out.push(first);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

const STREAMS: u32 = 1000;

/// (request side bytes, response side bytes) for `STREAMS` streams.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut q = PREFACE.to_vec();
    q.extend(frame(4, 0, 0, &[]));
    let mut r = frame(4, 0, 0, &[]);
    for n in 0..STREAMS {
        let sid = 2 * n + 1;
        // POST https, :path literal (not indexed), :authority + user-agent
        // indexed on first use then referenced, content-type, traceparent.
        let mut b = vec![0x83, 0x87];
        lit(&mut b, 0x04, &format!("/api/v1/items/{n}"));
        if n == 0 {
            lit(&mut b, 0x41, "api.example.com");
            lit(&mut b, 0x7a, "bench-client/1.0");
        } else {
            b.extend([0xbf, 0xbe]);
        }
        // content-type (static 31) literal without indexing: 4-bit prefix 15 + 16.
        b.extend([0x0f, 0x10, 16]);
        b.extend_from_slice(b"application/json");
        b.push(0x00);
        b.push(11);
        b.extend_from_slice(b"traceparent");
        b.push(55);
        b.extend_from_slice(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        q.extend(frame(1, 0x4, sid, &b));
        q.extend(frame(0, 0x1, sid, &[b'{'; 64]));
        let mut h = vec![0x88];
        h.extend([0x0f, 0x10, 16]);
        h.extend_from_slice(b"application/json");
        r.extend(frame(1, 0x4, sid, &h));
        r.extend(frame(0, 0x1, sid, &[b'}'; 200]));
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
