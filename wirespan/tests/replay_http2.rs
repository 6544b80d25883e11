//! Replay of real HTTP/2 prior-knowledge (h2c) traffic against nghttpd,
//! recorded with `wirespan record` (fixtures/README.md has the commands).
//!
//! nghttpd writes its SETTINGS frame as soon as it accepts, before it reads the
//! client preface. So on the server's side the first bytes of every connection
//! are a SETTINGS frame in the response direction, and on the nghttp client's
//! side (which reads before it writes) too. RFC 9113 §3.4 allows this; the
//! agent must still see HTTP/2.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

#[path = "fixtures/support.rs"]
mod support;

use support::{check, clock_offset, describe, of_pid, replay, Want};

const NAME: &str = "http2_prior_knowledge";
const NGHTTPD: i64 = 24156;
const CURL: i64 = 24161;
const NGHTTP: i64 = 24162;

fn small(server: bool) -> Want<'static> {
    // curl --http2-prior-knowledge /small.txt -> 200 "small h2 body\n" (14 bytes)
    Want {
        server,
        pid: if server { NGHTTPD } else { CURL },
        service: if server { "nghttpd" } else { "curl" },
        exe: if server { "nghttpd" } else { "curl" },
        path: "/small.txt",
        version: "2",
        resp_body: 14,
        server_port: 18086,
        client_port: 47836,
        user_agent: Some("curl/7.88.1"),
        peer_service: Some(if server { "curl" } else { "nghttpd" }),
        ..Want::default()
    }
}

fn file(server: bool) -> Want<'static> {
    // nghttp -n -m 5 /file.txt: five concurrent streams on one connection, each
    // -> 200 with the 1000-byte file.
    Want {
        server,
        pid: if server { NGHTTPD } else { NGHTTP },
        service: if server { "nghttpd" } else { "h2-bench" },
        exe: if server { "nghttpd" } else { "nghttp" },
        path: "/file.txt",
        version: "2",
        resp_body: 1000,
        server_port: 18086,
        client_port: 47850,
        user_agent: Some("nghttp2/1.52.0"),
        peer_service: Some(if server { "h2-bench" } else { "nghttpd" }),
        ..Want::default()
    }
}

#[test]
fn curl_client_stream() {
    let (_, spans, _) = replay(NAME);
    let clock = clock_offset(NAME);
    let c = of_pid(&spans, CURL);
    assert_eq!(c.len(), 1, "{}", describe(&spans));
    check(&c[0], &small(false), clock);
}

#[test]
fn nghttp_five_parallel_streams_client_side() {
    let (_, spans, _) = replay(NAME);
    let clock = clock_offset(NAME);
    let c = of_pid(&spans, NGHTTP);
    assert_eq!(c.len(), 5, "{}", describe(&spans));
    for s in &c {
        check(s, &file(false), clock);
    }
}

#[test]
fn nghttpd_server_side() {
    let (_, spans, _) = replay(NAME);
    let clock = clock_offset(NAME);
    let s = of_pid(&spans, NGHTTPD);
    assert_eq!(s.len(), 6, "{}", describe(&spans));
    check(&s[0], &small(true), clock);
    for x in &s[1..] {
        check(x, &file(true), clock);
    }
}

#[test]
fn every_stream_and_only_the_probe_connection_unparsed() {
    let (summary, spans, registry) = replay(NAME);
    assert_eq!(summary.records, 41);
    // 1 curl stream + 5 nghttp streams, each seen by client and server.
    assert_eq!(spans.len(), 12, "{}", describe(&spans));
    // The recording script's port probe connected and closed at once; nghttpd
    // had already written its 15-byte SETTINGS frame on it. With no client
    // preface ever seen, those 15 bytes are honestly not parsed.
    assert_eq!(
        registry.value(
            "wirespan_stream_bytes_not_parsed_total",
            &[("reason", "undetected_bytes")]
        ),
        Some(15),
        "{}",
        registry.render()
    );
}
