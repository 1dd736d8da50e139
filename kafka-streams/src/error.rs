//! The one error type of kafka-streams, with a domain (whose fault) and a retry hint.
//!
//! Every variant that concerns a record names the topic, partition and offset, and every
//! variant that concerns a node of the topology names the node, so that a log line or an
//! `ERROR` state is enough to find the record and the code involved.

use kafka_client::serde::{BoxError, SerdeError};

use crate::common::RecordMetadata;

/// Whose fault an error is (Arroyo's error domains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorDomain {
    /// The application: its topology, configuration, data or processor code.
    User,
    /// Kafka or the network: the broker, a timeout, an authorization failure.
    External,
    /// A bug in kafka-streams itself.
    Internal,
}

fn origin_text(origin: &Option<Box<RecordMetadata>>) -> String {
    match origin {
        Some(o) => o.to_string(),
        None => "a punctuation (no input record)".to_owned(),
    }
}

/// An error of kafka-streams.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The topology is invalid (unknown parent, duplicate name, missing serde...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record's key or value could not be deserialized, and the handler said fail.
    #[error("failed to deserialize the {field} of the record at topic {topic} partition {partition} offset {offset}: {source}")]
    Deserialization {
        /// Topic of the record.
        topic: String,
        /// Partition of the record.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// `key` or `value`.
        field: String,
        /// The serde's error.
        source: SerdeError,
    },
    /// A processor failed and the processing handler said fail.
    #[error("processor {node} of task {task} failed on the record from {}: {source}", origin_text(.origin))]
    Processing {
        /// Name of the failing node.
        node: String,
        /// Task id, `<sub-topology>_<partition>`.
        task: String,
        /// The input record being processed, `None` in a punctuation.
        origin: Option<Box<RecordMetadata>>,
        /// The processor's error.
        source: BoxError,
    },
    /// A record could not be serialized or produced and the production handler said
    /// fail.
    #[error("failed to produce to topic {topic} (from sink {node}) the record derived from {}: {reason}", origin_text(.origin))]
    Production {
        /// Destination topic.
        topic: String,
        /// Sink node name (empty for dead-letter records).
        node: String,
        /// The input record it derives from, when known.
        origin: Option<Box<RecordMetadata>>,
        /// What went wrong.
        reason: String,
        /// Whether retrying may succeed.
        retriable: bool,
    },
    /// Source topics that must be co-partitioned have different partition counts.
    #[error("co-partitioning violated in sub-topology {subtopology}: topics {topics:?} must have the same number of partitions, found {counts:?}")]
    CoPartitioning {
        /// The sub-topology.
        subtopology: usize,
        /// Topics that must be co-partitioned.
        topics: Vec<String>,
        /// Their partition counts, in the same order.
        counts: Vec<i32>,
    },
    /// A source topic does not exist.
    #[error("source topic {topic} does not exist (needed by sub-topology {subtopology})")]
    MissingSourceTopic {
        /// The topic.
        topic: String,
        /// The sub-topology reading it.
        subtopology: usize,
    },
    /// A Kafka client call failed.
    #[error("kafka error while {operation}{}: {source}", if .target.is_empty() { String::new() } else { format!(" ({})", .target) })]
    Kafka {
        /// What was being done ("committing offsets", "creating topic").
        operation: String,
        /// What it was done to (topic, partitions), may be empty.
        target: String,
        /// The librdkafka error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// Under exactly-once, a call of a stream thread's transactional producer failed
    /// (Kafka's `TaskMigratedException` when `fenced`, `TaskCorruptedException`
    /// otherwise). The thread aborts the transaction, gives up its tasks (their stores
    /// are rebuilt from the changelogs) and rejoins the group; it does not fail
    /// (unless another live instance has its identity: see
    /// [`StreamsError::DuplicateProcessId`]).
    #[error("transaction of producer {transactional_id} failed while {operation}{}: {source}", if *.fenced { " (fenced by a newer producer with the same transactional.id, or fatal)" } else { "" })]
    Transaction {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// What was being done ("committing the transaction").
        operation: String,
        /// Whether the producer is unusable: fenced, or a fatal error.
        fenced: bool,
        /// The librdkafka error.
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A state store problem.
    #[error("state store {store}: {reason}")]
    State {
        /// Store name.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// An interactive query cannot be served (Kafka's `InvalidStateStoreException`
    /// family); see [`InvalidStoreReason`].
    #[error("state store {store} cannot be queried: {reason}")]
    InvalidStateStore {
        /// Store name.
        store: String,
        /// Why.
        reason: InvalidStoreReason,
    },
    /// Another instance holds the application's state directory (Kafka's
    /// "multiple instances of Kafka Streams are running in the same state directory"):
    /// each instance needs its own `state.dir`.
    #[error("the state directory {} is locked by another instance of the application (in this process or another); each instance needs its own state.dir", .directory.display())]
    StateDirectoryLocked {
        /// The locked directory, `<state.dir>/<application.id>`.
        directory: std::path::PathBuf,
    },
    /// Under exactly-once, a stream thread's producer was fenced by another live
    /// instance with the same process id, hence the same `transactional.id`s: its
    /// state directory (which keeps the process id) was copied from this one. The
    /// fenced, older instance gives up its tasks and fails; the newer one carries on.
    #[error("stream thread {thread} was fenced by another live instance with the same process id {process_id} (transactional.id {transactional_id}; its consumer {client_id} is in the group): the instances share an identity, e.g. a copied state directory, so this older one stops; give each instance its own state.dir")]
    DuplicateProcessId {
        /// The fenced stream thread.
        thread: String,
        /// The process id both instances have.
        process_id: String,
        /// The `transactional.id` both instances' threads have.
        transactional_id: String,
        /// The `client.id` of the group members sharing the identity.
        client_id: String,
    },
    /// An operation that is not valid in the current state (e.g. starting twice).
    #[error("illegal state: {0}")]
    IllegalState(String),
    /// A stream thread panicked.
    #[error("stream thread {thread} panicked: {message}")]
    ThreadPanic {
        /// Thread name.
        thread: String,
        /// Panic message.
        message: String,
    },
    /// A bug in kafka-streams (should never happen).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why an interactive query failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidStoreReason {
    /// The topology has no store of that name (Kafka's `UnknownStateStoreException`).
    Unknown,
    /// The store holds other key or value types than the ones asked for.
    WrongType {
        /// The type asked for.
        requested: String,
    },
    /// The store is restoring from its changelog, or its tasks are moving between
    /// instances during a rebalance (Kafka's `StateStoreMigratedException`): retry
    /// later, possibly on another instance (see
    /// [`KafkaStreams::query_metadata_for_key`](crate::runtime::KafkaStreams::query_metadata_for_key)).
    Migrating(String),
    /// The client is not running (Kafka's `StateStoreNotAvailableException`).
    NotAvailable(String),
}

impl std::fmt::Display for InvalidStoreReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidStoreReason::Unknown => f.write_str("the topology has no store of that name"),
            InvalidStoreReason::WrongType { requested } => {
                write!(f, "the store does not hold {requested}")
            }
            InvalidStoreReason::Migrating(detail) => write!(
                f,
                "the store may have migrated to another instance or is restoring ({detail}); retry later"
            ),
            InvalidStoreReason::NotAvailable(detail) => write!(f, "not available: {detail}"),
        }
    }
}

impl StreamsError {
    /// Whether this is the "store migrating or restoring" error of an interactive
    /// query, which goes away by itself.
    pub fn is_store_migrating(&self) -> bool {
        matches!(
            self,
            StreamsError::InvalidStateStore {
                reason: InvalidStoreReason::Migrating(_),
                ..
            }
        )
    }

    /// Whose fault the error is.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            StreamsError::Topology(_)
            | StreamsError::Config(_)
            | StreamsError::Deserialization { .. }
            | StreamsError::Processing { .. }
            | StreamsError::CoPartitioning { .. }
            | StreamsError::MissingSourceTopic { .. }
            | StreamsError::IllegalState(_)
            | StreamsError::StateDirectoryLocked { .. }
            | StreamsError::DuplicateProcessId { .. } => ErrorDomain::User,
            StreamsError::InvalidStateStore { reason, .. } => match reason {
                InvalidStoreReason::Unknown | InvalidStoreReason::WrongType { .. } => {
                    ErrorDomain::User
                }
                _ => ErrorDomain::External,
            },
            StreamsError::Production { retriable, .. } => {
                if *retriable {
                    ErrorDomain::External
                } else {
                    ErrorDomain::User
                }
            }
            StreamsError::Kafka { .. }
            | StreamsError::Transaction { .. }
            | StreamsError::State { .. } => ErrorDomain::External,
            StreamsError::ThreadPanic { .. } => ErrorDomain::User,
            StreamsError::Internal(_) => ErrorDomain::Internal,
        }
    }

    /// Whether trying again (e.g. replacing the stream thread) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            StreamsError::Production { retriable, .. } => *retriable,
            StreamsError::Kafka { source, .. } => source
                .rdkafka_error_code()
                .map(is_retriable_code)
                .unwrap_or(true),
            StreamsError::MissingSourceTopic { .. } | StreamsError::Transaction { .. } => true,
            StreamsError::InvalidStateStore { reason, .. } => {
                matches!(reason, InvalidStoreReason::Migrating(_))
            }
            _ => false,
        }
    }

    pub(crate) fn kafka(
        operation: impl Into<String>,
        target: impl Into<String>,
        source: rdkafka::error::KafkaError,
    ) -> Self {
        StreamsError::Kafka {
            operation: operation.into(),
            target: target.into(),
            source: Box::new(source),
        }
    }
}

fn is_retriable_code(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::RequestTimedOut
            | C::OperationTimedOut
            | C::NetworkException
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::RebalanceInProgress
            | C::UnknownTopicOrPartition
            | C::QueueFull
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
    )
}

/// The result type of kafka-streams.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<StreamsError>() <= 128);
    }

    #[test]
    fn messages_name_topic_partition_offset_and_domains() {
        let err = StreamsError::Processing {
            node: "KSTREAM-MAP-0000000001".into(),
            task: "0_3".into(),
            origin: Some(Box::new(RecordMetadata {
                topic: "plant01".into(),
                partition: 3,
                offset: 42,
            })),
            source: "boom".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains("topic plant01 partition 3 offset 42"),
            "{text}"
        );
        assert!(text.contains("KSTREAM-MAP-0000000001"), "{text}");
        assert_eq!(err.domain(), ErrorDomain::User);
        assert!(!err.is_retriable());

        let err = StreamsError::kafka(
            "committing offsets",
            "in-0",
            rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::RebalanceInProgress,
            ),
        );
        assert_eq!(err.domain(), ErrorDomain::External);
        assert!(err.is_retriable());
        assert!(err.to_string().contains("committing offsets (in-0)"));
        let err = StreamsError::Internal("x".into());
        assert_eq!(err.domain(), ErrorDomain::Internal);
    }
}
