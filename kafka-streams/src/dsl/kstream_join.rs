//! Stream-stream joins on [`KStream`] (Kafka's `KStream.join` / `leftJoin` /
//! `outerJoin` with `JoinWindows`, built as `KStreamImplJoin` builds them).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::DefaultSerde;

use super::internals::stream_join_ops::{
    JoinWindow, Joiner, Left, LeftOrRightListSerde, Right, StreamJoinProcessor, StreamJoinSpec,
    TimestampedKeyAndJoinSideSerde,
};
use super::internals::stream_ops::PassThrough;
use super::internals::{lock, BuilderInner};
use super::options::{default_serde, SharedSerde};
use super::{JoinWindows, KStream, StreamJoined};
use crate::processor::internal::{factory, ProcessorFactory};
use crate::processor::Data;
use crate::state::{KeyValueStoreBuilder, WindowStoreBuilder};

/// The three stream-stream joins: which sides emit records that found no partner.
#[derive(Clone, Copy)]
struct JoinKind {
    left_outer: bool,
    right_outer: bool,
}

const INNER: JoinKind = JoinKind {
    left_outer: false,
    right_outer: false,
};
const LEFT: JoinKind = JoinKind {
    left_outer: true,
    right_outer: false,
};
const OUTER: JoinKind = JoinKind {
    left_outer: true,
    right_outer: true,
};

/// A [`StreamJoined`] whose serdes are all settled.
struct ResolvedSerdes<K, V1, V2> {
    key: SharedSerde<K>,
    value: SharedSerde<V1>,
    other_value: SharedSerde<V2>,
}

/// Stream-stream joins (Kafka's windowed `KStream` joins).
///
/// Both streams are buffered in window stores that keep every record (duplicates
/// included) for the window size plus the grace period; each record joins the other
/// stream's buffered records with the same key whose timestamps lie within the
/// [`JoinWindows`], and a result carries the larger of the two timestamps. The stores
/// are changelogged to `<application.id>-<store>-changelog`.
///
/// Left and outer joins emit a record that found no partner once, joined with
/// nothing, after its window and grace period have passed by stream time (Kafka's
/// behaviour since 3.1, no spurious results); until then it waits in a changelogged
/// outer-join store. A record arriving that late already is emitted at once.
///
/// Both inputs must be co-partitioned: if the key changed upstream of either, it is
/// repartitioned first (through `<node>-repartition`, or `<name>-left-repartition` /
/// `<name>-right-repartition` with [`StreamJoined::with_name`]), and that topic gets
/// as many partitions as the other input's topics.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::dsl::{JoinWindows, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// let temperatures = builder.stream::<String, f64>("temperature");
/// let pressures = builder.stream::<String, f64>("pressure");
/// let windows = JoinWindows::of_time_difference_and_grace(
///     Duration::from_secs(5),
///     Duration::from_secs(1),
/// )
/// .unwrap();
/// temperatures
///     .join(&pressures, |t: &f64, p: &f64| format!("{t}/{p}"), windows)
///     .to("correlated");
/// let topology = builder.build().unwrap();
/// assert!(topology
///     .describe()
///     .to_string()
///     .contains("Processor: KSTREAM-JOINTHIS-0000000004 (stores: [KSTREAM-JOINOTHER-0000000005-store])"));
/// ```
impl<K: Data, V: Data> KStream<K, V> {
    /// Inner join with `other` within `windows` (Kafka's `join`): a result for each
    /// pair of records with equal keys and close enough timestamps. Serdes: the
    /// streams', else the types' defaults.
    pub fn join<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&V, &V2) -> VO + Send + Sync + 'static,
    {
        self.join_with(other, joiner, windows, StreamJoined::default())
    }

    /// [`KStream::join`] named and stored as `stream_joined` says.
    pub fn join_with<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&V, &V2) -> VO + Send + Sync + 'static,
    {
        self.join_with_key(
            other,
            move |_: &K, v: &V, v2: &V2| joiner(v, v2),
            windows,
            stream_joined,
        )
    }

    /// [`KStream::join_with`] with a joiner that also gets the key (Kafka's
    /// `ValueJoinerWithKey`).
    pub fn join_with_key<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&K, &V, &V2) -> VO + Send + Sync + 'static,
    {
        let joiner: Joiner<K, V, V2, VO> = Arc::new(move |k, v, v2| match (v, v2) {
            (Some(v), Some(v2)) => Some(joiner(k, v, v2)),
            _ => None,
        });
        self.stream_join(other, joiner, windows, stream_joined, INNER)
    }

    /// Left join with `other` within `windows` (Kafka's `leftJoin`): as
    /// [`KStream::join`], and each record of this stream that finds no partner is
    /// joined with `None` once its window and grace period have passed.
    pub fn left_join<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&V, Option<&V2>) -> VO + Send + Sync + 'static,
    {
        self.left_join_with(other, joiner, windows, StreamJoined::default())
    }

    /// [`KStream::left_join`] named and stored as `stream_joined` says.
    pub fn left_join_with<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&V, Option<&V2>) -> VO + Send + Sync + 'static,
    {
        self.left_join_with_key(
            other,
            move |_: &K, v: &V, v2: Option<&V2>| joiner(v, v2),
            windows,
            stream_joined,
        )
    }

    /// [`KStream::left_join_with`] with a joiner that also gets the key.
    pub fn left_join_with_key<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&K, &V, Option<&V2>) -> VO + Send + Sync + 'static,
    {
        let joiner: Joiner<K, V, V2, VO> = Arc::new(move |k, v, v2| v.map(|v| joiner(k, v, v2)));
        self.stream_join(other, joiner, windows, stream_joined, LEFT)
    }

    /// Outer join with `other` within `windows` (Kafka's `outerJoin`): as
    /// [`KStream::join`], and each record of either stream that finds no partner is
    /// joined with `None` on the other side once its window and grace period have
    /// passed.
    pub fn outer_join<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(Option<&V>, Option<&V2>) -> VO + Send + Sync + 'static,
    {
        self.outer_join_with(other, joiner, windows, StreamJoined::default())
    }

    /// [`KStream::outer_join`] named and stored as `stream_joined` says.
    pub fn outer_join_with<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(Option<&V>, Option<&V2>) -> VO + Send + Sync + 'static,
    {
        self.outer_join_with_key(
            other,
            move |_: &K, v: Option<&V>, v2: Option<&V2>| joiner(v, v2),
            windows,
            stream_joined,
        )
    }

    /// [`KStream::outer_join_with`] with a joiner that also gets the key.
    pub fn outer_join_with_key<V2, VO, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
        F: Fn(&K, Option<&V>, Option<&V2>) -> VO + Send + Sync + 'static,
    {
        let joiner: Joiner<K, V, V2, VO> = Arc::new(move |k, v, v2| Some(joiner(k, v, v2)));
        self.stream_join(other, joiner, windows, stream_joined, OUTER)
    }

    /// Serdes: `stream_joined`'s, else the streams', else the types' defaults.
    fn resolve_join_serdes<V2>(
        &self,
        other: &KStream<K, V2>,
        stream_joined: &StreamJoined<K, V, V2>,
    ) -> ResolvedSerdes<K, V, V2>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
    {
        ResolvedSerdes {
            key: stream_joined
                .key
                .clone()
                .or_else(|| self.key_serde.clone())
                .or_else(|| other.key_serde.clone())
                .unwrap_or_else(default_serde::<K>),
            value: stream_joined
                .value
                .clone()
                .or_else(|| self.value_serde.clone())
                .unwrap_or_else(default_serde::<V>),
            other_value: stream_joined
                .other_value
                .clone()
                .or_else(|| other.value_serde.clone())
                .unwrap_or_else(default_serde::<V2>),
        }
    }

    /// Kafka's `KStreamImpl.doJoin` and `KStreamImplJoin.join`.
    fn stream_join<V2, VO>(
        &self,
        other: &KStream<K, V2>,
        joiner: Joiner<K, V, V2, VO>,
        windows: JoinWindows,
        stream_joined: StreamJoined<K, V, V2>,
        kind: JoinKind,
    ) -> KStream<K, VO>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        V2: Data + DefaultSerde,
        VO: Data,
    {
        let serdes = self.resolve_join_serdes(other, &stream_joined);
        let name = stream_joined.name.clone();
        if !Arc::ptr_eq(&self.builder, &other.builder) {
            lock(&self.builder)
                .graph
                .error("join of streams from two different StreamsBuilders".into());
        }
        let this = self.repartition_for_join(
            name.as_ref().map(|n| format!("{n}-left")),
            serdes.key.clone(),
            serdes.value.clone(),
        );
        let other = match Arc::ptr_eq(&self.builder, &other.builder)
            && other.node == self.node
            && self.repartition_required()
        {
            // A self-join after a key change: as Kafka, both sides read the one
            // repartition topic (a stream's repartition node is made once), though the
            // second repartition still uses up its three names.
            true => {
                burn_repartition_names(&mut lock(&self.builder));
                KStream::new(
                    self.builder.clone(),
                    this.node,
                    Some(serdes.key.clone()),
                    Some(serdes.other_value.clone()),
                    false,
                )
            }
            false => other.repartition_for_join(
                name.as_ref().map(|n| format!("{n}-right")),
                serdes.key.clone(),
                serdes.other_value.clone(),
            ),
        };

        let mut inner = lock(&self.builder);
        let names = JoinNames::new(&mut inner, &stream_joined, kind);
        let retention = Duration::from_millis(u64::try_from(windows.retention_ms()).unwrap_or(0));
        let size = Duration::from_millis(u64::try_from(windows.size_ms()).unwrap_or(0));
        let this_store = join_window_store(
            &names.this_store,
            retention,
            size,
            serdes.key.clone(),
            serdes.value.clone(),
            &stream_joined,
        );
        let other_store = join_window_store(
            &names.other_store,
            retention,
            size,
            serdes.key.clone(),
            serdes.other_value.clone(),
            &stream_joined,
        );
        match (this_store, other_store) {
            (Ok(this_store), Ok(other_store)) => {
                inner.graph.add_store(Arc::new(this_store));
                inner.graph.add_store(Arc::new(other_store));
            }
            (Err(e), _) | (_, Err(e)) => inner.graph.error(e.to_string()),
        }
        if let Some(outer_store) = &names.outer_store {
            let mut store = KeyValueStoreBuilder::with_serdes(
                outer_store.clone(),
                Arc::new(TimestampedKeyAndJoinSideSerde(serdes.key.clone())),
                Arc::new(LeftOrRightListSerde {
                    left: serdes.value.clone(),
                    right: serdes.other_value.clone(),
                }),
            )
            .with_kind(stream_joined.kind)
            .with_caching_disabled();
            store = match stream_joined.logging {
                true => store.with_logging_enabled(stream_joined.log_config.clone()),
                false => store.with_logging_disabled(),
            };
            inner.graph.add_store(Arc::new(store));
        }

        let spec = Arc::new(StreamJoinSpec {
            left_store: names.this_store.clone(),
            right_store: names.other_store.clone(),
            outer_store: names.outer_store.clone(),
            left_outer: kind.left_outer,
            right_outer: kind.right_outer,
            before_ms: windows.before_ms(),
            after_ms: windows.after_ms(),
            grace_ms: windows.grace_ms(),
            trackers: Default::default(),
        });
        let window_this = {
            let store = names.this_store.clone();
            factory(move || JoinWindow::<K, V> {
                store: store.clone(),
                _types: PhantomData,
            })
        };
        let window_other = {
            let store = names.other_store.clone();
            factory(move || JoinWindow::<K, V2> {
                store: store.clone(),
                _types: PhantomData,
            })
        };
        let join_this: ProcessorFactory = {
            let (spec, joiner) = (spec.clone(), joiner.clone());
            factory(move || {
                StreamJoinProcessor::<K, V, V2, VO, Left>::new(spec.clone(), joiner.clone())
            })
        };
        let join_other: ProcessorFactory = factory(move || {
            StreamJoinProcessor::<K, V, V2, VO, Right>::new(spec.clone(), joiner.clone())
        });
        let graph = &mut inner.graph;
        let this_windowed = graph.add_processor(names.this_windowed, window_this, &[this.node]);
        let other_windowed = graph.add_processor(names.other_windowed, window_other, &[other.node]);
        let join_this = graph.add_processor(names.join_this, join_this, &[this_windowed]);
        let join_other = graph.add_processor(names.join_other, join_other, &[other_windowed]);
        let merge = graph.add_processor(
            names.merge,
            factory(|| PassThrough::<K, VO>(PhantomData)),
            &[join_this, join_other],
        );
        graph.connect_store(this_windowed, &names.this_store);
        graph.connect_store(other_windowed, &names.other_store);
        graph.connect_store(join_this, &names.other_store);
        graph.connect_store(join_other, &names.this_store);
        if let Some(outer_store) = &names.outer_store {
            graph.connect_store(join_this, outer_store);
            graph.connect_store(join_other, outer_store);
        }
        drop(inner);
        // No value serde for the joined values; the key serde carries over (Kafka's
        // `StreamJoined` key serde).
        KStream::new(self.builder.clone(), merge, Some(serdes.key), None, false)
    }

    /// Repartitions this input of a join if its key changed upstream (Kafka's
    /// `repartitionForJoin`), through `<name>-repartition`, `name` defaulting to this
    /// stream's node name. Like Kafka, it uses up three generated names (the
    /// repartition's sink, filter and source), so later names match Kafka's.
    fn repartition_for_join(
        &self,
        name: Option<String>,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
    ) -> KStream<K, V> {
        if !self.repartition_required() {
            return self.clone();
        }
        let name = {
            let mut inner = lock(&self.builder);
            burn_repartition_names(&mut inner);
            name.unwrap_or_else(|| inner.graph.node_name(self.node).to_owned())
        };
        self.repartition_if_required(Some(name), key, value)
    }
}

/// Uses up the three generated names of Kafka's repartition (its sink, null-key filter
/// and source), which this library's repartition does not use, so that later
/// generated names carry Kafka's numbers.
fn burn_repartition_names(inner: &mut BuilderInner) {
    for prefix in ["KSTREAM-SINK-", "KSTREAM-FILTER-", "KSTREAM-SOURCE-"] {
        inner.new_name(prefix);
    }
}

/// The window store of one side of a join: keeps duplicates, for the window size plus
/// grace, logged (if at all) with `cleanup.policy=delete` (Kafka's
/// `StreamJoinedStoreFactory`).
fn join_window_store<K: 'static, V: 'static, V1, V2>(
    name: &str,
    retention: Duration,
    size: Duration,
    key: SharedSerde<K>,
    value: SharedSerde<V>,
    stream_joined: &StreamJoined<K, V1, V2>,
) -> crate::state::StateResult<WindowStoreBuilder<K, V>> {
    let store = WindowStoreBuilder::with_serdes(name, retention, size, key, value)?
        .with_retain_duplicates()
        .with_kind(stream_joined.kind);
    Ok(match stream_joined.logging {
        true => store
            .with_logging_enabled(stream_joined.log_config.clone())
            .with_logging_enabled([("cleanup.policy", "delete")]),
        false => store.with_logging_disabled(),
    })
}

/// The names of a join's processors and stores, as Kafka's `KStreamImplJoin` gives
/// them (in the same order, so generated names carry the same numbers).
struct JoinNames {
    this_windowed: String,
    other_windowed: String,
    join_this: String,
    join_other: String,
    merge: String,
    this_store: String,
    other_store: String,
    outer_store: Option<String>,
}

impl JoinNames {
    fn new<K, V1, V2>(
        inner: &mut BuilderInner,
        stream_joined: &StreamJoined<K, V1, V2>,
        kind: JoinKind,
    ) -> Self {
        let name = stream_joined.name.as_deref();
        let this_suffix = match kind.right_outer {
            true => "-outer-this-join",
            false => "-this-join",
        };
        let other_suffix = match kind.left_outer {
            true => "-outer-other-join",
            false => "-other-join",
        };
        // Kafka generates every name, given one or not, so that later generated names
        // keep their numbers.
        let named_or = |inner: &mut BuilderInner, suffix: &str, prefix: &str| {
            let generated = inner.new_name(prefix);
            name.map_or(generated, |n| format!("{n}{suffix}"))
        };
        let this_windowed = named_or(inner, "-this-windowed", "KSTREAM-WINDOWED-");
        let other_windowed = named_or(inner, "-other-windowed", "KSTREAM-WINDOWED-");
        let this_prefix = match kind.right_outer {
            true => "KSTREAM-OUTERTHIS-",
            false => "KSTREAM-JOINTHIS-",
        };
        let other_prefix = match kind.left_outer {
            true => "KSTREAM-OUTEROTHER-",
            false => "KSTREAM-JOINOTHER-",
        };
        // Always generated: the stores are named after them.
        let this_generated = inner.new_name(this_prefix);
        let other_generated = inner.new_name(other_prefix);
        let merge = named_or(inner, "-merge", "KSTREAM-MERGE-");
        let store_name = stream_joined.store_name.as_deref();
        let (this_store, other_store) = match store_name {
            Some(s) => (
                format!("{s}{this_suffix}-store"),
                format!("{s}{other_suffix}-store"),
            ),
            None => (
                format!("{this_generated}-store"),
                format!("{other_generated}-store"),
            ),
        };
        let outer_store = kind.left_outer.then(|| {
            let suffix = match kind.right_outer {
                true => "-outer-shared-join",
                false => "-left-shared-join",
            };
            match store_name {
                Some(s) => format!("{s}{suffix}-store"),
                None => format!(
                    "KSTREAM-OUTERSHARED-{}-store",
                    &this_generated[this_prefix.len()..]
                ),
            }
        });
        JoinNames {
            this_windowed,
            other_windowed,
            join_this: name.map_or_else(|| this_generated.clone(), |n| format!("{n}{this_suffix}")),
            join_other: name
                .map_or_else(|| other_generated.clone(), |n| format!("{n}{other_suffix}")),
            merge,
            this_store,
            other_store,
            outer_store,
        }
    }
}
