//! W3C trace context through the topology (`StreamsConfig::trace_context`), in the
//! TopologyTestDriver (which keeps headers, as Kafka's does): each processed record
//! runs in a `kafka_streams.process` span, the child of its `traceparent`;
//! everything a step writes (sinks, repartition topics, changelogs) carries that
//! step's span context.

use std::time::Duration;

use kafka_client::trace_context::{self, TRACEPARENT, TRACESTATE};
use kafka_client::Headers;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::processor::{
    Processor, ProcessorContext, ProcessorError, PunctuationType, PunctuatorId, Record,
};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::test_driver::{TestRecord, TopologyTestDriver};
use opentelemetry::trace::{SpanContext, SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

type R = anyhow::Result<()>;

/// The upstream producer's span, as its `traceparent` header.
const UPSTREAM: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UPSTREAM_STATE: &str = "congo=t61rcWkgMzE";
const APP: &str = "topology-test-driver";
const REPARTITION: &str = "topology-test-driver-word-counts-repartition";
const CHANGELOG: &str = "topology-test-driver-word-counts-changelog";

/// An OpenTelemetry pipeline with an in-memory exporter, as this thread's
/// subscriber (the driver runs the tasks on the calling thread).
struct Pipeline {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Pipeline {
    fn install() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer().with_tracer(provider.tracer("kafka-streams-test")),
        );
        let guard = tracing::subscriber::set_default(subscriber);
        Pipeline {
            provider,
            exporter,
            _guard: guard,
        }
    }

    fn spans(&self) -> Vec<SpanData> {
        self.provider.force_flush().expect("flush");
        self.exporter.get_finished_spans().expect("spans")
    }
}

/// The finished spans named `name` whose `messaging.destination.name` is `topic`
/// (any topic when `None`).
fn spans_named<'a>(spans: &'a [SpanData], name: &str, topic: Option<&str>) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            topic.is_none_or(|topic| {
                s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "messaging.destination.name" && kv.value.as_str() == topic
                })
            })
        })
        .collect()
}

fn the_span<'a>(spans: &'a [SpanData], name: &str, topic: Option<&str>) -> &'a SpanData {
    match spans_named(spans, name, topic).as_slice() {
        [one] => one,
        other => panic!(
            "expected one {name} span of {topic:?}, found {}: {:?}",
            other.len(),
            spans
                .iter()
                .map(|s| (&s.name, &s.attributes))
                .collect::<Vec<_>>()
        ),
    }
}

fn upstream() -> SpanContext {
    trace_context::parse_traceparent(UPSTREAM, Some(UPSTREAM_STATE)).expect("valid")
}

/// The span context a record's headers carry.
fn carried(headers: &Headers) -> SpanContext {
    trace_context::extract(headers).unwrap_or_else(|| panic!("no traceparent in {headers:?}"))
}

fn config(trace_context: bool) -> StreamsConfig {
    StreamsConfig::new(APP, kafka_client::ClientConfig::new("unused:9092"))
        .trace_context(trace_context)
}

/// The word count of `ktable_aggregations.rs`: `group_by` repartitions through
/// [`REPARTITION`], `count` logs to [`CHANGELOG`].
fn word_count(cache_max_bytes: usize) -> anyhow::Result<TopologyTestDriver> {
    word_count_with(config(true).cache_max_bytes(cache_max_bytes))
}

fn word_count_with(config: StreamsConfig) -> anyhow::Result<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("lines")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_("word-counts"))
        .to_stream()
        .to("word-counts-out");
    Ok(TopologyTestDriver::with_config(builder.build()?, config)?)
}

fn traced_line(value: &str) -> TestRecord<String, String> {
    TestRecord::new("l1".to_string(), value.to_string(), 1_000).with_headers(
        Headers::new()
            .with("tenant", "acme")
            .with(TRACEPARENT, UPSTREAM)
            .with(TRACESTATE, UPSTREAM_STATE),
    )
}

/// One record's trace, hop by hop: upstream → process (lines) → repartition record
/// → process (repartition) → output and changelog records.
#[test]
fn each_hop_continues_the_trace_through_a_repartition() -> R {
    let pipeline = Pipeline::install();
    let driver = word_count(0)?;
    driver
        .create_input_topic::<String, String>("lines")
        .pipe_record(traced_line("hello"))?;

    let spans = pipeline.spans();
    let upstream = upstream();
    let first = the_span(&spans, "kafka_streams.process", Some("lines"));
    let second = the_span(&spans, "kafka_streams.process", Some(REPARTITION));
    assert_eq!(first.span_context.trace_id(), upstream.trace_id());
    assert_eq!(first.parent_span_id, upstream.span_id());
    assert!(first.parent_span_is_remote);
    assert_eq!(second.span_context.trace_id(), upstream.trace_id());
    assert_eq!(second.parent_span_id, first.span_context.span_id());
    assert!(
        first
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "kafka_streams.task_id" && kv.value.as_str() == "0_0"),
        "{:?}",
        first.attributes
    );

    // The repartition record carries the first span, replacing the upstream one.
    let repartitioned = driver
        .create_output_topic::<Vec<u8>, Vec<u8>>(REPARTITION)
        .read_records_to_list()?;
    assert_eq!(repartitioned.len(), 1);
    let headers = &repartitioned[0].headers;
    assert_eq!(carried(headers), first.span_context.clone().into_remote());
    assert_eq!(headers.iter().filter(|h| h.key == TRACEPARENT).count(), 1);
    assert_eq!(headers.last(TRACESTATE), Some(UPSTREAM_STATE.as_bytes()));
    assert_eq!(headers.last("tenant"), Some("acme".as_bytes()));

    // The output and the changelog carry the second.
    let output = driver
        .create_output_topic::<String, i64>("word-counts-out")
        .read_records_to_list()?;
    assert_eq!(output.len(), 1);
    assert_eq!((output[0].key.as_str(), output[0].value), ("hello", 1));
    assert_eq!(
        carried(&output[0].headers),
        second.span_context.clone().into_remote()
    );
    let changelog = driver
        .create_output_topic::<Vec<u8>, Vec<u8>>(CHANGELOG)
        .read_records_to_list()?;
    assert_eq!(changelog.len(), 1);
    assert_eq!(
        carried(&changelog[0].headers),
        second.span_context.clone().into_remote()
    );
    Ok(())
}

trait IntoRemote {
    fn into_remote(self) -> SpanContext;
}

impl IntoRemote for SpanContext {
    /// The context as a header carries it (remote).
    fn into_remote(self) -> SpanContext {
        SpanContext::new(
            self.trace_id(),
            self.span_id(),
            self.trace_flags(),
            true,
            self.trace_state().clone(),
        )
    }
}

#[test]
fn a_record_without_trace_context_starts_a_new_trace() -> R {
    let pipeline = Pipeline::install();
    let driver = word_count(0)?;
    // Inside a span of the test: still a root, the record carries no context.
    tracing::info_span!("test").in_scope(|| {
        driver
            .create_input_topic::<String, String>("lines")
            .pipe_input("l1".to_string(), "hello".to_string())
    })?;

    let spans = pipeline.spans();
    let first = the_span(&spans, "kafka_streams.process", Some("lines"));
    let second = the_span(&spans, "kafka_streams.process", Some(REPARTITION));
    assert_eq!(first.parent_span_id, SpanId::INVALID, "a root");
    let test = the_span(&spans, "test", None);
    assert_ne!(first.span_context.trace_id(), test.span_context.trace_id());
    assert_eq!(second.parent_span_id, first.span_context.span_id());
    assert_eq!(
        second.span_context.trace_id(),
        first.span_context.trace_id()
    );
    let output = driver
        .create_output_topic::<String, i64>("word-counts-out")
        .read_records_to_list()?;
    assert_eq!(
        carried(&output[0].headers).span_id(),
        second.span_context.span_id()
    );
    Ok(())
}

/// No subscriber, or one without OpenTelemetry: the spans have no context, and
/// records keep the headers they inherited, as in Kafka.
#[test]
fn without_opentelemetry_inherited_headers_pass_through() -> R {
    type Written = (Vec<Headers>, Vec<Headers>);
    let run = || -> anyhow::Result<Written> {
        let driver = word_count(0)?;
        driver
            .create_input_topic::<String, String>("lines")
            .pipe_record(traced_line("hello"))?;
        let headers_of = |topic: &str| -> anyhow::Result<Vec<Headers>> {
            Ok(driver
                .create_output_topic::<Vec<u8>, Vec<u8>>(topic)
                .read_records_to_list()?
                .into_iter()
                .map(|r| r.headers)
                .collect())
        };
        Ok((headers_of(REPARTITION)?, headers_of(CHANGELOG)?))
    };
    let check = |(repartitioned, changelog): Written| {
        assert_eq!(repartitioned, vec![traced_line("").headers]);
        assert_eq!(changelog, vec![Headers::new()]);
    };
    check(tracing::subscriber::with_default(
        tracing::subscriber::NoSubscriber::default(),
        run,
    )?);
    check(tracing::subscriber::with_default(
        tracing_subscriber::registry(),
        run,
    )?);
    Ok(())
}

/// Off by default: no spans, and records keep the headers they inherited.
#[test]
fn off_by_default() -> R {
    assert!(
        !StreamsConfig::new(APP, kafka_client::ClientConfig::new("unused:9092"))
            .get_trace_context()
    );
    let pipeline = Pipeline::install();
    let driver = word_count_with(config(false).cache_max_bytes(0))?;
    driver
        .create_input_topic::<String, String>("lines")
        .pipe_record(traced_line("hello"))?;
    let repartitioned = driver
        .create_output_topic::<Vec<u8>, Vec<u8>>(REPARTITION)
        .read_records_to_list()?;
    assert_eq!(repartitioned.len(), 1);
    assert_eq!(repartitioned[0].headers, traced_line("").headers);
    let changelog = driver
        .create_output_topic::<Vec<u8>, Vec<u8>>(CHANGELOG)
        .read_records_to_list()?;
    assert_eq!(changelog.len(), 1);
    assert_eq!(changelog[0].headers, Headers::new());
    assert!(
        pipeline
            .spans()
            .iter()
            .all(|s| !s.name.starts_with("kafka_streams.")),
        "{:?}",
        pipeline.spans()
    );
    Ok(())
}

/// What a cache holds back until the commit goes out in the commit's flush span.
#[test]
fn cached_updates_carry_the_flush_span() -> R {
    let pipeline = Pipeline::install();
    let driver = word_count(10 * 1024 * 1024)?;
    driver
        .create_input_topic::<String, String>("lines")
        .pipe_record(traced_line("hello"))?;

    let spans = pipeline.spans();
    // The driver commits after each piped record: the counting task flushes once.
    let flushes: Vec<_> = spans_named(&spans, "kafka_streams.flush", None)
        .into_iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "kafka_streams.task_id" && kv.value.as_str() == "1_0")
        })
        .collect();
    assert_eq!(flushes.len(), 1, "{spans:?}");
    let flush = flushes[0];
    assert_eq!(flush.parent_span_id, SpanId::INVALID, "a root");
    assert_ne!(flush.span_context.trace_id(), upstream().trace_id());

    let output = driver
        .create_output_topic::<String, i64>("word-counts-out")
        .read_records_to_list()?;
    assert_eq!(output.len(), 1);
    assert_eq!(
        carried(&output[0].headers).span_id(),
        flush.span_context.span_id()
    );
    let changelog = driver
        .create_output_topic::<Vec<u8>, Vec<u8>>(CHANGELOG)
        .read_records_to_list()?;
    assert_eq!(changelog.len(), 1);
    assert_eq!(
        carried(&changelog[0].headers).span_id(),
        flush.span_context.span_id()
    );
    Ok(())
}

/// Emits a tick on every stream-time punctuation, from no input record.
struct Ticker;

impl Processor<String, String, String, String> for Ticker {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        ctx.schedule(Duration::from_secs(10), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
        _record: Record<String, String>,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        _id: PunctuatorId,
        timestamp: i64,
    ) -> Result<(), ProcessorError> {
        ctx.forward(Record::new(
            "tick".to_string(),
            "tock".to_string(),
            timestamp,
        ));
        Ok(())
    }
}

#[test]
fn punctuation_output_carries_the_punctuation_span() -> R {
    let pipeline = Pipeline::install();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("clock")
        .process(|| Ticker)
        .to("ticks");
    let driver = TopologyTestDriver::with_config(builder.build()?, config(true))?;
    driver
        .create_input_topic::<String, String>("clock")
        .pipe_record(traced_line("now"))?;

    let spans = pipeline.spans();
    let punctuate = the_span(&spans, "kafka_streams.punctuate", None);
    assert_eq!(punctuate.parent_span_id, SpanId::INVALID, "a root");
    let process = the_span(&spans, "kafka_streams.process", Some("clock"));
    assert_ne!(
        punctuate.span_context.trace_id(),
        process.span_context.trace_id()
    );
    let ticks = driver
        .create_output_topic::<String, String>("ticks")
        .read_records_to_list()?;
    assert_eq!(ticks.len(), 1);
    assert_eq!(
        carried(&ticks[0].headers),
        punctuate.span_context.clone().into_remote()
    );
    assert_ne!(
        carried(&ticks[0].headers).trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")?
    );
    Ok(())
}
