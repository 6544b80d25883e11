//! wirespan's kernel-side programs.
//!
//! Syscall tracepoints copy the payload of every read/write-family call on a
//! tracked TCP socket into the `EVENTS` ring buffer, in chunks, with the exact
//! stream offset of each chunk so that user space can tell any loss to the byte.
//! connect/accept/close and scheduler tracepoints report connection and process
//! lifecycle. Nothing here parses protocols: that is user space's job.
//!
//! Hooks rely on the stable syscall tracepoint layout: on enter, argument *i* at
//! offset 16 + 8*i; on exit, the return value at offset 16.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![allow(static_mut_refs)]
// `core::intrinsics::atomic_xadd`: the BPF target has no atomic read-modify-
// write types, but an atomic add whose result is unused is one BPF
// instruction (XADD) on every BPF CPU version.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod probes;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // Built for the host only when a workspace-wide command includes this crate;
    // the real programs exist only for the BPF target.
}

#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
