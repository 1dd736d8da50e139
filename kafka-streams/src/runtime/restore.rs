//! Restoring tasks' logged stores from their changelogs (Kafka's
//! `StoreChangelogReader`), a slice at a time inside the stream thread's loop, so that
//! tasks already running keep processing while new ones restore.
//!
//! A new task's logged stores are registered with the thread's [`ChangelogReader`]:
//! each restores from its checkpoint (`None`: from the start of the changelog) to the
//! changelog partition's end, batch by batch through
//! [`RestorableStore::restore_batch`](crate::state::RestorableStore::restore_batch), which
//! advances the checkpoint with the data. Progress goes to `tracing` and the user's
//! [`StateRestoreListener`] through [`RestoreProgress`]. One restore consumer per
//! thread reads every changelog partition being restored; it is assigned, never
//! subscribed, and commits nothing.
//!
//! A store whose changelog is its task's own input partition (a source table under
//! `topology.optimization` `reuse.ktable.source.topics`) restores only up to the
//! group's committed offset of that partition (Kafka's `changelogAsSource`): the task
//! processes the records from there on again, and must find the store as it was
//! before them. See [`source_restore_end`].
//!
//! The same reader keeps **standby** stores up to date (Kafka's standby mode of the
//! `StoreChangelogReader`): a standby task's stores are registered with
//! [`ChangelogReader::register_standby`] and read without end, by the same batches,
//! into the same [`RestorableStore::restore_batch`](crate::state::RestorableStore::restore_batch),
//! which checkpoints them; they never complete and report nothing to the restore
//! listener (see `standby.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_client::internal::{FetchQueue, FetchedBatch};
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::state_manager::ProcessorStateManager;
use super::task::StreamTask;
use crate::error::{Result, StreamsError};
use crate::processor::TaskId;
use crate::state::{ChangelogPartition, RestoreProgress, RestoreRecord, StateRestoreListener};

/// Records read before they are applied to the stores, when no task of the thread is
/// running. Stores write each batch atomically and keep only each key's latest record
/// in it, so bigger batches write less: measured with 1M changelog records of a word
/// count, batches of 2 000 restored about 1.6M records/s, 10 000 1.8M/s and 50 000
/// 2.0M/s.
const RESTORE_BATCH: usize = 50_000;

/// The batch limit while some task of the thread is running. A batch is applied in
/// one go and running tasks wait for it, so it stays well inside the thread's restore
/// slice (`RESTORE_SLICE_WHILE_RUNNING`, 20 ms): about 10 ms at 2M records/s.
const RESTORE_BATCH_WHILE_RUNNING: usize = 20_000;

/// How long a restore may go without reading a record before it fails.
const RESTORE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest a restore round waits for records on the fetch queue.
const RESTORE_WAIT_SLICE: Duration = Duration::from_millis(10);

/// A changelog record as read, from either of the restore consumer's queues.
struct ChangelogMessage<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    timestamp: i64,
}

/// Timeout of the watermark request made when a store is registered.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where restoring a store from its task's own input partition stops, given that
/// partition's log end (`high`) and the group's committed offset.
///
/// As Kafka's `StoreChangelogReader`: the committed offset, capped at the log end,
/// since the task processes the records from the committed offset on again and must
/// find the store as it was before them. A partition without a committed offset
/// counts as committed at 0, as in Kafka: nothing is restored, and processing
/// rebuilds the table from where `auto.offset.reset` starts the task (the beginning,
/// by default).
pub(crate) fn source_restore_end(high: i64, committed: Option<i64>) -> i64 {
    committed.unwrap_or(0).clamp(0, high.max(0))
}

/// The group's committed offset of an input partition (`None`: nothing committed),
/// read through the stream thread's consumer.
pub(crate) type CommittedOffset<'a> = dyn Fn(&ChangelogPartition) -> Result<Option<i64>> + 'a;

/// The tasks a [`ChangelogReader`] restores into: a stream thread's active tasks, or
/// an instance's standby tasks.
pub(crate) trait RestoringTasks {
    /// The stores of task `task`.
    fn state_manager(&mut self, task: TaskId) -> Option<&mut ProcessorStateManager>;
    /// Whether any of the tasks is processing (restore batches stay small then).
    fn any_running(&self) -> bool;
}

impl RestoringTasks for BTreeMap<TaskId, StreamTask> {
    fn state_manager(&mut self, task: TaskId) -> Option<&mut ProcessorStateManager> {
        self.get_mut(&task).map(StreamTask::state_manager_mut)
    }

    fn any_running(&self) -> bool {
        self.values().any(StreamTask::is_running)
    }
}

/// One changelog partition being restored into one store of one task.
struct PartitionRestore {
    task: TaskId,
    store: String,
    changelog: ChangelogPartition,
    /// The changelog is the task's input partition (so records past `end` exist, and
    /// are not the store's).
    source: bool,
    /// Next changelog offset to apply.
    next: i64,
    /// Where the restore ends (exclusive): the changelog's end (high watermark) when
    /// it started, or for a source changelog [`source_restore_end`]; `i64::MAX` for a
    /// standby, which never ends.
    end: i64,
    /// A standby task's store, kept up to date rather than restored.
    standby: bool,
    /// `None` for a standby.
    progress: Option<RestoreProgress>,
}

impl PartitionRestore {
    /// Restoring `store` of `task` from `changelog`, offsets `next..end`: not a source
    /// changelog, not a standby, no progress reporting (the caller sets those).
    fn new(
        task: TaskId,
        store: String,
        changelog: ChangelogPartition,
        next: i64,
        end: i64,
    ) -> Self {
        PartitionRestore {
            task,
            store,
            changelog,
            source: false,
            next,
            end,
            standby: false,
            progress: None,
        }
    }
}

/// Restores the logged stores of one stream thread's tasks.
pub(crate) struct ChangelogReader {
    config: rdkafka::ClientConfig,
    thread: String,
    listener: Option<Arc<dyn StateRestoreListener>>,
    /// `restore.consumer.max.poll.records`, replacing both default batch limits.
    max_poll_records: Option<usize>,
    /// The restore consumer, with the queue its changelog partitions are read from
    /// a batch at a time.
    fetch: Option<FetchQueue<DefaultConsumerContext>>,
    restoring: BTreeMap<(String, i32), PartitionRestore>,
    /// The changelog partitions last assigned (finished ones stay assigned).
    assigned: Vec<(String, i32)>,
    /// Partitions were registered since the consumer was last assigned.
    reassign: bool,
    /// Source-topic changelog partitions whose restore finished, to pause.
    finished_sources: Vec<(String, i32)>,
    last_record: Instant,
}

impl ChangelogReader {
    /// A reader for the thread `thread`, whose restore consumer has `config`
    /// ([`StreamsConfig::restore_consumer_config`](super::StreamsConfig::restore_consumer_config));
    /// nothing connects until a store needs restoring.
    pub fn new(
        config: rdkafka::ClientConfig,
        thread: &str,
        listener: Option<Arc<dyn StateRestoreListener>>,
        max_poll_records: Option<usize>,
    ) -> Self {
        ChangelogReader {
            config,
            thread: thread.to_owned(),
            listener,
            max_poll_records,
            fetch: None,
            restoring: BTreeMap::new(),
            assigned: Vec::new(),
            reassign: false,
            finished_sources: Vec::new(),
            last_record: Instant::now(),
        }
    }

    fn consumer(&mut self) -> Result<&BaseConsumer> {
        if self.fetch.is_none() {
            let consumer: BaseConsumer = self.config.create().map_err(|e| {
                StreamsError::kafka("creating the restore consumer", &self.thread, e)
            })?;
            let fetch = FetchQueue::new(Arc::new(consumer)).map_err(|e| {
                StreamsError::kafka("creating the restore fetch queue", &self.thread, e)
            })?;
            self.fetch = Some(fetch);
        }
        self.fetch
            .as_ref()
            .map(|fetch| &**fetch.consumer())
            .ok_or_else(|| StreamsError::Internal("restore consumer missing".into()))
    }

    /// Registers the logged stores of a task whose stores were just opened. Returns
    /// whether any of them has changelog records to restore; if not, the task can run
    /// at once. `committed` gives the committed offset of a store's changelog when it
    /// is one of the task's input partitions.
    pub fn register(
        &mut self,
        task: &mut StreamTask,
        committed: &CommittedOffset<'_>,
    ) -> Result<bool> {
        let task_id = task.id();
        let logged: Vec<(String, ChangelogPartition)> = task
            .state_manager_mut()
            .changelog_partitions()
            .map(|(name, c)| (name.to_owned(), c.clone()))
            .collect();
        let mut any = false;
        for (name, changelog) in logged {
            let source = task
                .partitions()
                .any(|tp| tp.partition == changelog.partition && tp.topic == changelog.topic);
            let (low, high) = self.watermarks(&name, task_id, &changelog)?;
            let end = if source {
                let offset = committed(&changelog)?;
                let end = source_restore_end(high, offset);
                tracing::debug!(store = %name, task = %task_id, changelog = %changelog, committed = ?offset, high, end, "store's changelog is its source topic: restoring to the committed offset");
                end
            } else {
                high
            };
            let Some(store) = task.state_manager_mut().restorable_mut(&name) else {
                continue;
            };
            let start = store.checkpointed_offset().unwrap_or(low).max(low);
            if start >= end {
                tracing::debug!(store = %name, task = %task_id, changelog = %changelog, start, end, "store is up to date; nothing to restore");
                if let Some(l) = &self.listener {
                    l.on_restore_start(&changelog, &name, start, end);
                    l.on_restore_end(&changelog, &name, 0);
                }
                continue;
            }
            let progress = Some(RestoreProgress::start(
                name.clone(),
                &changelog,
                start,
                end,
                self.listener.clone(),
            ));
            let mut restore = PartitionRestore::new(task_id, name, changelog, start, end);
            restore.source = source;
            restore.progress = progress;
            self.track(restore);
            self.last_record = Instant::now();
            any = true;
        }
        Ok(any)
    }

    /// The low and high watermarks of `changelog`, the changelog of store `name` of
    /// task `task_id`.
    fn watermarks(
        &mut self,
        name: &str,
        task_id: TaskId,
        changelog: &ChangelogPartition,
    ) -> Result<(i64, i64)> {
        self.consumer()?
            .fetch_watermarks(&changelog.topic, changelog.partition, WATERMARK_TIMEOUT)
            .map_err(|e| {
                StreamsError::kafka(
                    format!(
                        "fetching changelog watermarks (restoring store {name} of task {task_id}, partition {})",
                        changelog.partition
                    ),
                    &changelog.topic,
                    e,
                )
            })
    }

    /// Registers the logged stores of standby task `task_id`, just opened through
    /// `state_manager`: from now on each is read from its checkpoint (or the start of
    /// its changelog) on, without end, until [`ChangelogReader::remove_task`]. Stores
    /// whose changelog is an input topic (source tables under
    /// `reuse.ktable.source.topics`) are left out: how far they may go is the active
    /// task's committed offset, so the task that takes them over restores them.
    pub fn register_standby(
        &mut self,
        task_id: TaskId,
        state_manager: &mut ProcessorStateManager,
        source_topics: &[String],
    ) -> Result<()> {
        let logged: Vec<(String, ChangelogPartition)> = state_manager
            .changelog_partitions()
            .filter(|(_, c)| !source_topics.contains(&c.topic))
            .map(|(name, c)| (name.to_owned(), c.clone()))
            .collect();
        for (name, changelog) in logged {
            let (low, _) = self.watermarks(&name, task_id, &changelog)?;
            let Some(store) = state_manager.restorable_mut(&name) else {
                continue;
            };
            let start = store.checkpointed_offset().unwrap_or(low).max(low);
            tracing::debug!(store = %name, task = %task_id, changelog = %changelog, start, "standby store registered");
            let mut restore = PartitionRestore::new(task_id, name, changelog, start, i64::MAX);
            restore.standby = true;
            self.track(restore);
        }
        Ok(())
    }

    /// Starts reading `restore`'s changelog partition.
    fn track(&mut self, restore: PartitionRestore) {
        let tp = (restore.changelog.topic.clone(), restore.changelog.partition);
        self.restoring.insert(tp, restore);
        self.reassign = true;
    }

    /// Stops reading the changelogs of task `task` (a standby task closed).
    pub fn remove_task(&mut self, task: TaskId) {
        let before = self.restoring.len();
        self.restoring.retain(|_, r| r.task != task);
        if self.restoring.len() == before {
            return;
        }
        if self.restoring.is_empty() {
            self.clear_assignment();
        } else {
            self.reassign = true;
        }
    }

    /// Forgets every restore (the thread's tasks were closed) and stops fetching
    /// their changelogs.
    pub fn clear(&mut self) {
        self.finished_sources.clear();
        if self.restoring.is_empty() {
            return;
        }
        self.restoring.clear();
        self.clear_assignment();
    }

    /// Whether any store is still restoring.
    pub fn is_restoring(&self) -> bool {
        !self.restoring.is_empty()
    }

    /// Reads and applies changelog records for about `budget`, and returns the tasks
    /// whose stores have all reached their changelog's end.
    pub fn restore(
        &mut self,
        tasks: &mut impl RestoringTasks,
        budget: Duration,
    ) -> Result<Vec<TaskId>> {
        if self.restoring.is_empty() {
            return Ok(Vec::new());
        }
        self.assign_if_needed()?;
        // The records are applied straight from librdkafka's buffers, which borrow
        // the consumer while `self` is updated.
        let fetch = self
            .fetch
            .take()
            .ok_or_else(|| StreamsError::Internal("restore consumer missing".into()))?;
        let result = self.restore_from(&fetch, tasks, budget);
        self.fetch = Some(fetch);
        let done = result?;
        let finished_sources = std::mem::take(&mut self.finished_sources);
        if self.restoring.is_empty() {
            self.clear_assignment();
        } else {
            self.pause(&finished_sources);
            self.assign_if_needed()?;
        }
        Ok(done)
    }

    /// Stops fetching finished source-topic partitions while others restore, so that
    /// new input is not read only to be dropped. A failure costs only those fetches.
    fn pause(&self, partitions: &[(String, i32)]) {
        let Some(consumer) = self.fetch.as_ref().map(FetchQueue::consumer) else {
            return;
        };
        if partitions.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        if let Err(error) = consumer.pause(&tpl) {
            tracing::warn!(thread = %self.thread, ?partitions, %error, "pausing restored source partitions failed");
        }
    }

    fn restore_from(
        &mut self,
        fetch: &FetchQueue<DefaultConsumerContext>,
        tasks: &mut impl RestoringTasks,
        budget: Duration,
    ) -> Result<Vec<TaskId>> {
        let consumer: &BaseConsumer = fetch.consumer();
        let deadline = Instant::now() + budget;
        let mut done = Vec::new();
        let batch_limit = match self.max_poll_records {
            Some(limit) => limit,
            None if tasks.any_running() => RESTORE_BATCH_WHILE_RUNNING,
            None => RESTORE_BATCH,
        };
        // Records fetched before their partition was routed to the fetch queue come
        // through the consumer's own queue, which is therefore read first.
        let mut polled: Vec<BorrowedMessage<'_>> = Vec::new();
        let mut fetched = FetchedBatch::new();
        while !self.restoring.is_empty() {
            polled.clear();
            fetched.clear();
            // Every round: the (re)assignment may have dropped the routing since.
            // Finished partitions too, so records that running tasks append to their
            // changelogs are read and dropped, not left to pile up unread.
            for (topic, partition) in &self.assigned {
                fetch.add_partition(topic, *partition);
            }
            while polled.len() < batch_limit {
                match consumer.poll(Duration::ZERO) {
                    None => break,
                    Some(Err(e)) => {
                        return Err(StreamsError::kafka("reading changelogs", &self.thread, e))
                    }
                    Some(Ok(m)) => polled.push(m),
                }
            }
            if polled.len() < batch_limit {
                let wait = if polled.is_empty() {
                    // Short waits, so a consumer-queue record is not kept waiting.
                    deadline
                        .saturating_duration_since(Instant::now())
                        .min(RESTORE_WAIT_SLICE)
                } else {
                    Duration::ZERO
                };
                fetch.consume_into(&mut fetched, batch_limit - polled.len(), wait);
            }
            let mut messages: Vec<ChangelogMessage<'_>> =
                Vec::with_capacity(polled.len() + fetched.len());
            messages.extend(polled.iter().map(|m| ChangelogMessage {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key(),
                value: m.payload(),
                timestamp: m.timestamp().to_millis().unwrap_or(-1),
            }));
            for m in fetched.iter() {
                if let Some(e) = m.error() {
                    return Err(StreamsError::kafka("reading changelogs", &self.thread, e));
                }
                messages.push(ChangelogMessage {
                    topic: m.topic(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    value: m.payload(),
                    timestamp: m.timestamp().unwrap_or(-1),
                });
            }
            if messages.is_empty() {
                self.finish_by_position(consumer, &mut done)?;
                if self.last_record.elapsed() > RESTORE_STALL_TIMEOUT {
                    // A standby waits for new changelog records as long as it takes.
                    if let Some(r) = self.restoring.values().find(|r| !r.standby) {
                        return Err(StreamsError::IllegalState(format!(
                            "restoring store {} of task {} from {} stalled at offset {} (end {})",
                            r.store, r.task, r.changelog, r.next, r.end
                        )));
                    }
                }
            } else {
                self.last_record = Instant::now();
                self.apply(tasks, &messages, &mut done)?;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Ok(done)
    }

    /// Every restore finished: stop fetching changelogs.
    fn clear_assignment(&mut self) {
        self.reassign = false;
        self.assigned.clear();
        if let Some(consumer) = self.fetch.as_ref().map(FetchQueue::consumer) {
            if let Err(error) = consumer.unassign() {
                tracing::warn!(thread = %self.thread, %error, "unassigning changelog partitions failed");
            }
        }
    }

    fn assign_if_needed(&mut self) -> Result<()> {
        if !self.reassign || self.restoring.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), r) in &self.restoring {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(r.next))
                .map_err(|e| {
                    StreamsError::kafka(
                        "assigning changelog partitions",
                        r.changelog.to_string(),
                        e,
                    )
                })?;
        }
        let thread = self.thread.clone();
        self.consumer()?
            .assign(&tpl)
            .map_err(|e| StreamsError::kafka("assigning changelog partitions", thread, e))?;
        self.assigned = self.restoring.keys().cloned().collect();
        self.reassign = false;
        Ok(())
    }

    /// Applies a batch of changelog records, partition by partition, in order.
    fn apply(
        &mut self,
        tasks: &mut impl RestoringTasks,
        messages: &[ChangelogMessage<'_>],
        done: &mut Vec<TaskId>,
    ) -> Result<()> {
        // Per partition: its records, and the last offset read (keyless ones too).
        let mut groups: Vec<((&str, i32), Vec<RestoreRecord<'_>>, i64)> = Vec::new();
        for m in messages {
            let tp = (m.topic, m.partition);
            let at = match groups.iter().position(|(g, _, _)| *g == tp) {
                Some(at) => at,
                None => {
                    groups.push((tp, Vec::with_capacity(messages.len()), m.offset));
                    groups.len() - 1
                }
            };
            groups[at].2 = groups[at].2.max(m.offset);
            match m.key {
                Some(key) => groups[at].1.push(RestoreRecord {
                    key,
                    value: m.value,
                    offset: m.offset,
                    timestamp: m.timestamp,
                }),
                // Cannot be applied; the position check still moves past it.
                None => tracing::warn!(
                    topic = m.topic,
                    partition = m.partition,
                    offset = m.offset,
                    "changelog record without a key skipped"
                ),
            }
        }
        for ((topic, partition), mut records, last_read) in groups {
            let tp = (topic.to_owned(), partition);
            let Some(r) = self.restoring.get_mut(&tp) else {
                continue; // read before the partition's restore was dropped
            };
            let (next, end) = (r.next, r.end);
            // Records from `end` on are not the store's: in a source changelog they
            // are the task's input still to be processed.
            records.retain(|rec| rec.offset >= next && rec.offset < end);
            if let Some(last) = records.last().map(|rec| rec.offset) {
                let Some(store) = tasks
                    .state_manager(r.task)
                    .and_then(|m| m.restorable_mut(&r.store))
                else {
                    return Err(StreamsError::Internal(format!(
                        "restoring store {} of task {}: the task or store is gone",
                        r.store, r.task
                    )));
                };
                store.restore_batch(&records)?;
                r.next = last + 1;
                if let Some(progress) = &mut r.progress {
                    progress.batch_restored(records.len() as u64, last);
                }
            }
            // Having read the record before `end`, or any after it, the restore is done
            // even if that record was not applied (no key, or past `end`).
            if last_read + 1 >= r.end {
                self.complete(&tp, done);
            }
        }
        Ok(())
    }

    /// Finishes partitions whose consumer position reached the end although no record
    /// sits at the end offset (transaction markers, compacted away).
    fn finish_by_position(
        &mut self,
        consumer: &BaseConsumer,
        done: &mut Vec<TaskId>,
    ) -> Result<()> {
        let positions = consumer
            .position()
            .map_err(|e| StreamsError::kafka("reading restore positions", &self.thread, e))?;
        let mut reached = Vec::new();
        for elem in positions.elements() {
            let tp = (elem.topic().to_owned(), elem.partition());
            if let (Offset::Offset(pos), Some(r)) = (elem.offset(), self.restoring.get_mut(&tp)) {
                if pos >= r.end {
                    r.next = r.next.max(pos);
                    reached.push(tp);
                }
            }
        }
        for tp in reached {
            self.complete(&tp, done);
        }
        Ok(())
    }

    fn complete(&mut self, tp: &(String, i32), done: &mut Vec<TaskId>) {
        let Some(r) = self.restoring.remove(tp) else {
            return;
        };
        // The partition stays assigned (at its end it yields nothing): reassigning
        // would restart the fetches of the others. A source topic does not end where
        // its restore does, so it is paused instead.
        if r.source {
            self.finished_sources.push(tp.clone());
        }
        if let Some(progress) = r.progress {
            progress.finish();
        }
        if !self.restoring.values().any(|o| o.task == r.task) && !done.contains(&r.task) {
            done.push(r.task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::source_restore_end;

    #[test]
    fn source_changelogs_restore_to_the_committed_offset_within_the_log() {
        // Records after the committed offset are processed again, not restored.
        assert_eq!(source_restore_end(100, Some(60)), 60);
        assert_eq!(source_restore_end(100, Some(100)), 100);
        // A committed offset past the log end (a truncated topic) stops at the end.
        assert_eq!(source_restore_end(100, Some(150)), 100);
        // Nothing committed counts as 0, as in Kafka: nothing is restored.
        assert_eq!(source_restore_end(100, None), 0);
        assert_eq!(source_restore_end(0, None), 0);
    }
}
