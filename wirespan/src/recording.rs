//! The recording file: raw probe records exactly as the ring buffer delivered
//! them, so `wirespan replay` runs the whole user-space pipeline on them later,
//! without root or eBPF.
//!
//! Layout (little-endian): an 8-byte magic `WSPNREC1`, a u32 header length, the
//! header (`clock_offset_ns`: i64, the wall-clock minus monotonic offset at
//! recording time), then records, each a u32 length followed by that many bytes.
//!
//! A data record is written only up to the end of its payload: the probes
//! reserve small records in size classes, and the ring bytes past
//! `chunk_len` are left over from earlier records (other traffic), which a
//! recording must not carry.

use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"WSPNREC1";
/// Larger than any record the probes make (an exec record is about 9 KiB, a
/// data record at most 16 KiB plus its header); anything bigger is corruption.
pub const MAX_RECORD_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingHeader {
    /// Add to a record's monotonic timestamp to get Unix-epoch nanoseconds.
    pub clock_offset_ns: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("not a wirespan recording (bad magic)")]
    BadMagic,
    #[error("recording header is {0} bytes, expected at least 8")]
    BadHeader(u32),
    #[error("record {index} claims {len} bytes, more than the {max}-byte limit")]
    RecordTooLarge { index: u64, len: usize, max: usize },
    #[error("recording ends inside record {index}")]
    TruncatedRecord { index: u64 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes a recording.
pub struct RecordingWriter<W: Write> {
    out: W,
    records: u64,
}

impl<W: Write> RecordingWriter<W> {
    pub fn new(mut out: W, header: RecordingHeader) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&8u32.to_le_bytes())?;
        out.write_all(&header.clock_offset_ns.to_le_bytes())?;
        Ok(Self { out, records: 0 })
    }

    pub fn write_record(&mut self, bytes: &[u8]) -> io::Result<()> {
        let bytes = &bytes[..record_len(bytes)];
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bytes)?;
        self.records += 1;
        Ok(())
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The bytes of `bytes` that belong to the record: for a data record, its
/// header and `chunk_len` payload bytes (a size-class reservation's tail is
/// stale ring contents); any other record, or one too short to say, whole.
pub fn record_len(bytes: &[u8]) -> usize {
    use probes_common::{kind, DataHeader};
    const HEADER: usize = std::mem::size_of::<DataHeader>();
    if bytes.len() < HEADER || bytes[..4] != kind::DATA.to_ne_bytes() {
        return bytes.len();
    }
    // `chunk_len` is the u32 at its field offset in the #[repr(C)] header.
    let at = std::mem::offset_of!(DataHeader, chunk_len);
    let chunk_len = u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    HEADER.saturating_add(chunk_len as usize).min(bytes.len())
}

/// Reads a recording record by record into one reused buffer.
pub struct RecordingReader<R: Read> {
    input: R,
    header: RecordingHeader,
    buf: Vec<u8>,
    index: u64,
}

impl<R: Read> RecordingReader<R> {
    pub fn new(mut input: R) -> Result<Self, RecordingError> {
        let mut magic = [0u8; 8];
        read_exact_or(&mut input, &mut magic, RecordingError::BadMagic)?;
        if &magic != MAGIC {
            return Err(RecordingError::BadMagic);
        }
        let mut len = [0u8; 4];
        read_exact_or(&mut input, &mut len, RecordingError::BadMagic)?;
        let header_len = u32::from_le_bytes(len);
        if !(8..=4096).contains(&header_len) {
            return Err(RecordingError::BadHeader(header_len));
        }
        let mut header = vec![0u8; header_len as usize];
        read_exact_or(
            &mut input,
            &mut header,
            RecordingError::BadHeader(header_len),
        )?;
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&header[..8]);
        Ok(Self {
            input,
            header: RecordingHeader {
                clock_offset_ns: i64::from_le_bytes(offset),
            },
            buf: Vec::with_capacity(MAX_RECORD_LEN),
            index: 0,
        })
    }

    pub fn header(&self) -> RecordingHeader {
        self.header
    }

    /// The next record, or None at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, RecordingError> {
        let mut len = [0u8; 4];
        match read_full(&mut self.input, &mut len)? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(RecordingError::TruncatedRecord { index: self.index }),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD_LEN {
            return Err(RecordingError::RecordTooLarge {
                index: self.index,
                len,
                max: MAX_RECORD_LEN,
            });
        }
        self.buf.resize(len, 0);
        if read_full(&mut self.input, &mut self.buf)? != len {
            return Err(RecordingError::TruncatedRecord { index: self.index });
        }
        self.index += 1;
        Ok(Some(&self.buf))
    }
}

fn read_exact_or<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    err: RecordingError,
) -> Result<(), RecordingError> {
    if read_full(r, buf)? == buf.len() {
        Ok(())
    } else {
        Err(err)
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = RecordingWriter::new(
            Vec::new(),
            RecordingHeader {
                clock_offset_ns: -42,
            },
        )
        .unwrap();
        w.write_record(b"abc").unwrap();
        w.write_record(b"").unwrap();
        w.write_record(&[7u8; 1000]).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = RecordingReader::new(&bytes[..]).unwrap();
        assert_eq!(r.header().clock_offset_ns, -42);
        assert_eq!(r.next_record().unwrap().unwrap(), b"abc");
        assert_eq!(r.next_record().unwrap().unwrap(), b"");
        assert_eq!(r.next_record().unwrap().unwrap(), &[7u8; 1000][..]);
        assert!(r.next_record().unwrap().is_none());
    }

    /// A size-class data record carries stale bytes past its payload: the
    /// recording keeps the header and the payload only, and it decodes to
    /// the same record.
    #[test]
    fn data_records_are_trimmed_to_their_payload() {
        use probes_common::{kind, records, DataHeader};
        let mut header = DataHeader::default();
        header.header.kind = kind::DATA;
        header.chunk_len = 5;
        header.call_len = 5;
        let mut exact = Vec::new();
        records::encode::data(&header, b"hello", &mut exact);
        // The reservation of a 128-byte class: the payload, then stale bytes.
        let mut reserved = exact.clone();
        reserved.extend_from_slice(&[0xAA; 123]);
        let mut w =
            RecordingWriter::new(Vec::new(), RecordingHeader { clock_offset_ns: 0 }).unwrap();
        w.write_record(&reserved).unwrap();
        // Not data records: written whole.
        w.write_record(b"abc").unwrap();
        let bytes = w.finish().unwrap();
        assert!(!bytes.windows(2).any(|p| p == [0xAA, 0xAA]));
        let mut r = RecordingReader::new(&bytes[..]).unwrap();
        let got = r.next_record().unwrap().unwrap();
        assert_eq!(got, &exact[..]);
        match records::decode(got).unwrap() {
            records::Record::Data { payload, .. } => assert_eq!(payload, b"hello"),
            other => panic!("expected a data record, got {other:?}"),
        }
        assert_eq!(r.next_record().unwrap().unwrap(), b"abc");
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn corrupt_files_are_errors() {
        assert!(matches!(
            RecordingReader::new(&b"nope"[..]),
            Err(RecordingError::BadMagic)
        ));
        let mut w =
            RecordingWriter::new(Vec::new(), RecordingHeader { clock_offset_ns: 0 }).unwrap();
        w.write_record(b"hello").unwrap();
        let bytes = w.finish().unwrap();
        // Every truncation either fails to open or fails on the cut record.
        for cut in 0..bytes.len() {
            if let Ok(mut r) = RecordingReader::new(&bytes[..cut]) {
                assert!(r.next_record().is_err() || cut == 20);
            }
        }
        let mut huge = bytes[..20].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = RecordingReader::new(&huge[..]).unwrap();
        assert!(matches!(
            r.next_record(),
            Err(RecordingError::RecordTooLarge { .. })
        ));
    }
}
