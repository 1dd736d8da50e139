//! [`ValueAndTimestamp`]: a stored value with the timestamp it carries downstream, in
//! Kafka's byte layout.

use std::sync::Arc;

use kafka_client::serde::{Deserializer, Serde, SerdeContext, SerdeError, Serializer};

/// A stored value and its timestamp (Kafka's `ValueAndTimestamp`): what a windowed
/// aggregation keeps per key and window, the timestamp being the largest of the
/// records folded into the value, and what a table or aggregation keeps per key (a
/// [`TimestampedKeyValueStore`](super::TimestampedKeyValueStore)). Reach such a store
/// as `TypedWindowStore<K, ValueAndTimestamp<V>>` or
/// `TimestampedKeyValueStore<K, V>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Its timestamp, in milliseconds since the epoch.
    pub timestamp: i64,
}

/// Kafka's `ValueAndTimestampSerde` layout: the 8-byte big-endian timestamp, then the
/// value's bytes; a null value stays null (a delete).
pub(crate) struct TimestampedSerde<V>(pub(crate) Arc<dyn Serde<V>>);

impl<V> Serializer<ValueAndTimestamp<V>> for TimestampedSerde<V> {
    fn serialize(
        &self,
        data: &ValueAndTimestamp<V>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let Some(value) = self.0.serialize_borrowed(&data.value, ctx)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(8 + value.len());
        bytes.extend_from_slice(&data.timestamp.to_be_bytes());
        bytes.extend_from_slice(&value);
        Ok(Some(bytes))
    }
}

impl<V> Deserializer<ValueAndTimestamp<V>> for TimestampedSerde<V> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<ValueAndTimestamp<V>, SerdeError> {
        let bytes = data.ok_or_else(|| SerdeError::custom("null value-and-timestamp"))?;
        let Some((timestamp, value)) = bytes.split_first_chunk::<8>() else {
            return Err(SerdeError::custom(format!(
                "value-and-timestamp of {} bytes; at least 8 (the timestamp) expected",
                bytes.len()
            )));
        };
        Ok(ValueAndTimestamp {
            value: self.0.deserialize(Some(value), ctx)?,
            timestamp: i64::from_be_bytes(*timestamp),
        })
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<V>::reads_headers(&*self.0)
    }
}
