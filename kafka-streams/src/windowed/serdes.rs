//! Serdes of [`Windowed`] keys, byte-compatible with Kafka Streams' so that a Java
//! consumer reads what a windowed table writes, and the other way round.
//!
//! | Kafka | bytes |
//! |---|---|
//! | `TimeWindowedSerializer` | key, then the window start (8 bytes, big-endian) |
//! | `SessionWindowedSerializer` | key, then the window end, then the start (8 bytes each, big-endian) |
//!
//! A time-windowed key does not carry its end: the deserializer is given the window
//! size and computes `end = start + size` (saturating at `i64::MAX`, as Kafka's
//! `WindowKeySchema.timeWindowForSize` does).

use std::time::Duration;

use kafka_client::serde::{
    Deserializer, MessageField, PrepareFuture, SerdeContext, SerdeError, Serializer,
};

use super::{millis_of, Window, WindowError, Windowed};

/// Bytes of one window timestamp.
const TIMESTAMP_SIZE: usize = 8;

/// Why a windowed key could not be written or read. Reaches callers as
/// [`SerdeError::Custom`]; get it back with [`SerdeError::downcast_ref`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowedKeyError {
    /// Fewer bytes than the window timestamps take.
    #[error("windowed {field} on topic {topic} has {actual} bytes, fewer than the {needed} its window timestamps take")]
    TooShort {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// Bytes the window timestamps take (8 for a time window, 16 for a session).
        needed: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The inner serializer wrote the key as null; a windowed key needs key bytes
    /// (Kafka fails there too).
    #[error(
        "the inner serializer of a windowed {field} on topic {topic} returned null for the key"
    )]
    NullInnerKey {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
    },
    /// The bytes hold window bounds no window can have.
    #[error("windowed {field} on topic {topic} holds an invalid window: {source}")]
    InvalidWindow {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// What is wrong with the window.
        source: WindowError,
    },
}

fn serde_error(
    ctx: &SerdeContext<'_>,
    make: impl FnOnce(String, MessageField) -> WindowedKeyError,
) -> SerdeError {
    SerdeError::custom(make(ctx.topic.to_owned(), ctx.field))
}

fn unexpected_null(ctx: &SerdeContext<'_>) -> SerdeError {
    SerdeError::UnexpectedNull {
        topic: ctx.topic.to_owned(),
        field: ctx.field,
    }
}

/// The inner key's bytes followed by `timestamps`, each 8 bytes big-endian.
fn key_then_timestamps<K, S: Serializer<K> + ?Sized>(
    inner: &S,
    key: &K,
    timestamps: &[i64],
    ctx: &SerdeContext<'_>,
) -> Result<Option<Vec<u8>>, SerdeError> {
    let key_bytes = inner.serialize_borrowed(key, ctx)?.ok_or_else(|| {
        serde_error(ctx, |topic, field| WindowedKeyError::NullInnerKey {
            topic,
            field,
        })
    })?;
    let mut bytes = Vec::with_capacity(key_bytes.len() + timestamps.len() * TIMESTAMP_SIZE);
    bytes.extend_from_slice(&key_bytes);
    for timestamp in timestamps {
        bytes.extend_from_slice(&timestamp.to_be_bytes());
    }
    Ok(Some(bytes))
}

/// Splits `bytes` into the key part and `N` trailing big-endian timestamps.
fn split_timestamps<'a, const N: usize>(
    bytes: &'a [u8],
    ctx: &SerdeContext<'_>,
) -> Result<(&'a [u8], [i64; N]), SerdeError> {
    let needed = N * TIMESTAMP_SIZE;
    let Some(key_len) = bytes.len().checked_sub(needed) else {
        return Err(serde_error(ctx, |topic, field| {
            WindowedKeyError::TooShort {
                topic,
                field,
                needed,
                actual: bytes.len(),
            }
        }));
    };
    let (key, suffix) = bytes.split_at(key_len);
    let mut timestamps = [0_i64; N];
    for (timestamp, chunk) in timestamps
        .iter_mut()
        .zip(suffix.chunks_exact(TIMESTAMP_SIZE))
    {
        let mut array = [0_u8; TIMESTAMP_SIZE];
        array.copy_from_slice(chunk);
        *timestamp = i64::from_be_bytes(array);
    }
    Ok((key, timestamps))
}

/// The key part of `data` for the inner deserializer's `prepare`, when `data` is long
/// enough; otherwise `deserialize` reports the problem.
fn key_part(data: Option<&[u8]>, timestamps: usize) -> Option<&[u8]> {
    let bytes = data?;
    let key_len = bytes.len().checked_sub(timestamps * TIMESTAMP_SIZE)?;
    Some(&bytes[..key_len])
}

fn invalid_window(ctx: &SerdeContext<'_>, source: WindowError) -> SerdeError {
    serde_error(ctx, |topic, field| WindowedKeyError::InvalidWindow {
        topic,
        field,
        source,
    })
}

fn time_windowed_from_bytes<K, D: Deserializer<K> + ?Sized>(
    inner: &D,
    window_size_ms: i64,
    data: Option<&[u8]>,
    ctx: &SerdeContext<'_>,
) -> Result<Windowed<K>, SerdeError> {
    let bytes = data.ok_or_else(|| unexpected_null(ctx))?;
    let (key_bytes, [start]) = split_timestamps::<1>(bytes, ctx)?;
    let end = start.checked_add(window_size_ms).unwrap_or(i64::MAX);
    let window = Window::time_window(start, end).map_err(|e| invalid_window(ctx, e))?;
    let key = inner.deserialize(Some(key_bytes), ctx)?;
    Ok(Windowed::new(key, window))
}

fn session_windowed_from_bytes<K, D: Deserializer<K> + ?Sized>(
    inner: &D,
    data: Option<&[u8]>,
    ctx: &SerdeContext<'_>,
) -> Result<Windowed<K>, SerdeError> {
    let bytes = data.ok_or_else(|| unexpected_null(ctx))?;
    let (key_bytes, [end, start]) = split_timestamps::<2>(bytes, ctx)?;
    let window = Window::new(start, end).map_err(|e| invalid_window(ctx, e))?;
    let key = inner.deserialize(Some(key_bytes), ctx)?;
    Ok(Windowed::new(key, window))
}

fn window_size_millis(window_size: Duration) -> Result<i64, WindowError> {
    let millis = millis_of("windowSize", window_size)?;
    if millis <= 0 {
        return Err(WindowError::NotPositive {
            parameter: "windowSize",
            duration: window_size,
        });
    }
    Ok(millis)
}

/// Writes a time-windowed key as Kafka's `TimeWindowedSerializer`: the inner key's
/// bytes, then the window start as 8 bytes big-endian. The window end is not written.
///
/// ```
/// use kafka_client::serde::{MessageField, SerdeContext, Serializer, StringSerde};
/// use kafka_client::Headers;
/// use kafka_streams::dsl::{TimeWindowedSerializer, Window, Windowed};
///
/// let headers = Headers::new();
/// let ctx = SerdeContext::new("counts", MessageField::Key, &headers);
/// let key = Windowed::new("s1".to_string(), Window::new(256, 266).unwrap());
/// let bytes = TimeWindowedSerializer::new(StringSerde).serialize(&key, &ctx).unwrap();
/// assert_eq!(bytes.unwrap(), b"s1\0\0\0\0\0\0\x01\0");
/// ```
#[derive(Debug, Clone, Default)]
pub struct TimeWindowedSerializer<S> {
    inner: S,
}

impl<S> TimeWindowedSerializer<S> {
    /// Writes the keys with `inner`.
    pub fn new(inner: S) -> Self {
        TimeWindowedSerializer { inner }
    }

    /// The key serializer.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The bytes of the key alone, without its window (Kafka's `serializeBaseKey`,
    /// which partitioners of windowed keys hash).
    pub fn serialize_base_key<K>(
        &self,
        data: &Windowed<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError>
    where
        S: Serializer<K>,
    {
        self.inner.serialize(&data.key, ctx)
    }
}

impl<K, S: Serializer<K>> Serializer<Windowed<K>> for TimeWindowedSerializer<S> {
    fn serialize(
        &self,
        data: &Windowed<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        key_then_timestamps(&self.inner, &data.key, &[data.window.start()], ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: &'a Windowed<K>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(&data.key, ctx)
    }
}

/// Reads a time-windowed key as Kafka's `TimeWindowedDeserializer`: the bytes do not
/// hold the window end, so it is built from the window size given here
/// (`end = start + size`).
#[derive(Debug, Clone)]
pub struct TimeWindowedDeserializer<D> {
    inner: D,
    window_size_ms: i64,
}

impl<D> TimeWindowedDeserializer<D> {
    /// Reads the keys with `inner`, for windows of `window_size` (at least one
    /// millisecond; usually [`TimeWindows::size_ms`](crate::dsl::TimeWindows::size_ms)).
    pub fn new(inner: D, window_size: Duration) -> Result<Self, WindowError> {
        Ok(TimeWindowedDeserializer {
            inner,
            window_size_ms: window_size_millis(window_size)?,
        })
    }

    /// The window size in milliseconds (Kafka's `getWindowSize()`).
    pub fn window_size_ms(&self) -> i64 {
        self.window_size_ms
    }

    /// The key deserializer.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<K, D: Deserializer<K>> Deserializer<Windowed<K>> for TimeWindowedDeserializer<D> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Windowed<K>, SerdeError> {
        time_windowed_from_bytes(&self.inner, self.window_size_ms, data, ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(key_part(data, 1), ctx)
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<K>::reads_headers(&self.inner)
    }
}

/// Both directions of a time-windowed key (Kafka's `WindowedSerdes.TimeWindowedSerde`),
/// for places that take one serde, such as
/// [`Consumed::with`](crate::dsl::Consumed::with).
#[derive(Debug, Clone)]
pub struct TimeWindowedSerde<S> {
    inner: S,
    window_size_ms: i64,
}

impl<S> TimeWindowedSerde<S> {
    /// Keys written and read with `inner`, for windows of `window_size` (at least one
    /// millisecond).
    pub fn new(inner: S, window_size: Duration) -> Result<Self, WindowError> {
        Ok(TimeWindowedSerde {
            inner,
            window_size_ms: window_size_millis(window_size)?,
        })
    }

    /// The window size in milliseconds.
    pub fn window_size_ms(&self) -> i64 {
        self.window_size_ms
    }
}

impl<K, S: Serializer<K>> Serializer<Windowed<K>> for TimeWindowedSerde<S> {
    fn serialize(
        &self,
        data: &Windowed<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        key_then_timestamps(&self.inner, &data.key, &[data.window.start()], ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: &'a Windowed<K>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(&data.key, ctx)
    }
}

impl<K, S: Deserializer<K>> Deserializer<Windowed<K>> for TimeWindowedSerde<S> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Windowed<K>, SerdeError> {
        time_windowed_from_bytes(&self.inner, self.window_size_ms, data, ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(key_part(data, 1), ctx)
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<K>::reads_headers(&self.inner)
    }
}

/// Writes a session-windowed key as Kafka's `SessionWindowedSerializer`
/// (`SessionKeySchema.toBinary`): the inner key's bytes, then the session end, then
/// its start, each 8 bytes big-endian.
///
/// ```
/// use kafka_client::serde::{MessageField, SerdeContext, Serializer, StringSerde};
/// use kafka_client::Headers;
/// use kafka_streams::dsl::{SessionWindowedSerializer, Window, Windowed};
///
/// let headers = Headers::new();
/// let ctx = SerdeContext::new("sessions", MessageField::Key, &headers);
/// let key = Windowed::new("s1".to_string(), Window::new(1, 2).unwrap());
/// let bytes = SessionWindowedSerializer::new(StringSerde).serialize(&key, &ctx).unwrap();
/// assert_eq!(bytes.unwrap(), b"s1\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionWindowedSerializer<S> {
    inner: S,
}

impl<S> SessionWindowedSerializer<S> {
    /// Writes the keys with `inner`.
    pub fn new(inner: S) -> Self {
        SessionWindowedSerializer { inner }
    }

    /// The key serializer.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The bytes of the key alone, without its window (Kafka's `serializeBaseKey`).
    pub fn serialize_base_key<K>(
        &self,
        data: &Windowed<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError>
    where
        S: Serializer<K>,
    {
        self.inner.serialize(&data.key, ctx)
    }
}

impl<K, S: Serializer<K>> Serializer<Windowed<K>> for SessionWindowedSerializer<S> {
    fn serialize(
        &self,
        data: &Windowed<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let window = data.window;
        key_then_timestamps(&self.inner, &data.key, &[window.end(), window.start()], ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: &'a Windowed<K>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(&data.key, ctx)
    }
}

/// Reads a session-windowed key as Kafka's `SessionWindowedDeserializer`.
#[derive(Debug, Clone, Default)]
pub struct SessionWindowedDeserializer<D> {
    inner: D,
}

impl<D> SessionWindowedDeserializer<D> {
    /// Reads the keys with `inner`.
    pub fn new(inner: D) -> Self {
        SessionWindowedDeserializer { inner }
    }

    /// The key deserializer.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<K, D: Deserializer<K>> Deserializer<Windowed<K>> for SessionWindowedDeserializer<D> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Windowed<K>, SerdeError> {
        session_windowed_from_bytes(&self.inner, data, ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(key_part(data, 2), ctx)
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<K>::reads_headers(&self.inner)
    }
}

/// Both directions of a session-windowed key (Kafka's
/// `WindowedSerdes.SessionWindowedSerde`).
#[derive(Debug, Clone, Default)]
pub struct SessionWindowedSerde<S> {
    inner: S,
}

impl<S> SessionWindowedSerde<S> {
    /// Keys written and read with `inner`.
    pub fn new(inner: S) -> Self {
        SessionWindowedSerde { inner }
    }
}

impl<K, S: Serializer<K>> Serializer<Windowed<K>> for SessionWindowedSerde<S> {
    fn serialize(
        &self,
        data: &Windowed<K>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let window = data.window;
        key_then_timestamps(&self.inner, &data.key, &[window.end(), window.start()], ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: &'a Windowed<K>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(&data.key, ctx)
    }
}

impl<K, S: Deserializer<K>> Deserializer<Windowed<K>> for SessionWindowedSerde<S> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Windowed<K>, SerdeError> {
        session_windowed_from_bytes(&self.inner, data, ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        self.inner.prepare(key_part(data, 2), ctx)
    }

    fn reads_headers(&self) -> bool {
        Deserializer::<K>::reads_headers(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use kafka_client::serde::{BigEndian, StringSerde, UnitSerde};
    use kafka_client::Headers;

    use super::*;

    fn with_ctx<T>(f: impl FnOnce(&SerdeContext<'_>) -> T) -> T {
        let headers = Headers::new();
        f(&SerdeContext::new("counts", MessageField::Key, &headers))
    }

    fn windowed(key: &str, start: i64, end: i64) -> Windowed<String> {
        Windowed::new(key.to_owned(), Window::new(start, end).unwrap())
    }

    fn key_error(error: &SerdeError) -> &WindowedKeyError {
        error
            .downcast_ref::<WindowedKeyError>()
            .unwrap_or_else(|| panic!("not a windowed key error: {error}"))
    }

    #[test]
    fn time_windowed_keys_are_key_then_big_endian_start() {
        with_ctx(|ctx| {
            let serializer = TimeWindowedSerializer::new(StringSerde);
            let key = windowed("a", 0x0102_0304_0506_0708, 0x0102_0304_0506_0710);
            let bytes = serializer.serialize(&key, ctx).unwrap().unwrap();
            assert_eq!(bytes, b"a\x01\x02\x03\x04\x05\x06\x07\x08");
            assert_eq!(
                serializer.serialize_base_key(&key, ctx).unwrap().unwrap(),
                b"a"
            );
        });
    }

    #[test]
    fn session_windowed_keys_are_key_then_end_then_start() {
        with_ctx(|ctx| {
            let serializer = SessionWindowedSerializer::new(BigEndian);
            let key = Windowed::new(9_i32, Window::new(1, 0x0100).unwrap());
            let bytes = serializer.serialize(&key, ctx).unwrap().unwrap();
            assert_eq!(
                bytes,
                [0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            );
            assert_eq!(
                serializer.serialize_base_key(&key, ctx).unwrap().unwrap(),
                [0, 0, 0, 9]
            );
        });
    }

    #[test]
    fn time_windowed_keys_round_trip_with_the_window_size() {
        with_ctx(|ctx| {
            let serde = TimeWindowedSerde::new(StringSerde, Duration::from_millis(60_000)).unwrap();
            for key in [
                windowed("sensor-1", 0, 60_000),
                windowed("", 120_000, 180_000),
            ] {
                let bytes = serde.serialize(&key, ctx).unwrap();
                let back: Windowed<String> = serde.deserialize(bytes.as_deref(), ctx).unwrap();
                assert_eq!(back, key);
            }
            let deserializer =
                TimeWindowedDeserializer::new(StringSerde, Duration::from_secs(60)).unwrap();
            assert_eq!(deserializer.window_size_ms(), 60_000);
            let bytes = TimeWindowedSerializer::new(StringSerde)
                .serialize(&windowed("s", 60_000, 120_000), ctx)
                .unwrap();
            let back: Windowed<String> = deserializer.deserialize(bytes.as_deref(), ctx).unwrap();
            assert_eq!(back, windowed("s", 60_000, 120_000));
        });
    }

    #[test]
    fn time_windowed_ends_saturate_at_the_largest_timestamp() {
        with_ctx(|ctx| {
            let serde = TimeWindowedSerde::new(StringSerde, Duration::from_millis(10)).unwrap();
            let mut bytes = b"k".to_vec();
            bytes.extend_from_slice(&(i64::MAX - 5).to_be_bytes());
            let back: Windowed<String> = serde.deserialize(Some(bytes.as_slice()), ctx).unwrap();
            assert_eq!(back, windowed("k", i64::MAX - 5, i64::MAX));
        });
    }

    #[test]
    fn session_windowed_keys_round_trip() {
        with_ctx(|ctx| {
            let serde = SessionWindowedSerde::new(StringSerde);
            for key in [windowed("sensor-1", 5, 5), windowed("s", 0, 1_000)] {
                let bytes = serde.serialize(&key, ctx).unwrap();
                let back: Windowed<String> = serde.deserialize(bytes.as_deref(), ctx).unwrap();
                assert_eq!(back, key);
            }
            let bytes = SessionWindowedSerializer::new(StringSerde)
                .serialize(&windowed("s", 10, 20), ctx)
                .unwrap();
            let back: Windowed<String> = SessionWindowedDeserializer::new(StringSerde)
                .deserialize(bytes.as_deref(), ctx)
                .unwrap();
            assert_eq!(back, windowed("s", 10, 20));
        });
    }

    #[test]
    fn short_bytes_are_rejected_with_the_count() {
        with_ctx(|ctx| {
            let time = TimeWindowedSerde::new(StringSerde, Duration::from_millis(10)).unwrap();
            let error =
                Deserializer::<Windowed<String>>::deserialize(&time, Some(&[0_u8; 7][..]), ctx)
                    .unwrap_err();
            assert_eq!(
                key_error(&error),
                &WindowedKeyError::TooShort {
                    topic: "counts".into(),
                    field: MessageField::Key,
                    needed: 8,
                    actual: 7
                }
            );
            assert_eq!(
                error.to_string(),
                "windowed key on topic counts has 7 bytes, fewer than the 8 its window timestamps take"
            );
            let session = SessionWindowedSerde::new(StringSerde);
            let error =
                Deserializer::<Windowed<String>>::deserialize(&session, Some(&[0_u8; 15][..]), ctx)
                    .unwrap_err();
            assert!(matches!(
                key_error(&error),
                WindowedKeyError::TooShort {
                    needed: 16,
                    actual: 15,
                    ..
                }
            ));
            let error =
                Deserializer::<Windowed<String>>::deserialize(&session, None, ctx).unwrap_err();
            assert!(matches!(error, SerdeError::UnexpectedNull { .. }));
        });
    }

    #[test]
    fn invalid_windows_in_bytes_are_rejected() {
        with_ctx(|ctx| {
            let mut bytes = b"k".to_vec();
            bytes.extend_from_slice(&(-10_i64).to_be_bytes());
            let time = TimeWindowedSerde::new(StringSerde, Duration::from_millis(5)).unwrap();
            let error =
                Deserializer::<Windowed<String>>::deserialize(&time, Some(bytes.as_slice()), ctx)
                    .unwrap_err();
            assert!(matches!(
                key_error(&error),
                WindowedKeyError::InvalidWindow {
                    source: WindowError::NegativeStart { start_ms: -10 },
                    ..
                }
            ));
            // A session whose end (written first) is before its start.
            let mut bytes = b"k".to_vec();
            bytes.extend_from_slice(&1_i64.to_be_bytes());
            bytes.extend_from_slice(&2_i64.to_be_bytes());
            let session = SessionWindowedSerde::new(StringSerde);
            let error = Deserializer::<Windowed<String>>::deserialize(
                &session,
                Some(bytes.as_slice()),
                ctx,
            )
            .unwrap_err();
            assert!(matches!(
                key_error(&error),
                WindowedKeyError::InvalidWindow {
                    source: WindowError::EndBeforeStart {
                        start_ms: 2,
                        end_ms: 1
                    },
                    ..
                }
            ));
        });
    }

    #[test]
    fn a_null_inner_key_is_an_error() {
        with_ctx(|ctx| {
            let key = Windowed::new((), Window::new(0, 1).unwrap());
            let error = TimeWindowedSerializer::new(UnitSerde)
                .serialize(&key, ctx)
                .unwrap_err();
            assert_eq!(
                key_error(&error),
                &WindowedKeyError::NullInnerKey {
                    topic: "counts".into(),
                    field: MessageField::Key
                }
            );
            let error = SessionWindowedSerde::new(UnitSerde)
                .serialize(&key, ctx)
                .unwrap_err();
            assert!(matches!(
                key_error(&error),
                WindowedKeyError::NullInnerKey { .. }
            ));
        });
    }

    #[test]
    fn window_sizes_below_one_millisecond_are_rejected() {
        assert_eq!(
            TimeWindowedDeserializer::new(StringSerde, Duration::from_micros(999)).map(|_| ()),
            Err(WindowError::NotPositive {
                parameter: "windowSize",
                duration: Duration::from_micros(999)
            })
        );
        assert!(matches!(
            TimeWindowedSerde::new(StringSerde, Duration::MAX),
            Err(WindowError::DurationOverflow { .. })
        ));
    }
}
