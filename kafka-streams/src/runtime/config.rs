//! [`StreamsConfig`]: the application id, the client configuration, and Kafka
//! Streams' settings under their Java names.

use std::sync::Arc;
use std::time::Duration;

use kafka_client::ClientConfig;

use super::handlers::{
    DeadLetterQueueExceptionHandler, DefaultProductionExceptionHandler,
    DeserializationExceptionHandler, LogAndContinueExceptionHandler, LogAndFailExceptionHandler,
    LogAndFailProcessingExceptionHandler, ProcessingExceptionHandler, ProductionExceptionHandler,
};
use crate::error::{Result, StreamsError};
use crate::topology::{Topology, TopologyOptimization};

/// Creates an internal topic: `(topic, partitions, replication_factor)`. The default
/// uses the Kafka admin API; the embedded mock cluster, which has none, needs its own.
pub type TopicCreator = Arc<dyn Fn(&str, i32, i32) -> Result<()> + Send + Sync>;

/// How many records a stream thread's consumer prefetches per partition
/// (librdkafka's `queued.min.messages`) unless the configuration sets it.
///
/// librdkafka's own default, 100 000, keeps up to 64 MiB of fetched records waiting
/// while a task works through far fewer per commit interval. Kafka Streams bounds its
/// input buffer the same way (`buffered.records.per.partition`). In
/// `bash scripts/bench.sh peers` this took the peak memory of the stateless pipeline
/// from 127 to 77 MiB and of the word count from 255 to 195 MiB, at the same
/// throughput. The restore and global consumers keep librdkafka's default: they read
/// in bulk.
pub const MAIN_CONSUMER_PREFETCH_PER_PARTITION: u32 = 20_000;

/// The configuration of a Kafka Streams application.
///
/// ```
/// use std::time::Duration;
/// use kafka_client::ClientConfig;
/// use kafka_streams::runtime::StreamsConfig;
///
/// let config = StreamsConfig::new("iot-pipeline", ClientConfig::new("localhost:9092"))
///     .num_stream_threads(2)
///     .commit_interval(Duration::from_millis(100))
///     .set("num.stream.threads", "4")
///     .unwrap();
/// assert_eq!(config.get_num_stream_threads(), 4);
/// ```
#[derive(Clone)]
pub struct StreamsConfig {
    pub(crate) application_id: String,
    pub(crate) client: ClientConfig,
    pub(crate) num_stream_threads: usize,
    /// `commit.interval.ms` when set; `None` takes the guarantee's default.
    pub(crate) commit_interval: Option<Duration>,
    pub(crate) processing_guarantee: ProcessingGuarantee,
    pub(crate) poll_timeout: Duration,
    pub(crate) max_poll_records: usize,
    /// `max.task.idle.ms`; `-1` never waits.
    pub(crate) max_task_idle_ms: i64,
    /// `task.timeout.ms`: how long a task may stall on retriable errors.
    pub(crate) task_timeout: Duration,
    /// `restore.consumer.max.poll.records`: the restore batch size; `None` lets the
    /// changelog reader pick one.
    pub(crate) restore_max_poll_records: Option<usize>,
    pub(crate) replication_factor: i32,
    pub(crate) deserialization_handler: Arc<dyn DeserializationExceptionHandler>,
    pub(crate) processing_handler: Arc<dyn ProcessingExceptionHandler>,
    pub(crate) production_handler: Arc<dyn ProductionExceptionHandler>,
    pub(crate) topic_creator: Option<TopicCreator>,
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    pub(crate) state_dir: std::path::PathBuf,
    pub(crate) restore_listener: Option<Arc<dyn crate::state::StateRestoreListener>>,
    pub(crate) cache_max_bytes: usize,
    pub(crate) application_server: Option<HostInfo>,
    /// `num.standby.replicas` (see [`StreamsConfig::num_standby_replicas`]).
    pub(crate) num_standby_replicas: usize,
    pub(crate) topology_optimization: TopologyOptimization,
    /// Kafka's internal `__emit.interval.ms.kstreams.windowed.aggregation__`: how much
    /// wall-clock time passes at least between two looks for closed windows of an
    /// on-window-close aggregation; `None` is the default (1 s, and 0 in the test
    /// driver, as Kafka's `TopologyTestDriver` sets it).
    pub(crate) windowed_aggregation_emit_interval_ms: Option<i64>,
    /// Kafka's internal `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__`:
    /// how much wall-clock time passes at least between two looks for closed windows
    /// of a left or outer stream-stream join; `None` is the default (1 s, and 0 in the
    /// test driver, as Kafka's `TopologyTestDriver` sets it).
    pub(crate) outer_join_emit_interval_ms: Option<i64>,
    /// Whether tasks run each step in a span and stamp its W3C trace context on
    /// their output (see [`StreamsConfig::trace_context`]).
    pub(crate) trace_context: bool,
}

/// `processing.guarantee`: what a crash or a rebalance may do to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// `at_least_once` (the default): output is flushed before the input offsets are
    /// committed, so nothing is lost, but records processed after the last commit are
    /// processed again after a crash, and their output appears twice.
    #[default]
    AtLeastOnce,
    /// `exactly_once_v2`: each stream thread's output, changelog writes and input
    /// offsets are committed in one Kafka transaction, with a transactional producer
    /// per thread (`transactional.id` = `<application.id>-<process id>-<thread index>`,
    /// the process id kept in the state directory). Consumers read `read_committed`;
    /// `commit.interval.ms` defaults to 100 ms. After a crash, stores are rebuilt
    /// from their changelogs, so they never hold effects of an aborted transaction.
    ExactlyOnceV2,
}

impl ProcessingGuarantee {
    /// Parses Kafka's names, `at_least_once` and `exactly_once_v2`.
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim() {
            "at_least_once" => Ok(ProcessingGuarantee::AtLeastOnce),
            "exactly_once_v2" => Ok(ProcessingGuarantee::ExactlyOnceV2),
            other => Err(StreamsError::Config(format!(
                "processing.guarantee={other}: expected at_least_once or exactly_once_v2"
            ))),
        }
    }

    /// Whether output and offsets are committed in transactions.
    pub fn is_exactly_once(self) -> bool {
        self == ProcessingGuarantee::ExactlyOnceV2
    }
}

/// `transaction.timeout.ms` of the stream threads' producers under exactly-once, as
/// Kafka Streams sets it: a crashed thread's open transaction blocks `read_committed`
/// readers of its output for at most this long (a restart with the same process id
/// aborts it at once).
const EOS_TRANSACTION_TIMEOUT_MS: &str = "10000";

/// `task.timeout.ms`'s default, Kafka's: 5 minutes.
const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_millis(300_000);

/// An instance's `application.server` endpoint (Kafka's `HostInfo`), for
/// interactive queries routed between instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostInfo {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostInfo {
    /// Parses `host:port`.
    pub fn parse(endpoint: &str) -> Result<Self> {
        let bad = |why: &str| {
            StreamsError::Config(format!(
                "application.server={endpoint}: {why}; expected host:port"
            ))
        };
        let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.is_empty() || host.contains('@') {
            return Err(bad("bad host"));
        }
        let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
        Ok(HostInfo {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsConfig")
            .field("application_id", &self.application_id)
            .field("num_stream_threads", &self.num_stream_threads)
            .field("commit_interval", &self.commit_interval)
            .finish_non_exhaustive()
    }
}

impl StreamsConfig {
    /// `application.id` (also the consumer group id and the prefix of internal
    /// topics) and the client settings (bootstrap servers, security...).
    pub fn new(application_id: impl Into<String>, client: ClientConfig) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            client,
            num_stream_threads: 1,
            commit_interval: None,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            poll_timeout: Duration::from_millis(100),
            max_poll_records: 1000,
            max_task_idle_ms: 0,
            task_timeout: DEFAULT_TASK_TIMEOUT,
            restore_max_poll_records: None,
            replication_factor: -1,
            deserialization_handler: Arc::new(LogAndFailExceptionHandler),
            processing_handler: Arc::new(LogAndFailProcessingExceptionHandler),
            production_handler: Arc::new(DefaultProductionExceptionHandler),
            topic_creator: None,
            runtime: None,
            state_dir: std::env::temp_dir().join("kafka-streams"),
            restore_listener: None,
            cache_max_bytes: crate::state::DEFAULT_CACHE_MAX_BYTES,
            application_server: None,
            num_standby_replicas: 0,
            topology_optimization: TopologyOptimization::NONE,
            windowed_aggregation_emit_interval_ms: None,
            outer_join_emit_interval_ms: None,
            trace_context: false,
        }
    }

    /// W3C trace context through the topology (off by default, as kafka-client's
    /// [`ProducerBuilder::trace_context`](kafka_client::ProducerBuilder::trace_context)
    /// and [`ConsumerBuilder::trace_context`](kafka_client::ConsumerBuilder::trace_context);
    /// Kafka Streams has no such setting). On, a task processes each record in an
    /// info-level `kafka_streams.process` span, the child of the `traceparent` in
    /// the record's headers (a new root without one); punctuations and the commit's
    /// cache flush run in `kafka_streams.punctuate` and `kafka_streams.flush` spans.
    /// Every record a step writes to a sink, a repartition topic or a changelog
    /// carries its span's context as `traceparent`/`tracestate`, replacing the
    /// inherited ones. Trace ids come from OpenTelemetry through
    /// `tracing-opentelemetry`'s layer; without it (or when no subscriber wants the
    /// spans) records keep the headers they inherited, and a disabled span costs a
    /// few nanoseconds per record.
    ///
    /// What a record cache holds back until the commit carries the flush span's
    /// context (a cache keeps no headers); a punctuation's output, the punctuation
    /// span's. With [`StreamsConfig::cache_max_bytes`] 0 an aggregation's output
    /// continues the trace of the record it counts.
    ///
    /// Off, nothing is created per record: a subscriber that logs info-level spans
    /// (a `fmt` subscriber's default) would otherwise pay for a span per record.
    pub fn trace_context(mut self, enabled: bool) -> Self {
        self.trace_context = enabled;
        self
    }

    /// Whether trace context runs through the topology ([`StreamsConfig::trace_context`]).
    pub fn get_trace_context(&self) -> bool {
        self.trace_context
    }

    /// `topology.optimization` (default [`TopologyOptimization::NONE`]); see
    /// [`TopologyOptimization`] for the rewrites. As in Kafka, optimizations are applied
    /// when the topology is built: build it with
    /// [`StreamsBuilder::build_with`](crate::dsl::StreamsBuilder::build_with)`(config.get_topology_optimization())`.
    /// [`KafkaStreams::new`](super::KafkaStreams::new) and the
    /// [`TopologyTestDriver`](crate::test_driver::TopologyTestDriver) reject a topology
    /// built with other optimizations than a value other than `none` set here, rather
    /// than silently running something else.
    ///
    /// ```
    /// use kafka_client::ClientConfig;
    /// use kafka_streams::dsl::StreamsBuilder;
    /// use kafka_streams::runtime::{StreamsConfig, TopologyOptimization};
    ///
    /// let config = StreamsConfig::new("tables", ClientConfig::new("localhost:9092"))
    ///     .topology_optimization(TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS);
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("plants");
    /// let topology = builder.build_with(config.get_topology_optimization()).unwrap();
    /// assert_eq!(topology.source_table_stores().count(), 1);
    /// ```
    pub fn topology_optimization(mut self, optimization: TopologyOptimization) -> Self {
        self.topology_optimization = optimization;
        self
    }

    /// The configured `topology.optimization`.
    pub fn get_topology_optimization(&self) -> TopologyOptimization {
        self.topology_optimization
    }

    /// Fails when `topology.optimization` is set (not `none`) and `topology` was built
    /// with other optimizations.
    pub(crate) fn check_topology_optimization(&self, topology: &Topology) -> Result<()> {
        let wanted = self.topology_optimization;
        if wanted == TopologyOptimization::NONE || wanted == topology.optimization() {
            return Ok(());
        }
        Err(StreamsError::Config(format!(
            "topology.optimization is {wanted:?} but the topology was built with {:?}; \
             build it with StreamsBuilder::build_with(config.get_topology_optimization())",
            topology.optimization()
        )))
    }

    /// `statestore.cache.max.bytes` (default 10 MiB): the record cache of all stores,
    /// split evenly between the stream threads. `0` disables caching, so every update
    /// reaches the changelog and downstream at once.
    pub fn cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// `application.server`: this instance's `host:port` endpoint, which
    /// [`KafkaStreams::query_metadata_for_key`](super::KafkaStreams::query_metadata_for_key)
    /// reports to find the instance hosting a key.
    pub fn application_server(mut self, endpoint: &str) -> Result<Self> {
        self.application_server = Some(HostInfo::parse(endpoint)?);
        Ok(self)
    }

    /// `num.standby.replicas` (default 0): how many other instances keep a standby
    /// copy of each task's logged stores, kept up to date from their changelogs
    /// (`read_committed` under exactly-once), so that the instance taking a task over
    /// restores only the changelog records after the standby's checkpoint.
    ///
    /// Placement, computed alike by every instance from the claims of the
    /// `<application.id>-streams-metadata` topic: a task's owner is the process whose
    /// latest claim names the task's partition; live instances are ordered by process
    /// id as a ring; the task's standbys are the `num.standby.replicas` live instances
    /// that follow its owner in the ring, never the owner (so at most instances − 1).
    /// Standby stores answer queries that accept stale data
    /// ([`StoreQueryParameters::enable_stale_stores`](super::StoreQueryParameters::enable_stale_stores)),
    /// and [`KeyQueryMetadata::standby_hosts`](super::KeyQueryMetadata::standby_hosts)
    /// lists their instances.
    pub fn num_standby_replicas(mut self, replicas: usize) -> Self {
        self.num_standby_replicas = replicas;
        self
    }

    /// Whether the instance publishes its claims to the metadata topic: key lookups
    /// (`application.server`) and standby placement read them.
    pub(crate) fn publishes_membership(&self) -> bool {
        self.application_server.is_some() || self.num_standby_replicas > 0
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// `num.stream.threads` (default 1).
    pub fn num_stream_threads(mut self, threads: usize) -> Self {
        self.num_stream_threads = threads;
        self
    }

    /// The configured number of stream threads.
    pub fn get_num_stream_threads(&self) -> usize {
        self.num_stream_threads
    }

    /// `commit.interval.ms` (default 30 s under at-least-once, 100 ms under
    /// exactly-once, as in Kafka).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = Some(interval);
        self
    }

    /// The commit interval in effect: the configured one, or the guarantee's default.
    pub fn get_commit_interval(&self) -> Duration {
        self.commit_interval
            .unwrap_or(if self.processing_guarantee.is_exactly_once() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(30_000)
            })
    }

    /// `processing.guarantee` (default [`ProcessingGuarantee::AtLeastOnce`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_client::ClientConfig;
    /// use kafka_streams::runtime::{ProcessingGuarantee, StreamsConfig};
    ///
    /// let config = StreamsConfig::new("payments", ClientConfig::new("localhost:9092"))
    ///     .processing_guarantee(ProcessingGuarantee::ExactlyOnceV2);
    /// assert_eq!(config.get_commit_interval(), Duration::from_millis(100));
    /// let config = config.set("processing.guarantee", "at_least_once").unwrap();
    /// assert_eq!(config.get_processing_guarantee(), ProcessingGuarantee::AtLeastOnce);
    /// assert_eq!(config.get_commit_interval(), Duration::from_secs(30));
    /// ```
    pub fn processing_guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.processing_guarantee = guarantee;
        self
    }

    /// The configured `processing.guarantee`.
    pub fn get_processing_guarantee(&self) -> ProcessingGuarantee {
        self.processing_guarantee
    }

    /// `poll.ms`: how long a stream thread waits for records (default 100 ms).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// `max.task.idle.ms` (default 0): how long a task reading several partitions
    /// (a merge or a join of topics) waits for an input that has no buffered record
    /// but is caught up with the broker, before processing its other inputs anyway
    /// ("enforced processing", counted in
    /// [`MetricsSnapshot::enforced_processing_total`](super::MetricsSnapshot::enforced_processing_total)).
    /// Whatever the value, a task waits while such an input has records on the broker
    /// that were not fetched yet, or before its lag is known, so that records come out
    /// in timestamp order across the inputs. `None` (Kafka's `-1`) never waits:
    /// tasks process whatever is buffered. Tasks reading one partition never wait.
    ///
    /// Under `isolation.level=read_committed`, an input whose end holds an open
    /// transaction counts as behind until the transaction ends (librdkafka gives its
    /// high watermark, not its last stable offset, without a broker round trip).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_client::ClientConfig;
    /// use kafka_streams::runtime::StreamsConfig;
    ///
    /// let config = StreamsConfig::new("joins", ClientConfig::new("localhost:9092"))
    ///     .max_task_idle(Some(Duration::from_secs(10)));
    /// assert_eq!(config.get_max_task_idle(), Some(Duration::from_secs(10)));
    /// let config = config.set("max.task.idle.ms", "-1").unwrap();
    /// assert_eq!(config.get_max_task_idle(), None);
    /// ```
    pub fn max_task_idle(mut self, idle: Option<Duration>) -> Self {
        self.max_task_idle_ms = match idle {
            Some(idle) => i64::try_from(idle.as_millis()).unwrap_or(i64::MAX),
            None => -1,
        };
        self
    }

    /// The configured `max.task.idle.ms`; `None` when tasks never wait.
    pub fn get_max_task_idle(&self) -> Option<Duration> {
        u64::try_from(self.max_task_idle_ms)
            .ok()
            .map(Duration::from_millis)
    }

    /// `task.timeout.ms` (default 300 000 ms, 5 minutes, as in Kafka): how long a task
    /// may stall on internal errors that may go away (Kafka's `TimeoutException`s)
    /// before the stream thread fails. Today that covers offset commits failing
    /// because the group coordinator or the broker is unreachable: processing goes on,
    /// each commit interval commits again, and the thread fails once the commits have
    /// failed for this long. With zero, the first such failure fails the thread.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_client::ClientConfig;
    /// use kafka_streams::runtime::StreamsConfig;
    ///
    /// let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
    /// assert_eq!(config.get_task_timeout(), Duration::from_secs(300));
    /// let config = config.set("task.timeout.ms", "60000").unwrap();
    /// assert_eq!(config.get_task_timeout(), Duration::from_secs(60));
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = timeout;
        self
    }

    /// The configured `task.timeout.ms`.
    pub fn get_task_timeout(&self) -> Duration {
        self.task_timeout
    }

    /// `replication.factor` of internal topics (default -1: the broker's default).
    pub fn replication_factor(mut self, factor: i32) -> Self {
        self.replication_factor = factor;
        self
    }

    /// `default.deserialization.exception.handler`.
    pub fn deserialization_exception_handler(
        mut self,
        handler: impl DeserializationExceptionHandler + 'static,
    ) -> Self {
        self.deserialization_handler = Arc::new(handler);
        self
    }

    /// `processing.exception.handler`.
    pub fn processing_exception_handler(
        mut self,
        handler: impl ProcessingExceptionHandler + 'static,
    ) -> Self {
        self.processing_handler = Arc::new(handler);
        self
    }

    /// `default.production.exception.handler`.
    pub fn production_exception_handler(
        mut self,
        handler: impl ProductionExceptionHandler + 'static,
    ) -> Self {
        self.production_handler = Arc::new(handler);
        self
    }

    /// How internal topics are created (default: the Kafka admin API). The admin API
    /// creates changelog topics with `cleanup.policy=compact`; a custom creator gets
    /// only name, partitions and replication, and must compact topics ending in
    /// `-changelog` itself.
    pub fn topic_creator(
        mut self,
        creator: impl Fn(&str, i32, i32) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.topic_creator = Some(Arc::new(creator));
        self
    }

    /// The tokio runtime that serdes' asynchronous `prepare` hooks run on (default:
    /// the runtime `KafkaStreams::new` is called from, if any).
    pub fn tokio_handle(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// `state.dir`: where persistent stores live, as
    /// `<state.dir>/<application.id>/<task>/<store>` (default
    /// `<temp dir>/kafka-streams`, as in Kafka Streams).
    pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// A listener told when each store's restore starts, progresses and ends (Kafka's
    /// `setGlobalStateRestoreListener`).
    pub fn state_restore_listener(
        mut self,
        listener: impl crate::state::StateRestoreListener + 'static,
    ) -> Self {
        self.restore_listener = Some(Arc::new(listener));
        self
    }

    /// The configured `state.dir`.
    pub fn get_state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// The least wall-clock time between two looks for closed windows of an
    /// on-window-close aggregation (1 s unless set).
    pub(crate) fn windowed_emit_interval_ms(&self) -> i64 {
        self.windowed_aggregation_emit_interval_ms.unwrap_or(1000)
    }

    /// The least wall-clock time between two looks for closed windows of a left or
    /// outer stream-stream join (1 s unless set).
    pub(crate) fn outer_join_emit_interval_ms(&self) -> i64 {
        self.outer_join_emit_interval_ms.unwrap_or(1000)
    }

    /// Sets a property by its Kafka Streams name. Streams properties
    /// (`num.stream.threads`, `commit.interval.ms`, `state.dir`, `poll.ms`, `replication.factor`,
    /// `statestore.cache.max.bytes` (or the older `cache.max.bytes.buffering`),
    /// `processing.guarantee` (`at_least_once` or `exactly_once_v2`),
    /// `application.server`, `num.standby.replicas`, `topology.optimization` (see
    /// [`TopologyOptimization::parse`]), `max.task.idle.ms` (`-1` never waits; see
    /// [`StreamsConfig::max_task_idle`]), `task.timeout.ms` (see [`StreamsConfig::task_timeout`]),
    /// `max.poll.records`, `restore.consumer.max.poll.records` (changelog records applied
    /// per restore batch; by default 50 000, or 20 000 while other tasks run),
    /// `default.deserialization.exception.handler` = `logAndFail`
    /// / `logAndContinue`, `errors.dead.letter.queue.topic.name`, and Kafka's internal
    /// `__emit.interval.ms.kstreams.windowed.aggregation__`: the least wall-clock time
    /// between two looks for closed windows under
    /// [`EmitStrategy::on_window_close`](crate::dsl::EmitStrategy::on_window_close), 1 s by
    /// default, 0 in the test driver) are parsed; anything else is a librdkafka client
    /// property.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        let num = |v: &str| -> Result<u64> {
            v.trim()
                .parse::<u64>()
                .map_err(|e| StreamsError::Config(format!("{key}={v}: {e}")))
        };
        match key {
            "application.id" => self.application_id = value.to_owned(),
            "state.dir" => self.state_dir = value.into(),
            "num.stream.threads" => self.num_stream_threads = num(value)? as usize,
            "commit.interval.ms" => self.commit_interval = Some(Duration::from_millis(num(value)?)),
            "processing.guarantee" => {
                self.processing_guarantee = ProcessingGuarantee::parse(value)?
            }
            "poll.ms" => self.poll_timeout = Duration::from_millis(num(value)?),
            "max.poll.records" => self.max_poll_records = num(value)?.max(1) as usize,
            "max.task.idle.ms" => {
                self.max_task_idle_ms = match value.trim().parse::<i64>() {
                    Ok(ms) if ms >= -1 => ms,
                    Ok(ms) => {
                        return Err(StreamsError::Config(format!(
                            "{key}={ms}: expected -1 (never wait) or a number of milliseconds >= 0"
                        )))
                    }
                    Err(e) => return Err(StreamsError::Config(format!("{key}={value}: {e}"))),
                }
            }
            "task.timeout.ms" => self.task_timeout = Duration::from_millis(num(value)?),
            "restore.consumer.max.poll.records" => {
                self.restore_max_poll_records = Some(num(value)?.max(1) as usize)
            }
            "statestore.cache.max.bytes" | "cache.max.bytes.buffering" => {
                self.cache_max_bytes = num(value)? as usize
            }
            "application.server" => self.application_server = Some(HostInfo::parse(value)?),
            "num.standby.replicas" => self.num_standby_replicas = num(value)? as usize,
            "__emit.interval.ms.kstreams.windowed.aggregation__" => {
                self.windowed_aggregation_emit_interval_ms =
                    Some(i64::try_from(num(value)?).unwrap_or(i64::MAX))
            }
            "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__" => {
                self.outer_join_emit_interval_ms =
                    Some(i64::try_from(num(value)?).unwrap_or(i64::MAX))
            }
            "topology.optimization" => {
                self.topology_optimization = TopologyOptimization::parse(value)?
            }
            "replication.factor" => {
                self.replication_factor = value
                    .trim()
                    .parse()
                    .map_err(|e| StreamsError::Config(format!("{key}={value}: {e}")))?
            }
            "default.deserialization.exception.handler" => match value {
                "logAndFail" | "LogAndFailExceptionHandler" => {
                    self.deserialization_handler = Arc::new(LogAndFailExceptionHandler)
                }
                "logAndContinue" | "LogAndContinueExceptionHandler" => {
                    self.deserialization_handler = Arc::new(LogAndContinueExceptionHandler)
                }
                other => {
                    return Err(StreamsError::Config(format!(
                        "{key}={other}: expected logAndFail or logAndContinue"
                    )))
                }
            },
            "errors.dead.letter.queue.topic.name" => {
                self.deserialization_handler = Arc::new(DeadLetterQueueExceptionHandler::new(value))
            }
            _ => self.client = self.client.set(key, value),
        }
        Ok(self)
    }

    /// The client configuration.
    pub fn client_config(&self) -> &ClientConfig {
        &self.client
    }

    /// What every consumer of the application has: kafka-client's consumer defaults,
    /// and offsets committed by the runtime only (at commit), never automatically.
    /// Under exactly-once every consumer (main, restore, global) reads
    /// `read_committed`, as in Kafka: records of aborted transactions never reach a
    /// task, a store or a global table.
    fn consumer_base(&self) -> rdkafka::ClientConfig {
        let mut config = self.client.clone().with_consumer_defaults().to_rdkafka();
        // Only the main consumers are group members (see `main_consumer_config`).
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .remove("group.instance.id");
        if self.processing_guarantee.is_exactly_once() {
            config.set("isolation.level", "read_committed");
        }
        config
    }

    /// The main consumer of stream thread `thread_name` (Kafka's main consumer): in
    /// the group `application.id`, `range` assignment (co-partitioned topics' same
    /// partitions go to one thread), `earliest` unless configured, and an event at
    /// the end of each partition (it tells a task that an input is caught up, see
    /// `partition_group.rs`). A configured `group.instance.id` (static membership) gets
    /// the thread's index appended (`<id>-<thread_index>`), as in Kafka: each thread's
    /// consumer is its own member, and a restarted instance takes its threads' places.
    pub(crate) fn main_consumer_config(
        &self,
        thread_name: &str,
        thread_index: usize,
    ) -> rdkafka::ClientConfig {
        let mut config = self.consumer_base();
        config
            .set("group.id", &self.application_id)
            .set("client.id", format!("{thread_name}-consumer"))
            .set("partition.assignment.strategy", "range")
            .set("enable.partition.eof", "true");
        if let Some(instance) = self.client.get("group.instance.id") {
            config.set("group.instance.id", format!("{instance}-{thread_index}"));
        }
        if self.client.get("auto.offset.reset").is_none() {
            config.set("auto.offset.reset", "earliest");
        }
        if self.client.get("queued.min.messages").is_none() {
            config.set(
                "queued.min.messages",
                MAIN_CONSUMER_PREFETCH_PER_PARTITION.to_string(),
            );
        }
        config
    }

    /// The restore consumer of stream thread `thread_name` (reads changelogs from
    /// their checkpoints; assigned, never subscribed).
    pub(crate) fn restore_consumer_config(&self, thread_name: &str) -> rdkafka::ClientConfig {
        let mut config = self.consumer_base();
        config
            .set(
                "group.id",
                format!("{}-restore-consumer", self.application_id),
            )
            .set("client.id", format!("{thread_name}-restore-consumer"))
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        config
    }

    /// The global consumer (reads global tables' topics from the beginning; assigned,
    /// never subscribed).
    pub(crate) fn global_consumer_config(&self) -> rdkafka::ClientConfig {
        let app = &self.application_id;
        let mut config = self.consumer_base();
        config
            .set("group.id", format!("{app}-global-consumer"))
            .set("client.id", format!("{app}-GlobalStreamThread-consumer"))
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        config
    }

    /// The producer of stream thread `thread_name`, with Java-compatible key
    /// partitioning unless configured, so repartition topics agree with Kafka
    /// Streams applications in other languages.
    ///
    /// `transactional_id` (exactly-once only) makes it transactional and idempotent;
    /// `transaction.timeout.ms` is Kafka Streams' 10 s unless configured.
    pub(crate) fn producer_config(
        &self,
        thread_name: &str,
        transactional_id: Option<&str>,
    ) -> rdkafka::ClientConfig {
        let mut config = self.client.to_rdkafka();
        config
            .set("client.id", format!("{thread_name}-producer"))
            .remove("group.id")
            .remove("group.instance.id")
            .remove("isolation.level");
        if self.client.get("partitioner").is_none() {
            config.set("partitioner", "murmur2_random");
        }
        if let Some(id) = transactional_id {
            config
                .set("transactional.id", id)
                .set("enable.idempotence", "true");
            if self.client.get("transaction.timeout.ms").is_none() {
                config.set("transaction.timeout.ms", EOS_TRANSACTION_TIMEOUT_MS);
            }
        }
        config
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.application_id.trim().is_empty() {
            return Err(StreamsError::Config(
                "application.id must not be empty".into(),
            ));
        }
        if self.num_stream_threads == 0 {
            return Err(StreamsError::Config(
                "num.stream.threads must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optimization(value: &str) -> Result<TopologyOptimization> {
        StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
            .set("topology.optimization", value)
            .map(|c| c.get_topology_optimization())
    }

    #[test]
    fn topology_optimization_defaults_to_none_and_parses_kafkas_values() {
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
        assert_eq!(
            config.get_topology_optimization(),
            TopologyOptimization::NONE
        );
        assert!(!config
            .get_topology_optimization()
            .reuses_ktable_source_topics());

        for on in [
            "all",
            "reuse.ktable.source.topics",
            " reuse.ktable.source.topics , merge.repartition.topics",
            "single.store.self.join,reuse.ktable.source.topics",
        ] {
            assert!(
                optimization(on).unwrap().reuses_ktable_source_topics(),
                "{on}"
            );
        }
        assert_eq!(
            optimization("merge.repartition.topics").unwrap(),
            TopologyOptimization::MERGE_REPARTITION_TOPICS
        );
        assert!(
            optimization("merge.repartition.topics,single.store.self.join")
                .unwrap()
                .single_store_self_join()
        );
        assert_eq!(optimization("none").unwrap(), TopologyOptimization::NONE);
        // The property stays out of the client configuration.
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
            .set("topology.optimization", "all")
            .unwrap();
        assert_eq!(config.client_config().get("topology.optimization"), None);
    }

    #[test]
    fn topology_optimization_rejects_what_kafka_rejects() {
        for bad in [
            "all,none",
            "none,reuse.ktable.source.topics",
            "all,all",
            "reuse",
            "",
        ] {
            let err = optimization(bad).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StreamsError::Config(_)), "{bad}: {text}");
            assert!(text.contains("topology.optimization"), "{text}");
            assert!(text.contains("reuse.ktable.source.topics"), "{text}");
        }
    }

    #[test]
    fn task_timeout_ms_defaults_to_five_minutes_and_parses() {
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
        assert_eq!(config.get_task_timeout(), Duration::from_millis(300_000));
        let config = config.set("task.timeout.ms", "0").unwrap();
        assert_eq!(config.get_task_timeout(), Duration::ZERO);
        let config = config.set("task.timeout.ms", " 45000 ").unwrap();
        assert_eq!(config.get_task_timeout(), Duration::from_secs(45));
        // A streams setting, not passed on to librdkafka.
        assert_eq!(config.client_config().get("task.timeout.ms"), None);
        let config = config.task_timeout(Duration::from_secs(7));
        assert_eq!(config.get_task_timeout(), Duration::from_secs(7));
        for bad in ["-1", "later", ""] {
            let err = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
                .set("task.timeout.ms", bad)
                .unwrap_err();
            assert!(matches!(err, StreamsError::Config(_)), "{bad}: {err}");
            assert!(err.to_string().contains("task.timeout.ms"), "{err}");
        }
    }

    #[test]
    fn max_task_idle_ms_defaults_to_zero_and_parses_kafkas_values() {
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
        assert_eq!(config.max_task_idle_ms, 0);
        assert_eq!(config.get_max_task_idle(), Some(Duration::ZERO));
        let config = config.set("max.task.idle.ms", "2500").unwrap();
        assert_eq!(
            config.get_max_task_idle(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(config.client_config().get("max.task.idle.ms"), None);
        let config = config.set("max.task.idle.ms", "-1").unwrap();
        assert_eq!(config.max_task_idle_ms, -1);
        assert_eq!(config.get_max_task_idle(), None);
        let config = config.max_task_idle(Some(Duration::from_secs(3)));
        assert_eq!(config.max_task_idle_ms, 3000);
        for bad in ["-2", "soon", ""] {
            let err = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
                .set("max.task.idle.ms", bad)
                .unwrap_err();
            assert!(matches!(err, StreamsError::Config(_)), "{bad}: {err}");
            assert!(err.to_string().contains("max.task.idle.ms"), "{err}");
        }
    }

    #[test]
    fn exactly_once_reads_committed_commits_every_100_ms_and_makes_producers_transactional() {
        let alos = StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
        assert_eq!(
            alos.get_processing_guarantee(),
            ProcessingGuarantee::AtLeastOnce
        );
        assert_eq!(alos.get_commit_interval(), Duration::from_secs(30));
        assert_eq!(
            alos.main_consumer_config("t", 1).get("isolation.level"),
            None
        );
        assert_eq!(
            alos.producer_config("t", None).get("transactional.id"),
            None
        );

        let eos = alos.set("processing.guarantee", "exactly_once_v2").unwrap();
        assert!(eos.get_processing_guarantee().is_exactly_once());
        assert_eq!(eos.get_commit_interval(), Duration::from_millis(100));
        for consumer in [
            eos.main_consumer_config("t", 1),
            eos.restore_consumer_config("t"),
            eos.global_consumer_config(),
        ] {
            assert_eq!(consumer.get("isolation.level"), Some("read_committed"));
        }
        let producer = eos.producer_config("t", Some("app-p-1"));
        assert_eq!(producer.get("transactional.id"), Some("app-p-1"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("transaction.timeout.ms"), Some("10000"));
        assert_eq!(producer.get("isolation.level"), None);
        // A configured interval wins; the property stays out of the client config.
        let eos = eos.set("commit.interval.ms", "250").unwrap();
        assert_eq!(eos.get_commit_interval(), Duration::from_millis(250));
        assert_eq!(eos.client_config().get("processing.guarantee"), None);

        for bad in ["exactly_once", "exactly_once_beta", "EOS", ""] {
            let err = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
                .set("processing.guarantee", bad)
                .unwrap_err();
            assert!(err.to_string().contains("exactly_once_v2"), "{bad}: {err}");
        }
    }

    #[test]
    fn stream_threads_prefetch_a_bounded_number_of_records_per_partition() {
        let default = StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
        assert_eq!(
            default
                .main_consumer_config("t", 1)
                .get("queued.min.messages"),
            Some("20000")
        );
        // Bulk readers keep librdkafka's default.
        assert_eq!(
            default
                .restore_consumer_config("t")
                .get("queued.min.messages"),
            None
        );
        let mine = default.set("queued.min.messages", "500").unwrap();
        assert_eq!(
            mine.main_consumer_config("t", 1).get("queued.min.messages"),
            Some("500")
        );
    }

    #[test]
    fn static_membership_gives_each_stream_thread_its_own_instance_id() {
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
            .set("group.instance.id", "pod-7")
            .unwrap();
        assert_eq!(
            config
                .main_consumer_config("t1", 1)
                .get("group.instance.id"),
            Some("pod-7-1")
        );
        assert_eq!(
            config
                .main_consumer_config("t2", 2)
                .get("group.instance.id"),
            Some("pod-7-2")
        );
        assert_eq!(
            config
                .restore_consumer_config("t1")
                .get("group.instance.id"),
            None
        );
        assert_eq!(
            config.global_consumer_config().get("group.instance.id"),
            None
        );
        assert_eq!(
            config.producer_config("t1", None).get("group.instance.id"),
            None
        );
    }

    #[test]
    fn typed_builder_sets_the_optimization() {
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
            .topology_optimization(TopologyOptimization::ALL);
        assert!(config
            .get_topology_optimization()
            .reuses_ktable_source_topics());
        let config = config.topology_optimization(TopologyOptimization::NONE);
        assert!(!config
            .get_topology_optimization()
            .reuses_ktable_source_topics());
        assert_ne!(
            TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS,
            TopologyOptimization::ALL
        );
    }
}
