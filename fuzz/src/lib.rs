//! Helpers shared by the fuzz targets: the "conversation" input format of the
//! HTTP/1 and HTTP/2 session targets, and a few small readers.
//!
//! Conversation format (after the target's own control bytes), repeated until
//! the input ends; every length is clamped to what is left, so any byte string
//! decodes to something:
//!
//! ```text
//! segment = c:u8 ...
//!   side  = c & 1            (0 = Request, 1 = Response)
//!   c & 6 == 6  → gap:  c & 8 ? len:u64 LE : len:u16 LE
//!   otherwise   → data: len:u16 LE, then n = (c >> 3) & 7 cut offsets (u16 LE,
//!                 each taken modulo len + 1; n == 7 means "byte by byte", no
//!                 offsets follow), then len bytes
//! ```
//!
//! `fuzz/gen_seeds.py` writes seeds in this format.

use protocol_parsers::Side;

/// One step of a conversation.
#[derive(Debug)]
pub enum Seg<'a> {
    Data {
        side: Side,
        bytes: &'a [u8],
        /// Sorted, deduplicated split points strictly inside `bytes`.
        cuts: Vec<usize>,
    },
    Gap {
        side: Side,
        len: u64,
    },
}

/// A cursor over the fuzz input.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    pub fn u16(&mut self) -> u16 {
        let b = self.bytes(2);
        let mut x = [0u8; 2];
        x[..b.len()].copy_from_slice(b);
        u16::from_le_bytes(x)
    }

    pub fn u32(&mut self) -> u32 {
        let b = self.bytes(4);
        let mut x = [0u8; 4];
        x[..b.len()].copy_from_slice(b);
        u32::from_le_bytes(x)
    }

    pub fn u64(&mut self) -> u64 {
        let b = self.bytes(8);
        let mut x = [0u8; 8];
        x[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(x)
    }
}

/// Decodes the rest of `input` as a conversation (see the module docs).
pub fn conversation<'a>(input: &mut Input<'a>) -> Vec<Seg<'a>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let c = input.u8();
        let side = if c & 1 == 0 {
            Side::Request
        } else {
            Side::Response
        };
        if c & 6 == 6 {
            let len = if c & 8 != 0 {
                input.u64()
            } else {
                u64::from(input.u16())
            };
            out.push(Seg::Gap { side, len });
            continue;
        }
        let mut len = usize::from(input.u16());
        let n = (c >> 3) & 7;
        let mut raw = Vec::new();
        if n != 7 {
            for _ in 0..n {
                raw.push(usize::from(input.u16()));
            }
        }
        len = len.min(input.rest().len());
        let bytes = input.bytes(len);
        let mut cuts: Vec<usize> = if n == 7 {
            (1..len).collect()
        } else {
            raw.into_iter()
                .map(|r| r % (len + 1))
                .filter(|&r| r > 0 && r < len)
                .collect()
        };
        cuts.sort_unstable();
        cuts.dedup();
        out.push(Seg::Data { side, bytes, cuts });
    }
    out
}

/// `bytes` split at `cuts` (sorted, inside the slice).
pub fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for &c in cuts {
        out.push(&bytes[at..c]);
        at = c;
    }
    out.push(&bytes[at..]);
    out
}
