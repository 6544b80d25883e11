//! Which function is which: the identification rules per library, from the
//! error sites ([`crate::error_sites`]) and the call graph.
//!
//! # OpenSSL 3.x (`ERR_raise`, `ERR_LIB_SSL` = 20)
//! Each `ERR_raise` passes `__func__`, so a function is named by its own
//! code: `SSL_read` and `SSL_write` are the unique functions that raise
//! `SSL_R_BAD_LENGTH` (271) from `ssl/ssl_lib.c` with `__func__` equal to
//! their name, and that call `ssl_read_internal` / `ssl_write_internal`
//! (themselves named by their `__func__`). `SSL_read_ex` / `SSL_write_ex`
//! raise nothing: each is the unique small function (≤ 256 bytes) without
//! error sites whose only direct call is to the internal function. Stable
//! since 3.0: the `__func__` strings are the function names, 271 is
//! `SSL_R_BAD_LENGTH` in every 3.x `sslerr.h`.
//!
//! # BoringSSL (`OPENSSL_PUT_ERROR`, `ERR_LIB_SSL` = 16)
//! No function names in the binary; reason codes are stable (BoringSSL
//! never renumbers them: `ssl.h` says so), lines are not.
//! - `SSL_write`: the unique function in `ssl/ssl_lib.cc` that reports both
//!   `SSL_R_BAD_LENGTH` (111) and `SSL_R_UNINITIALIZED` (226): no other
//!   function of that file reports 111.
//! - `SSL_read`: `ssl_read_impl` is the other reporter of
//!   `SSL_R_SSL_HANDSHAKE_FAILURE` (215) in the file; `SSL_peek` calls it
//!   (or inlines it) and `SSL_read` calls `SSL_peek` (or inlines it). Two
//!   shapes are accepted: (a) two functions call or inline `ssl_read_impl`
//!   with identical error sites (`SSL_peek` inlined into `SSL_read`, as
//!   GCC does), and the direct call targets of one strictly contain the
//!   other's: the larger is `SSL_read` (it also consumes the record);
//!   (b) one such function (`SSL_peek`) and exactly one caller of it
//!   without error sites of its own: `SSL_read`. Functions that check
//!   `SSL_R_UNINITIALIZED` themselves (`SSL_shutdown`, `SSL_key_update`)
//!   are excluded. Anything else is `ambiguous`.
//!
//! # Entries
//! Every identified function must start an FDE and be called directly
//! (`call`) from another function, or have its address taken (a
//! RIP-relative operand in code, or a pointer in data). A split-off part
//! (`foo.cold`) is only ever jumped to, so it is refused (`not_an_entry`).

use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::{Analysis, FileString, RefKind};
use crate::eh_frame::CodeRange;
use crate::error_sites::{ErrorSite, SiteShape};
use crate::{
    Library, LocateError, Located, Source, TlsFunctions, Unidentified, SSL_READ, SSL_READ_EX,
    SSL_WRITE, SSL_WRITE_EX,
};

/// `ERR_LIB_SSL` in OpenSSL.
pub const OPENSSL_LIB_SSL: u64 = 20;
/// `ERR_LIB_SSL` in BoringSSL.
pub const BORINGSSL_LIB_SSL: u64 = 16;
/// OpenSSL 3 `SSL_R_BAD_LENGTH`.
pub const OPENSSL_R_BAD_LENGTH: u64 = 271;
/// BoringSSL reason codes (`include/openssl/ssl.h`).
pub const BORINGSSL_R_BAD_LENGTH: u64 = 111;
pub const BORINGSSL_R_SSL_HANDSHAKE_FAILURE: u64 = 215;
pub const BORINGSSL_R_UNINITIALIZED: u64 = 226;

/// Fewest error sites from the `ssl_lib` file, in this many distinct
/// functions, before the library is considered present (the real
/// libraries give 70+ in 40+ functions; a program that merely holds the
/// string gives a handful).
pub const MIN_SITES: usize = 20;
pub const MIN_SITE_FUNCTIONS: usize = 10;
/// Largest `_ex` wrapper or BoringSSL `SSL_read` that calls `SSL_peek`.
const MAX_WRAPPER_BYTES: u64 = 256;
const MAX_READ_BYTES: u64 = 1024;

struct Found {
    name: &'static str,
    range: CodeRange,
    evidence: String,
}

type Outcome = Result<Found, Unidentified>;

fn refuse(name: &'static str, reason: &'static str, detail: impl Into<String>) -> Unidentified {
    Unidentified {
        name,
        reason,
        detail: detail.into(),
    }
}

/// Names the functions from `sites` (every site that passes one of
/// `files`), proves their entries, and assembles the result.
pub fn identify(
    a: &mut Analysis<'_, '_>,
    files: &[FileString],
    sites: &[ErrorSite],
) -> Result<TlsFunctions, LocateError> {
    a.stats.error_sites = sites.len();
    let count = |shape: SiteShape, lib: u64| {
        let s: Vec<&ErrorSite> = sites
            .iter()
            .filter(|s| s.shape == shape && s.lib == lib)
            .collect();
        let functions: BTreeSet<u64> = s.iter().map(|s| s.function.start).collect();
        (s, functions.len())
    };
    let (openssl3, openssl3_fns) = count(SiteShape::SetDebug, OPENSSL_LIB_SSL);
    let (boring, boring_fns) = count(SiteShape::PutError, BORINGSSL_LIB_SSL);
    let (openssl1, openssl1_fns) = count(SiteShape::PutError, OPENSSL_LIB_SSL);
    let enough = |n: usize, f: usize| n >= MIN_SITES && f >= MIN_SITE_FUNCTIONS;
    let (library, outcomes) = if enough(openssl3.len(), openssl3_fns)
        && !enough(boring.len(), boring_fns)
    {
        (Library::OpenSsl, openssl3_rules(a, &openssl3, files))
    } else if enough(boring.len(), boring_fns) && !enough(openssl3.len(), openssl3_fns) {
        (Library::BoringSsl, boringssl_rules(a, &boring, files))
    } else if enough(openssl1.len(), openssl1_fns) {
        return Err(LocateError::NotIdentified(
            "OpenSSL 1.x error sites (SSLerr with function codes): analysis covers OpenSSL 3 and BoringSSL".into(),
        ));
    } else if a.descent.is_none() && a.stats.code_refs_outside_fdes > 0 && sites.len() < MIN_SITES {
        return Err(LocateError::NoUnwindInfo(a.stats.code_refs_outside_fdes));
    } else {
        return Err(LocateError::NotIdentified(format!(
            "{} error sites naming {} (OpenSSL 3: {} in {} functions, BoringSSL: {} in {}); need {MIN_SITES} in {MIN_SITE_FUNCTIONS} functions of one library",
            sites.len(),
            files.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join(", "),
            openssl3.len(),
            openssl3_fns,
            boring.len(),
            boring_fns,
        )));
    };
    finish(a, library, outcomes)
}

/// Entry proofs and file offsets for the identified functions.
fn finish(
    a: &mut Analysis<'_, '_>,
    library: Library,
    outcomes: Vec<Outcome>,
) -> Result<TlsFunctions, LocateError> {
    let starts: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|f| f.range.start))
        .collect();
    let refs = a.references(&starts)?;
    let pointers = a.data_pointers(&starts);
    let mut functions = Vec::new();
    let mut unidentified = Vec::new();
    for outcome in outcomes {
        let found = match outcome {
            Ok(found) => found,
            Err(u) => {
                unidentified.push(u);
                continue;
            }
        };
        let start = found.range.start;
        let incoming = refs
            .iter()
            .filter(|r| r.target == start && r.from.start != start);
        let calls = incoming.clone().filter(|r| r.kind == RefKind::Call).count();
        let operands = incoming
            .clone()
            .filter(|r| r.kind == RefKind::Operand)
            .count();
        let jumps = incoming
            .filter(|r| matches!(r.kind, RefKind::Jump | RefKind::TailJump))
            .count();
        let proof = if let Some(d) = &a.descent {
            // No FDEs: the entry is proven by recursive descent alone.
            if !d.is_entry(start) {
                unidentified.push(refuse(
                    found.name,
                    "not_an_entry",
                    format!("{start:#x} is not the target of a direct call decoded from code reached from relocated code pointers, FDE starts or symbols"),
                ));
                continue;
            }
            if let Some(bad) = d.trouble_near(found.range) {
                unidentified.push(refuse(
                    found.name,
                    "descent_conflict",
                    format!("decoding met overlapping or invalid instructions at {bad:#x}, near {start:#x}"),
                ));
                continue;
            }
            if let Some(at) = a.code_after_padding(found.range) {
                unidentified.push(refuse(
                    found.name,
                    "ambiguous_extent",
                    format!("{:#x}..{:#x} holds inter-function padding (int3) followed by more code at {at:#x}: it may span an uncalled function", found.range.start, found.range.end),
                ));
                continue;
            }
            if calls == 0 {
                unidentified.push(refuse(
                    found.name,
                    "not_called",
                    format!("{start:#x}: no direct call to it confirmed by decoding its callers"),
                ));
                continue;
            }
            format!(
                "recursive-descent entry: target of a direct call decoded from code reached from {} relocated code pointers, {} FDE starts and {} symbols ({} instructions, {} conflicts, {} invalid, none within {:#x} bytes); called from {calls} site(s)",
                d.roots.relocations,
                d.roots.fde_starts,
                d.roots.dynsym,
                d.instructions,
                d.conflict_count,
                d.invalid.len(),
                crate::analysis::DESCENT_CLEARANCE,
            )
        } else if calls > 0 {
            format!("FDE start, called from {calls} site(s)")
        } else if operands > 0 || pointers.contains(&start) {
            "FDE start, address taken".to_string()
        } else if jumps > 0 {
            unidentified.push(refuse(
                found.name,
                "not_an_entry",
                format!(
                    "{start:#x} is only jumped to ({jumps} jumps): a split-off part, not an entry"
                ),
            ));
            continue;
        } else {
            unidentified.push(refuse(
                found.name,
                "not_called",
                format!("{start:#x} is neither called nor address-taken in this file"),
            ));
            continue;
        };
        let Some(file_offset) = a.file_offset(start) else {
            unidentified.push(refuse(
                found.name,
                "not_in_file",
                format!("{start:#x} is not file-backed code"),
            ));
            continue;
        };
        functions.push(Located {
            name: found.name,
            vaddr: start,
            file_offset,
            source: Source::Analysis {
                evidence: format!("{}; {proof}", found.evidence),
            },
        });
    }
    functions.sort_by_key(|f: &Located| crate::FUNCTION_NAMES.iter().position(|n| *n == f.name));
    if functions.is_empty() {
        return Err(LocateError::NotIdentified(
            unidentified
                .iter()
                .map(|u| format!("{}: {} ({})", u.name, u.reason, u.detail))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok(TlsFunctions {
        library,
        functions,
        unidentified,
        stats: a.stats.clone(),
    })
}

fn by_function<'s>(sites: &[&'s ErrorSite]) -> BTreeMap<u64, Vec<&'s ErrorSite>> {
    let mut map: BTreeMap<u64, Vec<&ErrorSite>> = BTreeMap::new();
    for s in sites {
        map.entry(s.function.start).or_default().push(s);
    }
    map
}

fn file_name(files: &[FileString], site: &ErrorSite) -> String {
    files
        .get(site.file)
        .map(|f| f.text.clone())
        .unwrap_or_default()
}

// === OpenSSL 3 ===

fn openssl3_rules(
    a: &mut Analysis<'_, '_>,
    sites: &[&ErrorSite],
    files: &[FileString],
) -> Vec<Outcome> {
    let lib_c: Vec<&ErrorSite> = sites
        .iter()
        .copied()
        .filter(|s| {
            files
                .get(s.file)
                .is_some_and(|f| f.text.ends_with("ssl/ssl_lib.c"))
        })
        .collect();
    let named = |name: &str, reason: Option<u64>| -> Result<(CodeRange, &ErrorSite), String> {
        let matching: Vec<&ErrorSite> = lib_c
            .iter()
            .copied()
            .filter(|s| {
                s.func_name.as_deref() == Some(name) && reason.is_none_or(|r| s.reason == r)
            })
            .collect();
        let ranges: BTreeSet<CodeRange> = matching.iter().map(|s| s.function).collect();
        match (ranges.len(), matching.first()) {
            (1, Some(site)) => Ok((site.function, site)),
            (0, _) => Err(format!("no ERR_raise with __func__ \"{name}\"")),
            (n, _) => Err(format!("{n} functions raise with __func__ \"{name}\"")),
        }
    };
    let mut out = Vec::new();
    for (api, internal, ex) in [
        (SSL_READ, "ssl_read_internal", SSL_READ_EX),
        (SSL_WRITE, "ssl_write_internal", SSL_WRITE_EX),
    ] {
        let internal_fn = named(internal, None);
        let api_outcome = match (named(api, Some(OPENSSL_R_BAD_LENGTH)), &internal_fn) {
            (Err(e), _) => Err(refuse(
                api,
                if e.starts_with("no ") {
                    "no_evidence"
                } else {
                    "ambiguous"
                },
                e,
            )),
            (Ok(_), Err(e)) => Err(refuse(api, "no_evidence", format!("{internal}: {e}"))),
            (Ok((range, site)), Ok((internal_range, _))) => {
                let calls_internal = a.decode(range).is_some_and(|d| {
                    d.calls
                        .iter()
                        .any(|c| c.target == Some(internal_range.start))
                });
                if calls_internal {
                    Ok(Found {
                        name: api,
                        range,
                        evidence: format!(
                            "ERR_raise(ERR_LIB_SSL=20, SSL_R_BAD_LENGTH=271) with __func__ \"{api}\" at {}:{}, calls {internal} ({:#x}, named by its own __func__)",
                            file_name(files, site),
                            site.line,
                            internal_range.start
                        ),
                    })
                } else {
                    Err(refuse(
                        api,
                        "call_graph_mismatch",
                        format!("{range:?} does not call {internal}"),
                    ))
                }
            }
        };
        let api_start = api_outcome.as_ref().ok().map(|f| f.range.start);
        out.push(api_outcome);
        let ex_outcome = match internal_fn {
            Err(e) => Err(refuse(ex, "no_evidence", format!("{internal}: {e}"))),
            Ok((internal_range, _)) => {
                openssl3_wrapper(a, ex, internal, internal_range, api_start, &lib_c)
            }
        };
        out.push(ex_outcome);
    }
    out
}

/// The unique small function without error sites whose only direct call is
/// to `internal`.
fn openssl3_wrapper(
    a: &mut Analysis<'_, '_>,
    name: &'static str,
    internal: &str,
    internal_range: CodeRange,
    api_start: Option<u64>,
    sites: &[&ErrorSite],
) -> Outcome {
    let refs = a
        .references(&[internal_range.start])
        .map_err(|e| refuse(name, e.reason(), e.to_string()))?;
    let with_sites: BTreeSet<u64> = sites.iter().map(|s| s.function.start).collect();
    let callers: BTreeSet<CodeRange> = refs
        .iter()
        .filter(|r| matches!(r.kind, RefKind::Call | RefKind::TailJump))
        .map(|r| r.from)
        .filter(|f| {
            Some(f.start) != api_start
                && !with_sites.contains(&f.start)
                && f.start != internal_range.start
        })
        .collect();
    let mut wrappers = Vec::new();
    for f in callers {
        if f.len() > MAX_WRAPPER_BYTES {
            continue;
        }
        let Some(d) = a.decode(f) else { continue };
        let targets: BTreeSet<Option<u64>> = d.calls.iter().map(|c| c.target).collect();
        if targets.len() == 1 && targets.contains(&Some(internal_range.start)) {
            wrappers.push(f);
        }
    }
    match wrappers.as_slice() {
        [f] => Ok(Found {
            name,
            range: *f,
            evidence: format!(
                "the only small function ({} bytes) without error sites whose one call is {internal} ({:#x})",
                f.len(),
                internal_range.start
            ),
        }),
        [] => Err(refuse(name, "no_evidence", format!("no wrapper of {internal}"))),
        many => Err(refuse(name, "ambiguous", format!("{} wrappers of {internal}", many.len()))),
    }
}

// === BoringSSL ===

fn boringssl_rules(
    a: &mut Analysis<'_, '_>,
    sites: &[&ErrorSite],
    files: &[FileString],
) -> Vec<Outcome> {
    let lib_cc: Vec<&ErrorSite> = sites
        .iter()
        .copied()
        .filter(|s| {
            files
                .get(s.file)
                .is_some_and(|f| f.text.ends_with("ssl/ssl_lib.cc"))
        })
        .collect();
    let functions = by_function(&lib_cc);
    let has = |f: &[&ErrorSite], reason: u64| f.iter().any(|s| s.reason == reason);

    // SSL_write.
    let writers: Vec<u64> = functions
        .iter()
        .filter(|(_, s)| has(s, BORINGSSL_R_BAD_LENGTH) && has(s, BORINGSSL_R_UNINITIALIZED))
        .map(|(&start, _)| start)
        .collect();
    let write = match writers.as_slice() {
        [start] => {
            let s = &functions[start];
            let line = |r: u64| s.iter().find(|x| x.reason == r).map_or(0, |x| x.line);
            Ok(Found {
                name: SSL_WRITE,
                range: s[0].function,
                evidence: format!(
                    "the only function reporting SSL_R_BAD_LENGTH=111 (line {}) and SSL_R_UNINITIALIZED=226 (line {}) with ERR_LIB_SSL=16 from {}",
                    line(BORINGSSL_R_BAD_LENGTH),
                    line(BORINGSSL_R_UNINITIALIZED),
                    file_name(files, s[0])
                ),
            })
        }
        [] => Err(refuse(
            SSL_WRITE,
            "no_evidence",
            "no function reports BAD_LENGTH and UNINITIALIZED",
        )),
        many => Err(refuse(
            SSL_WRITE,
            "ambiguous",
            format!(
                "{} functions report BAD_LENGTH and UNINITIALIZED",
                many.len()
            ),
        )),
    };
    let write_start = write.as_ref().ok().map(|f| f.range.start);
    let read = boringssl_read(a, &functions, write_start);
    vec![read, write]
}

fn boringssl_read(
    a: &mut Analysis<'_, '_>,
    functions: &BTreeMap<u64, Vec<&ErrorSite>>,
    write_start: Option<u64>,
) -> Outcome {
    let Some(write_start) = write_start else {
        return Err(refuse(
            SSL_READ,
            "no_evidence",
            "SSL_write not identified, so ssl_read_impl's sites cannot be told apart",
        ));
    };
    let write_lines: BTreeSet<u64> = functions[&write_start]
        .iter()
        .filter(|s| s.reason == BORINGSSL_R_SSL_HANDSHAKE_FAILURE)
        .map(|s| s.line)
        .collect();
    let uninit_count = |start: u64| {
        functions.get(&start).map_or(0, |s| {
            s.iter()
                .filter(|x| x.reason == BORINGSSL_R_UNINITIALIZED)
                .count()
        })
    };
    // Functions holding ssl_read_impl's HANDSHAKE_FAILURE site (itself, or
    // an inlined copy).
    let impl_holders: Vec<CodeRange> = functions
        .iter()
        .filter(|(&start, s)| {
            start != write_start
                && s.iter().any(|x| {
                    x.reason == BORINGSSL_R_SSL_HANDSHAKE_FAILURE && !write_lines.contains(&x.line)
                })
        })
        .map(|(_, s)| s[0].function)
        .collect();
    if impl_holders.is_empty() {
        return Err(refuse(
            SSL_READ,
            "no_evidence",
            "no ssl_read_impl HANDSHAKE_FAILURE site",
        ));
    }
    let holder_starts: Vec<u64> = impl_holders.iter().map(|r| r.start).collect();
    let refs = match a.references(&holder_starts) {
        Ok(r) => r,
        Err(e) => return Err(refuse(SSL_READ, e.reason(), e.to_string())),
    };
    let callers: BTreeSet<CodeRange> = refs
        .iter()
        .filter(|r| {
            matches!(r.kind, RefKind::Call | RefKind::TailJump) && r.from.start != write_start
        })
        .map(|r| r.from)
        .filter(|f| !holder_starts.contains(&f.start))
        .collect();
    // API level: callers of an out-of-line ssl_read_impl, else the holders
    // themselves (ssl_read_impl inlined). Those that check UNINITIALIZED
    // themselves are SSL_shutdown / SSL_key_update.
    let api: Vec<CodeRange> = if callers.is_empty() {
        impl_holders
            .into_iter()
            .filter(|f| uninit_count(f.start) <= 1)
            .collect()
    } else {
        callers
            .into_iter()
            .filter(|f| uninit_count(f.start) == 0)
            .collect()
    };
    let keys = |start: u64| -> BTreeSet<(u64, u64)> {
        functions
            .get(&start)
            .map(|s| s.iter().map(|x| (x.reason, x.line)).collect())
            .unwrap_or_default()
    };
    let targets = |a: &mut Analysis<'_, '_>, f: CodeRange| -> Option<BTreeSet<u64>> {
        Some(a.decode(f)?.calls.iter().filter_map(|c| c.target).collect())
    };
    match api.as_slice() {
        [p, s] => {
            let (Some(tp), Some(ts)) = (targets(a, *p), targets(a, *s)) else {
                return Err(refuse(SSL_READ, "undecodable", "candidate did not decode"));
            };
            if keys(p.start) != keys(s.start) {
                return Err(refuse(
                    SSL_READ,
                    "ambiguous",
                    "two ssl_read_impl callers with different error sites",
                ));
            }
            let (read, peek) = if ts.is_superset(&tp) && ts.len() > tp.len() {
                (s, p)
            } else if tp.is_superset(&ts) && tp.len() > ts.len() {
                (p, s)
            } else {
                return Err(refuse(
                    SSL_READ,
                    "ambiguous",
                    "two ssl_read_impl callers, neither's calls contain the other's",
                ));
            };
            Ok(Found {
                name: SSL_READ,
                range: *read,
                evidence: format!(
                    "SSL_peek inlined: of the two functions that call ssl_read_impl (the other reporter of SSL_R_SSL_HANDSHAKE_FAILURE=215) with identical error sites, the one whose calls strictly contain the other's ({:#x}, SSL_peek)",
                    peek.start
                ),
            })
        }
        [peek] => {
            let peek = *peek;
            let refs = match a.references(&[peek.start]) {
                Ok(r) => r,
                Err(e) => return Err(refuse(SSL_READ, e.reason(), e.to_string())),
            };
            let readers: BTreeSet<CodeRange> = refs
                .iter()
                .filter(|r| r.kind == RefKind::Call && r.from.start != peek.start)
                .map(|r| r.from)
                .filter(|f| !functions.contains_key(&f.start) && f.len() <= MAX_READ_BYTES)
                .collect();
            match readers.iter().collect::<Vec<_>>().as_slice() {
                [read] => Ok(Found {
                    name: SSL_READ,
                    range: **read,
                    evidence: format!(
                        "the only small caller without error sites of SSL_peek ({:#x}, the function that calls or inlines ssl_read_impl, the other reporter of SSL_R_SSL_HANDSHAKE_FAILURE=215)",
                        peek.start
                    ),
                }),
                [] => Err(refuse(SSL_READ, "no_evidence", "nothing calls SSL_peek")),
                many => Err(refuse(SSL_READ, "ambiguous", format!("{} callers of SSL_peek", many.len()))),
            }
        }
        [] => Err(refuse(
            SSL_READ,
            "no_evidence",
            "no caller of ssl_read_impl",
        )),
        many => Err(refuse(
            SSL_READ,
            "ambiguous",
            format!("{} candidate SSL_peek/SSL_read functions", many.len()),
        )),
    }
}
