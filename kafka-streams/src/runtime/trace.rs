//! W3C trace context through the topology (kafka-client's [`trace_context`], which
//! parses and formats the headers), with `StreamsConfig::trace_context` on.
//!
//! Every step a task runs is a `tracing` span, a root unless said otherwise:
//! - `kafka_streams.process`, one per input record (topic, partition, offset, task):
//!   the child of the span context in the record's `traceparent` header, when it
//!   carries one;
//! - `kafka_streams.punctuate`, one per punctuation (task, punctuation type, time);
//! - `kafka_streams.flush`, the commit's cache flush of a task with stores (task).
//!
//! Every record the step writes — to sinks, repartition topics and changelogs —
//! carries that span's context as its `traceparent` (and `tracestate`), replacing
//! whatever it inherited: a consumer of the output, or the task reading a
//! repartition topic, continues the trace. Kafka has no such rule for records
//! emitted later; ours: a record a cache holds back until the commit's flush carries
//! the flush span's context (a cache keeps no headers), and a punctuation's output
//! carries the punctuation span's. Set `statestore.cache.max.bytes` to 0 for one
//! trace per input record through an aggregation.
//!
//! The spans are info-level. Trace ids come from OpenTelemetry through
//! `tracing-opentelemetry`: with no subscriber interested in the span, or no
//! OpenTelemetry layer in it, the span has no context and records keep the headers
//! they inherited (Kafka's behaviour: an upstream `traceparent` passes through
//! untouched). A disabled span costs a check of its callsite's interest per
//! record; nothing is extracted, formatted or copied. With the setting off (the
//! default) no span is created at all.

use std::borrow::Cow;

use kafka_client::trace_context::{self, TraceHeaders};
use kafka_client::Headers;

use crate::processor::{PunctuationType, RecordMetadata, TaskId};

/// The span of one task step, and the trace headers its output records carry.
pub(crate) struct StepTrace {
    pub span: tracing::Span,
    pub headers: Option<TraceHeaders>,
}

impl StepTrace {
    /// No span, no trace context (the setting is off).
    fn none() -> Self {
        StepTrace {
            span: tracing::Span::none(),
            headers: None,
        }
    }

    fn of(span: tracing::Span) -> Self {
        // `of_span` is `None` for a disabled span without touching the subscriber.
        let headers = TraceHeaders::of_span(&span);
        StepTrace { span, headers }
    }
}

/// The span processing `input` (read at `metadata`): the child of its
/// `traceparent`, or a new root; none unless `enabled`.
pub(crate) fn process(
    enabled: bool,
    task: TaskId,
    metadata: &RecordMetadata,
    input: &Headers,
) -> StepTrace {
    if !enabled {
        return StepTrace::none();
    }
    let span = tracing::info_span!(
        parent: None,
        "kafka_streams.process",
        messaging.system = "kafka",
        messaging.destination.name = %metadata.topic,
        messaging.kafka.partition = metadata.partition,
        messaging.kafka.offset = metadata.offset,
        kafka_streams.task_id = %task,
    );
    // Before the span's context is read: a started span takes no parent.
    trace_context::set_remote_parent(&span, input);
    StepTrace::of(span)
}

/// The span of a punctuation of `kind` at `time`; none unless `enabled`.
pub(crate) fn punctuate(
    enabled: bool,
    task: TaskId,
    kind: PunctuationType,
    time: i64,
) -> StepTrace {
    if !enabled {
        return StepTrace::none();
    }
    StepTrace::of(tracing::info_span!(
        parent: None,
        "kafka_streams.punctuate",
        kafka_streams.task_id = %task,
        kafka_streams.punctuation_type = ?kind,
        kafka_streams.punctuation_time = time,
    ))
}

/// The span of a commit's cache flush; none unless `enabled`.
pub(crate) fn flush(enabled: bool, task: TaskId) -> StepTrace {
    if !enabled {
        return StepTrace::none();
    }
    StepTrace::of(tracing::info_span!(
        parent: None,
        "kafka_streams.flush",
        kafka_streams.task_id = %task,
    ))
}

/// `headers` carrying `trace` instead of any inherited trace context; borrowed
/// unchanged when there is no trace.
pub(crate) fn stamp<'a>(headers: &'a Headers, trace: Option<&TraceHeaders>) -> Cow<'a, Headers> {
    match trace {
        Some(trace) => {
            let mut stamped = headers.clone();
            trace.apply(&mut stamped);
            Cow::Owned(stamped)
        }
        None => Cow::Borrowed(headers),
    }
}
