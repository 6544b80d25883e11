//! TLS plaintext of a socket is tracked as a connection of its own, its
//! "twin", next to the socket's wire bytes, under these marks: the fd with
//! bit 30 set (no real fd is that large) and the conn_id with bit 62 set.

/// Set in the fd of a TLS twin connection (the probes key the twin's
/// `BODY_SKIP` entry the same way).
pub const TLS_FD_BIT: i32 = probes_common::TLS_TWIN_FD_BIT;
/// Set in the conn_id of a TLS twin connection.
pub const TLS_CONN_BIT: u64 = 1 << 62;

/// True for the fd of a TLS twin connection.
pub fn is_twin_fd(fd: i32) -> bool {
    fd & TLS_FD_BIT != 0
}
