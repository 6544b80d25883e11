//! Export through a real collector: wirespan → rotel (OTLP gRPC) → the
//! in-process receiver (OTLP gRPC). Needs `pip install rotel`; without it the
//! test FAILS loudly (CI installs it).
#![allow(
    unused_crate_dependencies,
    reason = "a test, bench or example target sees every dependency of its package; the lib build checks them"
)]

use integration::otlp_receiver::OtlpProtocol;
use integration::prelude::*;
use integration::python::python_exe_name;
use integration::rotel::Rotel;
use integration::servers::http11_server;

#[test]
fn spans_arrive_through_rotel() {
    require_root("spans_arrive_through_rotel");
    let _g = serial();
    // Fail before starting anything when rotel is missing.
    let _ = integration::rotel::rotel_agent();
    let receiver = Receiver::start(OtlpProtocol::Grpc);
    let rotel = Rotel::start(&receiver.endpoint());
    // rotel's own exports to the receiver are HTTP/2 traffic too; exclude
    // the receiver's port so they do not become spans (a feedback loop).
    let opts = AgentOptions::default()
        .otlp(&format!("http://127.0.0.1:{}", rotel.grpc_port), "grpc")
        .env(
            "WIRESPAN_CAPTURE__EXCLUDE_PORTS",
            receiver.addr.port().to_string(),
        );
    let agent = Agent::run(opts);
    let server = http11_server();
    let port = server.port;
    let c = curl(
        &[
            "-A",
            "via-rotel/1",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status/503?through=rotel"),
        ],
        &[("OTEL_SERVICE_NAME", "rotel-client")],
    );
    let t = &c.transfers[0];
    assert_eq!(t.response_code, 503);
    let e = Exchange::get(
        "/status/503?through=rotel",
        port,
        t.local_port,
        503,
        t.size_download,
    )
    .ua("via-rotel/1");
    let client = Proc {
        service: "rotel-client".into(),
        pid: c.pid,
        exe: "curl".into(),
    };
    let server_p = Proc {
        service: python_exe_name(),
        pid: server.pid(),
        exe: python_exe_name(),
    };
    let expected = e.spans(&client, &server_p);
    let waited = receiver.wait_for(integration::span_run::SPAN_TIMEOUT, |s| {
        s.iter().filter(|x| x.involves_port(port)).count() >= 2
    });
    let diagnostics = format!(
        "{}\n--- rotel log ---\n{}",
        agent.diagnostics(),
        rotel.log()
    );
    let exit = agent.stop_ok();
    let spans: Vec<FlatSpan> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.involves_port(port))
        .collect();
    assert!(
        waited.is_ok(),
        "spans did not arrive through rotel:\n{}\n{diagnostics}",
        integration::spans::show(&spans)
    );
    assert_spans(&expected, &spans, &exit.diagnostics());
}
