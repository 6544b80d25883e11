//! The kernel maps user space writes to: muting and forgetting sockets, and
//! seeding the connections that were open before the probes attached.

use anyhow::Result;
use aya::maps::{HashMap as BpfHashMap, MapData};
use probes_common::{BodySkip, SocketKey, SocketState};

use crate::probes::{ProbeOptions, Probes};

/// The socket maps, taken from the loaded probes.
pub struct KernelMaps {
    sockets: crate::probes::TrackedSockets,
    muted: crate::probes::MutedSockets,
    body_skip: BpfHashMap<MapData, SocketKey, BodySkip>,
}

impl KernelMaps {
    pub fn take(probes: &mut Probes) -> Result<Self> {
        Ok(Self {
            sockets: probes.take_sockets()?,
            muted: probes.take_muted()?,
            body_skip: probes.take_body_skip()?,
        })
    }

    /// Tells the probes that the bytes of direction `dir`
    /// (`probes_common::direction`) of connection `conn_id` before stream
    /// offset `until` are body the parser only counts: calls wholly below it
    /// are not copied. The other direction's point is kept if the entry is
    /// this connection's. A failed write only means the bytes are copied.
    pub fn skip_body(&mut self, tgid: u32, fd: i32, conn_id: u64, dir: u32, until: u64) -> bool {
        let key = SocketKey { tgid, fd };
        let mut skip = match self.body_skip.get(&key, 0) {
            Ok(s) if s.conn_id == conn_id => s,
            _ => BodySkip {
                conn_id,
                until: [0, 0],
            },
        };
        let Some(slot) = skip.until.get_mut(dir as usize) else {
            return false;
        };
        *slot = until;
        self.body_skip.insert(key, skip, 0).is_ok()
    }

    /// Stops copying a tracked socket's bytes (still counted). Only sockets
    /// the probes track; MUTED is an LRU map of its own, so this never
    /// overwrites offsets the probes advance.
    pub fn mute(&mut self, tgid: u32, fd: i32) {
        let k = SocketKey { tgid, fd };
        if self.sockets.get(&k, 0).is_ok() {
            self.muted.insert(k, 1u8, 0).ok();
        }
    }

    /// Stops tracking a socket.
    pub fn forget(&mut self, tgid: u32, fd: i32) {
        let k = SocketKey { tgid, fd };
        self.sockets.remove(&k).ok();
        self.muted.remove(&k).ok();
        self.body_skip.remove(&k).ok();
    }

    /// Seeds connections open before start into the kernel map, and hands
    /// `sink` one connection-open record for each (as the probes would have).
    pub fn seed_existing(&mut self, opts: &ProbeOptions, mut sink: impl FnMut(&[u8])) -> usize {
        let sockets = &mut self.sockets;
        const BPF_NOEXIST: u64 = 1;
        let mut seeded = 0;
        for (n, s) in crate::seed::established_sockets(std::process::id())
            .into_iter()
            .filter(|s| crate::seed::allowed(s, &opts.pids, &opts.ports, &opts.exclude_ports))
            .enumerate()
        {
            // User-space ids have the top bit set; the probes' never do.
            let conn_id = (1u64 << 63) | n as u64;
            let key = SocketKey {
                tgid: s.tgid,
                fd: s.fd,
            };
            let state = SocketState {
                conn_id,
                role: s.role,
                ..Default::default()
            };
            // NOEXIST: a connection the probes registered since attaching wins.
            if sockets.insert(key, state, BPF_NOEXIST).is_err() {
                continue;
            }
            let (la, lf) = crate::seed::raw_addr(s.local.0);
            let (ra, rf) = crate::seed::raw_addr(s.remote.0);
            let rec = probes_common::ConnOpenRecord {
                header: probes_common::RecordHeader {
                    kind: probes_common::kind::CONN_OPEN,
                    tgid: s.tgid,
                    tid: s.tgid,
                    fd: s.fd,
                    ts_ns: crate::clock::monotonic_ns(),
                },
                conn_id,
                local: probes_common::SockAddr {
                    addr: la,
                    port: s.local.1,
                    family: lf,
                    _pad: 0,
                },
                remote: probes_common::SockAddr {
                    addr: ra,
                    port: s.remote.1,
                    family: rf,
                    _pad: 0,
                },
                role: s.role,
                origin: probes_common::origin::SEEDED,
            };
            let mut buf = Vec::with_capacity(128);
            probes_common::records::encode::conn_open(&rec, &mut buf);
            sink(&buf);
            seeded += 1;
        }
        seeded
    }
}
