#![allow(dead_code, reason = "shared by several test crates, each using a part")]

use std::net::{IpAddr, Ipv4Addr};

use conn_tracker::*;
use protocol_parsers::{HttpExchange, ParseIssue};

/// Keeps everything the table reports.
#[derive(Default, Debug)]
pub struct Rec {
    pub exchanges: Vec<(ConnInfo, HttpExchange)>,
    pub issues: Vec<(ConnKey, ParseIssue)>,
    pub events: Vec<TrackerEvent>,
    pub muted: Vec<ConnInfo>,
    /// (direction, until) of every `body_ahead`.
    pub body_ahead: Vec<(Direction, u64)>,
}

impl TrackerSink for Rec {
    fn exchange(&mut self, conn: &ConnInfo, exchange: HttpExchange) {
        self.exchanges.push((conn.clone(), exchange));
    }
    fn parse_issue(&mut self, conn: &ConnInfo, issue: ParseIssue) {
        self.issues.push((conn.key, issue));
    }
    fn tracker_event(&mut self, event: TrackerEvent) {
        self.events.push(event);
    }
    fn mute(&mut self, conn: &ConnInfo) {
        self.muted.push(conn.clone());
    }
    fn body_ahead(&mut self, _conn: &ConnInfo, dir: Direction, until: StreamOffset) {
        self.body_ahead.push((dir, until.0));
    }
}

impl Rec {
    /// Sum of the amounts of events with this label.
    pub fn count(&self, label: &str) -> u64 {
        self.events
            .iter()
            .filter(|e| e.label() == label)
            .map(|e| e.amount())
            .sum()
    }

    pub fn issue_count(&self, issue: ParseIssue) -> usize {
        self.issues.iter().filter(|(_, i)| *i == issue).count()
    }

    /// (method, target, status) of each exchange, in order.
    pub fn summary(&self) -> Vec<(String, String, Option<u16>)> {
        self.exchanges
            .iter()
            .map(|(_, e)| {
                (
                    e.request.method().to_owned(),
                    e.request.target().to_owned(),
                    e.response.as_ref().map(|r| r.status),
                )
            })
            .collect()
    }
}

pub fn key(tgid: u32, fd: i32) -> ConnKey {
    ConnKey { tgid, fd }
}

pub fn info(key: ConnKey, conn_id: u64, role: Role, opened_ns: u64) -> ConnInfo {
    ConnInfo {
        key,
        conn_id,
        role,
        local: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
        remote: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8080),
        opened_ns,
        protocol: Protocol::Undetected,
        joined_midway: false,
    }
}

pub fn limits() -> TrackerLimits {
    TrackerLimits {
        max_connections: 1024,
        idle_timeout_ns: 1_000_000_000,
        memory_limit_bytes: 1 << 20,
        detect_window_bytes: 64,
        ..TrackerLimits::default()
    }
}

/// Feeds each direction of a connection as consecutive records, keeping offsets.
pub struct Feeder {
    pub key: ConnKey,
    pub conn_id: u64,
    pub off: [u64; 2],
    pub ts: u64,
}

impl Feeder {
    pub fn new(key: ConnKey, conn_id: u64) -> Feeder {
        Feeder {
            key,
            conn_id,
            off: [0, 0],
            ts: 1_000,
        }
    }

    fn i(dir: Direction) -> usize {
        match dir {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        }
    }

    pub fn send(&mut self, t: &mut ConnectionTable, sink: &mut Rec, dir: Direction, bytes: &[u8]) {
        self.ts += 1_000;
        let i = Self::i(dir);
        t.data(
            self.key,
            ConnId(self.conn_id),
            dir,
            StreamOffset(self.off[i]),
            MonotonicNs(self.ts),
            bytes,
            sink,
        );
        self.off[i] += bytes.len() as u64;
    }

    /// Skips `n` bytes of `dir` (they are lost: the next send leaves a gap).
    pub fn lose(&mut self, dir: Direction, n: u64) {
        self.off[Self::i(dir)] += n;
    }

    pub fn close(&mut self, t: &mut ConnectionTable, sink: &mut Rec) {
        self.ts += 1_000;
        t.close(
            self.key,
            ConnId(self.conn_id),
            StreamOffset(self.off[0]),
            StreamOffset(self.off[1]),
            MonotonicNs(self.ts),
            sink,
        );
    }
}

pub const REQ1: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
pub const RESP1: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
pub const REQ2: &[u8] = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd";
pub const RESP2: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
