//! The Processor API, punctuations, time, error handlers and the commit path, through
//! the TopologyTestDriver (which runs the runtime's task code).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_client::{ClientConfig, Headers, TopicPartition};
use kafka_streams::dsl::{Consumed, StreamsBuilder};
use kafka_streams::processor::{
    Cancellable, Processor, ProcessorContext, ProcessorError, PunctuationType, PunctuatorId, Record,
};
use kafka_streams::runtime::handlers::{
    ContinueProductionExceptionHandler, DeadLetterQueueExceptionHandler,
    LogAndContinueExceptionHandler, LogAndContinueProcessingExceptionHandler, DLQ_HEADER_OFFSET,
    DLQ_HEADER_PARTITION, DLQ_HEADER_TOPIC,
};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::state::{StateStore, StoreBuilder};
use kafka_streams::test_driver::{TestRecord, TopologyTestDriver};
use kafka_streams::StreamsError;

type R = anyhow::Result<()>;

fn s(x: &str) -> String {
    x.to_string()
}

/// Routes by value to a named child, annotates with metadata and headers.
struct Router;

impl Processor<String, i64, String, String> for Router {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, i64>,
    ) -> Result<(), ProcessorError> {
        let meta = ctx.record_metadata().cloned().ok_or("no metadata")?;
        let trace = record
            .headers
            .last("trace")
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_default();
        let text = format!(
            "{}@{}/{}/{} trace={trace}",
            record.value, meta.topic, meta.partition, meta.offset
        );
        let out = record.with_value(text);
        if out.key == "all" {
            ctx.forward(out);
            Ok(())
        } else {
            let child = format!("to-{}", out.key);
            ctx.forward_to(&child, out)
        }
    }
}

#[test]
fn custom_processor_forwards_to_all_or_named_child_with_metadata_and_headers() -> R {
    let builder = StreamsBuilder::new();
    let routed = builder
        .stream::<String, i64>("in")
        .process(|| Router)
        .named("router");
    routed.filter(|_, _| true).named("to-a").to("a");
    routed.filter(|_, _| true).named("to-b").to("b");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    let headers = Headers::new().with("trace", "xyz");
    input.pipe_record(TestRecord::new(s("a"), 1, 5).with_headers(headers))?;
    input.pipe_input(s("b"), 2)?;
    input.pipe_input(s("all"), 3)?;
    let a = driver.create_output_topic::<String, String>("a");
    let b = driver.create_output_topic::<String, String>("b");
    assert_eq!(
        a.read_values_to_list()?,
        vec![s("1@in/0/0 trace=xyz"), s("3@in/0/2 trace=")]
    );
    assert_eq!(
        b.read_values_to_list()?,
        vec![s("2@in/0/1 trace="), s("3@in/0/2 trace=")]
    );
    // An unknown child is a processing error naming the children.
    let err = input.pipe_input(s("c"), 4).unwrap_err().to_string();
    assert!(err.contains("router has no child named to-c"), "{err}");
    assert!(err.contains("topic in partition 0 offset 3"), "{err}");
    Ok(())
}

/// Emits (id, timestamp) on every punctuation; cancels the wall-clock one after
/// `cancel_after` firings.
struct Ticker {
    stream: Option<Cancellable>,
    wall: Option<Cancellable>,
    wall_fired: usize,
    cancel_after: usize,
}

impl Processor<String, i64, String, String> for Ticker {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        self.stream = Some(ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime));
        self.wall = Some(ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime));
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
        _record: Record<String, i64>,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<(), ProcessorError> {
        let kind = if Some(id) == self.stream.as_ref().map(Cancellable::id) {
            "stream"
        } else {
            self.wall_fired += 1;
            if self.wall_fired == self.cancel_after {
                if let Some(w) = &self.wall {
                    w.cancel();
                }
            }
            "wall"
        };
        assert!(ctx.record_metadata().is_none());
        ctx.forward(Record::new(s(kind), format!("{timestamp}"), timestamp));
        Ok(())
    }
}

#[test]
fn stream_time_and_wall_clock_punctuations() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .process(|| Ticker {
            stream: None,
            wall: None,
            wall_fired: 0,
            cancel_after: 2,
        })
        .to("ticks");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    let ticks = driver.create_output_topic::<String, String>("ticks");

    // Stream time: fires on the first record, then each time it passes a multiple of
    // 10 ms; records that do not advance past the next boundary fire nothing.
    input.pipe_input_at(s("k"), 0, 3)?;
    assert_eq!(
        ticks.read_key_values_to_list()?,
        vec![(s("stream"), s("3"))]
    );
    input.pipe_input_at(s("k"), 0, 9)?;
    input.pipe_input_at(s("k"), 0, 2)?; // out of order: stream time stays 9
    assert!(ticks.is_empty());
    input.pipe_input_at(s("k"), 0, 10)?;
    assert_eq!(
        ticks.read_key_values_to_list()?,
        vec![(s("stream"), s("10"))]
    );
    input.pipe_input_at(s("k"), 0, 35)?; // skips the missed 20 and 30
    input.pipe_input_at(s("k"), 0, 39)?;
    assert_eq!(
        ticks.read_key_values_to_list()?,
        vec![(s("stream"), s("35"))]
    );
    assert_eq!(driver.stream_time_ms("in"), Some(39));

    // Wall clock: nothing until the mock clock moves.
    assert!(ticks.is_empty());
    driver.advance_wall_clock_time(Duration::from_millis(999))?;
    assert!(ticks.is_empty());
    driver.advance_wall_clock_time(Duration::from_millis(1))?;
    assert_eq!(
        ticks.read_key_values_to_list()?,
        vec![(s("wall"), s("1000"))]
    );
    driver.advance_wall_clock_time(Duration::from_secs(1))?;
    assert_eq!(
        ticks.read_key_values_to_list()?,
        vec![(s("wall"), s("2000"))]
    );
    // Cancelled after two firings.
    driver.advance_wall_clock_time(Duration::from_secs(5))?;
    assert!(ticks.is_empty());
    Ok(())
}

#[test]
fn custom_timestamp_extractor_drives_stream_time() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, i64>(
            "in",
            Consumed::default().with_timestamp_extractor(|_, v, _record_ts, _partition_time| *v),
        )
        .to("out");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_input_at(s("k"), 5_000, 1)?;
    let out = driver.create_output_topic::<String, i64>("out");
    assert_eq!(out.read_record()?.map(|r| r.timestamp), Some(5_000));
    assert_eq!(driver.stream_time_ms("in"), Some(5_000));
    Ok(())
}

fn poison_topology() -> anyhow::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .map_values(|v| v + 1)
        .to("out");
    Ok(builder.build()?)
}

fn config() -> StreamsConfig {
    StreamsConfig::new("app", ClientConfig::new("unused:9092"))
}

#[test]
fn poison_record_log_and_fail_names_topic_partition_offset() -> R {
    let driver = TopologyTestDriver::new(poison_topology()?)?;
    let good = driver.create_input_topic::<String, i64>("in");
    let bad = driver.create_input_topic::<String, String>("in");
    good.pipe_input(s("k"), 1)?;
    let err = bad.pipe_input(s("k"), s("not a long")).unwrap_err();
    assert!(
        matches!(err, StreamsError::Deserialization { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("topic in partition 0 offset 1"), "{text}");
    assert!(text.contains("value"), "{text}");
    Ok(())
}

#[test]
fn poison_record_log_and_continue_is_skipped_and_counted() -> R {
    let driver = TopologyTestDriver::with_config(
        poison_topology()?,
        config().deserialization_exception_handler(LogAndContinueExceptionHandler),
    )?;
    let good = driver.create_input_topic::<String, i64>("in");
    let bad = driver.create_input_topic::<String, String>("in");
    good.pipe_input(s("a"), 1)?;
    bad.pipe_input(s("b"), s("xx"))?;
    good.pipe_input(s("c"), 3)?;
    let out = driver.create_output_topic::<String, i64>("out");
    assert_eq!(
        out.read_key_values_to_list()?,
        vec![(s("a"), 2), (s("c"), 4)]
    );
    let m = driver.metrics();
    assert_eq!(m.skipped_records, 1);
    assert_eq!(m.processed_records, 2);
    // The skipped record is committed past.
    assert_eq!(
        driver
            .committed_offsets()
            .get(&TopicPartition::new("in", 0)),
        Some(&3)
    );
    Ok(())
}

#[test]
fn poison_record_goes_to_dead_letter_topic_with_provenance() -> R {
    let driver = TopologyTestDriver::with_config(
        poison_topology()?,
        config().deserialization_exception_handler(DeadLetterQueueExceptionHandler::new("in-dlq")),
    )?;
    let good = driver.create_input_topic::<String, i64>("in");
    let bad = driver.create_input_topic::<String, String>("in");
    good.pipe_input(s("a"), 1)?;
    bad.pipe_record(
        TestRecord::new(s("b"), s("xx"), 77).with_headers(Headers::new().with("h", "1")),
    )?;
    let dlq = driver.create_output_topic::<String, String>("in-dlq");
    let records = dlq.read_records_to_list()?;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.key.as_str(), r.value.as_str(), r.timestamp),
        ("b", "xx", 77)
    );
    assert_eq!(r.headers.last("h"), Some(&b"1"[..]));
    assert_eq!(r.headers.last(DLQ_HEADER_TOPIC), Some(&b"in"[..]));
    assert_eq!(r.headers.last(DLQ_HEADER_PARTITION), Some(&b"0"[..]));
    assert_eq!(r.headers.last(DLQ_HEADER_OFFSET), Some(&b"1"[..]));
    assert_eq!(driver.metrics().dead_lettered_records, 1);
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("out")
            .read_values_to_list()?,
        vec![2]
    );
    Ok(())
}

fn failing_topology() -> anyhow::Result<kafka_streams::Topology> {
    struct FailOnNegative;
    impl Processor<String, i64> for FailOnNegative {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            record: Record<String, i64>,
        ) -> Result<(), ProcessorError> {
            if record.value < 0 {
                return Err(format!("negative reading {}", record.value).into());
            }
            if record.value == 13 {
                panic!("unlucky");
            }
            ctx.forward(record);
            Ok(())
        }
    }
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .process(|| FailOnNegative)
        .named("checker")
        .to("out");
    Ok(builder.build()?)
}

#[test]
fn processing_errors_fail_with_context_or_continue() -> R {
    let driver = TopologyTestDriver::new(failing_topology()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_input(s("a"), 1)?;
    let err = input.pipe_input(s("b"), -5).unwrap_err().to_string();
    assert!(err.contains("processor checker of task 0_0"), "{err}");
    assert!(err.contains("topic in partition 0 offset 1"), "{err}");
    assert!(err.contains("negative reading -5"), "{err}");

    let driver = TopologyTestDriver::with_config(
        failing_topology()?,
        config().processing_exception_handler(LogAndContinueProcessingExceptionHandler),
    )?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![(s("a"), 1), (s("b"), -5), (s("c"), 13), (s("d"), 4)])?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("out")
            .read_values_to_list()?,
        vec![1, 4]
    );
    assert_eq!(driver.metrics().processing_errors_skipped, 2);
    Ok(())
}

#[test]
fn serialization_errors_go_to_the_production_handler() -> R {
    struct Picky;
    impl kafka_client::serde::Serializer<i64> for Picky {
        fn serialize(
            &self,
            data: &i64,
            ctx: &kafka_client::serde::SerdeContext<'_>,
        ) -> Result<Option<Vec<u8>>, kafka_client::serde::SerdeError> {
            if *data > 100 {
                return Err(kafka_client::serde::SerdeError::custom(format!(
                    "too big for {}",
                    ctx.topic
                )));
            }
            Ok(Some(data.to_be_bytes().to_vec()))
        }
    }
    let topology = || -> anyhow::Result<kafka_streams::Topology> {
        let builder = StreamsBuilder::new();
        builder.stream::<String, i64>("in").to_with(
            "out",
            kafka_streams::dsl::Produced::with(kafka_client::serde::StringSerde, Picky),
        );
        Ok(builder.build()?)
    };
    let driver = TopologyTestDriver::new(topology()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    let err = input.pipe_input(s("k"), 500).unwrap_err().to_string();
    assert!(err.contains("failed to produce to topic out"), "{err}");
    assert!(err.contains("topic in partition 0 offset 0"), "{err}");

    let driver = TopologyTestDriver::with_config(
        topology()?,
        config().production_exception_handler(ContinueProductionExceptionHandler),
    )?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![(s("a"), 500), (s("b"), 5)])?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("out")
            .read_values_to_list()?,
        vec![5]
    );
    assert_eq!(driver.metrics().production_errors_skipped, 1);
    Ok(())
}

/// A store that logs flushes into a shared journal.
struct JournalStore {
    name: String,
    journal: Arc<Mutex<Vec<String>>>,
    puts: Vec<i64>,
}

impl StateStore for JournalStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> kafka_streams::Result<()> {
        self.journal
            .lock()
            .unwrap()
            .push(format!("flush {:?}", self.puts));
        Ok(())
    }
    fn close(&mut self) -> kafka_streams::Result<()> {
        self.journal.lock().unwrap().push("close".into());
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

struct JournalBuilder(Arc<Mutex<Vec<String>>>);

impl StoreBuilder for JournalBuilder {
    fn name(&self) -> &str {
        "journal"
    }
    fn build(
        &self,
        task: kafka_streams::processor::TaskId,
    ) -> kafka_streams::Result<Box<dyn StateStore>> {
        self.0.lock().unwrap().push(format!("build for {task}"));
        Ok(Box::new(JournalStore {
            name: "journal".into(),
            journal: self.0.clone(),
            puts: Vec::new(),
        }))
    }
}

struct Recorder;

impl Processor<String, i64> for Recorder {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<(), ProcessorError> {
        let store = ctx
            .state_store::<JournalStore>("journal")
            .ok_or("journal store not connected")?;
        store.puts.push(record.value);
        ctx.forward(record);
        Ok(())
    }
}

#[test]
fn task_owns_its_stores_which_are_flushed_on_commit_and_closed() -> R {
    let journal = Arc::new(Mutex::new(Vec::new()));
    let builder = StreamsBuilder::new();
    builder.add_state_store(JournalBuilder(journal.clone()));
    builder
        .stream::<String, i64>("in")
        .process_with_stores(|| Recorder, &["journal"])
        .to("out");
    let topology = builder.build()?;
    assert!(topology
        .describe()
        .to_string()
        .contains("Processor: KSTREAM-PROCESSOR-0000000001 (stores: [journal])"));
    assert!(topology.describe().to_dot().contains("shape=cylinder"));
    {
        let driver = TopologyTestDriver::new(topology)?;
        let input = driver.create_input_topic::<String, i64>("in");
        input.pipe_input(s("a"), 1)?;
        input.pipe_input(s("b"), 2)?;
        assert_eq!(
            driver.with_state_store::<JournalStore, _>("journal", |s| s.puts.clone()),
            Some(vec![1, 2])
        );
        assert_eq!(
            driver
                .committed_offsets()
                .get(&TopicPartition::new("in", 0)),
            Some(&2)
        );
    }
    assert_eq!(
        *journal.lock().unwrap(),
        vec!["build for 0_0", "flush [1]", "flush [1, 2]", "close"]
    );
    Ok(())
}
