//! Same-host trace linking: when both ends of a connection are processes on
//! this host, the client span and the server span of each request share one
//! trace, and the server span's parent is the client span.
//!
//! Both ends' connections meet under the (client endpoint, server endpoint)
//! pair when they open; the first end draws a random nonce and the second one
//! takes it. Each request's ids are then derived from the nonce, the request's
//! ordinal (its number on the connection, as the parsers count it) and its
//! request line (`LinkIds::derive`), which both ends compute alike without
//! waiting for each other. A nonce, not the 4-tuple itself, so that a reused
//! port never joins two unrelated connections.
//!
//! A client request that belongs to an existing trace (in-process causality:
//! see `causality`) leaves that trace id on the pair, so that the server end
//! of the same request joins the same trace instead of the derived one.

use conn_tracker::{ConnInfo, ConnKey, Endpoint, FastMap, ProcessMap, Role};
use protocol_parsers::{HttpExchange, RequestHead};
use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use crate::span_builder::{IdGenerator, LinkIds};
use crate::tls_twin::{TLS_CONN_BIT, TLS_FD_BIT};

#[derive(Debug)]
struct Pair {
    nonce: u64,
    client_seen: bool,
    server_seen: bool,
    /// Ends still open.
    open: u8,
    /// Trace ids that client requests inherited, by (plane, ordinal); the
    /// oldest is forgotten beyond `MAX_INHERITED_PER_PAIR`.
    inherited: VecDeque<(usize, u64, [u8; 16])>,
}

/// Requests of one connection that can be in flight with an inherited trace
/// at once (pipelining, HTTP/2 streams) before the oldest is forgotten.
const MAX_INHERITED_PER_PAIR: usize = 64;

#[derive(Debug)]
struct End {
    pair: (Endpoint, Endpoint),
}

/// The pairs of connections whose two ends are both traced here.
pub struct ConnectionLinks {
    pairs: FastMap<(Endpoint, Endpoint), Pair>,
    /// Each open end, also by process, so that a process exit finds its own
    /// and a close costs O(1) however many ends the process has.
    ends: ProcessMap<(ConnKey, u64), End>,
    ids: IdGenerator,
}

/// (client endpoint, server endpoint) of a connection, or None without a role.
fn pair_of(info: &ConnInfo) -> Option<(Endpoint, Endpoint)> {
    match info.role {
        Role::Client => Some((info.local, info.remote)),
        Role::Server => Some((info.remote, info.local)),
        Role::Unknown => None,
    }
}

/// The real socket behind a TLS twin.
fn real(key: ConnKey, conn_id: u64) -> (ConnKey, u64, usize) {
    if key.fd & TLS_FD_BIT != 0 {
        (
            ConnKey {
                tgid: key.tgid,
                fd: key.fd & !TLS_FD_BIT,
            },
            conn_id & !TLS_CONN_BIT,
            1,
        )
    } else {
        (key, conn_id, 0)
    }
}

impl ConnectionLinks {
    pub fn new(ids: IdGenerator) -> Self {
        Self {
            pairs: FastMap::default(),
            ends: ProcessMap::default(),
            ids,
        }
    }

    /// A connection opened with a known role.
    pub fn open(&mut self, info: &ConnInfo) {
        let Some(pair) = pair_of(info) else {
            return;
        };
        if info.joined_midway {
            // Request ordinals would not agree with the other end's.
            return;
        }
        let ids = &mut self.ids;
        let entry = self.pairs.entry(pair).or_insert_with(|| Pair {
            nonce: u64::from_be_bytes(ids.span_id()),
            client_seen: false,
            server_seen: false,
            open: 0,
            inherited: VecDeque::new(),
        });
        match info.role {
            Role::Client => entry.client_seen = true,
            _ => entry.server_seen = true,
        }
        entry.open = entry.open.saturating_add(1);
        self.ends.insert((info.key, info.conn_id), End { pair });
    }

    /// The ids of an exchange of `conn`, if the connection is linked.
    pub fn ids_for(&self, conn: &ConnInfo, ex: &HttpExchange) -> Option<LinkIds> {
        self.ids_for_request(conn, &ex.request, ex.ordinal)
    }

    /// The ids of request `ordinal` of `conn`, if the connection is linked:
    /// the same as [`ids_for`](Self::ids_for) gives for its exchange later.
    pub fn ids_for_request(
        &self,
        conn: &ConnInfo,
        head: &RequestHead,
        ordinal: u64,
    ) -> Option<LinkIds> {
        let (key, conn_id, plane) = real(conn.key, conn.conn_id);
        let end = self.ends.get(&(key, conn_id))?;
        let pair = self.pairs.get(&end.pair)?;
        let mut ids = LinkIds::derive(
            pair.nonce ^ plane as u64,
            ordinal,
            head.method(),
            head.target(),
            pair.client_seen,
        );
        if let Some((_, _, trace)) = pair
            .inherited
            .iter()
            .find(|(p, o, _)| *p == plane && *o == ordinal)
        {
            ids.trace_id = *trace;
        }
        Some(ids)
    }

    /// Client request `ordinal` of `conn` belongs to trace `trace_id`: both
    /// ends' spans of it use that trace. Returns false when `conn` is not linked.
    pub fn inherit(&mut self, conn: &ConnInfo, ordinal: u64, trace_id: [u8; 16]) -> bool {
        let (key, conn_id, plane) = real(conn.key, conn.conn_id);
        let Some(end) = self.ends.get(&(key, conn_id)) else {
            return false;
        };
        let Some(pair) = self.pairs.get_mut(&end.pair) else {
            return false;
        };
        if pair.inherited.len() >= MAX_INHERITED_PER_PAIR {
            pair.inherited.pop_front();
        }
        pair.inherited.push_back((plane, ordinal, trace_id));
        true
    }

    /// A connection closed; its pair is forgotten once both ends are.
    pub fn close(&mut self, key: ConnKey, conn_id: u64) {
        if let Some(end) = self.ends.remove(&(key, conn_id)) {
            if let Entry::Occupied(mut pair) = self.pairs.entry(end.pair) {
                let open = &mut pair.get_mut().open;
                *open = open.saturating_sub(1);
                if *open == 0 {
                    pair.remove();
                }
            }
        }
    }

    /// The process exited: its connections are closed.
    pub fn close_process(&mut self, tgid: u32) {
        for (k, id) in self.ends.keys_of(tgid) {
            self.close(k, id);
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conn_tracker::Protocol;
    use protocol_parsers::HttpVersion;
    use std::net::{IpAddr, Ipv4Addr};

    fn ep(port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// One end of the connection between client port `client` and server
    /// port 80, held by (tgid, fd).
    fn end(tgid: u32, fd: i32, conn_id: u64, role: Role, client: u16) -> ConnInfo {
        let (local, remote) = match role {
            Role::Server => (ep(80), ep(client)),
            _ => (ep(client), ep(80)),
        };
        ConnInfo {
            key: ConnKey { tgid, fd },
            conn_id,
            role,
            local,
            remote,
            opened_ns: 0,
            protocol: Protocol::Http1,
            joined_midway: false,
        }
    }

    fn ids(links: &ConnectionLinks, conn: &ConnInfo) -> Option<LinkIds> {
        let head = RequestHead::new("GET", "/", HttpVersion::Http11);
        links.ids_for_request(conn, &head, 1)
    }

    #[test]
    fn both_ends_derive_the_same_ids() {
        let mut links = ConnectionLinks::new(IdGenerator::with_seed(1));
        let client = end(1, 3, 10, Role::Client, 5000);
        let server = end(2, 4, 11, Role::Server, 5000);
        links.open(&client);
        links.open(&server);
        let (c, s) = (ids(&links, &client).unwrap(), ids(&links, &server).unwrap());
        assert_eq!(c.trace_id, s.trace_id);
        // Another connection of the same processes gets other ids.
        let other = end(1, 5, 12, Role::Client, 5001);
        links.open(&other);
        assert_ne!(ids(&links, &other).unwrap().trace_id, c.trace_id);
    }

    #[test]
    fn a_process_exit_closes_its_ends_and_no_one_elses() {
        let mut links = ConnectionLinks::new(IdGenerator::with_seed(2));
        // Process 2 serves clients of processes 1 and 3; the pids on either
        // side of it hold ends too, at the highest fd a socket (not a TLS
        // twin) can have.
        let conns = [
            end(1, TLS_FD_BIT - 1, 1, Role::Client, 5000),
            end(2, 0, 2, Role::Server, 5000),
            end(2, 7, 3, Role::Server, 5001),
            end(3, 0, 4, Role::Client, 5001),
            end(2, TLS_FD_BIT - 1, 5, Role::Server, 5002),
        ];
        for c in &conns {
            links.open(c);
        }
        assert_eq!(links.len(), 5);
        links.close_process(2);
        assert_eq!(links.len(), 2);
        for c in &conns {
            assert_eq!(ids(&links, c).is_some(), c.key.tgid != 2, "{:?}", c.key);
        }
        // A closed end is gone, and so is its pair once both ends are.
        links.close(conns[0].key, conns[0].conn_id);
        links.close(conns[3].key, conns[3].conn_id);
        assert!(links.is_empty());
        assert!(links.pairs.is_empty());
        assert!(links.ends.consistent());
    }

    #[test]
    fn a_reused_fd_is_a_new_end() {
        let mut links = ConnectionLinks::new(IdGenerator::with_seed(3));
        let first = end(1, 3, 10, Role::Client, 5000);
        let second = end(1, 3, 11, Role::Client, 5001);
        links.open(&first);
        links.close(first.key, first.conn_id);
        links.open(&second);
        assert!(ids(&links, &first).is_none());
        assert!(ids(&links, &second).is_some());
        assert_eq!(links.ends.len(), 1);
        assert!(links.ends.consistent());
    }
}
