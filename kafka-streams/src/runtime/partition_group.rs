//! [`PartitionGroup`] (Kafka's `PartitionGroup` and `RecordQueue`): a task's input
//! queues, one per input partition, and which record the task processes next.
//!
//! - The next record is the head with the lowest timestamp across the partitions, so a
//!   task reading several partitions (a merge, later a join) processes them in
//!   timestamp order as far as they are buffered.
//! - Before picking, the group checks that it is ready (Kafka's `readyToProcess`,
//!   KIP-695, `max.task.idle.ms`). A partition with buffered records is ready. For a
//!   partition whose queue is empty:
//!   - `max.task.idle.ms` = `-1`: never wait;
//!   - lag unknown (nothing fetched yet) → wait;
//!   - lag > 0 (records on the broker not fetched yet) → wait for them;
//!   - lag = 0 → wait until `max.task.idle.ms` after the partition was first seen
//!     empty at lag 0, then process the other partitions anyway (**enforced
//!     processing**, logged and counted in `enforced-processing-total`).
//! - A task that reads one partition never waits.
//!
//! The lag comes from a [`FetchedLags`]: on a stream thread, the consumer's cached
//! high watermark minus the position the task knows for the partition (the offset
//! after the last record it got, or the end offset librdkafka reported when it
//! reached the end of the partition); no network call.

use std::collections::VecDeque;

use kafka_client::TopicPartition;

use crate::processor::internal::ErasedRecord;
use crate::processor::{RecordMetadata, TaskId};

/// `max.task.idle.ms` value that turns waiting off (Kafka's `MAX_TASK_IDLE_MS_DISABLED`).
pub(crate) const MAX_TASK_IDLE_MS_DISABLED: i64 = -1;

/// The lag of input partitions, as far as the consumer knows it without asking the
/// broker.
pub(crate) trait FetchedLags {
    /// How many records of `partition` at or after `position` (the next offset the
    /// task expects; `None` when it knows none) the broker holds that the task has not
    /// been given. `None` when unknown (nothing fetched yet).
    fn lag(&self, partition: &TopicPartition, position: Option<i64>) -> Option<i64>;
}

/// Lags where every record is already in the task (the test driver hands records
/// straight to its tasks).
pub(crate) struct AllFetched;

impl FetchedLags for AllFetched {
    fn lag(&self, _: &TopicPartition, _: Option<i64>) -> Option<i64> {
        Some(0)
    }
}

/// A buffered input record.
pub(crate) struct Queued {
    /// `None`: a skipped record, which only advances the committed offset.
    pub record: Option<ErasedRecord>,
    pub offset: i64,
}

/// The record to process next, and from which partition.
pub(crate) struct NextRecord {
    /// The partition's index in the group.
    pub queue: usize,
    pub queued: Queued,
    /// Picked under enforced processing (some empty partition was given up on).
    pub enforced: bool,
}

struct PartitionQueue {
    tp: TopicPartition,
    records: VecDeque<Queued>,
    /// Largest timestamp buffered so far (for the timestamp extractor).
    partition_time: i64,
    /// The next offset to commit, once a record of the partition was processed.
    next_offset: Option<i64>,
    /// The next offset the task expects from the consumer, once known.
    position: Option<i64>,
    /// When waiting for this empty partition at lag 0 ends (wall clock, ms).
    idle_deadline: Option<i64>,
    /// Whether giving up on it was logged since it last had records.
    enforced_logged: bool,
    /// The processor context's metadata, reused so that no record copies the topic
    /// name.
    metadata: RecordMetadata,
}

impl PartitionQueue {
    fn head_timestamp(&self) -> Option<i64> {
        self.records
            .front()
            .map(|q| q.record.as_ref().map_or(i64::MIN, |r| r.timestamp))
    }
}

/// The input queues of one task.
pub(crate) struct PartitionGroup {
    task: TaskId,
    queues: Vec<PartitionQueue>,
    /// `max.task.idle.ms`; [`MAX_TASK_IDLE_MS_DISABLED`] never waits.
    max_task_idle_ms: i64,
    /// Queues holding records.
    non_empty: usize,
}

/// Whether the task may process now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    Wait,
    Ready,
    /// Ready because the wait for an empty partition ended.
    Enforced,
}

impl PartitionGroup {
    /// An empty group of task `task`.
    pub fn new(task: TaskId, max_task_idle_ms: i64) -> Self {
        PartitionGroup {
            task,
            queues: Vec::new(),
            max_task_idle_ms,
            non_empty: 0,
        }
    }

    /// Adds input partition `tp`; returns its index.
    pub fn add_partition(&mut self, tp: TopicPartition) -> usize {
        let metadata = RecordMetadata {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: -1,
        };
        self.queues.push(PartitionQueue {
            tp,
            records: VecDeque::new(),
            partition_time: i64::MIN,
            next_offset: None,
            position: None,
            idle_deadline: None,
            enforced_logged: false,
            metadata,
        });
        self.queues.len() - 1
    }

    /// Changes `max.task.idle.ms` (the test driver turns waiting off).
    pub fn set_max_task_idle_ms(&mut self, max_task_idle_ms: i64) {
        self.max_task_idle_ms = max_task_idle_ms;
    }

    /// The input partitions, in the order they were added.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.queues.iter().map(|q| &q.tp)
    }

    /// How many input partitions the group has.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// The index of `topic`/`partition`, if it is an input of the group.
    pub fn index_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.queues
            .iter()
            .position(|q| q.tp.partition == partition && q.tp.topic == topic)
    }

    /// The largest timestamp buffered so far from partition `queue`.
    pub fn partition_time(&self, queue: usize) -> i64 {
        self.queues[queue].partition_time
    }

    /// Buffers a record of partition `queue` (`None`: skipped, it only moves the
    /// offset to commit once its turn comes).
    pub fn push(&mut self, queue: usize, record: Option<ErasedRecord>, offset: i64) {
        let q = &mut self.queues[queue];
        if let Some(r) = &record {
            q.partition_time = q.partition_time.max(r.timestamp);
        }
        if q.records.is_empty() {
            self.non_empty += 1;
        }
        q.records.push_back(Queued { record, offset });
        q.position = Some(q.position.map_or(offset + 1, |p| p.max(offset + 1)));
        q.idle_deadline = None;
        q.enforced_logged = false;
    }

    /// The consumer reached the end of partition `queue` at `offset` (the offset the
    /// next record will have): the task has every record before it.
    pub fn reached_end(&mut self, queue: usize, offset: i64) {
        let q = &mut self.queues[queue];
        q.position = Some(q.position.map_or(offset, |p| p.max(offset)));
    }

    /// The next offset the task expects from partition `queue`, once known.
    pub fn position(&self, queue: usize) -> Option<i64> {
        self.queues[queue].position
    }

    /// Takes the record to process next: the head with the lowest timestamp, once
    /// the group is ready (see the module docs). `None` when nothing is buffered or
    /// the group waits for an empty partition. `wall_clock` is in milliseconds.
    pub fn next_record(&mut self, wall_clock: i64, lags: &dyn FetchedLags) -> Option<NextRecord> {
        let readiness = self.readiness(wall_clock, lags);
        if readiness == Readiness::Wait {
            return None;
        }
        let mut best: Option<(i64, usize)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            if let Some(ts) = q.head_timestamp() {
                if best.is_none_or(|(b, _)| ts < b) {
                    best = Some((ts, i));
                }
            }
        }
        let (_, queue) = best?;
        let q = &mut self.queues[queue];
        let queued = q.records.pop_front()?;
        if q.records.is_empty() {
            self.non_empty -= 1;
        }
        q.next_offset = Some(queued.offset + 1);
        Some(NextRecord {
            queue,
            queued,
            enforced: readiness == Readiness::Enforced,
        })
    }

    fn readiness(&mut self, wall_clock: i64, lags: &dyn FetchedLags) -> Readiness {
        if self.non_empty == 0 {
            return Readiness::Wait;
        }
        if self.non_empty == self.queues.len() || self.max_task_idle_ms < 0 {
            return Readiness::Ready;
        }
        let mut enforced = false;
        for q in &mut self.queues {
            if !q.records.is_empty() {
                q.idle_deadline = None;
                q.enforced_logged = false;
                continue;
            }
            match lags.lag(&q.tp, q.position) {
                // Nothing fetched yet, or records on the broker not fetched yet:
                // wait for them.
                None => {
                    q.idle_deadline = None;
                    return Readiness::Wait;
                }
                Some(lag) if lag > 0 => {
                    q.idle_deadline = None;
                    return Readiness::Wait;
                }
                // Caught up: wait up to max.task.idle.ms for new records.
                Some(_) => {
                    let deadline = *q
                        .idle_deadline
                        .get_or_insert(wall_clock.saturating_add(self.max_task_idle_ms));
                    if wall_clock < deadline {
                        return Readiness::Wait;
                    }
                    enforced = true;
                    if !q.enforced_logged {
                        q.enforced_logged = true;
                        log_enforced(self.task, &q.tp, self.max_task_idle_ms, deadline);
                    }
                }
            }
        }
        if enforced {
            Readiness::Enforced
        } else {
            Readiness::Ready
        }
    }

    /// The metadata of partition `queue`'s records, for the processor context.
    pub fn metadata_mut(&mut self, queue: usize) -> &mut RecordMetadata {
        &mut self.queues[queue].metadata
    }

    /// The next offset to commit for each partition that had a record processed.
    pub fn offsets_to_commit(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.queues
            .iter()
            .filter_map(|q| q.next_offset.map(|o| (&q.tp, o)))
    }

    /// For an input partition `topic`/`partition`: the next offset to commit, once a
    /// record of it was processed. `None` when it is not an input of the group.
    pub fn next_offset_of(&self, topic: &str, partition: i32) -> Option<Option<i64>> {
        self.index_of(topic, partition)
            .map(|i| self.queues[i].next_offset)
    }
}

fn log_enforced(task: TaskId, tp: &TopicPartition, max_task_idle_ms: i64, deadline: i64) {
    // With max.task.idle.ms = 0 the user asked for no waiting: not worth an info line.
    if max_task_idle_ms > 0 {
        tracing::info!(
            task = %task, topic = %tp.topic, partition = tp.partition, max_task_idle_ms, deadline,
            "enforced processing: the partition has no buffered record and no lag after max.task.idle.ms; \
             processing the task's other partitions, possibly out of timestamp order"
        );
    } else {
        tracing::debug!(
            task = %task, topic = %tp.topic, partition = tp.partition, max_task_idle_ms,
            "enforced processing: the partition has no buffered record and no lag; processing the task's other partitions"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::processor::Record;

    const TASK: TaskId = TaskId {
        subtopology: 0,
        partition: 0,
    };

    /// Lags by topic; a topic missing from the map has an unknown lag.
    #[derive(Default)]
    struct Lags(HashMap<&'static str, i64>);

    impl FetchedLags for Lags {
        fn lag(&self, partition: &TopicPartition, _: Option<i64>) -> Option<i64> {
            self.0.get(partition.topic.as_str()).copied()
        }
    }

    fn group(max_task_idle_ms: i64) -> PartitionGroup {
        let mut group = PartitionGroup::new(TASK, max_task_idle_ms);
        group.add_partition(TopicPartition::new("a", 0));
        group.add_partition(TopicPartition::new("b", 0));
        group
    }

    fn push(group: &mut PartitionGroup, queue: usize, offset: i64, timestamp: i64) {
        let record =
            ErasedRecord::from_record(Record::new(format!("k{offset}"), offset, timestamp));
        group.push(queue, Some(record), offset);
    }

    /// Drains what is ready now: `(queue, timestamp, enforced)` per record.
    fn drain(group: &mut PartitionGroup, wall_clock: i64, lags: &Lags) -> Vec<(usize, i64, bool)> {
        let mut out = Vec::new();
        while let Some(next) = group.next_record(wall_clock, lags) {
            let ts = next.queued.record.as_ref().map_or(-1, |r| r.timestamp);
            out.push((next.queue, ts, next.enforced));
        }
        out
    }

    fn caught_up() -> Lags {
        Lags(HashMap::from([("a", 0), ("b", 0)]))
    }

    #[test]
    fn picks_the_lowest_head_timestamp_across_partitions() {
        let mut g = group(0);
        push(&mut g, 0, 0, 100);
        push(&mut g, 0, 1, 300);
        push(&mut g, 0, 2, 500);
        push(&mut g, 1, 0, 200);
        push(&mut g, 1, 1, 400);
        push(&mut g, 1, 2, 600);
        let order: Vec<(usize, i64)> = drain(&mut g, 0, &caught_up())
            .into_iter()
            .map(|(q, ts, _)| (q, ts))
            .collect();
        assert_eq!(
            order,
            vec![(0, 100), (1, 200), (0, 300), (1, 400), (0, 500), (1, 600)]
        );
        assert!(g.next_record(0, &caught_up()).is_none());
        let offsets: Vec<(String, i64)> = g
            .offsets_to_commit()
            .map(|(tp, o)| (tp.topic.clone(), o))
            .collect();
        assert_eq!(offsets, vec![("a".to_owned(), 3), ("b".to_owned(), 3)]);
    }

    #[test]
    fn waits_while_an_empty_partitions_lag_is_unknown_or_positive() {
        let mut g = group(10_000);
        push(&mut g, 0, 0, 100);
        // b: nothing fetched yet.
        assert!(drain(&mut g, 0, &Lags(HashMap::from([("a", 0)]))).is_empty());
        // b: records on the broker, not fetched yet; waiting does not time out.
        let behind = Lags(HashMap::from([("a", 0), ("b", 3)]));
        assert!(drain(&mut g, 0, &behind).is_empty());
        assert!(drain(&mut g, 1_000_000, &behind).is_empty());
        // b's first record arrives: it goes first; then b is empty and still behind,
        // so a's record waits again.
        push(&mut g, 1, 0, 50);
        assert_eq!(drain(&mut g, 1_000_000, &behind), vec![(1, 50, false)]);
        // b's next record comes later than a's: a's goes first; then a is empty (lag
        // 0) and b's record waits for max.task.idle.ms.
        push(&mut g, 1, 1, 150);
        assert_eq!(drain(&mut g, 1_000_000, &behind), vec![(0, 100, false)]);
        assert_eq!(drain(&mut g, 1_010_000, &behind), vec![(1, 150, true)]);
    }

    #[test]
    fn waits_max_task_idle_ms_at_lag_zero_then_enforces_processing() {
        let mut g = group(10_000);
        push(&mut g, 0, 0, 100);
        push(&mut g, 0, 1, 200);
        let lags = caught_up();
        // The wait starts when b is first seen empty at lag 0.
        assert!(drain(&mut g, 5_000, &lags).is_empty());
        assert!(drain(&mut g, 14_999, &lags).is_empty());
        assert_eq!(
            drain(&mut g, 15_000, &lags),
            vec![(0, 100, true), (0, 200, true)]
        );
        // While b stays empty, its deadline holds (as in Kafka): a's next record does
        // not wait again.
        push(&mut g, 0, 2, 250);
        assert_eq!(drain(&mut g, 15_000, &lags), vec![(0, 250, true)]);
        // b gets a record: the group is ready without enforcing, and a new wait for
        // an empty b starts from scratch.
        push(&mut g, 1, 0, 300);
        push(&mut g, 0, 3, 400);
        assert_eq!(drain(&mut g, 15_001, &lags), vec![(1, 300, false)]);
        assert!(drain(&mut g, 20_000, &lags).is_empty());
        assert_eq!(drain(&mut g, 30_001, &lags), vec![(0, 400, true)]);
    }

    #[test]
    fn lag_becoming_positive_restarts_the_wait() {
        let mut g = group(10_000);
        push(&mut g, 0, 0, 100);
        assert!(drain(&mut g, 0, &caught_up()).is_empty());
        // New records on the broker for b: wait for them (no deadline)...
        let behind = Lags(HashMap::from([("a", 0), ("b", 1)]));
        assert!(drain(&mut g, 10_000, &behind).is_empty());
        // ...and once caught up again, the idle time counts from then.
        assert!(drain(&mut g, 12_000, &caught_up()).is_empty());
        assert_eq!(drain(&mut g, 22_000, &caught_up()), vec![(0, 100, true)]);
    }

    #[test]
    fn zero_idle_time_processes_at_once_when_caught_up_but_still_waits_for_fetches() {
        let mut g = group(0);
        push(&mut g, 0, 0, 100);
        assert!(drain(&mut g, 0, &Lags(HashMap::from([("a", 0), ("b", 2)]))).is_empty());
        assert_eq!(drain(&mut g, 0, &caught_up()), vec![(0, 100, true)]);
    }

    #[test]
    fn disabled_idling_never_waits() {
        let mut g = group(MAX_TASK_IDLE_MS_DISABLED);
        push(&mut g, 1, 0, 200);
        push(&mut g, 1, 1, 300);
        // Lag unknown for a: processed anyway, not counted as enforced.
        assert_eq!(
            drain(&mut g, 0, &Lags::default()),
            vec![(1, 200, false), (1, 300, false)]
        );
    }

    #[test]
    fn a_single_partition_never_waits() {
        let mut g = PartitionGroup::new(TASK, 10_000);
        g.add_partition(TopicPartition::new("a", 0));
        push(&mut g, 0, 0, 100);
        assert_eq!(drain(&mut g, 0, &Lags::default()), vec![(0, 100, false)]);
    }

    #[test]
    fn the_position_follows_records_and_the_end_of_the_partition() {
        let mut g = group(0);
        assert_eq!(g.position(1), None);
        g.reached_end(1, 7);
        assert_eq!(g.position(1), Some(7));
        push(&mut g, 1, 7, 10);
        assert_eq!(g.position(1), Some(8));
        // An end reported late (before the record above) does not move it back.
        g.reached_end(1, 7);
        assert_eq!(g.position(1), Some(8));
        assert_eq!(g.index_of("b", 0), Some(1));
        assert_eq!(g.index_of("b", 1), None);
        assert_eq!(g.next_offset_of("b", 0), Some(None));
        assert_eq!(g.next_offset_of("c", 0), None);
    }

    #[test]
    fn skipped_records_only_move_the_offset_to_commit() {
        let mut g = group(MAX_TASK_IDLE_MS_DISABLED);
        g.push(0, None, 0);
        push(&mut g, 0, 1, 100);
        let first = g
            .next_record(0, &Lags::default())
            .map(|n| n.queued.record.is_none());
        assert_eq!(first, Some(true));
        assert_eq!(g.next_offset_of("a", 0), Some(Some(1)));
    }
}
