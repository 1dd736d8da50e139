//! `KTable::suppress` through the test driver: what it emits, that its buffer is
//! changelogged, the typed error of a full strict buffer, and the topology errors.
//! (Record-by-record equality with Kafka Streams is in the conformance test.)

use std::error::Error as StdError;
use std::time::Duration;

use kafka_client::serde::{BigEndian, BytesSerde, OptionSerde, StringSerde};
use kafka_streams::dsl::{
    BufferConfig, Consumed, Materialized, Produced, StreamsBuilder, Suppressed,
    SuppressionBufferFullError, TimeWindowedSerializer, TimeWindows,
};
use kafka_streams::test_driver::TopologyTestDriver;

type R = Result<(), Box<dyn StdError>>;

#[test]
fn final_results_go_out_once_per_window_and_the_buffer_is_changelogged() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("readings", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(5),
        )?)
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("finals"))
        .to_stream()
        .to_with(
            "finals-out",
            Produced::with(
                TimeWindowedSerializer::new(StringSerde),
                OptionSerde(BigEndian),
            ),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input =
        driver.create_input_topic_with::<String, String>("readings", StringSerde, StringSerde);
    for (key, ts) in [("s1", 1), ("s1", 4), ("s2", 9), ("s1", 12), ("s1", 14)] {
        input.pipe_input_at(key.to_owned(), "x".to_owned(), ts)?;
    }
    let output = driver.create_output_topic_with::<Vec<u8>, Option<i64>>(
        "finals-out",
        BytesSerde,
        OptionSerde(BigEndian),
    );
    assert!(
        output.is_empty(),
        "stream time 14 closes no window of size 10, grace 5"
    );
    input.pipe_input_at("s2".to_owned(), "x".to_owned(), 15)?;
    let finals = output.read_records_to_list()?;
    let values: Vec<_> = finals.iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(values, vec![(Some(2), 4), (Some(1), 9)]);
    let changelog = format!("{}-finals-store-changelog", driver.application_id());
    assert!(
        driver.produced_topics().contains_key(&changelog),
        "{:?}",
        driver.produced_topics()
    );
    Ok(())
}

#[test]
fn a_full_strict_buffer_fails_with_a_typed_error_naming_node_and_store() -> R {
    let builder = StreamsBuilder::new();
    builder
        .table_with::<String, String>("plants", Materialized::as_("plants"))
        .suppress(
            Suppressed::until_time_limit(
                Duration::from_secs(60),
                BufferConfig::max_records(1).shut_down_when_full(),
            )
            .with_name("quiet-plants"),
        )
        .to_stream()
        .to("plants-out");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic_with::<String, Option<String>>(
        "plants",
        StringSerde,
        OptionSerde(StringSerde),
    );
    input.pipe_input_at("p1".to_owned(), Some("a".to_owned()), 0)?;
    let err = input
        .pipe_input_at("p2".to_owned(), Some("b".to_owned()), 1)
        .expect_err("a second key overfills a 1-record strict buffer");
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    let mut full = None;
    while let Some(e) = source {
        if let Some(f) = e.downcast_ref::<SuppressionBufferFullError>() {
            full = Some(f.clone());
        }
        source = e.source();
    }
    let full = full.unwrap_or_else(|| panic!("no SuppressionBufferFullError in {err:#}"));
    assert_eq!(full.node, "quiet-plants");
    assert_eq!(full.store, "quiet-plants-store");
    assert_eq!((full.records, full.max_records), (2, 1));
    assert!(full
        .to_string()
        .starts_with("quiet-plants buffer exceeded its max capacity. Currently [2/1] records"));
    Ok(())
}

#[test]
fn a_table_without_serdes_cannot_be_suppressed() -> R {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, String>("plants")
        .map_values(|v| v.len())
        .suppress(Suppressed::until_time_limit(
            Duration::from_secs(1),
            BufferConfig::unbounded(),
        ));
    let err = builder
        .build()
        .err()
        .ok_or("building must fail")?
        .to_string();
    assert!(
        err.contains("KTABLE-SUPPRESS-STATE-STORE-0000000005") && err.contains("serdes"),
        "{err}"
    );
    Ok(())
}

#[test]
fn emit_early_buffers_accept_any_bound_and_strict_ones_are_unbounded_or_shut_down() {
    let eager = BufferConfig::max_bytes(100).with_max_records(3);
    assert_eq!(
        (eager.max_records_limit(), eager.max_bytes_limit()),
        (3, 100)
    );
    let strict = eager.clone().shut_down_when_full();
    assert_eq!(
        (strict.max_records_limit(), strict.max_bytes_limit()),
        (3, 100)
    );
    let unbounded = eager.with_no_bound();
    assert_eq!(unbounded, BufferConfig::unbounded());
    assert_eq!(
        BufferConfig::unbounded()
            .emit_early_when_full()
            .max_records_limit(),
        u64::MAX
    );
}
