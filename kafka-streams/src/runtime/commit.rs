//! The single commit path, shared by the stream threads and the test driver.
//!
//! At-least-once commit, in this order (Kafka Streams' `prepareCommit` / commit /
//! `postCommit`):
//! 1. **prepare**: every task flushes its state stores and reports the next offset to
//!    commit for each of its input partitions;
//! 2. **flush the producer**: wait until every output record (including changelog and
//!    repartition records) is acknowledged, so nothing committed can be lost;
//! 3. **commit offsets** of the consumed input;
//! 4. **post-commit**: tasks mark themselves clean (and, with state, write checkpoints).
//!
//! Under exactly-once (`processing.guarantee=exactly_once_v2`) steps 2–3 are one
//! transaction commit (Kafka's `TaskManager.commitOffsetsOrTransaction`): the offsets go
//! into the thread's open transaction with `send_offsets_to_transaction` and the
//! consumer's group metadata, and committing the transaction flushes the output and
//! changelog records and commits them and the offsets atomically. Stores then
//! checkpoint only when their task closes cleanly (`closing`): in between, a store may
//! hold writes of a transaction that could still abort.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_client::TopicPartition;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::metrics::StreamsMetrics;
use super::record_collector::RecordCollector;
use super::task::StreamTask;
use crate::error::{Result, StreamsError};

/// An input partition's offset to commit (the next one to read) and the metadata
/// string committed with it (Kafka's `OffsetAndMetadata`; the string is a
/// `TopicPartitionMetadata`, see `offset_metadata.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetAndMetadata {
    pub offset: i64,
    pub metadata: String,
}

/// The offsets to commit, per input partition.
pub(crate) type CommitOffsets = BTreeMap<TopicPartition, OffsetAndMetadata>;

/// `offsets` as librdkafka's list, each partition with its offset and metadata.
pub(crate) fn partition_list(offsets: &CommitOffsets) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, committed) in offsets {
        let mut elem = tpl.add_partition(&tp.topic, tp.partition);
        elem.set_offset(Offset::Offset(committed.offset))?;
        if !committed.metadata.is_empty() {
            elem.set_metadata(&committed.metadata);
        }
    }
    Ok(tpl)
}

/// `offsets` for error messages: `topic-partition@offset, ...`.
pub(crate) fn describe_offsets(offsets: &CommitOffsets) -> String {
    offsets
        .iter()
        .map(|(tp, o)| format!("{tp}@{}", o.offset))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Commits consumed offsets (the next offset to read, per partition) with their
/// metadata.
pub(crate) trait OffsetCommitter {
    fn commit(&mut self, offsets: &CommitOffsets) -> Result<()>;

    /// The consumer's group metadata, for committing offsets in a transaction.
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        None
    }
}

/// Commits offsets synchronously through a consumer (on the stream thread, never
/// on an async executor).
pub(crate) struct KafkaCommitter<'a, C: ConsumerContext + 'static> {
    pub consumer: &'a BaseConsumer<C>,
}

impl<C: ConsumerContext + 'static> OffsetCommitter for KafkaCommitter<'_, C> {
    fn commit(&mut self, offsets: &CommitOffsets) -> Result<()> {
        let tpl = partition_list(offsets).map_err(|e| {
            StreamsError::kafka("building the commit", describe_offsets(offsets), e)
        })?;
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| StreamsError::kafka("committing offsets", describe_offsets(offsets), e))
    }

    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }
}

/// Commits `tasks`. Returns how many partitions' offsets were committed. `closing`:
/// the tasks close next (cleanly), so their stores checkpoint whatever the guarantee.
pub(crate) fn commit_tasks<'a>(
    tasks: impl IntoIterator<Item = &'a mut StreamTask>,
    collector: &mut dyn RecordCollector,
    committer: &mut dyn OffsetCommitter,
    metrics: &StreamsMetrics,
    closing: bool,
) -> Result<usize> {
    let mut tasks: Vec<&mut StreamTask> = tasks.into_iter().collect();
    let started = Instant::now();
    // 1. prepare: flush stores, collect offsets.
    let mut offsets = BTreeMap::new();
    for task in tasks.iter_mut() {
        offsets.extend(task.prepare_commit(collector)?);
    }
    let prepared = Instant::now();
    let flushed;
    if collector.is_transactional() {
        // 2–3. exactly-once: one transaction commit.
        let group = committer.group_metadata();
        collector.commit_transaction(&offsets, group.as_ref())?;
        flushed = prepared;
    } else {
        // 2. flush the producer.
        collector.flush()?;
        flushed = Instant::now();
        // 3. commit offsets.
        if !offsets.is_empty() {
            committer.commit(&offsets)?;
        }
    }
    let committed = Instant::now();
    // 4. post-commit.
    for task in tasks.iter_mut() {
        task.post_commit(collector, closing)?;
    }
    // Where a slow commit spends its time (each step blocks the stream thread).
    tracing::debug!(
        partitions = offsets.len(),
        prepare_ms = ms(prepared - started),
        flush_ms = ms(flushed - prepared),
        commit_ms = ms(committed - flushed),
        post_commit_ms = ms(committed.elapsed()),
        "committed"
    );
    metrics.committed();
    Ok(offsets.len())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
