//! The probes' per-CPU counters (`probes_common::counter`) as Prometheus
//! series: one place maps each kernel counter to its metric, labels and help.

use probes_common::counter;
use self_metrics::{Counter, Registry};

use crate::probes::KernelCounters;

/// The probes' counters as Prometheus series.
pub struct KernelCounterMetrics {
    series: Vec<(usize, Counter)>,
}

impl KernelCounterMetrics {
    pub fn new(registry: &Registry) -> Self {
        let mut series = Vec::new();
        for (i, name) in counter::NAMES.iter().enumerate() {
            let c = match i as u32 {
                counter::DATA_RECORDS => registry.counter(
                    "wirespan_kernel_data_records_total",
                    "Data records the probes emitted.",
                    &[],
                ),
                counter::DATA_BYTES => registry.counter(
                    "wirespan_kernel_data_bytes_total",
                    "Payload bytes the probes copied into the ring buffer.",
                    &[],
                ),
                counter::TRUNCATED_CALLS => registry.counter(
                    "wirespan_kernel_truncated_calls_total",
                    "Syscalls whose payload was cut by the per-call cap or the iovec limit.",
                    &[],
                ),
                counter::TLS_CALLS | counter::GO_TLS_CALLS => registry.counter(
                    "wirespan_tls_calls_total",
                    "TLS library calls that moved plaintext: SSL_read/SSL_write (OpenSSL, \
                     BoringSSL) or Go crypto/tls (*Conn).Read/Write.",
                    &[(
                        "library",
                        if i as u32 == counter::GO_TLS_CALLS {
                            "go"
                        } else {
                            "openssl"
                        },
                    )],
                ),
                counter::GO_FD_CHECK_AGREED | counter::GO_FD_CHECK_DISAGREED => registry.counter(
                    "wirespan_tls_go_fd_cross_checks_total",
                    "Go TLS calls whose socket (read from the tls.Conn, or remembered from it) \
                     was also named by the syscall made inside the call, by whether the two agreed \
                     (the tls.Conn's is used).",
                    &[(
                        "result",
                        if i as u32 == counter::GO_FD_CHECK_AGREED {
                            "agreed"
                        } else {
                            "disagreed"
                        },
                    )],
                ),
                counter::TLS_FD_NESTED
                | counter::TLS_FD_CACHED
                | counter::TLS_FD_THREAD
                | counter::TLS_FD_UNKNOWN
                | counter::TLS_SOCKET_UNTRACKED
                | counter::TLS_FD_GO_CONN
                | counter::TLS_FD_GO_CACHED => {
                    let how = match i as u32 {
                        counter::TLS_FD_NESTED => "nested_syscall",
                        counter::TLS_FD_CACHED => "remembered_ssl",
                        counter::TLS_FD_THREAD => "thread_last_read",
                        counter::TLS_FD_UNKNOWN => "not_found",
                        counter::TLS_FD_GO_CONN => "go_conn_struct",
                        counter::TLS_FD_GO_CACHED => "remembered_go_conn",
                        _ => "socket_untracked",
                    };
                    registry.counter(
                        "wirespan_tls_calls_by_socket_source_total",
                        "TLS calls by how their socket was found; not_found and socket_untracked lose their plaintext.",
                        &[("source", how)],
                    )
                }
                counter::TLS_FD_DEFERRED | counter::TLS_FD_BOUND => registry.counter(
                    "wirespan_tls_deferred_writes_total",
                    "SSL_write calls whose socket was not known at return (custom BIO): deferred \
                     (plaintext sent to user space to wait), bound (the thread's next socket write \
                     gave a run of them its socket). Runs never bound are counted by user space.",
                    &[(
                        "result",
                        if i as u32 == counter::TLS_FD_DEFERRED {
                            "deferred"
                        } else {
                            "bound"
                        },
                    )],
                ),
                counter::GO_ORPHAN_READ_GAP | counter::GO_ORPHAN_LOST | counter::GO_WRITE_SHORT => {
                    registry.counter(
                        "wirespan_tls_go_incomplete_calls_total",
                        "Go TLS calls seen only in part: a Read whose entry came before the probes \
                         (gap_marked: an exact gap on its socket; lost: no socket to mark), a Write \
                         emitted at entry that sent less (write_short).",
                        &[(
                            "result",
                            match i as u32 {
                                counter::GO_ORPHAN_READ_GAP => "gap_marked",
                                counter::GO_ORPHAN_LOST => "lost",
                                _ => "write_short",
                            },
                        )],
                    )
                }
                counter::TRUNCATED_BYTES
                | counter::MUTED_BYTES
                | counter::RINGBUF_FULL_BYTES
                | counter::TLS_CIPHERTEXT_BYTES
                | counter::BODY_SKIPPED_BYTES => {
                    let reason = match i as u32 {
                        counter::TRUNCATED_BYTES => "per_call_cap",
                        counter::MUTED_BYTES => "muted_connection",
                        counter::TLS_CIPHERTEXT_BYTES => "tls_ciphertext",
                        counter::BODY_SKIPPED_BYTES => "body_skipped",
                        _ => "ringbuf_full",
                    };
                    registry.counter(
                        "wirespan_kernel_bytes_not_copied_total",
                        "Socket bytes the probes counted but did not copy, by reason.",
                        &[("reason", reason)],
                    )
                }
                _ => registry.counter(
                    "wirespan_kernel_records_lost_total",
                    "Records or captures the probes could not make, by reason.",
                    &[("reason", name)],
                ),
            };
            series.push((i, c));
        }
        Self { series }
    }

    pub fn update(&self, counters: &KernelCounters) {
        if let Ok(totals) = counters.read() {
            for (i, c) in &self.series {
                c.set_total(totals[*i]);
            }
        }
    }
}
