//! The pipeline end to end on hand-made records: same-host peers, in-process
//! causality, the agent's own traffic, kernel actions.
#![allow(
    clippy::too_many_arguments,
    reason = "record builders take every field of a record"
)]

use super::*;
use probes_common::records::encode;
use probes_common::{kind, ConnCloseRecord, ConnOpenRecord, DataHeader, RecordHeader, SockAddr};
use span_export::any_value::Value;
use span_export::AttrValue;
use span_semantics::span_builder::parse_traceparent;
use std::collections::HashSet;
use test_support::spans::ExportSpanExt;

fn addr(last: u8, port: u16) -> SockAddr {
    SockAddr {
        addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, last],
        port,
        family: 2,
        _pad: 0,
    }
}

fn header(kind: u32, tgid: u32, fd: i32, ts: u64) -> RecordHeader {
    RecordHeader {
        kind,
        tgid,
        tid: tgid,
        fd,
        ts_ns: ts,
    }
}

struct Feed {
    pipeline: Pipeline<Vec<ExportSpan>>,
    buf: Vec<u8>,
}

impl Feed {
    fn new() -> Self {
        Self::with_config(wirespan_config::Config::default())
    }
    fn with_config(config: wirespan_config::Config) -> Self {
        let mut settings = crate::agent::pipeline_settings(&config, 0, HostFacts::hermetic());
        settings.span_builder = SpanBuilder::new(
            span_semantics::span_builder::IdGenerator::with_seed(3),
            span_semantics::routes::RouteTable::default(),
        );
        Self {
            pipeline: Pipeline::new(settings, Vec::new(), &Registry::new()),
            buf: Vec::new(),
        }
    }
    fn push(&mut self) {
        self.pipeline.handle_bytes(&self.buf);
        self.buf.clear();
    }
    fn exec(&mut self, pid: u32, path: &str, env: &[u8]) {
        let comm = path.rsplit('/').next().unwrap_or(path).as_bytes();
        encode::proc_exec(
            header(kind::PROC_EXEC, pid, -1, 1),
            1,
            comm,
            path.as_bytes(),
            b"",
            env,
            &mut self.buf,
        );
        self.push();
    }
    fn open(
        &mut self,
        pid: u32,
        fd: i32,
        conn_id: u64,
        role: u32,
        local: SockAddr,
        remote: SockAddr,
        ts: u64,
    ) {
        encode::conn_open(
            &ConnOpenRecord {
                header: header(kind::CONN_OPEN, pid, fd, ts),
                conn_id,
                local,
                remote,
                role,
                origin: if role == role::CLIENT {
                    origin::CONNECT
                } else {
                    origin::ACCEPT
                },
            },
            &mut self.buf,
        );
        self.push();
    }
    fn data(
        &mut self,
        pid: u32,
        fd: i32,
        conn_id: u64,
        dir: u32,
        offset: u64,
        ts: u64,
        bytes: &[u8],
    ) {
        self.data_by(pid, pid, fd, conn_id, dir, offset, ts, bytes);
    }
    /// Data moved by thread `tid` of process `pid`.
    fn data_by(
        &mut self,
        pid: u32,
        tid: u32,
        fd: i32,
        conn_id: u64,
        dir: u32,
        offset: u64,
        ts: u64,
        bytes: &[u8],
    ) {
        let mut hdr = header(kind::DATA, pid, fd, ts);
        hdr.tid = tid;
        let h = DataHeader {
            header: hdr,
            conn_id,
            call_stream_offset: offset,
            call_len: bytes.len() as u64,
            chunk_offset: 0,
            chunk_len: bytes.len() as u32,
            direction: dir,
            source: probes_common::source::WRITE,
        };
        encode::data(&h, bytes, &mut self.buf);
        self.push();
    }
    fn exit(&mut self, pid: u32, ts: u64) {
        encode::proc_exit(
            &probes_common::ProcExitRecord {
                header: header(kind::PROC_EXIT, pid, -1, ts),
            },
            &mut self.buf,
        );
        self.push();
    }
    fn close(&mut self, pid: u32, fd: i32, conn_id: u64, out: u64, inn: u64, ts: u64) {
        encode::conn_close(
            &ConnCloseRecord {
                header: header(kind::CONN_CLOSE, pid, fd, ts),
                conn_id,
                egress_total: out,
                ingress_total: inn,
            },
            &mut self.buf,
        );
        self.push();
    }
}

/// The value of attribute `key` as exported.
fn attr(s: &ExportSpan, key: &str) -> Option<Value> {
    s.attr_value(key)
}

fn service(s: &ExportSpan) -> Option<String> {
    s.resource
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(v) => Some(v.clone()),
            _ => None,
        })
}

const REQ: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: t\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// Both ends on this host: the server closes before the client has read
/// the response, yet both spans name the other side.
#[test]
fn same_host_peers_name_each_other_even_after_close() {
    let mut f = Feed::new();
    f.exec(100, "/usr/bin/curl", b"OTEL_SERVICE_NAME=checkout\0");
    f.exec(200, "/usr/sbin/nginx", b"");
    let (client, server) = (addr(1, 50000), addr(2, 8080));
    f.open(100, 3, 1, role::CLIENT, client, server, 10);
    f.open(200, 7, 2, role::SERVER, server, client, 11);
    f.data(100, 3, 1, direction::EGRESS, 0, 20, REQ);
    f.data(200, 7, 2, direction::INGRESS, 0, 21, REQ);
    f.data(200, 7, 2, direction::EGRESS, 0, 30, RESP);
    f.close(200, 7, 2, RESP.len() as u64, REQ.len() as u64, 31);
    f.data(100, 3, 1, direction::INGRESS, 0, 40, RESP);
    f.close(100, 3, 1, REQ.len() as u64, RESP.len() as u64, 41);
    let spans = f.pipeline.into_output();
    assert_eq!(spans.len(), 2);
    let server_span = spans
        .iter()
        .find(|s| s.span.kind == span_export::span::SpanKind::Server as i32)
        .unwrap();
    let client_span = spans
        .iter()
        .find(|s| s.span.kind == span_export::span::SpanKind::Client as i32)
        .unwrap();
    assert_eq!(service(server_span).as_deref(), Some("nginx"));
    assert_eq!(service(client_span).as_deref(), Some("checkout"));
    assert_eq!(
        attr(server_span, "service.peer.name"),
        Some(Value::StringValue("checkout".into()))
    );
    assert_eq!(
        attr(client_span, "service.peer.name"),
        Some(Value::StringValue("nginx".into()))
    );
    assert_eq!(
        (
            server_span.span.start_time_unix_nano,
            server_span.span.end_time_unix_nano
        ),
        (21, 30)
    );
    assert_eq!(
        (
            client_span.span.start_time_unix_nano,
            client_span.span.end_time_unix_nano
        ),
        (20, 40)
    );
    assert_eq!(
        attr(client_span, "url.full"),
        Some(Value::StringValue("http://127.0.0.1:8080/a?b=1".into()))
    );
}

/// curl → service A (thread 201 serves the request and calls B) → B, all
/// on this host. Returns the spans of curl, A (server), A (client), B.
fn call_chain(f: &mut Feed, curl_request: &[u8], a_second_request: bool) -> Vec<ExportSpan> {
    let (curl, a) = (addr(1, 50000), addr(2, 8080));
    let (a_out, b) = (addr(2, 50001), addr(3, 9090));
    f.open(100, 3, 1, role::CLIENT, curl, a, 10);
    f.open(200, 7, 2, role::SERVER, a, curl, 11);
    f.open(200, 8, 3, role::CLIENT, a_out, b, 12);
    f.open(300, 9, 4, role::SERVER, b, a_out, 13);
    f.data(100, 3, 1, direction::EGRESS, 0, 20, curl_request);
    f.data_by(200, 201, 7, 2, direction::INGRESS, 0, 21, curl_request);
    if a_second_request {
        // The same thread reads another request before answering: ambiguous.
        let other = addr(4, 50002);
        f.open(200, 10, 5, role::SERVER, a, other, 12);
        f.data_by(200, 201, 10, 5, direction::INGRESS, 0, 21, REQ);
    }
    let out = b"GET /inventory/7 HTTP/1.1\r\nHost: b:9090\r\n\r\n";
    f.data_by(200, 201, 8, 3, direction::EGRESS, 0, 22, out);
    f.data(300, 9, 4, direction::INGRESS, 0, 23, out);
    f.data(300, 9, 4, direction::EGRESS, 0, 24, RESP);
    f.data_by(200, 201, 8, 3, direction::INGRESS, 0, 25, RESP);
    f.data_by(200, 201, 7, 2, direction::EGRESS, 0, 26, RESP);
    f.data(100, 3, 1, direction::INGRESS, 0, 27, RESP);
    f.pipeline.flush();
    let spans = f.pipeline.output().clone();
    let pick = |pid_service: &str, kind: span_export::span::SpanKind| {
        spans
            .iter()
            .find(|s| service(s).as_deref() == Some(pid_service) && s.span.kind == kind as i32)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind:?} span of {pid_service} in {spans:#?}"))
    };
    use span_export::span::SpanKind::{Client, Server};
    vec![
        pick("curl", Client),
        pick("svc-a", Server),
        pick("svc-a", Client),
        pick("svc-b", Server),
    ]
}

fn chain_feed(config: wirespan_config::Config) -> Feed {
    let mut f = Feed::with_config(config);
    f.exec(100, "/usr/bin/curl", b"");
    f.exec(200, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-a\0");
    f.exec(300, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-b\0");
    f
}

#[test]
fn a_call_made_while_serving_is_a_child_of_the_server_span() {
    let mut f = chain_feed(wirespan_config::Config::default());
    let s = call_chain(&mut f, REQ, false);
    let (curl, a_server, a_client, b_server) = (&s[0].span, &s[1].span, &s[2].span, &s[3].span);
    // One trace, and each span's parent is the one before it.
    for span in [a_server, a_client, b_server] {
        assert_eq!(span.trace_id, curl.trace_id, "{span:#?}");
    }
    assert!(curl.parent_span_id.is_none());
    assert_eq!(a_server.parent_span_id, Some(curl.span_id));
    assert_eq!(a_client.parent_span_id, Some(a_server.span_id));
    assert_eq!(b_server.parent_span_id, Some(a_client.span_id));
    let ids: HashSet<&[u8; 8]> = s.iter().map(|x| &x.span.span_id).collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn a_callers_traceparent_reaches_the_whole_tree() {
    let mut f = chain_feed(wirespan_config::Config::default());
    let req = b"GET /a HTTP/1.1\r\nHost: a\r\ntraceparent: \
        00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
    let s = call_chain(&mut f, req, false);
    let tp = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    let trace = tp.trace_id;
    for x in &s {
        assert_eq!(x.span.trace_id, trace, "{x:#?}");
    }
    let (a_server, a_client, b_server) = (&s[1].span, &s[2].span, &s[3].span);
    assert_eq!(a_server.parent_span_id, Some(tp.parent_id));
    assert_eq!(a_client.parent_span_id, Some(a_server.span_id));
    assert_eq!(b_server.parent_span_id, Some(a_client.span_id));
}

#[test]
fn a_thread_serving_two_requests_gives_no_parent() {
    let registry = Registry::new();
    let mut f = chain_feed(wirespan_config::Config::default());
    let mut settings = crate::agent::pipeline_settings(
        &wirespan_config::Config::default(),
        0,
        HostFacts::hermetic(),
    );
    settings.span_builder = SpanBuilder::new(
        span_semantics::span_builder::IdGenerator::with_seed(3),
        span_semantics::routes::RouteTable::default(),
    );
    f.pipeline = Pipeline::new(settings, Vec::new(), &registry);
    f.exec(100, "/usr/bin/curl", b"");
    f.exec(200, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-a\0");
    f.exec(300, "/usr/bin/python3", b"OTEL_SERVICE_NAME=svc-b\0");
    let s = call_chain(&mut f, REQ, true);
    let (curl, a_server, a_client, b_server) = (&s[0].span, &s[1].span, &s[2].span, &s[3].span);
    assert_eq!(a_server.trace_id, curl.trace_id);
    assert!(a_client.parent_span_id.is_none());
    assert_ne!(a_client.trace_id, a_server.trace_id);
    // The call and its server end still form their own same-host trace.
    assert_eq!(b_server.trace_id, a_client.trace_id);
    assert_eq!(b_server.parent_span_id, Some(a_client.span_id));
    assert_eq!(
        registry.value(
            "wirespan_in_process_parents_total",
            &[("result", "ambiguous")]
        ),
        Some(1)
    );
    assert_eq!(
        registry.value("wirespan_in_process_parents_total", &[("result", "linked")]),
        Some(0)
    );
}

#[test]
fn in_process_parents_can_be_turned_off() {
    let mut config = wirespan_config::Config::default();
    config.traces.in_process_parents = false;
    let mut f = chain_feed(config);
    let s = call_chain(&mut f, REQ, false);
    let (curl, a_server, a_client) = (&s[0].span, &s[1].span, &s[2].span);
    assert_eq!(a_server.trace_id, curl.trace_id);
    assert!(a_client.parent_span_id.is_none());
    assert_ne!(a_client.trace_id, a_server.trace_id);
}

/// The far end of the agent's own connection is never traced.
#[test]
fn agent_own_connections_are_ignored_at_both_ends() {
    let mut f = Feed::new();
    let (agent, collector) = (addr(1, 50001), addr(1, 4318));
    encode::conn_open(
        &ConnOpenRecord {
            header: header(kind::CONN_OPEN, 999, 5, 1),
            conn_id: 9,
            local: agent,
            remote: collector,
            role: role::CLIENT,
            origin: origin::AGENT_OWN,
        },
        &mut f.buf,
    );
    f.push();
    f.open(300, 8, 10, role::SERVER, collector, agent, 2);
    f.data(300, 8, 10, direction::INGRESS, 0, 3, REQ);
    f.data(300, 8, 10, direction::EGRESS, 0, 4, RESP);
    f.pipeline.flush();
    assert_eq!(
        f.pipeline.take_actions(),
        vec![KernelAction::Mute(ConnKey { tgid: 300, fd: 8 })]
    );
    assert!(f.pipeline.into_output().is_empty());
}

/// A pipeline whose agent listens on `listen`, and its registry.
fn own_feed(listen: &str) -> (Feed, Registry) {
    let registry = Registry::new();
    let mut settings = crate::agent::pipeline_settings(
        &wirespan_config::Config::default(),
        0,
        HostFacts::hermetic(),
    );
    settings.own_listeners = vec![listen.parse().unwrap()];
    let f = Feed {
        pipeline: Pipeline::new(settings, Vec::new(), &registry),
        buf: Vec::new(),
    };
    (f, registry)
}

/// A client on this host scraping the agent's /metrics: ignored from its
/// open record (the agent's accept may come later), counted, no span.
#[test]
fn connections_to_the_agents_listen_address_make_no_spans() {
    for listen in ["127.0.0.1:9464", "0.0.0.0:9464"] {
        let (mut f, registry) = own_feed(listen);
        let scrape = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\n\r\n";
        f.open(300, 8, 10, role::CLIENT, addr(1, 50000), addr(1, 9464), 1);
        f.data(300, 8, 10, direction::EGRESS, 0, 2, scrape);
        // A control request on the same host to another port is traced.
        f.open(300, 9, 11, role::CLIENT, addr(1, 50001), addr(1, 8080), 3);
        f.data(300, 9, 11, direction::EGRESS, 0, 4, REQ);
        f.data(300, 9, 11, direction::INGRESS, 0, 5, RESP);
        f.close(300, 8, 10, scrape.len() as u64, 0, 6);
        f.pipeline.flush();
        assert_eq!(
            f.pipeline.take_actions(),
            vec![KernelAction::Mute(ConnKey { tgid: 300, fd: 8 })],
            "{listen}"
        );
        let spans = f.pipeline.into_output();
        assert_eq!(spans.len(), 1, "{listen}");
        assert_eq!(
            spans[0].attrs.get("server.port").and_then(|v| match v {
                AttrValue::Int(p) => Some(*p),
                _ => None,
            }),
            Some(8080)
        );
        assert_eq!(
            registry.value(
                "wirespan_own_traffic_bytes_total",
                &[("direction", "to_agent")]
            ),
            Some(scrape.len() as i128),
            "{listen}"
        );
        assert_eq!(
            registry.value(
                "wirespan_own_traffic_connections_total",
                &[("via", "listen_address")]
            ),
            Some(1)
        );
    }
}

/// The agent's own end seen after the far end already sent a request:
/// the far end is forgotten unended, so its request never becomes a
/// `connection_closed` span, even when its process exits.
#[test]
fn a_far_end_seen_before_the_agents_own_end_is_forgotten_unended() {
    let (mut f, registry) = own_feed("127.0.0.1:1");
    let (client, agent) = (addr(1, 50002), addr(1, 9464));
    f.open(300, 8, 10, role::CLIENT, client, agent, 1);
    f.data(300, 8, 10, direction::EGRESS, 0, 2, REQ);
    encode::conn_open(
        &ConnOpenRecord {
            header: header(kind::CONN_OPEN, 999, 5, 3),
            conn_id: 9,
            local: agent,
            remote: client,
            role: role::SERVER,
            origin: origin::AGENT_OWN,
        },
        &mut f.buf,
    );
    f.push();
    f.data(300, 8, 10, direction::INGRESS, 0, 4, RESP);
    f.exit(300, 5);
    f.pipeline.flush();
    assert!(f
        .pipeline
        .take_actions()
        .contains(&KernelAction::Mute(ConnKey { tgid: 300, fd: 8 })));
    assert!(f.pipeline.into_output().is_empty());
    assert_eq!(
        registry.value(
            "wirespan_own_traffic_bytes_total",
            &[("direction", "from_agent")]
        ),
        Some(RESP.len() as i128)
    );
    assert_eq!(
        registry.value(
            "wirespan_own_traffic_connections_total",
            &[("via", "agent_socket")]
        ),
        Some(1)
    );
}

#[test]
fn process_exit_forgets_its_sockets_in_the_kernel() {
    let mut f = Feed::new();
    f.open(100, 3, 1, role::CLIENT, addr(1, 1), addr(2, 2), 1);
    f.open(100, 4, 2, role::CLIENT, addr(1, 3), addr(2, 2), 1);
    f.close(100, 4, 2, 0, 0, 2);
    f.exit(100, 3);
    assert_eq!(
        f.pipeline.take_actions(),
        vec![KernelAction::Forget(ConnKey { tgid: 100, fd: 3 })]
    );
    assert_eq!(f.pipeline.connections(), 0);
}

/// A client's large response body: the pipeline asks the kernel to skip the
/// rest of it (from where the first record ends to the body's end), and the
/// flagged header-only records that then come complete the span, counted as
/// skipped body, not as lost bytes; the same for TLS plaintext.
#[test]
fn a_large_body_is_skipped_in_the_kernel_and_completes_the_span() {
    let registry = Registry::new();
    let mut config = wirespan_config::Config::default();
    config.http.opt_in_attributes = vec!["http.response.body.size".into()];
    let settings = crate::agent::pipeline_settings(&config, 0, HostFacts::hermetic());
    let mut f = Feed {
        pipeline: Pipeline::new(settings, Vec::new(), &registry),
        buf: Vec::new(),
    };
    f.open(100, 3, 1, role::CLIENT, addr(1, 40000), addr(2, 80), 1);
    let req = b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
    f.data(100, 3, 1, direction::EGRESS, 0, 10, req);
    let mut first = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
    let head = first.len() as u64;
    first.extend_from_slice(&[7u8; 3000]);
    f.data(100, 3, 1, direction::INGRESS, 0, 20, &first);
    assert_eq!(
        f.pipeline.take_actions(),
        vec![KernelAction::SkipBody {
            key: ConnKey { tgid: 100, fd: 3 },
            conn_id: ConnId(1),
            dir: Direction::Ingress,
            until: StreamOffset(head + 1_000_000),
        }]
    );
    let skipped = |offset: u64, len: u64, ts: u64| DataHeader {
        header: header(kind::DATA, 100, 3, ts),
        conn_id: 1,
        call_stream_offset: offset,
        call_len: len,
        chunk_offset: 0,
        chunk_len: 0,
        direction: direction::INGRESS,
        source: probes_common::source::READ | probes_common::source::BODY_SKIPPED,
    };
    let at = first.len() as u64;
    for (offset, len, ts) in [(at, 500_000, 30), (at + 500_000, 497_000, 40)] {
        encode::data(&skipped(offset, len, ts), &[], &mut f.buf);
        f.push();
    }
    let spans = f.pipeline.output_mut();
    assert_eq!(spans.len(), 1, "the response is complete");
    assert_eq!(
        spans[0].attr_int("http.response.body.size"),
        Some(1_000_000)
    );
    assert_eq!(spans[0].span.end_time_unix_nano, 40);
    assert_eq!(
        registry.value(
            "wirespan_stream_bytes_not_parsed_total",
            &[("reason", "skipped_body_bytes")]
        ),
        Some(997_000)
    );
    assert_eq!(
        registry.value(
            "wirespan_stream_bytes_not_parsed_total",
            &[("reason", "gap_bytes")]
        ),
        Some(0)
    );

    // The same exchange as TLS plaintext on another socket: the request
    // names the plaintext stream (the twin's key) and the socket's id, and
    // a flagged plaintext record completes the twin's span.
    f.open(100, 4, 2, role::CLIENT, addr(1, 40001), addr(2, 443), 50);
    let tls = |dir: u32, source: u32, offset: u64, len: u64, chunk: u32, ts: u64| DataHeader {
        header: header(kind::DATA, 100, 4, ts),
        conn_id: 2,
        call_stream_offset: offset,
        call_len: len,
        chunk_offset: 0,
        chunk_len: chunk,
        direction: dir,
        source,
    };
    let (write, read) = (
        probes_common::source::TLS_WRITE,
        probes_common::source::TLS_READ,
    );
    for (dir, source, bytes) in [
        (direction::EGRESS, write, &req[..]),
        (direction::INGRESS, read, &first[..]),
    ] {
        let n = bytes.len();
        encode::data(
            &tls(dir, source, 0, n as u64, n as u32, 60),
            bytes,
            &mut f.buf,
        );
        f.push();
    }
    assert_eq!(
        f.pipeline.take_actions(),
        vec![KernelAction::SkipBody {
            key: ConnKey {
                tgid: 100,
                fd: 4 | TLS_FD_BIT
            },
            conn_id: ConnId(2),
            dir: Direction::Ingress,
            until: StreamOffset(head + 1_000_000),
        }]
    );
    let flagged = read | probes_common::source::BODY_SKIPPED;
    encode::data(
        &tls(direction::INGRESS, flagged, at, 997_000, 0, 70),
        &[],
        &mut f.buf,
    );
    f.push();
    let spans = f.pipeline.output_mut();
    assert_eq!(spans.len(), 2, "the twin's response is complete");
    assert_eq!(
        spans[1].attr_int("http.response.body.size"),
        Some(1_000_000)
    );
    assert_eq!(spans[1].attr_int("server.port"), Some(443));
    assert_eq!(
        registry.value(
            "wirespan_stream_bytes_not_parsed_total",
            &[("reason", "skipped_body_bytes")]
        ),
        Some(2 * 997_000)
    );
}
