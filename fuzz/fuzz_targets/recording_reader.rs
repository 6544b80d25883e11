//! A recording file (`wirespan::recording`) of arbitrary bytes, read with
//! `RecordingReader`, each record decoded with `probes_common::records::decode`
//! and run through the whole user-space pipeline (`Pipeline::handle_bytes`,
//! span output into a Vec), with the agent's pipeline settings
//! (`agent::pipeline_settings` on the default config) but small connection
//! limits so eviction paths run.
//!
//! Invariants:
//! - no panic in the reader, the decoder or anywhere in the pipeline;
//! - the reader never returns a record over `MAX_RECORD_LEN`, stops at the
//!   first error, and then keeps returning errors or end of file;
//! - a decoded data record carries exactly `chunk_len` payload bytes;
//! - after every record: `connections()` ≤ max_connections and
//!   `buffered_bytes()` ≤ memory_limit_bytes; after `flush()`, no connection
//!   and nothing buffered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use probes_common::records::{decode, Record};
use wirespan::pipeline::Pipeline;
use wirespan::recording::{RecordingReader, MAX_RECORD_LEN};

const MAX_CONNECTIONS: usize = 8;
const MEMORY_LIMIT: usize = 48 * 1024;
/// Records read per input (a 1 MiB input holds at most ~260k empty ones).
const MAX_RECORDS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = RecordingReader::new(data) else {
        return;
    };
    let config = wirespan_config::Config::default();
    // Nothing read from the machine (host name, environment, /proc).
    let host = span_semantics::host::HostFacts {
        host_name: "fuzz".into(),
        ..span_semantics::host::HostFacts::hermetic()
    };
    let mut settings =
        wirespan::agent::pipeline_settings(&config, reader.header().clock_offset_ns, host);
    settings.tracker.max_connections = MAX_CONNECTIONS;
    settings.tracker.memory_limit_bytes = MEMORY_LIMIT;
    settings.tracker.idle_timeout_ns = 1_000_000_000;
    settings.span_builder = span_semantics::span_builder::SpanBuilder::new(
        span_semantics::span_builder::IdGenerator::with_seed(1),
        span_semantics::routes::RouteTable::new(&config.http.routes),
    );
    let registry = self_metrics::Registry::new();
    let mut pipeline = Pipeline::new(settings, Vec::<span_export::ExportSpan>::new(), &registry);

    let mut n = 0;
    loop {
        let rec = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => {
                // A reader that failed is not expected to recover; just no panic.
                let _ = reader.next_record();
                break;
            }
        };
        assert!(rec.len() <= MAX_RECORD_LEN, "record of {} bytes", rec.len());
        if let Ok(Record::Data { header, payload }) = decode(rec) {
            assert_eq!(payload.len(), header.chunk_len as usize, "payload length");
        }
        pipeline.handle_bytes(rec);
        assert!(
            pipeline.connections() <= MAX_CONNECTIONS,
            "{} connections",
            pipeline.connections()
        );
        assert!(
            pipeline.buffered_bytes() <= MEMORY_LIMIT,
            "{} bytes buffered",
            pipeline.buffered_bytes()
        );
        n += 1;
        if n % 64 == 0 {
            pipeline.tick(pipeline.last_ts_ns());
            let _ = pipeline.take_actions();
        }
        if n >= MAX_RECORDS {
            break;
        }
    }
    pipeline.flush();
    assert_eq!(pipeline.connections(), 0, "connections after flush");
    assert_eq!(pipeline.buffered_bytes(), 0, "bytes buffered after flush");
    let _ = pipeline.take_actions();
    let _ = registry.render();
});
