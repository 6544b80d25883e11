//! A recording (`wirespan record`) read back: connections with their rebuilt
//! byte streams, exec records and which processes produced data.

use probes_common::records::{decode, Record};
use probes_common::{direction, role, ConnCloseRecord, ConnOpenRecord, SockAddr};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use wirespan::recording::RecordingReader;

/// One direction of a connection rebuilt by stream offset.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    /// Bytes at their stream offsets (zeros where nothing was copied).
    pub bytes: Vec<u8>,
    /// Which offsets were copied.
    covered: Vec<bool>,
    /// Bytes the probes reported as moved but not copied (header-only records).
    pub reported_not_copied: u64,
    /// Copies that disagreed with bytes already placed at the same offset.
    pub conflicts: u64,
    pub records: u64,
}

impl Stream {
    fn ensure(&mut self, len: usize) {
        if self.bytes.len() < len {
            self.bytes.resize(len, 0);
            self.covered.resize(len, false);
        }
    }

    fn place(&mut self, at: u64, payload: &[u8]) {
        let at = at as usize;
        self.ensure(at + payload.len());
        for (i, b) in payload.iter().enumerate() {
            if self.covered[at + i] && self.bytes[at + i] != *b {
                self.conflicts += 1;
            }
            self.bytes[at + i] = *b;
            self.covered[at + i] = true;
        }
    }

    /// Bytes in `0..len` that were never copied.
    pub fn missing(&self, len: u64) -> u64 {
        let len = len as usize;
        let have = self.covered.iter().take(len).filter(|c| **c).count();
        (len - have) as u64
    }

    /// Which offsets were copied.
    pub fn covered(&self) -> &[bool] {
        &self.covered
    }

    /// Length of the stream as seen: the end of the furthest copied byte.
    pub fn seen_len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// One connection of one process.
#[derive(Clone, Debug, Default)]
pub struct Conn {
    pub conn_id: u64,
    pub tgid: u32,
    pub open: Option<ConnOpenRecord>,
    pub close: Option<ConnCloseRecord>,
    pub egress: Stream,
    pub ingress: Stream,
    /// Data sources (syscalls) seen per direction.
    pub sources: BTreeSet<(u32, u32)>,
}

pub fn ip(a: &SockAddr) -> IpAddr {
    let v6 = Ipv6Addr::from(a.addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

impl Conn {
    pub fn local_port(&self) -> Option<u16> {
        self.open.map(|o| o.local.port)
    }
    pub fn remote_port(&self) -> Option<u16> {
        self.open.map(|o| o.remote.port)
    }
    pub fn is_client(&self) -> bool {
        self.open.is_some_and(|o| o.role == role::CLIENT)
    }
    pub fn is_server(&self) -> bool {
        self.open.is_some_and(|o| o.role == role::SERVER)
    }

    /// Totals from the close record, else what was seen.
    pub fn egress_len(&self) -> u64 {
        self.close
            .map(|c| c.egress_total)
            .unwrap_or(self.egress.seen_len())
    }
    pub fn ingress_len(&self) -> u64 {
        self.close
            .map(|c| c.ingress_total)
            .unwrap_or(self.ingress.seen_len())
    }

    /// Stream bytes (both directions) not copied, up to the close totals.
    pub fn missing(&self) -> u64 {
        self.egress.missing(self.egress_len()) + self.ingress.missing(self.ingress_len())
    }

    pub fn describe(&self) -> String {
        format!(
            "conn {} pid {} open={:?} close={:?} egress seen {} (missing {}), ingress seen {} (missing {}), sources {:?}",
            self.conn_id,
            self.tgid,
            self.open.map(|o| (ip(&o.local), o.local.port, ip(&o.remote), o.remote.port, o.role, o.origin)),
            self.close.map(|c| (c.egress_total, c.ingress_total)),
            self.egress.seen_len(),
            self.egress.missing(self.egress_len()),
            self.ingress.seen_len(),
            self.ingress.missing(self.ingress_len()),
            self.sources
        )
    }
}

/// A process exec as recorded.
#[derive(Clone, Debug)]
pub struct Exec {
    pub pid: u32,
    pub filename: String,
    pub comm: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
}

/// Everything in a recording that the tests look at.
#[derive(Debug, Default)]
pub struct Capture {
    pub conns: BTreeMap<u64, Conn>,
    pub execs: Vec<Exec>,
    /// Process ids that appear in data records.
    pub data_pids: BTreeSet<u32>,
    pub records: u64,
    pub decode_errors: u64,
}

impl Capture {
    pub fn load(path: &Path) -> Capture {
        let file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("cannot open the recording {}: {e}", path.display()));
        let mut reader = RecordingReader::new(std::io::BufReader::with_capacity(1 << 20, file))
            .unwrap_or_else(|e| panic!("bad recording {}: {e}", path.display()));
        let mut cap = Capture::default();
        while let Some(bytes) = reader
            .next_record()
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        {
            cap.records += 1;
            match decode(bytes) {
                Ok(Record::Data { header, payload }) => {
                    cap.data_pids.insert(header.header.tgid);
                    let c = cap.conn(header.conn_id, header.header.tgid);
                    c.sources.insert((header.direction, header.source));
                    let s = if header.direction == direction::EGRESS {
                        &mut c.egress
                    } else {
                        &mut c.ingress
                    };
                    s.records += 1;
                    let at = header.call_stream_offset + header.chunk_offset as u64;
                    if header.chunk_len == 0 {
                        s.reported_not_copied +=
                            header.call_len.saturating_sub(header.chunk_offset as u64);
                    } else {
                        s.place(at, payload);
                    }
                }
                Ok(Record::ConnOpen(o)) => {
                    let c = cap.conn(o.conn_id, o.header.tgid);
                    c.open = Some(o);
                }
                Ok(Record::ConnClose(cl)) => {
                    let c = cap.conn(cl.conn_id, cl.header.tgid);
                    c.close = Some(cl);
                }
                Ok(Record::ProcExec(e)) => {
                    let split = |b: &[u8]| {
                        b.split(|x| *x == 0)
                            .filter(|s| !s.is_empty())
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<Vec<_>>()
                    };
                    cap.execs.push(Exec {
                        pid: e.header.tgid,
                        filename: String::from_utf8_lossy(e.filename).into_owned(),
                        comm: String::from_utf8_lossy(e.comm).into_owned(),
                        args: split(e.args),
                        env: split(e.env),
                    });
                }
                // Process and TLS bookkeeping; deferred TLS plaintext
                // (conn_id 0) lands in the "connection" 0 above.
                Ok(
                    Record::ProcExit(_)
                    | Record::ProcMap(_)
                    | Record::TlsSample(_)
                    | Record::TlsBind(_),
                ) => {}
                Err(_) => cap.decode_errors += 1,
            }
        }
        cap
    }

    fn conn(&mut self, conn_id: u64, tgid: u32) -> &mut Conn {
        self.conns.entry(conn_id).or_insert_with(|| Conn {
            conn_id,
            tgid,
            ..Default::default()
        })
    }

    /// Connections of process `pid` whose local and remote ports are these.
    pub fn find(&self, pid: u32, local_port: u16, remote_port: u16) -> Vec<&Conn> {
        self.conns
            .values()
            .filter(|c| {
                c.tgid == pid
                    && c.local_port() == Some(local_port)
                    && c.remote_port() == Some(remote_port)
            })
            .collect()
    }

    /// Connections of process `pid`.
    pub fn of_pid(&self, pid: u32) -> Vec<&Conn> {
        self.conns.values().filter(|c| c.tgid == pid).collect()
    }
}

/// A short, readable difference between two byte strings.
pub fn bytes_diff(got: &[u8], want: &[u8]) -> String {
    if got == want {
        return "equal".into();
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let show = |b: &[u8]| {
        let end = (first + 32).min(b.len());
        String::from_utf8_lossy(&b[first.min(b.len())..end])
            .escape_debug()
            .to_string()
    };
    format!(
        "lengths got {} want {}; first difference at offset {first}: got {:?} want {:?}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    )
}
