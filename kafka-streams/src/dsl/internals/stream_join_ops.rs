//! The processors of stream-stream joins (Kafka's `KStreamJoinWindow`,
//! `KStreamKStreamJoinLeftSide` / `RightSide` and their base `KStreamKStreamJoin`),
//! and the outer-join store's key and value formats (Kafka's
//! `TimestampedKeyAndJoinSide` and `LeftOrRightValue`).
//!
//! A join is five processors: each input goes through a window processor, which
//! buffers it in its side's window store (retaining duplicates), then to its side's
//! join processor, which looks the record's partners up in the other side's store;
//! both join processors feed one merge node. A left or outer join also keeps the
//! records that found no partner yet in a key-value store shared by both sides, and
//! emits them, joined with nothing, once their window and grace period have passed.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use kafka_client::serde::{Deserializer, SerdeContext, SerdeError, Serializer};

use crate::common::TaskId;
use crate::dsl::options::SharedSerde;
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{TypedKeyValueStore, TypedWindowStore};

/// A stream-stream joiner over the left and right values: `None` on the side that
/// found no partner. Returns `None` for a combination the join kind never produces
/// (an inner join's joiner is only called with both values).
pub(crate) type Joiner<K, V1, V2, VO> =
    Arc<dyn Fn(&K, Option<&V1>, Option<&V2>) -> Option<VO> + Send + Sync>;

/// Buffers every record in its side's window store and forwards it (Kafka's
/// `KStreamJoinWindow`). A record the store does not write because its window has
/// expired (older than the store's retention, window size plus grace, by the store's
/// stream time) is still forwarded, so it may join partners still buffered, but it is
/// not kept: it is logged and counted in the task's `dropped-records`.
pub(crate) struct JoinWindow<K, V> {
    pub(crate) store: String,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Data, V: Data> Processor<K, V> for JoinWindow<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedWindowStore<K, V>>(&self.store)?;
        let expired_before = store.bytes()?.expired_records();
        store.put(&record.key, record.timestamp, &record.value)?;
        if store.bytes()?.expired_records() > expired_before {
            let origin = ctx.record_metadata().map(|m| m.to_string());
            tracing::warn!(
                store = %self.store,
                record = origin.as_deref().unwrap_or("unknown"),
                timestamp = record.timestamp,
                "skipping record for expired join window"
            );
            ctx.record_dropped();
        }
        // The join processor below reads the other side's store only, so the order of
        // the put and the forward does not change what it finds.
        ctx.forward(record);
        Ok(())
    }
}

/// The key of the outer-join store (Kafka's `TimestampedKeyAndJoinSide`): records
/// without a partner yet, by timestamp, then side, then key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimestampedKeyAndJoinSide<K> {
    pub(crate) timestamp: i64,
    pub(crate) left: bool,
    pub(crate) key: K,
}

/// A value of the outer-join store (Kafka's `LeftOrRightValue`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LeftOrRightValue<V1, V2> {
    Left(V1),
    Right(V2),
}

/// Kafka's `TimestampedKeyAndJoinSideSerializer` layout: the timestamp (8 bytes,
/// big-endian), the side (1 for left, 0 for right), the key's bytes. Timestamps are
/// never negative, so byte order is time order: the store iterates oldest first.
pub(crate) struct TimestampedKeyAndJoinSideSerde<K>(pub(crate) SharedSerde<K>);

impl<K> Serializer<TimestampedKeyAndJoinSide<K>> for TimestampedKeyAndJoinSideSerde<K> {
    fn serialize(
        &self,
        data: &TimestampedKeyAndJoinSide<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(key) = self.0.serialize_borrowed(&data.key, ctx)? else {
            return Err(SerdeError::custom("a join key serialized to null"));
        };
        let mut bytes = Vec::with_capacity(9 + key.len());
        bytes.extend_from_slice(&data.timestamp.to_be_bytes());
        bytes.push(u8::from(data.left));
        bytes.extend_from_slice(&key);
        Ok(Some(bytes))
    }
}

impl<K> Deserializer<TimestampedKeyAndJoinSide<K>> for TimestampedKeyAndJoinSideSerde<K> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<TimestampedKeyAndJoinSide<K>, SerdeError> {
        let bytes = data.ok_or_else(|| SerdeError::custom("null outer-join key"))?;
        let Some((timestamp, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(SerdeError::custom(format!(
                "outer-join key of {} bytes; at least 9 (timestamp and side) expected",
                bytes.len()
            )));
        };
        let Some((side, key)) = rest.split_first() else {
            return Err(SerdeError::custom(
                "outer-join key of 8 bytes; at least 9 (timestamp and side) expected",
            ));
        };
        Ok(TimestampedKeyAndJoinSide {
            timestamp: i64::from_be_bytes(*timestamp),
            left: *side == 1,
            key: self.0.deserialize(Some(key), ctx)?,
        })
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<K>::reads_headers(&*self.0)
    }
}

/// The values of one outer-join key (Kafka's `ListValueStore` over
/// `LeftOrRightValueSerde`): each value as its length (4 bytes, big-endian), then the
/// side (1 for left, 0 for right) and the value's bytes.
pub(crate) struct LeftOrRightListSerde<V1, V2> {
    pub(crate) left: SharedSerde<V1>,
    pub(crate) right: SharedSerde<V2>,
}

impl<V1, V2> Serializer<Vec<LeftOrRightValue<V1, V2>>> for LeftOrRightListSerde<V1, V2> {
    fn serialize(
        &self,
        data: &Vec<LeftOrRightValue<V1, V2>>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut bytes = Vec::new();
        for value in data {
            let (side, raw) = match value {
                LeftOrRightValue::Left(v) => (1u8, self.left.serialize_borrowed(v, ctx)?),
                LeftOrRightValue::Right(v) => (0u8, self.right.serialize_borrowed(v, ctx)?),
            };
            let raw = raw.ok_or_else(|| SerdeError::custom("a joined value serialized to null"))?;
            let len = u32::try_from(raw.len() + 1)
                .map_err(|_| SerdeError::custom("a joined value of more than 4 GiB"))?;
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.push(side);
            bytes.extend_from_slice(&raw);
        }
        Ok(Some(bytes))
    }
}

impl<V1, V2> Deserializer<Vec<LeftOrRightValue<V1, V2>>> for LeftOrRightListSerde<V1, V2> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Vec<LeftOrRightValue<V1, V2>>, SerdeError> {
        let mut rest = data.ok_or_else(|| SerdeError::custom("null outer-join values"))?;
        let mut values = Vec::new();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            if len == 0 || tail.len() < len {
                return Err(SerdeError::custom(format!(
                    "outer-join value of {len} bytes in a list with {} left",
                    tail.len()
                )));
            }
            let (entry, next) = tail.split_at(len);
            values.push(match entry[0] {
                1 => LeftOrRightValue::Left(self.left.deserialize(Some(&entry[1..]), ctx)?),
                _ => LeftOrRightValue::Right(self.right.deserialize(Some(&entry[1..]), ctx)?),
            });
            rest = next;
        }
        if !rest.is_empty() {
            return Err(SerdeError::custom(format!(
                "{} trailing bytes after the outer-join values",
                rest.len()
            )));
        }
        Ok(values)
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<V1>::reads_headers(&*self.left)
            || Deserializer::<V2>::reads_headers(&*self.right)
    }
}

/// One key of the outer-join store and its values.
type OuterJoinEntry<K, V1, V2> = (TimestampedKeyAndJoinSide<K>, Vec<LeftOrRightValue<V1, V2>>);

/// The outer-join store as the join processors see it.
pub(crate) type OuterJoinStore<K, V1, V2> =
    TypedKeyValueStore<TimestampedKeyAndJoinSide<K>, Vec<LeftOrRightValue<V1, V2>>>;

/// Stream time and the emit bookkeeping of one task's join, shared by its two join
/// processors (Kafka's `KStreamImplJoin.TimeTracker`).
#[derive(Debug)]
pub(crate) struct TimeTracker {
    /// The largest timestamp either side has seen (`-1` before any).
    stream_time: i64,
    /// The oldest timestamp in the outer-join store, or larger (`i64::MAX` when
    /// nothing may be there).
    min_time: i64,
    /// The wall-clock time before which the store is not looked at again.
    next_time_to_emit: i64,
}

impl Default for TimeTracker {
    fn default() -> Self {
        TimeTracker {
            stream_time: -1,
            min_time: i64::MAX,
            next_time_to_emit: 0,
        }
    }
}

/// The time trackers of a join, one per task (Kafka's `TimeTrackerSupplier`).
#[derive(Default)]
pub(crate) struct TimeTrackers(Mutex<HashMap<TaskId, Arc<Mutex<TimeTracker>>>>);

impl TimeTrackers {
    fn get(&self, task: TaskId) -> Arc<Mutex<TimeTracker>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(task)
            .or_default()
            .clone()
    }

    fn remove(&self, task: TaskId) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task);
    }
}

/// One side of a join: the types of its input and of the other side, and how its
/// values take their place among the joiner's arguments.
pub(crate) trait JoinSide<V1, V2>: Send + 'static {
    /// This side's values.
    type This: Data;
    /// The other side's values.
    type Other: Data;
    /// Whether this is the left side.
    const LEFT: bool;
    /// Calls the joiner with this side's and the other side's value in place.
    fn join<K, VO>(
        joiner: &Joiner<K, V1, V2, VO>,
        key: &K,
        this: Option<&Self::This>,
        other: Option<&Self::Other>,
    ) -> Option<VO>;
    /// This side's value as an outer-join store value.
    fn wrap(this: Self::This) -> LeftOrRightValue<V1, V2>;
}

/// The left side (Kafka's `KStreamKStreamJoinLeftSide`).
pub(crate) struct Left;
/// The right side (Kafka's `KStreamKStreamJoinRightSide`).
pub(crate) struct Right;

impl<V1: Data, V2: Data> JoinSide<V1, V2> for Left {
    type This = V1;
    type Other = V2;
    const LEFT: bool = true;
    fn join<K, VO>(
        joiner: &Joiner<K, V1, V2, VO>,
        key: &K,
        this: Option<&V1>,
        other: Option<&V2>,
    ) -> Option<VO> {
        joiner(key, this, other)
    }
    fn wrap(this: V1) -> LeftOrRightValue<V1, V2> {
        LeftOrRightValue::Left(this)
    }
}

impl<V1: Data, V2: Data> JoinSide<V1, V2> for Right {
    type This = V2;
    type Other = V1;
    const LEFT: bool = false;
    fn join<K, VO>(
        joiner: &Joiner<K, V1, V2, VO>,
        key: &K,
        this: Option<&V2>,
        other: Option<&V1>,
    ) -> Option<VO> {
        joiner(key, other, this)
    }
    fn wrap(this: V2) -> LeftOrRightValue<V1, V2> {
        LeftOrRightValue::Right(this)
    }
}

/// What both join processors of one join share.
pub(crate) struct StreamJoinSpec {
    /// The window stores of the left and right inputs.
    pub(crate) left_store: String,
    pub(crate) right_store: String,
    /// The outer-join store (left and outer joins).
    pub(crate) outer_store: Option<String>,
    /// Whether left records without a partner are emitted (left and outer joins),
    /// and right ones (outer joins).
    pub(crate) left_outer: bool,
    pub(crate) right_outer: bool,
    pub(crate) before_ms: i64,
    pub(crate) after_ms: i64,
    pub(crate) grace_ms: i64,
    pub(crate) trackers: TimeTrackers,
}

/// One side's join processor (Kafka's `KStreamKStreamJoin.KStreamKStreamJoinProcessor`):
/// joins each record with the other side's buffered records of the same key within
/// the join window, stamped with the larger of the two timestamps. On an outer side,
/// a record that finds no partner waits in the outer-join store until its window
/// closes (stream time past its timestamp plus this side's window end plus grace), and
/// is then emitted once, joined with nothing, stamped with its own timestamp; unless
/// it arrives after that already, then it is emitted at once.
pub(crate) struct StreamJoinProcessor<K, V1, V2, VO, S> {
    pub(crate) spec: Arc<StreamJoinSpec>,
    pub(crate) joiner: Joiner<K, V1, V2, VO>,
    pub(crate) tracker: Option<Arc<Mutex<TimeTracker>>>,
    pub(crate) task: Option<TaskId>,
    pub(crate) _side: PhantomData<fn() -> S>,
}

impl<K, V1, V2, VO, S> StreamJoinProcessor<K, V1, V2, VO, S>
where
    K: Data,
    V1: Data,
    V2: Data,
    VO: Data,
    S: JoinSide<V1, V2>,
{
    pub(crate) fn new(spec: Arc<StreamJoinSpec>, joiner: Joiner<K, V1, V2, VO>) -> Self {
        StreamJoinProcessor {
            spec,
            joiner,
            tracker: None,
            task: None,
            _side: PhantomData,
        }
    }

    /// How far before and after this side's record the other side's partners may be.
    fn join_bounds(&self) -> (i64, i64) {
        match S::LEFT {
            true => (self.spec.before_ms, self.spec.after_ms),
            false => (self.spec.after_ms, self.spec.before_ms),
        }
    }

    fn outer(&self) -> bool {
        match S::LEFT {
            true => self.spec.left_outer,
            false => self.spec.right_outer,
        }
    }

    fn other_store(&self) -> &str {
        match S::LEFT {
            true => &self.spec.right_store,
            false => &self.spec.left_store,
        }
    }

    fn tracker(&self) -> Result<std::sync::MutexGuard<'_, TimeTracker>, ProcessorError> {
        let tracker = self
            .tracker
            .as_ref()
            .ok_or("a stream-stream join processor got a record before init")?;
        Ok(tracker.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Emits the records of the outer-join store whose window has closed (Kafka's
    /// `emitNonJoinedOuterRecords`): oldest first, each stamped with its own timestamp
    /// and carrying the headers of `record`, the record that moved stream time. The
    /// store is only read when something in it may have closed, and at most once per
    /// emit interval of wall-clock time (a full scan is costly).
    fn emit_non_joined(
        &self,
        ctx: &mut ProcessorContext<'_, K, VO>,
        outer_store: &str,
        record: &Record<K, S::This>,
    ) -> Result<(), ProcessorError> {
        let (_, join_after_ms) = self.join_bounds();
        let grace_ms = self.spec.grace_ms;
        let now = ctx.current_system_time_ms();
        let interval = ctx.outer_join_emit_interval_ms();
        let mut tracker = self.tracker()?;
        // Wrapping as Kafka's `long` arithmetic does: with nothing known to wait
        // (`min_time` at its maximum, after a restart or an empty scan) the sum
        // overflows, so the store is looked at, throttled by the interval only.
        if tracker
            .min_time
            .wrapping_add(join_after_ms)
            .wrapping_add(grace_ms)
            >= tracker.stream_time
        {
            return Ok(());
        }
        if now < tracker.next_time_to_emit {
            return Ok(());
        }
        tracker.next_time_to_emit = now.saturating_add(interval);
        tracker.min_time = i64::MAX;

        let store = ctx.required_store::<OuterJoinStore<K, V1, V2>>(outer_store)?;
        let mut emitted: Vec<OuterJoinEntry<K, V1, V2>> = Vec::new();
        let (mut left_open, mut right_open) = (false, false);
        'scan: for entry in store.all()? {
            let (key, values) = entry?;
            let mut closed = Vec::new();
            for value in values {
                tracker.min_time = key.timestamp;
                if left_open && right_open {
                    // Every later entry is in a window still open.
                    if !closed.is_empty() {
                        emitted.push((key, closed));
                    }
                    break 'scan;
                }
                // A left record's window reaches `after` past it, a right record's
                // `before` (Kafka's `getOuterJoinLookBackTimeMs`).
                let look_back = match key.left {
                    true => self.spec.after_ms,
                    false => self.spec.before_ms,
                };
                if tracker
                    .min_time
                    .saturating_add(look_back)
                    .saturating_add(grace_ms)
                    >= tracker.stream_time
                {
                    match key.left {
                        true => left_open = true,
                        false => right_open = true,
                    }
                    continue;
                }
                closed.push(value);
            }
            if !closed.is_empty() {
                emitted.push((key, closed));
            }
        }
        drop(tracker);
        for (key, _) in &emitted {
            store.delete(key)?;
        }
        for (key, values) in emitted {
            for value in values {
                let joined = match value {
                    LeftOrRightValue::Left(v) => (self.joiner)(&key.key, Some(&v), None),
                    LeftOrRightValue::Right(v) => (self.joiner)(&key.key, None, Some(&v)),
                };
                if let Some(joined) = joined {
                    ctx.forward(Record {
                        key: key.key.clone(),
                        value: joined,
                        timestamp: key.timestamp,
                        headers: record.headers.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl<K, V1, V2, VO, S> Processor<K, S::This, K, VO> for StreamJoinProcessor<K, V1, V2, VO, S>
where
    K: Data,
    V1: Data,
    V2: Data,
    VO: Data,
    S: JoinSide<V1, V2>,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VO>) -> Result<(), ProcessorError> {
        let task = ctx.task_id();
        self.tracker = Some(self.spec.trackers.get(task));
        self.task = Some(task);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VO>,
        record: Record<K, S::This>,
    ) -> Result<(), ProcessorError> {
        let timestamp = record.timestamp;
        let stream_time = {
            let mut tracker = self.tracker()?;
            tracker.stream_time = tracker.stream_time.max(timestamp);
            tracker.stream_time
        };
        let spec = self.spec.clone();
        if let (Some(outer_store), true) = (&spec.outer_store, timestamp == stream_time) {
            self.emit_non_joined(ctx, outer_store, &record)?;
        }

        let (join_before_ms, join_after_ms) = self.join_bounds();
        let time_from = timestamp.saturating_sub(join_before_ms).max(0);
        let time_to = timestamp.saturating_add(join_after_ms).max(0);
        let partners = ctx
            .required_store::<TypedWindowStore<K, S::Other>>(self.other_store())?
            .fetch(&record.key, time_from, time_to)?
            .collect::<Result<Vec<_>, _>>()?;

        if partners.is_empty() {
            if !self.outer() {
                return Ok(());
            }
            let stream_time = self.tracker()?.stream_time;
            match &spec.outer_store {
                // Out of order past its own window: nothing can join it any more.
                Some(outer_store) if time_to >= stream_time => {
                    {
                        let mut tracker = self.tracker()?;
                        tracker.min_time = tracker.min_time.min(timestamp);
                    }
                    let key = TimestampedKeyAndJoinSide {
                        timestamp,
                        left: S::LEFT,
                        key: record.key,
                    };
                    let store = ctx.required_store::<OuterJoinStore<K, V1, V2>>(outer_store)?;
                    let mut values = store.get(&key)?.unwrap_or_default();
                    values.push(S::wrap(record.value));
                    store.put(&key, &values)?;
                }
                _ => {
                    if let Some(joined) =
                        S::join(&self.joiner, &record.key, Some(&record.value), None)
                    {
                        ctx.forward(Record {
                            key: record.key,
                            value: joined,
                            timestamp,
                            headers: record.headers,
                        });
                    }
                }
            }
            return Ok(());
        }

        if let Some(outer_store) = &spec.outer_store {
            // The partners found one: they no longer wait in the outer-join store
            // (all of a key's values at one timestamp go at once, as in Kafka).
            let store = ctx.required_store::<OuterJoinStore<K, V1, V2>>(outer_store)?;
            for (other_timestamp, _) in &partners {
                let other_key = TimestampedKeyAndJoinSide {
                    timestamp: *other_timestamp,
                    left: !S::LEFT,
                    key: record.key.clone(),
                };
                if store.get(&other_key)?.is_some() {
                    store.delete(&other_key)?;
                }
            }
        }
        for (other_timestamp, other) in partners {
            if let Some(joined) =
                S::join(&self.joiner, &record.key, Some(&record.value), Some(&other))
            {
                ctx.forward(Record {
                    key: record.key.clone(),
                    value: joined,
                    timestamp: timestamp.max(other_timestamp),
                    headers: record.headers.clone(),
                });
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ProcessorError> {
        if let Some(task) = self.task.take() {
            self.spec.trackers.remove(task);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_client::serde::{Deserializer, MessageField, SerdeContext, Serializer, StringSerde};
    use kafka_client::Headers;

    use super::*;

    #[test]
    fn outer_join_keys_sort_by_time_then_side_and_values_round_trip() {
        let headers = Headers::new();
        let ctx = SerdeContext::new("changelog", MessageField::Key, &headers);
        let keys = TimestampedKeyAndJoinSideSerde(Arc::new(StringSerde) as SharedSerde<String>);
        let bytes = |timestamp: i64, left: bool, key: &str| {
            let key = TimestampedKeyAndJoinSide {
                timestamp,
                left,
                key: key.to_owned(),
            };
            keys.serialize(&key, &ctx).unwrap().unwrap()
        };
        // Kafka's order: timestamp, then right (0) before left (1), then key bytes.
        let ordered = [
            bytes(5, false, "b"),
            bytes(5, true, "a"),
            bytes(6, false, "a"),
            bytes(256, true, "a"),
        ];
        assert!(ordered.windows(2).all(|w| w[0] < w[1]));
        let read = keys.deserialize(Some(&ordered[1]), &ctx).unwrap();
        assert_eq!(
            (read.timestamp, read.left, read.key.as_str()),
            (5, true, "a")
        );

        let values = LeftOrRightListSerde {
            left: Arc::new(StringSerde) as SharedSerde<String>,
            right: Arc::new(StringSerde) as SharedSerde<String>,
        };
        let list = vec![
            LeftOrRightValue::Left("l".to_owned()),
            LeftOrRightValue::Right(String::new()),
            LeftOrRightValue::Left("l2".to_owned()),
        ];
        let encoded = values.serialize(&list, &ctx).unwrap().unwrap();
        assert_eq!(values.deserialize(Some(&encoded), &ctx).unwrap(), list);
        assert!(values
            .deserialize(Some(&encoded[..encoded.len() - 1]), &ctx)
            .is_err());
    }
}
