//! Turning a batch of spans into one OTLP request, one `ResourceSpans` per
//! distinct process resource.

use crate::ExportSpan;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use std::collections::HashMap;

/// The instrumentation scope every span is reported under.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "wirespan".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

/// Builds the request for `batch`, grouping spans by `ProcessResource::id` in
/// the order each resource first appears. Spans are moved, not copied; each
/// resource's attributes are copied once per request.
pub fn encode_request(batch: Vec<ExportSpan>) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let scope = scope();
    for ExportSpan { resource, span } in batch {
        let i = *index.entry(resource.id).or_insert_with(|| {
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: resource.attributes.clone(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            });
            resource_spans.len() - 1
        });
        resource_spans[i].scope_spans[0].spans.push(span);
    }
    ExportTraceServiceRequest { resource_spans }
}

/// Number of spans in a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}
