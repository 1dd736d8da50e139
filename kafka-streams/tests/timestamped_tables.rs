//! Table and aggregation stores keep a timestamp per row (Kafka's timestamped
//! key-value stores): results computed from stored rows carry Kafka's timestamps, the
//! changelog holds the plain value stamped with the row's timestamp, and queries read
//! plain values.

use kafka_client::serde::StringSerde;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::state::{TimestampedKeyValueStore, ValueAndTimestamp};
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

fn s(x: &str) -> String {
    x.to_owned()
}

/// `groupByKey().count()` over out-of-order records, caching on or off.
fn counts(caching: bool) -> anyhow::Result<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    let materialized = Materialized::as_("counts");
    let materialized = if caching {
        materialized.with_caching_enabled()
    } else {
        materialized.with_caching_disabled()
    };
    builder
        .stream::<String, String>("words")
        .group_by_key()
        .count_with(materialized)
        .to_stream()
        .to("counted");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic_with::<String, String>("words", StringSerde, StringSerde);
    for (word, at) in [("a", 10), ("a", 50), ("a", 20), ("b", 5)] {
        input.pipe_input_at(s(word), s("x"), at)?;
    }
    Ok(driver)
}

#[test]
fn rows_keep_the_later_timestamp_and_the_changelog_carries_it() -> R {
    for caching in [false, true] {
        let driver = counts(caching)?;
        let out = driver.create_output_topic::<String, Option<i64>>("counted");
        let results: Vec<_> = out
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        assert_eq!(
            results,
            vec![
                (s("a"), Some(1), 10),
                (s("a"), Some(2), 50),
                (s("a"), Some(3), 50),
                (s("b"), Some(1), 5),
            ],
            "caching {caching}"
        );
        // Kafka's changelog format: the plain count, the row's timestamp as the
        // record's.
        let changelog =
            driver.create_output_topic::<String, i64>("topology-test-driver-counts-changelog");
        let logged: Vec<_> = changelog
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        assert_eq!(
            logged,
            vec![
                (s("a"), 1, 10),
                (s("a"), 2, 50),
                (s("a"), 3, 50),
                (s("b"), 1, 5)
            ],
            "caching {caching}"
        );
        // Queries read plain values; the store itself keeps the timestamps.
        let store = driver
            .key_value_store::<String, i64>("counts")
            .ok_or_else(|| anyhow::anyhow!("no counts store"))?;
        assert_eq!(store.all()?, vec![(s("a"), 3), (s("b"), 1)]);
        let stamped = driver
            .key_value_store::<String, ValueAndTimestamp<i64>>("counts")
            .ok_or_else(|| anyhow::anyhow!("no timestamped counts store"))?;
        assert_eq!(
            stamped.get(&s("b"))?,
            Some(ValueAndTimestamp {
                value: 1,
                timestamp: 5
            })
        );
        let row = driver
            .with_state_store::<TimestampedKeyValueStore<String, i64>, _>("counts", |store| {
                store.get(&s("a"))
            })
            .transpose()?
            .flatten();
        assert_eq!(
            row,
            Some(ValueAndTimestamp {
                value: 3,
                timestamp: 50
            })
        );
    }
    Ok(())
}
