//! The admin client: topics, topic configs, partitions, consumer groups, group
//! offsets and lag, and offset resets — the operator recipes of `kafka-topics`
//! and `kafka-consumer-groups`, one async call each.
//!
//! Every call that blocks inside librdkafka (metadata, group listing, committed
//! offsets, watermarks, offsets for times, commits) runs on tokio's blocking pool.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kafka_client::admin::AdminError> {
//! use kafka_client::admin::{AdminClient, NewTopic, ResetScope, ResetTarget};
//! use kafka_client::ClientConfig;
//!
//! let admin = AdminClient::new(&ClientConfig::new("localhost:9092"))?;
//! // kafka-topics --create --topic plant-state --partitions 3 --config cleanup.policy=compact
//! admin
//!     .create_topic(NewTopic::new("plant-state", 3).config("cleanup.policy", "compact"))
//!     .await?;
//! // kafka-consumer-groups --describe --group readers
//! let lag = admin.group_lag("readers").await?;
//! println!("total lag {}", lag.total());
//! // kafka-consumer-groups --reset-offsets --group readers --topic plant01:0 --shift-by 1 --execute
//! let scope: ResetScope = "plant01:0".parse()?;
//! let plan = admin
//!     .reset_group_offsets("readers", &[scope], ResetTarget::ShiftBy(1))
//!     .await?;
//! println!("{plan}");
//! # Ok(()) }
//! ```
//!
//! Group offsets are read with an OffsetFetch for every partition of every topic in
//! the cluster (librdkafka's safe API has no "all offsets of a group" call); pass
//! explicit topics to [`AdminClient::group_offsets_for_topics`] on large clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient as RdAdminClient, AdminOptions, ConfigSource as RdConfigSource, NewPartitions,
    NewTopic as RdNewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset as RdOffset, TopicPartitionList};

use crate::config::ClientConfig;
use crate::context::LoggingContext;
use crate::error::Error;
use crate::record::TopicPartition;

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Group states in which Kafka accepts offset changes from outside the group.
const INACTIVE_GROUP_STATES: &[&str] = &["Empty", "Dead", ""];

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A client-level failure (configuration, transport, timeouts).
    #[error(transparent)]
    Client(#[from] Error),
    /// The broker refused an operation on a topic.
    #[error("{operation} for topic {topic} failed: {code}")]
    Topic {
        /// What was being done, e.g. "create topic".
        operation: &'static str,
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// The broker refused an operation on a consumer group.
    #[error("{operation} for group {group} failed: {code}")]
    Group {
        /// What was being done, e.g. "delete group".
        operation: &'static str,
        /// The group.
        group: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// No broker could be reached with this configuration.
    #[error("cannot connect to {servers}: {reason}")]
    Connection {
        /// `bootstrap.servers`.
        servers: String,
        /// librdkafka's explanation, e.g. "SASL authentication error: ..." or
        /// "SSL handshake failed: ...".
        reason: String,
    },
    /// The topic does not exist.
    #[error("topic {topic} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The partition does not exist.
    #[error("partition {partition} does not exist (topic {topic} has {partitions} partitions)")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The requested partition.
        partition: i32,
        /// How many partitions the topic has.
        partitions: usize,
    },
    /// The group has active members, so its offsets cannot be changed from outside
    /// (Kafka accepts offset resets only for inactive groups).
    #[error(
        "cannot reset offsets of group {group}: it is {state} with {} active member(s) [{}]; \
         stop its consumers first (Kafka accepts resets only while the group is inactive)",
        members.len(), members.join(", ")
    )]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// The group's state, e.g. "Stable".
        state: String,
        /// The active members: `member-id (client-id@host)`.
        members: Vec<String>,
    },
    /// `shift-by` needs a committed offset to shift from.
    #[error("cannot shift the offset of group {group} on {partition}: the group has no committed offset there")]
    NoCommittedOffset {
        /// The group.
        group: String,
        /// The partition.
        partition: TopicPartition,
    },
    /// The broker refused to commit the new offset of a partition.
    #[error("committing offset {offset} for group {group} on {partition} failed: {code}")]
    Commit {
        /// The group.
        group: String,
        /// The partition.
        partition: TopicPartition,
        /// The offset that was refused.
        offset: i64,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// A reset scope like `topic:0,1` could not be parsed.
    #[error("invalid reset scope {input:?}: {reason}")]
    InvalidScope {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AdminError {
    /// The broker's error code, when the broker refused the operation.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            AdminError::Client(e) => e.code(),
            AdminError::Topic { code, .. }
            | AdminError::Group { code, .. }
            | AdminError::Commit { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result with [`AdminError`].
pub type AdminResult<T> = std::result::Result<T, AdminError>;

/// A topic to create (`kafka-topics --create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor; `-1` uses the broker's `default.replication.factor`.
    pub replication_factor: i32,
    /// Topic-level configs, e.g. `cleanup.policy=compact`.
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's default replication.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, replicas: i32) -> Self {
        self.replication_factor = replicas;
        self
    }

    /// Sets a topic config (`--config key=value`).
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }

    /// `cleanup.policy=compact`.
    pub fn compacted(self) -> Self {
        self.config("cleanup.policy", "compact")
    }

    /// `retention.ms`.
    pub fn retention(self, retention: Duration) -> Self {
        self.config("retention.ms", retention.as_millis().to_string())
    }

    /// `min.insync.replicas`.
    pub fn min_insync_replicas(self, replicas: i32) -> Self {
        self.config("min.insync.replicas", replicas.to_string())
    }
}

/// One partition of a listed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub id: i32,
    /// Broker id of the leader (`-1` when leaderless).
    pub leader: i32,
    /// Broker ids of the replicas.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
}

/// A topic with its partitions (`kafka-topics --describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// Topic name.
    pub name: String,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicListing {
    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on this topic.
    Topic,
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically for every broker.
    DynamicDefaultBroker,
    /// The broker's static configuration file.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// The broker did not say.
    Unknown,
}

impl From<&RdConfigSource> for ConfigSource {
    fn from(source: &RdConfigSource) -> Self {
        match source {
            RdConfigSource::DynamicTopic => ConfigSource::Topic,
            RdConfigSource::DynamicBroker => ConfigSource::DynamicBroker,
            RdConfigSource::DynamicDefaultBroker => ConfigSource::DynamicDefaultBroker,
            RdConfigSource::StaticBroker => ConfigSource::StaticBroker,
            RdConfigSource::Default => ConfigSource::Default,
            RdConfigSource::Unknown => ConfigSource::Unknown,
        }
    }
}

/// One config entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name, e.g. `retention.ms`.
    pub name: String,
    /// Its value (`None` for sensitive values).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// True when the value is Kafka's default.
    pub is_default: bool,
    /// True when it cannot be altered.
    pub is_read_only: bool,
    /// True when the value is a secret.
    pub is_sensitive: bool,
}

/// The configs of a topic (`kafka-configs --describe --entity-type topics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// The topic.
    pub topic: String,
    /// Every entry the broker returned.
    pub entries: Vec<ConfigEntry>,
}

impl TopicConfig {
    /// The value of config `name`, if the broker returned it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    /// The entries set on the topic itself (not inherited defaults).
    pub fn overrides(&self) -> impl Iterator<Item = &ConfigEntry> {
        self.entries.iter().filter(|e| is_topic_override(e))
    }
}

fn is_topic_override(entry: &ConfigEntry) -> bool {
    !entry.is_default
        && !entry.is_read_only
        && matches!(entry.source, ConfigSource::Topic | ConfigSource::Unknown)
}

/// A consumer group as listed (`kafka-consumer-groups --list --state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group: String,
    /// State: `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Dead`.
    pub state: String,
    /// Protocol type, `consumer` for Kafka consumers.
    pub protocol_type: String,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id assigned by the coordinator.
    pub member_id: String,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host.
    pub client_host: String,
    /// The partitions assigned to it (decoded from the consumer protocol).
    pub assignment: Vec<TopicPartition>,
}

impl fmt::Display for MemberDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}@{})",
            self.member_id, self.client_id, self.client_host
        )
    }
}

/// A consumer group in detail (`kafka-consumer-groups --describe --members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// State (see [`GroupListing::state`]).
    pub state: String,
    /// Protocol type, `consumer` for Kafka consumers.
    pub protocol_type: String,
    /// Assignment strategy in use, e.g. `range`.
    pub protocol: String,
    /// Active members.
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// True when Kafka accepts offset changes from outside the group: no active
    /// members (state `Empty` or `Dead`).
    pub fn is_inactive(&self) -> bool {
        self.members.is_empty() && INACTIVE_GROUP_STATES.contains(&self.state.as_str())
    }
}

/// The committed offset and lag of a group on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionGroupLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset (`None` when nothing is committed).
    pub committed: Option<i64>,
    /// The partition's log-end offset (high watermark).
    pub log_end_offset: i64,
    /// `log_end_offset - committed` (`None` without a committed offset, shown as
    /// `-` by `kafka-consumer-groups`).
    pub lag: Option<i64>,
}

/// A group's lag per partition (`kafka-consumer-groups --describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group.
    pub group: String,
    /// Every partition of every topic the group has offsets for, sorted.
    pub partitions: Vec<PartitionGroupLag>,
}

impl GroupLag {
    /// The sum of the known per-partition lags.
    pub fn total(&self) -> i64 {
        self.partitions.iter().filter_map(|p| p.lag).sum()
    }

    /// The lag on one partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionGroupLag> {
        self.partitions
            .iter()
            .find(|p| p.partition.topic == topic && p.partition.partition == partition)
    }
}

/// Which partitions an offset reset applies to (`--topic t` / `--topic t:0,2` /
/// `--all-topics`). Parse `t` or `t:0,2` with [`str::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetScope {
    /// Every topic the group has committed offsets for (`--all-topics`).
    AllTopics,
    /// Every partition of a topic (`--topic t`).
    Topic(String),
    /// Some partitions of a topic (`--topic t:0,2`).
    Partitions(String, Vec<i32>),
}

impl FromStr for ResetScope {
    type Err = AdminError;

    fn from_str(input: &str) -> AdminResult<Self> {
        let invalid = |reason: &str| AdminError::InvalidScope {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        match input.split_once(':') {
            None if input.is_empty() => Err(invalid("empty topic name")),
            None => Ok(ResetScope::Topic(input.to_owned())),
            Some(("", _)) => Err(invalid("empty topic name")),
            Some((topic, list)) => {
                let partitions = list
                    .split(',')
                    .map(|p| p.trim().parse::<i32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| invalid("partitions must be comma-separated numbers"))?;
                if partitions.iter().any(|p| *p < 0) {
                    return Err(invalid("partitions cannot be negative"));
                }
                Ok(ResetScope::Partitions(topic.to_owned(), partitions))
            }
        }
    }
}

/// Where to move a group's offsets: the options of
/// `kafka-consumer-groups --reset-offsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// `--to-earliest`: the log-start offset.
    ToEarliest,
    /// `--to-latest`: the log-end offset.
    ToLatest,
    /// `--to-offset N`: this offset, clamped to the log's range.
    ToOffset(i64),
    /// `--to-datetime`: the first offset whose timestamp is at or after this time
    /// (milliseconds since the epoch); the log end when there is none.
    ToDatetime(i64),
    /// `--shift-by N`: the committed offset plus `N` (negative moves back),
    /// clamped to the log's range.
    ShiftBy(i64),
}

/// One partition's line in an offset reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset before the reset.
    pub current: Option<i64>,
    /// The offset the group will resume at.
    pub target: i64,
}

/// What an offset reset does (or did): the `--dry-run` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetPlan {
    /// The group.
    pub group: String,
    /// The new offset per partition.
    pub offsets: Vec<PlannedOffset>,
    /// True when the offsets were committed, false for a dry run.
    pub executed: bool,
}

impl ResetPlan {
    /// The planned target of one partition.
    pub fn target(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets
            .iter()
            .find(|o| o.partition.topic == topic && o.partition.partition == partition)
            .map(|o| o.target)
    }
}

impl fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET")?;
        for o in &self.offsets {
            let current = o.current.map_or_else(|| "-".to_owned(), |c| c.to_string());
            writeln!(
                f,
                "{} {} {} {} {}",
                self.group, o.partition.topic, o.partition.partition, current, o.target
            )?;
        }
        Ok(())
    }
}

/// Client context for the admin client and its helper consumers: logs to
/// `tracing`, and remembers the last connection failure librdkafka logged
/// (authentication, TLS handshake, wrong protocol) to explain timeouts.
#[derive(Clone, Default)]
struct AdminContext {
    last_failure: Arc<Mutex<Option<String>>>,
}

impl AdminContext {
    fn last_failure(&self) -> Option<String> {
        match self.last_failure.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ClientContext for AdminContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "FAIL"
            && matches!(
                level,
                RDKafkaLogLevel::Emerg
                    | RDKafkaLogLevel::Alert
                    | RDKafkaLogLevel::Critical
                    | RDKafkaLogLevel::Error
            )
        {
            // "<broker>: SASL authentication error: ..." -> the part after the broker.
            let reason = message
                .split_once(": ")
                .map_or(message, |(_, rest)| rest)
                .to_owned();
            match self.last_failure.lock() {
                Ok(mut guard) => *guard = Some(reason),
                Err(poisoned) => *poisoned.into_inner() = Some(reason),
            }
        }
        LoggingContext.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason)
    }
}

impl ConsumerContext for AdminContext {}

/// Properties that belong to one group member and must not leak into the admin
/// client's helper consumers.
const MEMBER_PROPERTIES: &[&str] = &[
    "group.id",
    "group.instance.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "transactional.id",
];

struct Shared {
    admin: RdAdminClient<AdminContext>,
    /// For watermarks and offsets-for-times, with `read_uncommitted` so the end
    /// offset is the high watermark, as `kafka-consumer-groups` reports it.
    probe: BaseConsumer<AdminContext>,
    config: ClientConfig,
}

/// An asynchronous Kafka admin client. Cheap to clone.
#[derive(Clone)]
pub struct AdminClient {
    shared: Arc<Shared>,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl AdminClient {
    /// An admin client for the cluster of `config` (consumer and producer
    /// properties in it are ignored).
    pub fn new(config: &ClientConfig) -> AdminResult<Self> {
        config.validate()?;
        let mut base = config.clone();
        for key in MEMBER_PROPERTIES {
            base = base.unset(key);
        }
        // Looking a topic up must not create it.
        let base = base.set("allow.auto.create.topics", "false");
        let context = AdminContext::default();
        let admin: RdAdminClient<AdminContext> = base
            .to_rdkafka()
            .create_with_context(context.clone())
            .map_err(|e| Error::kafka("creating the admin client", "", e))?;
        let probe: BaseConsumer<AdminContext> = base
            .clone()
            .set("isolation.level", "read_uncommitted")
            .set("enable.auto.commit", "false")
            .to_rdkafka()
            .create_with_context(context.clone())
            .map_err(|e| Error::kafka("creating the admin client", "", e))?;
        Ok(AdminClient {
            shared: Arc::new(Shared {
                admin,
                probe,
                config: base,
            }),
        })
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .operation_timeout(Some(REQUEST_TIMEOUT))
    }

    /// Runs blocking librdkafka calls on tokio's blocking pool.
    async fn blocking<T, F>(&self, operation: &'static str, call: F) -> AdminResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> AdminResult<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || call(&shared))
            .await
            .map_err(|e| Error::background(operation, e))?
    }

    /// Fetches the cluster's metadata to check that the configuration connects
    /// (address, TLS, SASL); returns the number of brokers. Fails with
    /// [`AdminError::Connection`] carrying librdkafka's reason, e.g. a SASL
    /// authentication or TLS handshake failure.
    pub async fn check_connection(&self, timeout: Duration) -> AdminResult<usize> {
        self.blocking("check connection", move |s| {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                let remaining = deadline.saturating_duration_since(std::time::Instant::now());
                let mut error = match s.probe.fetch_metadata(None, remaining) {
                    Ok(metadata) => return Ok(metadata.brokers().len()),
                    Err(e) => e.to_string(),
                };
                // librdkafka logs why a connection failed (SASL, TLS, protocol)
                // to the client's queue: polling it hands the log lines and
                // errors to AdminContext.
                if let Some(Err(e)) = s.probe.poll(Duration::from_millis(100)) {
                    error = e.to_string();
                }
                let reason = s.probe.context().last_failure();
                if reason.is_some() || std::time::Instant::now() >= deadline {
                    return Err(AdminError::Connection {
                        servers: s
                            .config
                            .get("bootstrap.servers")
                            .unwrap_or_default()
                            .to_owned(),
                        reason: reason.unwrap_or(error),
                    });
                }
            }
        })
        .await
    }

    // ---- topics -------------------------------------------------------------

    /// Creates one topic (`kafka-topics --create`).
    pub async fn create_topic(&self, topic: NewTopic) -> AdminResult<()> {
        self.create_topics(std::slice::from_ref(&topic)).await
    }

    /// Creates topics; fails with the first refusal ([`AdminError::Topic`], e.g.
    /// code `TopicAlreadyExists`).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> AdminResult<()> {
        let configs: Vec<Vec<(&str, &str)>> = topics
            .iter()
            .map(|t| {
                t.configs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            })
            .collect();
        let specs: Vec<RdNewTopic<'_>> = topics
            .iter()
            .zip(&configs)
            .map(|(t, configs)| {
                configs.iter().fold(
                    RdNewTopic::new(
                        &t.name,
                        t.partitions,
                        TopicReplication::Fixed(t.replication_factor),
                    ),
                    |spec, (k, v)| spec.set(k, v),
                )
            })
            .collect();
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let results = self
            .shared
            .admin
            .create_topics(&specs, &Self::options())
            .await
            .map_err(|e| Error::kafka("create topics", format!("{names:?}"), e))?;
        topic_results("create topic", results)
    }

    /// Deletes topics (`kafka-topics --delete`).
    pub async fn delete_topics(&self, topics: &[&str]) -> AdminResult<()> {
        let results = self
            .shared
            .admin
            .delete_topics(topics, &Self::options())
            .await
            .map_err(|e| Error::kafka("delete topics", format!("{topics:?}"), e))?;
        topic_results("delete topic", results)
    }

    /// Every topic with its partitions and their leaders (`kafka-topics --describe`),
    /// sorted by name.
    pub async fn list_topics(&self) -> AdminResult<Vec<TopicListing>> {
        self.blocking("list topics", |s| list_topics(s, None)).await
    }

    /// One topic with its partitions; [`AdminError::UnknownTopic`] if it does not exist.
    pub async fn describe_topic(&self, topic: &str) -> AdminResult<TopicListing> {
        let name = topic.to_owned();
        self.blocking("describe topic", move |s| {
            list_topics(s, Some(&name))?
                .into_iter()
                .find(|t| t.name == name)
                .ok_or(AdminError::UnknownTopic { topic: name })
        })
        .await
    }

    /// The configs of a topic (`kafka-configs --describe`).
    pub async fn describe_topic_config(&self, topic: &str) -> AdminResult<TopicConfig> {
        let specifier = ResourceSpecifier::Topic(topic);
        let results = self
            .shared
            .admin
            .describe_configs([&specifier], &Self::options())
            .await
            .map_err(|e| Error::kafka("describe configs", format!("topic {topic}"), e))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| AdminError::Topic {
                operation: "describe configs",
                topic: topic.to_owned(),
                code: RDKafkaErrorCode::Fail,
            })?
            .map_err(|code| match code {
                RDKafkaErrorCode::UnknownTopicOrPartition => AdminError::UnknownTopic {
                    topic: topic.to_owned(),
                },
                code => AdminError::Topic {
                    operation: "describe configs",
                    topic: topic.to_owned(),
                    code,
                },
            })?;
        Ok(TopicConfig {
            topic: topic.to_owned(),
            entries: resource
                .entries
                .iter()
                .map(|e| ConfigEntry {
                    name: e.name.clone(),
                    value: e.value.clone(),
                    source: ConfigSource::from(&e.source),
                    is_default: e.is_default,
                    is_read_only: e.is_read_only,
                    is_sensitive: e.is_sensitive,
                })
                .collect(),
        })
    }

    /// Changes topic configs: `Some(value)` sets, `None` removes the override
    /// (back to the broker default); other configs of the topic are untouched
    /// (`kafka-configs --alter --add-config/--delete-config`, Kafka's
    /// IncrementalAlterConfigs, brokers 2.3 and later).
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        changes: &[(&str, Option<&str>)],
    ) -> AdminResult<()> {
        let topic = topic.to_owned();
        let changes: Vec<(String, Option<String>)> = changes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect();
        self.blocking("alter configs", move |s| {
            incremental::alter_topic_config(s.admin.inner(), &topic, &changes)
        })
        .await
    }

    /// Grows a topic to `total_partitions` partitions (`kafka-topics --alter
    /// --partitions`).
    pub async fn create_partitions(&self, topic: &str, total_partitions: usize) -> AdminResult<()> {
        let spec = NewPartitions::new(topic, total_partitions);
        let results = self
            .shared
            .admin
            .create_partitions([&spec], &Self::options())
            .await
            .map_err(|e| Error::kafka("create partitions", format!("topic {topic}"), e))?;
        topic_results("create partitions", results)
    }

    /// Deletes the records of each partition before the given offset
    /// (`kafka-delete-records`).
    pub async fn delete_records(&self, before: &[(TopicPartition, i64)]) -> AdminResult<()> {
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in before {
            tpl.add_partition_offset(&tp.topic, tp.partition, RdOffset::Offset(*offset))
                .map_err(|e| Error::kafka("delete records", tp.to_string(), e))?;
        }
        let result = self
            .shared
            .admin
            .delete_records(&tpl, &Self::options())
            .await
            .map_err(|e| Error::kafka("delete records", format!("{before:?}"), e))?;
        for element in result.elements() {
            if let Err(e) = element.error() {
                return Err(AdminError::Topic {
                    operation: "delete records",
                    topic: format!("{} partition {}", element.topic(), element.partition()),
                    code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                });
            }
        }
        Ok(())
    }

    // ---- groups -------------------------------------------------------------

    /// Every consumer group with its state (`kafka-consumer-groups --list --state`).
    pub async fn list_groups(&self) -> AdminResult<Vec<GroupListing>> {
        self.blocking("list groups", |s| {
            let list = s
                .admin
                .inner()
                .fetch_group_list(None, REQUEST_TIMEOUT)
                .map_err(|e| Error::kafka("list groups", "", e))?;
            let mut groups: Vec<GroupListing> = list
                .groups()
                .iter()
                .map(|g| GroupListing {
                    group: g.name().to_owned(),
                    state: g.state().to_owned(),
                    protocol_type: g.protocol_type().to_owned(),
                })
                .collect();
            groups.sort_by(|a, b| a.group.cmp(&b.group));
            Ok(groups)
        })
        .await
    }

    /// A group's state, members and their assignments. A group that does not exist
    /// is reported as `Dead` with no members, as Kafka does.
    pub async fn describe_group(&self, group: &str) -> AdminResult<GroupDescription> {
        let group = group.to_owned();
        self.blocking("describe group", move |s| describe_group(s, &group))
            .await
    }

    /// Deletes an inactive group and its offsets (`kafka-consumer-groups --delete`).
    pub async fn delete_group(&self, group: &str) -> AdminResult<()> {
        let results = self
            .shared
            .admin
            .delete_groups(&[group], &Self::options())
            .await
            .map_err(|e| Error::kafka("delete group", format!("group {group}"), e))?;
        for result in results {
            if let Err((name, code)) = result {
                return Err(AdminError::Group {
                    operation: "delete group",
                    group: name,
                    code,
                });
            }
        }
        Ok(())
    }

    /// The group's committed offsets on every partition of every topic it has
    /// committed to (and of topics assigned to its members), `None` where a
    /// partition has no commit. Does not join the group.
    pub async fn group_offsets(
        &self,
        group: &str,
    ) -> AdminResult<Vec<(TopicPartition, Option<i64>)>> {
        let group = group.to_owned();
        self.blocking("group offsets", move |s| group_offsets(s, &group, None))
            .await
    }

    /// [`AdminClient::group_offsets`] restricted to these topics (one OffsetFetch
    /// for their partitions only).
    pub async fn group_offsets_for_topics(
        &self,
        group: &str,
        topics: &[&str],
    ) -> AdminResult<Vec<(TopicPartition, Option<i64>)>> {
        let group = group.to_owned();
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        self.blocking("group offsets", move |s| {
            group_offsets(s, &group, Some(&topics))
        })
        .await
    }

    /// The lag of any group, per partition and in total: committed offset versus
    /// log-end offset (`kafka-consumer-groups --describe`). Does not join the group.
    pub async fn group_lag(&self, group: &str) -> AdminResult<GroupLag> {
        let group = group.to_owned();
        self.blocking("group lag", move |s| {
            let offsets = group_offsets(s, &group, None)?;
            let mut partitions = Vec::with_capacity(offsets.len());
            for (tp, committed) in offsets {
                let (_, end) = watermarks(s, &tp)?;
                partitions.push(PartitionGroupLag {
                    lag: committed.map(|c| (end - c).max(0)),
                    partition: tp,
                    committed,
                    log_end_offset: end,
                });
            }
            Ok(GroupLag { group, partitions })
        })
        .await
    }

    /// The plan of an offset reset without applying it (`--reset-offsets --dry-run`).
    /// Fails like [`AdminClient::reset_group_offsets`] when the group is active.
    pub async fn plan_group_offsets_reset(
        &self,
        group: &str,
        scopes: &[ResetScope],
        target: ResetTarget,
    ) -> AdminResult<ResetPlan> {
        self.reset(group, scopes, target, false).await
    }

    /// Moves a group's committed offsets (`--reset-offsets --execute`) and returns
    /// what was done. Refuses with [`AdminError::GroupNotEmpty`], naming the members,
    /// while the group has active members, as Kafka does.
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        scopes: &[ResetScope],
        target: ResetTarget,
    ) -> AdminResult<ResetPlan> {
        self.reset(group, scopes, target, true).await
    }

    async fn reset(
        &self,
        group: &str,
        scopes: &[ResetScope],
        target: ResetTarget,
        execute: bool,
    ) -> AdminResult<ResetPlan> {
        let group = group.to_owned();
        let scopes = scopes.to_vec();
        self.blocking("reset group offsets", move |s| {
            let description = describe_group(s, &group)?;
            if !description.is_inactive() {
                return Err(AdminError::GroupNotEmpty {
                    group,
                    state: description.state,
                    members: description.members.iter().map(|m| m.to_string()).collect(),
                });
            }
            let partitions = resolve_scopes(s, &group, &scopes)?;
            let consumer = group_consumer(s, &group)?;
            let committed = committed_offsets(&consumer, &group, &partitions)?;
            let mut offsets = Vec::with_capacity(partitions.len());
            for (tp, current) in committed {
                let (low, high) = watermarks(s, &tp)?;
                let clamp = |o: i64| o.clamp(low, high);
                let target = match target {
                    ResetTarget::ToEarliest => low,
                    ResetTarget::ToLatest => high,
                    ResetTarget::ToOffset(o) => clamp(o),
                    ResetTarget::ShiftBy(n) => match current {
                        Some(c) => clamp(c.saturating_add(n)),
                        None => {
                            return Err(AdminError::NoCommittedOffset {
                                group,
                                partition: tp,
                            })
                        }
                    },
                    ResetTarget::ToDatetime(ts) => offset_for_time(s, &tp, ts)?.unwrap_or(high),
                };
                offsets.push(PlannedOffset {
                    partition: tp,
                    current,
                    target,
                });
            }
            if execute && !offsets.is_empty() {
                commit_plan(&consumer, &group, &offsets)?;
            }
            Ok(ResetPlan {
                group,
                offsets,
                executed: execute,
            })
        })
        .await
    }
}

fn topic_results(
    operation: &'static str,
    results: Vec<rdkafka::admin::TopicResult>,
) -> AdminResult<()> {
    for result in results {
        if let Err((topic, code)) = result {
            return Err(AdminError::Topic {
                operation,
                topic,
                code,
            });
        }
    }
    Ok(())
}

fn list_topics(s: &Shared, topic: Option<&str>) -> AdminResult<Vec<TopicListing>> {
    let metadata = s
        .admin
        .inner()
        .fetch_metadata(topic, REQUEST_TIMEOUT)
        .map_err(|e| Error::kafka("fetch metadata", topic.unwrap_or_default(), e))?;
    let mut topics: Vec<TopicListing> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions()
                .iter()
                .map(|p| PartitionInfo {
                    id: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            TopicListing {
                name: t.name().to_owned(),
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

fn describe_group(s: &Shared, group: &str) -> AdminResult<GroupDescription> {
    let list = s
        .admin
        .inner()
        .fetch_group_list(Some(group), REQUEST_TIMEOUT)
        .map_err(|e| Error::kafka("describe group", format!("group {group}"), e))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(GroupDescription {
            group: group.to_owned(),
            state: "Dead".to_owned(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        });
    };
    let consumer_protocol = info.protocol_type() == "consumer";
    Ok(GroupDescription {
        group: group.to_owned(),
        state: info.state().to_owned(),
        protocol_type: info.protocol_type().to_owned(),
        protocol: info.protocol().to_owned(),
        members: info
            .members()
            .iter()
            .map(|m| MemberDescription {
                member_id: m.id().to_owned(),
                client_id: m.client_id().to_owned(),
                client_host: m.client_host().to_owned(),
                assignment: if consumer_protocol {
                    m.assignment()
                        .and_then(parse_assignment)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect(),
    })
}

/// Decodes a consumer-protocol member assignment:
/// `version:i16 [topic:string [partition:i32]] user_data:bytes`.
fn parse_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, rest) = self.0.split_first_chunk::<N>()?;
            self.0 = rest;
            Some(*head)
        }
        fn string(&mut self) -> Option<String> {
            let len = i16::from_be_bytes(self.take::<2>()?);
            let len = usize::try_from(len).ok()?;
            if self.0.len() < len {
                return None;
            }
            let (s, rest) = self.0.split_at(len);
            self.0 = rest;
            String::from_utf8(s.to_vec()).ok()
        }
    }
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader(bytes);
    let _version = i16::from_be_bytes(r.take::<2>()?);
    let topics = i32::from_be_bytes(r.take::<4>()?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let count = i32::from_be_bytes(r.take::<4>()?);
        for _ in 0..count.max(0) {
            out.push(TopicPartition::new(
                topic.clone(),
                i32::from_be_bytes(r.take::<4>()?),
            ));
        }
    }
    Some(out)
}

/// A consumer with `group.id = group` that never subscribes: it reads and commits
/// the group's offsets without joining it.
fn group_consumer(s: &Shared, group: &str) -> AdminResult<BaseConsumer<AdminContext>> {
    s.config
        .clone()
        .group_id(group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .to_rdkafka()
        .create_with_context(AdminContext::default())
        .map_err(|e| AdminError::from(Error::kafka("creating a group client", group, e)))
}

fn committed_offsets(
    consumer: &BaseConsumer<AdminContext>,
    group: &str,
    partitions: &[TopicPartition],
) -> AdminResult<Vec<(TopicPartition, Option<i64>)>> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    let found = consumer
        .committed_offsets(tpl, REQUEST_TIMEOUT)
        .map_err(|e| Error::kafka("fetch committed offsets", format!("group {group}"), e))?;
    Ok(partitions
        .iter()
        .map(|tp| {
            let offset =
                found
                    .find_partition(&tp.topic, tp.partition)
                    .and_then(|e| match e.offset() {
                        RdOffset::Offset(o) if o >= 0 => Some(o),
                        _ => None,
                    });
            (tp.clone(), offset)
        })
        .collect())
}

fn group_offsets(
    s: &Shared,
    group: &str,
    topics: Option<&[String]>,
) -> AdminResult<Vec<(TopicPartition, Option<i64>)>> {
    let listing = list_topics(s, None)?;
    let candidates: Vec<&TopicListing> = listing
        .iter()
        .filter(|t| match topics {
            Some(wanted) => wanted.contains(&t.name),
            None => !t.name.starts_with("__"),
        })
        .collect();
    if let Some(wanted) = topics {
        if let Some(missing) = wanted
            .iter()
            .find(|w| !listing.iter().any(|t| &t.name == *w))
        {
            return Err(AdminError::UnknownTopic {
                topic: missing.clone(),
            });
        }
    }
    let partitions: Vec<TopicPartition> = candidates
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.clone(), p.id))
        })
        .collect();
    let consumer = group_consumer(s, group)?;
    let committed = committed_offsets(&consumer, group, &partitions)?;
    let assigned: BTreeSet<String> = describe_group(s, group)?
        .members
        .iter()
        .flat_map(|m| m.assignment.iter().map(|tp| tp.topic.clone()))
        .collect();
    let with_commits: BTreeSet<String> = committed
        .iter()
        .filter(|(_, o)| o.is_some())
        .map(|(tp, _)| tp.topic.clone())
        .collect();
    let mut out: Vec<(TopicPartition, Option<i64>)> = committed
        .into_iter()
        .filter(|(tp, _)| {
            topics.is_some() || with_commits.contains(&tp.topic) || assigned.contains(&tp.topic)
        })
        .collect();
    out.sort();
    Ok(out)
}

fn resolve_scopes(
    s: &Shared,
    group: &str,
    scopes: &[ResetScope],
) -> AdminResult<Vec<TopicPartition>> {
    let mut partitions = BTreeSet::new();
    for scope in scopes {
        match scope {
            ResetScope::AllTopics => {
                for (tp, offset) in group_offsets(s, group, None)? {
                    if offset.is_some() {
                        partitions.insert(tp);
                    }
                }
            }
            ResetScope::Topic(topic) => {
                let listing = describe_topic_blocking(s, topic)?;
                partitions.extend(
                    listing
                        .partitions
                        .iter()
                        .map(|p| TopicPartition::new(topic.clone(), p.id)),
                );
            }
            ResetScope::Partitions(topic, wanted) => {
                let listing = describe_topic_blocking(s, topic)?;
                for p in wanted {
                    if !listing.partitions.iter().any(|info| info.id == *p) {
                        return Err(AdminError::UnknownPartition {
                            topic: topic.clone(),
                            partition: *p,
                            partitions: listing.partitions.len(),
                        });
                    }
                    partitions.insert(TopicPartition::new(topic.clone(), *p));
                }
            }
        }
    }
    Ok(partitions.into_iter().collect())
}

fn describe_topic_blocking(s: &Shared, topic: &str) -> AdminResult<TopicListing> {
    list_topics(s, Some(topic))?
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| AdminError::UnknownTopic {
            topic: topic.to_owned(),
        })
}

fn watermarks(s: &Shared, tp: &TopicPartition) -> AdminResult<(i64, i64)> {
    s.probe
        .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
        .map_err(|e| AdminError::from(Error::kafka("fetch watermarks", tp.to_string(), e)))
}

fn offset_for_time(s: &Shared, tp: &TopicPartition, timestamp_ms: i64) -> AdminResult<Option<i64>> {
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(&tp.topic, tp.partition, RdOffset::Offset(timestamp_ms))
        .map_err(|e| Error::kafka("offsets for times", tp.to_string(), e))?;
    let found = s
        .probe
        .offsets_for_times(query, REQUEST_TIMEOUT)
        .map_err(|e| Error::kafka("offsets for times", tp.to_string(), e))?;
    Ok(found
        .find_partition(&tp.topic, tp.partition)
        .and_then(|e| match e.offset() {
            RdOffset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        }))
}

fn commit_plan(
    consumer: &BaseConsumer<AdminContext>,
    group: &str,
    offsets: &[PlannedOffset],
) -> AdminResult<()> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for o in offsets {
        tpl.add_partition_offset(
            &o.partition.topic,
            o.partition.partition,
            RdOffset::Offset(o.target),
        )
        .map_err(|e| Error::kafka("reset group offsets", o.partition.to_string(), e))?;
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => Ok(()),
        Err(e) => {
            let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
            // The whole commit failed: name its first partition.
            let (partition, offset) = offsets
                .first()
                .map(|o| (o.partition.clone(), o.target))
                .unwrap_or_else(|| (TopicPartition::new("", -1), -1));
            Err(AdminError::Commit {
                group: group.to_owned(),
                partition,
                offset,
                code,
            })
        }
    }
}

/// IncrementalAlterConfigs through librdkafka's C API (the `rdkafka` crate only
/// wraps the legacy AlterConfigs, which replaces a topic's whole config).
mod incremental {
    use std::ffi::CString;

    use rdkafka::client::{Client, ClientContext};
    use rdkafka::error::RDKafkaErrorCode;

    use super::{AdminError, AdminResult, REQUEST_TIMEOUT};
    use crate::error::Error;
    use crate::ffi::{self, AlterConfigsError};

    fn cstring(what: &str, value: &str) -> AdminResult<CString> {
        CString::new(value).map_err(|_| {
            AdminError::from(Error::Config(format!(
                "{what} {value:?} contains a NUL byte"
            )))
        })
    }

    fn topic_error(topic: &str, code: RDKafkaErrorCode) -> AdminError {
        AdminError::Topic {
            operation: "alter configs",
            topic: topic.to_owned(),
            code,
        }
    }

    /// Blocking: sends the request and waits for its result.
    pub(super) fn alter_topic_config<C: ClientContext>(
        client: &Client<C>,
        topic: &str,
        changes: &[(String, Option<String>)],
    ) -> AdminResult<()> {
        let name = cstring("topic", topic)?;
        let changes_c = changes
            .iter()
            .map(|(key, value)| {
                let value = value
                    .as_deref()
                    .map(|v| cstring("config value", v))
                    .transpose()?;
                Ok((cstring("config name", key)?, value))
            })
            .collect::<AdminResult<Vec<_>>>()?;
        ffi::incremental_alter_topic_config(client, &name, &changes_c, REQUEST_TIMEOUT).map_err(
            |e| match e {
                AlterConfigsError::Code(code) => topic_error(topic, code),
                AlterConfigsError::InvalidChange { index, message } => {
                    let key = changes.get(index).map_or("", |(key, _)| key.as_str());
                    Error::Config(format!("config {key} of topic {topic}: {message}")).into()
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_like_kafka_consumer_groups() {
        assert_eq!(
            "orders".parse::<ResetScope>().unwrap(),
            ResetScope::Topic("orders".into())
        );
        assert_eq!(
            "orders:0,2".parse::<ResetScope>().unwrap(),
            ResetScope::Partitions("orders".into(), vec![0, 2])
        );
        let err = "orders:x".parse::<ResetScope>().unwrap_err().to_string();
        assert!(err.contains("orders:x"), "{err}");
        assert!(":1".parse::<ResetScope>().is_err());
        assert!("".parse::<ResetScope>().is_err());
        assert!("t:-1".parse::<ResetScope>().is_err());
    }

    #[test]
    fn consumer_protocol_assignment_decodes() {
        // version 1, 2 topics: "a" [0, 3], "bc" [1], user data null (-1)
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        bytes.extend([0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        bytes.extend([0, 2, b'b', b'c', 0, 0, 0, 1, 0, 0, 0, 1]);
        bytes.extend([0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            parse_assignment(&bytes).unwrap(),
            vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 3),
                TopicPartition::new("bc", 1)
            ]
        );
        assert_eq!(parse_assignment(&bytes[..9]), None, "truncated input");
        assert_eq!(parse_assignment(&[]), Some(vec![]));
    }

    #[test]
    fn group_not_empty_error_names_group_and_members() {
        let err = AdminError::GroupNotEmpty {
            group: "readers".into(),
            state: "Stable".into(),
            members: vec!["m-1 (svc@/10.0.0.1)".into()],
        }
        .to_string();
        assert!(err.contains("readers") && err.contains("Stable") && err.contains("m-1"));
    }

    #[test]
    fn config_overrides_skip_defaults_and_read_only() {
        let entry = |name: &str, source, is_default, is_read_only| ConfigEntry {
            name: name.into(),
            value: Some("v".into()),
            source,
            is_default,
            is_read_only,
            is_sensitive: false,
        };
        let config = TopicConfig {
            topic: "t".into(),
            entries: vec![
                entry("cleanup.policy", ConfigSource::Topic, false, false),
                entry("segment.ms", ConfigSource::Default, true, false),
                entry("retention.ms", ConfigSource::StaticBroker, false, false),
                entry("message.format", ConfigSource::Topic, false, true),
            ],
        };
        let names: Vec<&str> = config.overrides().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["cleanup.policy"]);
        assert_eq!(config.get("segment.ms"), Some("v"));
    }

    #[test]
    fn plan_prints_like_the_dry_run() {
        let plan = ResetPlan {
            group: "g".into(),
            offsets: vec![PlannedOffset {
                partition: TopicPartition::new("t", 0),
                current: None,
                target: 5,
            }],
            executed: false,
        };
        assert!(plan.to_string().contains("g t 0 - 5"));
        assert_eq!(plan.target("t", 0), Some(5));
        assert_eq!(plan.target("t", 1), None);
    }
}
