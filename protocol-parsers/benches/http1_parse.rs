//! HTTP/1 session throughput for a typical keep-alive request/response pair
//! (browser-like GET with a dozen headers, JSON response with a 1 KiB body),
//! reported as bytes/s and exchanges/s; plus a chunked variant, the same
//! conversation cut into small pieces, and random bytes (resync scan cost).
//! `distinct_heads`: no head recurs (one end traced: nothing to reuse);
//! `distinct_heads_both_ends_x2`: the same fed to a client's and a server's
//! session (both ends on this host), so its time is for twice the exchanges.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use protocol_parsers::http1::{Http1Limits, Http1Session};
use protocol_parsers::{ExchangeSink, HttpExchange, ParseIssue, Side};
use std::hint::black_box;

/// Counts instead of collecting, so the bench measures the parser.
#[derive(Default)]
struct Count(u64);

impl ExchangeSink for Count {
    fn exchange(&mut self, e: HttpExchange) {
        self.0 += 1 + e.response_body_size;
    }
    fn issue(&mut self, _: ParseIssue) {}
}

const PAIRS: usize = 1000;

fn request(i: usize) -> Vec<u8> {
    format!(
        "GET /api/v1/orders/{i}?include=items&limit=20 HTTP/1.1\r\n\
Host: orders.internal.example:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl\r\n\
traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
tracestate: vendor=value\r\n\
Cookie: session=0123456789abcdef; theme=dark\r\n\
Connection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

fn response(chunked: bool) -> Vec<u8> {
    response_with_id(chunked, "5f1c8f2e-2d0b-4c1e-9a55-2b0f3c4d5e6f")
}

fn response_with_id(chunked: bool, id: &str) -> Vec<u8> {
    let body = "{\"id\":1,\"items\":[],\"pad\":\"".to_string() + &"x".repeat(1024 - 30) + "\"}";
    let head = format!(
        "HTTP/1.1 200 OK\r\nDate: Mon, 27 Jul 2009 12:28:53 GMT\r\nServer: envoy\r\n\
Content-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\n\
X-Request-Id: {id}\r\n"
    );
    if chunked {
        let (a, b) = body.split_at(400);
        format!(
            "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .into_bytes()
    } else {
        format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }
}

/// (side, bytes) in feeding order: request, response, request, ...
fn conversation(chunked: bool) -> Vec<(Side, Vec<u8>)> {
    let resp = response(chunked);
    (0..PAIRS)
        .flat_map(|i| [(Side::Request, request(i)), (Side::Response, resp.clone())])
        .collect()
}

/// Every request and every response head different (a response id per
/// exchange): no head recurs, so none is reused.
fn conversation_distinct() -> Vec<(Side, Vec<u8>)> {
    (0..PAIRS)
        .flat_map(|i| {
            let id = format!("5f1c8f2e-2d0b-4c1e-9a55-{i:012x}");
            [
                (Side::Request, request(i)),
                (Side::Response, response_with_id(false, &id)),
            ]
        })
        .collect()
}

/// Both ends of each connection on this host: every chunk is fed to the
/// client's session and then to the server's, as the two ends' records
/// arrive.
fn feed_both_ends(conv: &[(Side, Vec<u8>)]) -> u64 {
    let mut client = Http1Session::new(Http1Limits::default());
    let mut server = Http1Session::new(Http1Limits::default());
    let mut sink = Count::default();
    for (i, (side, data)) in conv.iter().enumerate() {
        client.on_data(*side, i as u64, data, &mut sink);
        server.on_data(*side, i as u64, data, &mut sink);
    }
    client.on_close(u64::MAX, &mut sink);
    server.on_close(u64::MAX, &mut sink);
    sink.0
}

fn feed(conv: &[(Side, Vec<u8>)], piece: usize) -> u64 {
    let mut s = Http1Session::new(Http1Limits::default());
    let mut sink = Count::default();
    for (i, (side, data)) in conv.iter().enumerate() {
        for p in data.chunks(piece) {
            s.on_data(*side, i as u64, p, &mut sink);
        }
    }
    s.on_close(u64::MAX, &mut sink);
    sink.0
}

fn bench(c: &mut Criterion) {
    let plain = conversation(false);
    let chunked = conversation(true);
    let bytes = |conv: &[(Side, Vec<u8>)]| conv.iter().map(|(_, d)| d.len() as u64).sum::<u64>();

    let mut g = c.benchmark_group("http1_keepalive_bytes");
    g.throughput(Throughput::Bytes(bytes(&plain)));
    g.bench_function("content_length", |b| {
        b.iter(|| feed(black_box(&plain), usize::MAX))
    });
    g.throughput(Throughput::Bytes(bytes(&chunked)));
    g.bench_function("chunked", |b| {
        b.iter(|| feed(black_box(&chunked), usize::MAX))
    });
    g.throughput(Throughput::Bytes(bytes(&plain)));
    g.bench_function("content_length_split_64", |b| {
        b.iter(|| feed(black_box(&plain), 64))
    });
    g.finish();

    let mut g = c.benchmark_group("http1_keepalive_exchanges");
    g.throughput(Throughput::Elements(PAIRS as u64));
    g.bench_function("content_length", |b| {
        b.iter(|| feed(black_box(&plain), usize::MAX))
    });
    g.bench_function("chunked", |b| {
        b.iter(|| feed(black_box(&chunked), usize::MAX))
    });
    let distinct = conversation_distinct();
    g.bench_function("distinct_heads", |b| {
        b.iter(|| feed(black_box(&distinct), usize::MAX))
    });
    // Counts the exchanges of both ends' sessions: twice PAIRS.
    g.bench_function("distinct_heads_both_ends_x2", |b| {
        b.iter(|| feed_both_ends(black_box(&distinct)))
    });
    g.finish();

    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<(Side, Vec<u8>)> = (0..64)
        .map(|i| {
            let side = if i % 2 == 0 {
                Side::Request
            } else {
                Side::Response
            };
            let d = (0..16 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (side, d)
        })
        .collect();
    let mut g = c.benchmark_group("http1_random_bytes");
    g.throughput(Throughput::Bytes(bytes(&random)));
    g.bench_function("resync_scan", |b| {
        b.iter(|| feed(black_box(&random), usize::MAX))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
