//! Metrics of a Kafka Streams client, shared by its stream threads and tasks: the
//! client's counters, and per stream thread, task and store what Kafka's thread, task
//! and store metrics report (see [`MetricsSnapshot`]).
//!
//! Each figure is written by the one thread that owns it (a stream thread writes its
//! own, its tasks' and their stores' figures) and read by snapshots: single-writer
//! counters are a relaxed load and store, so the hot path takes no lock. The
//! registries of threads, tasks and restores are locked only when they change (tasks
//! assigned or closed, restores starting) and by snapshots.
//!
//! Rates are since start, not Kafka's sampled 30-s windows: a thread's or task's
//! `…-rate` is its `…-total` divided by its uptime (a scraper that wants a windowed
//! rate derives it from the totals, e.g. Prometheus' `rate()`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_client::TopicPartition;

use crate::processor::TaskId;
use crate::state::{
    ChangelogPartition, LatencySnapshot, LatencyStat, StateRestoreListener, StoreMetricsRegistry,
    StoreRestoreProgress,
};

/// Live counters and the registries of the client's threads and restores.
#[derive(Debug)]
pub struct StreamsMetrics {
    processed: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    processing_errors_skipped: AtomicU64,
    production_errors_skipped: AtomicU64,
    produced: AtomicU64,
    commits: AtomicU64,
    punctuations: AtomicU64,
    enforced_processing: AtomicU64,
    /// The stream threads (and the test driver's pseudo-thread), by name.
    threads: Mutex<BTreeMap<String, Arc<ThreadMetrics>>>,
    /// Store restores, by store and changelog partition.
    restores: Mutex<BTreeMap<RestoreKey, RestoreState>>,
}

impl Default for StreamsMetrics {
    fn default() -> Self {
        StreamsMetrics {
            processed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            processing_errors_skipped: AtomicU64::new(0),
            production_errors_skipped: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            punctuations: AtomicU64::new(0),
            enforced_processing: AtomicU64::new(0),
            threads: Mutex::new(BTreeMap::new()),
            restores: Mutex::new(BTreeMap::new()),
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A point-in-time copy of a client's metrics, from
/// [`KafkaStreams::metrics`](super::KafkaStreams::metrics): the client's counters, then
/// per stream thread ([`ThreadMetricsSnapshot`]), per task ([`TaskMetricsSnapshot`]),
/// per store ([`StoreMetricsSnapshot`]) and per store restore
/// ([`StoreRestoreProgress`]) what Kafka's thread, task, store and restore metrics
/// report. Rates are since start (see [`ThreadMetricsSnapshot::process_rate`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Input records processed through the topology.
    pub processed_records: u64,
    /// Input records skipped: undeserializable with log-and-continue, or with an
    /// invalid timestamp; and records a processor dropped, such as a windowed
    /// aggregation's record for a window already closed (counted once per closed
    /// window it falls in, as Kafka does). Kafka's task-level `dropped-records`,
    /// summed over the client's tasks (including closed ones).
    pub skipped_records: u64,
    /// Input records sent to the dead-letter topic.
    pub dead_lettered_records: u64,
    /// Records skipped after a processing error with log-and-continue.
    pub processing_errors_skipped: u64,
    /// Records skipped after a production error with continue.
    pub production_errors_skipped: u64,
    /// Records handed to the producer.
    pub produced_records: u64,
    /// Commits completed.
    pub commits: u64,
    /// Punctuations run.
    pub punctuations: u64,
    /// Records a task processed although one of its inputs had no buffered record,
    /// after waiting `max.task.idle.ms` for it (Kafka's task metric
    /// `enforced-processing-total`): they may be out of timestamp order across the
    /// task's inputs.
    pub enforced_processing_total: u64,
    /// The stream threads, by name (the test driver reports one, `TopologyTestDriver`).
    pub threads: Vec<ThreadMetricsSnapshot>,
    /// Store restores started since the client started, by store and changelog
    /// partition (Kafka's `restore-*` task metrics, plus percent and ETA). A store
    /// found up to date shows as done with nothing restored.
    pub restores: Vec<StoreRestoreProgress>,
}

impl MetricsSnapshot {
    /// Every task of every thread.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskMetricsSnapshot> {
        self.threads.iter().flat_map(|t| t.tasks.iter())
    }

    /// Every store of every task.
    pub fn stores(&self) -> impl Iterator<Item = &StoreMetricsSnapshot> {
        self.tasks().flat_map(|t| t.stores.iter())
    }
}

/// A stream thread's metrics (Kafka's thread-level `stream-thread-metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadMetricsSnapshot {
    /// The thread's name, `<application.id>-StreamThread-<n>` (Kafka's `thread-id`).
    pub thread: String,
    /// Time since the thread started.
    pub uptime: Duration,
    /// Records its tasks processed, closed tasks included (`process-total`).
    pub process_total: u64,
    /// `process_total` per second of uptime (`process-rate`, since start).
    pub process_rate: f64,
    /// Polls that returned records (`poll-total`, counting polls with records only).
    pub poll_total: u64,
    /// Mean records per poll that returned any (`poll-records-avg`).
    pub poll_records_avg: f64,
    /// Most records one poll returned (`poll-records-max`).
    pub poll_records_max: u64,
    /// Commits that committed something (`commit-total`).
    pub commit_total: u64,
    /// `commit_total` per second of uptime (`commit-rate`, since start).
    pub commit_rate: f64,
    /// Mean commit duration (`commit-latency-avg`).
    pub commit_latency_avg: Duration,
    /// Longest commit (`commit-latency-max`).
    pub commit_latency_max: Duration,
    /// Records its tasks' processors dropped, closed tasks included
    /// (`dropped-records-total`).
    pub dropped_records_total: u64,
    /// The thread's tasks now, by id.
    pub tasks: Vec<TaskMetricsSnapshot>,
}

/// A task's metrics (Kafka's `stream-task-metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMetricsSnapshot {
    /// The task (Kafka's `task-id`, `<sub-topology>_<partition>`).
    pub task: TaskId,
    /// Time since the task was created.
    pub uptime: Duration,
    /// Records processed (`process-total`).
    pub process_total: u64,
    /// `process_total` per second of uptime (`process-rate`, since start).
    pub process_rate: f64,
    /// Mean time to process one record through the sub-topology
    /// (`process-latency-avg`).
    pub process_latency_avg: Duration,
    /// Longest (`process-latency-max`).
    pub process_latency_max: Duration,
    /// Records processors dropped (`dropped-records-total`): late records of closed
    /// windows, join records without a key, … (Deserialization skips count in the
    /// client's [`MetricsSnapshot::skipped_records`].)
    pub dropped_records_total: u64,
    /// End-to-end latency of processed records: processing (wall-clock) time minus
    /// the record's timestamp, in milliseconds, measured where the record enters
    /// the task (Kafka's `record-e2e-latency-avg/min/max` of the source node).
    /// `None` before the first record.
    pub record_e2e_latency_avg_ms: Option<f64>,
    /// Smallest (`record-e2e-latency-min`).
    pub record_e2e_latency_min_ms: Option<i64>,
    /// Largest (`record-e2e-latency-max`).
    pub record_e2e_latency_max_ms: Option<i64>,
    /// Per input partition, the records after the task's position: the consumer's
    /// cached high watermark minus the next offset to fetch (Kafka's consumer
    /// `records-lag`), refreshed about every second while the thread runs.
    pub records_lag: Vec<PartitionLag>,
    /// The task's key-value stores.
    pub stores: Vec<StoreMetricsSnapshot>,
}

/// The lag of one input partition of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The input topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Records between the task's position and the high watermark (`records-lag`);
    /// `None` until both are known.
    pub records_lag: Option<i64>,
}

/// A state store's operation latencies (Kafka's `stream-state-metrics`), for
/// key-value and window stores (session stores are not timed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMetricsSnapshot {
    /// The store's name.
    pub store: String,
    /// The task owning this instance.
    pub task: TaskId,
    /// Puts (`put-total`, `put-latency-avg` = [`LatencySnapshot::avg`],
    /// `put-latency-max`); a `put_all` counts each entry.
    pub put: LatencySnapshot,
    /// Gets (`get-total`, `get-latency-avg`, `get-latency-max`); for a window store,
    /// fetches of one window (Kafka's `fetch-latency-*`).
    pub get: LatencySnapshot,
    /// Deletes (`delete-total`, `delete-latency-avg`, `delete-latency-max`).
    pub delete: LatencySnapshot,
}

/// Count, sum, minimum and maximum of a signed value, written by one thread.
#[derive(Debug)]
pub(crate) struct ValueStat {
    count: AtomicU64,
    total: AtomicI64,
    min: AtomicI64,
    max: AtomicI64,
}

impl Default for ValueStat {
    fn default() -> Self {
        ValueStat {
            count: AtomicU64::new(0),
            total: AtomicI64::new(0),
            min: AtomicI64::new(i64::MAX),
            max: AtomicI64::new(i64::MIN),
        }
    }
}

impl ValueStat {
    /// Records `value`; only the owning thread calls it (single writer).
    pub(crate) fn record(&self, value: i64) {
        let count = self.count.load(Ordering::Relaxed);
        self.count.store(count + 1, Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        self.total
            .store(total.saturating_add(value), Ordering::Relaxed);
        if value < self.min.load(Ordering::Relaxed) {
            self.min.store(value, Ordering::Relaxed);
        }
        if value > self.max.load(Ordering::Relaxed) {
            self.max.store(value, Ordering::Relaxed);
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn avg(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| self.total.load(Ordering::Relaxed) as f64 / count as f64)
    }

    fn min(&self) -> Option<i64> {
        (self.count() > 0).then(|| self.min.load(Ordering::Relaxed))
    }

    fn max(&self) -> Option<i64> {
        (self.count() > 0).then(|| self.max.load(Ordering::Relaxed))
    }
}

fn per_second(total: u64, uptime: Duration) -> f64 {
    let secs = uptime.as_secs_f64();
    if secs > 0.0 {
        total as f64 / secs
    } else {
        0.0
    }
}

/// One task's live figures; the task writes them, the registry of its thread holds
/// them for snapshots.
#[derive(Debug)]
pub(crate) struct TaskMetrics {
    id: TaskId,
    started: Instant,
    /// Per processed record: its duration (and so `process-total`).
    pub process: LatencyStat,
    /// Per processed record: wall-clock ms minus its timestamp.
    pub e2e_latency_ms: ValueStat,
    /// Records the task's processors dropped (they increment it concurrently-safe).
    pub dropped: AtomicU64,
    /// Where the task's stores register their latencies.
    pub stores: StoreMetricsRegistry,
    lags: Mutex<Vec<PartitionLag>>,
}

impl TaskMetrics {
    pub(crate) fn new(id: TaskId) -> Self {
        TaskMetrics {
            id,
            started: Instant::now(),
            process: LatencyStat::default(),
            e2e_latency_ms: ValueStat::default(),
            dropped: AtomicU64::new(0),
            stores: StoreMetricsRegistry::default(),
            lags: Mutex::new(Vec::new()),
        }
    }

    /// Records one processed record: `started` before it entered the sub-topology,
    /// its timestamp and the wall-clock time it was processed at.
    pub(crate) fn record_processed(&self, started: Instant, timestamp: i64, wall_clock: i64) {
        self.process.record_since(started);
        self.e2e_latency_ms
            .record(wall_clock.saturating_sub(timestamp));
    }

    /// Sets the lags of the task's input partitions.
    pub(crate) fn set_lags(&self, lags: impl IntoIterator<Item = (TopicPartition, Option<i64>)>) {
        let lags = lags
            .into_iter()
            .map(|(tp, lag)| PartitionLag {
                topic: tp.topic,
                partition: tp.partition,
                records_lag: lag,
            })
            .collect();
        *locked(&self.lags) = lags;
    }

    fn snapshot(&self, now: Instant) -> TaskMetricsSnapshot {
        let uptime = now.saturating_duration_since(self.started);
        let process = self.process.snapshot();
        TaskMetricsSnapshot {
            task: self.id,
            uptime,
            process_total: process.count,
            process_rate: per_second(process.count, uptime),
            process_latency_avg: process.avg(),
            process_latency_max: process.max,
            dropped_records_total: self.dropped.load(Ordering::Relaxed),
            record_e2e_latency_avg_ms: self.e2e_latency_ms.avg(),
            record_e2e_latency_min_ms: self.e2e_latency_ms.min(),
            record_e2e_latency_max_ms: self.e2e_latency_ms.max(),
            records_lag: locked(&self.lags).clone(),
            stores: self
                .stores
                .stores()
                .iter()
                .map(|s| StoreMetricsSnapshot {
                    store: s.store.clone(),
                    task: self.id,
                    put: s.put.snapshot(),
                    get: s.get.snapshot(),
                    delete: s.delete.snapshot(),
                })
                .collect(),
        }
    }
}

/// Totals of a thread's closed tasks, so that its totals do not go down.
#[derive(Debug, Default, Clone, Copy)]
struct Retired {
    processed: u64,
    dropped: u64,
}

/// One stream thread's live figures and its tasks.
#[derive(Debug)]
pub(crate) struct ThreadMetrics {
    name: String,
    started: Instant,
    /// Records per poll that returned any.
    poll_records: ValueStat,
    /// Commits that committed something.
    commit: LatencyStat,
    tasks: Mutex<BTreeMap<TaskId, Arc<TaskMetrics>>>,
    retired: Mutex<Retired>,
}

impl ThreadMetrics {
    fn new(name: &str) -> Self {
        ThreadMetrics {
            name: name.to_owned(),
            started: Instant::now(),
            poll_records: ValueStat::default(),
            commit: LatencyStat::default(),
            tasks: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Retired::default()),
        }
    }

    /// A poll returned `records` records (polls without any are not counted).
    pub(crate) fn record_poll(&self, records: usize) {
        if records > 0 {
            self.poll_records
                .record(i64::try_from(records).unwrap_or(i64::MAX));
        }
    }

    /// A commit that committed something took the time since `started`.
    pub(crate) fn record_commit(&self, started: Instant) {
        self.commit.record_since(started);
    }

    /// The thread now owns the task with these metrics.
    pub(crate) fn add_task(&self, task: Arc<TaskMetrics>) {
        locked(&self.tasks).insert(task.id, task);
    }

    /// The thread closed task `id`: its totals stay in the thread's.
    pub(crate) fn remove_task(&self, id: TaskId) {
        if let Some(task) = locked(&self.tasks).remove(&id) {
            let mut retired = locked(&self.retired);
            retired.processed += task.process.snapshot().count;
            retired.dropped += task.dropped.load(Ordering::Relaxed);
        }
    }

    fn snapshot(&self, now: Instant) -> ThreadMetricsSnapshot {
        let uptime = now.saturating_duration_since(self.started);
        let tasks: Vec<TaskMetricsSnapshot> = locked(&self.tasks)
            .values()
            .map(|t| t.snapshot(now))
            .collect();
        let retired = *locked(&self.retired);
        let process_total = retired.processed + tasks.iter().map(|t| t.process_total).sum::<u64>();
        let commit = self.commit.snapshot();
        ThreadMetricsSnapshot {
            thread: self.name.clone(),
            uptime,
            process_total,
            process_rate: per_second(process_total, uptime),
            poll_total: self.poll_records.count(),
            poll_records_avg: self.poll_records.avg().unwrap_or(0.0),
            poll_records_max: self
                .poll_records
                .max()
                .and_then(|m| u64::try_from(m).ok())
                .unwrap_or(0),
            commit_total: commit.count,
            commit_rate: per_second(commit.count, uptime),
            commit_latency_avg: commit.avg(),
            commit_latency_max: commit.max,
            dropped_records_total: retired.dropped
                + tasks.iter().map(|t| t.dropped_records_total).sum::<u64>(),
            tasks,
        }
    }
}

/// A restore's key: store, changelog topic and partition.
type RestoreKey = (String, String, i32);

fn restore_key(store: &str, changelog: &ChangelogPartition) -> RestoreKey {
    (
        store.to_owned(),
        changelog.topic.clone(),
        changelog.partition,
    )
}

/// One store restore as the metrics see it.
#[derive(Debug, Clone)]
struct RestoreState {
    start_offset: i64,
    end_offset: i64,
    /// Next offset to read.
    position: i64,
    restored: u64,
    started: Instant,
    /// When it ended.
    ended: Option<Instant>,
}

/// Records restores into the client's metrics, then tells the user's listener.
pub(crate) struct MetricsRestoreListener {
    metrics: Arc<StreamsMetrics>,
    user: Option<Arc<dyn StateRestoreListener>>,
}

impl MetricsRestoreListener {
    /// The listener a restore loop gets: the metrics, then `user`'s listener.
    pub(crate) fn wrap(
        metrics: Arc<StreamsMetrics>,
        user: Option<Arc<dyn StateRestoreListener>>,
    ) -> Arc<dyn StateRestoreListener> {
        Arc::new(MetricsRestoreListener { metrics, user })
    }

    fn update(
        &self,
        changelog: &ChangelogPartition,
        store: &str,
        f: impl FnOnce(&mut RestoreState),
    ) {
        let mut restores = locked(&self.metrics.restores);
        if let Some(state) = restores.get_mut(&restore_key(store, changelog)) {
            f(state);
        }
    }
}

impl StateRestoreListener for MetricsRestoreListener {
    fn on_restore_start(
        &self,
        changelog: &ChangelogPartition,
        store: &str,
        start_offset: i64,
        end_offset: i64,
    ) {
        locked(&self.metrics.restores).insert(
            restore_key(store, changelog),
            RestoreState {
                start_offset,
                end_offset,
                position: start_offset,
                restored: 0,
                started: Instant::now(),
                ended: None,
            },
        );
        if let Some(user) = &self.user {
            user.on_restore_start(changelog, store, start_offset, end_offset);
        }
    }

    fn on_batch_restored(
        &self,
        changelog: &ChangelogPartition,
        store: &str,
        batch_end_offset: i64,
        num_restored: u64,
    ) {
        self.update(changelog, store, |s| {
            s.restored += num_restored;
            s.position = s.position.max(batch_end_offset.saturating_add(1));
        });
        if let Some(user) = &self.user {
            user.on_batch_restored(changelog, store, batch_end_offset, num_restored);
        }
    }

    fn on_restore_progress(&self, progress: &StoreRestoreProgress) {
        if let Some(user) = &self.user {
            user.on_restore_progress(progress);
        }
    }

    fn on_restore_end(&self, changelog: &ChangelogPartition, store: &str, total_restored: u64) {
        self.update(changelog, store, |s| {
            s.restored = total_restored;
            s.position = s.position.max(s.end_offset);
            s.ended = Some(Instant::now());
        });
        if let Some(user) = &self.user {
            user.on_restore_end(changelog, store, total_restored);
        }
    }
}

impl StreamsMetrics {
    /// A copy of the metrics.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = Instant::now();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let threads: Vec<ThreadMetricsSnapshot> = locked(&self.threads)
            .values()
            .map(|t| t.snapshot(now))
            .collect();
        let dropped: u64 = threads.iter().map(|t| t.dropped_records_total).sum();
        let restores = locked(&self.restores)
            .iter()
            .map(|((store, topic, partition), s)| StoreRestoreProgress {
                store: store.clone(),
                changelog: ChangelogPartition {
                    topic: topic.clone(),
                    partition: *partition,
                },
                start_offset: s.start_offset,
                end_offset: s.end_offset,
                restored: s.restored,
                remaining: u64::try_from(s.end_offset.saturating_sub(s.position)).unwrap_or(0),
                elapsed: s.ended.unwrap_or(now).saturating_duration_since(s.started),
                done: s.ended.is_some(),
            })
            .collect();
        MetricsSnapshot {
            processed_records: get(&self.processed),
            skipped_records: get(&self.skipped) + dropped,
            dead_lettered_records: get(&self.dead_lettered),
            processing_errors_skipped: get(&self.processing_errors_skipped),
            production_errors_skipped: get(&self.production_errors_skipped),
            produced_records: get(&self.produced),
            commits: get(&self.commits),
            punctuations: get(&self.punctuations),
            enforced_processing_total: get(&self.enforced_processing),
            threads,
            restores,
        }
    }

    /// Registers stream thread `name`. A thread replacing one of that name that
    /// ended (`ReplaceThread`) takes over its totals, so the client's do not go down.
    pub(crate) fn register_thread(&self, name: &str) -> Arc<ThreadMetrics> {
        let thread = ThreadMetrics::new(name);
        let mut threads = locked(&self.threads);
        if let Some(previous) = threads.get(name) {
            let mut carried = *locked(&previous.retired);
            for task in locked(&previous.tasks).values() {
                carried.processed += task.process.snapshot().count;
                carried.dropped += task.dropped.load(Ordering::Relaxed);
            }
            *locked(&thread.retired) = carried;
        }
        let thread = Arc::new(thread);
        threads.insert(name.to_owned(), thread.clone());
        thread
    }

    pub(crate) fn processed(&self) {
        self.processed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn processing_error_skipped(&self) {
        self.processing_errors_skipped
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn production_error_skipped(&self) {
        self.production_errors_skipped
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn produced(&self) {
        self.produced.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn punctuated(&self) {
        self.punctuations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn enforced_processing(&self) {
        self.enforced_processing.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(subtopology: usize, partition: i32) -> Arc<TaskMetrics> {
        Arc::new(TaskMetrics::new(TaskId {
            subtopology,
            partition,
        }))
    }

    #[test]
    fn thread_totals_keep_closed_tasks_and_survive_a_replaced_thread() {
        let metrics = StreamsMetrics::default();
        let thread = metrics.register_thread("app-StreamThread-1");
        let (a, b) = (task(0, 0), task(0, 1));
        thread.add_task(a.clone());
        thread.add_task(b.clone());
        let started = Instant::now();
        a.record_processed(started, 1_000, 1_250);
        b.record_processed(started, 1_000, 1_010);
        b.record_processed(started, 1_000, 1_030);
        a.dropped.fetch_add(2, Ordering::Relaxed);
        thread.record_poll(0);
        thread.record_poll(3);
        thread.record_poll(5);
        thread.record_commit(started);
        metrics.skipped();

        let m = metrics.snapshot();
        let t = &m.threads[0];
        assert_eq!((t.process_total, t.dropped_records_total), (3, 2));
        assert_eq!((t.poll_total, t.poll_records_max), (2, 5));
        assert_eq!(t.poll_records_avg, 4.0);
        assert_eq!(t.commit_total, 1);
        assert_eq!(m.skipped_records, 3, "deserialization skips and drops");
        let tb = m.tasks().find(|t| t.task.partition == 1).unwrap();
        assert_eq!(tb.record_e2e_latency_min_ms, Some(10));
        assert_eq!(tb.record_e2e_latency_max_ms, Some(30));
        assert_eq!(tb.record_e2e_latency_avg_ms, Some(20.0));
        assert_eq!(tb.process_total, 2);

        // A closed task's totals stay in its thread's.
        thread.remove_task(a.id);
        let t = &metrics.snapshot().threads[0];
        assert_eq!(t.tasks.len(), 1);
        assert_eq!((t.process_total, t.dropped_records_total), (3, 2));

        // A replacement thread of the same name carries them on.
        let replacement = metrics.register_thread("app-StreamThread-1");
        replacement.add_task(task(0, 0));
        let m = metrics.snapshot();
        assert_eq!(m.threads.len(), 1);
        assert_eq!(m.threads[0].process_total, 3);
        assert_eq!(m.skipped_records, 3);
    }

    #[test]
    fn restores_are_tracked_through_the_listener() {
        let metrics = Arc::new(StreamsMetrics::default());
        let listener = MetricsRestoreListener::wrap(metrics.clone(), None);
        let changelog = ChangelogPartition {
            topic: "app-counts-changelog".into(),
            partition: 2,
        };
        listener.on_restore_start(&changelog, "counts", 100, 1_100);
        listener.on_batch_restored(&changelog, "counts", 599, 450);
        let r = metrics.snapshot().restores[0].clone();
        assert_eq!((r.restored, r.remaining, r.total()), (450, 500, 1_000));
        assert_eq!(r.percent(), 50.0);
        assert!(!r.done);
        listener.on_restore_end(&changelog, "counts", 900);
        let r = metrics.snapshot().restores[0].clone();
        assert!(r.done);
        assert_eq!((r.restored, r.remaining), (900, 0));
        assert_eq!(r.percent(), 100.0);
    }
}
