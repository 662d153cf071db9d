//! Trace context across processes (W3C `traceparent`): the producer puts its send span's context
//! into each message (`SystemProperties.trace_context`, as RocketMQ clients do), nodes continue
//! the trace when they take, forward and store the request, and consumers open their delivery
//! span under it, so one message's life is one trace. Spans are exported only when the
//! application installs an OpenTelemetry layer (`tracing-opentelemetry`) for [`TARGET`];
//! otherwise these helpers cost a span that nobody records.

use opentelemetry::Context;
use opentelemetry::trace::SpanContext;
use opentelemetry::trace::SpanId;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::trace::TraceFlags;
use opentelemetry::trace::TraceId;
use opentelemetry::trace::TraceState;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of raftmq's traced spans (send, forward, store, deliver): export this
/// target to see one message's life in Jaeger.
pub const TARGET: &str = "raftmq::trace";

/// The gRPC metadata key of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// `span`'s context as a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), if it is being
/// recorded by an OpenTelemetry layer.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// Parses a W3C `traceparent`; `None` if it is not one (wrong version, length, or all-zero ids).
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 || flags.len() != 2
    {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
    let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
    sc.is_valid().then_some(sc)
}

/// Makes `span` a child of the remote span named by `traceparent`; false if it does not parse
/// (the span then starts its own trace).
pub fn set_parent(span: &tracing::Span, traceparent: &str) -> bool {
    match parse(traceparent) {
        Some(sc) => span.set_parent(Context::new().with_remote_span_context(sc)).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_w3c_traceparent() {
        let sc = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
    }

    #[test]
    fn refuses_what_is_not_one() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
