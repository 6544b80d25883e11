//! The tests load eBPF programs: they need root. Not being root is a failure,
//! not a skip, so a misconfigured CI can never pass silently.

/// Panics with a loud message unless the effective user is root.
pub fn require_root(test: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "\n\n*** {test}: the wirespan end-to-end tests must run as ROOT (euid is {euid}). ***\n\
             *** They load eBPF programs; run `cargo test -p integration` as root (CI does). ***\n\n"
        );
    }
}
