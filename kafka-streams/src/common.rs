//! Identifiers every layer shares: [`TaskId`] and [`RecordMetadata`].
//!
//! They live here, in no layer of their own, so that [`state`](crate::state) can name a
//! task (a store's directory and changelog partition are the task's) without importing
//! [`processor`](crate::processor) or [`runtime`](crate::runtime). Users reach them as
//! `kafka_streams::processor::TaskId` and `kafka_streams::processor::RecordMetadata`,
//! where Kafka Streams has them.

use std::fmt;

/// Where the input record being processed came from (Kafka's `RecordMetadata` of the
/// processor API). Absent in punctuations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordMetadata {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
}

impl fmt::Display for RecordMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// A task: one sub-topology working on one partition number of its input topics.
/// Printed as `<sub-topology>_<partition>`, like Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Sub-topology number.
    pub subtopology: usize,
    /// Partition number.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}
