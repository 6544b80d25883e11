//! Error-reporting call sites of OpenSSL and BoringSSL, recovered from the
//! machine code: the evidence that survives stripping.
//!
//! Both libraries report errors with a macro that passes the source file
//! name, the line and numeric codes as constants:
//!
//! - BoringSSL `OPENSSL_PUT_ERROR(SSL, reason)` and OpenSSL 1.x
//!   `SSLerr(func, reason)` call `ERR_put_error(lib, func, reason, __FILE__,
//!   __LINE__)`: `edi`=lib (BoringSSL `ERR_LIB_SSL` = 16, OpenSSL = 20),
//!   `esi`=function code (0 in BoringSSL), `edx`=reason, `rcx`=&file,
//!   `r8d`=line. Shape [`SiteShape::PutError`].
//! - OpenSSL 3 `ERR_raise(ERR_LIB_SSL, reason)` expands to `ERR_new();
//!   ERR_set_debug(__FILE__, __LINE__, __func__); ERR_set_error(lib, reason,
//!   NULL)`: `rdi`=&file, `esi`=line, `rdx`=&"function name"; then the next
//!   call has `edi`=20, `esi`=reason. Shape [`SiteShape::SetDebug`]; the
//!   function-name string (`__func__`) is the strongest evidence there is.
//!
//! A site is only recorded when every one of those registers was set by a
//! constant in straight-line code before the call (see [`crate::code`]).

use crate::code::{ArgValue, DecodedFunction};
use crate::eh_frame::CodeRange;
use crate::elf::ElfView;

/// How the site passed its constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteShape {
    /// `ERR_put_error(lib, func, reason, file, line)`.
    PutError,
    /// `ERR_set_debug(file, line, func_name)` + `ERR_set_error(lib, reason, ..)`.
    SetDebug,
}

/// One error report in the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSite {
    /// The call that carries the file name.
    pub at: u64,
    /// The FDE the call is in.
    pub function: CodeRange,
    /// Index into the file-name strings the analysis looked for.
    pub file: usize,
    pub shape: SiteShape,
    pub lib: u64,
    /// OpenSSL 1.x function code; 0 in BoringSSL; `None` for OpenSSL 3.
    pub func_code: Option<u64>,
    pub reason: u64,
    pub line: u64,
    /// OpenSSL 3's `__func__`.
    pub func_name: Option<String>,
}

/// An `ERR_put_error(lib, func, reason, file, line)` call, when its
/// arguments are constants and `file` is one of the strings looked for.
fn put_error_site(
    at: u64,
    function: CodeRange,
    a: &[ArgValue; 6],
    file_index: impl Fn(ArgValue) -> Option<usize>,
) -> Option<ErrorSite> {
    Some(ErrorSite {
        at,
        function,
        file: file_index(a[3])?,
        shape: SiteShape::PutError,
        lib: a[0].imm()?,
        func_code: Some(a[1].imm()?),
        reason: a[2].imm()?,
        line: a[4].imm()?,
        func_name: None,
    })
}

/// Longest `__func__` read.
const MAX_FUNC_NAME: usize = 128;

/// The error sites in `decoded` that pass one of `files` (addresses of the
/// file-name strings; index = [`ErrorSite::file`]).
pub fn error_sites(view: &ElfView<'_>, decoded: &DecodedFunction, files: &[u64]) -> Vec<ErrorSite> {
    let function = CodeRange {
        start: decoded.start,
        end: decoded.end,
    };
    let file_index = |v: ArgValue| v.addr().and_then(|a| files.iter().position(|&f| f == a));
    let mut out = Vec::new();
    // Merged call tails carry one argument set per way in; only the
    // one-call shape (ERR_put_error) can be read from them.
    for call in &decoded.merged_calls {
        out.extend(put_error_site(call.at, function, &call.args, file_index));
    }
    for (i, call) in decoded.calls.iter().enumerate() {
        if call.target.is_none() {
            continue;
        }
        let a = &call.args;
        if let Some(site) = put_error_site(call.at, function, a, file_index) {
            out.push(site);
            continue;
        }
        // ERR_set_debug(file, line, func) then ERR_set_error(lib, reason, ..)
        let (Some(file), Some(line), Some(name_addr)) = (file_index(a[0]), a[1].imm(), a[2].addr())
        else {
            continue;
        };
        let Some(next) = decoded.calls.get(i + 1) else {
            continue;
        };
        let (Some(lib), Some(reason)) = (next.args[0].imm(), next.args[1].imm()) else {
            continue;
        };
        if next.target.is_none() || next.at.saturating_sub(call.at) > 64 {
            continue;
        }
        let Some(name) = view.c_str_at(name_addr, MAX_FUNC_NAME) else {
            continue;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.push(ErrorSite {
            at: call.at,
            function,
            file,
            shape: SiteShape::SetDebug,
            lib,
            func_code: None,
            reason,
            line,
            func_name: Some(name.to_string()),
        });
    }
    out
}
