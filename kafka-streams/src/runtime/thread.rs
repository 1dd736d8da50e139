//! A stream thread: one consumer, one producer, the tasks of its partitions, and the
//! poll → process → punctuate → commit loop (Kafka's `StreamThread` and
//! `TaskManager`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_client::internal::{FetchQueue, FetchedBatch};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Offset};

use super::collector::RecordCollector;
use super::commit::commit_tasks;
use super::kafka::{fetched_record, raw_record, KafkaCollector, KafkaCommitter};
use super::membership::claim_record;
use super::restore::ChangelogReader;
use super::streams::ClientShared;
use super::task::{StreamTask, TaskEnv};
use crate::error::{Result, StreamsError};
use crate::processor::{PunctuationType, TaskId};
use crate::state::ChangelogPartition;
use crate::topology::codec::RawRecord;
use crate::topology::Topology;

/// A stream thread's state (Kafka's `StreamThread.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// Started, no assignment yet.
    Starting,
    /// Partitions revoked, waiting for the new assignment.
    PartitionsRevoked,
    /// Partitions assigned, tasks created.
    PartitionsAssigned,
    /// Processing.
    Running,
    /// Shutting down.
    PendingShutdown,
    /// Stopped.
    Dead,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the loop, the rebalance callbacks and interactive queries share.
pub(crate) struct ThreadCore {
    pub(crate) tasks: BTreeMap<TaskId, StreamTask>,
    collector: KafkaCollector,
    reader: ChangelogReader,
    /// The thread's share of `statestore.cache.max.bytes`.
    cache_budget: crate::state::CacheBudget,
    error: Option<StreamsError>,
    /// Bumped by every assignment and revocation, so the loop re-routes the input
    /// partitions to its fetch queue.
    assignment_generation: u64,
}

struct StreamsConsumerContext {
    index: usize,
    core: Arc<Mutex<ThreadCore>>,
    topology: Arc<Topology>,
    env: Arc<TaskEnv>,
    /// The subtopology reading each source topic. A list, not a map: topologies
    /// read a few topics, and a scan beats hashing the name of every record.
    sub_of_topic: Vec<(String, usize)>,
    shared: Arc<ClientShared>,
}

pub(crate) fn lock(core: &Mutex<ThreadCore>) -> MutexGuard<'_, ThreadCore> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for StreamsConsumerContext {}

/// Publishes the thread's claim on `partitions` to the metadata topic (see
/// `membership.rs`), when the instance has an `application.server`. A failure is
/// logged: it affects key lookups, not processing.
fn publish_claim(
    env: &TaskEnv,
    index: usize,
    collector: &mut KafkaCollector,
    partitions: Option<&[(String, i32)]>,
) {
    let Some(host) = &env.config.application_server else {
        return;
    };
    let sent = claim_record(&env.application_id, host, index, partitions, now_ms())
        .and_then(|record| collector.send(record, "streams-metadata", None));
    if let Err(error) = sent {
        tracing::warn!(thread = index, %error, "publishing the thread's partitions to the metadata topic failed");
    }
}

impl StreamsConsumerContext {
    fn sub_of(&self, topic: &str) -> Option<usize> {
        self.sub_of_topic
            .iter()
            .find(|(t, _)| t.as_str() == topic)
            .map(|&(_, sub)| sub)
    }

    fn revoke_all(&self, consumer: &BaseConsumer<Self>) -> Result<()> {
        let mut core = lock(&self.core);
        let core = &mut *core;
        publish_claim(&self.env, self.index, &mut core.collector, Some(&[]));
        if core.tasks.is_empty() {
            return Ok(());
        }
        commit_tasks(
            core.tasks.values_mut(),
            &mut core.collector,
            &mut KafkaCommitter { consumer },
            &self.env.metrics,
        )?;
        for task in core.tasks.values_mut() {
            task.close();
        }
        let closed: Vec<String> = core.tasks.keys().map(ToString::to_string).collect();
        for id in core.tasks.keys() {
            self.shared.set_restoring(*id, false);
        }
        core.tasks.clear();
        core.reader.clear();
        core.assignment_generation += 1;
        tracing::info!(thread = self.index, tasks = ?closed, "partitions revoked: committed and closed tasks");
        Ok(())
    }

    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &rdkafka::TopicPartitionList,
    ) -> Result<()> {
        let mut core = lock(&self.core);
        let core = &mut *core;
        let mut ids: Vec<TaskId> = Vec::new();
        for elem in tpl.elements() {
            let Some(sub) = self.sub_of(elem.topic()) else {
                return Err(StreamsError::Internal(format!(
                    "assigned topic {} is not read by the topology",
                    elem.topic()
                )));
            };
            let id = TaskId {
                subtopology: sub,
                partition: elem.partition(),
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let now = now_ms();
        let mut restoring = rdkafka::TopicPartitionList::new();
        for id in &ids {
            if core.tasks.contains_key(id) {
                continue;
            }
            let sub = &self.topology.subtopologies[id.subtopology];
            let mut task = StreamTask::new(&self.topology, sub, id.partition, self.env.clone())?;
            task.set_cache_budget(core.cache_budget.clone());
            task.init_stores()?;
            let committed = |changelog: &ChangelogPartition| committed_offset(consumer, changelog);
            if core.reader.register(&mut task, &committed)? {
                self.shared.set_restoring(*id, true);
                // Its input waits until the stores are restored; the thread's other
                // tasks keep processing meanwhile.
                for tp in task.partitions() {
                    restoring.add_partition(&tp.topic, tp.partition);
                }
            } else {
                task.complete_restoration(now)?;
            }
            core.tasks.insert(*id, task);
        }
        core.assignment_generation += 1;
        if restoring.count() > 0 {
            consumer.pause(&restoring).map_err(|e| {
                StreamsError::kafka(
                    "pausing the input of restoring tasks",
                    &self.env.application_id,
                    e,
                )
            })?;
        }
        let claimed: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        publish_claim(&self.env, self.index, &mut core.collector, Some(&claimed));
        if self.env.config.application_server.is_some() {
            // Key lookups read the claim: make it visible now, not at the next
            // commit (nothing else is in flight right after a rebalance).
            if let Err(error) = core.collector.flush() {
                tracing::warn!(thread = self.index, %error, "flushing the metadata claim failed");
            }
        }
        let mut names: Vec<String> = ids.iter().map(ToString::to_string).collect();
        names.sort();
        tracing::info!(thread = self.index, tasks = ?names, restoring = restoring.count(), "partitions assigned: tasks created");
        Ok(())
    }

    fn fail(&self, error: StreamsError) {
        let mut core = lock(&self.core);
        if core.error.is_none() {
            core.error = Some(error);
        }
    }
}

impl ConsumerContext for StreamsConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.shared
                .set_thread_state(self.index, ThreadState::PartitionsRevoked);
            if let Err(e) = self.revoke_all(consumer) {
                self.fail(e);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Err(e) = self.assign(consumer, tpl) {
                    self.fail(e);
                }
                self.shared
                    .set_thread_state(self.index, ThreadState::PartitionsAssigned);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(thread = self.index, error = %e, "rebalance error");
            }
        }
    }
}

/// Timeout of the committed-offset request made when a store restores from its
/// source topic.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(30);

/// The group's committed offset of `partition` (an input partition of the thread),
/// `None` when nothing is committed.
fn committed_offset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partition: &ChangelogPartition,
) -> Result<Option<i64>> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&partition.topic, partition.partition);
    let committed = consumer
        .committed_offsets(tpl, COMMITTED_TIMEOUT)
        .map_err(|e| {
            StreamsError::kafka(
                format!(
                    "reading the committed offset of partition {} (the end of its table's restore)",
                    partition.partition
                ),
                &partition.topic,
                e,
            )
        })?;
    let elem = committed.find_partition(&partition.topic, partition.partition);
    if let Some(Err(e)) = elem.as_ref().map(|e| e.error()) {
        return Err(StreamsError::kafka(
            format!(
                "reading the committed offset of partition {}",
                partition.partition
            ),
            &partition.topic,
            e,
        ));
    }
    Ok(elem.and_then(|e| match e.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }))
}

/// Runs stream thread `index` until shutdown or failure.
pub(crate) fn run_stream_thread(
    index: usize,
    topology: Arc<Topology>,
    env: Arc<TaskEnv>,
    shared: Arc<ClientShared>,
) -> Result<()> {
    let config = &env.config;
    let app = &env.application_id;
    let thread_name = format!("{app}-StreamThread-{index}");
    let consumer_client = config.client.clone().with_consumer_defaults();
    let mut consumer_config = consumer_client.to_rdkafka();
    consumer_config
        .set("group.id", app)
        .set("client.id", format!("{thread_name}-consumer"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "range");
    if config.client.get("auto.offset.reset").is_none() {
        consumer_config.set("auto.offset.reset", "earliest");
    }
    let mut producer_config = config.client.to_rdkafka();
    producer_config
        .set("client.id", format!("{thread_name}-producer"))
        .remove("group.id");
    if config.client.get("partitioner").is_none() {
        // Java-compatible key partitioning, so repartition topics agree with Kafka
        // Streams applications in other languages.
        producer_config.set("partitioner", "murmur2_random");
    }
    let collector = KafkaCollector::new(
        &producer_config,
        config.production_handler.clone(),
        env.metrics.clone(),
    )?;
    let reader = ChangelogReader::new(
        &consumer_client.to_rdkafka(),
        app,
        &thread_name,
        config.restore_listener.clone(),
        config.restore_max_poll_records,
    );
    let core = Arc::new(Mutex::new(ThreadCore {
        tasks: BTreeMap::new(),
        collector,
        reader,
        cache_budget: crate::state::CacheBudget::new(
            config.cache_max_bytes / config.num_stream_threads.max(1),
        ),
        error: None,
        assignment_generation: 0,
    }));
    shared.register_thread_core(index, core.clone());
    let mut sub_of_topic = Vec::new();
    let mut topics = Vec::new();
    for sub in &topology.subtopologies {
        for t in &sub.source_topics {
            let resolved = topology.resolve_topic(app, t);
            sub_of_topic.push((resolved.clone(), sub.id));
            topics.push(resolved);
        }
    }
    let context = StreamsConsumerContext {
        index,
        core: core.clone(),
        topology: topology.clone(),
        env: env.clone(),
        sub_of_topic,
        shared: shared.clone(),
    };
    let consumer: Arc<BaseConsumer<StreamsConsumerContext>> =
        Arc::new(consumer_config.create_with_context(context).map_err(|e| {
            StreamsError::kafka("creating the stream thread's consumer", &thread_name, e)
        })?);
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|e| StreamsError::kafka("subscribing", topics.join(", "), e))?;
    tracing::info!(thread = %thread_name, topics = ?topics, "stream thread started");

    let result = run_loop(index, &consumer, &core, &env, &shared);
    let mut guard = lock(&core);
    let core_ref = &mut *guard;
    let final_result = match result {
        Ok(()) => {
            // Graceful: one last commit, then close the tasks.
            shared.set_thread_state(index, ThreadState::PendingShutdown);
            publish_claim(&env, index, &mut core_ref.collector, None);
            let committed = commit_tasks(
                core_ref.tasks.values_mut(),
                &mut core_ref.collector,
                &mut KafkaCommitter {
                    consumer: &consumer,
                },
                &env.metrics,
            );
            for task in core_ref.tasks.values_mut() {
                task.close();
            }
            committed.map(|_| ())
        }
        Err(e) => {
            // Dirty close: no commit, so the failed records are processed again
            // by whoever takes the partitions over.
            for task in core_ref.tasks.values_mut() {
                task.close();
            }
            Err(e)
        }
    };
    for id in core_ref.tasks.keys() {
        shared.set_restoring(*id, false);
    }
    core_ref.tasks.clear();
    core_ref.reader.clear();
    drop(guard);
    shared.unregister_thread_core(index, &core);
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(thread = %thread_name, ok = final_result.is_ok(), "stream thread stopped");
    final_result
}

fn run_loop(
    index: usize,
    consumer: &Arc<BaseConsumer<StreamsConsumerContext>>,
    core: &Mutex<ThreadCore>,
    env: &TaskEnv,
    shared: &ClientShared,
) -> Result<()> {
    let config = &env.config;
    let mut last_commit = Instant::now();
    // The input partitions' records, read a batch per call (see `FetchQueue`). The
    // consumer's own queue still brings rebalances, errors, and records fetched
    // before their partition was routed here.
    let fetch = FetchQueue::new(consumer.clone())
        .map_err(|e| StreamsError::kafka("creating the stream thread's fetch queue", "", e))?;
    let mut routed_generation = 0;
    let mut last_route = Instant::now();
    // Messages stay in librdkafka's buffers until their task has decoded them.
    let mut polled: Vec<BorrowedMessage<'_>> = Vec::with_capacity(config.max_poll_records);
    let mut fetched = FetchedBatch::new();
    let mut last_progress_log = Instant::now();
    let mut restoring = false;
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        // The consumer's queue first and to its end: records on it were fetched
        // before their partition moved to the fetch queue, so they come first.
        polled.clear();
        while polled.len() < config.max_poll_records {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(msg)) => polled.push(msg),
                Some(Err(e)) => {
                    tracing::warn!(thread = index, error = %e, "consumer error");
                    break;
                }
            }
        }
        let generation = lock(core).assignment_generation;
        if generation != routed_generation || last_route.elapsed() >= ROUTE_REFRESH {
            route_assigned_partitions(&fetch, &lock(core));
            routed_generation = generation;
            last_route = Instant::now();
        }
        if polled.len() < config.max_poll_records {
            // While restoring, the restore step below does the waiting.
            let timeout = if polled.is_empty() && !restoring {
                config.poll_timeout
            } else {
                Duration::ZERO
            };
            fetch.consume_into(
                &mut fetched,
                config.max_poll_records - polled.len(),
                timeout,
            );
        }
        let mut guard = lock(core);
        let c = &mut *guard;
        if let Some(e) = c.error.take() {
            return Err(e);
        }
        let now = now_ms();
        for msg in polled.drain(..) {
            add_record(consumer.context(), c, raw_record(&msg), now)?;
        }
        for msg in fetched.iter() {
            if let Some(e) = msg.error() {
                tracing::warn!(thread = index, topic = msg.topic(), partition = msg.partition(), error = %e, "consumer error");
                continue;
            }
            add_record(consumer.context(), c, fetched_record(&msg), now)?;
        }
        fetched.clear();
        for task in c.tasks.values_mut() {
            task.process_all(&mut c.collector, now)?;
            task.maybe_punctuate(PunctuationType::WallClockTime, now, &mut c.collector, now)?;
        }
        restoring = c.reader.is_restoring();
        if restoring {
            restore_step(consumer, c, shared, config.poll_timeout)?;
            restoring = c.reader.is_restoring();
        }
        c.collector.poll();
        if last_commit.elapsed() >= config.commit_interval {
            commit_tasks(
                c.tasks.values_mut(),
                &mut c.collector,
                &mut KafkaCommitter { consumer },
                &env.metrics,
            )?;
            last_commit = Instant::now();
        }
        // Like Kafka, the thread runs once every task has restored.
        let assigned =
            !restoring && shared.thread_state(index) == Some(ThreadState::PartitionsAssigned);
        drop(guard);
        if assigned {
            shared.set_thread_state(index, ThreadState::Running);
        }
        if last_progress_log.elapsed() >= Duration::from_secs(30) {
            let m = env.metrics.snapshot();
            tracing::info!(
                thread = index,
                processed = m.processed_records,
                commits = m.commits,
                "stream thread progress"
            );
            last_progress_log = Instant::now();
        }
    }
}

/// How often the loop routes its partitions to the fetch queue again although the
/// assignment did not change: librdkafka drops a partition's routing when it stops
/// fetching it, asynchronously, so a partition revoked and assigned again in one
/// rebalance may lose the routing just after it was renewed. Until it is routed
/// again its records wait, in order, in the partition's own queue.
const ROUTE_REFRESH: Duration = Duration::from_millis(100);

/// Routes the input partitions of the thread's tasks to `fetch`, and gives revoked
/// ones back to the consumer.
fn route_assigned_partitions(fetch: &FetchQueue<StreamsConsumerContext>, core: &ThreadCore) {
    let assigned: Vec<(&str, i32)> = core
        .tasks
        .values()
        .flat_map(StreamTask::partitions)
        .map(|tp| (tp.topic.as_str(), tp.partition))
        .collect();
    let revoked: Vec<(String, i32)> = fetch
        .partitions()
        .into_iter()
        .filter(|(t, p)| !assigned.contains(&(t.as_str(), *p)))
        .collect();
    for (topic, partition) in revoked {
        fetch.remove_partition(&topic, partition);
    }
    for (topic, partition) in assigned {
        if !fetch.add_partition(topic, partition) {
            tracing::warn!(topic, partition, "librdkafka has no queue for the partition; its records keep coming through the consumer's queue");
        }
    }
}

/// Hands a consumed record to its task, and processes it at once when the task reads
/// one partition.
fn add_record(
    context: &StreamsConsumerContext,
    c: &mut ThreadCore,
    raw: RawRecord<'_>,
    now: i64,
) -> Result<()> {
    let task = context.sub_of(raw.topic).and_then(|sub| {
        c.tasks.get_mut(&TaskId {
            subtopology: sub,
            partition: raw.partition,
        })
    });
    let Some(task) = task else {
        tracing::warn!(topic = %raw.topic, partition = raw.partition, offset = raw.offset, "record for a partition without task; dropped (it will be re-read by its owner)");
        return Ok(());
    };
    task.add_record(raw, &mut c.collector)?;
    if task.reads_one_partition() {
        // Nothing to choose between: process it now, while it is in cache. Tasks
        // with several partitions wait for the whole batch and pick by timestamp.
        task.process_all(&mut c.collector, now)?;
    }
    Ok(())
}

/// Restores for a while (long when no task is running, so the thread does not spin;
/// short otherwise, so running tasks keep up), then starts the tasks that finished:
/// their processors are initialised and their input resumes.
fn restore_step(
    consumer: &BaseConsumer<StreamsConsumerContext>,
    core: &mut ThreadCore,
    shared: &ClientShared,
    poll_timeout: Duration,
) -> Result<()> {
    let any_running = core.tasks.values().any(StreamTask::is_running);
    let budget = if any_running {
        RESTORE_SLICE_WHILE_RUNNING
    } else {
        poll_timeout.max(RESTORE_SLICE_WHILE_RUNNING)
    };
    let done = core.reader.restore(&mut core.tasks, budget)?;
    if done.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut resume = rdkafka::TopicPartitionList::new();
    for id in done {
        if let Some(task) = core.tasks.get_mut(&id) {
            task.complete_restoration(now)?;
            shared.set_restoring(id, false);
            for tp in task.partitions() {
                resume.add_partition(&tp.topic, tp.partition);
            }
            tracing::info!(task = %id, "task restored; processing starts");
        }
    }
    consumer
        .resume(&resume)
        .map_err(|e| StreamsError::kafka("resuming the input of restored tasks", "", e))
}

/// Time a restore step may take while other tasks of the thread are running.
const RESTORE_SLICE_WHILE_RUNNING: Duration = Duration::from_millis(20);
