//! Replay of a gRPC-over-h2c exchange recorded with `wirespan record`:
//! `grpc_server.py` (OTEL_SERVICE_NAME=greeter) answers two curl calls
//! (`--http2-prior-knowledge -X POST -H 'content-type: application/grpc'
//! -H 'te: trailers' --data-binary @req.grpc`), the first with grpc-status 0
//! and an 18-byte message, the second with grpc-status 5 (NOT_FOUND,
//! "no such method") and no message. The request message is 12 bytes
//! (5-byte gRPC prefix + 7-byte protobuf). See fixtures/README.md.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

#[path = "fixtures/support.rs"]
mod support;

use support::{check, clock_offset, describe, of_pid, replay, Want};

const NAME: &str = "grpc_h2c";
const SERVER: i64 = 6087;
const CURL_OK: i64 = 6101;
const CURL_MISSING: i64 = 6111;

fn call(server: bool, ok: bool) -> Want<'static> {
    let pid = match (server, ok) {
        (true, _) => SERVER,
        (false, true) => CURL_OK,
        (false, false) => CURL_MISSING,
    };
    Want {
        server,
        pid,
        service: if server { "greeter" } else { "curl" },
        exe: if server { "python3" } else { "curl" },
        method: "POST",
        path: if ok {
            "/helloworld.Greeter/SayHello"
        } else {
            "/helloworld.Greeter/Missing"
        },
        span_name: Some(if ok {
            "helloworld.Greeter/SayHello"
        } else {
            "helloworld.Greeter/Missing"
        }),
        version: "2",
        status: 200,
        req_body: 12,
        resp_body: if ok { 18 } else { 0 },
        server_port: 18087,
        client_port: if ok { 46012 } else { 46024 },
        user_agent: Some("curl/7.88.1"),
        // NOT_FOUND is an error for the caller only (RPC conventions).
        error: if !ok && !server {
            Some("NOT_FOUND")
        } else {
            None
        },
        peer_service: Some(if server { "curl" } else { "greeter" }),
        ..Want::default()
    }
}

#[test]
fn grpc_calls_follow_the_rpc_conventions() {
    let (_, spans, registry) = replay(NAME);
    let clock = clock_offset(NAME);
    assert_eq!(spans.len(), 4, "{}", describe(&spans));
    let s = of_pid(&spans, SERVER);
    assert_eq!(s.len(), 2, "{}", describe(&spans));
    for (x, ok) in [(&s[0], true), (&s[1], false)] {
        check(x, &call(true, ok), clock);
    }
    for (pid, ok) in [(CURL_OK, true), (CURL_MISSING, false)] {
        let c = of_pid(&spans, pid);
        assert_eq!(c.len(), 1, "{}", describe(&spans));
        check(&c[0], &call(false, ok), clock);
    }
    for x in support::sorted(&spans) {
        let ok = x.str("url.path") == Some("/helloworld.Greeter/SayHello");
        assert_eq!(x.str("rpc.system.name"), Some("grpc"));
        assert_eq!(
            x.str("rpc.method"),
            Some(if ok {
                "helloworld.Greeter/SayHello"
            } else {
                "helloworld.Greeter/Missing"
            })
        );
        assert_eq!(
            x.str("rpc.response.status_code"),
            Some(if ok { "OK" } else { "NOT_FOUND" })
        );
        let message = &x.0.span.status.as_ref().unwrap().message;
        if !ok && x.is_client() {
            assert_eq!(message, "no such method");
        } else {
            assert_eq!(message, "");
        }
    }
    assert_eq!(
        registry.sum("wirespan_parse_issues_total"),
        0,
        "{}",
        registry.render()
    );
}
