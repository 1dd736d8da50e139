//! Serializer and deserializer traits: the one codec path of the SDK.
//!
//! The typed [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer), the Avro
//! serdes of `serde-avro` and the stream processors of `kafka-streams` all turn values
//! into bytes through these two traits, like Kafka's Java `Serializer`/`Deserializer`.
//!
//! A serializer is an object (it may hold a schema-registry client or configuration),
//! and it is told where its bytes go through a [`SerdeContext`]: the topic, whether it
//! encodes the key or the value, and the record's headers.
//!
//! `None` bytes are Kafka's null: a null key, or a tombstone value. Only serdes for
//! `Option<T>` (and `()`) accept or produce null; the others reject it with
//! [`SerdeError::UnexpectedNull`].
//!
//! Serializers whose first use needs I/O (fetching a schema from a registry) do it in
//! the asynchronous [`Serializer::prepare`] / [`Deserializer::prepare`] hook, so that the
//! per-record `serialize` call itself never blocks the executor.
//!
//! ```
//! use kafka_client::serde::{BigEndian, Deserializer, MessageField, SerdeContext, Serializer};
//! use kafka_client::Headers;
//!
//! let headers = Headers::new();
//! let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
//! // Byte-compatible with Java's LongSerializer: 8 bytes, big-endian.
//! let bytes = BigEndian.serialize(&1_i64, &ctx).unwrap().unwrap();
//! assert_eq!(bytes, vec![0, 0, 0, 0, 0, 0, 0, 1]);
//! let back: i64 = BigEndian.deserialize(Some(&bytes), &ctx).unwrap();
//! assert_eq!(back, 1);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::record::Headers;

/// A boxed error of any serializer, kept intact for `downcast_ref`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which part of a record a serde is working on (Kafka's `isKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageField {
    /// The record key.
    Key,
    /// The record value.
    Value,
}

impl fmt::Display for MessageField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageField::Key => "key",
            MessageField::Value => "value",
        })
    }
}

/// Where the bytes a serde handles come from or go to.
#[derive(Debug, Clone, Copy)]
pub struct SerdeContext<'a> {
    /// The topic the record is produced to or was consumed from.
    pub topic: &'a str,
    /// Key or value.
    pub field: MessageField,
    /// The record's headers.
    pub headers: &'a Headers,
}

impl<'a> SerdeContext<'a> {
    /// A context for `field` of a record on `topic`.
    pub fn new(topic: &'a str, field: MessageField, headers: &'a Headers) -> Self {
        SerdeContext {
            topic,
            field,
            headers,
        }
    }
}

/// Why a value could not be turned into bytes, or bytes into a value.
#[derive(Debug, thiserror::Error)]
pub enum SerdeError {
    /// Kafka null where the type has no null (use `Option<T>`).
    #[error("unexpected null {field} on topic {topic} (use Option<T> to accept nulls)")]
    UnexpectedNull {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
    },
    /// A fixed-width type got the wrong number of bytes.
    #[error("{field} on topic {topic} has {actual} bytes, expected {expected}")]
    InvalidLength {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// Bytes the type needs.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// Bytes that are not UTF-8 where a string was expected.
    #[error("{field} on topic {topic} is not valid UTF-8: {source}")]
    Utf8 {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The decoding error.
        source: std::str::Utf8Error,
    },
    /// JSON encoding or decoding failed.
    #[error("JSON {field} on topic {topic}: {source}")]
    Json {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The serde_json error.
        source: serde_json::Error,
    },
    /// A non-null value where the type only allows null (`()`).
    #[error("{field} on topic {topic} must be null, got {len} bytes")]
    ExpectedNull {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// Bytes received.
        len: usize,
    },
    /// An error of a serde defined outside this crate (Avro, a user's own).
    #[error(transparent)]
    Custom(BoxError),
}

impl SerdeError {
    /// Wraps the error of a serde defined outside this crate.
    pub fn custom(error: impl Into<BoxError>) -> Self {
        SerdeError::Custom(error.into())
    }

    /// The wrapped error of a custom serde, if it is of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            SerdeError::Custom(inner) => inner.downcast_ref::<E>(),
            _ => None,
        }
    }

    fn unexpected_null(ctx: &SerdeContext<'_>) -> Self {
        SerdeError::UnexpectedNull {
            topic: ctx.topic.to_owned(),
            field: ctx.field,
        }
    }
}

/// Work a serde must finish (asynchronously) before its synchronous call can run.
pub type PrepareFuture<'a> = BoxFuture<'a, Result<(), SerdeError>>;

/// Turns a `T` into the bytes of a key or value (Kafka's `Serializer<T>`).
///
/// `Ok(None)` is Kafka's null: a null key or a tombstone value.
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// Encodes `data`. Must not block: do I/O in [`Serializer::prepare`].
    fn serialize(&self, data: &T, ctx: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError>;

    /// Like [`Serializer::serialize`], but may return bytes borrowed from `data`
    /// (zero-copy). The producer calls this; serdes whose bytes already exist in
    /// the value (strings, byte buffers) override it.
    fn serialize_borrowed<'a>(
        &self,
        data: &'a T,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(self.serialize(data, ctx)?.map(Cow::Owned))
    }

    /// Asynchronous work needed before [`Serializer::serialize`] can encode `data`,
    /// such as registering a schema. `None` (the default) when there is none; a
    /// serializer returns `None` once its caches are warm.
    fn prepare<'a>(&'a self, data: &'a T, ctx: &'a SerdeContext<'a>) -> Option<PrepareFuture<'a>> {
        let _ = (data, ctx);
        None
    }
}

/// Turns the bytes of a key or value into a `T` (Kafka's `Deserializer<T>`).
///
/// `data` is `None` for Kafka's null.
pub trait Deserializer<T>: Send + Sync {
    /// Decodes `data`. Must not block: do I/O in [`Deserializer::prepare`].
    fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<T, SerdeError>;

    /// Asynchronous work needed before [`Deserializer::deserialize`] can decode `data`,
    /// such as fetching a writer schema by id. `None` (the default) when there is none.
    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        let _ = (data, ctx);
        None
    }

    /// Whether [`SerdeContext::headers`] can change what this deserializer returns.
    /// The typed consumer parses a record's headers for its deserializers only when
    /// one of them says so, and librdkafka's header parsing costs as much as the rest
    /// of receiving a small record. `true` (the default) is always correct; the
    /// built-in deserializers, which never read headers, say `false`.
    fn reads_headers(&self) -> bool {
        true
    }
}

impl<T: ?Sized, S: Serializer<T> + ?Sized> Serializer<T> for Arc<S> {
    fn serialize(&self, data: &T, ctx: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        (**self).serialize(data, ctx)
    }
    fn prepare<'a>(&'a self, data: &'a T, ctx: &'a SerdeContext<'a>) -> Option<PrepareFuture<'a>> {
        (**self).prepare(data, ctx)
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a T,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        (**self).serialize_borrowed(data, ctx)
    }
}

impl<T, S: Deserializer<T> + ?Sized> Deserializer<T> for Arc<S> {
    fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<T, SerdeError> {
        (**self).deserialize(data, ctx)
    }
    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        (**self).prepare(data, ctx)
    }
    fn reads_headers(&self) -> bool {
        (**self).reads_headers()
    }
}

/// A serializer and deserializer for the same type (Kafka's `Serde<T>`).
pub trait Serde<T>: Serializer<T> + Deserializer<T> {}

impl<T, S: Serializer<T> + Deserializer<T>> Serde<T> for S {}

/// Types with a built-in wire format, used when no serde is given explicitly.
///
/// | type | bytes |
/// |---|---|
/// | `String` | UTF-8 |
/// | `Vec<u8>`, `bytes::Bytes` | as is |
/// | `()` | always null (Java's `VoidSerde`) |
/// | `i32`, `i64`, `u32`, `u64`, `f32`, `f64` | big-endian, as Java's `IntegerSerde`, `LongSerde`, `FloatSerde`, `DoubleSerde` |
/// | [`Json<T>`] | `serde_json` |
/// | `Option<T>` | null for `None`, else as `T` |
pub trait DefaultSerde: Sized + Send + 'static {
    /// The serde used for this type.
    type Serde: Serializer<Self> + Deserializer<Self> + Default + 'static;

    /// A new instance of the default serde.
    fn default_serde() -> Self::Serde {
        Self::Serde::default()
    }
}

/// UTF-8 strings (Java's `StringSerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serializer<str> for StringSerde {
    fn serialize(&self, data: &str, _: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.as_bytes().to_vec()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a str,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(Some(Cow::Borrowed(data.as_bytes())))
    }
}

impl Serializer<String> for StringSerde {
    fn serialize(
        &self,
        data: &String,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.as_bytes().to_vec()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a String,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(Some(Cow::Borrowed(data.as_bytes())))
    }
}

impl Serializer<&str> for StringSerde {
    fn serialize(&self, data: &&str, _: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.as_bytes().to_vec()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a &str,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(Some(Cow::Borrowed(data.as_bytes())))
    }
}

impl Deserializer<String> for StringSerde {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<String, SerdeError> {
        let bytes = data.ok_or_else(|| SerdeError::unexpected_null(ctx))?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|source| SerdeError::Utf8 {
                topic: ctx.topic.to_owned(),
                field: ctx.field,
                source,
            })
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

impl DefaultSerde for String {
    type Serde = StringSerde;
}

/// Raw bytes, passed through unchanged (Java's `ByteArraySerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serializer<[u8]> for BytesSerde {
    fn serialize(&self, data: &[u8], _: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.to_vec()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a [u8],
        _: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(Some(Cow::Borrowed(data)))
    }
}

impl Serializer<Vec<u8>> for BytesSerde {
    fn serialize(
        &self,
        data: &Vec<u8>,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.clone()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a Vec<u8>,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(Some(Cow::Borrowed(data.as_slice())))
    }
}

impl Serializer<bytes::Bytes> for BytesSerde {
    fn serialize(
        &self,
        data: &bytes::Bytes,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.to_vec()))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a bytes::Bytes,
        _: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        Ok(Some(Cow::Borrowed(&data[..])))
    }
}

impl Deserializer<Vec<u8>> for BytesSerde {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Vec<u8>, SerdeError> {
        data.map(<[u8]>::to_vec)
            .ok_or_else(|| SerdeError::unexpected_null(ctx))
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

impl Deserializer<bytes::Bytes> for BytesSerde {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<bytes::Bytes, SerdeError> {
        data.map(bytes::Bytes::copy_from_slice)
            .ok_or_else(|| SerdeError::unexpected_null(ctx))
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

impl DefaultSerde for Vec<u8> {
    type Serde = BytesSerde;
}

impl DefaultSerde for bytes::Bytes {
    type Serde = BytesSerde;
}

/// Always null (Java's `VoidSerde`), for topics without keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serializer<()> for UnitSerde {
    fn serialize(&self, _: &(), _: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
}

impl Deserializer<()> for UnitSerde {
    fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<(), SerdeError> {
        match data {
            None => Ok(()),
            Some(bytes) => Err(SerdeError::ExpectedNull {
                topic: ctx.topic.to_owned(),
                field: ctx.field,
                len: bytes.len(),
            }),
        }
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

impl DefaultSerde for () {
    type Serde = UnitSerde;
}

/// Fixed-width big-endian numbers, byte-compatible with Java's `IntegerSerde`,
/// `LongSerde`, `FloatSerde` and `DoubleSerde` (and unsigned counterparts).
#[derive(Debug, Clone, Copy, Default)]
pub struct BigEndian;

macro_rules! big_endian {
    ($($ty:ty),*) => {$(
        impl Serializer<$ty> for BigEndian {
            fn serialize(&self, data: &$ty, _: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
                Ok(Some(data.to_be_bytes().to_vec()))
            }
        }

        impl Deserializer<$ty> for BigEndian {
            fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<$ty, SerdeError> {
                let bytes = data.ok_or_else(|| SerdeError::unexpected_null(ctx))?;
                let array: [u8; std::mem::size_of::<$ty>()] =
                    bytes.try_into().map_err(|_| SerdeError::InvalidLength {
                        topic: ctx.topic.to_owned(),
                        field: ctx.field,
                        expected: std::mem::size_of::<$ty>(),
                        actual: bytes.len(),
                    })?;
                Ok(<$ty>::from_be_bytes(array))
            }

            fn reads_headers(&self) -> bool {
                false
            }
        }

        impl DefaultSerde for $ty {
            type Serde = BigEndian;
        }
    )*};
}

big_endian!(i32, i64, u32, u64, f32, f64);

/// A value carried as JSON (through `serde_json`).
///
/// ```
/// use kafka_client::serde::Json;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Reading { sensor_id: String, value: i64 }
/// let json = Json(Reading { sensor_id: "s1".into(), value: 3 });
/// assert_eq!(json.value, 3); // derefs to the inner value
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The inner value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Json(value)
    }
}

/// JSON serde for any `serde` type: `JsonSerde<T>` encodes `T` and [`Json<T>`].
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSerde<{}>", std::any::type_name::<T>())
    }
}

fn json_error(ctx: &SerdeContext<'_>, source: serde_json::Error) -> SerdeError {
    SerdeError::Json {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
        source,
    }
}

impl<T: Serialize> Serializer<T> for JsonSerde<T> {
    fn serialize(&self, data: &T, ctx: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(data)
            .map(Some)
            .map_err(|e| json_error(ctx, e))
    }
}

impl<T: DeserializeOwned> Deserializer<T> for JsonSerde<T> {
    fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<T, SerdeError> {
        let bytes = data.ok_or_else(|| SerdeError::unexpected_null(ctx))?;
        serde_json::from_slice(bytes).map_err(|e| json_error(ctx, e))
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

impl<T: Serialize> Serializer<Json<T>> for JsonSerde<T> {
    fn serialize(
        &self,
        data: &Json<T>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        Serializer::<T>::serialize(self, &data.0, ctx)
    }
}

impl<T: DeserializeOwned> Deserializer<Json<T>> for JsonSerde<T> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Json<T>, SerdeError> {
        Deserializer::<T>::deserialize(self, data, ctx).map(Json)
    }

    fn reads_headers(&self) -> bool {
        false
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> DefaultSerde for Json<T> {
    type Serde = JsonSerde<T>;
}

/// Null-aware wrapper: `None` is Kafka's null (null key, tombstone value), anything
/// else goes through the inner serde.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionSerde<S>(pub S);

impl<T, S: Serializer<T>> Serializer<Option<T>> for OptionSerde<S> {
    fn serialize(
        &self,
        data: &Option<T>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        match data {
            None => Ok(None),
            Some(inner) => self.0.serialize(inner, ctx),
        }
    }

    fn prepare<'a>(
        &'a self,
        data: &'a Option<T>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        data.as_ref().and_then(|inner| self.0.prepare(inner, ctx))
    }

    fn serialize_borrowed<'a>(
        &self,
        data: &'a Option<T>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Cow<'a, [u8]>>, SerdeError> {
        match data {
            None => Ok(None),
            Some(inner) => self.0.serialize_borrowed(inner, ctx),
        }
    }
}

impl<T, S: Deserializer<T>> Deserializer<Option<T>> for OptionSerde<S> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<T>, SerdeError> {
        match data {
            None => Ok(None),
            Some(bytes) => self.0.deserialize(Some(bytes), ctx).map(Some),
        }
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        data.and_then(|bytes| self.0.prepare(Some(bytes), ctx))
    }

    fn reads_headers(&self) -> bool {
        self.0.reads_headers()
    }
}

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    type Serde = OptionSerde<T::Serde>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(headers: &Headers) -> SerdeContext<'_> {
        SerdeContext::new("t", MessageField::Value, headers)
    }

    fn round_trip<T: DefaultSerde + PartialEq + fmt::Debug>(value: T) -> Option<Vec<u8>> {
        let headers = Headers::new();
        let serde = T::default_serde();
        let bytes = serde.serialize(&value, &ctx(&headers)).unwrap();
        let back: T = serde.deserialize(bytes.as_deref(), &ctx(&headers)).unwrap();
        assert_eq!(back, value);
        bytes
    }

    #[test]
    fn java_compatible_big_endian_layouts() {
        // Expected bytes are what Java's Integer/Long/Float/DoubleSerializer write.
        assert_eq!(round_trip(1_i32), Some(vec![0, 0, 0, 1]));
        assert_eq!(round_trip(-2_i32), Some(vec![0xff, 0xff, 0xff, 0xfe]));
        assert_eq!(
            round_trip(0x0102_0304_0506_0708_i64),
            Some(vec![1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(round_trip(-1_i64), Some(vec![0xff; 8]));
        assert_eq!(round_trip(1.0_f32), Some(vec![0x3f, 0x80, 0, 0]));
        assert_eq!(
            round_trip(1.0_f64),
            Some(vec![0x3f, 0xf0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(round_trip(7_u32), Some(vec![0, 0, 0, 7]));
        assert_eq!(round_trip(7_u64), Some(vec![0, 0, 0, 0, 0, 0, 0, 7]));
    }

    #[test]
    fn strings_bytes_unit_and_options() {
        assert_eq!(
            round_trip("héllo".to_string()),
            Some("héllo".as_bytes().to_vec())
        );
        assert_eq!(round_trip(vec![0_u8, 255]), Some(vec![0, 255]));
        assert_eq!(
            round_trip(bytes::Bytes::from_static(b"ab")),
            Some(b"ab".to_vec())
        );
        assert_eq!(round_trip(()), None);
        assert_eq!(round_trip(Option::<String>::None), None);
        assert_eq!(round_trip(Some(5_i32)), Some(vec![0, 0, 0, 5]));
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Reading {
        sensor_id: String,
        value: i64,
    }

    #[test]
    fn json_round_trip_and_error_names_topic() {
        let bytes = round_trip(Json(Reading {
            sensor_id: "s1".into(),
            value: 3,
        }));
        assert_eq!(bytes.unwrap(), br#"{"sensor_id":"s1","value":3}"#.to_vec());

        let headers = Headers::new();
        let err = Deserializer::<Reading>::deserialize(
            &JsonSerde::<Reading>::new(),
            Some(b"not json"),
            &ctx(&headers),
        )
        .unwrap_err();
        assert!(matches!(err, SerdeError::Json { .. }));
        assert!(err.to_string().contains("topic t"), "{err}");
    }

    #[test]
    fn null_and_length_errors() {
        let headers = Headers::new();
        let c = ctx(&headers);
        let err = Deserializer::<String>::deserialize(&StringSerde, None, &c).unwrap_err();
        assert!(matches!(err, SerdeError::UnexpectedNull { .. }));
        let err = Deserializer::<i64>::deserialize(&BigEndian, Some(&[1, 2, 3]), &c).unwrap_err();
        assert!(matches!(
            err,
            SerdeError::InvalidLength {
                expected: 8,
                actual: 3,
                ..
            }
        ));
        let err = Deserializer::<String>::deserialize(&StringSerde, Some(&[0xff]), &c).unwrap_err();
        assert!(matches!(err, SerdeError::Utf8 { .. }));
        let err = UnitSerde.deserialize(Some(&[1]), &c).unwrap_err();
        assert!(matches!(err, SerdeError::ExpectedNull { len: 1, .. }));
    }

    #[test]
    fn strings_and_bytes_serialize_without_copying() {
        let headers = Headers::new();
        let c = ctx(&headers);
        let text = String::from("sensor-1");
        let bytes = StringSerde.serialize_borrowed(&text, &c).unwrap().unwrap();
        assert!(matches!(bytes, Cow::Borrowed(b) if b.as_ptr() == text.as_ptr()));
        let buffer = vec![1_u8, 2];
        let bytes = BytesSerde.serialize_borrowed(&buffer, &c).unwrap().unwrap();
        assert!(matches!(bytes, Cow::Borrowed(b) if b.as_ptr() == buffer.as_ptr()));
        let option = Some(text.clone());
        let some = OptionSerde(StringSerde)
            .serialize_borrowed(&option, &c)
            .unwrap();
        assert_eq!(some.as_deref(), Some(&b"sensor-1"[..]));
        // Types without a byte form of their own fall back to an owned buffer.
        let number = BigEndian.serialize_borrowed(&1_i32, &c).unwrap().unwrap();
        assert!(matches!(number, Cow::Owned(ref v) if v == &[0, 0, 0, 1]));
    }

    #[test]
    fn custom_errors_downcast() {
        #[derive(Debug, thiserror::Error)]
        #[error("mine")]
        struct Mine;
        let err = SerdeError::custom(Mine);
        assert!(err.downcast_ref::<Mine>().is_some());
        assert!(err.downcast_ref::<std::fmt::Error>().is_none());
    }

    proptest! {
        #[test]
        fn numbers_round_trip(a: i32, b: i64, c: u64, d: f64) {
            round_trip(a);
            round_trip(b);
            round_trip(c);
            let headers = Headers::new();
            let bytes = BigEndian.serialize(&d, &ctx(&headers)).unwrap();
            let back: f64 = BigEndian.deserialize(bytes.as_deref(), &ctx(&headers)).unwrap();
            prop_assert_eq!(back.to_bits(), d.to_bits());
        }
    }
}
