//! Witness protection (`../shared/cases.md` #2): tombstones make every derived table
//! forget a person.
//!
//! Move-in and move-out events of persons arrive keyed by person id. Derived from
//! them:
//! - `person-current`: each person's latest event (a KTable over the events topic,
//!   in a RocksDB store logged to its changelog);
//! - the current-address stream: the table's updates, mapped to the address, on an
//!   output topic keyed by person;
//! - `residents-per-city`: the table re-grouped by city and counted (KTable
//!   `group_by` with a subtractor, so a person who moves or is deleted leaves their
//!   old city's count).
//!
//! When a protected person's case is closed, a deletion request produces a
//! tombstone (the person's key with a null value). The program then checks that no
//! derived table knows the person any more: the store and its changelog end with a
//! tombstone (so compaction removes the data), the address topic ends with a
//! tombstone, and the city counts no longer include them.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin witness_protection
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::serde::Json;
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
const PER_CITY: &str = "residents-per-city";

fn topology(events: &str, addresses: &str) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    let current = builder.table_with::<String, Event>(events, Materialized::as_(CURRENT));
    current
        .map_values(|m| format!("{}, {}", m.address, m.city))
        .to_stream()
        .to(addresses);
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
        .chain([
            changelog_topic(&app, CURRENT),
            changelog_topic(&app, PER_CITY),
        ])
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
        producer.send(ProducerRecord::new(&events, person.to_string(), value))
    };
    send("anna", event("move-in", "Main St 1", "Springfield"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    send("bert", event("move-in", "Elm St 2", "Springfield"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    send("witness-42", event("move-in", "Oak St 3", "Shelbyville"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    send("witness-42", event("move-in", "Pine St 4", "Springfield"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let current = streams.store::<String, Event>(CURRENT)?;
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
    let before = query_until(Duration::from_secs(60), cities(&[("Springfield", 3)])).await?;
    println!("residents per city: {before:?}");
    println!(
        "witness-42 lives at {:?}",
        current.get(&"witness-42".to_string())?.map(|m| m.0.address)
    );

    // The case is closed: delete every trace of witness-42.
    send("witness-42", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    producer.flush(Duration::from_secs(10)).await?;
    println!("deletion request: tombstone for witness-42 sent to {events}");

    let after = query_until(Duration::from_secs(60), cities(&[("Springfield", 2)])).await?;
    println!("residents per city: {after:?}");
    let gone = query_until(Duration::from_secs(30), || {
        Ok(current
            .get(&"witness-42".to_string())?
            .is_none()
            .then_some(()))
    })
    .await;
    anyhow::ensure!(gone.is_ok(), "person-current still knows witness-42");
    println!("person-current: witness-42 is gone; anna and bert remain");
    anyhow::ensure!(current.all()?.len() == 2, "anna and bert should remain");

    // The derived address topic and the store's changelog end with tombstones.
    let latest =
        latest_per_key::<String, String>(&cluster, &addresses, Duration::from_secs(60), |m| {
            m.get("witness-42") == Some(&None) && m.len() == 3
        })
        .await?;
    println!("{addresses}: latest per person {latest:?}");
    let changelog = changelog_topic(&app, CURRENT);
    let logged =
        latest_per_key::<String, Event>(&cluster, &changelog, Duration::from_secs(60), |m| {
            m.get("witness-42") == Some(&None)
        })
        .await?;
    println!(
        "{changelog}: witness-42 ends with a tombstone, so compaction removes every earlier record ({} keys)",
        logged.len()
    );

    close(streams).await?;
    println!("ok: every derived table forgot witness-42");
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
        input.pipe_input("w".into(), None)?;
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
