//! Which instance (`application.server`) owns which source partitions, for
//! [`KafkaStreams::query_metadata_for_key`](super::KafkaStreams::query_metadata_for_key).
//!
//! Kafka Streams shares each member's endpoint in the group protocol's subscription
//! user data, which librdkafka's built-in assignors cannot carry (and some
//! Kafka-protocol brokers do not report member assignments at all). So each stream
//! thread of an instance with an `application.server` publishes a **claim** to the
//! compacted, single-partition topic `<application.id>-streams-metadata` whenever its
//! assignment changes: key `<host:port>#<thread>`, value the JSON list of its
//! `[topic, partition]`s (empty after a revocation, a tombstone on close).
//!
//! Reading the topic in order gives the owners: a claim replaces the earlier claim
//! of the same key, and a partition belongs to the latest claim naming it (a crashed
//! instance's stale claim is overridden by the new owner's).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_client::{ClientConfig, Headers};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::config::HostInfo;
use super::record_collector::EncodedRecord;
use crate::error::{Result, StreamsError};

/// The metadata topic of `application_id`.
pub(crate) fn metadata_topic(application_id: &str) -> String {
    format!("{application_id}-streams-metadata")
}

/// Stream thread `thread`'s claim on `partitions` (`None`: it leaves for good).
pub(crate) fn claim_record(
    application_id: &str,
    host: &HostInfo,
    thread: usize,
    partitions: Option<&[(String, i32)]>,
    timestamp: i64,
) -> Result<EncodedRecord<'static>> {
    let value = partitions
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|e| StreamsError::Internal(format!("encoding a metadata claim: {e}")))?;
    Ok(EncodedRecord {
        topic: Cow::Owned(metadata_topic(application_id)),
        partition: Some(0),
        key: Some(Cow::Owned(format!("{host}#{thread}").into_bytes())),
        value: value.map(Cow::Owned),
        timestamp,
        headers: Cow::Owned(Headers::new()),
    })
}

/// Applies claims in topic order: `(key, partitions)`, `None` for a tombstone.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// partition → (claim key, host)
    owner: BTreeMap<(String, i32), (String, HostInfo)>,
}

impl Owners {
    pub fn apply(&mut self, key: &str, partitions: Option<Vec<(String, i32)>>) {
        self.owner.retain(|_, (k, _)| k != key);
        let Some(partitions) = partitions else { return };
        let Some(host) = key
            .rsplit_once('#')
            .and_then(|(endpoint, _)| HostInfo::parse(endpoint).ok())
        else {
            tracing::warn!(key, "metadata claim with an unreadable key ignored");
            return;
        };
        for tp in partitions {
            self.owner.insert(tp, (key.to_owned(), host.clone()));
        }
    }

    /// The owner of `(topic, partition)`.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<&HostInfo> {
        self.owner
            .get(&(topic.to_owned(), partition))
            .map(|(_, host)| host)
    }

    /// Every owned partition with its owner.
    pub fn iter(&self) -> impl Iterator<Item = (&(String, i32), &HostInfo)> {
        self.owner.iter().map(|(tp, (_, host))| (tp, host))
    }
}

/// Reads the metadata topic of `application_id` to its end.
pub(crate) fn read_owners(client: &ClientConfig, application_id: &str) -> Result<Owners> {
    let topic = metadata_topic(application_id);
    let kafka_err = |what: &'static str| {
        let topic = topic.clone();
        move |e| StreamsError::kafka(what, topic, e)
    };
    let mut config = client.to_rdkafka();
    config
        .set("group.id", format!("{application_id}-metadata-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config
        .create()
        .map_err(kafka_err("creating the metadata reader"))?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, timeout)
        .map_err(kafka_err("fetching metadata watermarks"))?;
    let mut owners = Owners::default();
    if high <= low {
        return Ok(owners);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .map_err(kafka_err("assigning the metadata topic"))?;
    consumer
        .assign(&tpl)
        .map_err(kafka_err("assigning the metadata topic"))?;
    let deadline = Instant::now() + timeout;
    let mut next = low;
    while next < high {
        if Instant::now() > deadline {
            return Err(StreamsError::IllegalState(format!(
                "reading {topic} stalled at offset {next} (end {high})"
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            if let Ok(pos) = consumer.position() {
                if let Some(Offset::Offset(p)) = pos.elements().first().map(|e| e.offset()) {
                    next = next.max(p);
                }
            }
            continue;
        };
        let m = m.map_err(kafka_err("reading the metadata topic"))?;
        next = m.offset() + 1;
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        let partitions = match m.payload() {
            None => None,
            Some(v) => match serde_json::from_slice::<Vec<(String, i32)>>(v) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(key, offset = m.offset(), error = %e, "unreadable metadata claim ignored");
                    continue;
                }
            },
        };
        owners.apply(key, partitions);
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(list: &[(&str, i32)]) -> Option<Vec<(String, i32)>> {
        Some(list.iter().map(|(t, p)| (t.to_string(), *p)).collect())
    }

    #[test]
    fn latest_claim_of_a_partition_wins_and_revocations_release() {
        let mut o = Owners::default();
        o.apply("10.0.0.1:7001#0", tps(&[("words", 0), ("words", 1)]));
        o.apply("10.0.0.2:7002#0", tps(&[("words", 2)]));
        assert_eq!(o.owner_of("words", 1).unwrap().port, 7001);
        // Rebalance: the first revokes, the second claims everything.
        o.apply("10.0.0.1:7001#0", tps(&[]));
        assert_eq!(o.owner_of("words", 0), None);
        o.apply(
            "10.0.0.2:7002#0",
            tps(&[("words", 0), ("words", 1), ("words", 2)]),
        );
        assert_eq!(o.owner_of("words", 0).unwrap().port, 7002);
        // A crashed instance's stale claim is overridden by the newer one.
        let mut o = Owners::default();
        o.apply("10.0.0.1:7001#0", tps(&[("words", 0)]));
        o.apply("10.0.0.2:7002#0", tps(&[("words", 0)]));
        assert_eq!(o.owner_of("words", 0).unwrap().port, 7002);
        // A tombstone removes the instance's claims.
        o.apply("10.0.0.2:7002#0", None);
        assert_eq!(o.owner_of("words", 0), None);
    }

    #[test]
    fn claim_records_round_trip() {
        let host = HostInfo::parse("127.0.0.1:7070").unwrap();
        let parts = vec![("words".to_string(), 3)];
        let r = claim_record("app", &host, 1, Some(&parts), 5).unwrap();
        assert_eq!(r.topic, "app-streams-metadata");
        assert_eq!(r.key.as_deref(), Some(&b"127.0.0.1:7070#1"[..]));
        let decoded: Vec<(String, i32)> = serde_json::from_slice(&r.value.unwrap()).unwrap();
        assert_eq!(decoded, parts);
        let mut o = Owners::default();
        o.apply("127.0.0.1:7070#1", Some(decoded));
        assert_eq!(o.owner_of("words", 3), Some(&host));
        let gone = claim_record("app", &host, 1, None, 5).unwrap();
        assert!(gone.value.is_none());
    }
}
