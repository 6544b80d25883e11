//! Memory per stored Kubernetes object, measured, not estimated: a stand-in
//! API server (the integration tests' one) lists N pods in pages of 500;
//! the process's VmRSS is read before `KubeMetadata::start` and after it has
//! synced (with `malloc_trim` both times, so freed list pages do not count).
//!
//! `cargo bench -p k8s-metadata --bench store_memory [-- N]` (default 20,000).
//! Prints the figures; asserts nothing about them (it is a measurement).
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

#[allow(
    dead_code,
    reason = "the tests' support module; this bench uses a part"
)]
#[path = "../tests/support/mod.rs"]
mod support;

use k8s_metadata::{KubeMetadata, KubeSettings};
use support::*;

fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn trim() {
    // SAFETY: plain libc call without pointers.
    unsafe { libc::malloc_trim(0) };
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (api, url) = start_server().await;
        const PAGE: usize = 500;
        let pages: Vec<String> = (0..n)
            .collect::<Vec<_>>()
            .chunks(PAGE)
            .enumerate()
            .map(|(page, idx)| {
                let items = idx
                    .iter()
                    .map(|&i| {
                        let name = format!("app{}-5d4c3b2a1f-{i:05}", i / 10);
                        let uid = format!("{i:08x}-0000-4000-8000-{i:012x}");
                        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
                        let cid = format!("containerd://{:064x}", i as u128 * 7919);
                        let rs = format!("app{}-5d4c3b2a1f", i / 10);
                        pod(&PodSpec {
                            name: &name,
                            namespace: "shop",
                            uid: &uid,
                            rv: "100",
                            owner: Some(("ReplicaSet", &rs)),
                            hash: Some("5d4c3b2a1f"),
                            node: "node-a",
                            host_network: false,
                            phase: "Running",
                            ips: &[&ip],
                            containers: &[("app", &cid)],
                            init_containers: &[],
                        })
                    })
                    .collect();
                let next = (page + 1) * PAGE < n;
                let token = format!("page-{}", page + 1);
                list("PodList", "100", next.then_some(token.as_str()), items)
            })
            .collect();
        api.set_list(PODS, pages);
        api.set_list(SERVICES, vec![list("ServiceList", "100", None, vec![])]);
        api.set_list(
            REPLICASETS,
            vec![list("ReplicaSetList", "100", None, vec![])],
        );
        trim();
        let before = vm_rss();
        let registry = self_metrics::Registry::new();
        let settings = KubeSettings {
            api_url: Some(url),
            token_path: None,
            max_objects: n + 10,
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let (kube, task) = KubeMetadata::start(settings, &registry).expect("start");
        while !kube.is_synced() {
            assert!(started.elapsed() < std::time::Duration::from_secs(120), "never synced");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let synced_in = started.elapsed();
        trim();
        let after = vm_rss();
        let stored = registry.sum("wirespan_k8s_objects");
        println!(
            "{n} pods listed in {:.2} s; objects stored {stored}; VmRSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per pod",
            synced_in.as_secs_f64(),
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / n as f64
        );
        task.abort();
    });
}
