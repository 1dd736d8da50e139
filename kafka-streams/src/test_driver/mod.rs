//! [`TopologyTestDriver`]: runs a topology synchronously, with no broker, through the
//! same task, processor and commit code as the runtime (Kafka's `streams-test-utils`).
//!
//! - One task per sub-topology, on partition 0 of its topics.
//! - Piping a record processes it (and everything it causes) before returning,
//!   including records written to internal repartition topics, which are fed back to
//!   the sub-topology reading them. Then the commit path runs, as in the runtime.
//! - A task reading several topics never waits for an empty one
//!   (`max.task.idle.ms` does not apply): a piped record is in its task at once, so
//!   there is no record on its way to wait for.
//! - Wall-clock time is a mock clock moved with
//!   [`TopologyTestDriver::advance_wall_clock_time`]; stream time moves with the
//!   piped records' timestamps.
//!
//! ```
//! use kafka_streams::dsl::StreamsBuilder;
//! use kafka_streams::test_driver::TopologyTestDriver;
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("in").map_values(|v| v.to_uppercase()).to("out");
//! let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
//! let input = driver.create_input_topic::<String, String>("in");
//! let output = driver.create_output_topic::<String, String>("out");
//! input.pipe_input("k".to_string(), "hello".to_string()).unwrap();
//! assert_eq!(output.read_value().unwrap(), Some("HELLO".to_string()));
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{DefaultSerde, Deserializer, MessageField, SerdeContext, Serializer};
use kafka_client::{ClientConfig, Headers, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::processor::{PunctuationType, RecordMetadata};
use crate::runtime::partition_group::AllFetched;
use crate::runtime::task::{StreamTask, TaskEnv};
use crate::runtime::{
    commit_tasks, Blocker, CommitOffsets, EncodedRecord, MetricsSnapshot, OffsetCommitter,
    RawRecord, RecordCollector, StreamsConfig, StreamsMetrics,
};
use crate::state::{queryable_key_value_store, QueryableKeyValueStore, StateStore};
use crate::topology::Topology;

/// A record read from or piped into a test topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Timestamp in milliseconds.
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> TestRecord<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        TestRecord {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }

    /// The same record with these headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

#[derive(Default)]
struct MemoryCollector {
    produced: Vec<EncodedRecord<'static>>,
}

impl RecordCollector for MemoryCollector {
    fn send(
        &mut self,
        record: EncodedRecord<'_>,
        _node: &str,
        _origin: Option<&RecordMetadata>,
    ) -> Result<()> {
        self.produced.push(record.into_owned());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct MemoryCommitter {
    committed: BTreeMap<TopicPartition, i64>,
}

/// Like Kafka's test driver, which has no broker commit: offsets are kept here, and
/// the tasks keep their processor metadata in memory (nothing reads it back).
impl OffsetCommitter for MemoryCommitter {
    fn commit(&mut self, offsets: &CommitOffsets) -> Result<()> {
        self.committed
            .extend(offsets.iter().map(|(k, v)| (k.clone(), v.offset)));
        Ok(())
    }
}

struct DriverState {
    tasks: Vec<StreamTask>,
    /// Global stores by the topic they copy; piped records update them at once.
    globals: HashMap<String, crate::runtime::global::SharedGlobalStore>,
    task_of_topic: HashMap<String, usize>,
    next_offset: HashMap<String, i64>,
    outputs: HashMap<String, VecDeque<EncodedRecord<'static>>>,
    collector: MemoryCollector,
    committer: MemoryCommitter,
    metrics: Arc<StreamsMetrics>,
    /// The driver's pseudo stream thread in the metrics: its tasks and commits.
    thread_metrics: Arc<crate::runtime::ThreadMetrics>,
    wall_clock: i64,
}

impl DriverState {
    fn pipe(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        if let Some(global) = self.globals.get(topic) {
            let offset = self.next_offset.entry(topic.to_owned()).or_insert(0);
            let origin = (topic, 0, *offset);
            *offset += 1;
            return global.lock().unwrap_or_else(|e| e.into_inner()).apply(
                key.as_deref(),
                value.as_deref(),
                origin,
            );
        }
        let Some(&t) = self.task_of_topic.get(topic) else {
            return Err(StreamsError::Topology(format!(
                "topic {topic} is not read by the topology (sources read: {:?})",
                self.task_of_topic.keys().collect::<Vec<_>>()
            )));
        };
        let offset = self.next_offset.entry(topic.to_owned()).or_insert(0);
        let raw = RawRecord {
            topic,
            partition: 0,
            offset: *offset,
            timestamp,
            key: key.as_deref(),
            value: value.as_deref(),
            headers,
        };
        *offset += 1;
        self.tasks[t].add_record(raw, &mut self.collector)?;
        self.drain()
    }

    /// Processes until every task is idle, feeding records written to topics the
    /// topology reads (repartition topics) back in; then commits.
    fn drain(&mut self) -> Result<()> {
        loop {
            let mut progressed = false;
            for task in &mut self.tasks {
                progressed |=
                    task.process_all(&mut self.collector, self.wall_clock, &AllFetched)? > 0;
            }
            let produced = std::mem::take(&mut self.collector.produced);
            for record in produced {
                progressed = true;
                if let Some(&t) = self.task_of_topic.get(record.topic.as_ref()) {
                    let offset = self
                        .next_offset
                        .entry(record.topic.to_string())
                        .or_insert(0);
                    let raw = RawRecord {
                        topic: &record.topic,
                        partition: 0,
                        offset: *offset,
                        timestamp: record.timestamp,
                        key: record.key.as_deref(),
                        value: record.value.as_deref(),
                        headers: record.headers.clone().into_owned(),
                    };
                    *offset += 1;
                    self.tasks[t].add_record(raw, &mut self.collector)?;
                }
                self.outputs
                    .entry(record.topic.to_string())
                    .or_default()
                    .push_back(record);
            }
            if !progressed {
                break;
            }
        }
        let commit_started = std::time::Instant::now();
        let committed = commit_tasks(
            self.tasks.iter_mut(),
            &mut self.collector,
            &mut self.committer,
            &self.metrics,
            false,
        )?;
        if committed > 0 {
            self.thread_metrics.record_commit(commit_started);
        }
        // Records the commit itself produced (changelog records the store caches
        // flushed) become visible in their topics.
        let mut fed = false;
        for record in std::mem::take(&mut self.collector.produced) {
            if let Some(&t) = self.task_of_topic.get(record.topic.as_ref()) {
                let offset = self
                    .next_offset
                    .entry(record.topic.to_string())
                    .or_insert(0);
                let raw = RawRecord {
                    topic: &record.topic,
                    partition: 0,
                    offset: *offset,
                    timestamp: record.timestamp,
                    key: record.key.as_deref(),
                    value: record.value.as_deref(),
                    headers: record.headers.clone().into_owned(),
                };
                *offset += 1;
                self.tasks[t].add_record(raw, &mut self.collector)?;
                fed = true;
            }
            self.outputs
                .entry(record.topic.to_string())
                .or_default()
                .push_back(record);
        }
        if fed {
            return self.drain();
        }
        Ok(())
    }
}

/// Runs a topology without a broker.
pub struct TopologyTestDriver {
    state: Rc<RefCell<DriverState>>,
    application_id: String,
    state_dir: std::path::PathBuf,
}

/// A fresh `state.dir` for one driver, removed when the driver is dropped (as Kafka's
/// driver uses a temporary directory).
fn unique_state_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "kafka-streams-test-driver-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl TopologyTestDriver {
    /// A driver with application id `topology-test-driver` and default handlers.
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_config(
            topology,
            StreamsConfig::new(
                "topology-test-driver",
                ClientConfig::new("test-driver:9092"),
            ),
        )
    }

    /// A driver with this configuration (application id, error handlers); the mock
    /// wall clock starts at 0.
    pub fn with_config(topology: Topology, config: StreamsConfig) -> Result<Self> {
        Self::with_config_and_time(topology, config, 0)
    }

    /// A driver whose mock wall clock starts at `initial_wall_clock_ms`.
    pub fn with_config_and_time(
        topology: Topology,
        config: StreamsConfig,
        initial_wall_clock_ms: i64,
    ) -> Result<Self> {
        config.validate()?;
        config.check_topology_optimization(&topology)?;
        let state_dir = unique_state_dir();
        let mut config = config.state_dir(state_dir.clone());
        // As Kafka's TopologyTestDriver: on-window-close aggregations look for closed
        // windows at every record, unless the test configured an interval.
        config
            .windowed_aggregation_emit_interval_ms
            .get_or_insert(0);
        config.outer_join_emit_interval_ms.get_or_insert(0);
        let application_id = config.application_id.clone();
        let metrics = Arc::new(StreamsMetrics::default());
        let env = Arc::new(TaskEnv {
            application_id: application_id.clone(),
            config,
            blocker: Blocker::Futures,
            rocksdb: crate::state::RocksDbMemory::default_shared(),
            metrics: metrics.clone(),
            process_id: crate::runtime::random_process_id(),
            globals: std::sync::OnceLock::new(),
        });
        let opened = crate::runtime::global::open_global_stores(&topology, &env)?;
        // Set before any task exists: the env was made just above.
        let _ = env
            .globals
            .set(crate::runtime::global::GlobalStoreMap(opened.clone()));
        let mut globals = HashMap::new();
        for store in opened.into_values() {
            let topic = store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .topic()
                .to_owned();
            store.lock().unwrap_or_else(|e| e.into_inner()).set_ready();
            globals.insert(topic, store);
        }
        let mut tasks = Vec::new();
        let mut task_of_topic = HashMap::new();
        let thread_metrics = metrics.register_thread("TopologyTestDriver");
        for sub in &topology.subtopologies {
            let mut task = StreamTask::new(&topology, sub, 0, env.clone())?;
            // Piping a record hands it to its task at once: there is never a record
            // to wait for, so tasks process whatever they hold.
            task.disable_idling();
            thread_metrics.add_task(task.metrics().clone());
            task.initialize(initial_wall_clock_ms)?;
            for tp in task.partitions() {
                task_of_topic.insert(tp.topic.clone(), tasks.len());
            }
            tasks.push(task);
        }
        Ok(TopologyTestDriver {
            state: Rc::new(RefCell::new(DriverState {
                tasks,
                globals,
                task_of_topic,
                next_offset: HashMap::new(),
                outputs: HashMap::new(),
                collector: MemoryCollector::default(),
                committer: MemoryCommitter::default(),
                metrics,
                thread_metrics,
                wall_clock: initial_wall_clock_ms,
            })),
            application_id,
            state_dir,
        })
    }

    /// An input topic written with the default serdes of `K` and `V`; records get
    /// timestamp 0 unless given one.
    pub fn create_input_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestInputTopic<K, V> {
        self.create_input_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An input topic written with these serializers.
    pub fn create_input_topic_with<K, V>(
        &self,
        topic: &str,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            state: self.state.clone(),
            topic: topic.to_owned(),
            key: Box::new(key),
            value: Box::new(value),
            time: Cell::new(0),
            advance: 0,
        }
    }

    /// An output topic read with the default serdes of `K` and `V`.
    pub fn create_output_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestOutputTopic<K, V> {
        self.create_output_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An output topic read with these deserializers.
    pub fn create_output_topic_with<K, V>(
        &self,
        topic: &str,
        key: impl Deserializer<K> + 'static,
        value: impl Deserializer<V> + 'static,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            state: self.state.clone(),
            topic: topic.to_owned(),
            key: Box::new(key),
            value: Box::new(value),
            read: Cell::new(0),
        }
    }

    /// Moves the mock wall clock forward and runs the wall-clock punctuations due.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<()> {
        let mut state = self.state.borrow_mut();
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        state.wall_clock = state.wall_clock.saturating_add(by_ms);
        let now = state.wall_clock;
        let DriverState {
            tasks, collector, ..
        } = &mut *state;
        for task in tasks.iter_mut() {
            task.maybe_punctuate(PunctuationType::WallClockTime, now, collector, now)?;
        }
        state.drain()
    }

    /// The mock wall-clock time in milliseconds.
    pub fn wall_clock_time_ms(&self) -> i64 {
        self.state.borrow().wall_clock
    }

    /// The application id (prefix of internal topics).
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// The counters (processed, skipped, dead-lettered records, commits...).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.state.borrow().metrics.snapshot()
    }

    /// Offsets committed by the commit path so far (next offset to read, per
    /// topic-partition).
    pub fn committed_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        self.state.borrow().committer.committed.clone()
    }

    /// Every topic something was written to, with the number of records not read
    /// yet.
    pub fn produced_topics(&self) -> BTreeMap<String, usize> {
        self.state
            .borrow()
            .outputs
            .iter()
            .map(|(t, q)| (t.clone(), q.len()))
            .collect()
    }

    /// Runs `f` on the state store `name` of the task that owns it (partition 0).
    pub fn with_state_store<S: StateStore, R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut S) -> R,
    ) -> Option<R> {
        let mut state = self.state.borrow_mut();
        for global in state.globals.values() {
            let mut global = global.lock().unwrap_or_else(|e| e.into_inner());
            let store = global.store_mut();
            if store.name() == name {
                let any = store.as_any_mut();
                return any.downcast_mut::<S>().map(f);
            }
        }
        for task in &mut state.tasks {
            if let Some(store) = task.store_mut::<S>(name) {
                return Some(f(store));
            }
        }
        None
    }

    /// Runs `f` on the state store `name` (the global one of that name, else the one
    /// of the first task that has it), untyped.
    fn with_store_as_any<R>(&self, name: &str, f: impl FnOnce(&mut dyn Any) -> R) -> Option<R> {
        let mut state = self.state.borrow_mut();
        for global in state.globals.values() {
            let mut global = global.lock().unwrap_or_else(|e| e.into_inner());
            let store = global.store_mut();
            if store.name() == name {
                return Some(f(store.as_any_mut()));
            }
        }
        for task in &mut state.tasks {
            if let Some(store) = task.state_manager_mut().stores_mut().get_mut(name) {
                return Some(f(store.as_any_mut()));
            }
        }
        None
    }

    /// The key-value store `name` (a DSL table or aggregation store, or one added with
    /// `add_state_store`), typed as `K`/`V` (Kafka's `getKeyValueStore`; a table's
    /// store read as plain values, or, with `V` = `ValueAndTimestamp<_>`, with their
    /// timestamps, as `getTimestampedKeyValueStore`). `None` when no task has a store of
    /// that name and types.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Option<TestKeyValueStore<'_, K, V>> {
        self.with_store_as_any(name, |any| queryable_key_value_store::<K, V>(any).is_some())
            .filter(|typed| *typed)?;
        Some(TestKeyValueStore {
            driver: self,
            name: name.to_owned(),
            _types: std::marker::PhantomData,
        })
    }

    /// Stream time of the task reading `topic`.
    pub fn stream_time_ms(&self, topic: &str) -> Option<i64> {
        let state = self.state.borrow();
        state
            .task_of_topic
            .get(topic)
            .map(|&t| state.tasks[t].stream_time())
    }
}

impl Drop for TopologyTestDriver {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            for task in &mut state.tasks {
                task.close();
            }
            for global in state.globals.values() {
                let mut global = global.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(error) = global.store_mut().close() {
                    tracing::warn!(%error, "closing a global store failed");
                }
            }
        }
        if self.state_dir.exists() {
            if let Err(error) = std::fs::remove_dir_all(&self.state_dir) {
                tracing::warn!(dir = %self.state_dir.display(), %error, "cannot remove the driver's state dir");
            }
        }
    }
}

/// A store of the driver's tasks, read through its typed layer (so reads see the
/// record cache, as processors do).
pub struct TestKeyValueStore<'a, K, V> {
    driver: &'a TopologyTestDriver,
    name: String,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TestKeyValueStore<'_, K, V> {
    fn with<R>(
        &self,
        f: impl FnOnce(&dyn QueryableKeyValueStore<K, V>) -> crate::state::StateResult<R>,
    ) -> Result<R> {
        self.driver
            .with_store_as_any(&self.name, |any| {
                queryable_key_value_store::<K, V>(any).map(|store| f(&*store))
            })
            .flatten()
            .ok_or_else(|| {
                StreamsError::IllegalState(format!("state store {} is gone", self.name))
            })?
            .map_err(StreamsError::from)
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.with(|s| s.get(key))
    }

    /// Every entry, in the order of the serialized keys.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        self.with(|s| s.all()?.collect())
    }

    /// The approximate number of entries.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        self.with(|s| s.approximate_num_entries())
    }
}

/// Pipes records into a topic of the topology (Kafka's `TestInputTopic`).
pub struct TestInputTopic<K, V> {
    state: Rc<RefCell<DriverState>>,
    topic: String,
    key: Box<dyn Serializer<K>>,
    value: Box<dyn Serializer<V>>,
    time: Cell<i64>,
    advance: i64,
}

impl<K, V> TestInputTopic<K, V> {
    /// Records piped without a timestamp start at `start_ms` and each advances the
    /// next one's by `auto_advance`.
    pub fn with_time(mut self, start_ms: i64, auto_advance: Duration) -> Self {
        self.time.set(start_ms);
        self.advance = i64::try_from(auto_advance.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Moves the timestamp of the next record piped without one.
    pub fn advance_time(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.time.set(self.time.get().saturating_add(by));
    }

    fn next_time(&self) -> i64 {
        let t = self.time.get();
        self.time.set(t.saturating_add(self.advance));
        t
    }

    /// Pipes one record with the topic's current time; processes it fully.
    pub fn pipe_input(&self, key: K, value: V) -> Result<()> {
        let ts = self.next_time();
        self.pipe_record(TestRecord::new(key, value, ts))
    }

    /// Pipes one record with this timestamp.
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        self.pipe_record(TestRecord::new(key, value, timestamp))
    }

    /// Pipes key/value pairs in order.
    pub fn pipe_key_value_list(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        for (k, v) in records {
            self.pipe_input(k, v)?;
        }
        Ok(())
    }

    /// Pipes records in order.
    pub fn pipe_records(&self, records: impl IntoIterator<Item = TestRecord<K, V>>) -> Result<()> {
        for r in records {
            self.pipe_record(r)?;
        }
        Ok(())
    }

    /// Pipes one record with its timestamp and headers.
    pub fn pipe_record(&self, record: TestRecord<K, V>) -> Result<()> {
        let serde_err = |field: MessageField, source| StreamsError::Production {
            topic: self.topic.clone(),
            node: "TestInputTopic".into(),
            origin: None,
            reason: format!("cannot serialize the {field} to pipe: {source}"),
            retriable: false,
        };
        let kctx = SerdeContext::new(&self.topic, MessageField::Key, &record.headers);
        let key = self
            .key
            .serialize(&record.key, &kctx)
            .map_err(|e| serde_err(MessageField::Key, e))?;
        let vctx = SerdeContext::new(&self.topic, MessageField::Value, &record.headers);
        let value = self
            .value
            .serialize(&record.value, &vctx)
            .map_err(|e| serde_err(MessageField::Value, e))?;
        self.state
            .borrow_mut()
            .pipe(&self.topic, key, value, record.timestamp, record.headers)
    }
}

/// Reads what the topology wrote to a topic (Kafka's `TestOutputTopic`).
pub struct TestOutputTopic<K, V> {
    state: Rc<RefCell<DriverState>>,
    topic: String,
    key: Box<dyn Deserializer<K>>,
    value: Box<dyn Deserializer<V>>,
    read: Cell<i64>,
}

impl<K, V> TestOutputTopic<K, V> {
    /// The next record, `None` when all were read.
    pub fn read_record(&self) -> Result<Option<TestRecord<K, V>>> {
        let next = self
            .state
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(VecDeque::pop_front);
        let Some(r) = next else {
            return Ok(None);
        };
        let offset = self.read.get();
        self.read.set(offset + 1);
        let err = |field: MessageField, source| StreamsError::Deserialization {
            topic: self.topic.clone(),
            partition: 0,
            offset,
            field: field.to_string(),
            source,
        };
        let kctx = SerdeContext::new(&self.topic, MessageField::Key, &r.headers);
        let key = self
            .key
            .deserialize(r.key.as_deref(), &kctx)
            .map_err(|e| err(MessageField::Key, e))?;
        let vctx = SerdeContext::new(&self.topic, MessageField::Value, &r.headers);
        let value = self
            .value
            .deserialize(r.value.as_deref(), &vctx)
            .map_err(|e| err(MessageField::Value, e))?;
        Ok(Some(TestRecord {
            key,
            value,
            timestamp: r.timestamp,
            headers: r.headers.into_owned(),
        }))
    }

    /// The next value.
    pub fn read_value(&self) -> Result<Option<V>> {
        Ok(self.read_record()?.map(|r| r.value))
    }

    /// The next key and value.
    pub fn read_key_value(&self) -> Result<Option<(K, V)>> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    /// Every record not read yet.
    pub fn read_records_to_list(&self) -> Result<Vec<TestRecord<K, V>>> {
        let mut out = Vec::new();
        while let Some(r) = self.read_record()? {
            out.push(r);
        }
        Ok(out)
    }

    /// Every value not read yet.
    pub fn read_values_to_list(&self) -> Result<Vec<V>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| r.value)
            .collect())
    }

    /// Every key and value not read yet.
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }

    /// The latest value per key of the records not read yet.
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Eq + Hash,
    {
        Ok(self.read_key_values_to_list()?.into_iter().collect())
    }

    /// Number of records not read yet.
    pub fn queue_size(&self) -> usize {
        self.state
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, VecDeque::len)
    }

    /// Whether every record was read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
