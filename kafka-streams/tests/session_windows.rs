//! Session-windowed aggregations through the test driver: reduce, and aggregate with a
//! session merger, per key and session; the session store they keep (queryable,
//! logged to a changelog); the session-windowed keys they write. Kafka Streams' own
//! output for session counts is checked by the conformance test
//! (conformance/scenarios.txt, `session-count`).

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};
use kafka_streams::dsl::{
    Consumed, Materialized, Produced, SessionWindowedSerde, SessionWindows, StreamsBuilder,
    Windowed,
};
use kafka_streams::state::{StateResult, TypedSessionStore};
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

/// A session's key, start, end, value (`None`: a tombstone) and timestamp, as read
/// from an output topic.
type Output<V> = (String, i64, i64, Option<V>, i64);

fn read_sessions<V: 'static>(
    driver: &TopologyTestDriver,
    topic: &str,
    value_serde: impl kafka_client::serde::Serde<V> + 'static,
) -> anyhow::Result<Vec<Output<V>>> {
    let out = driver.create_output_topic_with::<Windowed<String>, Option<V>>(
        topic,
        SessionWindowedSerde::new(StringSerde),
        OptionSerde(value_serde),
    );
    Ok(out
        .read_records_to_list()?
        .into_iter()
        .map(|r| {
            let window = r.key.window;
            (
                r.key.key,
                window.start(),
                window.end(),
                r.value,
                r.timestamp,
            )
        })
        .collect())
}

fn session<V>(key: &str, start: i64, end: i64, value: Option<V>, timestamp: i64) -> Output<V> {
    (key.to_owned(), start, end, value, timestamp)
}

/// `(key, start, end, value)` of every session of `key` in the store.
type Stored = Vec<(String, i64, i64, String)>;

fn stored(driver: &TopologyTestDriver, key: &str) -> anyhow::Result<Stored> {
    let sessions = driver.with_state_store::<TypedSessionStore<String, String>, _>(
        "trail-per-session",
        |store| -> StateResult<Stored> { store.fetch(&key.to_owned())?.collect() },
    );
    Ok(sessions
        .transpose()?
        .expect("the store trail-per-session exists"))
}

#[test]
fn reduce_and_aggregate_merge_sessions() -> R {
    let builder = StreamsBuilder::new();
    let clicks = builder
        .stream_with::<String, i64>("clicks", Consumed::with(StringSerde, BigEndian))
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_millis(100),
            Duration::from_millis(100),
        )?);
    // Without record caches: every update and removal goes downstream and to the
    // changelog at once, and reads show the store's own expiry (a cache, as Kafka's,
    // keeps flushed sessions readable until evicted).
    clicks
        .reduce_with(
            |a, b| a.max(*b),
            Materialized::as_("max-per-session").with_caching_disabled(),
        )
        .to_stream()
        .to_with(
            "max",
            Produced::as_("max-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    // The trail of values per session; merged sessions are joined with `|`, so the
    // output shows the merger at work (Kafka starts it from the initializer).
    clicks
        .aggregate_with(
            String::new,
            |_, v, trail: String| format!("{trail}{v};"),
            |_, merged: String, session: &String| {
                if merged.is_empty() {
                    session.clone()
                } else {
                    format!("{merged}|{session}")
                }
            },
            Materialized::as_("trail-per-session")
                .with_value_serde(Arc::new(StringSerde))
                .with_caching_disabled(),
        )
        .to_stream()
        .to_with(
            "trail",
            Produced::as_("trail-sink").with_value_serializer(OptionSerde(StringSerde)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic_with::<String, i64>("clicks", StringSerde, BigEndian);
    for (user, value, at) in [
        ("u1", 5, 0),
        ("u1", 3, 150),
        // Within the gap of both sessions of u1: merges them into [0, 150].
        ("u1", 7, 80),
        ("u2", 1, 90),
        // Out of order, within the grace period: extends u2's session to [10, 90].
        ("u2", 2, 10),
    ] {
        input.pipe_input_at(user.to_owned(), value, at)?;
    }

    // The store holds the merged sessions only, and answers session queries.
    assert_eq!(
        stored(&driver, "u1")?,
        vec![("u1".to_owned(), 0, 150, "5;|3;7;".to_owned())]
    );
    let queried = driver.with_state_store::<TypedSessionStore<String, String>, _>(
        "trail-per-session",
        |store| -> StateResult<_> {
            let u1 = "u1".to_owned();
            let found: Stored = store
                .find_sessions(&"u2".to_owned(), 50, 60)?
                .collect::<StateResult<_>>()?;
            Ok((
                found,
                store.find_sessions(&u1, 151, 1_000)?.count(),
                store.fetch_session(&u1, 0, 150)?,
                store.fetch_session(&u1, 0, 0)?,
            ))
        },
    );
    let (found, none_after, whole, merged_away) = queried
        .transpose()?
        .expect("the store trail-per-session exists");
    assert_eq!(found, vec![("u2".to_owned(), 10, 90, "1;2;".to_owned())]);
    assert_eq!(none_after, 0);
    assert_eq!(whole.as_deref(), Some("5;|3;7;"));
    assert_eq!(merged_away, None);

    for (user, value, at) in [
        // Stream time 400: sessions ending before 400 - gap - grace = 200 are closed.
        ("u1", 4, 400),
        // Its session [20, 20] ends before 200: dropped.
        ("u3", 9, 20),
        // Within the gap of u2's [10, 90], which the store no longer returns (it
        // keeps sessions ending after 400 - retention, gap plus grace): a session
        // [150, 150] of its own, which ends before 200: dropped.
        ("u2", 6, 150),
    ] {
        input.pipe_input_at(user.to_owned(), value, at)?;
    }
    // Two late records, dropped by each of the two aggregations (Kafka's
    // dropped-records).
    assert_eq!(driver.metrics().skipped_records, 4);

    assert_eq!(
        read_sessions::<i64>(&driver, "max", BigEndian)?,
        vec![
            session("u1", 0, 0, Some(5), 0),
            session("u1", 150, 150, Some(3), 150),
            session("u1", 0, 0, None, 0),
            session("u1", 150, 150, None, 150),
            session("u1", 0, 150, Some(7), 150),
            session("u2", 90, 90, Some(1), 90),
            session("u2", 90, 90, None, 90),
            session("u2", 10, 90, Some(2), 90),
            session("u1", 400, 400, Some(4), 400),
        ]
    );
    let trail = |v: &str| Some(v.to_owned());
    assert_eq!(
        read_sessions(&driver, "trail", StringSerde)?,
        vec![
            session("u1", 0, 0, trail("5;"), 0),
            session("u1", 150, 150, trail("3;"), 150),
            session("u1", 0, 0, None, 0),
            session("u1", 150, 150, None, 150),
            session("u1", 0, 150, trail("5;|3;7;"), 150),
            session("u2", 90, 90, trail("1;"), 90),
            session("u2", 90, 90, None, 90),
            session("u2", 10, 90, trail("1;2;"), 90),
            session("u1", 400, 400, trail("4;"), 400),
        ]
    );
    // Sessions that ended before 400 - retention have expired from the store.
    assert_eq!(
        stored(&driver, "u1")?,
        vec![("u1".to_owned(), 400, 400, "4;".to_owned())]
    );
    assert!(stored(&driver, "u2")?.is_empty());
    assert!(stored(&driver, "u3")?.is_empty());

    // Every put and every removal went to the changelog: 6 puts, 3 removals.
    let produced = driver.produced_topics();
    assert_eq!(
        produced.get("topology-test-driver-trail-per-session-changelog"),
        Some(&9),
        "{produced:?}"
    );
    Ok(())
}

#[test]
fn session_count_names_its_nodes_and_store_as_kafka_does() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("visits")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(300),
            Duration::from_secs(60),
        )?)
        .count();
    let description = builder.build()?.describe().to_string();
    assert!(
        description.contains(
            "Processor: KSTREAM-AGGREGATE-0000000003 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000002])"
        ),
        "{description}"
    );
    Ok(())
}

#[test]
fn retention_shorter_than_gap_plus_grace_fails_the_build() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("visits")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(300),
            Duration::from_secs(60),
        )?)
        .count_with(
            Materialized::as_("visits-per-session").with_retention(Duration::from_secs(359)),
        );
    let Err(err) = builder.build() else {
        anyhow::bail!("a retention below gap plus grace was accepted");
    };
    let message = err.to_string();
    assert!(
        message.contains("visits-per-session")
            && message.contains("gap=[300000], grace=[60000], retention=[359000]"),
        "{message}"
    );

    // Exactly gap plus grace (the default) is fine.
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("visits")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(300),
            Duration::from_secs(60),
        )?)
        .count_with(
            Materialized::as_("visits-per-session").with_retention(Duration::from_secs(360)),
        );
    builder.build()?;
    Ok(())
}

#[test]
fn sessions_of_a_changed_key_go_through_a_repartition_topic() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("badge-swipes", Consumed::with(StringSerde, StringSerde))
        // Swipes are keyed by door; sessions are per person (the value).
        .select_key(|_door, person: &String| person.clone())
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::from_secs(60),
        )?)
        .count_with(Materialized::as_("visits"))
        .to_stream()
        .to_with(
            "visits-per-person",
            Produced::as_("visits-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let topology = builder.build()?;
    let internal: Vec<String> = topology.internal_topics().map(|t| t.name.clone()).collect();
    assert_eq!(internal, vec!["visits-repartition".to_owned()]);
    let driver = TopologyTestDriver::new(topology)?;
    let input =
        driver.create_input_topic_with::<String, String>("badge-swipes", StringSerde, StringSerde);
    for (door, person, at) in [
        ("front", "ann", 0),
        ("lab", "bob", 10_000),
        ("lab", "ann", 50_000),
    ] {
        input.pipe_input_at(door.to_owned(), person.to_owned(), at)?;
    }
    assert_eq!(
        read_sessions::<i64>(&driver, "visits-per-person", BigEndian)?,
        vec![
            session("ann", 0, 0, Some(1), 0),
            session("bob", 10_000, 10_000, Some(1), 10_000),
            session("ann", 0, 0, None, 0),
            session("ann", 0, 50_000, Some(2), 50_000),
        ]
    );
    Ok(())
}
