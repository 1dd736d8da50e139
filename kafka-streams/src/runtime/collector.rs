//! Where tasks send their output, and where committed offsets go: two small traits
//! with a Kafka implementation (the stream thread) and an in-memory one (the test
//! driver).

use std::collections::BTreeMap;

use kafka_client::TopicPartition;

use crate::error::Result;
use crate::processor::RecordMetadata;
use crate::topology::codec::EncodedRecord;

/// Sends a task's output records (Kafka's `RecordCollector`).
pub(crate) trait RecordCollector {
    /// Hands one record to the producer. An immediate failure goes through the
    /// production handler: `Ok` when it says continue. `origin` is the input record
    /// being processed, for error reports.
    fn send(
        &mut self,
        record: EncodedRecord<'_>,
        node: &str,
        origin: Option<&RecordMetadata>,
    ) -> Result<()>;

    /// Waits until every record sent so far is acknowledged; failed deliveries go
    /// through the production handler.
    fn flush(&mut self) -> Result<()>;

    /// The offset of the last record of `topic`/`partition` acknowledged so far (for
    /// changelog checkpoints); `None` when unknown.
    fn delivered_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let _ = (topic, partition);
        None
    }
}

/// Commits consumed offsets (the next offset to read, per partition).
pub(crate) trait OffsetCommitter {
    fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()>;
}
