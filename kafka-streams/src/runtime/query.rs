//! Interactive queries over the stores of the local instance (Kafka's
//! `CompositeReadOnlyKeyValueStore` behind `KafkaStreams.store`).
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
use crate::state::{StateError, StateStore, TypedKeyValueStore};

/// Read-only, typed access to a key-value store across the local instance's tasks
/// (Kafka's `ReadOnlyKeyValueStore` as returned by `KafkaStreams.store`).
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
    name: String,
    subtopology: Option<usize>,
    shared: Arc<ClientShared>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for ReadOnlyKeyValueStore<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyKeyValueStore {
            name: self.name.clone(),
            subtopology: self.subtopology,
            shared: self.shared.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn new(name: String, subtopology: Option<usize>, shared: Arc<ClientShared>) -> Self {
        ReadOnlyKeyValueStore {
            name,
            subtopology,
            shared,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
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

    fn error(&self, reason: InvalidStoreReason) -> StreamsError {
        StreamsError::InvalidStateStore {
            store: self.name.clone(),
            reason,
        }
    }

    fn typed<'a>(&self, store: &'a mut dyn StateStore) -> Result<&'a TypedKeyValueStore<K, V>> {
        store
            .as_any_mut()
            .downcast_ref::<TypedKeyValueStore<K, V>>()
            .ok_or_else(|| {
                self.error(InvalidStoreReason::WrongType {
                    requested: format!(
                        "a key-value store of {} to {}",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ),
                })
            })
    }

    fn state_error(&self, error: StateError) -> StreamsError {
        StreamsError::State {
            store: self.name.clone(),
            reason: error.to_string(),
        }
    }

    /// Runs `f` on every local instance of the store, after checking that all of
    /// them are queryable.
    fn visit(
        &self,
        mut f: impl FnMut(&TypedKeyValueStore<K, V>) -> std::result::Result<(), StateError>,
    ) -> Result<()> {
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
            let typed = self.typed(store)?;
            return f(typed).map_err(|e| self.state_error(e));
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
                    let typed = self.typed(store)?;
                    f(typed).map_err(|e| self.state_error(e))?;
                }
            }
        }
        Ok(())
    }
}
