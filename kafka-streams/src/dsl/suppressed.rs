//! [`KTable::suppress`] and its options: [`Suppressed`] and [`BufferConfig`] (Kafka's
//! `Suppressed`, `Suppressed.BufferConfig`, `StrictBufferConfig` and
//! `EagerBufferConfig`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::internals::lock;
use super::internals::suppress_ops::{BufferTime, SuppressSettings, TableSuppress};
use super::KTable;
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::state::TimeOrderedKeyValueBufferBuilder;
use crate::windowed::Windowed;

mod sealed {
    pub trait Sealed {}
}

/// What a suppression buffer does when it is full: the type parameter of
/// [`BufferConfig`] (Kafka's `BufferFullStrategy`, which Kafka also carries in the
/// type: `EagerBufferConfig` or `StrictBufferConfig`). Implemented by [`EmitEarly`]
/// and [`ShutDown`] only.
pub trait BufferFullStrategy: sealed::Sealed + Send + Sync + 'static {
    /// Whether a full buffer fails the task.
    const SHUTS_DOWN: bool;
}

/// A full buffer emits its oldest updates early (Kafka's `EMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmitEarly;

/// A full buffer fails the task with a [`SuppressionBufferFullError`] (Kafka's
/// `SHUT_DOWN`): the suppression never emits anything but what it promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutDown;

impl sealed::Sealed for EmitEarly {}
impl sealed::Sealed for ShutDown {}

impl BufferFullStrategy for EmitEarly {
    const SHUTS_DOWN: bool = false;
}

impl BufferFullStrategy for ShutDown {
    const SHUTS_DOWN: bool = true;
}

/// The bounds of a suppression buffer, what to do when it is full, and its changelog
/// (Kafka's `Suppressed.BufferConfig`).
///
/// - [`BufferConfig::max_records`] and [`BufferConfig::max_bytes`] give an
///   [`EagerBufferConfig`]: bounded, emitting the oldest updates early when full.
/// - [`BufferConfig::unbounded`] gives a [`StrictBufferConfig`]: never full (memory
///   permitting); [`BufferConfig::shut_down_when_full`] makes a bounded one strict:
///   the task fails when it is full.
///
/// A buffer's size in bytes is Kafka's estimate: for each buffered key, its bytes, the
/// serialized values it holds, 8 for its buffer time and its record context
/// (timestamp, offset, topic, partition, headers).
///
/// The buffer is logged (the default) to `<application.id>-<store>-changelog`, a
/// compacted topic, and restored from it on start;
/// [`BufferConfig::with_logging_disabled`] keeps it in memory only, so a restart
/// loses what it held.
///
/// ```
/// use kafka_streams::dsl::{BufferConfig, EagerBufferConfig, StrictBufferConfig};
///
/// let eager: EagerBufferConfig = BufferConfig::max_records(1000).with_max_bytes(1 << 20);
/// let strict: StrictBufferConfig = BufferConfig::max_bytes(1 << 20).shut_down_when_full();
/// let unbounded: StrictBufferConfig = BufferConfig::unbounded();
/// assert_eq!(eager.max_records_limit(), 1000);
/// assert_eq!(unbounded.max_records_limit(), u64::MAX);
/// # let _ = strict;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig<F = EmitEarly> {
    max_records: u64,
    max_bytes: u64,
    logging: bool,
    changelog_configs: BTreeMap<String, String>,
    _strategy: PhantomData<F>,
}

/// A buffer that emits early when full (Kafka's `EagerBufferConfig`).
pub type EagerBufferConfig = BufferConfig<EmitEarly>;

/// A buffer that never emits early: unbounded, or failing the task when full (Kafka's
/// `StrictBufferConfig`), as [`Suppressed::until_window_closes`] requires.
pub type StrictBufferConfig = BufferConfig<ShutDown>;

impl<F> BufferConfig<F> {
    fn with_bounds(max_records: u64, max_bytes: u64) -> Self {
        BufferConfig {
            max_records,
            max_bytes,
            logging: true,
            changelog_configs: BTreeMap::new(),
            _strategy: PhantomData,
        }
    }

    fn with_strategy<G>(self) -> BufferConfig<G> {
        BufferConfig {
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            logging: self.logging,
            changelog_configs: self.changelog_configs,
            _strategy: PhantomData,
        }
    }

    /// The same buffer holding at most `records` keys (Kafka's `withMaxRecords`).
    pub fn with_max_records(mut self, records: u64) -> Self {
        self.max_records = records;
        self
    }

    /// The same buffer holding at most `bytes` bytes (Kafka's `withMaxBytes`).
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The same buffer without bounds (Kafka's `withNoBound`).
    pub fn with_no_bound(self) -> StrictBufferConfig {
        self.with_strategy()
            .with_max_records(u64::MAX)
            .with_max_bytes(u64::MAX)
    }

    /// When full, fail the task with a [`SuppressionBufferFullError`] (Kafka's
    /// `shutDownWhenFull`).
    pub fn shut_down_when_full(self) -> StrictBufferConfig {
        self.with_strategy()
    }

    /// When full, emit the oldest updates early (Kafka's `emitEarlyWhenFull`).
    pub fn emit_early_when_full(self) -> EagerBufferConfig {
        self.with_strategy()
    }

    /// Keeps the buffer in memory only, without a changelog (Kafka's
    /// `withLoggingDisabled`): a restart loses the updates it held.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self.changelog_configs.clear();
        self
    }

    /// Logs the buffer (the default), its changelog topic created with `configs` on
    /// top of `cleanup.policy=compact` (Kafka's `withLoggingEnabled(config)`).
    pub fn with_logging_enabled<N: Into<String>, V: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        self.logging = true;
        self.changelog_configs
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The most keys the buffer holds (`u64::MAX`: no bound).
    pub fn max_records_limit(&self) -> u64 {
        self.max_records
    }

    /// The most bytes the buffer holds (`u64::MAX`: no bound).
    pub fn max_bytes_limit(&self) -> u64 {
        self.max_bytes
    }
}

impl BufferConfig<EmitEarly> {
    /// A buffer of at most `records` keys that emits early when full (Kafka's
    /// `BufferConfig.maxRecords`).
    pub fn max_records(records: u64) -> EagerBufferConfig {
        Self::with_bounds(records, u64::MAX)
    }

    /// A buffer of at most `bytes` bytes that emits early when full (Kafka's
    /// `BufferConfig.maxBytes`).
    pub fn max_bytes(bytes: u64) -> EagerBufferConfig {
        Self::with_bounds(u64::MAX, bytes)
    }
}

impl BufferConfig<ShutDown> {
    /// A buffer without bounds (Kafka's `BufferConfig.unbounded`).
    pub fn unbounded() -> StrictBufferConfig {
        Self::with_bounds(u64::MAX, u64::MAX)
    }
}

/// How a [`KTable::suppress`] holds back updates (Kafka's `Suppressed`).
///
/// - [`Suppressed::until_window_closes`]: only the final result of each window of a
///   windowed table, once stream time passes the window's end plus the grace period
///   (taken from the windowed aggregation upstream).
/// - [`Suppressed::until_time_limit`]: a key's latest value once stream time has
///   passed the time limit since its first update buffered.
pub struct Suppressed<K> {
    name: Option<String>,
    kind: SuppressKind<K>,
    max_records: u64,
    max_bytes: u64,
    shut_down_when_full: bool,
    logging: bool,
    changelog_configs: BTreeMap<String, String>,
}

enum SuppressKind<K> {
    UntilWindowCloses(Arc<dyn Fn(&K) -> i64 + Send + Sync>),
    UntilTimeLimit(Duration),
}

impl<K> Suppressed<K> {
    fn with_buffer<F: BufferFullStrategy>(kind: SuppressKind<K>, buffer: BufferConfig<F>) -> Self {
        Suppressed {
            name: None,
            kind,
            max_records: buffer.max_records,
            max_bytes: buffer.max_bytes,
            shut_down_when_full: F::SHUTS_DOWN,
            logging: buffer.logging,
            changelog_configs: buffer.changelog_configs,
        }
    }

    /// Emits a key's latest value once stream time is `time_to_wait_for_more_events`
    /// past its first update buffered (Kafka's `Suppressed.untilTimeLimit`); each
    /// update (deletes too) goes out at most once, with the timestamp and headers of
    /// the key's latest update. The buffer's stream time is the largest timestamp the
    /// suppression has seen.
    pub fn until_time_limit<F: BufferFullStrategy>(
        time_to_wait_for_more_events: Duration,
        buffer: BufferConfig<F>,
    ) -> Self {
        let limit = SuppressKind::UntilTimeLimit(time_to_wait_for_more_events);
        Self::with_buffer(limit, buffer)
    }

    /// Names the suppression's node `name` and its buffer store `<name>-store` (Kafka's
    /// `withName`); unnamed, they are `KTABLE-SUPPRESS-<n>` and
    /// `KTABLE-SUPPRESS-STATE-STORE-<n+1>`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K: 'static> Suppressed<Windowed<K>> {
    /// Emits only the final result of each window of a windowed table (Kafka's
    /// `Suppressed.untilWindowCloses`): once stream time (the largest timestamp the
    /// suppression has seen) reaches the window's end plus the window close delay of
    /// the windowed aggregation upstream (its grace period; for session windows, the
    /// inactivity gap plus the grace period). Deleted windows emit nothing. The buffer
    /// is strict, since an early emit would not be final.
    pub fn until_window_closes(buffer: StrictBufferConfig) -> Self {
        let window_end =
            SuppressKind::UntilWindowCloses(Arc::new(|key: &Windowed<K>| key.window().end()));
        Self::with_buffer(window_end, buffer)
    }
}

/// A suppression buffer with a [`ShutDown`] strategy is over its bounds (Kafka's
/// `StreamsException` "buffer exceeded its max capacity"): the task fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{node} buffer exceeded its max capacity. Currently [{records}/{max_records}] records and [{bytes}/{max_bytes}] bytes (suppression buffer store {store}, task {task})"
)]
pub struct SuppressionBufferFullError {
    /// The suppression node.
    pub node: String,
    /// Its buffer store.
    pub store: String,
    /// The task, `<sub-topology>_<partition>`.
    pub task: String,
    /// Keys buffered.
    pub records: u64,
    /// The record bound (`u64::MAX`: none).
    pub max_records: u64,
    /// Bytes buffered.
    pub bytes: i64,
    /// The byte bound (`u64::MAX`: none).
    pub max_bytes: u64,
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Holds back this table's updates as `suppressed` says (Kafka's `KTable.suppress`),
    /// in a buffer store changelogged to `<application.id>-<store>-changelog` and
    /// restored on start, so a restart neither loses nor repeats what it emits.
    ///
    /// Its node is `KTABLE-SUPPRESS-<n>` and its store `KTABLE-SUPPRESS-STATE-STORE-<n+1>`
    /// (or `<name>` and `<name>-store` with [`Suppressed::with_name`]). The buffer
    /// keeps each key's bytes, written with this table's serdes. Building the topology
    /// fails when the table has none (after `map_values`), and, for
    /// [`Suppressed::until_window_closes`], when no windowed aggregation is upstream.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_streams::dsl::{BufferConfig, StreamsBuilder, Suppressed, TimeWindows};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, f64>("plant01")
    ///     .group_by_key()
    ///     .windowed_by(
    ///         TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10))
    ///             .unwrap(),
    ///     )
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
    ///     .to_stream();
    /// let description = builder.build().unwrap().describe().to_string();
    /// assert!(description.contains(
    ///     "Processor: KTABLE-SUPPRESS-0000000004 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000005])"
    /// ));
    /// ```
    pub fn suppress(&self, suppressed: Suppressed<K>) -> KTable<K, V> {
        let mut inner = lock(&self.builder);
        let name = match &suppressed.name {
            Some(name) => name.clone(),
            None => inner.new_name("KTABLE-SUPPRESS-"),
        };
        let (suppress_duration_ms, buffer_time, safe_to_drop_tombstones) = match suppressed.kind {
            SuppressKind::UntilWindowCloses(window_end) => {
                let delay = match inner.graph.window_close_delay(self.node) {
                    Ok(delay) => delay,
                    Err(e) => {
                        inner.graph.error(format!("suppress node {name}: {e}"));
                        0
                    }
                };
                (delay, BufferTime::WindowEnd(window_end), true)
            }
            SuppressKind::UntilTimeLimit(limit) => (
                i64::try_from(limit.as_millis()).unwrap_or(i64::MAX),
                BufferTime::Record,
                false,
            ),
        };
        let store = match &suppressed.name {
            Some(name) => format!("{name}-store"),
            None => inner.new_name("KTABLE-SUPPRESS-STATE-STORE-"),
        };
        let (Some(key), Some(value)) = (self.key_serde.clone(), self.value_serde.clone()) else {
            inner.graph.error(format!(
                "suppression buffer store {store} of node {name} needs the table's key and value serdes, and the table has none (its value type changed upstream, e.g. by map_values: suppress the table before that)"
            ));
            drop(inner);
            return self.clone();
        };
        inner
            .graph
            .add_store(Arc::new(TimeOrderedKeyValueBufferBuilder::new(
                store.clone(),
                key,
                value,
                suppressed.logging,
                suppressed.changelog_configs,
            )));
        let settings = SuppressSettings {
            store: store.clone(),
            max_records: suppressed.max_records,
            max_bytes: suppressed.max_bytes,
            shut_down_when_full: suppressed.shut_down_when_full,
            suppress_duration_ms,
            buffer_time,
            safe_to_drop_tombstones,
        };
        let node = inner.graph.add_processor(
            name,
            factory(move || TableSuppress::<K, V>::new(settings.clone())),
            &[self.node],
        );
        inner.graph.connect_store(node, &store);
        drop(inner);
        KTable {
            builder: self.builder.clone(),
            node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::{SessionWindows, StreamsBuilder};

    #[test]
    fn window_close_delay_is_found_through_table_operators_and_required() {
        let builder = StreamsBuilder::new();
        let counts = builder
            .stream::<String, String>("visits")
            .group_by_key()
            .windowed_by_session(
                SessionWindows::of_inactivity_gap_and_grace(
                    Duration::from_millis(300),
                    Duration::from_millis(60),
                )
                .unwrap(),
            )
            .count()
            .filter(|_, n| *n > 1);
        // Sessions close the inactivity gap plus the grace period after their end.
        let delay = lock(&counts.builder).graph.window_close_delay(counts.node);
        assert_eq!(delay, Ok(360));

        let table = builder.table::<String, String>("plants");
        let until_close = Suppressed::with_buffer(
            SuppressKind::UntilWindowCloses(Arc::new(|_: &String| 0)),
            BufferConfig::unbounded(),
        );
        table.suppress(until_close);
        let Err(err) = builder.build() else {
            panic!("no window upstream: building must fail");
        };
        let err = err.to_string();
        assert!(
            err.contains(
                "Window close time is only defined for windowed computations. Got [KSTREAM-SOURCE-"
            ),
            "{err}"
        );
    }
}
