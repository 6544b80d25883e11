//! Decoding the probes' ring-buffer records into typed views, without copying
//! payloads. The same decoder serves live capture, recordings and replay.

use crate::{
    kind, ConnCloseRecord, ConnOpenRecord, DataHeader, ProcExecRecord, ProcExitRecord,
    ProcMapRecord, RecordHeader, TlsBindRecord, TlsSampleRecord,
};
use core::mem::size_of;
use std::vec::Vec;

/// One record from the probes. Payload slices borrow the ring buffer (or the
/// recording), so decoding costs no allocation.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Data {
        header: DataHeader,
        payload: &'a [u8],
    },
    ConnOpen(ConnOpenRecord),
    ConnClose(ConnCloseRecord),
    ProcExec(ExecView<'a>),
    ProcExit(ProcExitRecord),
    ProcMap(ProcMapRecord),
    TlsSample(TlsSampleRecord),
    TlsBind(TlsBindRecord),
}

/// The variable parts of an exec record, trimmed to their reported lengths.
#[derive(Debug, Clone, Copy)]
pub struct ExecView<'a> {
    pub header: RecordHeader,
    pub ppid: u32,
    pub comm: &'a [u8],
    pub filename: &'a [u8],
    /// NUL-separated argv.
    pub args: &'a [u8],
    /// NUL-separated environment (KEY=VALUE).
    pub env: &'a [u8],
    /// cgroup v2 id; 0 when unknown (old recordings).
    pub cgroup_id: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {needed}-byte layout")]
    Truncated { len: usize, needed: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("data record claims {claimed} payload bytes but carries {carried}")]
    BadPayloadLength { claimed: u32, carried: usize },
}

impl DecodeError {
    /// The `reason` label for /metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated_record",
            DecodeError::UnknownKind(_) => "unknown_record_kind",
            DecodeError::BadPayloadLength { .. } => "bad_payload_length",
        }
    }
}

/// Reads a `T` from the start of `bytes` (the ring buffer only guarantees 8-byte
/// alignment, recordings none, so read unaligned).
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            needed: size_of::<T>(),
        });
    }
    // SAFETY: length checked above; every T used here is a plain-old-data
    // #[repr(C)] struct of integers and byte arrays, valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

fn trim(bytes: &[u8], len: u32) -> &[u8] {
    &bytes[..(len as usize).min(bytes.len())]
}

/// Decodes one record.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let kind_value: u32 = read(bytes)?;
    match kind_value {
        kind::DATA => {
            let header: DataHeader = read(bytes)?;
            let payload = &bytes[size_of::<DataHeader>()..];
            if (header.chunk_len as usize) > payload.len() {
                return Err(DecodeError::BadPayloadLength {
                    claimed: header.chunk_len,
                    carried: payload.len(),
                });
            }
            Ok(Record::Data {
                header,
                payload: &payload[..header.chunk_len as usize],
            })
        }
        kind::CONN_OPEN => Ok(Record::ConnOpen(read(bytes)?)),
        kind::CONN_CLOSE => Ok(Record::ConnClose(read(bytes)?)),
        kind::PROC_EXIT => Ok(Record::ProcExit(read(bytes)?)),
        kind::PROC_MAP => Ok(Record::ProcMap(read(bytes)?)),
        kind::TLS_SAMPLE => Ok(Record::TlsSample(read(bytes)?)),
        kind::TLS_BIND => Ok(Record::TlsBind(read(bytes)?)),
        kind::PROC_EXEC => {
            if bytes.len() < crate::PROC_EXEC_V1_LEN {
                return Err(DecodeError::Truncated {
                    len: bytes.len(),
                    needed: crate::PROC_EXEC_V1_LEN,
                });
            }
            // Recordings made before `cgroup_id` existed end just before it.
            let cgroup_id: u64 = match bytes.get(crate::PROC_EXEC_V1_LEN..) {
                Some(rest) if rest.len() >= 8 => read(rest)?,
                _ => 0,
            };
            // Read the fixed part by offsets instead of copying 9 KiB.
            let header: RecordHeader = read(bytes)?;
            let base = size_of::<RecordHeader>();
            let ppid: u32 = read(&bytes[base..])?;
            let filename_len: u32 = read(&bytes[base + 4..])?;
            let args_len: u32 = read(&bytes[base + 8..])?;
            let env_len: u32 = read(&bytes[base + 12..])?;
            let comm_at = base + 16;
            let filename_at = comm_at + 16;
            let args_at = filename_at + crate::EXEC_FILENAME_MAX;
            let env_at = args_at + crate::EXEC_ARGS_MAX;
            let env_end = env_at + crate::EXEC_ENV_MAX;
            let comm = &bytes[comm_at..filename_at];
            let comm_len = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
            Ok(Record::ProcExec(ExecView {
                header,
                ppid,
                comm: &comm[..comm_len],
                filename: trim(&bytes[filename_at..args_at], filename_len),
                args: trim(&bytes[args_at..env_at], args_len),
                env: trim(&bytes[env_at..env_end], env_len),
                cgroup_id,
            }))
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Encoding, for recordings made by user space (seeded connections) and tests.
pub mod encode {
    use super::*;

    fn bytes_of<T: Copy>(v: &T) -> &[u8] {
        // SAFETY: T is a padding-free #[repr(C)] POD from probes-common.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
    }

    pub fn data(header: &DataHeader, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(header));
        out.extend_from_slice(payload);
    }

    pub fn conn_open(rec: &ConnOpenRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(rec));
    }

    pub fn conn_close(rec: &ConnCloseRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(rec));
    }

    pub fn proc_exit(rec: &ProcExitRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(rec));
    }

    pub fn proc_map(rec: &ProcMapRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(rec));
    }

    pub fn tls_sample(rec: &TlsSampleRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(rec));
    }

    pub fn tls_bind(rec: &TlsBindRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(bytes_of(rec));
    }

    /// An exec record with the given strings, truncated to the kernel's limits.
    pub fn proc_exec(
        header: RecordHeader,
        ppid: u32,
        comm: &[u8],
        filename: &[u8],
        args: &[u8],
        env: &[u8],
        out: &mut Vec<u8>,
    ) {
        proc_exec_in_cgroup(header, ppid, comm, filename, args, env, 0, out)
    }

    /// [`proc_exec`] with a cgroup id.
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is one field of the record it encodes"
    )]
    pub fn proc_exec_in_cgroup(
        header: RecordHeader,
        ppid: u32,
        comm: &[u8],
        filename: &[u8],
        args: &[u8],
        env: &[u8],
        cgroup_id: u64,
        out: &mut Vec<u8>,
    ) {
        use crate::{EXEC_ARGS_MAX, EXEC_ENV_MAX, EXEC_FILENAME_MAX};
        let start = out.len();
        out.resize(start + size_of::<ProcExecRecord>(), 0);
        let rec = &mut out[start..];
        let put = |rec: &mut [u8], at: usize, src: &[u8], max: usize| -> u32 {
            let n = src.len().min(max);
            rec[at..at + n].copy_from_slice(&src[..n]);
            n as u32
        };
        rec[..size_of::<RecordHeader>()].copy_from_slice(bytes_of(&header));
        let base = size_of::<RecordHeader>();
        let comm_at = base + 16;
        let filename_at = comm_at + 16;
        let args_at = filename_at + EXEC_FILENAME_MAX;
        let env_at = args_at + EXEC_ARGS_MAX;
        put(rec, comm_at, comm, 15);
        let f = put(rec, filename_at, filename, EXEC_FILENAME_MAX);
        let a = put(rec, args_at, args, EXEC_ARGS_MAX);
        let e = put(rec, env_at, env, EXEC_ENV_MAX);
        rec[base..base + 4].copy_from_slice(&ppid.to_ne_bytes());
        rec[base + 4..base + 8].copy_from_slice(&f.to_ne_bytes());
        rec[base + 8..base + 12].copy_from_slice(&a.to_ne_bytes());
        rec[base + 12..base + 16].copy_from_slice(&e.to_ne_bytes());
        rec[crate::PROC_EXEC_V1_LEN..crate::PROC_EXEC_V1_LEN + 8]
            .copy_from_slice(&cgroup_id.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32) -> RecordHeader {
        RecordHeader {
            kind,
            tgid: 10,
            tid: 11,
            fd: 3,
            ts_ns: 99,
        }
    }

    #[test]
    fn data_round_trip() {
        let h = DataHeader {
            header: header(kind::DATA),
            conn_id: 7,
            call_stream_offset: 100,
            call_len: 5,
            chunk_offset: 0,
            chunk_len: 5,
            direction: 1,
            source: 1,
        };
        let mut buf = Vec::new();
        encode::data(&h, b"hello", &mut buf);
        buf.extend_from_slice(&[0, 0, 0]); // ring padding after the payload
        match decode(&buf).unwrap() {
            Record::Data { header, payload } => {
                assert_eq!(header, h);
                assert_eq!(payload, b"hello");
            }
            other => panic!("wrong record {other:?}"),
        }
    }

    #[test]
    fn exec_round_trip_and_truncation() {
        let mut buf = Vec::new();
        encode::proc_exec(
            header(kind::PROC_EXEC),
            1,
            b"curl",
            b"/usr/bin/curl",
            b"curl\0-s\0",
            b"A=1\0OTEL_SERVICE_NAME=x\0",
            &mut buf,
        );
        match decode(&buf).unwrap() {
            Record::ProcExec(e) => {
                assert_eq!(e.ppid, 1);
                assert_eq!(e.comm, b"curl");
                assert_eq!(e.filename, b"/usr/bin/curl");
                assert_eq!(e.args, b"curl\0-s\0");
                assert_eq!(e.env, b"A=1\0OTEL_SERVICE_NAME=x\0");
            }
            other => panic!("wrong record {other:?}"),
        }
        assert!(matches!(
            decode(&buf[..100]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn map_round_trip_and_truncation() {
        let rec = ProcMapRecord {
            header: header(kind::PROC_MAP),
        };
        let mut buf = Vec::new();
        encode::proc_map(&rec, &mut buf);
        match decode(&buf).unwrap() {
            Record::ProcMap(r) => assert_eq!(r, rec),
            other => panic!("wrong record {other:?}"),
        }
        assert!(matches!(
            decode(&buf[..20]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn tls_sample_round_trip_and_truncation() {
        let mut rec = crate::TlsSampleRecord {
            header: header(kind::TLS_SAMPLE),
            conn_id: 7,
            wire_offset: 900,
            plaintext_offset: 100,
            len: 18,
            requested: 16384,
            slot: 3,
            direction: 1,
            sample_len: 18,
            tracked: 1,
            ..Default::default()
        };
        rec.sample[..18].copy_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let mut buf = Vec::new();
        encode::tls_sample(&rec, &mut buf);
        match decode(&buf).unwrap() {
            Record::TlsSample(r) => assert_eq!(r, rec),
            other => panic!("wrong record {other:?}"),
        }
        assert!(matches!(
            decode(&buf[..buf.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn exec_cgroup_id_and_records_older_than_it() {
        let mut buf = Vec::new();
        encode::proc_exec_in_cgroup(
            header(kind::PROC_EXEC),
            1,
            b"sh",
            b"/bin/sh",
            b"",
            b"",
            0x1234_5678_9abc,
            &mut buf,
        );
        assert_eq!(buf.len(), size_of::<ProcExecRecord>());
        match decode(&buf).unwrap() {
            Record::ProcExec(e) => assert_eq!(e.cgroup_id, 0x1234_5678_9abc),
            other => panic!("wrong record {other:?}"),
        }
        // A recording made before the field existed: same record, 8 bytes shorter.
        match decode(&buf[..crate::PROC_EXEC_V1_LEN]).unwrap() {
            Record::ProcExec(e) => {
                assert_eq!(e.cgroup_id, 0);
                assert_eq!(e.filename, b"/bin/sh");
            }
            other => panic!("wrong record {other:?}"),
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(decode(&[]).is_err());
        assert_eq!(
            decode(&[9, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            DecodeError::UnknownKind(9)
        );
        let mut h = DataHeader {
            header: header(kind::DATA),
            chunk_len: 50,
            ..Default::default()
        };
        let mut buf = Vec::new();
        encode::data(&h, b"short", &mut buf);
        assert!(matches!(
            decode(&buf),
            Err(DecodeError::BadPayloadLength { .. })
        ));
        h.chunk_len = 0;
        buf.clear();
        encode::data(&h, b"", &mut buf);
        assert!(decode(&buf).is_ok());
        for n in 0..buf.len() {
            decode(&buf[..n]).ok();
        }
    }
}
