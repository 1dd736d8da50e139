//! [`KafkaStreams`]: the client handle (start, close, state, listener, handlers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};

use kafka_client::serde::{MessageField, SerdeContext, Serializer};
use kafka_client::Headers;

use super::config::HostInfo;
use super::global::{open_global_stores, run_global_thread, SharedGlobalStore};
use super::handlers::{StreamThreadExceptionResponse, UncaughtExceptionHandler};
use super::metrics::{MetricsSnapshot, StreamsMetrics};
use super::query::{
    ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore, StoreQueryParameters,
};
use super::record_deserializer::Blocker;
use super::restore::ChangelogReader;
use super::standby::{run_standby_updater, standbys_of, StandbyTasks};
use super::state_dir_lock::StateDirLock;
use super::task::TaskEnv;
use super::thread::ThreadCore;
use super::thread::{run_stream_thread, ThreadState};
use super::topics::prepare_topics;
use super::StreamsConfig;
use crate::error::InvalidStoreReason;
use crate::error::{Result, StreamsError};
use crate::processor::TaskId;
use crate::topology::Topology;

/// The state of a Kafka Streams client (Kafka's `KafkaStreams.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Created,
    /// Started; partitions are being assigned (at start or on a rebalance).
    Rebalancing,
    /// Every stream thread is processing.
    Running,
    /// `close()` was called; threads are committing and stopping.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A stream thread failed and the client shut down; see
    /// [`KafkaStreams::error`].
    Error,
}

type StateListener = Arc<dyn Fn(State, State) + Send + Sync>;

struct Status {
    state: State,
    threads: Vec<ThreadState>,
    error: Option<Arc<StreamsError>>,
}

/// What the client and its threads share.
pub(crate) struct ClientShared {
    status: Mutex<Status>,
    changed: Condvar,
    listener: Mutex<Option<StateListener>>,
    pub shutdown: AtomicBool,
    /// Each live stream thread's tasks, for interactive queries.
    cores: Mutex<BTreeMap<usize, Arc<Mutex<ThreadCore>>>>,
    /// The global stores, by name.
    globals: Mutex<BTreeMap<String, SharedGlobalStore>>,
    /// Partition counts of the (resolved) source topics, once known.
    partitions: Mutex<BTreeMap<String, i32>>,
    /// Local tasks restoring their stores. Kept outside the threads' locks so that a
    /// query answers "restoring" at once instead of waiting for a restore step.
    restoring: Mutex<BTreeSet<TaskId>>,
    /// The instance's standby tasks (see `standby.rs`).
    standbys: Mutex<StandbyTasks>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientShared {
    pub fn state(&self) -> State {
        self.status().state
    }

    pub fn register_thread_core(&self, index: usize, core: Arc<Mutex<ThreadCore>>) {
        relock(&self.cores).insert(index, core);
    }

    pub fn unregister_thread_core(&self, index: usize, core: &Arc<Mutex<ThreadCore>>) {
        let mut cores = relock(&self.cores);
        if cores.get(&index).is_some_and(|c| Arc::ptr_eq(c, core)) {
            cores.remove(&index);
        }
    }

    /// The live stream threads' cores, in thread order (the order to lock them in).
    pub fn thread_cores(&self) -> Vec<Arc<Mutex<ThreadCore>>> {
        relock(&self.cores).values().cloned().collect()
    }

    pub fn set_restoring(&self, task: TaskId, restoring: bool) {
        let mut set = relock(&self.restoring);
        if restoring {
            set.insert(task);
        } else {
            set.remove(&task);
        }
    }

    /// A local task of sub-topology `subtopology` that is restoring, if any.
    /// The instance's standby tasks. Lock order: a stream thread's core first, then
    /// this (the standby updater takes no core lock).
    pub fn standbys(&self) -> MutexGuard<'_, StandbyTasks> {
        relock(&self.standbys)
    }

    pub fn restoring_task_of(&self, subtopology: usize) -> Option<TaskId> {
        relock(&self.restoring)
            .iter()
            .find(|t| t.subtopology == subtopology)
            .copied()
    }

    pub fn global_store(&self, name: &str) -> Option<SharedGlobalStore> {
        relock(&self.globals).get(name).cloned()
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn thread_state(&self, index: usize) -> Option<ThreadState> {
        self.status().threads.get(index).copied()
    }

    pub fn set_thread_state(&self, index: usize, state: ThreadState) {
        let mut status = self.status();
        if let Some(t) = status.threads.get_mut(index) {
            *t = state;
        }
        let next = aggregate(&status);
        self.transition(status, next);
    }

    /// Moves to `next` (if allowed) and tells the listener, outside the lock.
    fn transition(&self, mut status: MutexGuard<'_, Status>, next: Option<State>) {
        let Some(next) = next else { return };
        let old = status.state;
        if old == next || !allowed(old, next) {
            return;
        }
        status.state = next;
        drop(status);
        tracing::info!(from = ?old, to = ?next, "kafka streams state change");
        self.changed.notify_all();
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener(next, old);
        }
    }

    fn set_state(&self, next: State) {
        let status = self.status();
        self.transition(status, Some(next));
    }
}

fn allowed(from: State, to: State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Created, Rebalancing)
            | (Created, PendingShutdown)
            | (Created, Error)
            | (Rebalancing, Running)
            | (Rebalancing, PendingShutdown)
            | (Rebalancing, Error)
            | (Running, Rebalancing)
            | (Running, PendingShutdown)
            | (Running, Error)
            | (PendingShutdown, NotRunning)
            | (Error, PendingShutdown)
    )
}

/// The client state the thread states amount to.
fn aggregate(status: &Status) -> Option<State> {
    if matches!(
        status.state,
        State::PendingShutdown | State::NotRunning | State::Error
    ) {
        return None;
    }
    let alive: Vec<ThreadState> = status
        .threads
        .iter()
        .copied()
        .filter(|t| *t != ThreadState::Dead)
        .collect();
    if status.error.is_some() && alive.is_empty() {
        return Some(State::Error);
    }
    if status.state == State::Created {
        return None;
    }
    if alive.is_empty() {
        return None;
    }
    if alive.iter().all(|t| *t == ThreadState::Running) {
        Some(State::Running)
    } else if alive.iter().any(|t| {
        matches!(
            t,
            ThreadState::Starting
                | ThreadState::PartitionsRevoked
                | ThreadState::PartitionsAssigned
        )
    }) {
        Some(State::Rebalancing)
    } else {
        None
    }
}

struct ClientInner {
    topology: Arc<Topology>,
    env: Arc<TaskEnv>,
    shared: Arc<ClientShared>,
    uncaught: Mutex<Option<UncaughtExceptionHandler>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// Held from creation until the client is closed (or dropped).
    state_dir_lock: Mutex<Option<StateDirLock>>,
}

/// Whether some store of `topology` (local or global) keeps its data on disk.
fn topology_is_persistent(topology: &Topology) -> bool {
    topology.stores.values().any(|b| b.persistent())
        || topology
            .global_stores
            .values()
            .any(|g| g.builder.persistent())
}

/// A Kafka Streams client: runs a topology with `num.stream.threads` stream threads
/// (Kafka's `KafkaStreams`).
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_client::ClientConfig;
/// use kafka_streams::dsl::StreamsBuilder;
/// use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").map_values(|v| v.to_uppercase()).to("out");
/// let config = StreamsConfig::new("upper", ClientConfig::new("localhost:9092"));
/// let streams = KafkaStreams::new(builder.build()?, config)?;
/// streams.set_state_listener(|new, old| println!("{old:?} -> {new:?}"));
/// streams.start()?;
/// streams.wait_for_state(State::Running, Duration::from_secs(60));
/// // ...
/// streams.close();
/// # Ok::<(), kafka_streams::StreamsError>(())
/// ```
pub struct KafkaStreams {
    inner: Arc<ClientInner>,
}

impl KafkaStreams {
    /// A client for `topology`; nothing connects until [`KafkaStreams::start`].
    ///
    /// When the topology has a store on disk, or under exactly-once, the client locks
    /// `<state.dir>/<application.id>` until it is closed, as Kafka does: while another
    /// instance holds that directory, this fails with
    /// [`StreamsError::StateDirectoryLocked`].
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        config.validate()?;
        config.check_topology_optimization(&topology)?;
        let blocker = match config
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        {
            Some(handle) => Blocker::Tokio(handle),
            None => Blocker::Futures,
        };
        let threads = config.num_stream_threads;
        // Like Kafka, an instance whose state lives on disk owns its state directory;
        // so does one under exactly-once, whose process id (hence its producers'
        // transactional.id) is kept there, and one with standbys (whose process id
        // places them).
        let state_dir_lock = (topology_is_persistent(&topology)
            || config.processing_guarantee.is_exactly_once()
            || config.num_standby_replicas > 0)
            .then(|| StateDirLock::acquire(&config.state_dir, &config.application_id))
            .transpose()?;
        // Under exactly-once the id must survive restarts (it names the transactional
        // producers), and with standbys too (placement orders instances by it, and a
        // restarted instance replaces its own claims); otherwise a fresh one will do.
        let process_id =
            if config.processing_guarantee.is_exactly_once() || config.num_standby_replicas > 0 {
                super::process_id::load_or_create(&config.state_dir, &config.application_id)?
            } else {
                super::process_id::random_uuid()
            };
        let standby_name = format!("{}-StandbyUpdater", config.application_id);
        let standby_reader = ChangelogReader::new(
            config.restore_consumer_config(&standby_name),
            &standby_name,
            None,
            config.restore_max_poll_records,
        );
        let env = Arc::new(TaskEnv {
            application_id: config.application_id.clone(),
            config,
            blocker,
            rocksdb: crate::state::RocksDbMemory::default_shared(),
            metrics: Arc::new(StreamsMetrics::default()),
            process_id,
            globals: std::sync::OnceLock::new(),
        });
        Ok(KafkaStreams {
            inner: Arc::new(ClientInner {
                topology: Arc::new(topology),
                env,
                shared: Arc::new(ClientShared {
                    status: Mutex::new(Status {
                        state: State::Created,
                        threads: vec![ThreadState::Starting; threads],
                        error: None,
                    }),
                    changed: Condvar::new(),
                    listener: Mutex::new(None),
                    shutdown: AtomicBool::new(false),
                    cores: Mutex::new(BTreeMap::new()),
                    globals: Mutex::new(BTreeMap::new()),
                    partitions: Mutex::new(BTreeMap::new()),
                    restoring: Mutex::new(BTreeSet::new()),
                    standbys: Mutex::new(StandbyTasks::new(standby_reader)),
                }),
                uncaught: Mutex::new(None),
                handles: Mutex::new(Vec::new()),
                state_dir_lock: Mutex::new(state_dir_lock),
            }),
        })
    }

    /// Called with `(new, old)` on every state change.
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self
            .inner
            .shared
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(listener));
    }

    /// Decides what happens when a stream thread fails (default: shut the client
    /// down, state `ERROR`).
    pub fn set_uncaught_exception_handler(
        &self,
        handler: impl Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync + 'static,
    ) {
        *self
            .inner
            .uncaught
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.shared.status().state
    }

    /// The error that put the client in `ERROR`.
    pub fn error(&self) -> Option<Arc<StreamsError>> {
        self.inner.shared.status().error.clone()
    }

    /// The metrics: the client's counters, and per stream thread, task, store and
    /// store restore what Kafka's metrics report (see [`MetricsSnapshot`]).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.env.metrics.snapshot()
    }

    /// The live metrics the snapshots copy.
    #[cfg(feature = "metrics")]
    pub(crate) fn streams_metrics(&self) -> &Arc<StreamsMetrics> {
        &self.inner.env.metrics
    }

    /// Waits (blocking) until the state is `target` or `timeout` passes; `true` if
    /// reached. Returns early with `false` on `ERROR` when waiting for another state.
    pub fn wait_for_state(&self, target: State, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut status = self.inner.shared.status();
        loop {
            if status.state == target {
                return true;
            }
            if status.state == State::Error || status.state == State::NotRunning {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            status = self
                .inner
                .shared
                .changed
                .wait_timeout(status, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Starts the client: internal topics are created and co-partitioning checked
    /// on a background thread, then the stream threads start. Returns at once;
    /// problems move the client to `ERROR` (see [`KafkaStreams::error`]).
    pub fn start(&self) -> Result<()> {
        {
            let status = self.inner.shared.status();
            if status.state != State::Created {
                return Err(StreamsError::IllegalState(format!(
                    "start() called in state {:?}; a client starts once",
                    status.state
                )));
            }
        }
        self.inner.shared.set_state(State::Rebalancing);
        let inner = self.inner.clone();
        let setup = std::thread::Builder::new()
            .name(format!("{}-setup", inner.env.application_id))
            .spawn(move || {
                let prepared = prepare_topics(&inner.topology, &inner.env.config).and_then(|p| {
                    *relock(&inner.shared.partitions) = p;
                    open_global_stores(&inner.topology, &inner.env)
                });
                let globals = match prepared {
                    Ok(globals) => globals,
                    Err(e) => return fail_client(&inner, e),
                };
                if globals.is_empty() {
                    return spawn_stream_threads(&inner);
                }
                // Stream threads start once the global stores are restored.
                *relock(&inner.shared.globals) = globals.clone();
                // Set once per client (start() runs once): a second set cannot happen.
                let _ = inner
                    .env
                    .globals
                    .set(super::global::GlobalStoreMap(globals.clone()));
                let inner2 = inner.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("{}-GlobalStreamThread", inner.env.application_id))
                    .spawn(move || {
                        let inner = inner2;
                        let starter = inner.clone();
                        let result = run_global_thread(
                            globals,
                            inner.env.clone(),
                            inner.shared.clone(),
                            move || spawn_stream_threads(&starter),
                        );
                        if let Err(e) = result {
                            tracing::error!(error = %e, "global stream thread failed");
                            inner.shared.shutdown.store(true, Ordering::SeqCst);
                            fail_client(&inner, e);
                        }
                    });
                match spawned {
                    Ok(handle) => lock_handles(&inner).push(handle),
                    Err(e) => fail_client(
                        &inner,
                        StreamsError::Internal(format!("spawning the global thread: {e}")),
                    ),
                }
            })
            .map_err(|e| StreamsError::Internal(format!("spawning the setup thread: {e}")))?;
        lock_handles(&self.inner).push(setup);
        Ok(())
    }

    /// Closes gracefully: every stream thread commits (flush stores, flush
    /// producer, commit offsets), closes its tasks and leaves the group. Blocks
    /// until done (from async code, call it in `spawn_blocking`). `true` when every
    /// thread stopped within `timeout`.
    pub fn close_timeout(&self, timeout: Duration) -> bool {
        let state = self.state();
        if state == State::NotRunning {
            return true;
        }
        self.inner.shared.set_state(State::PendingShutdown);
        self.inner.shared.shutdown.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        loop {
            let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *lock_handles(&self.inner));
            if handles.is_empty() {
                break;
            }
            for h in handles {
                while !h.is_finished() {
                    if Instant::now() >= deadline {
                        tracing::warn!("close timed out; stream threads still running");
                        lock_handles(&self.inner).push(h);
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = h.join();
            }
        }
        self.inner.shared.set_state(State::NotRunning);
        // The threads are gone: another instance may take the directory now.
        relock(&self.inner.state_dir_lock).take();
        true
    }

    /// [`KafkaStreams::close_timeout`] with a 60 s timeout.
    pub fn close(&self) -> bool {
        self.close_timeout(Duration::from_secs(60))
    }

    /// Read-only queries over key-value store `name` as held by this instance: the
    /// stores of its local tasks, or the full copy of a global store (Kafka's
    /// `KafkaStreams.store`). `K` and `V` are the store's key and value types
    /// (`i64` values for `count`). See [`ReadOnlyKeyValueStore`] for the errors
    /// each call may give while the client is rebalancing or restoring.
    pub fn store<K: 'static, V: 'static>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        let known = self.inner.topology.stores.contains_key(name)
            || self.inner.topology.global_stores.contains_key(name);
        if !known {
            return Err(StreamsError::InvalidStateStore {
                store: name.to_owned(),
                reason: InvalidStoreReason::Unknown,
            });
        }
        Ok(ReadOnlyKeyValueStore::new(
            name.to_owned(),
            self.inner.topology.subtopology_of_store(name).map(|s| s.id),
            self.inner.shared.clone(),
        ))
    }

    /// Read-only queries over window store `name` as held by this instance's tasks
    /// (Kafka's `KafkaStreams.store` with `QueryableStoreTypes.windowStore()`): the
    /// store of a time-windowed (or sliding) aggregation, or one added with the
    /// window store builder. `K` is the plain key and `V` the aggregate (`i64` for
    /// `count`). See [`ReadOnlyWindowStore`] for the answers and for the errors while
    /// the client is rebalancing or restoring. To find the instance hosting a key's
    /// windows, pass the plain key to [`KafkaStreams::query_metadata_for_key`].
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyWindowStore<K, V>> {
        let sub = self.queryable_store_subtopology(name)?;
        Ok(ReadOnlyWindowStore::new(
            name.to_owned(),
            sub,
            self.inner.shared.clone(),
        ))
    }

    /// Read-only queries over session store `name` as held by this instance's tasks
    /// (Kafka's `KafkaStreams.store` with `QueryableStoreTypes.sessionStore()`): the
    /// store of a session-windowed aggregation, or one added with the session store
    /// builder. `K` is the plain key and `V` the aggregate. See
    /// [`ReadOnlySessionStore`]; [`KafkaStreams::query_metadata_for_key`] takes the
    /// plain key, as for window stores.
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlySessionStore<K, V>> {
        let sub = self.queryable_store_subtopology(name)?;
        Ok(ReadOnlySessionStore::new(
            name.to_owned(),
            sub,
            self.inner.shared.clone(),
        ))
    }

    /// [`KafkaStreams::store`] with query parameters (Kafka's
    /// `KafkaStreams.store(StoreQueryParameters)`): with
    /// [`StoreQueryParameters::enable_stale_stores`] the handle also reads the
    /// instance's standby stores and stores still restoring.
    pub fn store_with_parameters<K: 'static, V: 'static>(
        &self,
        parameters: &StoreQueryParameters,
    ) -> Result<ReadOnlyKeyValueStore<K, V>> {
        Ok(self
            .store(parameters.store_name())?
            .with_stale_stores(parameters.stale_stores_enabled()))
    }

    /// [`KafkaStreams::window_store`] with query parameters (see
    /// [`KafkaStreams::store_with_parameters`]).
    pub fn window_store_with_parameters<K: 'static, V: 'static>(
        &self,
        parameters: &StoreQueryParameters,
    ) -> Result<ReadOnlyWindowStore<K, V>> {
        Ok(self
            .window_store(parameters.store_name())?
            .with_stale_stores(parameters.stale_stores_enabled()))
    }

    /// [`KafkaStreams::session_store`] with query parameters (see
    /// [`KafkaStreams::store_with_parameters`]).
    pub fn session_store_with_parameters<K: 'static, V: 'static>(
        &self,
        parameters: &StoreQueryParameters,
    ) -> Result<ReadOnlySessionStore<K, V>> {
        Ok(self
            .session_store(parameters.store_name())?
            .with_stale_stores(parameters.stale_stores_enabled()))
    }

    /// The subtopology of store `name` (none for a global store), or the `Unknown`
    /// error when the topology has no such store.
    fn queryable_store_subtopology(&self, name: &str) -> Result<Option<usize>> {
        let topology = &self.inner.topology;
        if !topology.stores.contains_key(name) && !topology.global_stores.contains_key(name) {
            return Err(StreamsError::InvalidStateStore {
                store: name.to_owned(),
                reason: InvalidStoreReason::Unknown,
            });
        }
        Ok(topology.subtopology_of_store(name).map(|s| s.id))
    }

    /// Which instance hosts `key` of store `store` (Kafka's
    /// `KafkaStreams.queryMetadataForKey`): the partition the key belongs to
    /// (Kafka's default partitioning of `key_serializer`'s bytes over the store's
    /// source topic), the `application.server` of the group member that owns it, and
    /// those of the instances that keep a standby copy of its task (see
    /// [`StreamsConfig::num_standby_replicas`](super::StreamsConfig::num_standby_replicas);
    /// standbys on instances without an `application.server` are left out). For a
    /// global store, this instance.
    ///
    /// For a window or session store, `key` is the plain key, not the windowed one:
    /// every window of a key lives in the task of the key's partition, as the
    /// aggregation reads its input by the plain key (after a repartition if the key
    /// was changed), so `key_serializer` is the plain key's serializer.
    ///
    /// Blocking (it reads the application's metadata topic, where every instance
    /// publishes the partitions it owns); call it from
    /// `spawn_blocking` in async code. Fails with the `Migrating` reason while no
    /// member owns the partition (a rebalance), and with a configuration error when
    /// the owner has no `application.server`.
    pub fn query_metadata_for_key<K: ?Sized>(
        &self,
        store: &str,
        key: &K,
        key_serializer: &dyn Serializer<K>,
    ) -> Result<KeyQueryMetadata> {
        let topology = &self.inner.topology;
        let unknown = || StreamsError::InvalidStateStore {
            store: store.to_owned(),
            reason: InvalidStoreReason::Unknown,
        };
        if topology.global_stores.contains_key(store) {
            let host = self.own_host()?;
            return Ok(KeyQueryMetadata {
                active_host: host,
                standby_hosts: BTreeSet::new(),
                partition: -1,
            });
        }
        let sub = topology.subtopology_of_store(store).ok_or_else(unknown)?;
        let app = &self.inner.env.application_id;
        let topic = sub
            .source_topics
            .first()
            .map(|t| topology.resolve_topic(app, t))
            .ok_or_else(unknown)?;
        let partitions = relock(&self.inner.shared.partitions).get(&topic).copied();
        let Some(partitions) = partitions else {
            return Err(StreamsError::InvalidStateStore {
                store: store.to_owned(),
                reason: InvalidStoreReason::NotAvailable(format!(
                    "the partition count of {topic} is not known yet (client {:?})",
                    self.state()
                )),
            });
        };
        let headers = Headers::new();
        let ctx = SerdeContext::new(&topic, MessageField::Key, &headers);
        let bytes = key_serializer
            .serialize(key, &ctx)
            .map_err(|e| StreamsError::State {
                store: store.to_owned(),
                reason: format!("serializing the key to locate it: {e}"),
            })?;
        let partition =
            kafka_client::default_partition(bytes.as_deref(), partitions).ok_or_else(|| {
                StreamsError::State {
                    store: store.to_owned(),
                    reason: "a null key has no partition".into(),
                }
            })?;
        let owners = super::membership::read_owners(&self.inner.env.config.client, app)?;
        if let Some(host) = owners.owner_of(&topic, partition) {
            let task = TaskId {
                subtopology: sub.id,
                partition,
            };
            let standby_hosts = standbys_of(topology, &self.inner.env, &owners, task)
                .iter()
                .filter_map(|process| owners.host_of_process(process).cloned())
                .collect();
            return Ok(KeyQueryMetadata {
                active_host: host.clone(),
                standby_hosts,
                partition,
            });
        }
        Err(StreamsError::InvalidStateStore {
            store: store.to_owned(),
            reason: InvalidStoreReason::Migrating(format!(
                "no instance owns partition {partition} of {topic} right now"
            )),
        })
    }

    /// Every instance of the application with its `application.server`, the
    /// partitions it owns and the stores of their tasks (Kafka's
    /// `metadataForAllStreamsClients`), as published to the application's metadata
    /// topic. Blocking, like [`KafkaStreams::query_metadata_for_key`]; instances
    /// without an `application.server` are left out.
    pub fn metadata_for_all_streams_clients(&self) -> Result<Vec<StreamsMetadata>> {
        let app = &self.inner.env.application_id;
        let owners = super::membership::read_owners(&self.inner.env.config.client, app)?;
        let topology = &self.inner.topology;
        let mut by_host: BTreeMap<HostInfo, StreamsMetadata> = BTreeMap::new();
        for ((topic, partition), host) in owners.iter() {
            let entry = by_host
                .entry(host.clone())
                .or_insert_with(|| StreamsMetadata {
                    host_info: host.clone(),
                    state_store_names: topology.global_stores.keys().cloned().collect(),
                    topic_partitions: BTreeSet::new(),
                });
            for sub in &topology.subtopologies {
                let reads = sub
                    .source_topics
                    .iter()
                    .any(|t| &topology.resolve_topic(app, t) == topic);
                if reads {
                    entry.state_store_names.extend(sub.stores.iter().cloned());
                }
            }
            entry.topic_partitions.insert((topic.clone(), *partition));
        }
        Ok(by_host.into_values().collect())
    }

    fn own_host(&self) -> Result<HostInfo> {
        self.inner
            .env
            .config
            .application_server
            .clone()
            .ok_or_else(|| {
                StreamsError::Config(
                    "application.server is not set, so this instance has no endpoint to report"
                        .into(),
                )
            })
    }

    /// The standby tasks this instance keeps now (see
    /// [`StreamsConfig::num_standby_replicas`](super::StreamsConfig::num_standby_replicas)).
    pub fn local_standby_tasks(&self) -> Vec<TaskId> {
        self.inner.shared.standbys().task_ids()
    }

    /// The tasks this instance runs now, with whether each is restoring.
    pub fn local_tasks(&self) -> Vec<(TaskId, bool)> {
        let mut out = Vec::new();
        for core in self.inner.shared.thread_cores() {
            let guard = super::thread::lock(&core);
            for (id, task) in guard.task_manager.tasks() {
                out.push((*id, task.is_restoring()));
            }
        }
        out.sort();
        out
    }
}

/// Where a key of a store lives (Kafka's `KeyQueryMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The `application.server` of the instance whose active task holds the key.
    pub active_host: HostInfo,
    /// The `application.server`s of the instances that keep a standby copy of the
    /// key's task (Kafka's `standbyHosts`); query them with
    /// [`StoreQueryParameters::enable_stale_stores`].
    pub standby_hosts: BTreeSet<HostInfo>,
    /// The key's partition (`-1` for a global store, held everywhere).
    pub partition: i32,
}

/// One instance of the application (Kafka's `StreamsMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsMetadata {
    /// Its `application.server`.
    pub host_info: HostInfo,
    /// The stores its tasks hold, global stores included.
    pub state_store_names: BTreeSet<String>,
    /// The source partitions it owns, `(topic, partition)`.
    pub topic_partitions: BTreeSet<(String, i32)>,
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !matches!(self.state(), State::NotRunning | State::Created) {
            self.close();
        }
    }
}

/// Puts the client in `ERROR` with `error` (before or instead of its threads).
fn fail_client(inner: &ClientInner, error: StreamsError) {
    tracing::error!(error = %error, "kafka streams failed");
    let mut status = inner.shared.status();
    if status.error.is_none() {
        status.error = Some(Arc::new(error));
    }
    for t in status.threads.iter_mut() {
        *t = ThreadState::Dead;
    }
    let next = aggregate(&status);
    inner.shared.transition(status, next);
}

fn spawn_stream_threads(inner: &Arc<ClientInner>) {
    if inner.env.config.num_standby_replicas > 0 {
        let (topology, env, shared) = (
            inner.topology.clone(),
            inner.env.clone(),
            inner.shared.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("{}-StandbyUpdater", inner.env.application_id))
            .spawn(move || run_standby_updater(topology, env, shared));
        match spawned {
            Ok(handle) => lock_handles(inner).push(handle),
            // Standbys only speed failovers up: processing goes on without them.
            Err(error) => {
                tracing::warn!(%error, "spawning the standby updater failed; no standby tasks")
            }
        }
    }
    for index in 0..inner.env.config.num_stream_threads {
        if inner.shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        spawn_thread(inner, index);
    }
}

fn lock_handles(inner: &ClientInner) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
    inner.handles.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn_thread(inner: &Arc<ClientInner>, index: usize) {
    let name = format!("{}-StreamThread-{}", inner.env.application_id, index + 1);
    inner.shared.set_thread_state(index, ThreadState::Starting);
    let inner2 = inner.clone();
    let spawned = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let inner = inner2;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_stream_thread(
                    index,
                    inner.topology.clone(),
                    inner.env.clone(),
                    inner.shared.clone(),
                )
            }))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(StreamsError::ThreadPanic {
                    thread: format!("StreamThread-{}", index + 1),
                    message,
                })
            });
            match result {
                Ok(()) => inner.shared.set_thread_state(index, ThreadState::Dead),
                Err(error) => {
                    tracing::error!(thread = index + 1, %error, "stream thread failed");
                    let handler = inner
                        .uncaught
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let response = handler
                        .map(|h| h(&error))
                        .unwrap_or(StreamThreadExceptionResponse::ShutdownClient);
                    let shutting_down = inner.shared.shutdown.load(Ordering::SeqCst);
                    if response == StreamThreadExceptionResponse::ReplaceThread && !shutting_down {
                        tracing::info!(thread = index + 1, "replacing the failed stream thread");
                        spawn_thread(&inner, index);
                    } else {
                        inner.shared.shutdown.store(true, Ordering::SeqCst);
                        let mut status = inner.shared.status();
                        if status.error.is_none() {
                            status.error = Some(Arc::new(error));
                        }
                        if let Some(t) = status.threads.get_mut(index) {
                            *t = ThreadState::Dead;
                        }
                        let next = aggregate(&status);
                        inner.shared.transition(status, next);
                    }
                }
            }
        });
    match spawned {
        Ok(handle) => lock_handles(inner).push(handle),
        Err(e) => {
            let mut status = inner.shared.status();
            status.error = Some(Arc::new(StreamsError::Internal(format!(
                "spawning stream thread {name}: {e}"
            ))));
            if let Some(t) = status.threads.get_mut(index) {
                *t = ThreadState::Dead;
            }
            inner.shared.shutdown.store(true, Ordering::SeqCst);
            let next = aggregate(&status);
            inner.shared.transition(status, next);
        }
    }
}
