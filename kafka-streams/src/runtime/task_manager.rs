//! [`TaskManager`] (Kafka's `TaskManager`): a stream thread's tasks. It turns an
//! assignment into tasks `(sub-topology, partition)`, opens their stores and hands
//! logged ones to the changelog reader, and on revocation or shutdown commits and
//! closes them. The thread's loop (`thread.rs`) asks it for the task of each record,
//! and to process, punctuate and commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_client::TopicPartition;

use super::commit::{commit_tasks, OffsetCommitter};
use super::metrics::ThreadMetrics;
use super::partition_group::FetchedLags;
use super::record_collector::RecordCollector;
use super::restore::ChangelogReader;
use super::streams::ClientShared;
use super::task::{StreamTask, TaskEnv};
use crate::error::{Result, StreamsError};
use crate::processor::{PunctuationType, TaskId};
use crate::state::ChangelogPartition;
use crate::topology::Topology;

/// The tasks of one stream thread.
pub(crate) struct TaskManager {
    topology: Arc<Topology>,
    env: Arc<TaskEnv>,
    tasks: BTreeMap<TaskId, StreamTask>,
    /// The sub-topology reading each (resolved) source topic. A list, not a map:
    /// topologies read a few topics, and a scan beats hashing the name of every
    /// record.
    sub_of_topic: Vec<(String, usize)>,
    /// The thread's share of `statestore.cache.max.bytes`, shared by its tasks.
    cache_budget: crate::state::CacheBudget,
    /// The thread's metrics, which list its tasks'.
    thread_metrics: Arc<ThreadMetrics>,
    /// When the tasks' `records-lag` was last refreshed.
    lags_refreshed: Option<Instant>,
}

/// Reads the metadata committed with input partitions: per partition with a
/// committed offset, its metadata string's bytes.
pub(crate) type CommittedMetadata<'a> =
    dyn Fn(&[TopicPartition]) -> Result<Vec<(TopicPartition, Vec<u8>)>> + 'a;

/// How often the tasks' `records-lag` metrics are refreshed from the consumer's
/// cached watermarks.
const LAG_REFRESH: Duration = Duration::from_secs(1);

/// What an assignment changed.
pub(crate) struct Assigned {
    /// Every task of the assignment, sorted.
    pub tasks: Vec<TaskId>,
    /// Input partitions of the new tasks that restore their stores first: paused
    /// until they are done.
    pub restoring: Vec<TopicPartition>,
}

impl TaskManager {
    /// A manager without tasks, for the topology's sub-topologies.
    pub fn new(
        topology: Arc<Topology>,
        env: Arc<TaskEnv>,
        cache_budget: crate::state::CacheBudget,
        thread_metrics: Arc<ThreadMetrics>,
    ) -> Self {
        let mut sub_of_topic = Vec::new();
        for sub in &topology.subtopologies {
            for t in &sub.source_topics {
                sub_of_topic.push((topology.resolve_topic(&env.application_id, t), sub.id));
            }
        }
        TaskManager {
            topology,
            env,
            tasks: BTreeMap::new(),
            sub_of_topic,
            cache_budget,
            thread_metrics,
            lags_refreshed: None,
        }
    }

    /// The (resolved) topics the thread subscribes to.
    pub fn source_topics(&self) -> impl Iterator<Item = &str> {
        self.sub_of_topic.iter().map(|(t, _)| t.as_str())
    }

    /// The tasks, by id.
    pub fn tasks(&self) -> &BTreeMap<TaskId, StreamTask> {
        &self.tasks
    }

    /// The tasks, by id, for restoring and querying them.
    pub fn tasks_mut(&mut self) -> &mut BTreeMap<TaskId, StreamTask> {
        &mut self.tasks
    }

    fn sub_of(&self, topic: &str) -> Option<usize> {
        self.sub_of_topic
            .iter()
            .find(|(t, _)| t.as_str() == topic)
            .map(|&(_, sub)| sub)
    }

    /// The task reading `topic`/`partition`, if the thread has it.
    pub fn task_for(&mut self, topic: &str, partition: i32) -> Option<&mut StreamTask> {
        let subtopology = self.sub_of(topic)?;
        self.tasks.get_mut(&TaskId {
            subtopology,
            partition,
        })
    }

    /// The input partitions of every task.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.tasks.values().flat_map(StreamTask::partitions)
    }

    /// Whether any task is processing.
    pub fn any_running(&self) -> bool {
        self.tasks.values().any(StreamTask::is_running)
    }

    /// Creates the tasks of the newly assigned `partitions` (existing ones stay):
    /// opens their stores, and registers the logged ones with `reader`; a task with
    /// nothing to restore starts at once. `committed` reads the group's committed
    /// offset of an input partition (the end of a source table's restore);
    /// `committed_metadata` the metadata committed with a new task's input offsets,
    /// which holds its processor metadata (see `offset_metadata.rs`).
    pub fn handle_assignment(
        &mut self,
        partitions: &[(String, i32)],
        reader: &mut ChangelogReader,
        committed: &dyn Fn(&ChangelogPartition) -> Result<Option<i64>>,
        committed_metadata: &CommittedMetadata<'_>,
        shared: &ClientShared,
        wall_clock: i64,
    ) -> Result<Assigned> {
        let mut ids: Vec<TaskId> = Vec::new();
        for (topic, partition) in partitions {
            let Some(sub) = self.sub_of(topic) else {
                return Err(StreamsError::Internal(format!(
                    "assigned topic {topic} is not read by the topology"
                )));
            };
            let id = TaskId {
                subtopology: sub,
                partition: *partition,
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut restoring = Vec::new();
        for id in &ids {
            if self.tasks.contains_key(id) {
                continue;
            }
            // A standby of the task here closes first: the task reopens its stores
            // and restores only what follows their checkpoints.
            shared.standbys().activate(*id);
            let sub = &self.topology.subtopologies[id.subtopology];
            let opened = StreamTask::new(&self.topology, sub, id.partition, self.env.clone())
                .and_then(|mut task| {
                    task.set_cache_budget(self.cache_budget.clone());
                    let inputs: Vec<TopicPartition> = task.partitions().cloned().collect();
                    let metadata = committed_metadata(&inputs)?;
                    task.init_processor_metadata(metadata.iter().map(|(tp, m)| (tp, m.as_slice())));
                    task.init_stores()?;
                    Ok(task)
                });
            let mut task = opened.inspect_err(|_| shared.standbys().deactivate(*id))?;
            self.thread_metrics.add_task(task.metrics().clone());
            // Its lags are reported from the next round on.
            self.lags_refreshed = None;
            if reader.register(&mut task, committed)? {
                shared.set_restoring(*id, true);
                // Its input waits until the stores are restored; the thread's other
                // tasks keep processing meanwhile.
                restoring.extend(task.partitions().cloned());
            } else {
                task.complete_restoration(wall_clock)?;
            }
            self.tasks.insert(*id, task);
        }
        ids.sort();
        Ok(Assigned {
            tasks: ids,
            restoring,
        })
    }

    /// Revocation: commits every task, then closes them. Returns the closed tasks.
    pub fn handle_revocation(
        &mut self,
        collector: &mut dyn RecordCollector,
        committer: &mut dyn OffsetCommitter,
        reader: &mut ChangelogReader,
        shared: &ClientShared,
    ) -> Result<Vec<TaskId>> {
        if self.tasks.is_empty() {
            return Ok(Vec::new());
        }
        self.commit_all(collector, committer, true)?;
        let closed: Vec<TaskId> = self.tasks.keys().copied().collect();
        self.close_all(reader, shared);
        Ok(closed)
    }

    /// Gives up every task without committing (Kafka's `handleLostAll`, after a
    /// fenced or failed transaction under exactly-once): the tasks close dirty, so
    /// their stores, which may hold writes of the aborted transaction, have no
    /// checkpoint and are wiped and restored from their changelogs when the tasks are
    /// created again. Returns the closed tasks.
    pub fn handle_lost_all(
        &mut self,
        reader: &mut ChangelogReader,
        shared: &ClientShared,
    ) -> Vec<TaskId> {
        let lost: Vec<TaskId> = self.tasks.keys().copied().collect();
        self.close_all(reader, shared);
        lost
    }

    /// Shutdown: a clean one commits first; a dirty one (after a failure) does not,
    /// so the failed records are processed again by whoever takes the partitions.
    /// The tasks are closed either way.
    pub fn shutdown(
        &mut self,
        clean: bool,
        collector: &mut dyn RecordCollector,
        committer: &mut dyn OffsetCommitter,
        reader: &mut ChangelogReader,
        shared: &ClientShared,
    ) -> Result<()> {
        let committed = if clean {
            self.commit_all(collector, committer, true).map(|_| ())
        } else {
            Ok(())
        };
        self.close_all(reader, shared);
        committed
    }

    fn close_all(&mut self, reader: &mut ChangelogReader, shared: &ClientShared) {
        for (id, task) in self.tasks.iter_mut() {
            task.close();
            shared.set_restoring(*id, false);
            shared.standbys().deactivate(*id);
            self.thread_metrics.remove_task(*id);
        }
        self.tasks.clear();
        reader.clear();
    }

    /// Commits every task (the single commit path, `commit.rs`). Returns how many
    /// partitions' offsets were committed.
    pub fn commit(
        &mut self,
        collector: &mut dyn RecordCollector,
        committer: &mut dyn OffsetCommitter,
    ) -> Result<usize> {
        let started = Instant::now();
        let committed = self.commit_all(collector, committer, false)?;
        if committed > 0 {
            self.thread_metrics.record_commit(started);
        }
        Ok(committed)
    }

    /// The thread's metrics.
    pub fn thread_metrics(&self) -> &ThreadMetrics {
        &self.thread_metrics
    }

    /// Commits every task; `closing`: they close next, cleanly (see `commit.rs`).
    fn commit_all(
        &mut self,
        collector: &mut dyn RecordCollector,
        committer: &mut dyn OffsetCommitter,
        closing: bool,
    ) -> Result<usize> {
        commit_tasks(
            self.tasks.values_mut(),
            collector,
            committer,
            &self.env.metrics,
            closing,
        )
    }

    /// Processes what every task can process now, then runs the wall-clock
    /// punctuations due.
    pub fn process(
        &mut self,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
        lags: &dyn FetchedLags,
    ) -> Result<()> {
        if self
            .lags_refreshed
            .is_none_or(|at| at.elapsed() >= LAG_REFRESH)
        {
            self.lags_refreshed = Some(Instant::now());
            for task in self.tasks.values() {
                task.metrics().set_lags(task.partitions().map(|tp| {
                    let lag = lags.lag(tp, task.position(&tp.topic, tp.partition));
                    (tp.clone(), lag)
                }));
            }
        }
        for task in self.tasks.values_mut() {
            task.process_all(collector, wall_clock, lags)?;
            task.maybe_punctuate(
                PunctuationType::WallClockTime,
                wall_clock,
                collector,
                wall_clock,
            )?;
        }
        Ok(())
    }

    /// Starts the tasks whose stores `reader` finished restoring: their processors
    /// are initialised. Returns their input partitions, to resume.
    pub fn complete_restoration(
        &mut self,
        done: Vec<TaskId>,
        shared: &ClientShared,
        wall_clock: i64,
    ) -> Result<Vec<TopicPartition>> {
        let mut resume = Vec::new();
        for id in done {
            if let Some(task) = self.tasks.get_mut(&id) {
                task.complete_restoration(wall_clock)?;
                shared.set_restoring(id, false);
                resume.extend(task.partitions().cloned());
                tracing::info!(task = %id, "task restored; processing starts");
            }
        }
        Ok(resume)
    }

    /// The consumer reached the end of `topic`/`partition` at `offset`.
    pub fn reached_end(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(task) = self.task_for(topic, partition) {
            task.reached_end(topic, partition, offset);
        }
    }
}
