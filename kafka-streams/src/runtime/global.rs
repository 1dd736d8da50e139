//! Global stores (Kafka's `GlobalStreamThread`): every instance keeps a full copy of
//! each global table's topic, all partitions, in a read-only store.
//!
//! On start the global thread wipes its stores and rebuilds them from the beginning
//! of their topics (the topic is the changelog, so there is nothing to checkpoint);
//! the stream threads start only once that restore is done, as in Kafka. Then the
//! thread keeps applying new records until the client closes. Records are copied as
//! bytes: a global store uses the topic's serdes.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::streams::ClientShared;
use super::task::TaskEnv;
use crate::error::{Result, StreamsError};
use crate::processor::TaskId;
use crate::state::{ChangelogPartition, RestoreProgress, StateStore, StoreContext};
use crate::topology::Topology;

/// Directory (in place of a task id) under `<state.dir>/<application.id>` that holds
/// the global stores.
pub(crate) const GLOBAL_STATE_DIR: &str = "global";

/// A global store and whether it is queryable yet.
pub(crate) struct GlobalStoreState {
    store: Box<dyn StateStore>,
    topic: String,
    ready: bool,
}

impl GlobalStoreState {
    /// The topic the store copies.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The store, whether restored or not (the test driver's view).
    pub fn store_mut(&mut self) -> &mut dyn StateStore {
        self.store.as_mut()
    }

    /// Applies one record of the topic: a value puts, a null value (tombstone)
    /// deletes, a null key is skipped with a warning.
    pub fn apply(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        origin: (&str, i32, i64),
    ) -> Result<()> {
        let name = self.store.name().to_owned();
        let Some(bytes) = self.store.byte_store() else {
            return Err(StreamsError::State {
                store: name,
                reason: "a global store must be a key-value store".into(),
            });
        };
        match (key, value) {
            (None, _) => {
                let (topic, partition, offset) = origin;
                tracing::warn!(topic, partition, offset, store = %name, "global table record without a key skipped");
            }
            (Some(key), Some(value)) => bytes.put(key, value)?,
            (Some(key), None) => {
                bytes.delete(key)?;
            }
        }
        Ok(())
    }

    /// Marks the store restored (queryable).
    pub fn set_ready(&mut self) {
        self.ready = true;
    }

    /// The store, once fully restored.
    pub fn queryable(&mut self) -> Option<&mut dyn StateStore> {
        if self.ready {
            Some(self.store.as_mut())
        } else {
            None
        }
    }
}

pub(crate) type SharedGlobalStore = Arc<Mutex<GlobalStoreState>>;

/// The global stores by store name, as the tasks' processors read them (a
/// stream-`GlobalKTable` join looks each record up here).
pub(crate) struct GlobalStoreMap(pub BTreeMap<String, SharedGlobalStore>);

impl crate::processor::internal::GlobalStores for GlobalStoreMap {
    fn with_store(&self, name: &str, f: &mut dyn FnMut(&mut dyn StateStore)) -> bool {
        match self.0.get(name) {
            Some(store) => {
                f(lock(store).store_mut());
                true
            }
            None => false,
        }
    }
}

fn lock(store: &Mutex<GlobalStoreState>) -> MutexGuard<'_, GlobalStoreState> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens (empty) every global store of `topology`.
pub(crate) fn open_global_stores(
    topology: &Topology,
    env: &TaskEnv,
) -> Result<BTreeMap<String, SharedGlobalStore>> {
    let mut stores = BTreeMap::new();
    let context = StoreContext::new(
        env.application_id.clone(),
        env.config.state_dir.clone(),
        TaskId {
            subtopology: 0,
            partition: 0,
        },
    )
    .with_rocksdb(env.rocksdb.clone())
    .in_directory(GLOBAL_STATE_DIR);
    for (name, global) in &topology.global_stores {
        // The topic is the changelog: rebuild from it rather than trust old files.
        let dir = context.location(name).store_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| StreamsError::State {
                store: name.clone(),
                reason: format!("wiping the global store at {}: {e}", dir.display()),
            })?;
        }
        let mut store = global.builder.build(context.task)?;
        store.init(&context)?;
        stores.insert(
            name.clone(),
            Arc::new(Mutex::new(GlobalStoreState {
                store,
                topic: global.topic.clone(),
                ready: false,
            })),
        );
    }
    Ok(stores)
}

/// Runs the global thread: restores every global store, calls `restored`, then keeps
/// them current until shutdown.
pub(crate) fn run_global_thread(
    stores: BTreeMap<String, SharedGlobalStore>,
    env: Arc<TaskEnv>,
    shared: Arc<ClientShared>,
    restored: impl FnOnce(),
) -> Result<()> {
    let app = &env.application_id;
    let consumer: BaseConsumer = env
        .config
        .global_consumer_config()
        .create()
        .map_err(|e| StreamsError::kafka("creating the global consumer", app, e))?;
    let by_topic: BTreeMap<String, SharedGlobalStore> = stores
        .values()
        .map(|s| (lock(s).topic.clone(), s.clone()))
        .collect();

    // Assign every partition of every global topic from the beginning.
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in by_topic.keys() {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| StreamsError::kafka("fetching global topic metadata", topic, e))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(StreamsError::MissingSourceTopic {
                topic: topic.clone(),
                subtopology: usize::MAX,
            });
        }
        for p in partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .map_err(|e| {
                    StreamsError::kafka(
                        "fetching global topic watermarks",
                        format!("{topic}-{p}"),
                        e,
                    )
                })?;
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| StreamsError::kafka("assigning", format!("{topic}-{p}"), e))?;
            ends.insert((topic.clone(), p), high);
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| StreamsError::kafka("assigning the global topics", "", e))?;

    // Restore: read every partition to the end it had at start.
    let mut progress: BTreeMap<(String, i32), RestoreProgress> = BTreeMap::new();
    for ((topic, partition), &end) in &ends {
        let store_name = lock(&by_topic[topic]).store.name().to_owned();
        let changelog = ChangelogPartition {
            topic: topic.clone(),
            partition: *partition,
        };
        let p = RestoreProgress::start(
            store_name,
            &changelog,
            0,
            end,
            Some(super::MetricsRestoreListener::wrap(
                env.metrics.clone(),
                env.config.restore_listener.clone(),
            )),
        );
        if end > 0 {
            progress.insert((topic.clone(), *partition), p);
        } else {
            p.finish();
        }
    }
    let mut last_record = Instant::now();
    while !progress.is_empty() {
        if shared.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        let applied = poll_and_apply(&consumer, &by_topic, env.config.poll_timeout)?;
        if applied.is_empty() {
            if last_record.elapsed() > Duration::from_secs(60) {
                return Err(StreamsError::IllegalState(format!(
                    "restoring global stores stalled; partitions left: {:?}",
                    progress.keys().collect::<Vec<_>>()
                )));
            }
        } else {
            last_record = Instant::now();
        }
        for (tp, (count, last)) in applied {
            if let Some(p) = progress.get_mut(&tp) {
                p.batch_restored(count, last);
            }
        }
        // Finish by position too: the last offsets may hold no record.
        let positions = consumer
            .position()
            .map_err(|e| StreamsError::kafka("reading global positions", "", e))?;
        for elem in positions.elements() {
            let tp = (elem.topic().to_owned(), elem.partition());
            if let (Offset::Offset(pos), Some(&end)) = (elem.offset(), ends.get(&tp)) {
                if pos >= end {
                    if let Some(p) = progress.remove(&tp) {
                        p.finish();
                    }
                }
            }
        }
    }
    for store in stores.values() {
        let mut s = lock(store);
        s.store.flush()?;
        s.ready = true;
    }
    tracing::info!(stores = ?stores.keys().collect::<Vec<_>>(), "global stores restored");
    restored();

    // Keep them current.
    let mut last_flush = Instant::now();
    while !shared.shutdown.load(Ordering::SeqCst) {
        poll_and_apply(&consumer, &by_topic, env.config.poll_timeout)?;
        if last_flush.elapsed() >= env.config.get_commit_interval() {
            for store in stores.values() {
                lock(store).store.flush()?;
            }
            last_flush = Instant::now();
        }
    }
    for store in stores.values() {
        let mut s = lock(store);
        s.ready = false;
        s.store.close()?;
    }
    Ok(())
}

/// Polls a batch and applies it; returns `(count, last offset)` per partition.
fn poll_and_apply(
    consumer: &BaseConsumer,
    by_topic: &BTreeMap<String, SharedGlobalStore>,
    timeout: Duration,
) -> Result<BTreeMap<(String, i32), (u64, i64)>> {
    let mut applied: BTreeMap<(String, i32), (u64, i64)> = BTreeMap::new();
    let mut wait = timeout;
    for _ in 0..2000 {
        let Some(message) = consumer.poll(wait) else {
            break;
        };
        wait = Duration::ZERO;
        let m = message.map_err(|e| StreamsError::kafka("reading the global topics", "", e))?;
        let Some(store) = by_topic.get(m.topic()) else {
            continue;
        };
        lock(store).apply(m.key(), m.payload(), (m.topic(), m.partition(), m.offset()))?;
        let entry = applied
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 = m.offset();
    }
    Ok(applied)
}
