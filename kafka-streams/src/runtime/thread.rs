//! A stream thread (Kafka's `StreamThread`): one consumer, one producer, the
//! thread's [`TaskManager`], and the poll → process → punctuate → commit loop. Each
//! fetched record goes to its task's partition group; tasks then process what their
//! partition groups let them (see `partition_group.rs`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_client::internal::{partition_metadata_bytes, FetchQueue, FetchedBatch};
use kafka_client::TopicPartition;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset};

use super::commit::KafkaCommitter;
use super::duplicate_identity::{fail_on_duplicate_identity, main_consumer_client_id};
use super::membership::claim_record;
use super::partition_group::FetchedLags;
use super::record_collector::{KafkaCollector, RecordCollector};
use super::record_deserializer::{fetched_record, raw_record, RawRecord};
use super::restore::ChangelogReader;
use super::streams::ClientShared;
use super::task::TaskEnv;
use super::task_manager::TaskManager;
use crate::error::{Result, StreamsError};
use crate::state::ChangelogPartition;
use crate::topology::Topology;

/// A stream thread's state (Kafka's `StreamThread.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadState {
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
    pub(crate) task_manager: TaskManager,
    collector: KafkaCollector,
    reader: ChangelogReader,
    error: Option<StreamsError>,
    /// Bumped by every assignment and revocation, so the loop re-routes the input
    /// partitions to its fetch queue.
    assignment_generation: u64,
}

/// The main consumer's rebalance listener (Kafka's `StreamsRebalanceListener`): it
/// hands assignments and revocations to the thread's [`TaskManager`].
struct StreamsConsumerContext {
    index: usize,
    core: Arc<Mutex<ThreadCore>>,
    env: Arc<TaskEnv>,
    shared: Arc<ClientShared>,
}

pub(crate) fn lock(core: &Mutex<ThreadCore>) -> MutexGuard<'_, ThreadCore> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for StreamsConsumerContext {}

/// Publishes the thread's claim on `partitions` to the metadata topic (see
/// `membership.rs`), when the instance has an `application.server` or standby
/// replicas. A failure is logged: it affects key lookups and standby placement, not
/// processing.
fn publish_claim(
    env: &TaskEnv,
    index: usize,
    collector: &mut KafkaCollector,
    partitions: Option<&[(String, i32)]>,
) {
    if !env.config.publishes_membership() {
        return;
    }
    let sent = claim_record(
        &env.application_id,
        &env.process_id,
        env.config.application_server.as_ref(),
        index,
        partitions,
        now_ms(),
    )
    .and_then(|record| collector.send(record, "streams-metadata", None));
    if let Err(error) = sent {
        tracing::warn!(thread = index, %error, "publishing the thread's partitions to the metadata topic failed");
    }
}

impl StreamsConsumerContext {
    fn revoke_all(&self, consumer: &BaseConsumer<Self>) -> Result<()> {
        let mut core = lock(&self.core);
        let core = &mut *core;
        publish_claim(&self.env, self.index, &mut core.collector, Some(&[]));
        let closed = core.task_manager.handle_revocation(
            &mut core.collector,
            &mut KafkaCommitter { consumer },
            &mut core.reader,
            &self.shared,
        )?;
        if closed.is_empty() {
            return Ok(());
        }
        core.assignment_generation += 1;
        let closed: Vec<String> = closed.iter().map(ToString::to_string).collect();
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
        let claimed: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let committed = |changelog: &ChangelogPartition| committed_offset(consumer, changelog);
        let metadata = |partitions: &[TopicPartition]| committed_metadata(consumer, partitions);
        let assigned = core.task_manager.handle_assignment(
            &claimed,
            &mut core.reader,
            &committed,
            &metadata,
            &self.shared,
            now_ms(),
        )?;
        core.assignment_generation += 1;
        if !assigned.restoring.is_empty() {
            let mut paused = rdkafka::TopicPartitionList::new();
            for tp in &assigned.restoring {
                paused.add_partition(&tp.topic, tp.partition);
            }
            consumer.pause(&paused).map_err(|e| {
                StreamsError::kafka(
                    "pausing the input of restoring tasks",
                    &self.env.application_id,
                    e,
                )
            })?;
        }
        publish_claim(&self.env, self.index, &mut core.collector, Some(&claimed));
        if self.env.config.publishes_membership() {
            // Key lookups and standby placement read the claim: make it visible now, not at the next
            // commit (nothing else is in flight right after a rebalance).
            if let Err(error) = core.collector.flush() {
                tracing::warn!(thread = self.index, %error, "flushing the metadata claim failed");
            }
        }
        let names: Vec<String> = assigned.tasks.iter().map(ToString::to_string).collect();
        tracing::info!(thread = self.index, tasks = ?names, restoring = assigned.restoring.len(), "partitions assigned: tasks created");
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
    let tp = TopicPartition::new(partition.topic.clone(), partition.partition);
    let committed = read_committed(
        consumer,
        std::slice::from_ref(&tp),
        "the end of its table's restore",
    )?;
    Ok(committed.into_iter().next().and_then(|c| c.offset))
}

/// What the group committed for one input partition.
struct Committed {
    partition: TopicPartition,
    /// `None`: nothing committed.
    offset: Option<i64>,
    /// The metadata committed with the offset (empty when none).
    metadata: Vec<u8>,
}

/// The group's committed offsets of `partitions` (input partitions of the thread),
/// with their metadata, in one request. `purpose` says why, for errors.
fn read_committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[TopicPartition],
    purpose: &str,
) -> Result<Vec<Committed>> {
    let mut tpl = rdkafka::TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    let describe = || {
        partitions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let committed = consumer
        .committed_offsets(tpl, COMMITTED_TIMEOUT)
        .map_err(|e| {
            StreamsError::kafka(
                format!("reading the committed offsets ({purpose})"),
                describe(),
                e,
            )
        })?;
    partitions
        .iter()
        .map(|tp| {
            let elem = committed.find_partition(&tp.topic, tp.partition);
            if let Some(Err(e)) = elem.as_ref().map(|e| e.error()) {
                return Err(StreamsError::kafka(
                    format!("reading the committed offset ({purpose})"),
                    tp.to_string(),
                    e,
                ));
            }
            let offset = elem.and_then(|e| match e.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            });
            let metadata = offset
                .and_then(|_| partition_metadata_bytes(&committed, &tp.topic, tp.partition))
                .unwrap_or_default();
            Ok(Committed {
                partition: tp.clone(),
                offset,
                metadata,
            })
        })
        .collect()
}

/// The processor metadata committed with `partitions` (a new task's input), per
/// partition that has a committed offset.
fn committed_metadata<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[TopicPartition],
) -> Result<Vec<(TopicPartition, Vec<u8>)>> {
    Ok(
        read_committed(consumer, partitions, "the task's processor metadata")?
            .into_iter()
            .filter(|c| c.offset.is_some())
            .map(|c| (c.partition, c.metadata))
            .collect(),
    )
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
    let collector = new_collector(&env, &thread_name, index)?;
    let reader = ChangelogReader::new(
        config.restore_consumer_config(&thread_name),
        &thread_name,
        Some(super::MetricsRestoreListener::wrap(
            env.metrics.clone(),
            config.restore_listener.clone(),
        )),
        config.restore_max_poll_records,
    );
    let task_manager = TaskManager::new(
        topology,
        env.clone(),
        crate::state::CacheBudget::new(config.cache_max_bytes / config.num_stream_threads.max(1)),
        env.metrics.register_thread(&thread_name),
    );
    let topics: Vec<String> = task_manager.source_topics().map(str::to_owned).collect();
    let core = Arc::new(Mutex::new(ThreadCore {
        task_manager,
        collector,
        reader,
        error: None,
        assignment_generation: 0,
    }));
    shared.register_thread_core(index, core.clone());
    let context = StreamsConsumerContext {
        index,
        core: core.clone(),
        env: env.clone(),
        shared: shared.clone(),
    };
    let mut consumer_config = config.main_consumer_config(&thread_name, index + 1);
    // Kafka's client.id, with the process id: it tells duplicate identities apart.
    consumer_config.set("client.id", main_consumer_client_id(&env, index));
    let consumer: Arc<BaseConsumer<StreamsConsumerContext>> =
        Arc::new(consumer_config.create_with_context(context).map_err(|e| {
            StreamsError::kafka("creating the stream thread's consumer", &thread_name, e)
        })?);
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|e| StreamsError::kafka("subscribing", topics.join(", "), e))?;
    // Registered once the consumer is on its way into the group: an instance that
    // fences another with the same identity shows up there promptly (see
    // `duplicate_identity.rs`).
    let registered = lock(&core).collector.init_transactions();
    if let Err(error) = registered {
        shared.unregister_thread_core(index, &core);
        return Err(error);
    }
    tracing::info!(thread = %thread_name, topics = ?topics, "stream thread started");

    let result = run_loop(index, &consumer, &core, &env, &shared, &topic_refs);
    let mut guard = lock(&core);
    let core_ref = &mut *guard;
    let clean = result.is_ok();
    if !clean {
        // Exactly-once: the failed transaction's output and offsets are dropped; the
        // tasks' stores have no checkpoint and are rebuilt by whoever takes them.
        if let Err(error) = core_ref.collector.abort_transaction() {
            tracing::warn!(thread = %thread_name, %error, "aborting the transaction of the failed thread failed; the broker aborts it at the transaction timeout or when the producer's id is used again");
        }
    }
    if clean {
        // Graceful: one last commit, then close the tasks.
        shared.set_thread_state(index, ThreadState::PendingShutdown);
        publish_claim(&env, index, &mut core_ref.collector, None);
    }
    // Dirty close (after a failure): no commit, so the failed records are processed
    // again by whoever takes the partitions over.
    let closed = core_ref.task_manager.shutdown(
        clean,
        &mut core_ref.collector,
        &mut KafkaCommitter {
            consumer: &consumer,
        },
        &mut core_ref.reader,
        &shared,
    );
    let final_result = result.and(closed);
    drop(guard);
    shared.unregister_thread_core(index, &core);
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(thread = %thread_name, ok = final_result.is_ok(), "stream thread stopped");
    final_result
}

/// The producer side of stream thread `index`: under exactly-once a transactional
/// producer, `transactional.id` = `<application.id>-<process id>-<thread index>` as in
/// Kafka's `exactly_once_v2` (index from 1, as in the thread's name), to be registered
/// with the cluster (`init_transactions`) before use.
fn new_collector(env: &TaskEnv, thread_name: &str, index: usize) -> Result<KafkaCollector> {
    let config = &env.config;
    let transactional_id = config
        .processing_guarantee
        .is_exactly_once()
        .then(|| format!("{}-{}-{}", env.application_id, env.process_id, index + 1));
    KafkaCollector::new(
        &config.producer_config(thread_name, transactional_id.as_deref()),
        config.production_handler.clone(),
        env.metrics.clone(),
    )
}

/// Whether `error` says the thread is no longer a member of the group's current
/// generation (Kafka's `CommitFailedException`, which Kafka Streams turns into a
/// `TaskMigratedException`): an offset commit refused because the member was dropped
/// (e.g. its session timed out while the broker was away) or the group moved on to a
/// new generation. Its tasks may already be someone else's.
fn is_task_migrated(error: &StreamsError) -> bool {
    matches!(
        error,
        StreamsError::Kafka { source, .. } if matches!(
            source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::RebalanceInProgress
            )
        )
    )
}

/// After a failed or fenced transaction under exactly-once (Kafka's
/// `TaskCorruptedException` and `TaskMigratedException`), or a commit refused because
/// the thread dropped out of the group ([`is_task_migrated`]): aborts the transaction
/// (if any), gives up every task without committing (under exactly-once their
/// stores, which may hold the aborted writes, have no checkpoint and are wiped and
/// restored when the tasks come back), replaces a fenced producer, and rejoins the
/// group, which hands the partitions out again from the committed offsets. A fence by
/// another live instance with the same identity fails the thread instead, with
/// [`StreamsError::DuplicateProcessId`] (see `duplicate_identity.rs`).
fn recover_lost_tasks(
    index: usize,
    consumer: &BaseConsumer<StreamsConsumerContext>,
    c: &mut ThreadCore,
    env: &TaskEnv,
    shared: &ClientShared,
    topics: &[&str],
    error: &StreamsError,
) -> Result<()> {
    let mut replace_producer = matches!(error, StreamsError::Transaction { fenced: true, .. });
    tracing::warn!(thread = index, %error, "transaction failed or tasks migrated: aborting any transaction, giving up the thread's tasks and rejoining the group");
    if !replace_producer {
        if let Err(abort_error) = c.collector.abort_transaction() {
            tracing::warn!(thread = index, error = %abort_error, "aborting the transaction failed; replacing the producer");
            replace_producer = true;
        }
    }
    let lost = c.task_manager.handle_lost_all(&mut c.reader, shared);
    c.assignment_generation += 1;
    let lost: Vec<String> = lost.iter().map(ToString::to_string).collect();
    tracing::info!(thread = index, tasks = ?lost, "tasks closed dirty; their stores will be restored from the changelogs");
    if let StreamsError::Transaction {
        fenced: true,
        transactional_id,
        ..
    } = error
    {
        // Taking the id back would fence a live instance with the same identity,
        // which would fence this one again: this one stops instead.
        fail_on_duplicate_identity(consumer, env, index, transactional_id)?;
    }
    if replace_producer {
        let thread_name = format!("{}-StreamThread-{index}", env.application_id);
        let mut collector = new_collector(env, &thread_name, index)?;
        // Registering the id again fences the old producer, dropped here.
        collector.init_transactions()?;
        c.collector = collector;
    }
    consumer.unsubscribe();
    consumer
        .subscribe(topics)
        .map_err(|e| StreamsError::kafka("subscribing again", topics.join(", "), e))
}

fn run_loop(
    index: usize,
    consumer: &Arc<BaseConsumer<StreamsConsumerContext>>,
    core: &Mutex<ThreadCore>,
    env: &TaskEnv,
    shared: &ClientShared,
    topics: &[&str],
) -> Result<()> {
    let config = &env.config;
    // The input partitions' records, read a batch per call (see `FetchQueue`). The
    // consumer's own queue still brings rebalances, errors, and records fetched
    // before their partition was routed here.
    let fetch = FetchQueue::new(consumer.clone())
        .map_err(|e| StreamsError::kafka("creating the stream thread's fetch queue", "", e))?;
    let mut routed_generation = 0;
    let mut last_route = Instant::now();
    let mut round = Round {
        polled: Vec::with_capacity(config.max_poll_records),
        polled_ends: Vec::new(),
        fetched: FetchedBatch::new(),
        restoring: false,
        last_commit: Instant::now(),
        commits_failing_since: None,
    };
    let mut last_progress_log = Instant::now();
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Route newly assigned partitions first, so that no record of theirs lands on
        // the consumer's queue after it was drained below.
        let generation = lock(core).assignment_generation;
        if generation != routed_generation || last_route.elapsed() >= ROUTE_REFRESH {
            route_assigned_partitions(&fetch, &lock(core));
            routed_generation = generation;
            last_route = Instant::now();
        }
        // Then the consumer's queue, to its end: records on it were fetched before
        // their partition moved to the fetch queue, so they come first. `poll`
        // returns nothing after serving an event (a rebalance, a commit), so the
        // queue's length says when it is really empty.
        round.polled.clear();
        let mut events = 0;
        while round.polled.len() < config.max_poll_records {
            match consumer.poll(Duration::ZERO) {
                None if fetch.consumer_queue_len() == 0 || events >= MAX_EVENTS_PER_DRAIN => break,
                None => events += 1,
                Some(Ok(msg)) => round.polled.push(msg),
                Some(Err(KafkaError::PartitionEOF(partition))) => round.polled_ends.push(partition),
                Some(Err(e)) => {
                    tracing::warn!(thread = index, error = %e, "consumer error");
                    events += 1;
                }
            }
        }
        if round.polled.len() < config.max_poll_records {
            // While restoring, the restore step below does the waiting.
            let timeout = if round.polled.is_empty() && !round.restoring {
                config.poll_timeout
            } else {
                Duration::ZERO
            };
            fetch.consume_into(
                &mut round.fetched,
                config.max_poll_records - round.polled.len(),
                timeout,
            );
        }
        let mut guard = lock(core);
        let c = &mut *guard;
        let stepped = match c.error.take() {
            Some(e) => Err(e),
            None => step(index, consumer, c, env, shared, &fetch, &mut round),
        };
        if let Err(error) = stepped {
            round.polled.clear();
            round.polled_ends.clear();
            round.fetched.clear();
            match error {
                error
                    if (matches!(error, StreamsError::Transaction { .. })
                        || is_task_migrated(&error))
                        && !shared.shutdown.load(Ordering::SeqCst) =>
                {
                    recover_lost_tasks(index, consumer, c, env, shared, topics, &error)?;
                    round.restoring = false;
                    round.last_commit = Instant::now();
                }
                error => return Err(error),
            }
        }
        // Like Kafka, the thread runs once every task has restored.
        let assigned =
            !round.restoring && shared.thread_state(index) == Some(ThreadState::PartitionsAssigned);
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

/// What the loop carries from one round to the next.
struct Round<'m> {
    /// Records from the consumer's own queue; they stay in librdkafka's buffers
    /// until their task has decoded them.
    polled: Vec<BorrowedMessage<'m>>,
    /// Ends of partitions reported through the consumer's own queue (by partition
    /// number only).
    polled_ends: Vec<i32>,
    /// Records from the fetch queue.
    fetched: FetchedBatch<'m>,
    /// Whether some task is restoring.
    restoring: bool,
    last_commit: Instant,
    /// Since when commits have failed with retriable errors (none: the last one
    /// succeeded).
    commits_failing_since: Option<Instant>,
}

/// One round of the loop with the thread's core locked: hands the fetched records to
/// their tasks, processes, restores, and commits when the interval is up.
fn step(
    index: usize,
    consumer: &BaseConsumer<StreamsConsumerContext>,
    c: &mut ThreadCore,
    env: &TaskEnv,
    shared: &ClientShared,
    fetch: &FetchQueue<StreamsConsumerContext>,
    round: &mut Round<'_>,
) -> Result<()> {
    let config = &env.config;
    let now = now_ms();
    let lags = QueueLags(fetch);
    c.task_manager
        .thread_metrics()
        .record_poll(round.polled.len() + round.fetched.len());
    for eof in round.polled_ends.drain(..) {
        reached_end_unattributed(c, &lags, eof);
    }
    for msg in round.polled.drain(..) {
        add_record(c, raw_record(&msg), now, &lags)?;
    }
    for msg in round.fetched.iter() {
        match msg.error() {
            None => add_record(c, fetched_record(&msg), now, &lags)?,
            Some(KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF)) => {
                c.task_manager
                    .reached_end(msg.topic(), msg.partition(), msg.offset());
            }
            Some(e) => {
                tracing::warn!(thread = index, topic = msg.topic(), partition = msg.partition(), error = %e, "consumer error");
            }
        }
    }
    round.fetched.clear();
    c.task_manager.process(&mut c.collector, now, &lags)?;
    round.restoring = c.reader.is_restoring();
    if round.restoring {
        restore_step(consumer, c, shared, config.poll_timeout)?;
        round.restoring = c.reader.is_restoring();
    }
    c.collector.poll();
    if round.last_commit.elapsed() >= config.get_commit_interval() {
        let committed = c
            .task_manager
            .commit(&mut c.collector, &mut KafkaCommitter { consumer });
        round.last_commit = Instant::now();
        match committed {
            Ok(_) => round.commits_failing_since = None,
            Err(error) if is_retriable_commit_error(&error) => {
                // Like Kafka's commit on a `TimeoutException`: processing goes on and
                // the next interval commits again (everything since the last
                // successful commit), until the failures outlast `task.timeout.ms`.
                let since = *round.commits_failing_since.get_or_insert(round.last_commit);
                if since.elapsed() >= config.task_timeout {
                    return Err(error);
                }
                tracing::warn!(thread = index, %error, failing_for = ?since.elapsed(), "commit failed; retrying at the next commit interval");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Whether a failed commit may succeed later without the thread giving up anything:
/// the coordinator or broker is unreachable or busy (Kafka's `TimeoutException` and
/// retriable errors from `commitSync`). A commit refused for a lost membership is not
/// (see [`is_task_migrated`]), nor anything under exactly-once, where a failed
/// transaction is aborted.
fn is_retriable_commit_error(error: &StreamsError) -> bool {
    match error {
        StreamsError::Kafka { source, .. } => match source.rdkafka_error_code() {
            Some(RDKafkaErrorCode::WaitingForCoordinator) => true,
            Some(_) => !is_task_migrated(error) && error.is_retriable(),
            None => false,
        },
        _ => false,
    }
}

/// At most this many polls without a record per drain of the consumer's queue, so an
/// endless stream of events cannot starve the fetch queue.
const MAX_EVENTS_PER_DRAIN: usize = 1_000;

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
        .task_manager
        .partitions()
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

/// The lag of input partitions from the consumer's cached high watermarks (no
/// broker round trip): the high watermark minus the position the task knows. An
/// empty partition (low = high watermark) has no lag whatever the position.
struct QueueLags<'a>(&'a FetchQueue<StreamsConsumerContext>);

impl FetchedLags for QueueLags<'_> {
    fn lag(&self, partition: &TopicPartition, position: Option<i64>) -> Option<i64> {
        let (low, high) = self
            .0
            .cached_watermarks(&partition.topic, partition.partition)?;
        match position {
            Some(position) => Some((high - position).max(0)),
            None if low >= 0 && low == high => Some(0),
            None => None,
        }
    }
}

/// The consumer's own queue reported the end of a partition, by number only (it
/// came before the partition was routed to the fetch queue). Every input partition
/// with that number whose position is still unknown takes the cached high watermark
/// as its position: at worst a task waits `max.task.idle.ms` for records that were
/// about to arrive anyway, instead of waiting for that partition forever.
fn reached_end_unattributed(core: &mut ThreadCore, lags: &QueueLags<'_>, partition: i32) {
    let unknown: Vec<(String, i64)> = core
        .task_manager
        .tasks()
        .values()
        .flat_map(|task| {
            task.partitions()
                .filter(|tp| tp.partition == partition)
                .filter(|tp| task.position(&tp.topic, tp.partition).is_none())
                .filter_map(|tp| {
                    lags.0
                        .cached_watermarks(&tp.topic, tp.partition)
                        .map(|(_, high)| (tp.topic.clone(), high))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (topic, high) in unknown {
        core.task_manager.reached_end(&topic, partition, high);
    }
}

/// Hands a consumed record to its task, and processes it at once when the task reads
/// one partition.
fn add_record(
    c: &mut ThreadCore,
    raw: RawRecord<'_>,
    now: i64,
    lags: &dyn FetchedLags,
) -> Result<()> {
    let Some(task) = c.task_manager.task_for(raw.topic, raw.partition) else {
        tracing::warn!(topic = %raw.topic, partition = raw.partition, offset = raw.offset, "record for a partition without task; dropped (it will be re-read by its owner)");
        return Ok(());
    };
    task.add_record(raw, &mut c.collector)?;
    if task.reads_one_partition() {
        // Nothing to choose between: process it now, while it is in cache. Tasks
        // with several partitions wait for the whole batch and pick by timestamp.
        task.process_all(&mut c.collector, now, lags)?;
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
    let any_running = core.task_manager.any_running();
    let budget = if any_running {
        RESTORE_SLICE_WHILE_RUNNING
    } else {
        poll_timeout.max(RESTORE_SLICE_WHILE_RUNNING)
    };
    let done = core.reader.restore(core.task_manager.tasks_mut(), budget)?;
    if done.is_empty() {
        return Ok(());
    }
    let started = core
        .task_manager
        .complete_restoration(done, shared, now_ms())?;
    let mut resume = rdkafka::TopicPartitionList::new();
    for tp in &started {
        resume.add_partition(&tp.topic, tp.partition);
    }
    consumer
        .resume(&resume)
        .map_err(|e| StreamsError::kafka("resuming the input of restored tasks", "", e))
}

/// Time a restore step may take while other tasks of the thread are running.
const RESTORE_SLICE_WHILE_RUNNING: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    /// An offset commit refused with `code`.
    fn refused(code: RDKafkaErrorCode) -> StreamsError {
        StreamsError::kafka(
            "committing offsets",
            "lines-0@5",
            KafkaError::ConsumerCommit(code),
        )
    }

    #[test]
    fn commits_refused_for_a_lost_membership_mean_migrated_tasks() {
        for code in [
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::IllegalGeneration,
            RDKafkaErrorCode::RebalanceInProgress,
        ] {
            assert!(is_task_migrated(&refused(code)), "{code:?}");
        }
        assert!(!is_task_migrated(&refused(
            RDKafkaErrorCode::GroupAuthorizationFailed
        )));
        assert!(!is_task_migrated(&StreamsError::Internal("other".into())));
    }

    #[test]
    fn commits_failing_while_the_coordinator_is_away_are_retried() {
        for code in [
            RDKafkaErrorCode::WaitingForCoordinator,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
        ] {
            assert!(is_retriable_commit_error(&refused(code)), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::RebalanceInProgress,
            RDKafkaErrorCode::GroupAuthorizationFailed,
        ] {
            assert!(!is_retriable_commit_error(&refused(code)), "{code:?}");
        }
    }
}
