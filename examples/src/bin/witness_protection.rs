//! Witness protection (`../shared/cases.md` #2): tombstones make every derived table
//! forget a person.
//!
//! Move-in and move-out events of persons arrive keyed by person id. Derived from
//! them:
//! - `person-current`: each person's latest event (a KTable over the events topic,
//!   in a RocksDB store logged to its changelog);
//! - the current-address stream: the table's updates, mapped to the address, on an
//!   output topic keyed by person;
//! - `person-history`: how many moves each person made (the table's update stream,
//!   grouped by person and aggregated; the aggregate of a tombstone is `None`, which
//!   deletes the row, as an aggregator returning null does in Kafka; `count` itself
//!   never deletes a key);
//! - `residents-per-city`: the table re-grouped by city and counted (KTable
//!   `group_by` with a subtractor, so a person who moves or is deleted leaves their
//!   old city's count).
//!
//! When a protected person's case is closed, a deletion request produces a
//! tombstone (the person's key with a null value). The program then checks that no
//! derived table knows the person any more: interactive queries of both per-person
//! stores answer `None`, their changelogs (`<application.id>-<store>-changelog`) end
//! with a tombstone (so compaction removes the data), the address topic ends with a
//! tombstone, and the city counts no longer include them.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin witness_protection
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::serde::{DefaultSerde, Json};
use kafka_client::{Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, latest_per_key, query_until, run_id};
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};
use kafka_streams::state::changelog_topic;
use serde::{Deserialize, Serialize};

/// A move of a person, as the registry database records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Move {
    /// `move-in` or `move-out`.
    kind: String,
    /// The address moved into or out of.
    address: String,
    /// The city of `address`.
    city: String,
}

type Event = Json<Move>;

const CURRENT: &str = "person-current";
const HISTORY: &str = "person-history";
const PER_CITY: &str = "residents-per-city";
const WITNESS: &str = "witness-42";

fn topology(events: &str, addresses: &str) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    // Caching off: every move reaches the history (a record cache would fold the
    // moves of one commit interval into one update).
    let current = builder
        .table_with::<String, Event>(events, Materialized::as_(CURRENT).with_caching_disabled());
    current
        .map_values(|m| format!("{}, {}", m.address, m.city))
        .to_stream()
        .to(addresses);
    // Moves per person; `None` (the person's tombstone) deletes the row.
    current.to_stream().group_by_key().aggregate_with(
        || None,
        |_, event: &Option<Event>, moves: Option<i64>| {
            event.as_ref().map(|_| moves.unwrap_or(0) + 1)
        },
        Materialized::as_(HISTORY).with_value_serde(Arc::new(Option::<i64>::default_serde())),
    );
    current
        .filter(|_, m| m.kind == "move-in")
        .group_by(|person, m| (m.city.clone(), person.clone()))
        .count_with(Materialized::as_(PER_CITY));
    builder.build()
}

fn event(kind: &str, address: &str, city: &str) -> Option<Event> {
    Some(Json(Move {
        kind: kind.into(),
        address: address.into(),
        city: city.into(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    init_tracing();

    let run = run_id()?;
    let (events, addresses, app) = (
        format!("person-moves-{run}"),
        format!("person-addresses-{run}"),
        format!("witness-protection-{run}"),
    );
    let topology = topology(&events, &addresses)?;
    let internal: Vec<String> = topology
        .internal_topics()
        .map(|t| format!("{app}-{}", t.name))
        .chain([CURRENT, HISTORY, PER_CITY].map(|store| changelog_topic(&app, store)))
        .collect();
    let internal: Vec<(&str, i32)> = internal.iter().map(|t| (t.as_str(), 2)).collect();
    create_topics(&cluster, &[(&events, 2), (&addresses, 2)], &internal).await?;
    let config = cluster.client_config();

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path()),
    )?;
    streams.start()?;

    let producer: Producer<String, Option<Event>> = Producer::new(&config)?;
    let send = |person: &str, value: Option<Event>| {
        let record = ProducerRecord::new(&events, person.to_string(), value);
        async {
            producer
                .send(record)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    };
    send("anna", event("move-in", "Main St 1", "Springfield")).await?;
    send("bert", event("move-in", "Elm St 2", "Springfield")).await?;
    send(WITNESS, event("move-in", "Oak St 3", "Shelbyville")).await?;
    send(WITNESS, event("move-in", "Pine St 4", "Springfield")).await?;
    producer.flush(Duration::from_secs(10)).await?;
    println!("4 moves sent to {events}");

    let current = streams.store::<String, Event>(CURRENT)?;
    let history = streams.store::<String, Option<i64>>(HISTORY)?;
    let per_city = streams.store::<String, i64>(PER_CITY)?;
    let cities = |expected: &[(&str, i64)]| {
        let expected: BTreeMap<String, i64> =
            expected.iter().map(|(c, n)| (c.to_string(), *n)).collect();
        let per_city = per_city.clone();
        move || -> kafka_streams::Result<Option<BTreeMap<String, i64>>> {
            // A city everyone left keeps a 0 row, as in Kafka; only residents count.
            let now: BTreeMap<String, i64> = per_city
                .all()?
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect();
            Ok((now == expected).then_some(now))
        }
    };
    let witness = WITNESS.to_string();
    let moves = query_until(Duration::from_secs(60), || {
        let moves: BTreeMap<String, i64> = history
            .all()?
            .into_iter()
            .filter_map(|(person, n)| Some((person, n?)))
            .collect();
        Ok((moves.get(&witness) == Some(&2) && moves.len() == 3).then_some(moves))
    })
    .await?;
    println!("moves per person (person-history): {moves:?}");
    let before = query_until(Duration::from_secs(60), cities(&[("Springfield", 3)])).await?;
    println!("residents per city: {before:?}");
    let address = current.get(&witness)?.map(|m| m.0.address);
    println!("{WITNESS} lives at {address:?}");
    anyhow::ensure!(
        address.as_deref() == Some("Pine St 4"),
        "{WITNESS} should live at Pine St 4"
    );

    // The case is closed: delete every trace of the witness.
    send(WITNESS, None).await?;
    producer.flush(Duration::from_secs(10)).await?;
    println!("case closed: tombstone for {WITNESS} sent to {events}");

    let after = query_until(Duration::from_secs(60), cities(&[("Springfield", 2)])).await?;
    println!("residents per city: {after:?}");
    query_until(Duration::from_secs(30), || {
        Ok((current.get(&witness)?.is_none() && history.get(&witness)?.is_none()).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("the stores still know {WITNESS}: {e}"))?;
    println!(
        "interactive queries: {CURRENT} get({WITNESS}) = {:?}, {HISTORY} get({WITNESS}) = {:?}",
        current.get(&witness)?.map(|m| m.0.address),
        history.get(&witness)?.flatten()
    );
    let remaining: Vec<String> = current.all()?.into_iter().map(|(p, _)| p).collect();
    anyhow::ensure!(
        remaining == ["anna", "bert"],
        "anna and bert should remain, not {remaining:?}"
    );
    anyhow::ensure!(
        history.all()?.len() == 2,
        "{HISTORY} should keep anna and bert only"
    );
    println!("anna and bert remain in both tables");

    // The derived address topic and the stores' changelogs end with tombstones.
    let latest =
        latest_per_key::<String, String>(&cluster, &addresses, Duration::from_secs(60), |m| {
            m.get(WITNESS) == Some(&None) && m.len() == 3
        })
        .await?;
    println!("{addresses}: latest per person {latest:?}");
    for store in [CURRENT, HISTORY] {
        let changelog = changelog_topic(&app, store);
        // Only whether each key's last record is a tombstone matters here: read the
        // values as raw bytes.
        let logged =
            latest_per_key::<String, Vec<u8>>(&cluster, &changelog, Duration::from_secs(60), |m| {
                m.get(WITNESS) == Some(&None) && m.len() == 3
            })
            .await?;
        let live: Vec<&String> = logged
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .collect();
        println!("{changelog}: {WITNESS} ends with a tombstone (live keys: {live:?})");
    }

    close(streams).await?;
    println!("ok: every derived table forgot {WITNESS}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_streams::test_driver::TopologyTestDriver;

    #[test]
    fn a_tombstone_removes_the_person_from_every_derived_table() -> anyhow::Result<()> {
        let driver = TopologyTestDriver::new(topology("moves", "addresses")?)?;
        let input = driver.create_input_topic::<String, Option<Event>>("moves");
        input.pipe_input("anna".into(), event("move-in", "Main St 1", "Springfield"))?;
        input.pipe_input("w".into(), event("move-in", "Oak St 3", "Springfield"))?;
        input.pipe_input("w".into(), event("move-in", "Elm St 5", "Springfield"))?;
        let history = driver
            .key_value_store::<String, Option<i64>>(HISTORY)
            .ok_or_else(|| anyhow::anyhow!("no store"))?;
        assert_eq!(history.get(&"w".to_string())?, Some(Some(2)));
        input.pipe_input("w".into(), None)?;
        assert_eq!(history.get(&"w".to_string())?, None);
        assert_eq!(history.all()?, vec![("anna".to_string(), Some(1))]);
        let history_log = driver.create_output_topic::<String, Option<i64>>(
            "topology-test-driver-person-history-changelog",
        );
        let last = history_log.read_key_values_to_list()?.pop();
        assert_eq!(last, Some(("w".to_string(), None)));
        let per_city = driver
            .key_value_store::<String, i64>(PER_CITY)
            .ok_or_else(|| anyhow::anyhow!("no store"))?;
        assert_eq!(per_city.all()?, vec![("Springfield".to_string(), 1)]);
        let current = driver
            .key_value_store::<String, Event>(CURRENT)
            .ok_or_else(|| anyhow::anyhow!("no store"))?;
        assert_eq!(current.get(&"w".to_string())?, None);
        let addresses = driver.create_output_topic::<String, Option<String>>("addresses");
        let last = addresses.read_key_values_to_list()?.pop();
        assert_eq!(last, Some(("w".to_string(), None)));
        Ok(())
    }
}
