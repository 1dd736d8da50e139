//! W3C trace context: the producer injects its span's `traceparent`, and the
//! consumer's processing span is that span's child.

use integration_tests::{consumer_config, create_topic, string_producer, unique_name};
use kafka_client::serde::StringSerde;
use kafka_client::trace_context::{self, TRACEPARENT};
use kafka_client::{Consumer, ProducerRecord};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn consumer(group: &str, trace: bool) -> Consumer<String, String> {
    Consumer::builder(&consumer_config(group))
        .key_deserializer(StringSerde)
        .value_deserializer(StringSerde)
        .trace_context(trace)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn consumer_processing_span_is_the_child_of_the_producer_span() {
    let topic = unique_name("trace");
    create_topic(&topic, 1).await;

    // An OpenTelemetry pipeline for this (single) thread.
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("kafka-sdk-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    // Off by default: no header. `send` queues the record when called, so the span
    // current at the call is the record's context (as with Kafka's producers).
    let untraced = string_producer(false);
    tracing::info_span!("untraced")
        .in_scope(|| {
            untraced.send(ProducerRecord::new(
                &topic,
                "plain".to_string(),
                "v".to_string(),
            ))
        })
        .await
        .unwrap();

    let checkout = tracing::info_span!("checkout");
    let injected = checkout.context().span().span_context().clone();
    assert!(injected.is_valid());
    let traced = string_producer(true);
    checkout
        .in_scope(|| {
            traced.send(ProducerRecord::new(
                &topic,
                "traced".to_string(),
                "v".to_string(),
            ))
        })
        .await
        .unwrap();
    drop(checkout);

    // Off by default on the consumer too: no processing span, no parent.
    let group = unique_name("trace");
    let plain = consumer(&group, false);
    plain.subscribe(&[&topic]).unwrap();
    let (first_header, plain_context) = plain
        .process_at_least_once(|record| async move {
            let current = tracing::Span::current()
                .context()
                .span()
                .span_context()
                .clone();
            Ok::<_, String>((
                record.headers.last(TRACEPARENT).map(<[u8]>::to_vec),
                current,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        first_header, None,
        "the producer injects nothing unless asked"
    );
    assert!(!plain_context.is_valid());
    plain.close().await.unwrap();

    // The same group with trace context on reads the traced record.
    let traced = consumer(&group, true);
    traced.subscribe(&[&topic]).unwrap();
    let (key, extracted, processing) = traced
        .process_at_least_once(|record| async move {
            let extracted = trace_context::extract(&record.headers);
            let current = tracing::Span::current()
                .context()
                .span()
                .span_context()
                .clone();
            Ok::<_, String>((record.key, extracted, current))
        })
        .await
        .unwrap();
    assert_eq!(key, "traced");
    let extracted = extracted.expect("a traceparent header");
    assert_eq!(extracted.trace_id(), injected.trace_id());
    assert_eq!(
        extracted.span_id(),
        injected.span_id(),
        "the producer's span id was injected"
    );
    assert!(extracted.is_remote());
    assert_eq!(processing.trace_id(), injected.trace_id(), "same trace");
    assert_ne!(processing.span_id(), injected.span_id(), "a new span");

    // The exported processing span names the producer's span as its parent.
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let process = spans
        .iter()
        .find(|s| s.name == "kafka.process" && s.span_context.span_id() == processing.span_id())
        .unwrap_or_else(|| {
            panic!(
                "no kafka.process span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(process.parent_span_id, injected.span_id());
    assert_eq!(process.span_context.trace_id(), injected.trace_id());
}
