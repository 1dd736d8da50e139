//! Internal topics and partition counts, settled before the stream threads start
//! (Kafka's `InternalTopicManager` and `CopartitionedTopicsEnforcer`).
//!
//! 1. read the partition counts of the source topics;
//! 2. give each repartition topic its count: the one set with
//!    `Repartitioned::with_number_of_partitions`, else, when a join reads it with
//!    external topics (a co-partition group), their count, else the largest count among
//!    the source topics of the sub-topology that writes it;
//! 3. create missing internal topics as `<application.id>-<name>` (through
//!    [`StreamsConfig::topic_creator`](super::StreamsConfig::topic_creator) if set,
//!    else the admin API), and wait until the cluster shows them;
//! 4. check that every sub-topology's source topics have the same partition count
//!    (tasks are `(sub-topology, partition)`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_client::admin::{AdminClient, AdminError, NewTopic};
use kafka_client::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::topology::Topology;

fn partition_counts(consumer: &BaseConsumer, timeout: Duration) -> Result<BTreeMap<String, i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        match consumer.fetch_metadata(None, timeout) {
            Ok(metadata) => {
                return Ok(metadata
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                    .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
                    .collect())
            }
            // A topic created a moment ago may have no leader yet, and librdkafka fails
            // the whole metadata request for it: ask again until the deadline.
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable,
            )) if Instant::now() < deadline => {
                tracing::debug!(
                    "cluster metadata not settled yet (a new topic without a leader); retrying"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(StreamsError::kafka("fetching cluster metadata", "", e)),
        }
    }
}

struct InternalTopicCreator<'a> {
    client: &'a ClientConfig,
    admin: Option<AdminClient>,
}

impl InternalTopicCreator<'_> {
    /// Creates `topic`; an existing topic is fine.
    fn create(&mut self, topic: NewTopic) -> Result<()> {
        let admin = match &mut self.admin {
            Some(admin) => admin,
            None => self.admin.insert(
                AdminClient::new(self.client)
                    .map_err(|e| admin_error("creating the admin client", &topic.name, e))?,
            ),
        };
        let name = topic.name.clone();
        match futures::executor::block_on(admin.create_topic(topic)) {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(RDKafkaErrorCode::TopicAlreadyExists) => Ok(()),
            Err(e) => Err(admin_error("creating topic", &name, e)),
        }
    }
}

fn admin_error(operation: &str, topic: &str, error: AdminError) -> StreamsError {
    match error {
        AdminError::Topic { code, .. } => {
            StreamsError::kafka(operation, topic, KafkaError::AdminOp(code))
        }
        AdminError::Client(kafka_client::Error::Kafka { source, .. }) => {
            StreamsError::kafka(operation, topic, source)
        }
        AdminError::Client(kafka_client::Error::Config(reason)) => {
            StreamsError::Config(format!("{operation} {topic}: {reason}"))
        }
        other => StreamsError::Topology(format!("{operation} {topic}: {other}")),
    }
}

/// Settles internal topics and checks co-partitioning; returns the partition count
/// of every (resolved) source topic. Blocking: call it off the async executor.
pub(crate) fn prepare_topics(
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<BTreeMap<String, i32>> {
    let app = &config.application_id;
    let consumer: BaseConsumer = config
        .client
        .to_rdkafka()
        .create()
        .map_err(|e| StreamsError::kafka("creating the metadata client", "", e))?;
    let timeout = Duration::from_secs(30);
    let mut counts = partition_counts(&consumer, timeout)?;

    for sub in &topology.subtopologies {
        for t in &sub.source_topics {
            if !topology.internal_topics.contains_key(t) && !counts.contains_key(t) {
                return Err(StreamsError::MissingSourceTopic {
                    topic: t.clone(),
                    subtopology: sub.id,
                });
            }
        }
    }

    // Partition counts of internal topics: explicit, else from upstream, and matching
    // the other inputs of a join.
    let wanted = topology.internal_topic_partitions(&counts);

    // Every topic to have: repartition topics, and the changelog topic of each logged
    // store (`<application.id>-<store>-changelog`, with the topic configs the store
    // asks for, and as many partitions as the sources of the sub-topology that owns
    // the store), except the stores that use their source topic as changelog
    // (`topology.optimization`).
    let mut all: BTreeMap<String, (i32, BTreeMap<String, String>)> = wanted
        .iter()
        .map(|(name, p)| (format!("{app}-{name}"), (*p, BTreeMap::new())))
        .collect();
    for sub in &topology.subtopologies {
        let sources = sub
            .source_topics
            .iter()
            .filter_map(|t| {
                if topology.internal_topics.contains_key(t) {
                    wanted.get(t).copied()
                } else {
                    counts.get(t).copied()
                }
            })
            .max();
        for store in &sub.stores {
            // A source table reusing its input topic has no changelog topic of its own.
            if topology.source_changelog_topic(app, store).is_some() {
                continue;
            }
            let Some(builder) = topology.stores.get(store) else {
                continue;
            };
            if let (Some(topic), Some(partitions)) = (builder.changelog_topic(app), sources) {
                all.insert(topic, (partitions, builder.changelog_topic_configs()));
            }
        }
    }

    if config.publishes_membership() {
        all.insert(
            super::membership::metadata_topic(app),
            (1, crate::state::compacted_topic_configs()),
        );
    }

    let mut creator = InternalTopicCreator {
        client: &config.client,
        admin: None,
    };
    for (topic, (partitions, topic_configs)) in &all {
        match counts.get(topic) {
            Some(existing) if existing == partitions => {}
            Some(existing) => {
                return Err(StreamsError::Topology(format!(
                "internal topic {topic} exists with {existing} partitions, expected {partitions}"
            )))
            }
            None => {
                tracing::info!(%topic, partitions, ?topic_configs, "creating internal topic");
                match &config.topic_creator {
                    Some(create) => create(topic, *partitions, config.replication_factor)?,
                    None => creator.create(
                        topic_configs.iter().fold(
                            NewTopic::new(topic.clone(), *partitions)
                                .replication_factor(config.replication_factor),
                            |new, (key, value)| new.config(key, value),
                        ),
                    )?,
                }
            }
        }
    }

    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<String> = all
            .iter()
            .filter(|(topic, (p, _))| counts.get(*topic) != Some(p))
            .map(|(topic, _)| topic.clone())
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(StreamsError::Topology(format!(
                "internal topics {missing:?} did not appear within {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
        counts = partition_counts(&consumer, timeout)?;
    }

    // Co-partitioning: the topics of each group the topology records have the same
    // partition count.
    for (subtopology, group) in &topology.copartition_groups {
        let topics: Vec<String> = group
            .iter()
            .map(|t| topology.resolve_topic(app, t))
            .collect();
        let found: Vec<i32> = topics
            .iter()
            .map(|t| counts.get(t).copied().unwrap_or(0))
            .collect();
        if found.windows(2).any(|w| w[0] != w[1]) {
            return Err(StreamsError::CoPartitioning {
                subtopology: *subtopology,
                topics,
                counts: found,
            });
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::StreamsBuilder;

    #[test]
    fn a_repartition_before_a_join_is_sized_like_the_table_it_joins() {
        let builder = StreamsBuilder::new();
        let table = builder.table::<String, String>("sensor-units");
        builder
            .stream::<String, String>("readings")
            .select_key(|_, v| v.clone())
            .join_table(&table, |v, unit| format!("{v} {unit}"))
            .to("labelled");
        let topology = builder.build().unwrap();
        let repartitions: Vec<String> =
            topology.internal_topics().map(|t| t.name.clone()).collect();
        assert_eq!(repartitions.len(), 1, "{repartitions:?}");
        let repartition = repartitions[0].as_str();
        assert!(
            repartition.starts_with("KSTREAM-KEY-SELECT-") && repartition.ends_with("-repartition")
        );
        // describe() shows the repartition topic between the key change and the join.
        let described = topology.describe().to_string();
        assert!(
            described.contains(&format!("Sink: {repartition}-sink (topic: {repartition})")),
            "{described}"
        );
        let counts = BTreeMap::from([("readings".to_owned(), 2), ("sensor-units".to_owned(), 6)]);
        let wanted = topology.internal_topic_partitions(&counts);
        assert_eq!(wanted.get(repartition), Some(&6), "{wanted:?}");
        let groups: Vec<&[String]> = topology.copartition_groups().collect();
        assert_eq!(groups.len(), 1);
        assert!(
            groups[0].contains(&repartition.to_owned())
                && groups[0].contains(&"sensor-units".to_owned())
        );

        // Without a join, a repartition is sized from the topics upstream of it.
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("readings")
            .select_key(|_, v| v.clone())
            .group_by_key()
            .count();
        let topology = builder.build().unwrap();
        let wanted = topology.internal_topic_partitions(&counts);
        assert_eq!(wanted.values().collect::<Vec<_>>(), [&2], "{wanted:?}");
    }
}
