//! HPACK decoder on arbitrary header blocks and SETTINGS-driven bound changes.
//!
//! Input: b0 % 3 picks the decoder (`new`, `new_unknown`, `with_max_size(u16)`
//! reading 2 more bytes); then ops: 0xFF + u32 LE = `set_bound`, any other op
//! byte + u16 LE length + that many bytes = one header block to decode.
//!
//! Invariants:
//! - no panic;
//! - the table's HPACK size never exceeds `RETAIN_CAP`, and once its maximum is
//!   known (from the start, or after an applied size update) never exceeds
//!   `max_size()`;
//! - a size update is applied only within the bound: `max_size()` ≤ the bound
//!   in force when it was set;
//! - a decoder started at the beginning of a connection whose bound never went
//!   above `RETAIN_CAP` knows every entry: no unknown references, no unknown
//!   tail;
//! - `BlockStats::fields` equals the number of fields delivered;
//! - after an error the decoder is replaced, as `Http2Session` does (the error
//!   leaves the table unknown; using it further is outside the contract).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol_parsers::http2::hpack::table::RETAIN_CAP;
use protocol_parsers::http2::hpack::{decode_int, Decoder};
use wirespan_fuzz::Input;

#[derive(Clone, Copy)]
enum Mode {
    Start,
    Unknown,
    Sized(usize),
}

fn fresh(mode: Mode) -> Decoder {
    match mode {
        Mode::Start => Decoder::new(),
        Mode::Unknown => Decoder::new_unknown(),
        Mode::Sized(n) => Decoder::with_max_size(n),
    }
}

/// Whether decoding `block` applies at least one size update (mirrors the
/// decoder: leading `001xxxxx` representations within the bound).
fn applies_size_update(block: &[u8], bound: Option<usize>) -> bool {
    let mut pos = 0;
    let mut applied = false;
    while pos < block.len() && block[pos] & 0xe0 == 0x20 {
        match decode_int(block, &mut pos, 5) {
            Ok(size) if bound.is_none_or(|b| size <= b) => applied = true,
            _ => return applied,
        }
    }
    applied
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = match input.u8() % 3 {
        0 => Mode::Start,
        1 => Mode::Unknown,
        _ => Mode::Sized(usize::from(input.u16())),
    };
    let mut d = fresh(mode);
    let mut known = !matches!(mode, Mode::Unknown);
    // Unknown references are impossible while this holds.
    let mut exact = known;
    let mut max_bound = d.bound().unwrap_or(usize::MAX);
    exact &= max_bound <= RETAIN_CAP;

    while !input.is_empty() {
        let op = input.u8();
        if op == 0xff {
            let b = input.u32() as usize;
            d.set_bound(b);
            max_bound = max_bound.max(b);
            exact &= max_bound <= RETAIN_CAP;
            continue;
        }
        let len = usize::from(input.u16());
        let block = input.bytes(len);
        let bound_before = d.bound();
        let will_apply = applies_size_update(block, bound_before);
        let mut delivered = 0u32;
        let res = d.decode(block, |_name, _value| delivered += 1);
        known |= will_apply;
        let t = d.table();
        assert!(
            t.size() <= RETAIN_CAP,
            "table size {} > RETAIN_CAP",
            t.size()
        );
        if known {
            assert!(
                t.size() <= t.max_size(),
                "table size {} > max {}",
                t.size(),
                t.max_size()
            );
        }
        if will_apply {
            if let Some(b) = bound_before {
                assert!(t.max_size() <= b, "max {} above bound {b}", t.max_size());
            }
        }
        match res {
            Ok(stats) => {
                assert_eq!(stats.fields, delivered, "fields count");
                if exact {
                    assert_eq!(stats.unknown_refs, 0, "unknown reference on a known table");
                    assert!(!t.has_unknown_tail(), "unknown tail on a known table");
                }
            }
            Err(_) => {
                d = fresh(mode);
                known = !matches!(mode, Mode::Unknown);
                max_bound = d.bound().unwrap_or(usize::MAX);
                exact = known && max_bound <= RETAIN_CAP;
            }
        }
    }
});
