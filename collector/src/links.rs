//! Same-host trace linking: when both ends of a connection are processes on
//! this host, the client span and the server span of each request share one
//! trace, and the server span's parent is the client span.
//!
//! Both ends' connections meet under the (client endpoint, server endpoint)
//! pair when they open; the first end draws a random nonce and the second one
//! takes it. Each request's ids are then derived from the nonce, the request's
//! ordinal and its request line (`LinkIds::derive`), which both ends compute
//! alike without waiting for each other. A nonce, not the 4-tuple itself, so
//! that a reused port never joins two unrelated connections.

use conn_tracker::{ConnInfo, ConnKey, Endpoint, Role};
use protocol_parsers::HttpExchange;
use std::collections::HashMap;

use crate::pipeline::{TLS_CONN_BIT, TLS_FD_BIT};
use crate::span_builder::{IdGenerator, LinkIds};

#[derive(Debug)]
struct Pair {
    nonce: u64,
    client_seen: bool,
    server_seen: bool,
    /// Ends still open.
    open: u8,
}

#[derive(Debug)]
struct End {
    pair: (Endpoint, Endpoint),
    /// Requests seen so far on this end (HTTP/1 ordinals), by plain/TLS.
    ordinals: [u64; 2],
}

/// The pairs of connections whose two ends are both traced here.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub struct ConnectionLinks {
    pairs: FastMap<(Endpoint, Endpoint), Pair>,
    ends: FastMap<(ConnKey, u64), End>,
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
            ends: FastMap::default(),
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
        });
        match info.role {
            Role::Client => entry.client_seen = true,
            _ => entry.server_seen = true,
        }
        entry.open = entry.open.saturating_add(1);
        self.ends.insert(
            (info.key, info.conn_id),
            End {
                pair,
                ordinals: [0, 0],
            },
        );
    }

    /// The ids for the next exchange of `conn`, if it is linked.
    pub fn ids_for(&mut self, conn: &ConnInfo, ex: &HttpExchange) -> Option<LinkIds> {
        let (key, conn_id, plane) = real(conn.key, conn.conn_id);
        let end = self.ends.get_mut(&(key, conn_id))?;
        let pair = self.pairs.get(&end.pair)?;
        let ordinal = match ex.stream_id {
            Some(stream) => u64::from(stream),
            None => {
                end.ordinals[plane] += 1;
                end.ordinals[plane]
            }
        };
        Some(LinkIds::derive(
            pair.nonce ^ plane as u64,
            ordinal,
            &ex.request.method,
            &ex.request.target,
            pair.client_seen,
        ))
    }

    /// A connection closed; its pair is forgotten once both ends are.
    pub fn close(&mut self, key: ConnKey, conn_id: u64) {
        if let Some(end) = self.ends.remove(&(key, conn_id)) {
            if let Some(pair) = self.pairs.get_mut(&end.pair) {
                pair.open = pair.open.saturating_sub(1);
                if pair.open == 0 {
                    self.pairs.remove(&end.pair);
                }
            }
        }
    }

    /// The process exited: its connections are closed.
    pub fn close_process(&mut self, tgid: u32) {
        let gone: Vec<(ConnKey, u64)> = self
            .ends
            .keys()
            .filter(|(k, _)| k.tgid == tgid)
            .copied()
            .collect();
        for (k, id) in gone {
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
