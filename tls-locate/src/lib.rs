//! Finds the plaintext functions of OpenSSL and BoringSSL (`SSL_read`,
//! `SSL_write`, and OpenSSL's `SSL_read_ex`, `SSL_write_ex`) in an x86-64
//! ELF executable or shared object, with or without a symbol table, and says
//! how each was found: a symbol ([`Source::Symtab`], [`Source::Dynsym`], a
//! separate [`Source::DebugFile`]) or analysis of the code
//! ([`Source::Analysis`]) for stripped builds with the library linked in
//! statically (grpcio, Chromium, Envoy-style builds, `strip`ped programs
//! linked with `libssl.a`).
//!
//! It does not attach anything or load eBPF, and it does not guess: an
//! address is only returned when it is proven to be a function entry (an
//! `.eh_frame` FDE start that is also called directly, or whose address is
//! taken) and identified by evidence that survives stripping and version
//! changes (see [`rules`]). Anything less is a typed reason in
//! [`TlsFunctions::unidentified`] or a [`LocateError`].
//!
//! # Evidence, in order
//! 1. `.symtab`, then `.dynsym` of the file;
//! 2. a debug file: `<dir>/.build-id/xx/yyyy.debug` for each configured
//!    [`LocateOptions::debug_dirs`] and `/usr/lib/debug`, then the
//!    `.gnu_debuglink` name beside the file, in `.debug/`, in the configured
//!    directories and under `/usr/lib/debug` (build id or CRC must match);
//! 3. analysis ([`analysis`]): function entries from `.eh_frame`
//!    ([`eh_frame`]), error-reporting sites that name the library's source
//!    file `ssl/ssl_lib.c(c)` with their constants ([`error_sites`]), and the
//!    call graph between the functions they identify ([`rules`]).
//!
//! # Memory and time
//! [`locate`] maps the file (never reads it into a `Vec`). The analysis is
//! one linear byte scan of the executable sections per question asked
//! (three at most), plus a full decode of only the few hundred functions the
//! scans point at; it allocates the FDE table (16 bytes per function) and
//! per-candidate results. [`LocateOptions::max_code_bytes`] and
//! [`LocateOptions::time_budget`] bound it; exceeding either is an error.
//!
//! Scope: 64-bit little-endian x86-64 ELF; OpenSSL 3.x and BoringSSL for
//! analysis (OpenSSL 1.1 and other libraries only through symbols).

#![deny(unsafe_code)]

pub mod analysis;
pub mod code;
pub mod descent;
pub mod eh_frame;
pub mod elf;
pub mod error_sites;
pub mod rules;
pub mod symbols;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use elf::ElfView;

/// The function names this crate locates (what the agent's probes expect:
/// the public API and its calling convention).
pub const SSL_READ: &str = "SSL_read";
pub const SSL_WRITE: &str = "SSL_write";
pub const SSL_READ_EX: &str = "SSL_read_ex";
pub const SSL_WRITE_EX: &str = "SSL_write_ex";
/// All of them, in the order results are reported.
pub const FUNCTION_NAMES: [&str; 4] = [SSL_READ, SSL_WRITE, SSL_READ_EX, SSL_WRITE_EX];

/// Which TLS library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    OpenSsl,
    BoringSsl,
    /// Found by symbol name only and nothing in the file says which.
    Unknown,
}

/// How a function was named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Symtab,
    Dynsym,
    /// The symbol table of this separate debug file.
    DebugFile(PathBuf),
    /// Code analysis; `evidence` says what identified it.
    Analysis {
        evidence: String,
    },
}

impl Source {
    /// Short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Source::Symtab => "symtab",
            Source::Dynsym => "dynsym",
            Source::DebugFile(_) => "debug_file",
            Source::Analysis { .. } => "analysis",
        }
    }
}

/// One located function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// One of [`FUNCTION_NAMES`].
    pub name: &'static str,
    /// Virtual address of the entry.
    pub vaddr: u64,
    /// Offset of the entry in the file (what a uprobe attaches to).
    pub file_offset: u64,
    pub source: Source,
}

/// A function that was looked for by analysis and not identified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unidentified {
    pub name: &'static str,
    /// snake_case label, e.g. `ambiguous`, `no_evidence`, `not_an_entry`.
    pub reason: &'static str,
    pub detail: String,
}

/// What the analysis cost (all zero when symbols answered).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalysisStats {
    /// FDEs read from `.eh_frame`.
    pub fdes: usize,
    /// Executable bytes scanned (per pass).
    pub code_bytes: u64,
    /// Byte-scan passes over the code.
    pub scan_passes: u32,
    /// Functions fully decoded.
    pub functions_decoded: usize,
    /// Error sites naming the library's `ssl_lib` source file.
    pub error_sites: usize,
    /// Prefilter hits on the library's strings in code no FDE covers
    /// (built with `-fno-asynchronous-unwind-tables`, as Chromium is).
    pub code_refs_outside_fdes: usize,
    /// Recursive descent ([`descent`]), when FDEs did not cover the code:
    /// instructions decoded, entries proven (strong call targets),
    /// overlapping-instruction conflicts and invalid instructions met.
    pub descent_instructions: u64,
    pub descent_entries: usize,
    pub descent_conflicts: usize,
    pub descent_invalid: usize,
    pub elapsed: Duration,
}

/// The result of [`locate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFunctions {
    pub library: Library,
    /// Sorted as [`FUNCTION_NAMES`]; only those found.
    pub functions: Vec<Located>,
    /// Functions the analysis looked for and refused to name.
    pub unidentified: Vec<Unidentified>,
    pub stats: AnalysisStats,
}

impl TlsFunctions {
    pub fn get(&self, name: &str) -> Option<&Located> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// Knobs for [`locate`].
#[derive(Clone, Debug)]
pub struct LocateOptions {
    /// Extra directories searched for debug files (build-id tree and
    /// debuglink names), before `/usr/lib/debug`.
    pub debug_dirs: Vec<PathBuf>,
    /// Refuse to analyse a file with more executable bytes than this.
    pub max_code_bytes: u64,
    /// Give up analysing after this long.
    pub time_budget: Duration,
    /// Skip the analysis (symbols and debug files only).
    pub symbols_only: bool,
}

impl Default for LocateOptions {
    fn default() -> Self {
        LocateOptions {
            debug_dirs: Vec::new(),
            max_code_bytes: 1 << 30,
            time_budget: Duration::from_secs(30),
            symbols_only: false,
        }
    }
}

/// Why nothing was located.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an ELF file")]
    NotElf,
    #[error("unsupported architecture (ELF e_machine {0}; only 64-bit little-endian x86-64)")]
    UnsupportedArch(u16),
    #[error("malformed ELF: {0}")]
    BadElf(String),
    #[error("no TLS library: no SSL_* symbols and no OpenSSL/BoringSSL source-file strings")]
    NoTls,
    #[error("stripped and no .eh_frame: function entries cannot be proven")]
    NoEhFrame,
    #[error(transparent)]
    EhFrame(#[from] eh_frame::EhFrameError),
    #[error("{0} references to the library's strings come from code without .eh_frame FDEs (built without unwind tables): function entries cannot be proven")]
    NoUnwindInfo(usize),
    #[error("{0} bytes of code, more than the configured maximum")]
    TooLarge(u64),
    #[error("analysis exceeded its time budget of {0:?}")]
    TimeBudget(Duration),
    #[error("TLS library strings present but no function identified: {0}")]
    NotIdentified(String),
}

/// Every label [`LocateError::reason`] gives.
pub const REASONS: [&str; 11] = [
    "io",
    "not_elf",
    "unsupported_arch",
    "bad_elf",
    "no_tls",
    "no_eh_frame",
    "bad_eh_frame",
    "no_unwind_info",
    "too_large",
    "time_budget",
    "not_identified",
];

impl LocateError {
    /// snake_case label for metrics and logs (one of [`REASONS`]).
    pub fn reason(&self) -> &'static str {
        match self {
            LocateError::Io(_) => "io",
            LocateError::NotElf => "not_elf",
            LocateError::UnsupportedArch(_) => "unsupported_arch",
            LocateError::BadElf(_) => "bad_elf",
            LocateError::NoTls => "no_tls",
            LocateError::NoEhFrame => "no_eh_frame",
            LocateError::EhFrame(_) => "bad_eh_frame",
            LocateError::NoUnwindInfo(_) => "no_unwind_info",
            LocateError::TooLarge(_) => "too_large",
            LocateError::TimeBudget(_) => "time_budget",
            LocateError::NotIdentified(_) => "not_identified",
        }
    }
}

/// Maps `path` and locates the TLS functions in it (symbols, then debug
/// files, then analysis).
pub fn locate(path: &Path, opts: &LocateOptions) -> Result<TlsFunctions, LocateError> {
    let file = std::fs::File::open(path)?;
    let map = map_file(&file)?;
    let view = ElfView::parse(&map)?;
    if let Some(found) = from_symbols(&view, None) {
        return Ok(found);
    }
    for (candidate, want) in symbols::debug_file_candidates(path, &view, &opts.debug_dirs) {
        let Ok(debug) = std::fs::File::open(&candidate) else {
            continue;
        };
        let Ok(debug_map) = map_file(&debug) else {
            continue;
        };
        if !symbols::debug_file_matches(&debug_map, &want) {
            continue;
        }
        if let Some(found) = from_debug_file(&view, &debug_map, &candidate) {
            return Ok(found);
        }
    }
    analyse(&view, opts)
}

/// [`locate`] on bytes already in memory (no debug-file search).
pub fn locate_bytes(data: &[u8], opts: &LocateOptions) -> Result<TlsFunctions, LocateError> {
    let view = ElfView::parse(data)?;
    if let Some(found) = from_symbols(&view, None) {
        return Ok(found);
    }
    analyse(&view, opts)
}

#[allow(unsafe_code, reason = "memory-maps the file; see the SAFETY note")]
fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this call; the bytes
    // are only ever read through `&[u8]` and every read is bounds-checked.
    // If another process truncates the file while it is mapped, reading the
    // lost pages raises SIGBUS: an executable or library being run cannot be
    // written (ETXTBSY), and the agent inspects files that processes map.
    unsafe { memmap2::Mmap::map(file) }
}

fn analyse(view: &ElfView<'_>, opts: &LocateOptions) -> Result<TlsFunctions, LocateError> {
    if opts.symbols_only {
        return Err(LocateError::NotIdentified(
            "symbols only, and none found".into(),
        ));
    }
    let started = Instant::now();
    let mut result = analysis::analyse(view, opts, started)?;
    result.stats.elapsed = started.elapsed();
    Ok(result)
}

/// Library named by the source-file strings in the file's data (cheap
/// `memmem` over the non-executable sections).
fn library_from_strings(view: &ElfView<'_>) -> Library {
    let mut openssl = false;
    for s in view.data_sections() {
        if memchr::memmem::find(s.bytes, b"ssl/ssl_lib.cc\0").is_some() {
            return Library::BoringSsl;
        }
        openssl |= memchr::memmem::find(s.bytes, b"ssl/ssl_lib.c\0").is_some();
    }
    if openssl {
        Library::OpenSsl
    } else {
        Library::Unknown
    }
}

fn from_symbols(view: &ElfView<'_>, debug: Option<(&ElfView<'_>, &Path)>) -> Option<TlsFunctions> {
    let (table_file, source_for) = match debug {
        Some((d, path)) => (&d.file, Some(path)),
        None => (&view.file, None),
    };
    let (table, found) = symbols::find_named(table_file, &FUNCTION_NAMES)?;
    let source = match (source_for, table) {
        (Some(path), _) => Source::DebugFile(path.to_path_buf()),
        (None, symbols::Table::Symtab) => Source::Symtab,
        (None, symbols::Table::Dynsym) => Source::Dynsym,
    };
    let mut functions: Vec<Located> = found
        .into_iter()
        .filter_map(|(i, vaddr)| {
            Some(Located {
                name: FUNCTION_NAMES[i],
                vaddr,
                file_offset: view.vaddr_to_offset(vaddr, 1, true)?,
                source: source.clone(),
            })
        })
        .collect();
    if functions.is_empty() {
        return None;
    }
    functions.sort_by_key(|f| FUNCTION_NAMES.iter().position(|n| *n == f.name));
    Some(TlsFunctions {
        library: library_from_strings(view),
        functions,
        unidentified: Vec::new(),
        stats: AnalysisStats::default(),
    })
}

fn from_debug_file(view: &ElfView<'_>, debug_data: &[u8], path: &Path) -> Option<TlsFunctions> {
    let debug = object::read::elf::ElfFile64::<object::LittleEndian>::parse(debug_data).ok()?;
    if !symbols::same_layout(view, &debug) {
        return None;
    }
    let debug_view = ElfView {
        file: debug,
        data: debug_data,
    };
    let mut found = from_symbols(view, Some((&debug_view, path)))?;
    // A debug file's address is only trusted where the binary's own unwind
    // table starts a function there (when it has one).
    if let Ok(table) = analysis::function_table(view) {
        found
            .functions
            .retain(|f| table.starting_at(f.vaddr).is_some());
    }
    (!found.functions.is_empty()).then_some(found)
}
