//! Position keeping for one direction of a connection's byte stream.
//!
//! The probes give every byte an exact offset, so a record either continues the
//! stream, skips ahead (bytes were lost: a gap) or repeats bytes already passed
//! (an overlap, skipped). There is no reorder buffer: bytes that arrive after
//! a later offset has been accepted count as overlap, which keeps memory bounded.

/// What to do with one delivered range.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Accepted<'a> {
    /// Bytes lost between the previous position and this range.
    pub gap: u64,
    /// Leading bytes already passed, skipped.
    pub overlap: u64,
    /// What is new: to feed to the parser after the gap.
    pub fresh: &'a [u8],
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamPos {
    /// Offset of the next byte expected.
    pub expected: u64,
    /// Whether any record fixed the position yet (see [`StreamPos::new`]).
    pub started: bool,
}

// === impl StreamPos ===

impl StreamPos {
    /// A stream that starts at offset 0 (`joined_midway == false`), or whose
    /// start is taken from its first record (we joined an established
    /// connection, so what came before is not ours to count as lost).
    pub(crate) fn new(joined_midway: bool) -> StreamPos {
        StreamPos {
            expected: 0,
            started: !joined_midway,
        }
    }

    fn start_at(&mut self, offset: u64) {
        if !self.started {
            self.started = true;
            self.expected = offset;
        }
    }

    /// Places `bytes`, delivered at `offset`.
    pub(crate) fn accept<'a>(&mut self, offset: u64, bytes: &'a [u8]) -> Accepted<'a> {
        self.start_at(offset);
        let end = offset.saturating_add(bytes.len() as u64);
        if offset >= self.expected {
            let gap = offset - self.expected;
            self.expected = end;
            return Accepted {
                gap,
                overlap: 0,
                fresh: bytes,
            };
        }
        // offset < expected: skip what was already passed.
        let skip = (self.expected - offset).min(bytes.len() as u64);
        self.expected = self.expected.max(end);
        Accepted {
            gap: 0,
            overlap: skip,
            fresh: bytes.get(skip as usize..).unwrap_or(&[]),
        }
    }

    /// `len` bytes at `offset` were never delivered. Returns the bytes newly
    /// lost (past the current position, including any hole before `offset`).
    pub(crate) fn skip(&mut self, offset: u64, len: u64) -> u64 {
        self.start_at(offset);
        let end = offset.saturating_add(len);
        let lost = end.saturating_sub(self.expected);
        self.expected = self.expected.max(end);
        lost
    }

    /// The stream ended after `total` bytes: how many at the end were never seen.
    pub(crate) fn finish(&mut self, total: u64) -> u64 {
        if !self.started {
            return 0;
        }
        let lost = total.saturating_sub(self.expected);
        self.expected = self.expected.max(total);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_gap_and_overlap() {
        let mut s = StreamPos::new(false);
        assert_eq!(
            s.accept(0, b"abc"),
            Accepted {
                gap: 0,
                overlap: 0,
                fresh: b"abc"
            }
        );
        assert_eq!(
            s.accept(5, b"fg"),
            Accepted {
                gap: 2,
                overlap: 0,
                fresh: b"fg"
            }
        );
        assert_eq!(s.expected, 7);
        assert_eq!(
            s.accept(5, b"fghi"),
            Accepted {
                gap: 0,
                overlap: 2,
                fresh: b"hi"
            }
        );
        assert_eq!(
            s.accept(0, b"ab"),
            Accepted {
                gap: 0,
                overlap: 2,
                fresh: b""
            }
        );
        assert_eq!(s.expected, 9);
    }

    #[test]
    fn skip_counts_only_new_loss() {
        let mut s = StreamPos::new(false);
        s.accept(0, b"abcd");
        assert_eq!(s.skip(2, 4), 2);
        assert_eq!(s.expected, 6);
        assert_eq!(s.skip(10, 5), 9);
        assert_eq!(s.skip(0, 3), 0);
        assert_eq!(s.finish(20), 5);
        assert_eq!(s.finish(3), 0);
    }

    #[test]
    fn midway_start_is_not_a_gap() {
        let mut s = StreamPos::new(true);
        assert_eq!(s.finish(100), 0);
        let mut s = StreamPos::new(true);
        assert_eq!(
            s.accept(1000, b"x"),
            Accepted {
                gap: 0,
                overlap: 0,
                fresh: b"x"
            }
        );
        assert_eq!(s.finish(1005), 4);
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let mut s = StreamPos::new(false);
        let a = s.accept(u64::MAX - 1, b"abcdef");
        assert_eq!(a.gap, u64::MAX - 1);
        assert_eq!(s.expected, u64::MAX);
        assert_eq!(s.skip(u64::MAX, u64::MAX), 0);
        assert_eq!(s.accept(0, b"zz").fresh, b"");
    }
}
