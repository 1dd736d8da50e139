//! Interactive queries over the stores of the local instance (Kafka's
//! `CompositeReadOnlyKeyValueStore`, `CompositeReadOnlyWindowStore` and
//! `CompositeReadOnlySessionStore` behind `KafkaStreams.store`).
//!
//! A query visits every local task that owns the store (and the global store of that
//! name, if it is one), each under its stream thread's lock, so it reads what the
//! task's processors would read (record cache included) and never races a write. A
//! task still restoring its changelog makes the query fail with
//! [`InvalidStoreReason::Migrating`] rather than answer from incomplete state.

use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use super::streams::{ClientShared, State};
use super::thread::lock;
use crate::error::{InvalidStoreReason, Result, StreamsError};
use crate::state::{
    queryable_key_value_store, QueryableKeyValueStore, StateError, StateResult, StateStore,
    TypedSessionIter, TypedSessionStore, TypedWindowFetchIter, TypedWindowIter, TypedWindowStore,
    ValueAndTimestamp,
};
use crate::windowed::{Window, Windowed};

/// Read-only, typed access to a key-value store across the local instance's tasks
/// (Kafka's `ReadOnlyKeyValueStore` as returned by `KafkaStreams.store`).
///
/// A table's or aggregation's store (a
/// [`TimestampedKeyValueStore`](crate::state::TimestampedKeyValueStore)) reads as plain
/// values `V` (Kafka's `keyValueStore()` query type), or with `V` =
/// [`ValueAndTimestamp`] as its rows with their timestamps (`timestampedKeyValueStore()`).
///
/// Get one with [`KafkaStreams::store`](super::KafkaStreams::store). Every call
/// fails with [`StreamsError::InvalidStateStore`] while the client is not running, or
/// with the `Migrating` reason ([`StreamsError::is_store_migrating`]) while a local
/// task of the store is restoring or being reassigned; retry those.
///
/// ```no_run
/// # use kafka_streams::runtime::KafkaStreams;
/// # fn f(streams: &KafkaStreams) -> kafka_streams::Result<()> {
/// let counts = streams.store::<String, i64>("word-counts")?;
/// println!("kafka: {:?}", counts.get(&"kafka".to_string())?);
/// for (word, n) in counts.all()? {
///     println!("{word}: {n}");
/// }
/// # Ok(()) }
/// ```
pub struct ReadOnlyKeyValueStore<K, V> {
    query: StoreQuery,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for ReadOnlyKeyValueStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyKeyValueStore {
            query: self.query.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn new(name: String, subtopology: Option<usize>, shared: Arc<ClientShared>) -> Self {
        ReadOnlyKeyValueStore {
            query: StoreQuery {
                name,
                subtopology,
                shared,
                stale: false,
            },
            _types: PhantomData,
        }
    }

    /// Whether the handle also reads standby and restoring stores (see
    /// [`StoreQueryParameters::enable_stale_stores`]).
    pub(crate) fn with_stale_stores(mut self, stale: bool) -> Self {
        self.query.stale = stale;
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.query.name
    }

    /// The value of `key` in whichever local task holds it.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let mut found = None;
        self.visit(|store| {
            if found.is_none() {
                found = store.get(key)?;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The entries with keys between `from` and `to`, store by store, each in the
    /// order of its serialized keys.
    pub fn range(&self, from: Bound<&K>, to: Bound<&K>) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        self.visit(|store| {
            for entry in store.range(from, to)? {
                out.push(entry?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every entry of every local task's store.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        self.visit(|store| {
            for entry in store.all()? {
                out.push(entry?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The sum of the local stores' estimates of their number of keys.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        let mut total = 0u64;
        self.visit(|store| {
            total = total.saturating_add(store.approximate_num_entries()?);
            Ok(())
        })?;
        Ok(total)
    }

    /// Runs `f` on every local instance of the store as a typed key-value store (a
    /// timestamped one read without its timestamps, as Kafka's `keyValueStore()`).
    fn visit(
        &self,
        mut f: impl FnMut(&dyn QueryableKeyValueStore<K, V>) -> std::result::Result<(), StateError>,
    ) -> Result<()> {
        self.query.visit(|store| {
            let typed = queryable_key_value_store::<K, V>(store.as_any_mut()).ok_or_else(|| {
                self.query.wrong_type(format!(
                    "a key-value store of {} to {}",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ))
            })?;
            f(&*typed).map_err(|e| self.query.state_error(e))
        })
    }
}

/// Read-only, typed access to a window store across the local instance's tasks
/// (Kafka's `ReadOnlyWindowStore` as returned by `KafkaStreams.store` with
/// `QueryableStoreTypes.windowStore()`).
///
/// Get one with [`KafkaStreams::window_store`](super::KafkaStreams::window_store).
/// `V` is the aggregate's type (`i64` for `count`): a windowed aggregation's store
/// holds [`ValueAndTimestamp<V>`] and the handle returns the value without its
/// timestamp, as Kafka's `windowStore()` query type does; a window store of plain `V`
/// values (built with the store builders) is read as it is. Time bounds are
/// inclusive window starts, in epoch milliseconds; each window is returned with its
/// end (its start plus the store's window size). Errors as for
/// [`ReadOnlyKeyValueStore`]: retry while [`StreamsError::is_store_migrating`].
///
/// ```no_run
/// # use kafka_streams::runtime::KafkaStreams;
/// # fn f(streams: &KafkaStreams, now_ms: i64) -> kafka_streams::Result<()> {
/// let counts = streams.window_store::<String, i64>("clicks-per-minute")?;
/// for (window, n) in counts.fetch(&"alice".to_string(), now_ms - 3_600_000, now_ms)? {
///     println!("{} .. {}: {n}", window.start(), window.end());
/// }
/// # Ok(()) }
/// ```
pub struct ReadOnlyWindowStore<K, V> {
    query: StoreQuery,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for ReadOnlyWindowStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyWindowStore {
            query: self.query.clone(),
            _types: PhantomData,
        }
    }
}

/// One local window store, as a windowed aggregation keeps it (values with their
/// timestamps) or as a store builder makes it (plain values).
enum LocalWindowStore<'a, K, V> {
    Timestamped(&'a TypedWindowStore<K, ValueAndTimestamp<V>>),
    Plain(&'a TypedWindowStore<K, V>),
}

impl<'a, K: 'static, V: 'static> LocalWindowStore<'a, K, V> {
    fn window_size_ms(&self) -> i64 {
        match self {
            LocalWindowStore::Timestamped(store) => store.window_size_ms(),
            LocalWindowStore::Plain(store) => store.window_size_ms(),
        }
    }

    fn fetch_window(&self, key: &K, window_start: i64) -> StateResult<Option<V>> {
        match self {
            LocalWindowStore::Timestamped(store) => Ok(store
                .fetch_window(key, window_start)?
                .map(|stamped| stamped.value)),
            LocalWindowStore::Plain(store) => store.fetch_window(key, window_start),
        }
    }

    fn fetch(&self, key: &K, from: i64, to: i64) -> StateResult<TypedWindowFetchIter<'a, V>> {
        match self {
            LocalWindowStore::Timestamped(store) => {
                Ok(Box::new(store.fetch(key, from, to)?.map(|item| {
                    item.map(|(start, stamped)| (start, stamped.value))
                })))
            }
            LocalWindowStore::Plain(store) => store.fetch(key, from, to),
        }
    }

    fn fetch_all(&self, from: i64, to: i64) -> StateResult<TypedWindowIter<'a, K, V>> {
        match self {
            LocalWindowStore::Timestamped(store) => Ok(Self::unstamped(store.fetch_all(from, to)?)),
            LocalWindowStore::Plain(store) => store.fetch_all(from, to),
        }
    }

    fn all(&self) -> StateResult<TypedWindowIter<'a, K, V>> {
        match self {
            LocalWindowStore::Timestamped(store) => Ok(Self::unstamped(store.all()?)),
            LocalWindowStore::Plain(store) => store.all(),
        }
    }

    fn unstamped(iter: TypedWindowIter<'a, K, ValueAndTimestamp<V>>) -> TypedWindowIter<'a, K, V> {
        Box::new(iter.map(|item| item.map(|(key, start, stamped)| (key, start, stamped.value))))
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    pub(crate) fn new(name: String, subtopology: Option<usize>, shared: Arc<ClientShared>) -> Self {
        ReadOnlyWindowStore {
            query: StoreQuery {
                name,
                subtopology,
                shared,
                stale: false,
            },
            _types: PhantomData,
        }
    }

    /// Whether the handle also reads standby and restoring stores (see
    /// [`StoreQueryParameters::enable_stale_stores`]).
    pub(crate) fn with_stale_stores(mut self, stale: bool) -> Self {
        self.query.stale = stale;
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.query.name
    }

    /// The value of `key` in the window starting at `window_start`, if any (Kafka's
    /// `fetch(key, time)`).
    pub fn fetch_window(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        let mut found = None;
        let query = &self.query;
        self.visit(|store| {
            if found.is_none() {
                found = query.checked(store.fetch_window(key, window_start))?;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The windows of `key` starting between `time_from` and `time_to` (both
    /// inclusive), oldest first (Kafka's `fetch(key, timeFrom, timeTo)`).
    pub fn fetch(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(Window, V)>> {
        let mut out = Vec::new();
        let query = &self.query;
        self.visit(|store| {
            let size = store.window_size_ms();
            for item in query.checked(store.fetch(key, time_from, time_to))? {
                let (start, value) = query.checked(item)?;
                out.push((query.window(start, size)?, value));
            }
            Ok(())
        })?;
        // One task holds a key; sorting keeps "oldest first" should several answer.
        out.sort_by_key(|(window, _)| window.start());
        Ok(out)
    }

    /// Every key's windows starting between `time_from` and `time_to` (both
    /// inclusive), store by store (Kafka's `fetchAll(timeFrom, timeTo)`).
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        let query = &self.query;
        self.visit(|store| {
            let size = store.window_size_ms();
            for item in query.checked(store.fetch_all(time_from, time_to))? {
                let (key, start, value) = query.checked(item)?;
                out.push((Windowed::new(key, query.window(start, size)?), value));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every window within retention of every local task's store (Kafka's `all()`).
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        let query = &self.query;
        self.visit(|store| {
            let size = store.window_size_ms();
            for item in query.checked(store.all())? {
                let (key, start, value) = query.checked(item)?;
                out.push((Windowed::new(key, query.window(start, size)?), value));
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn visit(&self, mut f: impl FnMut(&LocalWindowStore<'_, K, V>) -> Result<()>) -> Result<()> {
        self.query.visit(|store| {
            let any = store.as_any_mut();
            let local = if let Some(stamped) =
                any.downcast_ref::<TypedWindowStore<K, ValueAndTimestamp<V>>>()
            {
                LocalWindowStore::Timestamped(stamped)
            } else if let Some(plain) = any.downcast_ref::<TypedWindowStore<K, V>>() {
                LocalWindowStore::Plain(plain)
            } else {
                return Err(self.query.wrong_type(format!(
                    "a window store of {} to {}",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                )));
            };
            f(&local)
        })
    }
}

/// Read-only, typed access to a session store across the local instance's tasks
/// (Kafka's `ReadOnlySessionStore` as returned by `KafkaStreams.store` with
/// `QueryableStoreTypes.sessionStore()`).
///
/// Get one with [`KafkaStreams::session_store`](super::KafkaStreams::session_store).
/// `V` is the aggregate's type (`i64` for `count`). Sessions are returned as the
/// windowed key (its window from the session's first to its last record, both
/// inclusive) and the aggregate. Errors as for [`ReadOnlyKeyValueStore`].
pub struct ReadOnlySessionStore<K, V> {
    query: StoreQuery,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for ReadOnlySessionStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlySessionStore {
            query: self.query.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> {
    pub(crate) fn new(name: String, subtopology: Option<usize>, shared: Arc<ClientShared>) -> Self {
        ReadOnlySessionStore {
            query: StoreQuery {
                name,
                subtopology,
                shared,
                stale: false,
            },
            _types: PhantomData,
        }
    }

    /// Whether the handle also reads standby and restoring stores (see
    /// [`StoreQueryParameters::enable_stale_stores`]).
    pub(crate) fn with_stale_stores(mut self, stale: bool) -> Self {
        self.query.stale = stale;
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.query.name
    }

    /// Every session of `key` within retention, by end then start, oldest first
    /// (Kafka's `fetch(key)`).
    pub fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        self.sessions(|store| store.fetch(key))
    }

    /// The sessions of `key` ending at or after `earliest_session_end` and starting
    /// at or before `latest_session_start`, by end then start (Kafka's
    /// `findSessions`).
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        self.sessions(|store| store.find_sessions(key, earliest_session_end, latest_session_start))
    }

    /// The aggregate of exactly the session `[start, end]` of `key`, if any (Kafka's
    /// `fetchSession`).
    pub fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>> {
        let mut found = None;
        let query = &self.query;
        self.visit(|store| {
            if found.is_none() {
                found = query.checked(store.fetch_session(key, start, end))?;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The sessions `query` finds in every local store, by end then start.
    fn sessions(
        &self,
        query: impl for<'a> Fn(&'a TypedSessionStore<K, V>) -> StateResult<TypedSessionIter<'a, K, V>>,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        let checks = &self.query;
        self.visit(|store| {
            for item in checks.checked(query(store))? {
                let (key, start, end, value) = checks.checked(item)?;
                let window = Window::new(start, end).map_err(|e| {
                    checks.state_reason(format!("a session from {start} to {end}: {e}"))
                })?;
                out.push((Windowed::new(key, window), value));
            }
            Ok(())
        })?;
        out.sort_by_key(|(windowed, _)| (windowed.window.end(), windowed.window.start()));
        Ok(out)
    }

    fn visit(&self, mut f: impl FnMut(&TypedSessionStore<K, V>) -> Result<()>) -> Result<()> {
        self.query.visit(|store| {
            let typed = store
                .as_any_mut()
                .downcast_ref::<TypedSessionStore<K, V>>()
                .ok_or_else(|| {
                    self.query.wrong_type(format!(
                        "a session store of {} to {}",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ))
                })?;
            f(typed)
        })
    }
}

/// What a query of the local instance's stores may read (Kafka's
/// `StoreQueryParameters`), for
/// [`KafkaStreams::store_with_parameters`](super::KafkaStreams::store_with_parameters)
/// and its window and session counterparts.
///
/// By default a query reads the stores of the instance's active, running tasks.
/// [`StoreQueryParameters::enable_stale_stores`] lets it read stores that may lag
/// behind too: those of standby tasks (see
/// [`StreamsConfig::num_standby_replicas`](super::StreamsConfig::num_standby_replicas))
/// and of active tasks still restoring.
///
/// ```no_run
/// # use kafka_streams::runtime::{KafkaStreams, StoreQueryParameters};
/// # fn f(streams: &KafkaStreams) -> kafka_streams::Result<()> {
/// let params = StoreQueryParameters::from_name("word-counts").enable_stale_stores();
/// let counts = streams.store_with_parameters::<String, i64>(&params)?;
/// println!("kafka (maybe stale): {:?}", counts.get(&"kafka".to_string())?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreQueryParameters {
    store_name: String,
    stale_stores: bool,
}

impl StoreQueryParameters {
    /// Queries of store `store_name`, active running tasks only.
    pub fn from_name(store_name: impl Into<String>) -> Self {
        StoreQueryParameters {
            store_name: store_name.into(),
            stale_stores: false,
        }
    }

    /// Lets the query read standby stores and stores of tasks still restoring, which
    /// may lag behind the active ones (Kafka's `enableStaleStores`).
    pub fn enable_stale_stores(mut self) -> Self {
        self.stale_stores = true;
        self
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    /// Whether stale stores may answer.
    pub fn stale_stores_enabled(&self) -> bool {
        self.stale_stores
    }
}

/// What every query handle shares: the store's name, the subtopology of its tasks
/// and the client whose tasks it visits.
#[derive(Clone)]
struct StoreQuery {
    name: String,
    subtopology: Option<usize>,
    shared: Arc<ClientShared>,
    /// Standby and restoring stores answer too.
    stale: bool,
}

impl StoreQuery {
    fn error(&self, reason: InvalidStoreReason) -> StreamsError {
        StreamsError::InvalidStateStore {
            store: self.name.clone(),
            reason,
        }
    }

    fn wrong_type(&self, requested: String) -> StreamsError {
        self.error(InvalidStoreReason::WrongType { requested })
    }

    fn state_error(&self, error: StateError) -> StreamsError {
        self.state_reason(error.to_string())
    }

    fn state_reason(&self, reason: String) -> StreamsError {
        StreamsError::State {
            store: self.name.clone(),
            reason,
        }
    }

    fn checked<T>(&self, result: StateResult<T>) -> Result<T> {
        result.map_err(|e| self.state_error(e))
    }

    /// The window starting at `start` of a store whose windows are `size_ms` long.
    fn window(&self, start: i64, size_ms: i64) -> Result<Window> {
        Window::new(start, start.saturating_add(size_ms)).map_err(|e| {
            self.state_reason(format!("a window starting at {start} in the store: {e}"))
        })
    }

    /// Runs `f` on every local instance of the store (the global store of that name,
    /// or the store of every local task), after checking that all of them are
    /// queryable, each under its stream thread's lock. A stale query also visits
    /// the tasks still restoring and the standby tasks.
    fn visit(&self, mut f: impl FnMut(&mut dyn StateStore) -> Result<()>) -> Result<()> {
        let state = self.shared.state();
        if !matches!(state, State::Running | State::Rebalancing) {
            return Err(self.error(InvalidStoreReason::NotAvailable(format!(
                "the client is {state:?}, not RUNNING or REBALANCING"
            ))));
        }
        if let Some(global) = self.shared.global_store(&self.name) {
            let mut guard = global.lock().unwrap_or_else(|e| e.into_inner());
            let Some(store) = guard.queryable() else {
                return Err(self.error(InvalidStoreReason::Migrating(
                    "the global store is restoring".into(),
                )));
            };
            return f(store);
        }
        if self.stale {
            return self.visit_stale(f);
        }
        if let Some(task) = self
            .subtopology
            .and_then(|sub| self.shared.restoring_task_of(sub))
        {
            return Err(self.error(InvalidStoreReason::Migrating(format!(
                "local task {task} is restoring it"
            ))));
        }
        let cores = self.shared.thread_cores();
        let mut guards: Vec<_> = cores.iter().map(|c| lock(c)).collect();
        let mut hosting = 0;
        for guard in guards.iter_mut() {
            for task in guard.task_manager.tasks_mut().values_mut() {
                if !task.has_store(&self.name) {
                    continue;
                }
                if !task.is_running() {
                    return Err(self.error(InvalidStoreReason::Migrating(format!(
                        "local task {} is restoring it",
                        task.id()
                    ))));
                }
                hosting += 1;
            }
        }
        if hosting == 0 {
            return Err(self.error(InvalidStoreReason::Migrating(format!(
                "no local task hosts it while the client is {state:?}"
            ))));
        }
        for guard in guards.iter_mut() {
            for task in guard.task_manager.tasks_mut().values_mut() {
                if let Some(store) = task.store_dyn_mut(&self.name) {
                    f(store)?;
                }
            }
        }
        Ok(())
    }

    /// [`StoreQuery::visit`] for a stale query: every local task's store, restoring
    /// or not, then every standby task's; fails only when none hosts it.
    fn visit_stale(&self, mut f: impl FnMut(&mut dyn StateStore) -> Result<()>) -> Result<()> {
        let cores = self.shared.thread_cores();
        let mut guards: Vec<_> = cores.iter().map(|c| lock(c)).collect();
        // Lock order as the stream threads': their cores, then the standbys.
        let mut standbys = self.shared.standbys();
        let mut hosting = 0;
        for guard in guards.iter_mut() {
            for task in guard.task_manager.tasks_mut().values_mut() {
                if let Some(store) = task.store_dyn_mut(&self.name) {
                    hosting += 1;
                    f(store)?;
                }
            }
        }
        for store in standbys.stores_mut(&self.name) {
            hosting += 1;
            f(store)?;
        }
        if hosting == 0 {
            return Err(self.error(InvalidStoreReason::Migrating(
                "no local active or standby task hosts it".into(),
            )));
        }
        Ok(())
    }
}
