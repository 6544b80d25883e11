//! Property: feeding an HTTP/1 conversation split at arbitrary points
//! (including byte by byte) gives exactly the same exchanges and issues as
//! feeding each segment whole. Conversations mix keep-alive, pipelining,
//! chunked/length/close-delimited bodies, HEAD/1xx/204, malformed bytes and
//! gaps, so resync and loss pairing are covered too.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use proptest::prelude::*;
use protocol_parsers::http1::{Http1Limits, Http1Session};
use protocol_parsers::{CollectingSink, Side};

/// One event of a recorded conversation.
#[derive(Clone, Debug)]
enum Ev {
    Data(Side, Vec<u8>),
    Gap(Side, u64),
}

#[derive(Clone, Debug)]
enum Msg {
    Get { path: u8, resp_body: usize },
    PostLen { len: usize, resp_body: usize },
    PostChunked { chunks: Vec<usize> },
    ChunkedResp { chunks: Vec<usize>, trailer: bool },
    Head { len: usize },
    Continue { len: usize },
    NoContent,
    Pipelined { n: usize },
    Garbage { side_req: bool, bytes: Vec<u8> },
    Gap { side_req: bool, len: u64 },
    HugeHead,
}

fn side(req: bool) -> Side {
    if req {
        Side::Request
    } else {
        Side::Response
    }
}

fn body(n: usize) -> String {
    "abcdefghij".chars().cycle().take(n).collect()
}

fn ok(n: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\n\r\n{}",
        body(n)
    )
    .into_bytes()
}

fn chunked(chunks: &[usize], trailer: bool) -> String {
    let mut s = String::new();
    for (i, &c) in chunks.iter().enumerate() {
        if i % 2 == 0 {
            s.push_str(&format!("{c:x}\r\n{}\r\n", body(c)));
        } else {
            s.push_str(&format!("{c:X};ext=\"q\"\r\n{}\r\n", body(c)));
        }
    }
    s.push_str(if trailer {
        "0\r\nX-Sum: 1\r\n\r\n"
    } else {
        "0\r\n\r\n"
    });
    s
}

fn events(msgs: &[Msg]) -> Vec<Ev> {
    use Ev::*;
    let req = Side::Request;
    let resp = Side::Response;
    let mut out = Vec::new();
    for m in msgs {
        match m {
            Msg::Get { path, resp_body } => {
                out.push(Data(
                    req,
                    format!("GET /p/{path} HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n")
                        .into_bytes(),
                ));
                out.push(Data(resp, ok(*resp_body)));
            }
            Msg::PostLen { len, resp_body } => {
                out.push(Data(
                    req,
                    format!(
                        "POST /post HTTP/1.1\r\nContent-Length: {len}\r\n\r\n{}",
                        body(*len)
                    )
                    .into_bytes(),
                ));
                out.push(Data(resp, ok(*resp_body)));
            }
            Msg::PostChunked { chunks } => {
                out.push(Data(
                    req,
                    format!(
                        "POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                        chunked(chunks, false)
                    )
                    .into_bytes(),
                ));
                out.push(Data(resp, ok(1)));
            }
            Msg::ChunkedResp { chunks, trailer } => {
                out.push(Data(req, b"GET /stream HTTP/1.1\r\n\r\n".to_vec()));
                out.push(Data(
                    resp,
                    format!(
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                        chunked(chunks, *trailer)
                    )
                    .into_bytes(),
                ));
            }
            Msg::Head { len } => {
                out.push(Data(req, b"HEAD /h HTTP/1.1\r\n\r\n".to_vec()));
                out.push(Data(
                    resp,
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes(),
                ));
            }
            Msg::Continue { len } => {
                out.push(Data(
                    req,
                    format!(
                        "PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len}\r\n\r\n"
                    )
                    .into_bytes(),
                ));
                out.push(Data(resp, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()));
                out.push(Data(req, body(*len).into_bytes()));
                out.push(Data(resp, ok(2)));
            }
            Msg::NoContent => {
                out.push(Data(req, b"DELETE /d HTTP/1.1\r\n\r\n".to_vec()));
                out.push(Data(resp, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()));
            }
            Msg::Pipelined { n } => {
                let mut reqs = Vec::new();
                let mut resps = Vec::new();
                for i in 0..*n {
                    reqs.extend(format!("GET /pipe/{i} HTTP/1.1\r\n\r\n").into_bytes());
                    resps.extend(ok(i));
                }
                out.push(Data(req, reqs));
                out.push(Data(resp, resps));
            }
            Msg::Garbage { side_req, bytes } => out.push(Data(side(*side_req), bytes.clone())),
            Msg::Gap { side_req, len } => out.push(Gap(side(*side_req), *len)),
            Msg::HugeHead => {
                out.push(Data(
                    req,
                    format!("GET /huge HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(300))
                        .into_bytes(),
                ));
                out.push(Data(resp, ok(3)));
            }
        }
    }
    out
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        4 => (any::<u8>(), 0usize..40).prop_map(|(path, resp_body)| Msg::Get { path, resp_body }),
        2 => (0usize..40, 0usize..10).prop_map(|(len, resp_body)| Msg::PostLen { len, resp_body }),
        2 => prop::collection::vec(1usize..30, 0..4).prop_map(|chunks| Msg::PostChunked { chunks }),
        2 => (prop::collection::vec(1usize..30, 0..4), any::<bool>())
            .prop_map(|(chunks, trailer)| Msg::ChunkedResp { chunks, trailer }),
        1 => (0usize..100).prop_map(|len| Msg::Head { len }),
        1 => (0usize..20).prop_map(|len| Msg::Continue { len }),
        1 => Just(Msg::NoContent),
        1 => (1usize..4).prop_map(|n| Msg::Pipelined { n }),
        1 => (any::<bool>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(side_req, bytes)| Msg::Garbage { side_req, bytes }),
        1 => (any::<bool>(), prop::sample::select(vec![1u64, 5, 17, 64, 1000]))
            .prop_map(|(side_req, len)| Msg::Gap { side_req, len }),
        1 => Just(Msg::HugeHead),
    ]
}

/// Feeds the conversation; `split` cuts each data segment into pieces.
fn run(
    evs: &[Ev],
    close_delimited_tail: bool,
    split: impl Fn(usize, &[u8]) -> Vec<usize>,
) -> CollectingSink {
    let limits = Http1Limits {
        max_head_bytes: 256,
        max_pending_requests: 8,
    };
    let mut s = Http1Session::new(limits);
    let mut sink = CollectingSink::default();
    let mut tail = Vec::new();
    if close_delimited_tail {
        tail.push(Ev::Data(
            Side::Request,
            b"GET /last HTTP/1.0\r\n\r\n".to_vec(),
        ));
        tail.push(Ev::Data(
            Side::Response,
            b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec(),
        ));
    }
    for (i, ev) in evs.iter().chain(tail.iter()).enumerate() {
        let ts = 1000 + 10 * i as u64;
        match ev {
            Ev::Gap(side, len) => s.on_gap(*side, *len, ts, &mut sink),
            Ev::Data(side, data) => {
                let mut from = 0;
                for cut in split(i, data).into_iter().chain([data.len()]) {
                    s.on_data(*side, ts, &data[from..cut], &mut sink);
                    from = cut;
                }
            }
        }
        assert!(s.buffered_bytes() <= 2 * limits.max_head_bytes);
    }
    s.on_close(99_999, &mut sink);
    sink
}

fn cuts(seeds: &[u16], i: usize, data: &[u8]) -> Vec<usize> {
    let mut v: Vec<usize> = seeds
        .iter()
        .map(|&s| (s as usize).wrapping_mul(i + 1) % (data.len() + 1))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn split_points_do_not_change_results(
        msgs in prop::collection::vec(msg(), 1..10),
        seeds in prop::collection::vec(any::<u16>(), 0..12),
        close_delimited_tail in any::<bool>(),
    ) {
        let evs = events(&msgs);
        let whole = run(&evs, close_delimited_tail, |_, _| Vec::new());
        let split = run(&evs, close_delimited_tail, |i, d| cuts(&seeds, i, d));
        prop_assert_eq!(&whole.exchanges, &split.exchanges);
        prop_assert_eq!(&whole.issues, &split.issues);
        let bytewise = run(&evs, close_delimited_tail, |_, d| (1..d.len()).collect());
        prop_assert_eq!(&whole.exchanges, &bytewise.exchanges);
        prop_assert_eq!(&whole.issues, &bytewise.issues);
    }

    /// The same with random byte mutations: whatever the parser makes of
    /// damaged input, it makes the same of it however it is split.
    #[test]
    fn split_invariance_survives_mutations(
        msgs in prop::collection::vec(msg(), 1..8),
        seeds in prop::collection::vec(any::<u16>(), 0..12),
        mutations in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 1..6),
    ) {
        let mut evs = events(&msgs);
        for (e, at, byte) in mutations {
            let n = evs.len();
            if let Ev::Data(_, d) = &mut evs[e as usize % n] {
                if !d.is_empty() {
                    let i = at as usize % d.len();
                    d[i] = byte;
                }
            }
        }
        let whole = run(&evs, false, |_, _| Vec::new());
        let split = run(&evs, false, |i, d| cuts(&seeds, i, d));
        prop_assert_eq!(&whole.exchanges, &split.exchanges);
        prop_assert_eq!(&whole.issues, &split.issues);
        let bytewise = run(&evs, false, |_, d| (1..d.len()).collect());
        prop_assert_eq!(&whole.exchanges, &bytewise.exchanges);
        prop_assert_eq!(&whole.issues, &bytewise.issues);
    }
}

/// Without damage, every request of a conversation gets its own response.
#[test]
fn clean_conversation_pairs_everything() {
    let msgs = vec![
        Msg::Get {
            path: 1,
            resp_body: 3,
        },
        Msg::PostLen {
            len: 12,
            resp_body: 0,
        },
        Msg::PostChunked {
            chunks: vec![3, 17],
        },
        Msg::ChunkedResp {
            chunks: vec![5, 1],
            trailer: true,
        },
        Msg::Head { len: 50 },
        Msg::Continue { len: 9 },
        Msg::NoContent,
        Msg::Pipelined { n: 3 },
    ];
    let sink = run(&events(&msgs), true, |_, d| (1..d.len()).collect());
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
    let got: Vec<_> = sink
        .exchanges
        .iter()
        .map(|e| {
            (
                e.request.target(),
                e.response.as_ref().map(|r| r.status),
                e.request_body_size,
                e.response_body_size,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/p/1", Some(200), 0, 3),
            ("/post", Some(200), 12, 0),
            ("/chunked", Some(200), 20, 1),
            ("/stream", Some(200), 0, 6),
            ("/h", Some(200), 0, 0),
            ("/c", Some(200), 9, 2),
            ("/d", Some(204), 0, 0),
            ("/pipe/0", Some(200), 0, 0),
            ("/pipe/1", Some(200), 0, 1),
            ("/pipe/2", Some(200), 0, 2),
            ("/last", Some(200), 0, 11),
        ]
    );
    assert!(sink
        .exchanges
        .iter()
        .all(|e| e.end == protocol_parsers::ExchangeEnd::Complete));
}
