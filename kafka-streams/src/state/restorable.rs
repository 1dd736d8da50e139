//! Store persistence: how a store is restored from its changelog and checkpointed,
//! whatever kind of store it is ([`RestorableStore`]).
//!
//! Reads and writes differ by store kind (key-value, window and session stores),
//! but what the runtime's state manager does with a store does not: find its
//! changelog partition, read where its checkpoint stands, feed it changelog records in
//! batches, checkpoint it after each commit, and forget the checkpoint under
//! exactly-once. That is this trait, so that every store kind is restored and
//! checkpointed by the same code, and the caching and change-logging decorators pass
//! these calls to the inner store untouched (restoring neither re-logs to the changelog
//! nor goes through the record cache).
//!
//! The changelog topic's *name and configs* are the [`StoreBuilder`](super::StoreBuilder)'s
//! ([`changelog_topic`](super::StoreBuilder::changelog_topic),
//! [`changelog_topic_configs`](super::StoreBuilder::changelog_topic_configs)): topics are
//! created before any task builds a store. A store instance knows its *partition*
//! ([`RestorableStore::changelog`]).

use super::cache::CacheFlushListener;
use super::error::StateResult;

/// The changelog topic-partition a store instance is logged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangelogPartition {
    /// Topic, `<application.id>-<store>-changelog` (see [`changelog_topic`]).
    pub topic: String,
    /// Partition: the task's input partition.
    pub partition: i32,
}

impl std::fmt::Display for ChangelogPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The changelog topic of `store` in application `application_id`:
/// `<application.id>-<store>-changelog`, as Kafka Streams names it.
///
/// ```
/// assert_eq!(
///     kafka_streams::state::changelog_topic("wordcount", "counts"),
///     "wordcount-counts-changelog"
/// );
/// ```
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// One changelog record handed to [`RestorableStore::restore_batch`].
///
/// It borrows the consumer's buffers, so restoring copies each key and value once, into
/// the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreRecord<'a> {
    /// The record key.
    pub key: &'a [u8],
    /// The record value; `None` is a tombstone, which deletes the key.
    pub value: Option<&'a [u8]>,
    /// The record's offset in the changelog partition.
    pub offset: i64,
    /// The record's timestamp (milliseconds since the epoch; -1 if it has none): a
    /// timestamped store restored from an input topic keeps it as the row's.
    pub timestamp: i64,
}

/// A store the state manager can restore from its changelog and checkpoint, and whose
/// record cache (if any) reports what it writes through.
///
/// Kafka spreads these hooks over `StateRestoreCallback`/`BatchingStateRestoreCallback`
/// (`restoreBatch`), the offsets a store manages (`StateStore.commit`,
/// `committedOffset`) and `CachedStateStore.setFlushListener`. They are one trait here
/// because the state manager and the decorators need all of them from every store kind.
/// It is not named `PersistentStore`: in-memory stores implement it too (they restore
/// like any other, they just never keep a checkpoint across runs).
///
/// A custom [`StateStore`](super::StateStore) that keeps a changelog implements it and
/// returns itself from [`StateStore::persistence`](super::StateStore::persistence).
pub trait RestorableStore: Send {
    /// The changelog partition the store is logged to (or, for a source table that
    /// reuses its input topic, restored from); `None` when it keeps no changelog.
    fn changelog(&self) -> Option<&ChangelogPartition> {
        None
    }

    /// The changelog offset to resume restoring from: one past the last changelog
    /// record reflected in the store. `None` means restore from the beginning (no
    /// checkpoint, or the state was missing or corrupt and has been wiped).
    fn checkpointed_offset(&self) -> Option<i64>;

    /// Applies a batch of changelog records (tombstones delete) and advances the
    /// checkpoint to one past the last record, atomically where the store can.
    ///
    /// Records below the current checkpoint are skipped (they are already reflected).
    /// Restoring bypasses the record cache and does not log to the changelog.
    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()>;

    /// Records that the store reflects the changelog up to `next_offset` (exclusive).
    ///
    /// The runtime calls it after a commit has flushed the store and the producer and
    /// committed (Kafka's post-commit checkpoint), with the offset following the last
    /// changelog record the store wrote.
    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()>;

    /// Forgets the checkpoint, so that if the process dies before the next
    /// [`RestorableStore::checkpoint`], the state is wiped and restored from the
    /// beginning.
    ///
    /// Under exactly-once the runtime calls it when a task starts processing (the store
    /// may then hold writes of a transaction that could abort) and checkpoints again
    /// only on a clean close, as Kafka does with its checkpoint file.
    fn remove_checkpoint(&mut self) -> StateResult<()>;

    /// Sets the listener of the updates a record cache in the stack writes through;
    /// returns `false` (dropping the listener) when the stack has no cache.
    fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> bool {
        let _ = (listener, send_old_values);
        false
    }
}
