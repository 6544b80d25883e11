//! Writing protobuf into a buffer whose size is computed beforehand: a byte
//! store and an index bump per byte, where pushing to a `Vec` also checks and
//! updates its length and capacity every time (a fifth of the encoding's
//! instructions).

pub(crate) use prost::encoding::encoded_len_varint as varint_len;

/// A cursor over bytes to fill. Writing past the end panics: lengths are
/// computed by the same module that writes, and tests compare both with prost.
pub(crate) struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Out { buf, pos: 0 }
    }

    /// Runs `f` on a cursor over the rest of the buffer, a local one: its
    /// position then stays in a register (through `&mut self`, every byte
    /// store reloaded and stored it: a third of the encoding's instructions).
    #[inline]
    pub(crate) fn local(&mut self, f: impl FnOnce(&mut Out<'_>)) {
        let mut rest = Out {
            buf: &mut self.buf[self.pos..],
            pos: 0,
        };
        f(&mut rest);
        self.pos += rest.pos;
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn byte(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    #[inline]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
    }

    #[inline]
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// A length-delimited field with a one-byte key.
    #[inline]
    pub(crate) fn delimited(&mut self, key: u8, b: &[u8]) {
        self.byte(key);
        self.varint(b.len() as u64);
        self.bytes(b);
    }

    /// A prost message's fields (no key or length), `len` bytes long.
    pub(crate) fn message(&mut self, m: &impl prost::Message, len: usize) {
        let end = self.pos + len;
        let mut rest: &mut [u8] = &mut self.buf[self.pos..end];
        m.encode_raw(&mut rest);
        debug_assert!(rest.is_empty(), "prost wrote fewer bytes than encoded_len");
        self.pos = end;
    }
}

/// Appends `len` bytes to `buf`, written by `f` (which must write exactly `len`).
pub(crate) fn append(buf: &mut Vec<u8>, len: usize, f: impl FnOnce(&mut Out<'_>)) {
    let start = buf.len();
    buf.resize(start + len, 0);
    let mut out = Out::new(&mut buf[start..]);
    f(&mut out);
    debug_assert_eq!(out.written(), len);
}
