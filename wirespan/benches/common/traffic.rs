//! Synthetic probe records for the benches: what the ring buffer would deliver
//! for a server process answering HTTP/1 keep-alive or HTTP/2 (h2c) traffic on
//! many connections. Shared by `pipeline.rs` and `memory.rs` via `#[path]`.
#![allow(
    dead_code,
    reason = "shared by the pipeline and memory benches, each using a part"
)]

use probes_common::records::encode;
use probes_common::{
    direction, kind, origin, role, ConnCloseRecord, ConnOpenRecord, DataHeader, RecordHeader,
    SockAddr,
};
use test_support::hpack::{block, Name, Rep};
use test_support::http2::{frame, headers, preface, settings, settings_ack, FrameType, END_STREAM};

pub const TGID: u32 = 4242;
/// The client process of the `Connection: close` traffic.
pub const CLIENT_TGID: u32 = 4343;

/// A request head of exactly 200 bytes (padded with an X-Pad header).
pub fn http1_request(n: u64) -> Vec<u8> {
    let mut r = format!(
        "GET /api/v1/items/{:06}?page=2&limit=50 HTTP/1.1\r\nHost: api.internal:8080\r\n\
         User-Agent: bench-client/1.0\r\nAccept: application/json\r\nX-Pad: ",
        n % 1_000_000
    )
    .into_bytes();
    let tail = b"\r\n\r\n";
    while r.len() + tail.len() < 200 {
        r.push(b'p');
    }
    r.extend_from_slice(tail);
    assert_eq!(r.len(), 200);
    r
}

/// A 300-byte response: head plus a JSON-ish body filling the rest.
pub fn http1_response() -> Vec<u8> {
    let total = 300;
    for body in 0..total {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: bench\r\n\
             Date: Wed, 25 Nov 2026 20:00:00 GMT\r\nContent-Length: {body}\r\n\r\n"
        );
        if head.len() + body == total {
            let mut r = head.into_bytes();
            r.extend(std::iter::repeat_n(b'x', body));
            return r;
        }
    }
    unreachable!()
}

fn addr(port: u16) -> SockAddr {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&[10, 0, 0, 1]);
    SockAddr {
        addr: a,
        port,
        family: 10,
        _pad: 0,
    }
}

fn remote(i: usize) -> SockAddr {
    let mut a = addr(0);
    a.addr[14] = (i >> 8) as u8;
    a.addr[15] = i as u8;
    a.port = 30000 + (i % 30000) as u16;
    a
}

/// The close traffic's client: one address (10.0.0.2), port by connection.
fn client_at(n: usize) -> SockAddr {
    let mut a = addr(0);
    a.addr[15] = 2;
    a.port = 30000 + (n % 30000) as u16;
    a
}

/// The exec record naming the server process (so no /proc lookup happens).
pub fn exec_record() -> Vec<u8> {
    exec_record_of(TGID, "bench-server", "bench")
}

/// The exec record naming the client process of the close traffic.
pub fn client_exec_record() -> Vec<u8> {
    exec_record_of(CLIENT_TGID, "bench-client", "bench-client")
}

fn exec_record_of(tgid: u32, comm: &str, service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode::proc_exec(
        RecordHeader {
            kind: kind::PROC_EXEC,
            tgid,
            tid: tgid,
            fd: -1,
            ts_ns: 1,
        },
        1,
        comm.as_bytes(),
        format!("/usr/local/bin/{comm}").as_bytes(),
        format!("{comm}\0").as_bytes(),
        format!("OTEL_SERVICE_NAME={service}\0").as_bytes(),
        &mut out,
    );
    out
}

/// The server's end of keep-alive connection `i`: fd 100 + i.
fn server_end(i: usize) -> End {
    End {
        tgid: TGID,
        fd: 100 + i as i32,
        conn_id: i as u64 + 1,
    }
}

/// Accept of connection `i` (fd 100 + i).
pub fn open_record(i: usize, ts: u64) -> Vec<u8> {
    end_open(server_end(i), addr(8080), remote(i), true, ts)
}

/// One data record on connection `i`.
pub fn data_record(i: usize, dir: u32, offset: u64, ts: u64, payload: &[u8]) -> Vec<u8> {
    end_data(server_end(i), dir, offset, ts, payload)
}

/// One end of a connection: its process, fd and the probes' connection id.
#[derive(Clone, Copy)]
struct End {
    tgid: u32,
    fd: i32,
    conn_id: u64,
}

fn header(end: End, kind: u32, ts: u64) -> RecordHeader {
    RecordHeader {
        kind,
        tgid: end.tgid,
        tid: end.tgid,
        fd: end.fd,
        ts_ns: ts,
    }
}

fn end_open(end: End, local: SockAddr, remote: SockAddr, server: bool, ts: u64) -> Vec<u8> {
    let rec = ConnOpenRecord {
        header: header(end, kind::CONN_OPEN, ts),
        conn_id: end.conn_id,
        local,
        remote,
        role: if server { role::SERVER } else { role::CLIENT },
        origin: if server {
            origin::ACCEPT
        } else {
            origin::CONNECT
        },
    };
    let mut out = Vec::new();
    encode::conn_open(&rec, &mut out);
    out
}

fn end_data(end: End, dir: u32, offset: u64, ts: u64, payload: &[u8]) -> Vec<u8> {
    let h = DataHeader {
        header: header(end, kind::DATA, ts),
        conn_id: end.conn_id,
        call_stream_offset: offset,
        call_len: payload.len() as u64,
        chunk_offset: 0,
        chunk_len: payload.len() as u32,
        direction: dir,
        source: if dir == direction::INGRESS { 1 } else { 2 },
    };
    let mut out = Vec::with_capacity(64 + payload.len());
    encode::data(&h, payload, &mut out);
    out
}

fn end_close(end: End, egress: u64, ingress: u64, ts: u64) -> Vec<u8> {
    let rec = ConnCloseRecord {
        header: header(end, kind::CONN_CLOSE, ts),
        conn_id: end.conn_id,
        egress_total: egress,
        ingress_total: ingress,
    };
    let mut out = Vec::new();
    encode::conn_close(&rec, &mut out);
    out
}

/// `Connection: close` traffic between two processes of this host, as in
/// the `close` case of `bench/overhead`: connections `first..first + conns`
/// one after another, each the client's connect and the server's accept,
/// the request written and read, the response written and read, then the
/// server's close and the client's. Eight records and two spans (CLIENT and
/// SERVER) per connection; each end reuses one fd, as a process does.
pub fn http1_close_traffic(first: usize, conns: usize, resp: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(conns * 8);
    let mut ts = 10_000 + first as u64 * 8_000;
    let mut next = || {
        ts += 1_000;
        ts
    };
    for n in first..first + conns {
        let server = End {
            tgid: TGID,
            fd: 100,
            conn_id: 2 * n as u64 + 1,
        };
        let client = End {
            tgid: CLIENT_TGID,
            fd: 5,
            conn_id: 2 * n as u64 + 2,
        };
        // One client host, a new ephemeral port per connection.
        let (server_addr, client_addr) = (addr(8080), client_at(n));
        let req = http1_request(n as u64);
        let (q, r) = (req.len() as u64, resp.len() as u64);
        out.push(end_open(client, client_addr, server_addr, false, next()));
        out.push(end_open(server, server_addr, client_addr, true, next()));
        out.push(end_data(client, direction::EGRESS, 0, next(), &req));
        out.push(end_data(server, direction::INGRESS, 0, next(), &req));
        out.push(end_data(server, direction::EGRESS, 0, next(), resp));
        out.push(end_data(client, direction::INGRESS, 0, next(), resp));
        out.push(end_close(server, r, q, next()));
        out.push(end_close(client, q, r, next()));
    }
    out
}

/// Per-connection stream positions, so traffic can be generated in rounds.
pub struct Streams {
    pub ingress: Vec<u64>,
    pub egress: Vec<u64>,
    pub ts: u64,
    pub n: u64,
}

impl Streams {
    pub fn new(conns: usize) -> Self {
        Streams {
            ingress: vec![0; conns],
            egress: vec![0; conns],
            ts: 1_000,
            n: 0,
        }
    }

    fn push(&mut self, i: usize, dir: u32, payload: &[u8], out: &mut Vec<Vec<u8>>) {
        self.ts += 1_000;
        let off = if dir == direction::INGRESS {
            &mut self.ingress[i]
        } else {
            &mut self.egress[i]
        };
        out.push(data_record(i, dir, *off, self.ts, payload));
        *off += payload.len() as u64;
    }

    /// `rounds` HTTP/1 exchanges on each connection, round-robin: request in,
    /// response out. Two records (one span) per exchange.
    pub fn http1_rounds(&mut self, conns: usize, rounds: usize, resp: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(conns * rounds * 2);
        for _ in 0..rounds {
            for i in 0..conns {
                self.n += 1;
                let req = http1_request(self.n);
                self.push(i, direction::INGRESS, &req, &mut out);
                self.push(i, direction::EGRESS, resp, &mut out);
            }
        }
        out
    }

    /// HTTP/2 connection starts: client preface + SETTINGS in, SETTINGS out.
    pub fn http2_starts(&mut self, conns: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..conns {
            let mut pre = preface();
            pre.extend(settings(&[]));
            self.push(i, direction::INGRESS, &pre, &mut out);
            let mut s = settings(&[]);
            s.extend(settings_ack());
            self.push(i, direction::EGRESS, &s, &mut out);
        }
        out
    }

    /// `rounds` HTTP/2 streams per connection: HEADERS (END_STREAM) in;
    /// HEADERS + one 250-byte DATA (END_STREAM) out. Two records per stream.
    pub fn http2_rounds(&mut self, conns: usize, rounds: usize, first_stream: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(conns * rounds * 2);
        for r in 0..rounds {
            let sid = first_stream + 2 * r as u32;
            for i in 0..conns {
                self.n += 1;
                let req = headers(sid, &h2_request_block(self.n), true);
                self.push(i, direction::INGRESS, &req, &mut out);
                let mut resp = headers(sid, &h2_response_block(), false);
                resp.extend(frame(FrameType::Data, END_STREAM, sid, &[b'y'; 250]));
                self.push(i, direction::EGRESS, &resp, &mut out);
            }
        }
        out
    }
}

/// Literals without indexing, static names, no Huffman.
fn h2_request_block(n: u64) -> Vec<u8> {
    let path = format!("/api/v1/items/{:06}?page=2", n % 1_000_000);
    block(&[
        Rep::Indexed(2), // :method GET
        Rep::Indexed(6), // :scheme http
        Rep::NoIdx(Name::Idx(4), &path),
        Rep::NoIdx(Name::Idx(1), "api.internal:8080"), // :authority
        Rep::NoIdx(Name::Idx(58), "bench-client/1.0"), // user-agent
        Rep::NoIdx(Name::Idx(19), "application/json"), // accept
    ])
}

fn h2_response_block() -> Vec<u8> {
    block(&[
        Rep::Indexed(8),                               // :status 200
        Rep::NoIdx(Name::Idx(31), "application/json"), // content-type
        Rep::NoIdx(Name::Idx(28), "250"),              // content-length
    ])
}
