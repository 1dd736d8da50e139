//! The processors behind [`KTable`](crate::dsl::KTable) and the aggregations
//! (Kafka's `kstream/internals` `KTableSource`, `KTableFilter`, `KStreamAggregate`...).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::{Deserializer, SerdeContext, SerdeError, Serializer};

use crate::dsl::options::SharedSerde;
use crate::dsl::Change;
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{FlushQueue, TimestampedKeyValueStore, ValueAndTimestamp};
use integer_encoding::VarInt;

/// Forwards a table's updates as Kafka's `TimestampedTupleForwarder` does: at once
/// when its store has no record cache; otherwise when the cache writes them through
/// (on eviction, or at commit), folded per key, stamped with the row's timestamp, or,
/// for a delete, which leaves no row, with the deleting record's (the timestamp
/// Kafka's cache entry keeps).
pub(crate) struct TupleForwarder {
    pub(crate) store: String,
    pub(crate) queue: Option<FlushQueue>,
    /// The timestamps of the deletes still in the cache, by serialized key.
    delete_timestamps: HashMap<Vec<u8>, i64>,
}

impl TupleForwarder {
    pub(crate) fn new(store: &str) -> Self {
        TupleForwarder {
            store: store.to_owned(),
            queue: None,
            delete_timestamps: HashMap::new(),
        }
    }

    /// Listens to the store's cache, if it has one.
    pub(crate) fn init<K: Data, V: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TimestampedKeyValueStore<K, V>>(&self.store)?;
        let queue = FlushQueue::tracking_dropped();
        if store.set_flush_listener(Box::new(queue.clone()), true)? {
            self.queue = Some(queue);
        }
        Ok(())
    }

    /// Forwards `record` at once if the store has no cache; else remembers the
    /// timestamp of a delete for when the cache writes it through.
    pub(crate) fn maybe_forward<K: Data, V: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        if self.queue.is_none() {
            ctx.forward(record);
            return Ok(());
        }
        let deleted = record.value.new.is_none();
        if deleted || !self.delete_timestamps.is_empty() {
            let store = ctx.required_store::<TimestampedKeyValueStore<K, V>>(&self.store)?;
            let key = store.serialized_key(&record.key)?;
            if deleted {
                self.delete_timestamps.insert(key, record.timestamp);
            } else {
                self.delete_timestamps.remove(&key);
            }
        }
        Ok(())
    }

    /// Forwards what the cache wrote through since the last call.
    pub(crate) fn flush<K: Data, V: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        // Deletes of keys the store never had left the cache unforwarded: their
        // timestamps are not needed any more.
        for key in queue.drain_dropped() {
            self.delete_timestamps.remove(&key);
        }
        let entries = queue.drain();
        if entries.is_empty() {
            return Ok(());
        }
        let stream_time = ctx.current_stream_time_ms().max(0);
        let store = ctx.required_store::<TimestampedKeyValueStore<K, V>>(&self.store)?;
        let updates = entries
            .iter()
            .map(|e| store.decode_flushed(e))
            .collect::<Result<Vec<_>, _>>()?;
        for ((key, new, old), entry) in updates.into_iter().zip(&entries) {
            let timestamp = match &new {
                Some(row) => row.timestamp,
                None => self
                    .delete_timestamps
                    .remove(&entry.key)
                    .unwrap_or(stream_time),
            };
            let change = Change {
                new: new.map(|row| row.value),
                old: old.map(|row| row.value),
            };
            ctx.forward(Record::new(key, change, timestamp));
        }
        Ok(())
    }
}

/// The general aggregation step: `(key, value, current aggregate) → new aggregate`.
pub(crate) type AggFn<K, V, VA> = Arc<dyn Fn(&K, &V, Option<VA>) -> VA + Send + Sync>;

/// Aggregates a grouped stream into a store (Kafka's `KStreamAggregate` /
/// `KStreamReduce`).
pub(crate) struct StreamAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) agg: AggFn<K, V, VA>,
    pub(crate) forwarder: TupleForwarder,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, K, Change<VA>> for StreamAggregate<K, V, VA> {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.init(ctx)
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TimestampedKeyValueStore<K, VA>>(&self.store)?;
        // As Kafka's `KStreamAggregate`: the later of the record's and the old
        // aggregate's timestamps.
        let (old, new) = store.update_with(&record.key, |old| ValueAndTimestamp {
            value: (self.agg)(
                &record.key,
                &record.value,
                old.as_ref().map(|o| o.value.clone()),
            ),
            timestamp: old
                .as_ref()
                .map_or(record.timestamp, |o| record.timestamp.max(o.timestamp)),
        })?;
        let change = Change {
            new: Some(new.value),
            old: old.map(|o| o.value),
        };
        self.forwarder
            .maybe_forward(ctx, record.with_value(change).with_timestamp(new.timestamp))
    }
}

/// Materializes a source topic as a table (Kafka's `KTableSource`): a null value
/// deletes the key and is forwarded as a tombstone.
pub(crate) struct TableSource<K, V> {
    pub(crate) store: String,
    pub(crate) forwarder: TupleForwarder,
    pub(crate) _t: PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for TableSource<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessorError> {
        self.forwarder.init(ctx)
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TimestampedKeyValueStore<K, V>>(&self.store)?;
        let old = match &record.value {
            Some(v) => {
                let old = store.get(&record.key)?;
                let row = ValueAndTimestamp {
                    value: v.clone(),
                    timestamp: record.timestamp,
                };
                store.put(&record.key, &row)?;
                old
            }
            None => store.delete(&record.key)?,
        };
        let old = old.map(|row| row.value);
        let new = record.value.clone();
        if new.is_none() && old.is_none() {
            return Ok(()); // deleting an absent key changes nothing
        }
        self.forwarder
            .maybe_forward(ctx, record.with_value(Change { new, old }))
    }
}

pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Kafka's `KTableFilter`: a row that stops matching becomes a delete.
pub(crate) struct TableFilter<K, V> {
    pub(crate) f: Predicate<K, V>,
    pub(crate) keep_when: bool,
}

impl<K: Data, V: Data> Processor<K, Change<V>> for TableFilter<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let keep = |v: &Option<V>| match v {
            Some(v) if (self.f)(&record.key, v) == self.keep_when => Some(v.clone()),
            _ => None,
        };
        let new = keep(&record.value.new);
        let old = keep(&record.value.old);
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(record.with_value(Change { new, old }));
        Ok(())
    }
}

pub(crate) type ValueMapper<K, V, V2> = Arc<dyn Fn(&K, &V) -> V2 + Send + Sync>;

/// Kafka's `KTableMapValues`.
pub(crate) struct TableMapValues<K, V, V2> {
    pub(crate) f: ValueMapper<K, V, V2>,
}

impl<K: Data, V: Data, V2: Data> Processor<K, Change<V>, K, Change<V2>>
    for TableMapValues<K, V, V2>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let new = record.value.new.as_ref().map(|v| (self.f)(&record.key, v));
        let old = record.value.old.as_ref().map(|v| (self.f)(&record.key, v));
        ctx.forward(record.with_value(Change { new, old }));
        Ok(())
    }
}

/// Kafka's `KTableMapValues` feeding `toStream()`: the new value, `None` for deletes.
pub(crate) struct ToStream<K, V>(pub(crate) PhantomData<fn(K, V)>);

impl<K: Data, V: Data> Processor<K, Change<V>, K, Option<V>> for ToStream<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let new = record.value.new.clone();
        ctx.forward(record.with_value(new));
        Ok(())
    }
}

pub(crate) type KeyValueSelector<K, V, K2, V2> = Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync>;

/// Kafka's `KTableRepartitionMap`: the old row is sent to its group as a subtraction,
/// the new row to its group as an addition; when both land in the same group, one
/// record carries both, so the aggregate updates once.
pub(crate) struct TableRepartitionMap<K, V, K2, V2> {
    pub(crate) f: KeyValueSelector<K, V, K2, V2>,
}

impl<K: Data, V: Data, K2: Data + PartialEq, V2: Data> Processor<K, Change<V>, K2, Change<V2>>
    for TableRepartitionMap<K, V, K2, V2>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let old = record.value.old.as_ref().map(|v| (self.f)(&record.key, v));
        let new = record.value.new.as_ref().map(|v| (self.f)(&record.key, v));
        let forward = |ctx: &mut ProcessorContext<'_, K2, Change<V2>>, key, change| {
            ctx.forward(Record {
                key,
                value: change,
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            })
        };
        match (old, new) {
            (Some((old_key, old)), Some((new_key, new))) if old_key == new_key => forward(
                ctx,
                new_key,
                Change {
                    new: Some(new),
                    old: Some(old),
                },
            ),
            (old, new) => {
                // The subtraction first, as Kafka, so a group never briefly counts a
                // row twice.
                if let Some((key, old)) = old {
                    forward(
                        ctx,
                        key,
                        Change {
                            new: None,
                            old: Some(old),
                        },
                    );
                }
                if let Some((key, new)) = new {
                    forward(
                        ctx,
                        key,
                        Change {
                            new: Some(new),
                            old: None,
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

/// Adds a row to a group's aggregate (absent before the group's first row).
pub(crate) type TableAggFn<K, V, VA> = Arc<dyn Fn(&K, &V, Option<VA>) -> VA + Send + Sync>;
/// Takes a row out of a group's (present) aggregate.
pub(crate) type TableSubFn<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

/// Kafka's `KTableAggregate` / `KTableReduce`: subtract the old row, add the new one.
/// As Kafka, nothing is subtracted from an absent aggregate, and an aggregate left
/// absent deletes the group's key (and forwards a tombstone).
pub(crate) struct TableAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) add: TableAggFn<K, V, VA>,
    pub(crate) sub: TableSubFn<K, V, VA>,
    pub(crate) forwarder: TupleForwarder,
}

impl<K: Data, V: Data, VA: Data> Processor<K, Change<V>, K, Change<VA>>
    for TableAggregate<K, V, VA>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.init(ctx)
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TimestampedKeyValueStore<K, VA>>(&self.store)?;
        let prev_row = store.get(&record.key)?;
        // As Kafka's `KTableAggregate` / `KTableReduce`: taking a row out of, or adding
        // one to, an existing aggregate stamps the later of the record's and the
        // aggregate's timestamps.
        let timestamp = match &prev_row {
            Some(row) if record.value.old.is_some() || record.value.new.is_some() => {
                record.timestamp.max(row.timestamp)
            }
            _ => record.timestamp,
        };
        let prev = prev_row.map(|row| row.value);
        let mut agg = prev.clone();
        if let Some(old) = &record.value.old {
            agg = agg.map(|current| (self.sub)(&record.key, old, current));
        }
        if let Some(new) = &record.value.new {
            agg = Some((self.add)(&record.key, new, agg));
        }
        match &agg {
            Some(a) => store.put(
                &record.key,
                &ValueAndTimestamp {
                    value: a.clone(),
                    timestamp,
                },
            )?,
            None => {
                store.delete(&record.key)?;
            }
        }
        if agg.is_none() && prev.is_none() {
            return Ok(());
        }
        self.forwarder.maybe_forward(
            ctx,
            record
                .with_value(Change {
                    new: agg,
                    old: prev,
                })
                .with_timestamp(timestamp),
        )
    }
}

/// The wire format of [`Change`]s on a table's repartition topic, byte-equal to
/// Kafka's `ChangedSerializer`: `old ++ [0]` for a subtraction, `new ++ [1]` for an
/// addition, and `varint(len(new)) ++ new ++ old ++ [2]` when one record carries both
/// (zig-zag varint, as Kafka's `ByteUtils.writeVarint`).
pub(crate) struct ChangeSerde<V>(pub SharedSerde<V>);

const SUBTRACTION: u8 = 0;
const ADDITION: u8 = 1;
const BOTH: u8 = 2;

impl<V> Serializer<Change<V>> for ChangeSerde<V> {
    fn serialize(
        &self,
        data: &Change<V>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let bytes = |value: &V| -> Result<Vec<u8>, SerdeError> {
            Ok(Serializer::<V>::serialize(&*self.0, value, ctx)?.unwrap_or_default())
        };
        let out = match (&data.new, &data.old) {
            (Some(new), Some(old)) => {
                let (new, old) = (bytes(new)?, bytes(old)?);
                let new_len = i32::try_from(new.len())
                    .map_err(|_| SerdeError::custom("table repartition value longer than 2 GiB"))?;
                let mut out = new_len.encode_var_vec();
                out.reserve(new.len() + old.len() + 1);
                out.extend_from_slice(&new);
                out.extend_from_slice(&old);
                out.push(BOTH);
                out
            }
            (Some(value), None) | (None, Some(value)) => {
                let mut out = bytes(value)?;
                out.push(if data.new.is_some() {
                    ADDITION
                } else {
                    SUBTRACTION
                });
                out
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(out))
    }
}

impl<V> Deserializer<Change<V>> for ChangeSerde<V> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Change<V>, SerdeError> {
        let Some(data) = data else {
            return Ok(Change {
                new: None,
                old: None,
            });
        };
        let value = |bytes: &[u8]| Deserializer::<V>::deserialize(&*self.0, Some(bytes), ctx);
        let (&flag, body) = data
            .split_last()
            .ok_or_else(|| SerdeError::custom("empty table repartition record"))?;
        Ok(match flag {
            SUBTRACTION => Change {
                new: None,
                old: Some(value(body)?),
            },
            ADDITION => Change {
                new: Some(value(body)?),
                old: None,
            },
            BOTH => {
                let (new_len, read) = i32::decode_var(body).ok_or_else(|| {
                    SerdeError::custom("table repartition record: truncated new-value length")
                })?;
                let (new, old) = usize::try_from(new_len)
                    .ok()
                    .and_then(|len| body[read..].split_at_checked(len))
                    .ok_or_else(|| {
                        SerdeError::custom(format!(
                            "table repartition record: new-value length {new_len} outside the \
                             record's {} bytes",
                            body.len() - read
                        ))
                    })?;
                Change {
                    new: Some(value(new)?),
                    old: Some(value(old)?),
                }
            }
            other => {
                return Err(SerdeError::custom(format!(
                    "table repartition record: unknown change flag {other}"
                )))
            }
        })
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<V>::reads_headers(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_client::serde::{MessageField, StringSerde};
    use kafka_client::Headers;

    fn serde() -> ChangeSerde<String> {
        ChangeSerde(Arc::new(StringSerde))
    }

    fn round_trip(change: Change<String>) -> Vec<u8> {
        let headers = Headers::new();
        let ctx = SerdeContext::new("t", MessageField::Value, &headers);
        let bytes = serde().serialize(&change, &ctx).unwrap().unwrap();
        let back = serde().deserialize(Some(&bytes), &ctx).unwrap();
        assert_eq!((back.new, back.old), (change.new, change.old));
        bytes
    }

    /// The bytes Kafka's `ChangedSerializer` writes for the same changes.
    #[test]
    fn change_serde_is_byte_equal_to_kafkas_changed_serializer() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            round_trip(Change {
                new: s("ab"),
                old: None
            }),
            b"ab\x01"
        );
        assert_eq!(
            round_trip(Change {
                new: None,
                old: s("c")
            }),
            b"c\x00"
        );
        // varint(2) zig-zagged is 4.
        assert_eq!(
            round_trip(Change {
                new: s("ab"),
                old: s("c")
            }),
            b"\x04abc\x02"
        );
        assert_eq!(
            round_trip(Change {
                new: s(""),
                old: s("c")
            }),
            b"\x00c\x02"
        );
    }

    #[test]
    fn malformed_change_records_are_errors() {
        let headers = Headers::new();
        let ctx = SerdeContext::new("t", MessageField::Value, &headers);
        for bad in [&b""[..], b"x\x07", b"\x10ab\x02", b"\x02"] {
            assert!(serde().deserialize(Some(bad), &ctx).is_err(), "{bad:?}");
        }
    }
}
