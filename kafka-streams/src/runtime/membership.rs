//! Which instance owns which source partitions, for
//! [`KafkaStreams::query_metadata_for_key`](super::KafkaStreams::query_metadata_for_key)
//! and the placement of standby replicas (see `standby.rs`).
//!
//! Kafka Streams shares each member's endpoint in the group protocol's subscription
//! user data, which librdkafka's built-in assignors cannot carry (and some
//! Kafka-protocol brokers do not report member assignments at all). So each stream
//! thread of an instance with an `application.server` or `num.standby.replicas` > 0
//! publishes a **claim** to the compacted, single-partition topic
//! `<application.id>-streams-metadata` whenever its assignment changes: key
//! `<process id>#<thread>`, value the JSON object `{"host": "<host:port>" | null,
//! "partitions": [[topic, partition], ...]}` (the partitions are empty after a
//! revocation; a tombstone on close). Claims of earlier versions, keyed
//! `<host:port>#<thread>` with the bare list of partitions as value, are read too.
//!
//! Reading the topic in order gives the owners: a claim replaces the earlier claim
//! of the same key, and a partition belongs to the latest claim naming it (a crashed
//! instance's stale claim is overridden by the new owner's).
//!
//! It also gives the **live instances** (process ids) standby placement counts on: an
//! instance is live while one of its claims is not a tombstone and either owns a
//! partition or names none. Every member publishes an empty claim when a rebalance
//! revokes its partitions, before any other member claims them, so only a crashed
//! instance's claim can lose all its partitions to later claims; a crashed instance
//! that owned nothing stays counted until it comes back (with the same process id,
//! kept in its state directory).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_client::{ClientConfig, Headers};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::HostInfo;
use super::record_collector::EncodedRecord;
use crate::error::{Result, StreamsError};

/// The metadata topic of `application_id`.
pub(crate) fn metadata_topic(application_id: &str) -> String {
    format!("{application_id}-streams-metadata")
}

/// The value of a claim record.
#[derive(serde::Serialize, serde::Deserialize)]
struct ClaimValue {
    host: Option<String>,
    partitions: Vec<(String, i32)>,
}

/// Stream thread `thread` of process `process_id` claims `partitions` (`None`: it
/// leaves for good); `host` is the instance's `application.server`, if any.
pub(crate) fn claim_record(
    application_id: &str,
    process_id: &str,
    host: Option<&HostInfo>,
    thread: usize,
    partitions: Option<&[(String, i32)]>,
    timestamp: i64,
) -> Result<EncodedRecord<'static>> {
    let value = partitions
        .map(|partitions| {
            serde_json::to_vec(&ClaimValue {
                host: host.map(ToString::to_string),
                partitions: partitions.to_vec(),
            })
        })
        .transpose()
        .map_err(|e| StreamsError::Internal(format!("encoding a metadata claim: {e}")))?;
    Ok(EncodedRecord {
        topic: Cow::Owned(metadata_topic(application_id)),
        partition: Some(0),
        key: Some(Cow::Owned(format!("{process_id}#{thread}").into_bytes())),
        value: value.map(Cow::Owned),
        timestamp,
        headers: Cow::Owned(Headers::new()),
    })
}

/// One stream thread's latest claim.
#[derive(Debug, Clone)]
struct Claim {
    process: String,
    host: Option<HostInfo>,
    partitions: Vec<(String, i32)>,
}

/// Decodes a claim record (`value` `None`: a tombstone, `Ok(None)`).
fn decode_claim(key: &str, value: Option<&[u8]>) -> std::result::Result<Option<Claim>, String> {
    let Some(value) = value else { return Ok(None) };
    let (process, _) = key
        .rsplit_once('#')
        .ok_or_else(|| "the key has no #<thread>".to_owned())?;
    let (host, partitions) = match serde_json::from_slice::<ClaimValue>(value) {
        Ok(v) => {
            let host = v
                .host
                .map(|h| HostInfo::parse(&h).map_err(|e| format!("host {h}: {e}")))
                .transpose()?;
            (host, v.partitions)
        }
        // An earlier version's claim: keyed by the endpoint, the partitions as value.
        Err(_) => {
            let partitions =
                serde_json::from_slice::<Vec<(String, i32)>>(value).map_err(|e| e.to_string())?;
            let host = HostInfo::parse(process).map_err(|e| format!("host {process}: {e}"))?;
            (Some(host), partitions)
        }
    };
    Ok(Some(Claim {
        process: process.to_owned(),
        host,
        partitions,
    }))
}

/// Applies claims in topic order.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    /// partition → claim key
    owner: BTreeMap<(String, i32), String>,
    /// claim key → its latest claim (tombstoned ones removed)
    claims: BTreeMap<String, Claim>,
}

impl Owners {
    /// Applies the claim record `key` → `value` (`None`: a tombstone). An unreadable
    /// claim is logged and ignored.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let decoded = match decode_claim(key, value) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(key, %error, "unreadable metadata claim ignored");
                return;
            }
        };
        self.owner.retain(|_, k| k != key);
        self.claims.remove(key);
        let Some(claim) = decoded else {
            return;
        };
        for tp in &claim.partitions {
            self.owner.insert(tp.clone(), key.to_owned());
        }
        self.claims.insert(key.to_owned(), claim);
    }

    fn claim_of(&self, topic: &str, partition: i32) -> Option<&Claim> {
        self.owner
            .get(&(topic.to_owned(), partition))
            .and_then(|key| self.claims.get(key))
    }

    /// The `application.server` of the owner of `(topic, partition)`.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<&HostInfo> {
        self.claim_of(topic, partition)
            .and_then(|c| c.host.as_ref())
    }

    /// Every owned partition with its owner's `application.server` (partitions of
    /// owners without one are left out).
    pub fn iter(&self) -> impl Iterator<Item = (&(String, i32), &HostInfo)> {
        self.owner.iter().filter_map(|(tp, key)| {
            self.claims
                .get(key)
                .and_then(|c| c.host.as_ref())
                .map(|host| (tp, host))
        })
    }

    /// Every owned partition with its owner's process id.
    pub fn processes(&self) -> impl Iterator<Item = (&(String, i32), &str)> {
        self.owner
            .iter()
            .filter_map(|(tp, key)| self.claims.get(key).map(|c| (tp, c.process.as_str())))
    }

    /// The live instances' process ids (see the module's documentation).
    pub fn live_processes(&self) -> BTreeSet<String> {
        let owning: BTreeSet<&str> = self.owner.values().map(String::as_str).collect();
        self.claims
            .iter()
            .filter(|(key, c)| c.partitions.is_empty() || owning.contains(key.as_str()))
            .map(|(_, c)| c.process.clone())
            .collect()
    }

    /// The `application.server` of process `process`, if it published one.
    pub fn host_of_process(&self, process: &str) -> Option<&HostInfo> {
        self.claims
            .values()
            .find(|c| c.process == process && c.host.is_some())
            .and_then(|c| c.host.as_ref())
    }

    fn apply_message(&mut self, m: &BorrowedMessage<'_>) {
        match m.key().map(std::str::from_utf8) {
            Some(Ok(key)) => self.apply(key, m.payload()),
            _ => tracing::warn!(
                offset = m.offset(),
                "metadata claim without a readable key ignored"
            ),
        }
    }
}

/// A consumer of the metadata topic of `application_id`, assigned from its beginning.
fn metadata_consumer(client: &ClientConfig, application_id: &str) -> Result<BaseConsumer> {
    let topic = metadata_topic(application_id);
    let mut config = client.to_rdkafka();
    config
        .set("group.id", format!("{application_id}-metadata-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| StreamsError::kafka("creating the metadata reader", &topic, e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .and_then(|()| consumer.assign(&tpl))
        .map_err(|e| StreamsError::kafka("assigning the metadata topic", &topic, e))?;
    Ok(consumer)
}

/// Reads the metadata topic of `application_id` to its end.
pub(crate) fn read_owners(client: &ClientConfig, application_id: &str) -> Result<Owners> {
    let topic = metadata_topic(application_id);
    let kafka_err = |what: &'static str| {
        let topic = topic.clone();
        move |e| StreamsError::kafka(what, topic, e)
    };
    let consumer = metadata_consumer(client, application_id)?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, timeout)
        .map_err(kafka_err("fetching metadata watermarks"))?;
    let mut owners = Owners::default();
    if high <= low {
        return Ok(owners);
    }
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
        owners.apply_message(&m);
    }
    Ok(owners)
}

/// Follows the metadata topic: its claims as read so far.
pub(crate) struct MembershipTail {
    consumer: BaseConsumer,
    topic: String,
    owners: Owners,
}

impl MembershipTail {
    /// Starts reading the metadata topic of `application_id` from its beginning.
    pub fn new(client: &ClientConfig, application_id: &str) -> Result<Self> {
        Ok(MembershipTail {
            consumer: metadata_consumer(client, application_id)?,
            topic: metadata_topic(application_id),
            owners: Owners::default(),
        })
    }

    /// Applies the claims that arrive within `wait` (and every one already fetched).
    pub fn poll(&mut self, wait: Duration) -> Result<()> {
        let mut timeout = wait;
        while let Some(m) = self.consumer.poll(timeout) {
            let m =
                m.map_err(|e| StreamsError::kafka("reading the metadata topic", &self.topic, e))?;
            self.owners.apply_message(&m);
            timeout = Duration::ZERO;
        }
        Ok(())
    }

    /// The claims read so far.
    pub fn owners(&self) -> &Owners {
        &self.owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Owners {
        fn owner_process_of(&self, topic: &str, partition: i32) -> Option<&str> {
            self.claim_of(topic, partition).map(|c| c.process.as_str())
        }
    }

    /// A claim value of an earlier version: the bare list of partitions.
    fn legacy(list: &[(&str, i32)]) -> Vec<u8> {
        let list: Vec<(String, i32)> = list.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        serde_json::to_vec(&list).unwrap()
    }

    /// The value of a claim as published now.
    fn claim(host: Option<&str>, list: &[(&str, i32)]) -> Vec<u8> {
        let host = host.map(|h| HostInfo::parse(h).unwrap());
        let list: Vec<(String, i32)> = list.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let record = claim_record("app", "p", host.as_ref(), 0, Some(&list), 0).unwrap();
        record.value.unwrap().into_owned()
    }

    #[test]
    fn latest_claim_of_a_partition_wins_and_revocations_release() {
        let mut o = Owners::default();
        o.apply(
            "10.0.0.1:7001#0",
            Some(&legacy(&[("words", 0), ("words", 1)])),
        );
        o.apply("10.0.0.2:7002#0", Some(&legacy(&[("words", 2)])));
        assert_eq!(o.owner_of("words", 1).unwrap().port, 7001);
        // Rebalance: the first revokes, the second claims everything.
        o.apply("10.0.0.1:7001#0", Some(&legacy(&[])));
        assert_eq!(o.owner_of("words", 0), None);
        o.apply(
            "10.0.0.2:7002#0",
            Some(&legacy(&[("words", 0), ("words", 1), ("words", 2)])),
        );
        assert_eq!(o.owner_of("words", 0).unwrap().port, 7002);
        // A crashed instance's stale claim is overridden by the newer one.
        let mut o = Owners::default();
        o.apply("10.0.0.1:7001#0", Some(&legacy(&[("words", 0)])));
        o.apply("10.0.0.2:7002#0", Some(&legacy(&[("words", 0)])));
        assert_eq!(o.owner_of("words", 0).unwrap().port, 7002);
        // A tombstone removes the instance's claims.
        o.apply("10.0.0.2:7002#0", None);
        assert_eq!(o.owner_of("words", 0), None);
    }

    #[test]
    fn claim_records_round_trip() {
        let host = HostInfo::parse("127.0.0.1:7070").unwrap();
        let parts = vec![("words".to_string(), 3)];
        let r = claim_record("app", "proc-a", Some(&host), 1, Some(&parts), 5).unwrap();
        assert_eq!(r.topic, "app-streams-metadata");
        assert_eq!(r.key.as_deref(), Some(&b"proc-a#1"[..]));
        let mut o = Owners::default();
        o.apply("proc-a#1", r.value.as_deref());
        assert_eq!(o.owner_of("words", 3), Some(&host));
        assert_eq!(o.owner_process_of("words", 3), Some("proc-a"));
        assert_eq!(o.host_of_process("proc-a"), Some(&host));
        let gone = claim_record("app", "proc-a", Some(&host), 1, None, 5).unwrap();
        assert!(gone.value.is_none());
        o.apply("proc-a#1", None);
        assert_eq!(o.owner_process_of("words", 3), None);
        // Without an application.server: owned, but not reported with a host.
        o.apply("proc-b#0", Some(&claim(None, &[("words", 3)])));
        assert_eq!(o.owner_process_of("words", 3), Some("proc-b"));
        assert_eq!(o.owner_of("words", 3), None);
        assert_eq!(o.iter().count(), 0);
    }

    #[test]
    fn live_processes_are_those_owning_partitions_or_claiming_none() {
        let mut o = Owners::default();
        o.apply("a#0", Some(&claim(None, &[("words", 0)])));
        o.apply("a#1", Some(&claim(None, &[("words", 1)])));
        o.apply("b#0", Some(&claim(None, &[])));
        o.apply("c#0", Some(&claim(None, &[("words", 2)])));
        let live = |o: &Owners| o.live_processes().into_iter().collect::<Vec<_>>();
        assert_eq!(live(&o), ["a", "b", "c"]);
        // c crashed; b took its partition over: c's claim owns nothing any more.
        o.apply("b#0", Some(&claim(None, &[("words", 2)])));
        assert_eq!(live(&o), ["a", "b"]);
        // a closes (tombstones) one thread: the other still makes it live.
        o.apply("a#0", None);
        assert_eq!(live(&o), ["a", "b"]);
        o.apply("a#1", None);
        assert_eq!(live(&o), ["b"]);
        // Unreadable claims change nothing.
        o.apply("b#0", Some(b"{not json"));
        o.apply("no-thread", Some(&claim(None, &[])));
        assert_eq!(live(&o), ["b"]);
        assert_eq!(o.owner_process_of("words", 2), Some("b"));
    }
}
