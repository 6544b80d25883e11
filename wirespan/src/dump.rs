//! `wirespan dump`: a recording as text, for people and for debugging fixtures.

use anyhow::{Context as _, Result};
use std::io::Write;
use std::path::Path;

use crate::recording::RecordingReader;
use probes_common::records::{decode, Record};

/// Printable form of a payload prefix: ASCII kept, the rest escaped.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(max.min(bytes.len()) + 8);
    for b in bytes.iter().take(max) {
        for c in std::ascii::escape_default(*b) {
            s.push(c as char);
        }
    }
    if bytes.len() > max {
        s.push('…');
    }
    s
}

pub fn dump(path: &Path, out: &mut impl Write) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = RecordingReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    writeln!(out, "# clock_offset_ns={}", reader.header().clock_offset_ns)?;
    while let Some(bytes) = reader.next_record()? {
        let line =
            match decode(bytes) {
                Ok(Record::Data { header: h, payload }) => {
                    format!(
                "{} data pid={} fd={} conn={:#x} dir={} off={} call_len={} chunk={}+{} \"{}\"",
                h.header.ts_ns,
                h.header.tgid,
                h.header.fd,
                h.conn_id,
                if h.direction == probes_common::direction::EGRESS { "out" } else { "in" },
                h.call_stream_offset,
                h.call_len,
                h.chunk_offset,
                h.chunk_len,
                escape(payload, 80)
            )
                }
                Ok(Record::ConnOpen(r)) => {
                    let ep = |a: &probes_common::SockAddr| {
                        let ip = std::net::Ipv6Addr::from(a.addr);
                        match ip.to_ipv4_mapped() {
                            Some(v4) => format!("{v4}:{}", a.port),
                            None => format!("[{ip}]:{}", a.port),
                        }
                    };
                    format!(
                        "{} open pid={} fd={} conn={:#x} role={} origin={} local={} remote={}",
                        r.header.ts_ns,
                        r.header.tgid,
                        r.header.fd,
                        r.conn_id,
                        r.role,
                        r.origin,
                        ep(&r.local),
                        ep(&r.remote)
                    )
                }
                Ok(Record::ConnClose(r)) => format!(
                    "{} close pid={} fd={} conn={:#x} out_total={} in_total={}",
                    r.header.ts_ns,
                    r.header.tgid,
                    r.header.fd,
                    r.conn_id,
                    r.egress_total,
                    r.ingress_total
                ),
                Ok(Record::ProcExec(e)) => format!(
                    "{} exec pid={} ppid={} comm={} file={} env_bytes={}",
                    e.header.ts_ns,
                    e.header.tgid,
                    e.ppid,
                    escape(e.comm, 16),
                    escape(e.filename, 256),
                    e.env.len()
                ),
                Ok(Record::ProcExit(r)) => format!("{} exit pid={}", r.header.ts_ns, r.header.tgid),
                Ok(Record::ProcMap(r)) => format!(
                    "{} map pid={} fd={}",
                    r.header.ts_ns, r.header.tgid, r.header.fd
                ),
                Ok(Record::TlsBind(r)) => format!(
                    "{} tls-bind pid={} tid={} fd={} conn={} plaintext_at={} len={}",
                    r.header.ts_ns,
                    r.header.tgid,
                    r.header.tid,
                    r.header.fd,
                    r.conn_id,
                    r.stream_offset,
                    r.len
                ),
                Ok(Record::TlsSample(r)) => format!(
                    "{} tls-sample pid={} fd={} slot={} dir={} len={} requested={} plaintext_at={} wire_at={}",
                    r.header.ts_ns,
                    r.header.tgid,
                    r.header.fd,
                    r.slot,
                    r.direction,
                    r.len,
                    r.requested,
                    r.plaintext_offset,
                    r.wire_offset
                ),
                Err(e) => format!("bad record: {e}"),
            };
        writeln!(out, "{line}")?;
    }
    Ok(())
}
