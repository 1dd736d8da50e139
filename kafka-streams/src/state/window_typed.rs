//! The typed outer layers of window and session stores (Kafka's
//! `MeteredWindowStore` and `MeteredSessionStore`): keys and values go through
//! kafka-client's serdes, the window bounds are plain milliseconds.
//!
//! The key serde serializes the plain key; the byte-level store appends the window
//! start (or the session end and start) itself, as Kafka's state serdes do. The serdes
//! are told the changelog topic as their topic, as for key-value stores.
//!
//! Windows are returned as `(key, start, value)` and sessions as
//! `(key, start, end, value)`; a window's end is its start plus
//! [`TypedWindowStore::window_size_ms`].

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::Serde;
use kafka_client::Headers;

use super::builder::{StoreContext, StoreKind};
use super::cache::{CacheFlushListener, FlushedEntry};
use super::error::{StateError, StateResult};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::session_store::{SessionEntry, SessionStore};
use super::typed::Codec;
use super::window_builder::SegmentedStoreSpec;
use super::window_cache::{split_session_key, split_window_key};
use super::window_store::{WindowEntry, WindowStore};
use super::StateStore;

/// Typed windows of one key: `(window start, value)`.
pub type TypedWindowFetchIter<'a, V> = Box<dyn Iterator<Item = StateResult<(i64, V)>> + 'a>;

/// Typed windows of several keys: `(key, window start, value)`.
pub type TypedWindowIter<'a, K, V> = Box<dyn Iterator<Item = StateResult<(K, i64, V)>> + 'a>;

/// A window the record cache wrote through: `(key, window start, new value, old
/// value)`.
pub type FlushedWindow<K, V> = (K, i64, Option<V>, Option<V>);

/// A session the record cache wrote through: `(key, start, end, new value, old
/// value)`.
pub type FlushedSession<K, V> = (K, i64, i64, Option<V>, Option<V>);

/// Typed sessions: `(key, session start, session end, value)`.
pub type TypedSessionIter<'a, K, V> = Box<dyn Iterator<Item = StateResult<(K, i64, i64, V)>> + 'a>;

/// Typed read-only queries of a window store: what interactive queries expose
/// (Kafka's `ReadOnlyWindowStore<K, V>`). Time bounds are inclusive window starts.
pub trait QueryableWindowStore<K, V> {
    /// The value of `key` in the window starting at `window_start`, if any.
    fn fetch_window(&self, key: &K, window_start: i64) -> StateResult<Option<V>>;

    /// The windows of `key` starting between `time_from` and `time_to`, oldest first.
    fn fetch(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowFetchIter<'_, V>>;

    /// As [`fetch`](Self::fetch), newest first.
    fn backward_fetch(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowFetchIter<'_, V>>;

    /// Every key's windows starting between `time_from` and `time_to`.
    fn fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<TypedWindowIter<'_, K, V>>;

    /// As [`fetch_all`](Self::fetch_all), in reverse order.
    fn backward_fetch_all(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowIter<'_, K, V>>;

    /// Every window within retention.
    fn all(&self) -> StateResult<TypedWindowIter<'_, K, V>>;

    /// As [`all`](Self::all), in reverse order.
    fn backward_all(&self) -> StateResult<TypedWindowIter<'_, K, V>>;
}

/// Typed read-only queries of a session store (Kafka's `ReadOnlySessionStore<K, V>`).
pub trait QueryableSessionStore<K, V> {
    /// The sessions of `key` ending at or after `earliest_session_end` and starting at
    /// or before `latest_session_start`.
    fn find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>>;

    /// As [`find_sessions`](Self::find_sessions), in reverse order.
    fn backward_find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>>;

    /// Every session of `key` within retention.
    fn fetch(&self, key: &K) -> StateResult<TypedSessionIter<'_, K, V>>;

    /// As [`fetch`](Self::fetch), in reverse order.
    fn backward_fetch(&self, key: &K) -> StateResult<TypedSessionIter<'_, K, V>>;

    /// The aggregate of exactly the session `[start, end]` of `key`, if any.
    fn fetch_session(&self, key: &K, start: i64, end: i64) -> StateResult<Option<V>>;
}

/// The byte-level stack below the serdes, by life-cycle stage.
enum Stack<S: ?Sized> {
    /// Built but not yet initialised by the task.
    Unopened(SegmentedStoreSpec),
    Open(Box<S>),
    Closed,
}

impl<S: ?Sized> Stack<S> {
    fn get(&self, name: &str) -> StateResult<&S> {
        match self {
            Stack::Open(inner) => Ok(inner.as_ref()),
            Stack::Unopened(_) => Err(not_open(name, "not initialized")),
            Stack::Closed => Err(not_open(name, "closed")),
        }
    }

    fn get_mut(&mut self, name: &str) -> StateResult<&mut S> {
        match self {
            Stack::Open(inner) => Ok(inner.as_mut()),
            Stack::Unopened(_) => Err(not_open(name, "not initialized")),
            Stack::Closed => Err(not_open(name, "closed")),
        }
    }

    fn persistent_kind(&self) -> Option<bool> {
        match self {
            Stack::Unopened(spec) => Some(spec.kind == StoreKind::RocksDb),
            Stack::Closed => Some(false),
            Stack::Open(_) => None,
        }
    }
}

fn not_open(name: &str, state: &'static str) -> StateError {
    StateError::NotOpen {
        store: name.to_owned(),
        state,
    }
}

/// A typed window store over a byte-level window store stack.
///
/// Processors reach it with
/// `context.state_store::<TypedWindowStore<K, V>>(name)`.
pub struct TypedWindowStore<K, V> {
    codec: Codec<K, V>,
    stack: Stack<dyn WindowStore>,
    changelog: Option<ChangelogPartition>,
    window_size_ms: i64,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TypedWindowStore<K, V> {
    /// A typed view of an already open byte store of windows of `window_size_ms`;
    /// `serde_topic` is the topic the serdes are told (normally the changelog topic).
    pub fn new(
        inner: Box<dyn WindowStore>,
        window_size_ms: i64,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        serde_topic: impl Into<String>,
    ) -> Self {
        TypedWindowStore {
            codec: Codec {
                name: inner.name().to_owned(),
                serde_topic: serde_topic.into(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            changelog: inner.changelog().cloned(),
            stack: Stack::Open(inner),
            window_size_ms,
            _types: PhantomData,
        }
    }

    /// A store the task opens later through [`StateStore::init`].
    pub(crate) fn unopened(
        spec: SegmentedStoreSpec,
        window_size_ms: i64,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TypedWindowStore {
            codec: Codec {
                name: spec.name.clone(),
                serde_topic: String::new(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            stack: Stack::Unopened(spec),
            changelog: None,
            window_size_ms,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    /// The window size in milliseconds: a window ends (exclusively) at its start plus
    /// this.
    pub fn window_size_ms(&self) -> i64 {
        self.window_size_ms
    }

    /// The byte-level store below the serdes.
    pub fn bytes(&self) -> StateResult<&dyn WindowStore> {
        self.stack.get(&self.codec.name)
    }

    /// The byte-level store below the serdes, mutably.
    pub fn bytes_mut(&mut self) -> StateResult<&mut dyn WindowStore> {
        // Shortens the trait object's `'static` bound, which `&mut` does not do
        // through the `Result` by itself.
        match self.stack.get_mut(&self.codec.name) {
            Ok(inner) => Ok(inner),
            Err(err) => Err(err),
        }
    }

    /// Sets the listener of the windows the record cache writes through (each keyed
    /// by its binary window key; decode it with
    /// [`decode_flushed`](Self::decode_flushed)), with the previous values if
    /// `send_old_values`. Returns `false` if the store has no cache.
    pub fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> StateResult<bool> {
        Ok(self
            .bytes_mut()?
            .set_flush_listener(listener, send_old_values))
    }

    /// A window the record cache wrote through, typed: `(key, window start, new
    /// value, old value)`.
    pub fn decode_flushed(&self, entry: &FlushedEntry) -> StateResult<FlushedWindow<K, V>> {
        let (key, start) = split_window_key(&entry.key);
        let value = |v: Option<&[u8]>| v.map(|v| self.codec.value(v)).transpose();
        Ok((
            self.codec.key(key)?,
            start,
            value(entry.new_value.as_deref())?,
            value(entry.old_value.as_deref())?,
        ))
    }

    /// Sets the value of `key` in the window starting at `window_start`. A value the
    /// serde turns into null deletes it, as in Kafka.
    pub fn put(&mut self, key: &K, window_start: i64, value: &V) -> StateResult<()> {
        let key = self.codec.key_bytes(key)?;
        let value = self.codec.value_bytes(value)?;
        let inner = self.stack.get_mut(&self.codec.name)?;
        inner.put(&key, window_start, value.as_deref())
    }

    /// The value of `key` in the window starting at `window_start`, if any.
    pub fn fetch_window(&self, key: &K, window_start: i64) -> StateResult<Option<V>> {
        let key = self.codec.key_bytes(key)?;
        match self.bytes()?.fetch_window(&key, window_start)? {
            Some(value) => Ok(Some(self.codec.value(&value)?)),
            None => Ok(None),
        }
    }

    /// The windows of `key` starting between `time_from` and `time_to` (inclusive),
    /// oldest first.
    pub fn fetch(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowFetchIter<'_, V>> {
        let key = self.codec.key_bytes(key)?;
        let iter = self.bytes()?.fetch(&key, time_from, time_to)?;
        Ok(self.typed_windows(iter))
    }

    /// As [`fetch`](Self::fetch), newest first.
    pub fn backward_fetch(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowFetchIter<'_, V>> {
        let key = self.codec.key_bytes(key)?;
        let iter = self.bytes()?.backward_fetch(&key, time_from, time_to)?;
        Ok(self.typed_windows(iter))
    }

    /// Every key's windows starting between `time_from` and `time_to` (inclusive).
    pub fn fetch_all(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowIter<'_, K, V>> {
        let iter = self.bytes()?.fetch_all(time_from, time_to)?;
        Ok(self.typed_entries(iter))
    }

    /// As [`fetch_all`](Self::fetch_all), reaching one millisecond further back: the
    /// bound of Kafka's time-ordered window store, which on-window-close aggregations
    /// read their closed windows from ([`WindowStore::fetch_all_closed_windows`]).
    pub(crate) fn fetch_all_closed_windows(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowIter<'_, K, V>> {
        let iter = self.bytes()?.fetch_all_closed_windows(time_from, time_to)?;
        Ok(self.typed_entries(iter))
    }

    /// As [`fetch_all`](Self::fetch_all), in reverse order.
    pub fn backward_fetch_all(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowIter<'_, K, V>> {
        let iter = self.bytes()?.backward_fetch_all(time_from, time_to)?;
        Ok(self.typed_entries(iter))
    }

    /// Every window within retention.
    pub fn all(&self) -> StateResult<TypedWindowIter<'_, K, V>> {
        let iter = self.bytes()?.all()?;
        Ok(self.typed_entries(iter))
    }

    /// As [`all`](Self::all), in reverse order.
    pub fn backward_all(&self) -> StateResult<TypedWindowIter<'_, K, V>> {
        let iter = self.bytes()?.backward_all()?;
        Ok(self.typed_entries(iter))
    }

    fn typed_windows<'a>(
        &'a self,
        iter: super::WindowFetchIter<'a>,
    ) -> TypedWindowFetchIter<'a, V> {
        Box::new(iter.map(move |item| {
            let (start, value) = item?;
            Ok((start, self.codec.value(&value)?))
        }))
    }

    fn typed_entries<'a>(&'a self, iter: super::WindowEntryIter<'a>) -> TypedWindowIter<'a, K, V> {
        Box::new(iter.map(move |item| {
            let WindowEntry { key, start, value } = item?;
            Ok((self.codec.key(&key)?, start, self.codec.value(&value)?))
        }))
    }
}

impl<K: 'static, V: 'static> QueryableWindowStore<K, V> for TypedWindowStore<K, V> {
    fn fetch_window(&self, key: &K, window_start: i64) -> StateResult<Option<V>> {
        TypedWindowStore::fetch_window(self, key, window_start)
    }

    fn fetch(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowFetchIter<'_, V>> {
        TypedWindowStore::fetch(self, key, time_from, time_to)
    }

    fn backward_fetch(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowFetchIter<'_, V>> {
        TypedWindowStore::backward_fetch(self, key, time_from, time_to)
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<TypedWindowIter<'_, K, V>> {
        TypedWindowStore::fetch_all(self, time_from, time_to)
    }

    fn backward_fetch_all(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<TypedWindowIter<'_, K, V>> {
        TypedWindowStore::backward_fetch_all(self, time_from, time_to)
    }

    fn all(&self) -> StateResult<TypedWindowIter<'_, K, V>> {
        TypedWindowStore::all(self)
    }

    fn backward_all(&self) -> StateResult<TypedWindowIter<'_, K, V>> {
        TypedWindowStore::backward_all(self)
    }
}

impl<K: 'static, V: 'static> StateStore for TypedWindowStore<K, V> {
    fn name(&self) -> &str {
        &self.codec.name
    }

    fn flush(&mut self) -> crate::Result<()> {
        Ok(self.bytes_mut()?.flush()?)
    }

    fn close(&mut self) -> crate::Result<()> {
        if let Stack::Open(inner) = &mut self.stack {
            inner.close()?;
        }
        self.stack = Stack::Closed;
        Ok(())
    }

    fn persistent(&self) -> bool {
        match &self.stack {
            Stack::Open(inner) => inner.persistent(),
            other => other.persistent_kind().unwrap_or(false),
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn init(&mut self, context: &StoreContext) -> crate::Result<()> {
        if let Stack::Unopened(spec) = &self.stack {
            let opened = spec.open_window(context)?;
            self.codec.serde_topic = opened.serde_topic;
            self.changelog = opened.changelog;
            self.stack = Stack::Open(opened.store);
        }
        Ok(())
    }

    fn persistence(&mut self) -> Option<&mut dyn RestorableStore> {
        match self.stack {
            Stack::Open(_) => Some(self),
            Stack::Unopened(_) | Stack::Closed => None,
        }
    }
}

/// Passes everything to the byte-level stack, except the changelog partition, which
/// the typed layer learnt when it opened the stack.
impl<K: 'static, V: 'static> RestorableStore for TypedWindowStore<K, V> {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.changelog.as_ref()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.bytes().ok()?.checkpointed_offset()
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        self.bytes_mut()?.restore_batch(records)
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.bytes_mut()?.checkpoint(next_offset)
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.bytes_mut()?.remove_checkpoint()
    }
}

/// A typed session store over a byte-level session store stack.
///
/// Processors reach it with
/// `context.state_store::<TypedSessionStore<K, V>>(name)`.
pub struct TypedSessionStore<K, V> {
    codec: Codec<K, V>,
    stack: Stack<dyn SessionStore>,
    changelog: Option<ChangelogPartition>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TypedSessionStore<K, V> {
    /// A typed view of an already open byte store; `serde_topic` is the topic the
    /// serdes are told (normally the changelog topic).
    pub fn new(
        inner: Box<dyn SessionStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        serde_topic: impl Into<String>,
    ) -> Self {
        TypedSessionStore {
            codec: Codec {
                name: inner.name().to_owned(),
                serde_topic: serde_topic.into(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            changelog: inner.changelog().cloned(),
            stack: Stack::Open(inner),
            _types: PhantomData,
        }
    }

    /// A store the task opens later through [`StateStore::init`].
    pub(crate) fn unopened(
        spec: SegmentedStoreSpec,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TypedSessionStore {
            codec: Codec {
                name: spec.name.clone(),
                serde_topic: String::new(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            stack: Stack::Unopened(spec),
            changelog: None,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    /// The byte-level store below the serdes.
    pub fn bytes(&self) -> StateResult<&dyn SessionStore> {
        self.stack.get(&self.codec.name)
    }

    /// The byte-level store below the serdes, mutably.
    pub fn bytes_mut(&mut self) -> StateResult<&mut dyn SessionStore> {
        // Shortens the trait object's `'static` bound, which `&mut` does not do
        // through the `Result` by itself.
        match self.stack.get_mut(&self.codec.name) {
            Ok(inner) => Ok(inner),
            Err(err) => Err(err),
        }
    }

    /// Sets the listener of the sessions the record cache writes through (each keyed
    /// by its binary session key; decode it with
    /// [`decode_flushed`](Self::decode_flushed)), with the previous values if
    /// `send_old_values`. Returns `false` if the store has no cache.
    pub fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> StateResult<bool> {
        Ok(self
            .bytes_mut()?
            .set_flush_listener(listener, send_old_values))
    }

    /// A session the record cache wrote through, typed: `(key, start, end, new
    /// value, old value)`; a new value `None` is a removed session.
    pub fn decode_flushed(&self, entry: &FlushedEntry) -> StateResult<FlushedSession<K, V>> {
        let (key, start, end) = split_session_key(&entry.key);
        let value = |v: Option<&[u8]>| v.map(|v| self.codec.value(v)).transpose();
        Ok((
            self.codec.key(key)?,
            start,
            end,
            value(entry.new_value.as_deref())?,
            value(entry.old_value.as_deref())?,
        ))
    }

    /// Every key's sessions ending from `earliest_session_end` to `latest_session_end`
    /// (inclusive), in Kafka's time-ordered order
    /// ([`SessionStore::find_sessions_ending_between`]): the sessions that
    /// on-window-close aggregations emit.
    pub(crate) fn find_sessions_ending_between(
        &self,
        earliest_session_end: i64,
        latest_session_end: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>> {
        let iter = self
            .bytes()?
            .find_sessions_ending_between(earliest_session_end, latest_session_end)?;
        Ok(self.typed(iter))
    }

    /// Sets the aggregate of the session `[start, end]` of `key`. A value the serde
    /// turns into null removes the session.
    pub fn put(&mut self, key: &K, start: i64, end: i64, value: &V) -> StateResult<()> {
        let key = self.codec.key_bytes(key)?;
        let value = self.codec.value_bytes(value)?;
        let inner = self.stack.get_mut(&self.codec.name)?;
        inner.put(&key, start, end, value.as_deref())
    }

    /// Removes the session `[start, end]` of `key`.
    pub fn remove(&mut self, key: &K, start: i64, end: i64) -> StateResult<()> {
        let key = self.codec.key_bytes(key)?;
        let inner = self.stack.get_mut(&self.codec.name)?;
        inner.remove(&key, start, end)
    }

    /// The aggregate of exactly the session `[start, end]` of `key`, if any.
    pub fn fetch_session(&self, key: &K, start: i64, end: i64) -> StateResult<Option<V>> {
        let key = self.codec.key_bytes(key)?;
        match self.bytes()?.fetch_session(&key, start, end)? {
            Some(value) => Ok(Some(self.codec.value(&value)?)),
            None => Ok(None),
        }
    }

    /// The sessions of `key` ending at or after `earliest_session_end` and starting at
    /// or before `latest_session_start`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>> {
        let key = self.codec.key_bytes(key)?;
        let iter = self
            .bytes()?
            .find_sessions(&key, earliest_session_end, latest_session_start)?;
        Ok(self.typed(iter))
    }

    /// As [`find_sessions`](Self::find_sessions), in reverse order.
    pub fn backward_find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>> {
        let key = self.codec.key_bytes(key)?;
        let iter = self.bytes()?.backward_find_sessions(
            &key,
            earliest_session_end,
            latest_session_start,
        )?;
        Ok(self.typed(iter))
    }

    /// Every session of `key` within retention.
    pub fn fetch(&self, key: &K) -> StateResult<TypedSessionIter<'_, K, V>> {
        let key = self.codec.key_bytes(key)?;
        let iter = self.bytes()?.fetch(&key)?;
        Ok(self.typed(iter))
    }

    /// As [`fetch`](Self::fetch), in reverse order.
    pub fn backward_fetch(&self, key: &K) -> StateResult<TypedSessionIter<'_, K, V>> {
        let key = self.codec.key_bytes(key)?;
        let iter = self.bytes()?.backward_fetch(&key)?;
        Ok(self.typed(iter))
    }

    fn typed<'a>(&'a self, iter: super::SessionIter<'a>) -> TypedSessionIter<'a, K, V> {
        Box::new(iter.map(move |item| {
            let SessionEntry {
                key,
                start,
                end,
                value,
            } = item?;
            Ok((self.codec.key(&key)?, start, end, self.codec.value(&value)?))
        }))
    }
}

impl<K: 'static, V: 'static> QueryableSessionStore<K, V> for TypedSessionStore<K, V> {
    fn find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>> {
        TypedSessionStore::find_sessions(self, key, earliest_session_end, latest_session_start)
    }

    fn backward_find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<TypedSessionIter<'_, K, V>> {
        TypedSessionStore::backward_find_sessions(
            self,
            key,
            earliest_session_end,
            latest_session_start,
        )
    }

    fn fetch(&self, key: &K) -> StateResult<TypedSessionIter<'_, K, V>> {
        TypedSessionStore::fetch(self, key)
    }

    fn backward_fetch(&self, key: &K) -> StateResult<TypedSessionIter<'_, K, V>> {
        TypedSessionStore::backward_fetch(self, key)
    }

    fn fetch_session(&self, key: &K, start: i64, end: i64) -> StateResult<Option<V>> {
        TypedSessionStore::fetch_session(self, key, start, end)
    }
}

impl<K: 'static, V: 'static> StateStore for TypedSessionStore<K, V> {
    fn name(&self) -> &str {
        &self.codec.name
    }

    fn flush(&mut self) -> crate::Result<()> {
        Ok(self.bytes_mut()?.flush()?)
    }

    fn close(&mut self) -> crate::Result<()> {
        if let Stack::Open(inner) = &mut self.stack {
            inner.close()?;
        }
        self.stack = Stack::Closed;
        Ok(())
    }

    fn persistent(&self) -> bool {
        match &self.stack {
            Stack::Open(inner) => inner.persistent(),
            other => other.persistent_kind().unwrap_or(false),
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn init(&mut self, context: &StoreContext) -> crate::Result<()> {
        if let Stack::Unopened(spec) = &self.stack {
            let opened = spec.open_session(context)?;
            self.codec.serde_topic = opened.serde_topic;
            self.changelog = opened.changelog;
            self.stack = Stack::Open(opened.store);
        }
        Ok(())
    }

    fn persistence(&mut self) -> Option<&mut dyn RestorableStore> {
        match self.stack {
            Stack::Open(_) => Some(self),
            Stack::Unopened(_) | Stack::Closed => None,
        }
    }
}

/// Passes everything to the byte-level stack, except the changelog partition.
impl<K: 'static, V: 'static> RestorableStore for TypedSessionStore<K, V> {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.changelog.as_ref()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.bytes().ok()?.checkpointed_offset()
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        self.bytes_mut()?.restore_batch(records)
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.bytes_mut()?.checkpoint(next_offset)
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.bytes_mut()?.remove_checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::common::TaskId;
    use crate::state::logging::RecordingChangelogWriter;
    use crate::state::{SessionStoreBuilder, StoreBuilder, WindowStoreBuilder};
    use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};

    fn context(dir: &std::path::Path, writer: &RecordingChangelogWriter) -> StoreContext {
        StoreContext::new(
            "app",
            dir,
            TaskId {
                subtopology: 0,
                partition: 1,
            },
        )
        .with_changelog_writer(Arc::new(writer.clone()))
    }

    /// Builds, opens and downcasts the builder's store for task 0_1.
    fn open<T: 'static>(builder: &dyn StoreBuilder, context: &StoreContext) -> Box<dyn StateStore> {
        let mut store = builder
            .build(TaskId {
                subtopology: 0,
                partition: 1,
            })
            .unwrap();
        store.init(context).unwrap();
        assert!(store.as_any_mut().downcast_mut::<T>().is_some());
        store
    }

    #[test]
    fn built_window_store_logs_restores_and_checkpoints_through_the_state_store() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RecordingChangelogWriter::new();
        let builder = WindowStoreBuilder::<String, i64>::new(
            "counts",
            Duration::from_secs(600),
            Duration::from_secs(60),
        )
        .unwrap();
        let mut boxed =
            open::<TypedWindowStore<String, i64>>(&builder, &context(dir.path(), &writer));
        assert!(boxed.persistent());
        {
            let store = boxed
                .as_any_mut()
                .downcast_mut::<TypedWindowStore<String, i64>>()
                .unwrap();
            assert_eq!(store.window_size_ms(), 60_000);
            let sensor = "sensor-1".to_string();
            store.put(&sensor, 0, &3).unwrap();
            store.put(&sensor, 60_000, &5).unwrap();
            store.put(&"sensor-2".to_string(), 60_000, &7).unwrap();
            assert_eq!(store.fetch_window(&sensor, 60_000).unwrap(), Some(5));
            let windows: Vec<(i64, i64)> = store
                .fetch(&sensor, 0, 60_000)
                .unwrap()
                .collect::<StateResult<_>>()
                .unwrap();
            assert_eq!(windows, vec![(0, 3), (60_000, 5)]);
            let backward: Vec<(i64, i64)> = store
                .backward_fetch(&sensor, 0, 60_000)
                .unwrap()
                .collect::<StateResult<_>>()
                .unwrap();
            assert_eq!(backward, vec![(60_000, 5), (0, 3)]);
            let all: Vec<(String, i64, i64)> =
                store.all().unwrap().collect::<StateResult<_>>().unwrap();
            assert_eq!(
                all,
                vec![
                    ("sensor-1".into(), 0, 3),
                    ("sensor-1".into(), 60_000, 5),
                    ("sensor-2".into(), 60_000, 7)
                ]
            );
            assert_eq!(
                store.changelog().map(|c| c.topic.as_str()),
                Some("app-counts-changelog")
            );
        }
        let logged = writer.take();
        assert_eq!(logged.len(), 3);
        assert!(logged
            .iter()
            .all(|r| r.topic == "app-counts-changelog" && r.partition == 1));
        boxed.flush().unwrap();
        boxed.persistence().unwrap().checkpoint(3).unwrap();
        boxed.close().unwrap();

        // Reopened: the checkpoint and data are there.
        let mut reopened =
            open::<TypedWindowStore<String, i64>>(&builder, &context(dir.path(), &writer));
        assert_eq!(
            reopened.persistence().unwrap().checkpointed_offset(),
            Some(3)
        );
        let store = reopened
            .as_any_mut()
            .downcast_mut::<TypedWindowStore<String, i64>>()
            .unwrap();
        // Through the query trait, as interactive queries see it.
        let queryable: &dyn QueryableWindowStore<String, i64> = &*store;
        assert_eq!(
            queryable.fetch_window(&"sensor-2".into(), 60_000).unwrap(),
            Some(7)
        );
        let latest: Vec<(String, i64, i64)> = queryable
            .backward_fetch_all(0, 60_000)
            .unwrap()
            .collect::<StateResult<_>>()
            .unwrap();
        assert_eq!(
            latest,
            vec![
                ("sensor-2".into(), 60_000, 7),
                ("sensor-1".into(), 60_000, 5),
                ("sensor-1".into(), 0, 3)
            ]
        );

        // An in-memory store restores from the logged records.
        let mem_builder = WindowStoreBuilder::<String, i64>::new(
            "counts",
            Duration::from_secs(600),
            Duration::from_secs(60),
        )
        .unwrap()
        .in_memory();
        let mut mem =
            open::<TypedWindowStore<String, i64>>(&mem_builder, &context(dir.path(), &writer));
        assert!(!mem.persistent());
        let records: Vec<RestoreRecord<'_>> = logged
            .iter()
            .enumerate()
            .map(|(i, r)| RestoreRecord {
                key: &r.key,
                value: r.value.as_deref(),
                offset: i as i64,
            })
            .collect();
        let persistence = mem.persistence().unwrap();
        assert_eq!(persistence.checkpointed_offset(), None);
        persistence.restore_batch(&records).unwrap();
        let mem = mem
            .as_any_mut()
            .downcast_mut::<TypedWindowStore<String, i64>>()
            .unwrap();
        let restored: Vec<(String, i64, i64)> =
            mem.all().unwrap().collect::<StateResult<_>>().unwrap();
        let original: Vec<(String, i64, i64)> =
            store.all().unwrap().collect::<StateResult<_>>().unwrap();
        assert_eq!(restored, original);
    }

    #[test]
    fn typed_session_store_merges_and_null_values_remove() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RecordingChangelogWriter::new();
        let builder = SessionStoreBuilder::<String, i64>::with_serdes(
            "visits",
            Duration::from_secs(600),
            Arc::new(StringSerde),
            Arc::new(BigEndian),
        )
        .unwrap()
        .with_logging_disabled();
        let mut boxed =
            open::<TypedSessionStore<String, i64>>(&builder, &context(dir.path(), &writer));
        assert!(boxed.persistence().unwrap().changelog().is_none());
        let store = boxed
            .as_any_mut()
            .downcast_mut::<TypedSessionStore<String, i64>>()
            .unwrap();
        let user = "alice".to_string();
        store.put(&user, 0, 1_000, &1).unwrap();
        store.put(&user, 5_000, 6_000, &2).unwrap();
        let found: Vec<(String, i64, i64, i64)> = store
            .find_sessions(&user, 1_000, 5_000)
            .unwrap()
            .collect::<StateResult<_>>()
            .unwrap();
        assert_eq!(
            found,
            vec![(user.clone(), 0, 1_000, 1), (user.clone(), 5_000, 6_000, 2)]
        );
        store.remove(&user, 0, 1_000).unwrap();
        store.remove(&user, 5_000, 6_000).unwrap();
        store.put(&user, 0, 6_000, &3).unwrap();
        assert_eq!(store.fetch_session(&user, 0, 6_000).unwrap(), Some(3));
        let backward: Vec<(String, i64, i64, i64)> = store
            .backward_fetch(&user)
            .unwrap()
            .collect::<StateResult<_>>()
            .unwrap();
        assert_eq!(backward, vec![(user.clone(), 0, 6_000, 3)]);
        let queryable: &dyn QueryableSessionStore<String, i64> = &*store;
        assert_eq!(queryable.fetch_session(&user, 0, 6_000).unwrap(), Some(3));
        assert_eq!(
            queryable
                .find_sessions(&user, 7_000, 8_000)
                .unwrap()
                .count(),
            0
        );
        assert!(writer.take().is_empty(), "logging disabled");

        let mut optional: TypedSessionStore<String, Option<i64>> = TypedSessionStore::new(
            Box::new(
                crate::state::SegmentedSessionStore::in_memory("opt", None, 600_000, 60_000)
                    .unwrap(),
            ),
            Arc::new(StringSerde),
            Arc::new(OptionSerde(BigEndian)),
            "app-opt-changelog",
        );
        optional.put(&user, 0, 10, &Some(4)).unwrap();
        assert_eq!(optional.fetch(&user).unwrap().count(), 1);
        optional.put(&user, 0, 10, &None).unwrap();
        assert_eq!(optional.fetch(&user).unwrap().count(), 0);
        StateStore::close(&mut optional).unwrap();
        assert!(matches!(
            optional.fetch(&user),
            Err(StateError::NotOpen {
                state: "closed",
                ..
            })
        ));
    }
}
