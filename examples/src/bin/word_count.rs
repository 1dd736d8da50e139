//! Word count, the canonical stream-processing example (`../shared/cases.md` #3).
//!
//! Lines of text in; counts per word out, as a KTable in the RocksDB store
//! `word-counts` (logged to `<application.id>-word-counts-changelog`) and as its
//! changelog stream on the output topic. `group_by(word)` repartitions, so every
//! word is counted by the one task that owns it. The counts are then read back
//! through interactive queries and checked against the output topic's latest value
//! per word.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin word_count
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::{Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, latest_per_key, query_until, run_id};
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};
use kafka_streams::state::changelog_topic;

const STORE: &str = "word-counts";

fn topology(input: &str, output: &str) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(|w| {
                    w.trim_matches(|c: char| !c.is_alphanumeric())
                        .to_lowercase()
                })
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_(STORE))
        .to_stream()
        .to(output);
    builder.build()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    init_tracing();

    let run = run_id()?;
    let (input, output, app) = (
        format!("lines-{run}"),
        format!("word-counts-{run}"),
        format!("word-count-{run}"),
    );
    let topology = topology(&input, &output)?;
    println!("{}", topology.describe());
    let internal: Vec<String> = topology
        .internal_topics()
        .map(|t| format!("{app}-{}", t.name))
        .chain([changelog_topic(&app, STORE)])
        .collect();
    let internal: Vec<(&str, i32)> = internal.iter().map(|t| (t.as_str(), 2)).collect();
    create_topics(&cluster, &[(&input, 2), (&output, 2)], &internal).await?;

    let lines = [
        "The quick brown fox jumps over the lazy dog",
        "the dog barks, the fox runs",
        "Kafka Streams counts the words",
    ];
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        let word = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        *expected.entry(word).or_insert(0) += 1;
    }
    let config = cluster.client_config();
    let producer: Producer<String, String> = Producer::new(&config)?;
    for (i, line) in lines.iter().enumerate() {
        producer
            .send(ProducerRecord::new(
                &input,
                format!("line-{i}"),
                line.to_string(),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(10)).await?;
    println!("produced {} lines to {input}", lines.len());

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path()),
    )?;
    streams.start()?;

    // Interactive queries: the store answers once the counts are in.
    let counts = streams.store::<String, i64>(STORE)?;
    let queried = query_until(Duration::from_secs(60), || {
        let all: BTreeMap<String, i64> = counts.all()?.into_iter().collect();
        Ok((all == expected).then_some(all))
    })
    .await?;
    println!("counts through interactive queries:");
    for (word, n) in &queried {
        println!("  {word:<8} {n}");
    }
    let the = counts.get(&"the".to_string())?;
    println!(
        "  get(\"the\") = {the:?}, approximate entries = {}",
        counts.approximate_num_entries()?
    );
    anyhow::ensure!(
        the == expected.get("the").copied(),
        "get(\"the\") = {the:?}"
    );

    // The output topic (the table's changelog stream) agrees, word by word.
    let latest = latest_per_key::<String, i64>(&cluster, &output, Duration::from_secs(60), |m| {
        m.len() == expected.len() && m.iter().all(|(w, n)| expected.get(w).copied() == *n)
    })
    .await?;
    anyhow::ensure!(
        latest.iter().all(|(w, n)| queried.get(w).copied() == *n),
        "the output topic and the store disagree"
    );
    println!(
        "the output topic {output} holds the same {} counts",
        latest.len()
    );

    close(streams).await?;
    println!("ok: word count matches through queries and the output topic");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_streams::test_driver::TopologyTestDriver;

    #[test]
    fn counts_words_case_and_punctuation_insensitively() -> anyhow::Result<()> {
        let driver = TopologyTestDriver::new(topology("lines", "counts")?)?;
        let input = driver.create_input_topic::<String, String>("lines");
        input.pipe_input("l1".into(), "The fox, the dog.".into())?;
        let store = driver
            .key_value_store::<String, i64>(STORE)
            .ok_or_else(|| anyhow::anyhow!("no store"))?;
        assert_eq!(
            store.all()?,
            vec![
                ("dog".to_string(), 1),
                ("fox".to_string(), 1),
                ("the".to_string(), 2)
            ]
        );
        Ok(())
    }
}
