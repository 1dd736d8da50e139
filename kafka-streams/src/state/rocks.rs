//! The RocksDB key-value store, and the memory budget all RocksDB stores share.
//!
//! # Layout
//! One RocksDB instance per task and store, at
//! `<state.dir>/<application.id>/<task>/<store>` ([`StoreLocation`]). The data lives in
//! the default column family; a second column family, `streams-metadata`, holds the
//! changelog checkpoint.
//!
//! # Crash-consistent checkpoints
//! As in Quix Streams, the changelog offset is written in the same `WriteBatch` as the
//! data it describes when restoring, and always after it in the same write-ahead log
//! otherwise. RocksDB recovers a prefix of its log, so the checkpoint found after a
//! crash is never ahead of the data: restoring from it replays at most some records
//! twice, which writes the same values again. There is no separate checkpoint file to
//! keep in step.
//!
//! On opening, the store decides where restoring must start ([`StoreRecovery`]):
//! - no directory or an empty store: from the beginning;
//! - a valid checkpoint for the same changelog partition: from the checkpoint;
//! - data without a checkpoint, an unreadable checkpoint, a checkpoint of another
//!   changelog partition, or a database RocksDB reports as corrupt: the store's
//!   directory is wiped and it restores from the beginning (Kafka's "task corrupted").
//!
//! # Bounded memory
//! RocksDB's memory complaints come from each instance having its own block cache and
//! memtables. Here every store of the application shares one [`RocksDbMemory`]: one LRU
//! block cache, into which index and filter blocks are also charged, and one
//! `WriteBufferManager` whose memtable memory is charged to the same cache (Kafka's
//! `BoundedMemoryRocksDBConfig`). Total RocksDB memory thus stays near
//! [`RocksDbMemoryConfig::total_bytes`] however many stores there are. A
//! [`RocksDbConfigSetter`] may tune each store's options afterwards (Kafka's
//! `rocksdb.config.setter`).

use std::collections::HashSet;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, LruCacheOptions, Options,
    ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use super::error::{StateError, StateResult};
use super::key_value::{BatchEntry, KeyValue, KeyValueIter, KeyValueStore, ReadOnlyKeyValueStore};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};

/// Name of the column family holding the changelog checkpoint.
pub(crate) const METADATA_COLUMN_FAMILY: &str = "streams-metadata";
const CHECKPOINT_KEY: &[u8] = b"changelog-checkpoint";
/// Key (in the metadata column family) of the layout of the stored values, so that a
/// store written in another layout is restored anew rather than misread.
const VALUE_FORMAT_KEY: &[u8] = b"value-format";

/// How a key-value store lays out its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// The value's bytes (stores written before the layout was recorded are read
    /// as this).
    Plain,
    /// An 8-byte big-endian timestamp, then the value's bytes (Kafka's timestamped
    /// key-value stores, behind KTables).
    Timestamped,
}

impl ValueFormat {
    fn marker(self) -> &'static [u8] {
        match self {
            ValueFormat::Plain => b"plain",
            ValueFormat::Timestamped => b"timestamped",
        }
    }
}
const CHECKPOINT_FORMAT: u8 = 1;

/// Where a store instance lives on disk: `<state_dir>/<application_id>/<task>/<store>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The `state.dir` setting.
    pub state_dir: PathBuf,
    /// The `application.id` setting.
    pub application_id: String,
    /// The task id, `<sub-topology>_<partition>`.
    pub task: String,
    /// The store name.
    pub store: String,
}

impl StoreLocation {
    /// The task's directory, `<state_dir>/<application_id>/<task>`.
    pub fn task_dir(&self) -> PathBuf {
        self.state_dir.join(&self.application_id).join(&self.task)
    }

    /// The store's directory, `<state_dir>/<application_id>/<task>/<store>`.
    pub fn store_dir(&self) -> PathBuf {
        self.task_dir().join(&self.store)
    }
}

/// Sizes of the memory shared by all RocksDB stores of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksDbMemoryConfig {
    /// Capacity of the shared block cache, which also accounts for index and filter
    /// blocks and for the memtables: the bound on RocksDB's memory. Default 64 MiB.
    pub total_bytes: usize,
    /// The part of `total_bytes` that memtables (write buffers) may use across all
    /// stores before RocksDB flushes them. Default 16 MiB. A soft target: a store that
    /// stops writing keeps its last memtable (at most an eighth of this) until it
    /// writes again; the memtables stay charged to the cache, within `total_bytes`.
    pub write_buffer_bytes: usize,
}

impl Default for RocksDbMemoryConfig {
    fn default() -> Self {
        RocksDbMemoryConfig {
            total_bytes: 64 << 20,
            write_buffer_bytes: 16 << 20,
        }
    }
}

/// Customises the RocksDB options of each store (Kafka's `RocksDBConfigSetter`).
///
/// Called when a store opens, after the defaults and the shared cache and write-buffer
/// manager have been set. Replacing the block cache in `table` takes the store out of
/// the shared memory bound.
pub trait RocksDbConfigSetter: Send + Sync {
    /// Adjusts `options` and the block-based `table` options of the store named `store`.
    fn set_config(&self, store: &str, options: &mut Options, table: &mut BlockBasedOptions);
}

/// The block cache and write-buffer manager shared by every RocksDB store of an
/// application, and the optional per-store options hook. Clones share them.
#[derive(Clone)]
pub struct RocksDbMemory {
    config: RocksDbMemoryConfig,
    cache: Cache,
    write_buffers: WriteBufferManager,
    config_setter: Option<Arc<dyn RocksDbConfigSetter>>,
}

impl fmt::Debug for RocksDbMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbMemory")
            .field("config", &self.config)
            .field("block_cache_usage", &self.block_cache_usage())
            .field("write_buffer_usage", &self.write_buffer_usage())
            .field("config_setter", &self.config_setter.is_some())
            .finish()
    }
}

impl RocksDbMemory {
    /// A shared cache of `config.total_bytes`, with `config.write_buffer_bytes` of it for
    /// memtables.
    pub fn new(config: RocksDbMemoryConfig) -> StateResult<Self> {
        if config.total_bytes == 0 || config.write_buffer_bytes == 0 {
            return Err(StateError::Config {
                store: "*".into(),
                reason: "RocksDB memory sizes must be positive".into(),
            });
        }
        if config.write_buffer_bytes > config.total_bytes {
            return Err(StateError::Config {
                store: "*".into(),
                reason: format!(
                    "RocksDB write buffer budget ({} bytes) exceeds the total memory budget ({} bytes)",
                    config.write_buffer_bytes, config.total_bytes
                ),
            });
        }
        Ok(Self::with_config(config))
    }

    /// The default budget ([`RocksDbMemoryConfig::default`]).
    pub fn default_shared() -> Self {
        Self::with_config(RocksDbMemoryConfig::default())
    }

    /// Builds without validating (callers pass sizes known to be valid).
    pub(crate) fn with_config(config: RocksDbMemoryConfig) -> Self {
        let mut cache_options = LruCacheOptions::default();
        cache_options.set_capacity(config.total_bytes);
        cache_options.set_num_shard_bits(cache_shard_bits(config.total_bytes));
        let cache = Cache::new_lru_cache_opts(&cache_options);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            config.write_buffer_bytes,
            false,
            cache.clone(),
        );
        RocksDbMemory {
            config,
            cache,
            write_buffers,
            config_setter: None,
        }
    }

    /// Adds the per-store options hook.
    pub fn with_config_setter(mut self, setter: Arc<dyn RocksDbConfigSetter>) -> Self {
        self.config_setter = Some(setter);
        self
    }

    /// The configured sizes.
    pub fn config(&self) -> RocksDbMemoryConfig {
        self.config
    }

    /// Bytes in the shared block cache now (data, index and filter blocks, and the
    /// memtable reservations), RocksDB's `Cache::GetUsage`.
    pub fn block_cache_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// Bytes of the block cache pinned by open iterators and readers.
    pub fn block_cache_pinned_usage(&self) -> usize {
        self.cache.get_pinned_usage()
    }

    /// Bytes of memtables across all stores.
    pub fn write_buffer_usage(&self) -> usize {
        self.write_buffers.get_usage()
    }

    fn options(&self, store: &str) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_block_size(4 << 10);
        // Index and filter blocks are charged to the cache and evictable (pinning them,
        // per L0 file of every store, is what lets usage outgrow the capacity).
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(false);
        table.set_pin_top_level_index_and_filter(true);
        table.set_bloom_filter(10.0, false);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(DBCompressionType::None);
        // Each store keeps its active memtable until it writes again (the shared
        // manager only makes the *writing* store flush), so one memtable is kept to an
        // eighth of the budget: idle stores cannot hold the whole budget.
        options
            .set_write_buffer_size((self.config.write_buffer_bytes / 8).clamp(64 << 10, 8 << 20));
        options.set_max_write_buffer_number(3);
        options.set_write_buffer_manager(&self.write_buffers);
        if let Some(setter) = &self.config_setter {
            setter.set_config(store, &mut options, &mut table);
        }
        options.set_block_based_table_factory(&table);
        options
    }
}

/// Shards of the shared LRU cache: one per 8 MiB, at most 64.
///
/// The cache stays within its capacity as long as each shard can evict enough
/// unpinned blocks; memtable reservations (256 KiB dummy entries) and pinned blocks
/// hash to shards unevenly, so small shards overflow. RocksDB's default (512 KiB
/// shards) let a 4 MiB cache shared by ten stores exceed its capacity by 6 %.
fn cache_shard_bits(capacity: usize) -> i32 {
    let shards = (capacity / (8 << 20)).max(1);
    (usize::BITS - 1 - shards.leading_zeros()).min(6) as i32
}

/// What opening a RocksDB store found, which decides where restoring starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRecovery {
    /// No previous state: restore from the beginning.
    Fresh,
    /// A valid checkpoint: restore from `offset`.
    Resumed {
        /// The next changelog offset to restore from.
        offset: i64,
    },
    /// The store has no changelog: its data is kept as found.
    Unlogged,
    /// The previous state was unusable and has been deleted: restore from the
    /// beginning.
    Wiped {
        /// Why it was unusable.
        reason: String,
    },
}

/// A key-value store in RocksDB (Kafka's `RocksDBStore`).
pub struct RocksDbStore {
    name: String,
    task: String,
    path: PathBuf,
    db: Option<DB>,
    changelog: Option<ChangelogPartition>,
    checkpoint: Option<i64>,
    recovery: StoreRecovery,
    write_options: WriteOptions,
}

impl fmt::Debug for RocksDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbStore")
            .field("name", &self.name)
            .field("task", &self.task)
            .field("path", &self.path)
            .field("changelog", &self.changelog)
            .field("checkpoint", &self.checkpoint)
            .field("open", &self.db.is_some())
            .finish()
    }
}

impl RocksDbStore {
    /// Opens (creating if needed) the store at `location`, logged to `changelog` (`None`
    /// when logging is disabled), using the shared `memory`.
    ///
    /// Unusable previous state is wiped (see [`StoreRecovery`]); other failures (the
    /// directory cannot be created, another instance holds the lock) are errors.
    pub fn open(
        location: &StoreLocation,
        changelog: Option<ChangelogPartition>,
        memory: &RocksDbMemory,
    ) -> StateResult<Self> {
        Self::open_with_format(location, changelog, memory, ValueFormat::Plain)
    }

    /// [`RocksDbStore::open`] for values laid out as `format`: a store that holds
    /// values of another layout (e.g. plain values written before its table kept
    /// timestamps) is wiped and restored from its changelog, as unusable state is.
    pub fn open_with_format(
        location: &StoreLocation,
        changelog: Option<ChangelogPartition>,
        memory: &RocksDbMemory,
        format: ValueFormat,
    ) -> StateResult<Self> {
        let path = location.store_dir();
        let mut store = RocksDbStore {
            name: location.store.clone(),
            task: location.task.clone(),
            path,
            db: None,
            changelog,
            checkpoint: None,
            recovery: StoreRecovery::Fresh,
            write_options: WriteOptions::default(),
        };
        let options = memory.options(&store.name);
        let existed = store.path.exists();
        let wiped = match store.open_db(&options) {
            Ok(()) => None,
            Err(err) if err.is_corruption() => {
                Some(format!("RocksDB reported corruption on opening: {err}"))
            }
            Err(err) => return Err(err),
        };
        let wiped = match wiped {
            Some(reason) => Some(reason),
            None => store.inspect_value_format(format)?,
        };
        let wiped = match wiped {
            Some(reason) => Some(reason),
            None => store.inspect_checkpoint(existed)?,
        };
        if let Some(reason) = wiped {
            tracing::warn!(
                store = %store.name,
                task = %store.task,
                path = %store.path.display(),
                %reason,
                "wiping unusable state; it will be restored from the beginning of the changelog"
            );
            store.db = None;
            if store.path.exists() {
                std::fs::remove_dir_all(&store.path).map_err(|source| StateError::Io {
                    store: store.name.clone(),
                    path: store.path.clone(),
                    operation: "wiping the store directory",
                    source,
                })?;
            }
            store.open_db(&options)?;
            store.checkpoint = None;
            store.recovery = StoreRecovery::Wiped { reason };
        }
        store.record_value_format(format)?;
        tracing::debug!(
            store = %store.name,
            task = %store.task,
            path = %store.path.display(),
            recovery = ?store.recovery,
            "opened RocksDB store"
        );
        Ok(store)
    }

    fn open_db(&mut self, options: &Options) -> StateResult<()> {
        std::fs::create_dir_all(&self.path).map_err(|source| StateError::Io {
            store: self.name.clone(),
            path: self.path.clone(),
            operation: "creating the store directory",
            source,
        })?;
        // The metadata family holds one key: the smallest memtable will do.
        let mut meta_options = options.clone();
        meta_options.set_write_buffer_size(64 << 10);
        let families = vec![
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, options.clone()),
            ColumnFamilyDescriptor::new(METADATA_COLUMN_FAMILY, meta_options),
        ];
        let db = DB::open_cf_descriptors(options, &self.path, families)
            .map_err(|e| self.rocks_error("opening", e))?;
        self.db = Some(db);
        Ok(())
    }

    /// Reads the checkpoint and sets `recovery`; returns why the state must be wiped.
    /// Why the store must be wiped because it holds values of another layout than
    /// `format`, if it does.
    fn inspect_value_format(&self, format: ValueFormat) -> StateResult<Option<String>> {
        let db = self.db()?;
        let meta = self.meta_cf(db)?;
        let stored = db
            .get_cf(meta, VALUE_FORMAT_KEY)
            .map_err(|e| self.rocks_error("reading the value format", e))?;
        let stored = stored.as_deref().unwrap_or(ValueFormat::Plain.marker());
        if stored == format.marker() {
            return Ok(None);
        }
        let mut iter = db.raw_iterator();
        iter.seek_to_first();
        Ok(iter.valid().then(|| {
            format!(
                "its values are laid out as {}, the store now keeps them as {}",
                String::from_utf8_lossy(stored),
                String::from_utf8_lossy(format.marker())
            )
        }))
    }

    /// Records the layout of the values (once per store).
    fn record_value_format(&self, format: ValueFormat) -> StateResult<()> {
        let db = self.db()?;
        let meta = self.meta_cf(db)?;
        let stored = db
            .get_cf(meta, VALUE_FORMAT_KEY)
            .map_err(|e| self.rocks_error("reading the value format", e))?;
        if stored.as_deref() != Some(format.marker()) {
            db.put_cf_opt(meta, VALUE_FORMAT_KEY, format.marker(), &self.write_options)
                .map_err(|e| self.rocks_error("recording the value format", e))?;
        }
        Ok(())
    }

    fn inspect_checkpoint(&mut self, existed: bool) -> StateResult<Option<String>> {
        let raw = {
            let db = self.db()?;
            let meta = self.meta_cf(db)?;
            db.get_cf(meta, CHECKPOINT_KEY)
                .map_err(|e| self.rocks_error("reading the checkpoint", e))?
        };
        let Some(changelog) = self.changelog.clone() else {
            self.recovery = StoreRecovery::Unlogged;
            return Ok(None);
        };
        match raw {
            None => {
                let has_data = {
                    let db = self.db()?;
                    let mut iter = db.raw_iterator();
                    iter.seek_to_first();
                    iter.valid()
                };
                if has_data {
                    return Ok(Some("data without a checkpoint".into()));
                }
                self.recovery = StoreRecovery::Fresh;
                if existed {
                    tracing::debug!(store = %self.name, "empty store without checkpoint");
                }
                Ok(None)
            }
            Some(bytes) => match decode_checkpoint(&bytes) {
                None => Ok(Some("unreadable checkpoint metadata".into())),
                Some((found, _)) if found != changelog => Ok(Some(format!(
                    "checkpoint is for changelog {found}, expected {changelog}"
                ))),
                Some((_, offset)) => {
                    self.checkpoint = Some(offset);
                    self.recovery = StoreRecovery::Resumed { offset };
                    Ok(None)
                }
            },
        }
    }

    /// The entries with keys in `[lower, upper)` (`upper` `None`: unbounded), in
    /// ascending key order if `forward`, else descending. Crate-internal: the segmented
    /// window and session stores read their segments with it.
    pub(crate) fn scan(
        &self,
        lower: &[u8],
        upper: Option<&[u8]>,
        forward: bool,
    ) -> StateResult<KeyValueIter<'_>> {
        let db = self.db()?;
        if upper.is_some_and(|upper| upper <= lower) {
            return Ok(Box::new(std::iter::empty()));
        }
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(lower.to_vec());
        if let Some(upper) = upper {
            read.set_iterate_upper_bound(upper.to_vec());
        }
        let mut raw = db.raw_iterator_opt(read);
        if forward {
            raw.seek_to_first();
        } else {
            raw.seek_to_last();
        }
        Ok(Box::new(RangeIter {
            raw,
            store: self,
            forward,
            done: false,
        }))
    }

    /// Writes `batch` atomically, with the checkpoint `next_offset` (if any) in the
    /// same batch, as [`RestorableStore::restore_batch`] does. Crate-internal: the
    /// segmented stores build batches of their own (puts, deletes and whole expired
    /// segments as range deletions) over this store's data and metadata.
    pub(crate) fn write_batch(
        &mut self,
        mut batch: WriteBatch,
        next_offset: Option<i64>,
        operation: &'static str,
    ) -> StateResult<()> {
        let db = self.db()?;
        if let Some(next) = next_offset {
            let meta = self.meta_cf(db)?;
            batch.put_cf(meta, CHECKPOINT_KEY, self.checkpoint_value(next));
        }
        db.write_opt(batch, &self.write_options)
            .map_err(|e| self.rocks_error(operation, e))?;
        if next_offset.is_some() {
            self.checkpoint = next_offset;
        }
        Ok(())
    }

    /// What opening found; see [`StoreRecovery`].
    pub fn recovery(&self) -> &StoreRecovery {
        &self.recovery
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An integer property of the data column family (e.g.
    /// `rocksdb.block-cache-usage`, `rocksdb.cur-size-all-mem-tables`).
    pub fn property_int(&self, name: &str) -> StateResult<Option<u64>> {
        let db = self.db()?;
        db.property_int_value(name)
            .map_err(|e| self.rocks_error("reading a property", e))
    }

    fn db(&self) -> StateResult<&DB> {
        self.db.as_ref().ok_or_else(|| StateError::NotOpen {
            store: self.name.clone(),
            state: "closed",
        })
    }

    fn meta_cf<'a>(&self, db: &'a DB) -> StateResult<&'a rocksdb::ColumnFamily> {
        db.cf_handle(METADATA_COLUMN_FAMILY)
            .ok_or_else(|| StateError::CorruptCheckpoint {
                store: self.name.clone(),
                path: self.path.clone(),
                reason: format!("column family {METADATA_COLUMN_FAMILY} is missing"),
            })
    }

    fn rocks_error(&self, operation: &'static str, source: rocksdb::Error) -> StateError {
        StateError::RocksDb {
            store: self.name.clone(),
            task: self.task.clone(),
            path: self.path.clone(),
            operation,
            source,
        }
    }

    fn checkpoint_value(&self, offset: i64) -> Vec<u8> {
        let default = ChangelogPartition {
            topic: String::new(),
            partition: -1,
        };
        encode_checkpoint(self.changelog.as_ref().unwrap_or(&default), offset)
    }
}

fn encode_checkpoint(changelog: &ChangelogPartition, offset: i64) -> Vec<u8> {
    let mut value = Vec::with_capacity(13 + changelog.topic.len());
    value.push(CHECKPOINT_FORMAT);
    value.extend_from_slice(&offset.to_be_bytes());
    value.extend_from_slice(&changelog.partition.to_be_bytes());
    value.extend_from_slice(changelog.topic.as_bytes());
    value
}

fn decode_checkpoint(bytes: &[u8]) -> Option<(ChangelogPartition, i64)> {
    let (&format, rest) = bytes.split_first()?;
    if format != CHECKPOINT_FORMAT || rest.len() < 12 {
        return None;
    }
    let offset = i64::from_be_bytes(rest[..8].try_into().ok()?);
    let partition = i32::from_be_bytes(rest[8..12].try_into().ok()?);
    let topic = std::str::from_utf8(&rest[12..]).ok()?.to_owned();
    (offset >= 0).then_some((ChangelogPartition { topic, partition }, offset))
}

/// The smallest key greater than `key` in byte order.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

struct RangeIter<'a> {
    raw: rocksdb::DBRawIterator<'a>,
    store: &'a RocksDbStore,
    /// Ascending key order, or descending (the segmented stores' backward reads).
    forward: bool,
    done: bool,
}

impl Iterator for RangeIter<'_> {
    type Item = StateResult<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some((key, value)) = self.raw.item() {
            let item = (key.to_vec(), value.to_vec());
            if self.forward {
                self.raw.next();
            } else {
                self.raw.prev();
            }
            return Some(Ok(item));
        }
        self.done = true;
        match self.raw.status() {
            Ok(()) => None,
            Err(e) => Some(Err(self.store.rocks_error("iterating", e))),
        }
    }
}

impl ReadOnlyKeyValueStore for RocksDbStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let db = self.db()?;
        db.get(key).map_err(|e| self.rocks_error("reading", e))
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>> {
        let db = self.db()?;
        if super::key_value::range_is_empty(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        // Every bound maps exactly onto RocksDB's [lower, upper) bounds.
        let mut read = ReadOptions::default();
        match from {
            Bound::Included(k) => read.set_iterate_lower_bound(k.to_vec()),
            Bound::Excluded(k) => read.set_iterate_lower_bound(successor(k)),
            Bound::Unbounded => {}
        }
        match to {
            Bound::Included(k) => read.set_iterate_upper_bound(successor(k)),
            Bound::Excluded(k) => read.set_iterate_upper_bound(k.to_vec()),
            Bound::Unbounded => {}
        }
        let mut raw = db.raw_iterator_opt(read);
        raw.seek_to_first();
        Ok(Box::new(RangeIter {
            raw,
            store: self,
            forward: true,
            done: false,
        }))
    }

    fn approximate_num_entries(&self) -> StateResult<u64> {
        Ok(self.property_int("rocksdb.estimate-num-keys")?.unwrap_or(0))
    }
}

impl KeyValueStore for RocksDbStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        let db = self.db()?;
        db.put_opt(key, value, &self.write_options)
            .map_err(|e| self.rocks_error("writing", e))
    }

    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let old = self.get(key)?;
        let db = self.db()?;
        db.delete_opt(key, &self.write_options)
            .map_err(|e| self.rocks_error("deleting", e))?;
        Ok(old)
    }

    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        let db = self.db()?;
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        db.write_opt(batch, &self.write_options)
            .map_err(|e| self.rocks_error("writing a batch", e))
    }

    /// Syncs the write-ahead log, so the writes so far survive a machine crash too
    /// (they survive a process crash as soon as each write returns).
    fn flush(&mut self) -> StateResult<()> {
        let db = self.db()?;
        db.flush_wal(true)
            .map_err(|e| self.rocks_error("syncing the write-ahead log", e))
    }

    fn close(&mut self) -> StateResult<()> {
        if self.db.take().is_some() {
            tracing::debug!(store = %self.name, task = %self.task, "closed RocksDB store");
        }
        Ok(())
    }

    fn persistent(&self) -> bool {
        true
    }
}

impl RestorableStore for RocksDbStore {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.changelog.as_ref()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.checkpoint
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        let db = self.db()?;
        let from = self.checkpoint.unwrap_or(i64::MIN);
        let mut last = None;
        let mut latest: Vec<&RestoreRecord<'_>> = Vec::with_capacity(records.len());
        for record in records.iter().filter(|r| r.offset >= from) {
            if let Some(prev) = last {
                if record.offset <= prev {
                    let changelog = self.changelog.clone().unwrap_or(ChangelogPartition {
                        topic: String::new(),
                        partition: -1,
                    });
                    return Err(StateError::Restore {
                        store: self.name.clone(),
                        topic: changelog.topic,
                        partition: changelog.partition,
                        offset: record.offset,
                        reason: format!("offsets must increase within a batch (after {prev})"),
                    });
                }
            }
            latest.push(record);
            last = Some(record.offset);
        }
        let Some(last) = last else {
            return Ok(());
        };
        // The batch is written atomically, so only each key's last record in it can
        // ever be read: apply just those, in key order. A changelog of hot keys
        // repeats them many times per batch, so they are deduplicated by hash (newest
        // first) before the much smaller sort; sorted inserts are what RocksDB's
        // memtable skiplist inserts cheapest.
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(latest.len().min(1 << 16));
        let mut unique: Vec<&RestoreRecord<'_>> = Vec::with_capacity(seen.capacity());
        for record in latest.iter().rev() {
            if seen.insert(record.key) {
                unique.push(record);
            }
        }
        unique.sort_unstable_by(|a, b| a.key.cmp(b.key));
        let mut batch = WriteBatch::default();
        for record in unique {
            match record.value {
                Some(value) => batch.put(record.key, value),
                None => batch.delete(record.key),
            }
        }
        let next = last.saturating_add(1);
        let meta = self.meta_cf(db)?;
        batch.put_cf(meta, CHECKPOINT_KEY, self.checkpoint_value(next));
        db.write_opt(batch, &self.write_options)
            .map_err(|e| self.rocks_error("writing a restore batch", e))?;
        self.checkpoint = Some(next);
        Ok(())
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        let db = self.db()?;
        let meta = self.meta_cf(db)?;
        db.put_cf_opt(
            meta,
            CHECKPOINT_KEY,
            self.checkpoint_value(next_offset),
            &self.write_options,
        )
        .map_err(|e| self.rocks_error("writing the checkpoint", e))?;
        self.checkpoint = Some(next_offset);
        Ok(())
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        let db = self.db()?;
        let meta = self.meta_cf(db)?;
        db.delete_cf_opt(meta, CHECKPOINT_KEY, &self.write_options)
            .map_err(|e| self.rocks_error("removing the checkpoint", e))?;
        // Synced: the point is that a crash from now on must not find the old one.
        db.flush_wal(true)
            .map_err(|e| self.rocks_error("syncing the write-ahead log", e))?;
        self.checkpoint = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_codec_round_trips_and_rejects_garbage() {
        let cp = ChangelogPartition {
            topic: "app-s-changelog".into(),
            partition: 3,
        };
        let bytes = encode_checkpoint(&cp, 99);
        assert_eq!(decode_checkpoint(&bytes), Some((cp, 99)));
        assert_eq!(decode_checkpoint(&[]), None);
        assert_eq!(decode_checkpoint(&[CHECKPOINT_FORMAT, 0, 0]), None);
        assert_eq!(decode_checkpoint(&[9; 20]), None);
        let mut negative = encode_checkpoint(
            &ChangelogPartition {
                topic: "t".into(),
                partition: 0,
            },
            0,
        );
        negative[1] = 0x80;
        assert_eq!(decode_checkpoint(&negative), None);
    }

    #[test]
    fn memory_config_is_validated() {
        let err = RocksDbMemory::new(RocksDbMemoryConfig {
            total_bytes: 1 << 20,
            write_buffer_bytes: 2 << 20,
        })
        .unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(RocksDbMemory::new(RocksDbMemoryConfig {
            total_bytes: 0,
            write_buffer_bytes: 0,
        })
        .is_err());
    }

    #[test]
    fn cache_shards_are_at_least_8_mib() {
        assert_eq!(cache_shard_bits(4 << 20), 0);
        assert_eq!(cache_shard_bits(16 << 20), 1);
        assert_eq!(cache_shard_bits(64 << 20), 3);
        assert_eq!(cache_shard_bits(100 << 20), 3);
        assert_eq!(cache_shard_bits(1 << 40), 6);
    }

    /// A store of its own under `state_dir`.
    fn test_store(state_dir: &Path) -> RocksDbStore {
        let location = StoreLocation {
            state_dir: state_dir.to_path_buf(),
            application_id: "app".into(),
            task: "0_0".into(),
            store: "s".into(),
        };
        let memory = RocksDbMemory::with_config(RocksDbMemoryConfig::default());
        RocksDbStore::open(&location, None, &memory).unwrap()
    }

    #[test]
    fn estimate_counts_unflushed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = test_store(dir.path());
        for i in 0..50u32 {
            store.put(&i.to_be_bytes(), b"v").unwrap();
        }
        let estimate = store.approximate_num_entries().unwrap();
        assert!((25..=100).contains(&estimate), "estimate {estimate}");
        let batch: Vec<BatchEntry> = (50..100u32)
            .map(|i| (i.to_be_bytes().to_vec(), Some(b"v".to_vec())))
            .collect();
        store.put_all(&batch).unwrap();
        let estimate = store.approximate_num_entries().unwrap();
        assert!(
            (50..=200).contains(&estimate),
            "estimate after batch {estimate}"
        );
    }

    #[test]
    fn restore_batch_applies_each_keys_latest_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = test_store(dir.path());
        store.put(b"gone", b"old").unwrap();
        // Keys out of order, repeated, a tombstone after a put and a put after a
        // tombstone, as a changelog of hot keys holds them.
        let records = [
            (b"b".as_slice(), Some(b"b1".as_slice())),
            (b"a", Some(b"a1")),
            (b"gone", None),
            (b"b", Some(b"b2")),
            (b"c", Some(b"c1")),
            (b"c", None),
            (b"a", Some(b"a2")),
            (b"b", Some(b"b3")),
            (b"d", None),
            (b"d", Some(b"d1")),
        ];
        let batch: Vec<RestoreRecord<'_>> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| RestoreRecord {
                key,
                value: *value,
                offset: 100 + i as i64,
                timestamp: -1,
            })
            .collect();
        store.restore_batch(&batch).unwrap();
        assert_eq!(store.get(b"a").unwrap().as_deref(), Some(b"a2".as_slice()));
        assert_eq!(store.get(b"b").unwrap().as_deref(), Some(b"b3".as_slice()));
        assert_eq!(store.get(b"c").unwrap(), None);
        assert_eq!(store.get(b"d").unwrap().as_deref(), Some(b"d1".as_slice()));
        assert_eq!(store.get(b"gone").unwrap(), None);
        assert_eq!(store.checkpointed_offset(), Some(110));
    }

    #[test]
    fn successor_is_the_next_key() {
        assert_eq!(successor(b"ab"), b"ab\0".to_vec());
        assert!(successor(b"ab").as_slice() > b"ab".as_slice());
        assert!(successor(b"ab").as_slice() < b"ab\0\0".as_slice());
    }
}
