//! The state layer end to end (white-box: the decorators and the checkpoint file are
//! internal), without a broker: RocksDB and in-memory stores behave
//! alike, the decorator stack logs and caches, checkpoints survive restarts, missing or
//! corrupt state is detected and wiped, and a store is rebuilt exactly from its
//! changelog.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::checkpoint::{CheckpointFile, CHECKPOINT_FILE_NAME};
use super::{
    ChangelogPartition, FlushQueue, InMemoryStore, KeyValueStore, KeyValueStoreBuilder,
    ReadOnlyKeyValueStore, RecordingChangelogWriter, RestorableStore, RestoreRecord, RocksDbMemory,
    RocksDbMemoryConfig, RocksDbStore, StateError, StateResult, StateStore, StoreBuilder,
    StoreContext, StoreLocation, StoreRecovery, TypedKeyValueStore, ValueFormat,
};
use crate::common::TaskId;
use proptest::prelude::*;

type R = anyhow::Result<()>;

fn memory() -> RocksDbMemory {
    RocksDbMemory::new(RocksDbMemoryConfig {
        total_bytes: 8 << 20,
        write_buffer_bytes: 2 << 20,
    })
    .unwrap()
}

fn location(dir: &std::path::Path, task: &str, store: &str) -> StoreLocation {
    StoreLocation {
        state_dir: dir.to_path_buf(),
        application_id: "wordcount".into(),
        task: task.into(),
        store: store.into(),
    }
}

fn changelog(partition: i32) -> ChangelogPartition {
    ChangelogPartition {
        topic: "wordcount-counts-changelog".into(),
        partition,
    }
}

fn collect(
    store: &dyn KeyValueStore,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .range(from, to)
        .unwrap()
        .collect::<StateResult<Vec<_>>>()
        .unwrap()
}

fn rec<'a>(key: &'a [u8], value: Option<&'a [u8]>, offset: i64) -> RestoreRecord<'a> {
    RestoreRecord {
        key,
        value,
        offset,
        timestamp: -1,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

fn bound(kind: u8, key: Vec<u8>) -> Bound<Vec<u8>> {
    match kind % 3 {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    // Short keys over a tiny alphabet (including 0x00 and 0xff) so that prefixes,
    // equal keys and byte-order edge cases are frequent.
    prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xff]), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// RocksDB and the in-memory store agree with a BTreeMap model on every read,
    /// including ranges with every combination of bound kinds.
    #[test]
    fn rocksdb_and_memory_match_a_model(
        ops in prop::collection::vec(
            prop_oneof![
                (key_strategy(), prop::collection::vec(any::<u8>(), 0..6)).prop_map(|(k, v)| Op::Put(k, v)),
                key_strategy().prop_map(Op::Delete),
            ],
            1..60,
        ),
        ranges in prop::collection::vec((any::<u8>(), key_strategy(), any::<u8>(), key_strategy()), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut rocks = RocksDbStore::open(&location(dir.path(), "0_0", "model"), Some(changelog(0)), &memory()).unwrap();
        let mut mem = InMemoryStore::new("model");
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Put(k, v) => {
                    rocks.put(k, v).unwrap();
                    mem.put(k, v).unwrap();
                    model.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    let expected = model.remove(k);
                    prop_assert_eq!(rocks.delete(k).unwrap(), expected.clone());
                    prop_assert_eq!(mem.delete(k).unwrap(), expected);
                }
            }
        }
        for (fk, from, tk, to) in ranges {
            let from = bound(fk, from);
            let to = bound(tk, to);
            let expected: Vec<_> = model
                .iter()
                .filter(|(k, _)| match &from {
                    Bound::Included(f) => *k >= f,
                    Bound::Excluded(f) => *k > f,
                    Bound::Unbounded => true,
                })
                .filter(|(k, _)| match &to {
                    Bound::Included(t) => *k <= t,
                    Bound::Excluded(t) => *k < t,
                    Bound::Unbounded => true,
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(&collect(&rocks, as_ref(&from), as_ref(&to)), &expected);
            prop_assert_eq!(&collect(&mem, as_ref(&from), as_ref(&to)), &expected);
        }
        let all: Vec<_> = model.into_iter().collect();
        prop_assert_eq!(&collect(&rocks, Bound::Unbounded, Bound::Unbounded), &all);
        for (k, v) in &all {
            prop_assert_eq!(rocks.get(k).unwrap(), Some(v.clone()));
        }
    }
}

#[test]
fn rocksdb_lives_at_state_dir_app_task_store() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "1_3", "counts");
    let store = RocksDbStore::open(&loc, Some(changelog(3)), &memory())?;
    assert_eq!(
        store.path(),
        dir.path().join("wordcount").join("1_3").join("counts")
    );
    assert!(store.path().join("CURRENT").exists());
    assert_eq!(store.recovery(), &StoreRecovery::Fresh);
    assert_eq!(store.checkpointed_offset(), None);
    Ok(())
}

/// A store written with plain values (before KTable stores kept timestamps) is not
/// read as timestamp + value: reopened as a timestamped store it is wiped and restored
/// from its changelog; reopened in its own layout it resumes.
#[test]
fn a_store_of_another_value_layout_is_wiped_not_misread() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_2", "counts");
    {
        let mut store = RocksDbStore::open(&loc, Some(changelog(2)), &memory())?;
        store.restore_batch(&[rec(b"kafka", Some(b"plain-value-1"), 0)])?;
        store.close()?;
    }
    {
        let store = RocksDbStore::open(&loc, Some(changelog(2)), &memory())?;
        assert_eq!(store.recovery(), &StoreRecovery::Resumed { offset: 1 });
    }
    let store = RocksDbStore::open_with_format(
        &loc,
        Some(changelog(2)),
        &memory(),
        ValueFormat::Timestamped,
    )?;
    assert!(
        matches!(store.recovery(), StoreRecovery::Wiped { reason } if reason.contains("plain")),
        "{:?}",
        store.recovery()
    );
    assert_eq!(store.get(b"kafka")?, None);
    drop(store);
    let store = RocksDbStore::open_with_format(
        &loc,
        Some(changelog(2)),
        &memory(),
        ValueFormat::Timestamped,
    )?;
    assert_eq!(store.recovery(), &StoreRecovery::Fresh);
    Ok(())
}

#[test]
fn checkpoint_and_data_survive_reopen_and_restore_resumes() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_1", "counts");
    {
        let mut store = RocksDbStore::open(&loc, Some(changelog(1)), &memory())?;
        store.restore_batch(&[
            rec(b"kafka", Some(b"1"), 0),
            rec(b"streams", Some(b"1"), 1),
            rec(b"kafka", Some(b"2"), 2),
        ])?;
        assert_eq!(store.checkpointed_offset(), Some(3));
        store.put(b"rust", b"7")?;
        store.flush()?;
        store.checkpoint(10)?;
        store.close()?;
        assert!(matches!(
            store.get(b"kafka"),
            Err(StateError::NotOpen { .. })
        ));
    }
    let mut store = RocksDbStore::open(&loc, Some(changelog(1)), &memory())?;
    assert_eq!(store.recovery(), &StoreRecovery::Resumed { offset: 10 });
    assert_eq!(store.checkpointed_offset(), Some(10));
    assert_eq!(store.get(b"kafka")?, Some(b"2".to_vec()));
    assert_eq!(store.get(b"rust")?, Some(b"7".to_vec()));
    // Resuming from the checkpoint: redelivered records below it are skipped, the
    // tombstone at 10 deletes.
    store.restore_batch(&[rec(b"kafka", Some(b"stale"), 9), rec(b"streams", None, 10)])?;
    assert_eq!(store.get(b"kafka")?, Some(b"2".to_vec()));
    assert_eq!(store.get(b"streams")?, None);
    assert_eq!(store.checkpointed_offset(), Some(11));
    Ok(())
}

#[test]
fn data_without_checkpoint_is_wiped_and_restored_from_zero() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_0", "counts");
    {
        let mut store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
        store.put(b"ghost", b"1")?;
        store.flush()?;
    }
    let store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
    assert!(
        matches!(store.recovery(), StoreRecovery::Wiped { reason } if reason.contains("without a checkpoint")),
        "{:?}",
        store.recovery()
    );
    assert_eq!(store.checkpointed_offset(), None);
    assert_eq!(store.get(b"ghost")?, None);
    Ok(())
}

/// Exactly-once: the checkpoint is removed while processing, so a crash (no clean
/// close) leaves state that is wiped and restored from the beginning.
#[test]
fn removed_checkpoint_means_wipe_after_a_crash() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_0", "counts");
    {
        let mut store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
        store.restore_batch(&[rec(b"k", Some(b"v"), 0)])?;
        store.remove_checkpoint()?;
        assert_eq!(store.checkpointed_offset(), None);
        store.put(b"uncommitted", b"x")?;
        // Dropped without a checkpoint: a crash.
    }
    let store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
    assert!(
        matches!(store.recovery(), StoreRecovery::Wiped { .. }),
        "{:?}",
        store.recovery()
    );
    assert_eq!(store.get(b"uncommitted")?, None);
    Ok(())
}

#[test]
fn checkpoint_of_another_changelog_partition_is_not_trusted() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_0", "counts");
    {
        let mut store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
        store.restore_batch(&[rec(b"k", Some(b"v"), 5)])?;
    }
    let store = RocksDbStore::open(&loc, Some(changelog(2)), &memory())?;
    assert!(
        matches!(store.recovery(), StoreRecovery::Wiped { reason } if reason.contains("wordcount-counts-changelog-0")),
        "{:?}",
        store.recovery()
    );
    assert_eq!(store.get(b"k")?, None);
    Ok(())
}

#[test]
fn corrupt_database_is_wiped() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_0", "counts");
    {
        let mut store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
        store.restore_batch(&[rec(b"k", Some(b"v"), 0)])?;
    }
    // CURRENT names the live manifest; garbage there is reported as corruption.
    std::fs::write(loc.store_dir().join("CURRENT"), b"garbage")?;
    let store = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
    assert!(
        matches!(store.recovery(), StoreRecovery::Wiped { reason } if reason.contains("corruption")),
        "{:?}",
        store.recovery()
    );
    assert_eq!(store.checkpointed_offset(), None);
    assert_eq!(store.get(b"k")?, None);
    Ok(())
}

#[test]
fn a_store_locked_by_another_instance_is_an_error_not_a_wipe() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_0", "counts");
    let mut first = RocksDbStore::open(&loc, Some(changelog(0)), &memory())?;
    first.restore_batch(&[rec(b"k", Some(b"v"), 0)])?;
    let err = RocksDbStore::open(&loc, Some(changelog(0)), &memory()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("counts") && text.contains("0_0"), "{text}");
    assert!(
        text.contains(&loc.store_dir().display().to_string()),
        "{text}"
    );
    assert_eq!(
        first.get(b"k")?,
        Some(b"v".to_vec()),
        "the data must survive"
    );
    Ok(())
}

#[test]
fn unlogged_rocksdb_store_keeps_its_data() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_0", "scratch");
    {
        let mut store = RocksDbStore::open(&loc, None, &memory())?;
        store.put(b"k", b"v")?;
    }
    let store = RocksDbStore::open(&loc, None, &memory())?;
    assert_eq!(store.recovery(), &StoreRecovery::Unlogged);
    assert_eq!(store.get(b"k")?, Some(b"v".to_vec()));
    Ok(())
}

fn context(dir: &std::path::Path, writer: &RecordingChangelogWriter) -> StoreContext {
    StoreContext::new(
        "wordcount",
        dir,
        TaskId {
            subtopology: 0,
            partition: 2,
        },
    )
    .with_changelog_writer(Arc::new(writer.clone()))
    .with_rocksdb(memory())
}

fn open_counts(
    builder: &KeyValueStoreBuilder<String, i64>,
    ctx: &StoreContext,
) -> anyhow::Result<Box<dyn StateStore>> {
    let mut store = builder.build(ctx.task)?;
    store.init(ctx)?;
    Ok(store)
}

fn counts(store: &mut Box<dyn StateStore>) -> &mut TypedKeyValueStore<String, i64> {
    store
        .as_any_mut()
        .downcast_mut::<TypedKeyValueStore<String, i64>>()
        .expect("typed store")
}

/// The full stack: typed → caching → logging → RocksDB. The cache folds updates, the
/// flush sends them to the changelog and the listener, and replaying the changelog
/// into an empty store rebuilds exactly the same contents.
#[test]
fn changelog_rebuilds_exactly_the_store_contents() -> R {
    let dir = tempfile::tempdir()?;
    let writer = RecordingChangelogWriter::new();
    let ctx = context(dir.path(), &writer);
    let builder = KeyValueStoreBuilder::<String, i64>::new("counts").with_caching_enabled();
    assert_eq!(
        builder.changelog_topic("wordcount").as_deref(),
        Some("wordcount-counts-changelog")
    );
    let mut store = open_counts(&builder, &ctx)?;
    assert_eq!(
        store.persistence().and_then(|p| p.changelog()),
        Some(&ChangelogPartition {
            topic: "wordcount-counts-changelog".into(),
            partition: 2
        })
    );
    assert!(store.persistent());
    let queue = FlushQueue::new();
    assert!(counts(&mut store).set_flush_listener(Box::new(queue.clone()), false)?);

    let text = "the quick brown fox jumps over the lazy dog the end";
    for word in text.split(' ') {
        let typed = counts(&mut store);
        let n = typed.get(&word.to_string())?.unwrap_or(0);
        typed.put(&word.to_string(), &(n + 1))?;
    }
    assert!(writer.take().is_empty(), "folded in the cache until commit");
    store.flush()?;
    let logged = writer.take();
    let distinct = text
        .split(' ')
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(logged.len(), distinct, "one changelog record per word");
    assert!(logged
        .iter()
        .all(|r| r.topic == "wordcount-counts-changelog" && r.partition == 2));
    assert_eq!(
        queue.drain().len(),
        distinct,
        "one downstream update per word"
    );

    // Second "commit" interval: the witness-protection delete.
    counts(&mut store).delete(&"fox".to_string())?;
    store.flush()?;
    let deletes = writer.take();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        (deletes[0].key.as_slice(), deletes[0].value.as_deref()),
        (&b"fox"[..], None)
    );
    let forwarded = queue.drain();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(
        forwarded[0].new_value, None,
        "tombstone forwarded downstream"
    );

    // Rebuild from the changelog (offsets 0..) into a fresh state directory.
    let changelog: Vec<_> = logged.into_iter().chain(deletes).collect();
    let records: Vec<RestoreRecord<'_>> = changelog
        .iter()
        .enumerate()
        .map(|(offset, r)| rec(&r.key, r.value.as_deref(), offset as i64))
        .collect();
    let other_dir = tempfile::tempdir()?;
    let other_writer = RecordingChangelogWriter::new();
    let other_ctx = context(other_dir.path(), &other_writer);
    let mut rebuilt = open_counts(&builder, &other_ctx)?;
    let bytes = rebuilt.persistence().expect("restorable store");
    assert_eq!(bytes.checkpointed_offset(), None);
    for chunk in records.chunks(3) {
        bytes.restore_batch(chunk)?;
    }
    assert_eq!(bytes.checkpointed_offset(), Some(records.len() as i64));
    assert!(other_writer.take().is_empty(), "restoring must not re-log");

    let original: Vec<(String, i64)> = counts(&mut store).all()?.collect::<StateResult<_>>()?;
    let restored: Vec<(String, i64)> = counts(&mut rebuilt).all()?.collect::<StateResult<_>>()?;
    assert_eq!(original, restored);
    assert_eq!(counts(&mut rebuilt).get(&"the".to_string())?, Some(3));
    assert_eq!(counts(&mut rebuilt).get(&"fox".to_string())?, None);
    store.close()?;
    rebuilt.close()?;
    Ok(())
}

#[test]
fn in_memory_and_unlogged_stores_from_the_builder() -> R {
    let dir = tempfile::tempdir()?;
    let writer = RecordingChangelogWriter::new();
    let ctx = context(dir.path(), &writer);

    let builder = KeyValueStoreBuilder::<String, i64>::new("latest").in_memory();
    let mut store = open_counts(&builder, &ctx)?;
    assert!(!store.persistent());
    counts(&mut store).put(&"s1".to_string(), &5)?;
    assert_eq!(
        writer.take().len(),
        1,
        "logged without cache: written through"
    );
    assert!(!dir
        .path()
        .join("wordcount")
        .join("0_2")
        .join("latest")
        .exists());

    let builder = KeyValueStoreBuilder::<String, i64>::new("scratch").with_logging_disabled();
    assert_eq!(builder.changelog_topic("wordcount"), None);
    let mut store = open_counts(&builder, &ctx)?;
    assert_eq!(store.persistence().and_then(|p| p.changelog()), None);
    counts(&mut store).put(&"s1".to_string(), &5)?;
    assert!(writer.take().is_empty(), "logging disabled");

    // A logged store without a changelog writer is a configuration error, not silence.
    let no_writer = StoreContext::new(
        "wordcount",
        dir.path(),
        TaskId {
            subtopology: 0,
            partition: 9,
        },
    )
    .with_rocksdb(memory());
    let mut store = KeyValueStoreBuilder::<String, i64>::new("counts").build(no_writer.task)?;
    let err = store.init(&no_writer).unwrap_err();
    assert!(err.to_string().contains("changelog writer"), "{err}");
    Ok(())
}

#[test]
fn uninitialised_store_reports_not_open() -> R {
    let mut store = KeyValueStoreBuilder::<String, i64>::new("counts").build(TaskId {
        subtopology: 0,
        partition: 0,
    })?;
    let typed = counts(&mut store);
    assert!(matches!(
        typed.get(&"k".to_string()),
        Err(StateError::NotOpen {
            state: "not initialized",
            ..
        })
    ));
    Ok(())
}

#[test]
fn checkpoint_file_lives_in_the_task_directory() -> R {
    let dir = tempfile::tempdir()?;
    let loc = location(dir.path(), "0_4", "counts");
    let file = CheckpointFile::in_dir(loc.task_dir());
    file.update("counts", &changelog(4), 1234)?;
    assert_eq!(file.path(), loc.task_dir().join(CHECKPOINT_FILE_NAME));
    assert_eq!(file.read()?["counts"].offset, 1234);
    Ok(())
}
