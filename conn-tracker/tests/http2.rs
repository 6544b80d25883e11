//! HTTP/2 through the table: with the preface, after an h2c upgrade (the
//! hand-off from the HTTP/1 parser), and joined midway.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

mod common;

use common::*;
use conn_tracker::*;
use protocol_parsers::ExchangeEnd;
use test_support::hpack::{block, Name, Rep};
use test_support::http2::{frame, preface, FrameType, END_HEADERS, END_STREAM};

use Direction::{Egress, Ingress};

/// :method GET, :path /, :scheme http (static table).
fn get_root() -> Vec<u8> {
    block(&[Rep::Indexed(2), Rep::Indexed(4), Rep::Indexed(6)])
}

/// :status 200 (static table).
fn status_200() -> Vec<u8> {
    block(&[Rep::Indexed(8)])
}

fn client_start() -> Vec<u8> {
    [preface(), frame(FrameType::Settings, 0, 0, &[])].concat()
}

#[test]
fn http2_with_preface() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(5, 5);
    t.open(info(k, 1, Role::Unknown, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    let req = [
        client_start(),
        frame(FrameType::Headers, END_STREAM | END_HEADERS, 1, &get_root()),
    ]
    .concat();
    f.send(&mut t, &mut sink, Egress, &req[..10]); // preface split across chunks
    f.send(&mut t, &mut sink, Egress, &req[10..]);
    let resp = [
        frame(FrameType::Settings, 0, 0, &[]),
        frame(FrameType::Headers, END_HEADERS, 1, &status_200()),
        frame(FrameType::Data, END_STREAM, 1, b"hi"),
    ]
    .concat();
    f.send(&mut t, &mut sink, Ingress, &resp);
    assert_eq!(
        t.get(k).map(|i| (i.protocol, i.role)),
        Some((Protocol::Http2, Role::Client))
    );
    assert_eq!(sink.summary(), vec![("GET".into(), "/".into(), Some(200))]);
    let e = &sink.exchanges[0].1;
    assert_eq!(e.stream_id, Some(1));
    assert_eq!(e.response_body_size, 2);
    assert_eq!(e.end, ExchangeEnd::Complete);
    assert!(sink.issues.is_empty(), "{:?}", sink.issues);
}

#[test]
fn h2c_upgrade_hands_off_to_http2() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(5, 6);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(
        &mut t,
        &mut sink,
        Egress,
        b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    // The 101 and the server's first HTTP/2 frames in one chunk.
    let resp = [
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            .as_slice(),
        &frame(FrameType::Settings, 0, 0, &[]),
        &frame(FrameType::Headers, END_HEADERS, 1, &status_200()),
    ]
    .concat();
    f.send(&mut t, &mut sink, Ingress, &resp);
    assert_eq!(sink.count("h2c_upgrade"), 1);
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Http2));
    f.send(&mut t, &mut sink, Egress, &client_start());
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        &frame(FrameType::Data, END_STREAM, 1, b"hello"),
    );
    // A second request on stream 3, over HTTP/2 proper.
    f.send(
        &mut t,
        &mut sink,
        Egress,
        &frame(FrameType::Headers, END_STREAM | END_HEADERS, 3, &get_root()),
    );
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        &frame(
            FrameType::Headers,
            END_STREAM | END_HEADERS,
            3,
            &status_200(),
        ),
    );
    // The upgrade request is reported once, by HTTP/2 stream 1, with its real
    // response (not also by HTTP/1 with the 101).
    assert_eq!(
        sink.summary(),
        vec![
            ("GET".into(), "/up".into(), Some(200)),
            ("GET".into(), "/".into(), Some(200))
        ]
    );
    let up = &sink.exchanges[0].1;
    assert_eq!(up.stream_id, Some(1));
    assert_eq!(up.response_body_size, 5);
    assert_eq!(up.request_start_ns, 2_000);
    assert!(sink.muted.is_empty());
}

#[test]
fn websocket_upgrade_is_muted() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(5, 7);
    t.open(info(k, 1, Role::Server, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    f.send(&mut t, &mut sink, Egress, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    f.send(&mut t, &mut sink, Ingress, b"\x81\x85abcdxxxxx");
    assert_eq!(sink.count("upgrade_to_unparsed"), 1);
    assert_eq!(sink.muted.len(), 1);
    assert_eq!(t.buffered_bytes(), 0);
    assert_eq!(sink.count("undetected_bytes"), 11);
}

#[test]
fn http2_joined_midway() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(5, 8);
    let mut i = info(k, 1, Role::Client, 1);
    i.joined_midway = true;
    t.open(i, &mut sink);
    let mut f = Feeder::new(k, 1);
    f.off = [5_000, 9_000];
    // The midstream parser confirms a frame boundary with two consecutive
    // plausible frames, so the first chunk carries two requests.
    let reqs = [
        frame(FrameType::Headers, END_STREAM | END_HEADERS, 7, &get_root()),
        frame(FrameType::Headers, END_STREAM | END_HEADERS, 9, &get_root()),
    ]
    .concat();
    f.send(&mut t, &mut sink, Egress, &reqs);
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Http2));
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        &[
            frame(FrameType::Headers, END_HEADERS, 7, &status_200()),
            frame(FrameType::Data, END_STREAM, 7, b"abc"),
        ]
        .concat(),
    );
    assert_eq!(sink.summary(), vec![("GET".into(), "/".into(), Some(200))]);
    assert_eq!(sink.exchanges[0].1.stream_id, Some(7));
    assert_eq!(sink.count("gap_bytes"), 0);
    f.close(&mut t, &mut sink);
    assert_eq!(sink.exchanges.len(), 2);
    assert_eq!(sink.exchanges[1].1.stream_id, Some(9));
    assert_eq!(sink.exchanges[1].1.end, ExchangeEnd::ConnectionClosed);
}

#[test]
fn frames_without_preface_on_a_fresh_connection_are_not_http2() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(5, 9);
    t.open(info(k, 1, Role::Client, 1), &mut sink);
    t.data(
        k,
        ConnId(1),
        Egress,
        StreamOffset(0),
        MonotonicNs(5),
        &frame(FrameType::Settings, 0, 0, &[]),
        &mut sink,
    );
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Unknown));
    assert_eq!(sink.muted.len(), 1);
}

/// An HTTP/2 server (nghttpd does this) writes its SETTINGS before it reads
/// the client preface: the response side must wait for the request side.
#[test]
fn server_settings_before_client_preface() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(6, 6);
    t.open(info(k, 1, Role::Server, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    // Server preface: SETTINGS with one setting (MAX_CONCURRENT_STREAMS=100).
    f.send(
        &mut t,
        &mut sink,
        Egress,
        &frame(FrameType::Settings, 0, 0, &[0, 3, 0, 0, 0, 100]),
    );
    assert!(
        sink.muted.is_empty(),
        "the server's SETTINGS alone must not mute"
    );
    let req = [
        client_start(),
        frame(FrameType::Headers, END_STREAM | END_HEADERS, 1, &get_root()),
    ]
    .concat();
    f.send(&mut t, &mut sink, Ingress, &req);
    f.send(
        &mut t,
        &mut sink,
        Egress,
        &[
            frame(FrameType::Headers, END_HEADERS, 1, &status_200()),
            frame(FrameType::Data, END_STREAM, 1, b"hello"),
        ]
        .concat(),
    );
    assert_eq!(t.get(k).map(|i| i.protocol), Some(Protocol::Http2));
    assert_eq!(sink.summary(), vec![("GET".into(), "/".into(), Some(200))]);
    assert_eq!(sink.exchanges[0].1.response_body_size, 5);
    assert!(sink.muted.is_empty());
}

/// The same upgrade seen from the server's side: the request arrives
/// (ingress), the 101 and the HTTP/2 frames leave (egress) in separate writes.
#[test]
fn h2c_upgrade_on_the_server_side() {
    let mut t = ConnectionTable::new(limits());
    let mut sink = Rec::default();
    let k = key(5, 7);
    t.open(info(k, 1, Role::Server, 1), &mut sink);
    let mut f = Feeder::new(k, 1);
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    f.send(
        &mut t,
        &mut sink,
        Egress,
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    );
    assert_eq!(sink.count("h2c_upgrade"), 1);
    f.send(
        &mut t,
        &mut sink,
        Egress,
        &frame(FrameType::Settings, 0, 0, &[]),
    );
    f.send(&mut t, &mut sink, Ingress, &client_start());
    f.send(
        &mut t,
        &mut sink,
        Egress,
        &[
            frame(FrameType::Headers, END_HEADERS, 1, &status_200()),
            frame(FrameType::Data, END_STREAM, 1, b"hello"),
        ]
        .concat(),
    );
    f.send(
        &mut t,
        &mut sink,
        Ingress,
        &frame(FrameType::Headers, END_STREAM | END_HEADERS, 3, &get_root()),
    );
    f.send(
        &mut t,
        &mut sink,
        Egress,
        &frame(
            FrameType::Headers,
            END_STREAM | END_HEADERS,
            3,
            &status_200(),
        ),
    );
    assert_eq!(
        sink.summary(),
        vec![
            ("GET".into(), "/up".into(), Some(200)),
            ("GET".into(), "/".into(), Some(200))
        ]
    );
    assert!(sink.muted.is_empty());
}

/// A client that fills its request-direction HPACK table (4,096 bytes, the
/// default): `n` requests, each adding a distinct 200-byte header.
fn fill_request_table(t: &mut ConnectionTable, sink: &mut Rec, fd: i32, n: u32) {
    let k = key(7, fd);
    t.open(info(k, fd as u64, Role::Unknown, 1), sink);
    let mut f = Feeder::new(k, fd as u64);
    f.send(t, sink, Egress, &client_start());
    f.send(t, sink, Ingress, &frame(FrameType::Settings, 0, 0, &[]));
    for i in 0..n {
        let stream = 2 * i + 1;
        let value = format!("{i:0200}");
        let reqs = block(&[
            Rep::Indexed(2),
            Rep::Indexed(4),
            Rep::Indexed(6),
            Rep::Inc(Name::Lit("x-fill"), &value),
        ]);
        f.send(
            t,
            sink,
            Egress,
            &frame(FrameType::Headers, END_STREAM | END_HEADERS, stream, &reqs),
        );
        let resp = frame(
            FrameType::Headers,
            END_STREAM | END_HEADERS,
            stream,
            &status_200(),
        );
        f.send(t, sink, Ingress, &resp);
    }
}

/// HPACK tables live as long as their connection (up to 64 KiB each way),
/// so they count against `memory_limit_bytes` like buffered input: the
/// connections holding the most are evicted when the total is over.
#[test]
fn hpack_tables_count_against_the_memory_limit() {
    let mut lim = limits();
    lim.memory_limit_bytes = 10 * 1024;
    let mut t = ConnectionTable::new(lim);
    let mut sink = Rec::default();
    fill_request_table(&mut t, &mut sink, 1, 30);
    // A full 4,096-byte table (its entries and their slots), nothing else held.
    let one = t.buffered_bytes();
    assert!((4096..=5 * 1024).contains(&one), "{one}");
    fill_request_table(&mut t, &mut sink, 2, 30);
    assert_eq!(t.buffered_bytes(), 2 * one);
    assert_eq!(sink.count("evicted_memory"), 0);
    // A third full table is over the limit: one connection goes.
    fill_request_table(&mut t, &mut sink, 3, 30);
    assert_eq!(sink.count("evicted_memory"), 1);
    assert!(t.buffered_bytes() <= 10 * 1024, "{}", t.buffered_bytes());
    assert_eq!(t.len(), 2);
    // Every request before the eviction was parsed whole.
    assert!(
        sink.exchanges.len() >= 3 * 30 - 30,
        "{}",
        sink.exchanges.len()
    );
    t.check_invariants().unwrap();
}
