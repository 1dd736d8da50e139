//! W3C trace context over Kafka headers.
//!
//! With [`ProducerBuilder::trace_context`](crate::ProducerBuilder::trace_context)
//! on, `send` writes the current `tracing` span's context into the record's
//! `traceparent` (and `tracestate`) headers: the span current when `send` is
//! called, since `send` queues the record then, as Kafka's `KafkaProducer.send`
//! does. Enter the span around the call (`span.in_scope(|| producer.send(record))`,
//! or call `send` inside an `#[instrument]`ed function), not around the returned
//! future with `.instrument(span)`. With
//! [`ConsumerBuilder::trace_context`](crate::ConsumerBuilder::trace_context) on,
//! [`Consumer::processing_span`](crate::Consumer::processing_span) and
//! [`Consumer::process_at_least_once`](crate::Consumer::process_at_least_once)
//! run the processing in a `kafka.process` span whose parent is the producer's
//! span. Both are off by default.
//!
//! Span contexts come from OpenTelemetry through `tracing-opentelemetry`: install
//! its `OpenTelemetryLayer` in your subscriber (any exporter). Without it, spans
//! have no trace ids and nothing is injected. The header format is W3C Trace
//! Context: `traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`;
//! it is written and parsed here with OpenTelemetry's id types, so this crate
//! needs only the `opentelemetry` API crate, not its SDK.
//!
//! kafka-streams continues traces through its topologies with the same functions
//! (its `StreamsConfig::trace_context`): [`set_remote_parent`] for each processed
//! record's span, [`TraceHeaders`] to stamp everything a step writes.

use std::str::FromStr;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::record::Headers;

/// The W3C `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` header.
pub const TRACESTATE: &str = "tracestate";

/// Formats a span context as a `traceparent` value; `None` for an invalid one.
pub fn format_traceparent(context: &SpanContext) -> Option<String> {
    context.is_valid().then(|| {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    })
}

/// Parses a `traceparent` value (version `00`, or a later version's first four
/// fields, as the W3C spec asks) into a remote span context.
pub fn parse_traceparent(value: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let (trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let extra = parts.next();
    if version.len() != 2 || version == "ff" || !is_lower_hex(version) {
        return None;
    }
    if version == "00" && extra.is_some() {
        return None;
    }
    if trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !(is_lower_hex(trace_id) && is_lower_hex(span_id) && is_lower_hex(flags)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = tracestate
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let context = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
    context.is_valid().then_some(context)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Writes the context of the current `tracing` span into `headers`, replacing
/// any earlier `traceparent`/`tracestate`. Returns the injected context (`None`
/// when the current span has no valid OpenTelemetry context).
pub fn inject_current(headers: &mut Headers) -> Option<SpanContext> {
    let context = tracing::Span::current().context();
    inject(&context, headers)
}

/// Writes the span context of `context` into `headers` (see [`inject_current`]).
pub fn inject(context: &Context, headers: &mut Headers) -> Option<SpanContext> {
    let span = context.span();
    let span_context = span.span_context();
    TraceHeaders::of_span_context(span_context)?.apply(headers);
    Some(span_context.clone())
}

/// One span's `traceparent` (and `tracestate`) header values, formatted once to
/// stamp many records (e.g. every record a stream task writes while processing
/// one input record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceHeaders {
    /// The headers of a span context; `None` for an invalid one.
    pub fn of_span_context(context: &SpanContext) -> Option<Self> {
        let traceparent = format_traceparent(context)?;
        let state = context.trace_state().header();
        Some(TraceHeaders {
            traceparent,
            tracestate: (!state.is_empty()).then_some(state),
        })
    }

    /// The headers of a `tracing` span's OpenTelemetry context; `None` when it has
    /// none (a disabled span, or no `tracing-opentelemetry` layer installed).
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        if span.is_disabled() {
            return None;
        }
        let context = span.context();
        let otel_span = context.span();
        Self::of_span_context(otel_span.span_context())
    }

    /// The `traceparent` value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` value, when the span has a trace state.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// Writes these values into `headers`, replacing any earlier
    /// `traceparent`/`tracestate`.
    pub fn apply(&self, headers: &mut Headers) {
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        headers.insert(TRACEPARENT, self.traceparent.as_bytes());
        if let Some(state) = &self.tracestate {
            headers.insert(TRACESTATE, state.as_bytes());
        }
    }

    /// These values as headers of their own.
    pub fn to_headers(&self) -> Headers {
        let mut headers = Headers::new();
        self.apply(&mut headers);
        headers
    }
}

/// The remote span context carried by `headers`, if any.
pub fn extract(headers: &Headers) -> Option<SpanContext> {
    let traceparent = std::str::from_utf8(headers.last(TRACEPARENT)?).ok()?;
    let tracestate = headers
        .last(TRACESTATE)
        .and_then(|s| std::str::from_utf8(s).ok());
    parse_traceparent(traceparent, tracestate)
}

/// An info-level `kafka.process` span for a record, whose parent is the span
/// context in its headers (when there is one and `tracing-opentelemetry` is
/// installed).
pub fn processing_span(
    topic: &str,
    partition: i32,
    offset: i64,
    headers: &Headers,
) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka.process",
        messaging.system = "kafka",
        messaging.destination.name = topic,
        messaging.kafka.partition = partition,
        messaging.kafka.offset = offset,
    );
    set_remote_parent(&span, headers);
    span
}

/// Makes the span context carried by `headers` (if any) the parent of `span`, which
/// is then its remote child. `true` when a parent was set; `false` when `headers`
/// carry no valid `traceparent` (the span keeps its own parent, or is a root) or
/// the span is disabled.
pub fn set_remote_parent(span: &tracing::Span, headers: &Headers) -> bool {
    if span.is_disabled() {
        return false;
    }
    match extract(headers) {
        Some(remote) => span
            .set_parent(Context::new().with_remote_span_context(remote))
            .is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let context = parse_traceparent(SAMPLE, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(
            context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            context.span_id(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert!(context.is_sampled() && context.is_remote());
        assert_eq!(context.trace_state().get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(format_traceparent(&context).as_deref(), Some(SAMPLE));
    }

    #[test]
    fn invalid_traceparents_are_rejected() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad, None).is_none(), "{bad:?} accepted");
        }
        // A future version may append fields.
        assert!(parse_traceparent(&format!("01{}-x", &SAMPLE[2..]), None).is_some());
    }

    #[test]
    fn inject_replaces_and_extract_reads_headers() {
        let context = parse_traceparent(SAMPLE, None).unwrap();
        let cx = Context::new().with_remote_span_context(context.clone());
        let mut headers = Headers::new().with(TRACEPARENT, "stale").with("other", "x");
        assert_eq!(inject(&cx, &mut headers), Some(context.clone()));
        assert_eq!(headers.len(), 2, "the stale traceparent was replaced");
        assert_eq!(headers.last(TRACEPARENT), Some(SAMPLE.as_bytes()));
        assert_eq!(extract(&headers), Some(context));
        // No span context: nothing injected.
        let mut empty = Headers::new();
        assert_eq!(inject(&Context::new(), &mut empty), None);
        assert!(empty.is_empty());
    }

    #[test]
    fn trace_headers_carry_the_trace_state_and_replace_inherited_ones() {
        let context = parse_traceparent(SAMPLE, Some("congo=t61rcWkgMzE")).unwrap();
        let trace = TraceHeaders::of_span_context(&context).unwrap();
        assert_eq!(trace.traceparent(), SAMPLE);
        assert_eq!(trace.tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(extract(&trace.to_headers()), Some(context));
        let mut inherited = Headers::new()
            .with(
                TRACEPARENT,
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .with(TRACESTATE, "rojo=00f067aa0ba902b7")
            .with("other", "x");
        trace.apply(&mut inherited);
        assert_eq!(inherited.len(), 3);
        assert_eq!(inherited.last(TRACEPARENT), Some(SAMPLE.as_bytes()));
        assert_eq!(
            inherited.last(TRACESTATE),
            Some("congo=t61rcWkgMzE".as_bytes())
        );
        // No trace state: an inherited one goes too.
        let plain = TraceHeaders::of_span_context(&parse_traceparent(SAMPLE, None).unwrap());
        plain.unwrap().apply(&mut inherited);
        assert_eq!(inherited.last(TRACESTATE), None);
        assert_eq!(inherited.len(), 2);
        // A disabled span (no subscriber) has no context, and no parent to set.
        let disabled = tracing::Span::none();
        assert_eq!(TraceHeaders::of_span(&disabled), None);
        assert!(!set_remote_parent(
            &disabled,
            &Headers::new().with(TRACEPARENT, SAMPLE)
        ));
    }
}
