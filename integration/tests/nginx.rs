//! nginx (Debian nginx-light) as the server: a static file sent with
//! sendfile (the probes count sendfile bytes as a gap, never copied, or as
//! skipped body once the agent knows the body's length), `return 204;` and
//! `return 500;` locations, all on one keep-alive connection; and a large
//! download whose body the probes stop copying.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::servers::{nginx, LARGE_BODY_PACE};

const UA: &str = "wirespan-e2e-nginx/1.0";

#[test]
fn nginx_static_204_500_keep_alive() {
    require_root("nginx_static_204_500_keep_alive");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let file: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let server = nginx(
        &[("big.bin", &file), ("small.txt", b"small static file\n")],
        "        location = /empty { return 204; }
        location = /fail { return 500; }
",
    );
    let port = server.port;
    let worker = server.only_child();
    let urls: Vec<String> = ["/big.bin", "/small.txt?v=1", "/empty", "/fail"]
        .iter()
        .map(|p| format!("http://127.0.0.1:{port}{p}"))
        .collect();
    let mut args = vec!["-A", UA];
    for _ in &urls {
        args.extend(["-o", "/dev/null"]);
    }
    args.extend(urls.iter().map(|s| s.as_str()));
    let c = curl(&args, &[]);
    assert_eq!(c.transfers.len(), 4, "{c:?}");
    let lp = c.transfers[0].local_port;
    assert!(
        c.transfers.iter().all(|t| t.local_port == lp),
        "curl did not keep the connection alive: {c:?}"
    );
    let codes: Vec<u16> = c.transfers.iter().map(|t| t.response_code).collect();
    assert_eq!(codes, vec![200, 200, 204, 500]);
    assert_eq!(c.transfers[0].size_download, file.len() as u64);
    let (curl_p, nginx_p) = (Proc::named("curl", c.pid), Proc::named("nginx", worker));
    let mut expected = Vec::new();
    for (path, t) in ["/big.bin", "/small.txt?v=1", "/empty", "/fail"]
        .iter()
        .zip(&c.transfers)
    {
        let e = Exchange::get(path, port, lp, t.response_code, t.size_download).ua(UA);
        expected.extend(e.spans(&curl_p, &nginx_p));
    }
    run.assert(port, &expected);
}

/// A large download: once the agent has parsed the response head it tells
/// the probes that the rest of the body (which it only counts) need not be
/// copied, so most of the 8 MiB never enters the ring buffer. The spans stay
/// exact, and the bytes not copied are counted as skipped, not lost. nginx
/// paces the response (`limit_rate`, half a second for 8 MiB) so that the
/// transfer outlasts the agent's first drain of the head: unpaced, curl
/// reads 8 MiB from loopback in a few milliseconds, and curl's own
/// `--limit-rate` does not pace a transfer that short.
#[test]
fn large_body_is_skipped_by_the_probes_and_counted() {
    require_root("large_body_is_skipped_by_the_probes_and_counted");
    let _g = serial();
    let run = SpanRun::start(OtlpProtocol::Grpc);
    let file: Vec<u8> = (0..8u32 << 20).map(|i| (i * 13 % 251) as u8).collect();
    let server = nginx(&[("large.bin", &file)], LARGE_BODY_PACE);
    let port = server.port;
    let worker = server.only_child();
    let url = format!("http://127.0.0.1:{port}/large.bin");
    let c = curl(&["-A", UA, "-o", "/dev/null", &url], &[]);
    assert_eq!(c.transfers.len(), 1, "{c:?}");
    let t = &c.transfers[0];
    assert_eq!((t.response_code, t.size_download), (200, file.len() as u64));
    let (curl_p, nginx_p) = (Proc::named("curl", c.pid), Proc::named("nginx", worker));
    let expected = Exchange::get("/large.bin", port, t.local_port, 200, t.size_download)
        .ua(UA)
        .spans(&curl_p, &nginx_p);
    let (spans, exit) = run.finish(port, expected.len());
    integration::spans::assert_spans(&expected, &spans, &exit.diagnostics());
    integration::metrics::assert_body_mostly_skipped(
        &exit.metrics,
        file.len(),
        &exit.diagnostics(),
    );
}
