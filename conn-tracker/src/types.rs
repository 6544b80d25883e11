//! The vocabulary of the tracker: which connection, which way, who is who, and
//! the limits the table enforces.

use std::net::IpAddr;

use crate::backend::{Http1Limits, Http2Limits};
use protocol_parsers::Side;

/// A socket of a process. The same key is reused when the fd number is reused;
/// [`ConnInfo::conn_id`] tells the generations apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
}

/// Which end of the connection the observed process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The process connected: it sends requests.
    Client,
    /// The process accepted: it receives requests.
    Server,
    /// Not known (the open record was lost); protocol detection decides.
    Unknown,
}

impl Role {
    /// The parser side of the bytes moving in `dir`, or None while unknown.
    pub fn side(self, dir: Direction) -> Option<Side> {
        match (self, dir) {
            (Role::Client, Direction::Egress) | (Role::Server, Direction::Ingress) => {
                Some(Side::Request)
            }
            (Role::Client, Direction::Ingress) | (Role::Server, Direction::Egress) => {
                Some(Side::Response)
            }
            (Role::Unknown, _) => None,
        }
    }

    /// The role implied by seeing `side` travel in `dir`.
    pub fn from_side(side: Side, dir: Direction) -> Role {
        match (side, dir) {
            (Side::Request, Direction::Egress) | (Side::Response, Direction::Ingress) => {
                Role::Client
            }
            (Side::Request, Direction::Ingress) | (Side::Response, Direction::Egress) => {
                Role::Server
            }
        }
    }
}

/// Direction of bytes from the observed process's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Written by the process.
    Egress,
    /// Read by the process.
    Ingress,
}

impl Direction {
    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }
}

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl Endpoint {
    /// Builds an endpoint, showing an IPv4-mapped IPv6 address as IPv4.
    pub fn new(ip: IpAddr, port: u16) -> Endpoint {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        Endpoint { ip, port }
    }

    /// From the probes' 16-byte address (IPv4 stored IPv4-mapped).
    pub fn from_raw(addr: [u8; 16], port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V6(addr.into()), port)
    }

    /// `0.0.0.0:0`, for connections whose addresses were never reported.
    pub fn unspecified() -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: 0,
        }
    }
}

/// What the parser dispatch decided for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// No byte seen yet, or not enough to decide.
    Undetected,
    Http1,
    Http2,
    /// Not a protocol we parse: the connection is muted.
    Unknown,
}

/// Everything known about a connection; passed to the sink with each result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub key: ConnKey,
    /// Generation: unique per agent run, tells fd reuse apart.
    pub conn_id: u64,
    /// From connect/accept; detection fills it in when Unknown and corrects it
    /// when the traffic contradicts it (a request written ⇒ Client).
    pub role: Role,
    pub local: Endpoint,
    pub remote: Endpoint,
    /// When the connection became known (caller's clock, ns); 0 if not known.
    pub opened_ns: u64,
    pub protocol: Protocol,
    /// The agent joined an established connection (seeded from /proc, or created
    /// lazily from data): the first bytes may be mid-conversation, so HTTP/2 is
    /// also recognised by plausible frame headers without a preface.
    pub joined_midway: bool,
}

impl ConnInfo {
    /// A connection known only by its key (data arrived without an open record).
    pub fn unknown(key: ConnKey, conn_id: u64, opened_ns: u64) -> ConnInfo {
        ConnInfo {
            key,
            conn_id,
            role: Role::Unknown,
            local: Endpoint::unspecified(),
            remote: Endpoint::unspecified(),
            opened_ns,
            protocol: Protocol::Undetected,
            joined_midway: true,
        }
    }
}

/// Bounds the table enforces.
#[derive(Clone, Debug)]
pub struct TrackerLimits {
    /// Most connections tracked; opening one more evicts the least recently used.
    pub max_connections: usize,
    /// A connection without any event for this long is evicted by `evict_idle`.
    pub idle_timeout_ns: u64,
    /// Most bytes held by all parsers and detection buffers together; checked
    /// after every call, evicting the largest holders until under.
    pub memory_limit_bytes: usize,
    pub http1: Http1Limits,
    pub http2: Http2Limits,
    /// Bytes per direction looked at to detect the protocol before giving up.
    pub detect_window_bytes: usize,
}

/// The same values as the `connections` and `http` defaults of
/// `wirespan-config`, which the agent always passes (a test in `wirespan`
/// checks that the two agree).
impl Default for TrackerLimits {
    fn default() -> Self {
        TrackerLimits {
            max_connections: 65_536,
            idle_timeout_ns: 300_000_000_000,
            memory_limit_bytes: 64 << 20,
            http1: Http1Limits::default(),
            http2: Http2Limits::default(),
            detect_window_bytes: 64,
        }
    }
}
