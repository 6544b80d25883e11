//! Which built spans are kept: parent-based ratio sampling
//! (`export.sample_ratio`), decided from the trace id so that both ends of a
//! same-host request, and every span of a trace, agree.

use protocol_parsers::HttpExchange;
use span_model::ExportSpan;

use crate::span_builder::FixedIds;

/// Parent-based ratio sampling: a traceparent's sampled flag decides;
/// otherwise the trace id does, so every span of one trace (both ends of a
/// same-host request included) gets the same answer.
pub fn keep_span(
    span: &ExportSpan,
    exchange: &HttpExchange,
    fixed: Option<&FixedIds>,
    ratio: f64,
) -> bool {
    if let Some(sampled) = fixed.and_then(|f| f.sampled) {
        return sampled;
    }
    if let Some(tp) = exchange
        .request
        .traceparent()
        .and_then(crate::span_builder::parse_traceparent)
    {
        return tp.flags & 1 == 1;
    }
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut high = [0u8; 8];
    for (d, s) in high.iter_mut().zip(span.span.trace_id.iter()) {
        *d = *s;
    }
    // Same rule as the OpenTelemetry TraceIdRatioBased sampler's spirit: a
    // trace id below ratio × 2^64 is kept.
    (u64::from_be_bytes(high) as f64) < ratio * (u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol_parsers::RequestField;
    use span_model::{ProcessResource, SpanData};
    use std::sync::Arc;

    fn span_with_trace(first: u8) -> ExportSpan {
        let mut trace_id = [0u8; 16];
        trace_id[0] = first;
        ExportSpan::new(
            Arc::new(ProcessResource {
                id: 1,
                attributes: Vec::new(),
            }),
            SpanData {
                trace_id,
                ..Default::default()
            },
        )
    }

    #[test]
    fn ratio_keeps_low_trace_ids_and_the_ends_agree() {
        let exchange = crate::span_builder::tests::exchange("GET", "/", Some(200));
        let low = span_with_trace(0x10);
        let high = span_with_trace(0xf0);
        assert!(keep_span(&low, &exchange, None, 0.5));
        assert!(!keep_span(&high, &exchange, None, 0.5));
        // The same trace id gives the same answer wherever it is decided.
        assert_eq!(
            keep_span(&low, &exchange, None, 0.5),
            keep_span(&low.clone(), &exchange, None, 0.5)
        );
        assert!(keep_span(&high, &exchange, None, 1.0));
        assert!(!keep_span(&low, &exchange, None, 0.0));
    }

    #[test]
    fn a_callers_sampled_flag_decides() {
        let mut exchange = crate::span_builder::tests::exchange("GET", "/", Some(200));
        let high = span_with_trace(0xf0);
        exchange.request.set(
            RequestField::Traceparent,
            Some("00-f0000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        assert!(
            keep_span(&high, &exchange, None, 0.0),
            "sampled by the caller"
        );
        exchange.request.set(
            RequestField::Traceparent,
            Some("00-f0000000000000000000000000000000-00f067aa0ba902b7-00"),
        );
        assert!(
            !keep_span(&high, &exchange, None, 1.0),
            "not sampled by the caller"
        );
    }
}
