//! [`ProcessorStateManager`]: a task's state stores, their changelog partitions, and
//! what the commit path and the changelog reader do with them (Kafka's
//! `ProcessorStateManager`).
//!
//! The task builds it with its stores, opens them through it
//! ([`ProcessorStateManager::init_stores`], which learns each logged store's changelog
//! partition), and hands its processors the store map. The changelog reader restores
//! the stores through it ([`ProcessorStateManager::changelog_partitions`],
//! [`ProcessorStateManager::restorable_mut`]). On commit the task has it flush the
//! stores, send the changelog records they wrote, and, once the offsets are committed,
//! checkpoint each logged store ([`ProcessorStateManager::checkpoint`]).
//!
//! It reaches every store kind through [`RestorableStore`], never through a key-value
//! interface, so window and session stores are restored and checkpointed by the same
//! code.

use std::borrow::Cow;
use std::sync::Arc;

use super::record_collector::{EncodedRecord, RecordCollector};
use super::task::TaskEnv;
use crate::common::TaskId;
use crate::error::{Result, StreamsError};
use crate::processor::internal::StoreMap;
use crate::state::{
    CacheBudget, ChangelogPartition, RecordingChangelogWriter, RestorableStore, StateStore,
    StoreContext,
};
use crate::topology::{SubTopology, Topology};

/// The stores of one task and their changelogs.
pub(crate) struct ProcessorStateManager {
    task: TaskId,
    stores: StoreMap,
    /// Stores whose changelog is one of the task's input topics (source tables under
    /// `topology.optimization`), with that topic.
    source_changelogs: Vec<(String, String)>,
    /// Each logged store's changelog partition, known once the stores are open.
    changelogs: Vec<(String, ChangelogPartition)>,
    /// Changelog records the stores wrote, waiting to go to the collector.
    changelog: RecordingChangelogWriter,
    /// The record-cache budget the caching stores draw from (the stream thread's).
    cache_budget: CacheBudget,
    /// Under exactly-once: each logged store's checkpoint when it was removed (see
    /// [`ProcessorStateManager::remove_checkpoints`]), what a clean close writes back
    /// for a store that wrote nothing since.
    removed_checkpoints: Vec<(String, i64)>,
}

impl ProcessorStateManager {
    /// The stores of sub-topology `sub` for `task`, built (not yet opened) by their
    /// builders.
    pub fn for_subtopology(
        topology: &Topology,
        sub: &SubTopology,
        task: TaskId,
        env: &TaskEnv,
    ) -> Result<Self> {
        let mut stores = StoreMap::new();
        let mut source_changelogs = Vec::new();
        for name in &sub.stores {
            let builder = topology.stores.get(name).ok_or_else(|| {
                StreamsError::Internal(format!(
                    "store {name} of sub-topology {} is not registered",
                    sub.id
                ))
            })?;
            stores.insert(name.clone(), builder.build(task)?);
            if let Some(topic) = topology.source_changelog_topic(&env.application_id, name) {
                source_changelogs.push((name.clone(), topic));
            }
        }
        Ok(Self::new(
            task,
            stores,
            source_changelogs,
            CacheBudget::new(env.config.cache_max_bytes),
        ))
    }

    /// A manager of `stores`; `source_changelogs` names the stores whose changelog is
    /// an input topic of the task, with that topic.
    pub fn new(
        task: TaskId,
        stores: StoreMap,
        source_changelogs: Vec<(String, String)>,
        cache_budget: CacheBudget,
    ) -> Self {
        ProcessorStateManager {
            task,
            stores,
            source_changelogs,
            changelogs: Vec::new(),
            changelog: RecordingChangelogWriter::new(),
            cache_budget,
            removed_checkpoints: Vec::new(),
        }
    }

    /// Shares `budget` (the stream thread's) between the caching stores; before
    /// [`ProcessorStateManager::init_stores`].
    pub fn set_cache_budget(&mut self, budget: CacheBudget) {
        self.cache_budget = budget;
    }

    /// Whether the task owns store `name`.
    pub fn has_store(&self, name: &str) -> bool {
        self.stores.contains_key(name)
    }

    /// Store `name`, untyped (for interactive queries).
    pub fn store_dyn_mut(&mut self, name: &str) -> Option<&mut dyn StateStore> {
        match self.stores.get_mut(name) {
            Some(store) => Some(store.as_mut()),
            None => None,
        }
    }

    /// Store `name`, if it is of type `S`.
    pub fn store_mut<S: StateStore>(&mut self, name: &str) -> Option<&mut S> {
        self.stores
            .get_mut(name)
            .and_then(|s| (s.as_any_mut() as &mut dyn std::any::Any).downcast_mut::<S>())
    }

    /// Every store, by name: what the task's processors reach through their context.
    pub fn stores_mut(&mut self) -> &mut StoreMap {
        &mut self.stores
    }

    /// Opens the stores (Kafka's `registerStateStores`) with `context` (application
    /// id, state directory, RocksDB memory), adding the task's changelog writer and
    /// cache budget, and records the changelog partition of each logged store.
    pub fn init_stores(&mut self, context: StoreContext) -> Result<()> {
        let context = context
            .with_changelog_writer(Arc::new(self.changelog.clone()))
            .with_cache_budget(self.cache_budget.clone());
        self.changelogs.clear();
        for (name, store) in self.stores.iter_mut() {
            match self.source_changelogs.iter().find(|(s, _)| s == name) {
                Some((_, topic)) => {
                    store.init(&context.clone().with_source_topic_changelog(topic.clone()))?
                }
                None => store.init(&context)?,
            }
            if let Some(changelog) = store.persistence().and_then(|p| p.changelog()) {
                self.changelogs.push((name.clone(), changelog.clone()));
            }
        }
        Ok(())
    }

    /// The logged stores and their changelog partitions, once the stores are open.
    pub fn changelog_partitions(&self) -> impl Iterator<Item = (&str, &ChangelogPartition)> {
        self.changelogs.iter().map(|(name, c)| (name.as_str(), c))
    }

    /// Store `name`'s restore and checkpoint side, for the changelog reader.
    pub fn restorable_mut(&mut self, name: &str) -> Option<&mut dyn RestorableStore> {
        self.stores.get_mut(name).and_then(|s| s.persistence())
    }

    /// Commit, first step: makes every store's writes durable (caches write through
    /// to their inner stores and changelogs).
    pub fn flush(&mut self) -> Result<()> {
        for store in self.stores.values_mut() {
            store.flush()?;
        }
        Ok(())
    }

    /// Hands the changelog records the stores wrote to the collector, each to its
    /// task's partition of the changelog topic, stamped with `timestamp` (of the record
    /// that caused it) and the trace context of the step that wrote them.
    pub fn send_changelog(
        &mut self,
        collector: &mut dyn RecordCollector,
        timestamp: i64,
        trace: Option<&kafka_client::trace_context::TraceHeaders>,
    ) -> Result<()> {
        // Only the task's stores write changelog records: a stateless task skips
        // the writer's lock on every record.
        if self.stores.is_empty() {
            return Ok(());
        }
        for logged in self.changelog.take() {
            collector.send(
                EncodedRecord {
                    topic: Cow::Owned(logged.topic),
                    partition: Some(logged.partition),
                    key: Some(Cow::Owned(logged.key)),
                    value: logged.value.map(Cow::Owned),
                    timestamp: logged.timestamp.unwrap_or(timestamp).max(0),
                    headers: Cow::Owned(
                        trace
                            .map(kafka_client::trace_context::TraceHeaders::to_headers)
                            .unwrap_or_default(),
                    ),
                },
                "changelog",
                None,
            )?;
        }
        Ok(())
    }

    /// Commit, last step (Kafka's post-commit checkpoint): the offsets are committed;
    /// each logged store checkpoints one past the last changelog offset the producer
    /// acknowledged for it (`written`). A store whose changelog is an input partition
    /// of the task (a source table reusing its topic) checkpoints `consumed` of that
    /// partition instead, the offset just committed: the flushed store reflects every
    /// record before it. `None` leaves a store's checkpoint where it is (nothing
    /// written or processed yet).
    pub fn checkpoint(
        &mut self,
        written: &dyn RecordCollector,
        consumed: impl Fn(&ChangelogPartition) -> Option<i64>,
    ) -> Result<()> {
        for (name, changelog) in &self.changelogs {
            let from_source = self.source_changelogs.iter().any(|(s, _)| s == name);
            let next = if from_source {
                consumed(changelog)
            } else {
                written
                    .delivered_offset(&changelog.topic, changelog.partition)
                    .map(|last| last + 1)
            };
            let removed = self
                .removed_checkpoints
                .iter()
                .find(|(n, _)| n == name)
                .map(|&(_, offset)| offset);
            let next = match (next, removed) {
                (Some(next), Some(removed)) => Some(next.max(removed)),
                (next, removed) => next.or(removed),
            };
            let Some(next) = next else {
                continue;
            };
            let Some(store) = self.stores.get_mut(name).and_then(|s| s.persistence()) else {
                continue;
            };
            if store.checkpointed_offset().is_none_or(|c| c < next) {
                store.checkpoint(next)?;
            }
        }
        Ok(())
    }

    /// Exactly-once: forgets every logged store's checkpoint before the task processes
    /// (the stores then take writes of transactions that may abort), so that after a
    /// crash the stores are wiped and restored from their changelogs. The checkpoints
    /// are kept in memory and written back on a clean close if nothing moved them.
    pub fn remove_checkpoints(&mut self) -> Result<()> {
        for (name, _) in &self.changelogs {
            let Some(store) = self.stores.get_mut(name).and_then(|s| s.persistence()) else {
                continue;
            };
            if let Some(offset) = store.checkpointed_offset() {
                self.removed_checkpoints.retain(|(n, _)| n != name);
                self.removed_checkpoints.push((name.clone(), offset));
            }
            store.remove_checkpoint()?;
        }
        Ok(())
    }

    /// Closes every store; failures are logged (the task is going away).
    pub fn close(&mut self) {
        for (name, store) in &mut self.stores {
            if let Err(error) = store.close() {
                tracing::warn!(task = %self.task, store = %name, %error, "store close failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::processor::RecordMetadata;
    use crate::state::{
        KeyValueStoreBuilder, RestoreRecord, RocksDbMemory, StoreBuilder, TypedKeyValueStore,
    };

    const TASK: TaskId = TaskId {
        subtopology: 1,
        partition: 2,
    };

    type Counts = TypedKeyValueStore<String, i64>;

    /// Keeps what is sent; reports the delivered offsets a test sets.
    #[derive(Default)]
    struct Collector {
        sent: Vec<(String, Option<i32>, i64)>,
        delivered: BTreeMap<(String, i32), i64>,
    }

    impl RecordCollector for Collector {
        fn send(
            &mut self,
            record: EncodedRecord<'_>,
            _node: &str,
            _origin: Option<&RecordMetadata>,
        ) -> Result<()> {
            self.sent.push((
                record.topic.into_owned(),
                record.partition,
                record.timestamp,
            ));
            Ok(())
        }

        fn flush(&mut self) -> Result<()> {
            Ok(())
        }

        fn delivered_offset(&self, topic: &str, partition: i32) -> Option<i64> {
            self.delivered.get(&(topic.to_owned(), partition)).copied()
        }
    }

    fn manager(
        builder: &dyn StoreBuilder,
        source_changelogs: Vec<(String, String)>,
        state_dir: &std::path::Path,
    ) -> ProcessorStateManager {
        let mut stores = StoreMap::new();
        stores.insert(
            builder.name().to_owned(),
            builder.build(TASK).expect("build"),
        );
        let mut manager =
            ProcessorStateManager::new(TASK, stores, source_changelogs, CacheBudget::new(0));
        manager
            .init_stores(
                StoreContext::new("app", state_dir, TASK)
                    .with_rocksdb(RocksDbMemory::default_shared()),
            )
            .expect("init");
        manager
    }

    fn checkpointed(manager: &mut ProcessorStateManager, store: &str) -> Option<i64> {
        manager
            .restorable_mut(store)
            .expect("restorable")
            .checkpointed_offset()
    }

    #[test]
    fn logged_store_checkpoints_after_commit_what_the_producer_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = KeyValueStoreBuilder::<String, i64>::new("counts").in_memory();
        let mut manager = manager(&builder, Vec::new(), dir.path());
        let changelog = ChangelogPartition {
            topic: "app-counts-changelog".into(),
            partition: 2,
        };
        assert_eq!(
            manager.changelog_partitions().collect::<Vec<_>>(),
            vec![("counts", &changelog)]
        );
        assert_eq!(checkpointed(&mut manager, "counts"), None);

        let counts = manager.store_mut::<Counts>("counts").expect("typed store");
        counts.put(&"kafka".into(), &1).expect("put");
        counts.delete(&"gone".into()).expect("delete");
        let mut collector = Collector::default();
        manager
            .send_changelog(&mut collector, 1_000, None)
            .expect("send");
        assert_eq!(
            collector.sent,
            vec![
                ("app-counts-changelog".to_owned(), Some(2), 1_000),
                ("app-counts-changelog".to_owned(), Some(2), 1_000),
            ]
        );

        // Nothing acknowledged yet: no checkpoint.
        manager
            .checkpoint(&collector, |_| None)
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "counts"), None);
        // One past the last acknowledged offset; the consumed offsets are not the store's.
        collector
            .delivered
            .insert(("app-counts-changelog".into(), 2), 41);
        manager
            .checkpoint(&collector, |_| Some(7))
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "counts"), Some(42));
        // Never backwards.
        collector
            .delivered
            .insert(("app-counts-changelog".into(), 2), 10);
        manager
            .checkpoint(&collector, |_| None)
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "counts"), Some(42));
        manager.close();
    }

    #[test]
    fn restored_and_committed_offsets_are_read_back_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = KeyValueStoreBuilder::<String, i64>::new("counts");
        let mut first = manager(&builder, Vec::new(), dir.path());
        let one = 1_i64.to_be_bytes();
        let two = 2_i64.to_be_bytes();
        first
            .restorable_mut("counts")
            .expect("restorable")
            .restore_batch(&[
                RestoreRecord {
                    key: b"kafka",
                    value: Some(&one),
                    offset: 0,
                    timestamp: -1,
                },
                RestoreRecord {
                    key: b"streams",
                    value: Some(&two),
                    offset: 2,
                    timestamp: -1,
                },
            ])
            .expect("restore");
        assert_eq!(checkpointed(&mut first, "counts"), Some(3));
        first.close();

        let mut second = manager(&builder, Vec::new(), dir.path());
        assert_eq!(checkpointed(&mut second, "counts"), Some(3));
        let counts = second.store_mut::<Counts>("counts").expect("typed store");
        assert_eq!(counts.get(&"streams".into()).expect("get"), Some(2));
        counts.put(&"kafka".into(), &5).expect("put");
        let mut collector = Collector::default();
        second
            .send_changelog(&mut collector, 0, None)
            .expect("send");
        second.flush().expect("flush");
        collector
            .delivered
            .insert(("app-counts-changelog".into(), 2), 3);
        second.checkpoint(&collector, |_| None).expect("checkpoint");
        second.close();

        let mut third = manager(&builder, Vec::new(), dir.path());
        assert_eq!(checkpointed(&mut third, "counts"), Some(4));
        let counts = third.store_mut::<Counts>("counts").expect("typed store");
        assert_eq!(counts.get(&"kafka".into()).expect("get"), Some(5));
        third.close();
    }

    #[test]
    fn exactly_once_removes_checkpoints_while_processing_and_writes_them_back_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = KeyValueStoreBuilder::<String, i64>::new("counts");
        let mut manager = manager(&builder, Vec::new(), dir.path());
        let one = 1_i64.to_be_bytes();
        manager
            .restorable_mut("counts")
            .expect("restorable")
            .restore_batch(&[RestoreRecord {
                key: b"kafka",
                value: Some(&one),
                offset: 2,
                timestamp: -1,
            }])
            .expect("restore");
        assert_eq!(checkpointed(&mut manager, "counts"), Some(3));

        // Processing starts: a crash from now on finds no checkpoint.
        manager.remove_checkpoints().expect("remove");
        assert_eq!(checkpointed(&mut manager, "counts"), None);
        // A clean close without writes puts the restored offset back...
        let mut collector = Collector::default();
        manager
            .checkpoint(&collector, |_| None)
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "counts"), Some(3));
        // ...and after writes, one past the last acknowledged one.
        manager.remove_checkpoints().expect("remove");
        collector
            .delivered
            .insert(("app-counts-changelog".into(), 2), 9);
        manager
            .checkpoint(&collector, |_| None)
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "counts"), Some(10));
        manager.close();

        // Removed and not written back: the reopened store is wiped.
        let mut reopened = self::manager(&builder, Vec::new(), dir.path());
        reopened.remove_checkpoints().expect("remove");
        reopened
            .store_mut::<Counts>("counts")
            .expect("typed store")
            .put(&"uncommitted".into(), &1)
            .expect("put");
        reopened.close();
        let mut crashed = self::manager(&builder, Vec::new(), dir.path());
        assert_eq!(checkpointed(&mut crashed, "counts"), None);
        let counts = crashed.store_mut::<Counts>("counts").expect("typed store");
        assert_eq!(counts.get(&"uncommitted".into()).expect("get"), None);
        assert_eq!(counts.get(&"kafka".into()).expect("get"), None);
        crashed.close();
    }

    #[test]
    fn source_topic_changelog_checkpoints_the_consumed_offset_and_logs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = KeyValueStoreBuilder::<String, i64>::new("latest");
        let mut manager = manager(
            &builder,
            vec![("latest".into(), "plants".into())],
            dir.path(),
        );
        let source = ChangelogPartition {
            topic: "plants".into(),
            partition: 2,
        };
        assert_eq!(
            manager.changelog_partitions().collect::<Vec<_>>(),
            vec![("latest", &source)]
        );
        let latest = manager.store_mut::<Counts>("latest").expect("typed store");
        latest.put(&"p1".into(), &3).expect("put");
        let mut collector = Collector::default();
        manager
            .send_changelog(&mut collector, 0, None)
            .expect("send");
        assert!(
            collector.sent.is_empty(),
            "the input topic is the changelog"
        );

        // Acknowledged offsets of another topic do not count; nothing consumed yet
        // leaves the checkpoint alone.
        collector.delivered.insert(("plants".into(), 2), 99);
        manager
            .checkpoint(&collector, |_| None)
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "latest"), None);
        manager
            .checkpoint(&collector, |c| (*c == source).then_some(17))
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "latest"), Some(17));
        manager.close();
    }

    #[test]
    fn unlogged_store_has_no_changelog_and_is_not_checkpointed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let builder = KeyValueStoreBuilder::<String, i64>::new("scratch")
            .in_memory()
            .with_logging_disabled();
        let mut manager = manager(&builder, Vec::new(), dir.path());
        assert_eq!(manager.changelog_partitions().count(), 0);
        assert!(manager.has_store("scratch"));
        assert!(!manager.has_store("other"));
        let collector = Collector::default();
        manager
            .checkpoint(&collector, |_| Some(5))
            .expect("checkpoint");
        assert_eq!(checkpointed(&mut manager, "scratch"), None);
        manager.close();
    }
}
