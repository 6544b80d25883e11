//! nginx (Debian nginx-light) as the server: a static file sent with
//! sendfile (the probes count sendfile bytes as a gap, never copied), `return
//! 204;` and `return 500;` locations, all on one keep-alive connection.
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::servers::{children, nginx};
use std::time::Duration;

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
    // The worker (a fork of the master, never exec'd) serves the requests.
    let mut workers = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            workers = children(server.pid());
            workers.len() == 1
        }),
        "nginx should have exactly one worker: {workers:?}\n{}",
        server.log()
    );
    let worker = workers[0];
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
    let curl_p = Proc {
        service: "curl".into(),
        pid: c.pid,
        exe: "curl".into(),
    };
    let nginx_p = Proc {
        service: "nginx".into(),
        pid: worker,
        exe: "nginx".into(),
    };
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
