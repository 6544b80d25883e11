//! The `tls-locate` readers on arbitrary bytes.
//!
//! Input: the first byte selects what the rest is fed to (`mode % 3`):
//! - 0: `eh_frame::fde_ranges(rest[8..], vaddr = u64 LE rest[..8])`, then a
//!   `FunctionTable` over the result and lookups at each range's edges;
//! - 1: `eh_frame::eh_frame_hdr_starts(rest[8..], vaddr = u64 LE rest[..8])`;
//! - 2: `locate_bytes(rest)` (a whole ELF: symbols, then the analysis) with
//!   a 2 s time budget, and `code::decode_function(rest, 0x1000)`.
//!
//! Invariants:
//! - no panic;
//! - `fde_ranges` Ok ⇒ sorted, non-empty, non-overlapping ranges, and
//!   `starting_at(start)` finds each;
//! - `eh_frame_hdr_starts` Ok ⇒ sorted;
//! - `locate_bytes` Ok ⇒ at least one function, each file offset inside the
//!   input; Err ⇒ a non-empty message and `reason()`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tls_locate::eh_frame::{eh_frame_hdr_starts, fde_ranges, FunctionTable};
use tls_locate::{locate_bytes, LocateOptions};

fn check_fdes(data: &[u8]) {
    let Some((vaddr, section)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(ranges) = fde_ranges(section, u64::from_le_bytes(*vaddr)) else {
        return;
    };
    assert!(ranges.iter().all(|r| r.start < r.end));
    assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
    let table = FunctionTable::new(ranges.clone());
    for r in &ranges {
        assert_eq!(table.starting_at(r.start), Some(*r));
        assert_eq!(table.containing(r.end - 1), Some(*r));
    }
}

fn check_hdr(data: &[u8]) {
    let Some((vaddr, section)) = data.split_first_chunk::<8>() else {
        return;
    };
    if let Ok(starts) = eh_frame_hdr_starts(section, u64::from_le_bytes(*vaddr)) {
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    }
}

fn check_locate(data: &[u8]) {
    let opts = LocateOptions {
        time_budget: Duration::from_secs(2),
        ..LocateOptions::default()
    };
    match locate_bytes(data, &opts) {
        Ok(found) => {
            assert!(!found.functions.is_empty());
            for f in &found.functions {
                assert!(usize::try_from(f.file_offset).is_ok_and(|o| o < data.len()));
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(!e.reason().is_empty());
        }
    }
    let _ = tls_locate::code::decode_function(data, 0x1000);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_fdes(rest),
        1 => check_hdr(rest),
        _ => check_locate(rest),
    }
});
