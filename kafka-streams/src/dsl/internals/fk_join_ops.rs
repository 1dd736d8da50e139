//! The processors and wire formats of foreign-key table joins (Kafka's KIP-213
//! `kstream/internals/foreignkeyjoin`): `SubscriptionWrapper`,
//! `SubscriptionResponseWrapper`, the subscription-send, subscription-receive-and-join,
//! foreign-table-join and response-join processors.
//!
//! 1. A left-table update sends a subscription (its key, the hash of its new value and
//!    an instruction) to the foreign key's partition of the subscription topic; a
//!    foreign-key change also unsubscribes the old foreign key.
//! 2. There the subscription store (keyed by foreign key, then primary key) records
//!    it, and the current foreign row is sent back on the response topic, to the
//!    primary key's partition.
//! 3. A foreign-table update sends its new row to every subscriber.
//! 4. A response whose hash is not the hash of the left row's current value is stale
//!    (the row changed since) and is dropped; the others are joined.

use std::io::Cursor;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use kafka_client::serde::{Deserializer, SerdeContext, SerdeError, Serializer};

use super::table_join_ops::{InnerJoiner, LeftJoiner, ValueGetter};
use crate::dsl::options::SharedSerde;
use crate::dsl::Change;
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::TypedKeyValueStore;

/// The wire version of both wrappers (Kafka's current ones).
const VERSION: u8 = 1;
/// The first byte's flag for "no hash" (a deleted left row).
const NO_HASH: u8 = 0x80;
/// Kafka's `Murmur3.DEFAULT_SEED`.
const MURMUR3_SEED: u32 = 104729;

/// The 128-bit murmur3 hash of `bytes` (Kafka's `Murmur3.hash128`).
pub(crate) fn value_hash(bytes: &[u8]) -> u128 {
    // Reading from memory cannot fail.
    murmur3::murmur3_x64_128(&mut Cursor::new(bytes), MURMUR3_SEED).unwrap_or_default()
}

/// What the subscription asks of the foreign side (Kafka's
/// `SubscriptionWrapper.Instruction`, same byte values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instruction {
    /// Unsubscribe; the new subscription answers.
    DeleteKeyNoPropagate = 0,
    /// Unsubscribe and answer with no foreign row (the join result goes away).
    DeleteKeyAndPropagate = 1,
    /// Subscribe and answer even without a foreign row (left joins, and foreign-key
    /// changes).
    PropagateNullIfNoFkValAvailable = 2,
    /// Subscribe and answer only with a foreign row (a new inner-join row).
    PropagateOnlyIfFkValAvailable = 3,
}

impl Instruction {
    fn from_byte(b: u8) -> Result<Self, SerdeError> {
        Ok(match b {
            0 => Instruction::DeleteKeyNoPropagate,
            1 => Instruction::DeleteKeyAndPropagate,
            2 => Instruction::PropagateNullIfNoFkValAvailable,
            3 => Instruction::PropagateOnlyIfFkValAvailable,
            other => {
                return Err(SerdeError::custom(format!(
                    "unknown subscription instruction {other}"
                )))
            }
        })
    }
}

/// A subscription (Kafka's `SubscriptionWrapper`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubscriptionWrapper<K> {
    /// The hash of the left row's new value; `None` when it was deleted.
    pub hash: Option<u128>,
    pub instruction: Instruction,
    pub primary_key: K,
    /// The partition of the left row (Kafka's `primaryPartition`).
    pub primary_partition: i32,
}

/// Splits the common head of both wrappers: version byte with the no-hash flag, then
/// the hash if present.
fn read_head(data: &[u8], at: usize) -> Result<(Option<u128>, &[u8]), SerdeError> {
    let (&first, rest) = data
        .get(at..)
        .and_then(<[u8]>::split_first)
        .ok_or_else(|| SerdeError::custom("truncated foreign-key join wrapper"))?;
    if first & !NO_HASH != VERSION {
        return Err(SerdeError::custom(format!(
            "foreign-key join wrapper of unsupported version {}",
            first & !NO_HASH
        )));
    }
    if first & NO_HASH != 0 {
        return Ok((None, rest));
    }
    let hash: [u8; 16] = rest
        .get(..16)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| SerdeError::custom("truncated foreign-key join wrapper hash"))?;
    Ok((Some(u128::from_be_bytes(hash)), &rest[16..]))
}

fn write_head(out: &mut Vec<u8>, hash: Option<u128>) {
    match hash {
        Some(h) => {
            out.push(VERSION);
            out.extend_from_slice(&h.to_be_bytes());
        }
        None => out.push(VERSION | NO_HASH),
    }
}

/// Kafka's `SubscriptionWrapperSerde` layout: `{no-hash bit, 7-bit version}
/// {instruction}{16-byte hash, if any}{primary key}{4-byte primary partition}`.
pub(crate) struct SubscriptionWrapperSerde<K>(pub SharedSerde<K>);

impl<K> Serializer<SubscriptionWrapper<K>> for SubscriptionWrapperSerde<K> {
    fn serialize(
        &self,
        data: &SubscriptionWrapper<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let key = Serializer::<K>::serialize(&*self.0, &data.primary_key, ctx)?
            .ok_or_else(|| SerdeError::custom("a subscription's primary key serialized to null"))?;
        let mut out = Vec::with_capacity(22 + key.len());
        match data.hash {
            Some(h) => {
                out.push(VERSION);
                out.push(data.instruction as u8);
                out.extend_from_slice(&h.to_be_bytes());
            }
            None => {
                out.push(VERSION | NO_HASH);
                out.push(data.instruction as u8);
            }
        }
        out.extend_from_slice(&key);
        out.extend_from_slice(&data.primary_partition.to_be_bytes());
        Ok(Some(out))
    }
}

impl<K> Deserializer<SubscriptionWrapper<K>> for SubscriptionWrapperSerde<K> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<SubscriptionWrapper<K>, SerdeError> {
        let data = data.ok_or_else(|| SerdeError::custom("null subscription"))?;
        // The instruction sits between the version byte and the hash.
        let instruction = Instruction::from_byte(
            *data
                .get(1)
                .ok_or_else(|| SerdeError::custom("truncated subscription"))?,
        )?;
        let mut head = data.to_vec();
        head.remove(1);
        let (hash, rest) = read_head(&head, 0)?;
        let split = rest
            .len()
            .checked_sub(4)
            .ok_or_else(|| SerdeError::custom("truncated subscription partition"))?;
        let (key, partition) = rest.split_at(split);
        let primary_key = Deserializer::<K>::deserialize(&*self.0, Some(key), ctx)?;
        let mut p = [0u8; 4];
        p.copy_from_slice(partition);
        Ok(SubscriptionWrapper {
            hash,
            instruction,
            primary_key,
            primary_partition: i32::from_be_bytes(p),
        })
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<K>::reads_headers(&*self.0)
    }
}

/// A foreign row sent back to a subscriber (Kafka's `SubscriptionResponseWrapper`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubscriptionResponseWrapper<VO> {
    /// The subscription's hash of the left value it answers.
    pub hash: Option<u128>,
    pub foreign_value: Option<VO>,
    pub primary_partition: i32,
}

/// `{no-hash bit, 7-bit version}{16-byte hash, if any}{4-byte primary partition}
/// {presence byte}{foreign value}` (Kafka's layout, with a presence byte so that an
/// empty foreign value is not taken for a missing one).
pub(crate) struct ResponseWrapperSerde<VO>(pub SharedSerde<VO>);

impl<VO> Serializer<SubscriptionResponseWrapper<VO>> for ResponseWrapperSerde<VO> {
    fn serialize(
        &self,
        data: &SubscriptionResponseWrapper<VO>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let value = match &data.foreign_value {
            Some(v) => Serializer::<VO>::serialize(&*self.0, v, ctx)?,
            None => None,
        };
        let mut out = Vec::with_capacity(22 + value.as_ref().map_or(0, Vec::len));
        write_head(&mut out, data.hash);
        out.extend_from_slice(&data.primary_partition.to_be_bytes());
        match value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v);
            }
            None => out.push(0),
        }
        Ok(Some(out))
    }
}

impl<VO> Deserializer<SubscriptionResponseWrapper<VO>> for ResponseWrapperSerde<VO> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<SubscriptionResponseWrapper<VO>, SerdeError> {
        let data = data.ok_or_else(|| SerdeError::custom("null subscription response"))?;
        let (hash, rest) = read_head(data, 0)?;
        if rest.len() < 5 {
            return Err(SerdeError::custom("truncated subscription response"));
        }
        let mut p = [0u8; 4];
        p.copy_from_slice(&rest[..4]);
        let foreign_value = match rest[4] {
            1 => Some(Deserializer::<VO>::deserialize(
                &*self.0,
                Some(&rest[5..]),
                ctx,
            )?),
            _ => None,
        };
        Ok(SubscriptionResponseWrapper {
            hash,
            foreign_value,
            primary_partition: i32::from_be_bytes(p),
        })
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<VO>::reads_headers(&*self.0)
    }
}

/// The subscription store's key (Kafka's `CombinedKeySchema`): the foreign key's
/// length (4 bytes) and bytes, then the primary key's bytes; a foreign key's
/// subscriptions are the keys starting with its prefix.
fn combined_key_prefix<KO>(
    serde: &SharedSerde<KO>,
    foreign_key: &KO,
    topic: &str,
) -> Result<Vec<u8>, ProcessorError> {
    let headers = kafka_client::Headers::new();
    let ctx = SerdeContext::new(topic, kafka_client::serde::MessageField::Key, &headers);
    let bytes = Serializer::<KO>::serialize(&**serde, foreign_key, &ctx)?
        .ok_or("a foreign key serialized to null")?;
    let len = u32::try_from(bytes.len()).map_err(|_| "foreign key too long")?;
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
    Ok(out)
}

/// Serializes `value` with `serde` as a value of `topic` (for hashes and key bytes).
fn value_bytes<V>(
    serde: &SharedSerde<V>,
    value: &V,
    topic: &str,
) -> Result<Vec<u8>, ProcessorError> {
    let headers = kafka_client::Headers::new();
    let ctx = SerdeContext::new(topic, kafka_client::serde::MessageField::Value, &headers);
    Ok(Serializer::<V>::serialize(&**serde, value, &ctx)?.unwrap_or_default())
}

/// Extracts the foreign key from a left-table value.
pub(crate) type ForeignKeyExtractor<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;

/// Kafka's `SubscriptionSendProcessorSupplier`: turns each left-table update into
/// subscriptions keyed by foreign key (`None`: a left join's deleted row, which the
/// receiver answers without storing).
pub(crate) struct SubscriptionSend<K, V, KO> {
    pub extractor: ForeignKeyExtractor<V, KO>,
    pub foreign_key_serde: SharedSerde<KO>,
    pub value_serde: SharedSerde<V>,
    /// The pseudo topic the serdes are told (Kafka's `<subscription topic>-fk` / `-vh`).
    pub topic: String,
    pub left: bool,
    pub _t: PhantomData<fn(K)>,
}

impl<K: Data, V: Data, KO: Data> Processor<K, Change<V>, Option<KO>, SubscriptionWrapper<K>>
    for SubscriptionSend<K, V, KO>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Option<KO>, SubscriptionWrapper<K>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let change = &record.value;
        let hash = match &change.new {
            Some(v) => Some(value_hash(&value_bytes(&self.value_serde, v, &self.topic)?)),
            None => None,
        };
        let partition = ctx.record_metadata().map_or(0, |m| m.partition);
        let new_fk = change.new.as_ref().map(|v| (self.extractor)(v));
        let old_fk = change.old.as_ref().map(|v| (self.extractor)(v));
        let fk_bytes = |fk: &Option<KO>| -> Result<Option<Vec<u8>>, ProcessorError> {
            fk.as_ref()
                .map(|k| combined_key_prefix(&self.foreign_key_serde, k, &self.topic))
                .transpose()
        };
        let changed = fk_bytes(&new_fk)? != fk_bytes(&old_fk)?;
        let mut send = |fk: Option<KO>, instruction: Instruction| {
            ctx.forward(Record {
                key: fk,
                value: SubscriptionWrapper {
                    hash,
                    instruction,
                    primary_key: record.key.clone(),
                    primary_partition: partition,
                },
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            });
        };
        match (self.left, old_fk, new_fk) {
            // A deleted row (no new foreign key) is answered through the null-key
            // subscription, which the receiver does not store.
            (true, Some(old), new) => {
                if changed {
                    send(Some(old), Instruction::DeleteKeyNoPropagate);
                }
                send(new, Instruction::PropagateNullIfNoFkValAvailable);
            }
            (true, None, Some(new)) => {
                send(Some(new), Instruction::PropagateNullIfNoFkValAvailable)
            }
            (false, Some(old), Some(new)) => {
                if changed {
                    send(Some(old), Instruction::DeleteKeyNoPropagate);
                }
                send(Some(new), Instruction::PropagateNullIfNoFkValAvailable);
            }
            (false, Some(old), None) => send(Some(old), Instruction::DeleteKeyAndPropagate),
            (false, None, Some(new)) => send(Some(new), Instruction::PropagateOnlyIfFkValAvailable),
            (_, None, None) => {}
        }
        Ok(())
    }
}

/// Kafka's `SubscriptionReceiveProcessorSupplier` and `SubscriptionJoinProcessorSupplier`
/// in one: records the subscription in the store (or removes it), then answers it
/// with the foreign row as its instruction says.
pub(crate) struct SubscriptionReceive<K, KO, VO> {
    pub store: String,
    pub foreign_key_serde: SharedSerde<KO>,
    pub primary_key_serde: SharedSerde<K>,
    pub topic: String,
    pub foreign: ValueGetter<KO, VO>,
}

impl<K: Data, KO: Data, VO: Data>
    Processor<Option<KO>, SubscriptionWrapper<K>, K, SubscriptionResponseWrapper<VO>>
    for SubscriptionReceive<K, KO, VO>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, SubscriptionResponseWrapper<VO>>,
        record: Record<Option<KO>, SubscriptionWrapper<K>>,
    ) -> Result<(), ProcessorError> {
        let wrapper = &record.value;
        let Some(foreign_key) = &record.key else {
            if wrapper.instruction != Instruction::PropagateNullIfNoFkValAvailable {
                tracing::warn!(
                    origin = ?ctx.record_metadata(),
                    "skipping a subscription with a null foreign key"
                );
                ctx.record_dropped();
                return Ok(());
            }
            // A left join's deleted row: answered without a foreign row, not stored.
            ctx.forward(Record {
                key: wrapper.primary_key.clone(),
                value: SubscriptionResponseWrapper {
                    hash: wrapper.hash,
                    foreign_value: None,
                    primary_partition: wrapper.primary_partition,
                },
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            });
            return Ok(());
        };
        let mut key = combined_key_prefix(&self.foreign_key_serde, foreign_key, &self.topic)?;
        key.extend_from_slice(&value_bytes(
            &self.primary_key_serde,
            &wrapper.primary_key,
            &self.topic,
        )?);
        let store =
            ctx.required_store::<TypedKeyValueStore<Vec<u8>, SubscriptionWrapper<K>>>(&self.store)?;
        match wrapper.instruction {
            Instruction::DeleteKeyAndPropagate | Instruction::DeleteKeyNoPropagate => {
                store.delete(&key)?;
            }
            _ => store.put(&key, wrapper)?,
        }
        let foreign = (self.foreign.get)(&mut ctx.store_access(), foreign_key)?;
        // As Kafka's `SubscriptionJoinProcessorSupplier`: the later of the
        // subscription's and the foreign row's timestamps.
        let timestamp = foreign
            .as_ref()
            .map_or(record.timestamp, |row| record.timestamp.max(row.timestamp));
        let foreign = foreign.map(|row| row.value);
        let foreign_value = match wrapper.instruction {
            Instruction::DeleteKeyNoPropagate => return Ok(()),
            Instruction::PropagateOnlyIfFkValAvailable if foreign.is_none() => return Ok(()),
            Instruction::DeleteKeyAndPropagate => None,
            _ => foreign,
        };
        ctx.forward(Record {
            key: wrapper.primary_key.clone(),
            value: SubscriptionResponseWrapper {
                hash: wrapper.hash,
                foreign_value,
                primary_partition: wrapper.primary_partition,
            },
            timestamp,
            headers: record.headers.clone(),
        });
        Ok(())
    }
}

/// Kafka's `ForeignTableJoinProcessorSupplier`: a foreign-table update goes to every
/// subscriber of its key, found by a prefix scan of the subscription store.
pub(crate) struct ForeignTableJoin<K, KO, VO> {
    pub store: String,
    pub foreign_key_serde: SharedSerde<KO>,
    pub topic: String,
    pub _t: PhantomData<fn(K, VO)>,
}

impl<K: Data, KO: Data, VO: Data> Processor<KO, Change<VO>, K, SubscriptionResponseWrapper<VO>>
    for ForeignTableJoin<K, KO, VO>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, SubscriptionResponseWrapper<VO>>,
        record: Record<KO, Change<VO>>,
    ) -> Result<(), ProcessorError> {
        let prefix = combined_key_prefix(&self.foreign_key_serde, &record.key, &self.topic)?;
        let store =
            ctx.required_store::<TypedKeyValueStore<Vec<u8>, SubscriptionWrapper<K>>>(&self.store)?;
        let subscribers: Vec<SubscriptionWrapper<K>> = match prefix_end(&prefix) {
            Some(end) => store.range(Bound::Included(&prefix), Bound::Excluded(&end))?,
            None => store.range(Bound::Included(&prefix), Bound::Unbounded)?,
        }
        .map(|entry| entry.map(|(_, wrapper)| wrapper))
        .collect::<Result<_, _>>()?;
        for wrapper in subscribers {
            ctx.forward(Record {
                key: wrapper.primary_key,
                value: SubscriptionResponseWrapper {
                    hash: wrapper.hash,
                    foreign_value: record.value.new.clone(),
                    primary_partition: wrapper.primary_partition,
                },
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            });
        }
        Ok(())
    }
}

/// The first key after every key starting with `prefix` (Kafka's `Bytes.increment`);
/// `None` when there is none (all bytes 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The joiner of a foreign-key join: the left value and the foreign one.
pub(crate) enum ForeignKeyJoiner<V, VO, VR> {
    Inner(InnerJoiner<V, VO, VR>),
    Left(LeftJoiner<V, VO, VR>),
}

impl<V, VO, VR> Clone for ForeignKeyJoiner<V, VO, VR> {
    fn clone(&self) -> Self {
        match self {
            ForeignKeyJoiner::Inner(f) => ForeignKeyJoiner::Inner(f.clone()),
            ForeignKeyJoiner::Left(f) => ForeignKeyJoiner::Left(f.clone()),
        }
    }
}

/// Kafka's `ResponseJoinProcessorSupplier`: a response for the left row's current
/// value (same hash) is joined, forwarded as the result's new value (`None`: no
/// result); a stale one is dropped.
pub(crate) struct ResponseJoin<K, V, VO, VR> {
    pub left_table: ValueGetter<K, V>,
    pub value_serde: SharedSerde<V>,
    pub topic: String,
    pub joiner: ForeignKeyJoiner<V, VO, VR>,
}

impl<K: Data, V: Data, VO: Data, VR: Data>
    Processor<K, SubscriptionResponseWrapper<VO>, K, Option<VR>> for ResponseJoin<K, V, VO, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<VR>>,
        record: Record<K, SubscriptionResponseWrapper<VO>>,
    ) -> Result<(), ProcessorError> {
        // The result carries the response's timestamp, as Kafka's.
        let current = (self.left_table.get)(&mut ctx.store_access(), &record.key)?;
        let current = current.map(|row| row.value);
        let current_hash = match &current {
            Some(v) => Some(value_hash(&value_bytes(&self.value_serde, v, &self.topic)?)),
            None => None,
        };
        if current_hash != record.value.hash {
            tracing::trace!("dropping a foreign-key join response for an older value");
            ctx.record_dropped();
            return Ok(());
        }
        let foreign = record.value.foreign_value.as_ref();
        let result = match (&self.joiner, current.as_ref(), foreign) {
            (ForeignKeyJoiner::Inner(f), Some(v), Some(fv)) => Some(f(v, fv)),
            (ForeignKeyJoiner::Left(f), Some(v), fv) => Some(f(v, fv)),
            _ => None,
        };
        ctx.forward(Record {
            key: record.key,
            value: result,
            timestamp: record.timestamp,
            headers: record.headers,
        });
        Ok(())
    }
}

/// Kafka's `KTableSource` without a store: each result becomes the new value of its
/// row, a `None` a delete (the old value is not known).
pub(crate) struct UnmaterializedTableSource<K, V>(pub PhantomData<fn(K, V)>);

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for UnmaterializedTableSource<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessorError> {
        let new = record.value.clone();
        ctx.forward(record.with_value(Change { new, old: None }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_client::serde::{MessageField, StringSerde};

    #[test]
    fn wrappers_round_trip_with_and_without_hash() {
        let headers = kafka_client::Headers::new();
        let ctx = SerdeContext::new("t", MessageField::Value, &headers);
        let serde = SubscriptionWrapperSerde::<String>(Arc::new(StringSerde));
        for hash in [Some(value_hash(b"v1")), None] {
            let w = SubscriptionWrapper {
                hash,
                instruction: Instruction::PropagateOnlyIfFkValAvailable,
                primary_key: "pk".to_owned(),
                primary_partition: 3,
            };
            let bytes = serde.serialize(&w, &ctx).unwrap().unwrap();
            assert_eq!(bytes[0] & NO_HASH != 0, hash.is_none());
            assert_eq!(bytes[1], 3);
            assert_eq!(serde.deserialize(Some(&bytes), &ctx).unwrap(), w);
        }
        let serde = ResponseWrapperSerde::<String>(Arc::new(StringSerde));
        for (hash, value) in [(Some(7_u128), Some(String::new())), (None, None)] {
            let r = SubscriptionResponseWrapper {
                hash,
                foreign_value: value,
                primary_partition: 1,
            };
            let bytes = serde.serialize(&r, &ctx).unwrap().unwrap();
            assert_eq!(serde.deserialize(Some(&bytes), &ctx).unwrap(), r);
        }
        assert_ne!(value_hash(b"v1"), value_hash(b"v2"));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn a_response_for_an_older_value_is_dropped_and_counted() {
        use crate::dsl::{Materialized, StreamsBuilder};
        use crate::test_driver::TopologyTestDriver;
        use kafka_client::serde::OptionSerde;

        let builder = StreamsBuilder::new();
        let left = builder.table::<String, String>("left");
        let right = builder.table::<String, String>("right");
        left.join_foreign_key_materialized(
            &right,
            |v: &String| v.split('/').next().unwrap_or_default().to_owned(),
            |l, r| format!("{l}+{r}"),
            Materialized::as_("joined").with_value_serde(Arc::new(StringSerde)),
        );
        let topology = builder.build().unwrap();
        let response_topic = topology
            .internal_topics()
            .map(|t| t.name.clone())
            .find(|t| t.contains("-SUBSCRIPTION-RESPONSE-"))
            .unwrap();
        let driver = TopologyTestDriver::new(topology).unwrap();
        let pipe = |topic: &str, key: &str, value: &str| {
            driver
                .create_input_topic_with::<String, Option<String>>(
                    topic,
                    StringSerde,
                    OptionSerde(StringSerde),
                )
                .pipe_input(key.to_owned(), Some(value.to_owned()))
                .unwrap();
        };
        pipe("right", "f1", "F1");
        pipe("left", "a", "f1/new");
        let joined = driver.key_value_store::<String, String>("joined").unwrap();
        assert_eq!(
            joined.get(&"a".to_owned()).unwrap().as_deref(),
            Some("f1/new+F1")
        );

        // Responses as the foreign side sends them: one for a value `a` no longer
        // holds, one for its current value.
        let responses = driver
            .create_input_topic_with::<String, SubscriptionResponseWrapper<String>>(
                &format!("{}-{response_topic}", driver.application_id()),
                StringSerde,
                ResponseWrapperSerde::<String>(Arc::new(StringSerde)),
            );
        let response = |of: &str, foreign: &str| SubscriptionResponseWrapper {
            hash: Some(value_hash(of.as_bytes())),
            foreign_value: Some(foreign.to_owned()),
            primary_partition: 0,
        };
        let dropped = driver.metrics().skipped_records;
        responses
            .pipe_input("a".to_owned(), response("f1/old", "STALE"))
            .unwrap();
        assert_eq!(
            joined.get(&"a".to_owned()).unwrap().as_deref(),
            Some("f1/new+F1")
        );
        assert_eq!(driver.metrics().skipped_records, dropped + 1);
        responses
            .pipe_input("a".to_owned(), response("f1/new", "F1b"))
            .unwrap();
        assert_eq!(
            joined.get(&"a".to_owned()).unwrap().as_deref(),
            Some("f1/new+F1b")
        );
    }
}
