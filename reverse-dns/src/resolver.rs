//! The blocking reverse resolver: `getnameinfo(3)` with `NI_NAMEREQD`, so the
//! host's own configuration (`/etc/hosts`, `nsswitch.conf`, `resolv.conf`
//! timeouts and attempts, nscd or systemd-resolved) decides the answer. It sends
//! no DNS queries of its own and does not confirm the name forward.

use std::ffi::CStr;
use std::net::IpAddr;

/// Why a reverse lookup gave no name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The resolver knows no name for the address (`EAI_NONAME`: no PTR record,
    /// NXDOMAIN, or no hosts entry). Counted as `not_found`.
    #[error("the address has no name")]
    NotFound,
    /// The resolver could not answer (`EAI_AGAIN`, `EAI_FAIL`, `EAI_SYSTEM` …):
    /// `code` is the `EAI_*` value (0 when the resolver is not getnameinfo).
    /// Counted as `failed`.
    #[error("reverse lookup failed: {reason} (code {code})")]
    Failed { code: i32, reason: &'static str },
}

/// A blocking reverse resolver. [`crate::ReverseDns`] calls it on Tokio's
/// blocking pool, at most `max_in_flight` calls at a time, and validates what
/// it returns. Tests and replays can supply their own.
pub trait Resolve: Send + Sync + 'static {
    /// The name of `ip`, as the resolver spells it (a trailing dot is allowed).
    fn resolve(&self, ip: IpAddr) -> Result<String, ResolveError>;
}

/// The host's resolver through `getnameinfo(NI_NAMEREQD)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, ip: IpAddr) -> Result<String, ResolveError> {
        getnameinfo(ip)
    }
}

/// `NI_MAXHOST` (1025 in glibc): room for any name plus its NUL.
const HOST_BUF_LEN: usize = libc::NI_MAXHOST as usize;

fn getnameinfo(ip: IpAddr) -> Result<String, ResolveError> {
    let mut host = [0u8; HOST_BUF_LEN];
    // The socket address is built field by field (port 0, no flow label, no
    // scope) and lives on this stack frame for the whole call.
    let rc = match ip {
        IpAddr::V4(v4) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                // `s_addr` is in network byte order: the octets as they are.
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            call_getnameinfo(
                std::ptr::from_ref(&sa).cast(),
                size_of::<libc::sockaddr_in>(),
                &mut host,
            )
        }
        IpAddr::V6(v6) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            call_getnameinfo(
                std::ptr::from_ref(&sa).cast(),
                size_of::<libc::sockaddr_in6>(),
                &mut host,
            )
        }
    };
    match rc {
        0 => {
            let name = CStr::from_bytes_until_nul(&host).map_err(|_| ResolveError::Failed {
                code: libc::EAI_OVERFLOW,
                reason: "name not terminated",
            })?;
            // Not UTF-8 means not a hostname; the caller's validation rejects it
            // and counts it as `invalid`.
            Ok(String::from_utf8_lossy(name.to_bytes()).into_owned())
        }
        libc::EAI_NONAME | libc::EAI_NODATA => Err(ResolveError::NotFound),
        code => Err(ResolveError::Failed {
            code,
            reason: eai_reason(code),
        }),
    }
}

/// One `getnameinfo` call asking for the host name only.
fn call_getnameinfo(sa: *const libc::sockaddr, sa_len: usize, host: &mut [u8]) -> libc::c_int {
    // SAFETY: `sa` points to a fully initialised `sockaddr_in` or `sockaddr_in6`
    // on the caller's stack, alive for this call, and `sa_len` is that struct's
    // size. `host` is writable for `host.len()` bytes (1025, so the casts to
    // `socklen_t` cannot truncate); getnameinfo writes at most that many,
    // NUL-terminated, and keeps no pointer after returning. No service name is
    // requested (null, 0). getnameinfo is MT-safe in glibc and musl.
    unsafe {
        libc::getnameinfo(
            sa,
            sa_len as libc::socklen_t,
            host.as_mut_ptr().cast(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    }
}

fn eai_reason(code: libc::c_int) -> &'static str {
    match code {
        libc::EAI_AGAIN => "temporary failure in name resolution",
        libc::EAI_FAIL => "non-recoverable failure in name resolution",
        libc::EAI_MEMORY => "out of memory",
        libc::EAI_SYSTEM => "system error",
        libc::EAI_OVERFLOW => "name too long for the buffer",
        libc::EAI_FAMILY => "address family not supported",
        libc::EAI_BADFLAGS => "bad flags",
        _ => "unknown getnameinfo error",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::process::Command;

    /// The first name `getent hosts` gives for `addr` on this machine: the same
    /// NSS path that getnameinfo takes. `None` when it knows none.
    pub(crate) fn getent_name(addr: &str) -> Option<String> {
        let out = Command::new("getent")
            .args(["hosts", addr])
            .output()
            .expect("running getent");
        let text = String::from_utf8_lossy(&out.stdout);
        let name = text.lines().next()?.split_whitespace().nth(1)?;
        Some(name.trim_end_matches('.').to_string())
    }

    #[test]
    fn loopback_resolves_as_getent_says() {
        let got = SystemResolver.resolve(IpAddr::V4(Ipv4Addr::LOCALHOST));
        match getent_name("127.0.0.1") {
            Some(expected) => {
                let got = got.expect("getent knows a name, so getnameinfo should too");
                assert_eq!(got.trim_end_matches('.'), expected);
            }
            None => assert_eq!(got, Err(ResolveError::NotFound)),
        }
    }

    #[test]
    fn reason_names_known_codes() {
        assert_eq!(
            eai_reason(libc::EAI_AGAIN),
            "temporary failure in name resolution"
        );
        assert_eq!(eai_reason(12345), "unknown getnameinfo error");
    }
}
