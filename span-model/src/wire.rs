//! Writing protobuf into a buffer whose size is computed beforehand: a byte
//! store and an index bump per byte, where pushing to a `Vec` also checks and
//! updates its length and capacity every time (a fifth of the encoding's
//! instructions).

pub(crate) use prost::encoding::encoded_len_varint as varint_len;
use std::mem::MaybeUninit;

/// A cursor over bytes to fill, which may be uninitialised (a `Vec`'s spare
/// capacity: zero-filling a batch first was 3 % of the pipeline bench).
/// Writing past the end panics: lengths are computed by the same module that
/// writes, and tests compare both with prost.
///
/// Invariant: `buf[..pos]` is initialised. Every method writes each byte
/// before it moves `pos` past it, so `written()` initialised bytes can be
/// claimed by the `Vec` the buffer came from.
pub(crate) struct Out<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    pos: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [MaybeUninit<u8>]) -> Self {
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
        self.buf[self.pos] = MaybeUninit::new(b);
        self.pos += 1;
    }

    #[inline]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        self.buf[self.pos..end].write_copy_of_slice(b);
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
        let mut rest: &mut [MaybeUninit<u8>] = &mut self.buf[self.pos..end];
        m.encode_raw(&mut rest);
        // prost writes exactly `encoded_len` bytes; were it ever short, the
        // rest is zeroed so that the invariant holds anyway.
        debug_assert!(rest.is_empty(), "prost wrote fewer bytes than encoded_len");
        for b in rest.iter_mut() {
            *b = MaybeUninit::new(0);
        }
        self.pos = end;
    }
}

/// Appends `len` bytes to `buf`, written by `f` (which must write exactly
/// `len`), without zero-filling them first. The crate's one `unsafe`.
#[allow(
    unsafe_code,
    reason = "set_len over bytes Out initialised; zero-filling first cost 3 % of encoding"
)]
pub(crate) fn append(buf: &mut Vec<u8>, len: usize, f: impl FnOnce(&mut Out<'_>)) {
    buf.reserve(len);
    let start = buf.len();
    let mut out = Out::new(&mut buf.spare_capacity_mut()[..len]);
    f(&mut out);
    let written = out.written();
    debug_assert_eq!(written, len);
    // SAFETY: `Out`'s invariant: the first `written` bytes of the spare
    // capacity are initialised, and `written <= len <= capacity - start`.
    unsafe { buf.set_len(start + written) };
}
