//! Prints what each committed seed of the protocol targets decodes to, so a
//! regenerated corpus (gen_seeds.py) can be checked to reach real exchanges
//! rather than dying at the first byte:
//!   cargo run --manifest-path fuzz/Cargo.toml --example check_seeds
use protocol_parsers::http1::{Http1Limits, Http1Session};
use protocol_parsers::http2::hpack::Decoder;
use protocol_parsers::http2::{Http2Limits, Http2Session};
use protocol_parsers::CollectingSink;
use std::path::Path;
use wirespan_fuzz::{conversation, Input, Seg};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn feed(
    segs: &[Seg<'_>],
    mut data: impl FnMut(protocol_parsers::Side, u64, &[u8], &mut CollectingSink),
    mut gap: impl FnMut(protocol_parsers::Side, u64, u64, &mut CollectingSink),
    sink: &mut CollectingSink,
) {
    for (i, s) in segs.iter().enumerate() {
        let ts = (i as u64 + 1) * 10;
        match s {
            Seg::Data { side, bytes, .. } => data(*side, ts, bytes, sink),
            Seg::Gap { side, len } => gap(*side, *len, ts, sink),
        }
    }
}

fn main() {
    for (name, d) in seeds("http1_session") {
        let mut input = Input::new(&d);
        let b0 = input.u8();
        let b1 = input.u8();
        let limits = Http1Limits {
            max_head_bytes: [16 * 1024, 1024, 200, 40][usize::from(b0 & 3)],
            max_pending_requests: 1 + usize::from(b1 % 16),
        };
        let segs = conversation(&mut input);
        let s = std::cell::RefCell::new(Http1Session::new(limits));
        let mut sink = CollectingSink::default();
        feed(
            &segs,
            |side, ts, b, k| s.borrow_mut().on_data(side, ts, b, k),
            |side, l, ts, k| s.borrow_mut().on_gap(side, l, ts, k),
            &mut sink,
        );
        s.borrow_mut().on_close(u64::MAX, &mut sink);
        let statuses: Vec<_> = sink
            .exchanges
            .iter()
            .map(|e| {
                (
                    e.request.method().to_owned(),
                    e.response.as_ref().map(|r| r.status),
                    e.end,
                )
            })
            .collect();
        println!("http1 {name}: {statuses:?} issues {:?}", sink.issues);
    }
    for (name, d) in seeds("http2_session") {
        let mut input = Input::new(&d);
        let b0 = input.u8();
        let b1 = input.u8();
        let limits = Http2Limits {
            max_streams: 1 + usize::from(b1 % 64),
            max_header_list_bytes: [64 * 1024, 4096, 256, 16][usize::from((b0 >> 2) & 3)],
            max_frame_size: if b0 & 16 != 0 { 16_384 } else { (1 << 24) - 1 },
        };
        let segs = conversation(&mut input);
        let mut sess = match b0 & 3 {
            1 => Http2Session::new_midstream(limits),
            2 => Http2Session::new_after_upgrade(
                limits,
                protocol_parsers::RequestHead::new(
                    "GET",
                    "/",
                    protocol_parsers::HttpVersion::Http11,
                ),
                1,
            ),
            _ => Http2Session::new(limits),
        };
        let s = std::cell::RefCell::new(&mut sess);
        let mut sink = CollectingSink::default();
        feed(
            &segs,
            |side, ts, b, k| s.borrow_mut().on_data(side, ts, b, k),
            |side, l, ts, k| s.borrow_mut().on_gap(side, l, ts, k),
            &mut sink,
        );
        let err = s.borrow().error();
        s.borrow_mut().on_close(u64::MAX, &mut sink);
        let ex: Vec<_> = sink
            .exchanges
            .iter()
            .map(|e| {
                (
                    e.stream_id,
                    e.request.method().to_owned(),
                    e.request.target().to_owned(),
                    e.response.as_ref().map(|r| (r.status, r.grpc_status)),
                    e.end,
                )
            })
            .collect();
        println!(
            "http2 {name}: {ex:?} issues {:?} error {err:?}",
            sink.issues
        );
    }
    for (name, d) in seeds("hpack_decoder") {
        let mut input = Input::new(&d);
        let mut dec = match input.u8() % 3 {
            0 => Decoder::new(),
            1 => Decoder::new_unknown(),
            _ => Decoder::with_max_size(usize::from(input.u16())),
        };
        print!("hpack {name}:");
        while !input.is_empty() {
            let op = input.u8();
            if op == 0xff {
                dec.set_bound(input.u32() as usize);
                continue;
            }
            let len = usize::from(input.u16());
            let block = input.bytes(len);
            let mut fields = Vec::new();
            let r = dec.decode(block, |n, v| {
                fields.push(format!(
                    "{}={}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(v)
                ))
            });
            print!(
                " [{} -> {:?} table {}/{}]",
                fields.join(" "),
                r.map(|s| s.unknown_refs),
                dec.table().size(),
                dec.table().max_size()
            );
        }
        println!();
    }
}
