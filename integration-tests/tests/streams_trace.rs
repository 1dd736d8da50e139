//! W3C trace context across every hop, on the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`: one record from a kafka-client producer, through a
//! kafka-streams word count (a repartition by word, then a count), to a kafka-client
//! consumer of the output topic is one trace, whose spans are linked in order:
//! producer → streams process (input) → streams process (repartition topic) →
//! consumer. The repartition, output and changelog records carry the traceparent
//! of the streams span that wrote them.
//!
//! Stream threads are plain OS threads: the OpenTelemetry pipeline is the global
//! subscriber, so this binary holds this one test only.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use integration_tests::{
    block_on, config, consumer_config, count_words, create_topic, start_running, string_producer,
    unique_name, DEADLINE,
};
use kafka_client::serde::{BytesSerde, StringSerde};
use kafka_client::trace_context;
use kafka_client::{Consumer, ConsumerRecord, ProducerRecord};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::StreamsConfig;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The process-wide OpenTelemetry pipeline with an in-memory exporter.
fn pipeline() -> &'static (SdkTracerProvider, InMemorySpanExporter) {
    static PIPELINE: OnceLock<(SdkTracerProvider, InMemorySpanExporter)> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("kafka-sdk-test")));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        (provider, exporter)
    })
}

/// `future`, failing the test if it takes longer than [`DEADLINE`].
async fn within_deadline<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The first record of `topic` (read from the beginning, no trace context).
async fn first_record(topic: &str) -> ConsumerRecord<Vec<u8>, Vec<u8>> {
    let consumer: Consumer<Vec<u8>, Vec<u8>> =
        Consumer::builder(&consumer_config(&unique_name("trace-reader")))
            .key_deserializer(BytesSerde)
            .value_deserializer(BytesSerde)
            .build()
            .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let record = within_deadline(topic, consumer.recv())
        .await
        .expect("a record");
    consumer.close().await.expect("close");
    record
}

/// The span context a record carries.
fn carried<K, V>(record: &ConsumerRecord<K, V>) -> SpanContext {
    trace_context::extract(&record.headers)
        .unwrap_or_else(|| panic!("no traceparent on {}: {:?}", record.topic, record.headers))
}

fn the_span<'a>(spans: &'a [SpanData], name: &str, topic: &str) -> &'a SpanData {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.name == name
                && s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "messaging.destination.name" && kv.value.as_str() == topic
                })
        })
        .collect();
    match found.as_slice() {
        [one] => one,
        other => panic!(
            "expected one {name} span of {topic}, found {}; spans: {:?}",
            other.len(),
            spans
                .iter()
                .map(|s| (&s.name, &s.attributes))
                .collect::<Vec<_>>()
        ),
    }
}

#[test]
fn one_trace_from_producer_through_a_repartition_and_a_count_to_consumer() {
    let (provider, exporter) = pipeline();
    let app = unique_name("trace-app");
    let input = unique_name("trace-lines");
    let output = unique_name("trace-counts");
    block_on(async {
        create_topic(&input, 2).await;
        create_topic(&output, 2).await;
    });
    let repartition = format!("{app}-counts-repartition");
    let changelog = format!("{app}-counts-changelog");

    // No record cache: the count forwards while processing, in the record's span.
    let state_dir = tempfile::tempdir().expect("state dir");
    let builder = StreamsBuilder::new();
    count_words(builder.stream::<String, String>(&input), "counts", &output);
    let streams_config = StreamsConfig::new(&app, config())
        .commit_interval(Duration::from_millis(200))
        .cache_max_bytes(0)
        .trace_context(true)
        .state_dir(state_dir.path());
    let streams = start_running(builder, streams_config);

    let checkout = tracing::info_span!("checkout");
    let produced = checkout.context().span().span_context().clone();
    assert!(produced.is_valid());
    let (output_record, consumed, repartitioned, logged) = block_on(async {
        // `send` queues the record when called: the span current at the call is
        // the record's context.
        let producer = string_producer(true);
        checkout
            .in_scope(|| {
                producer.send(ProducerRecord::new(
                    &input,
                    "order-1".to_string(),
                    "Hello".to_string(),
                ))
            })
            .await
            .expect("send");

        let consumer: Consumer<String, Vec<u8>> =
            Consumer::builder(&consumer_config(&unique_name("trace-consumer")))
                .key_deserializer(StringSerde)
                .value_deserializer(BytesSerde)
                .trace_context(true)
                .build()
                .expect("consumer");
        consumer.subscribe(&[&output]).expect("subscribe");
        let (output_record, consumed) = within_deadline(
            "the count",
            consumer.process_at_least_once(|record| async move {
                let current = tracing::Span::current()
                    .context()
                    .span()
                    .span_context()
                    .clone();
                Ok::<_, String>((record, current))
            }),
        )
        .await
        .expect("processed");
        consumer.close().await.expect("close");
        (
            output_record,
            consumed,
            first_record(&repartition).await,
            first_record(&changelog).await,
        )
    });
    drop(checkout);
    streams.close();
    assert_eq!(output_record.key, "hello");
    assert_eq!(output_record.value, 1i64.to_be_bytes());
    assert_eq!(repartitioned.key, b"hello");

    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let first = the_span(&spans, "kafka_streams.process", &input);
    let second = the_span(&spans, "kafka_streams.process", &repartition);
    let last = the_span(&spans, "kafka.process", &output);

    // One trace, end to end.
    for span in [first, second, last] {
        assert_eq!(
            span.span_context.trace_id(),
            produced.trace_id(),
            "{} of {:?} is in another trace",
            span.name,
            span.attributes
        );
    }
    assert_eq!(consumed.trace_id(), produced.trace_id());
    assert_eq!(consumed.span_id(), last.span_context.span_id());

    // Parent links, hop by hop, and the headers that carried them.
    assert_eq!(
        first.parent_span_id,
        produced.span_id(),
        "producer → streams"
    );
    assert_eq!(
        carried(&repartitioned).span_id(),
        first.span_context.span_id(),
        "the repartition record carries the first streams span"
    );
    assert_eq!(
        second.parent_span_id,
        first.span_context.span_id(),
        "streams (input) → streams (repartition topic)"
    );
    assert_eq!(
        carried(&output_record).span_id(),
        second.span_context.span_id(),
        "the output record carries the second streams span"
    );
    assert_eq!(
        carried(&logged).span_id(),
        second.span_context.span_id(),
        "the changelog record carries the span that counted"
    );
    assert_eq!(
        last.parent_span_id,
        second.span_context.span_id(),
        "streams → consumer"
    );
    for record in [&repartitioned, &logged] {
        assert_eq!(carried(record).trace_id(), produced.trace_id());
    }
    assert_eq!(carried(&output_record).trace_id(), produced.trace_id());
}
