//! Start-up cost of reading and parsing the running kernel's BTF and resolving
//! `KernelOffsets`. Run with
//! `cargo run --release -p kernel-btf --example parse_time [iterations]`.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use std::time::{Duration, Instant};

use kernel_btf::{resolve_kernel_offsets, Btf, SYS_FS_VMLINUX};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let (mut read, mut parse, mut resolve) = (Vec::new(), Vec::new(), Vec::new());
    let mut types = 0;
    for _ in 0..n {
        let t0 = Instant::now();
        let data = std::fs::read(SYS_FS_VMLINUX).expect("read kernel BTF");
        let t1 = Instant::now();
        let btf = Btf::from_bytes(&data).expect("parse kernel BTF");
        let t2 = Instant::now();
        let offsets = resolve_kernel_offsets(&btf).expect("resolve offsets");
        let t3 = Instant::now();
        std::hint::black_box(offsets);
        types = btf.type_count();
        read.push(t1 - t0);
        parse.push(t2 - t1);
        resolve.push(t3 - t2);
    }
    let stat = |name: &str, v: &mut Vec<Duration>| {
        v.sort();
        println!(
            "{name:>8}: min {:?}  median {:?}  max {:?}",
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        );
    };
    println!("{SYS_FS_VMLINUX}: {types} types, {n} iterations");
    stat("read", &mut read);
    stat("parse", &mut parse);
    stat("resolve", &mut resolve);
}
