//! The instance's lock on its state directory (Kafka's `StateDirectory` lock):
//! `<state.dir>/<application.id>/.lock`, held exclusively from
//! [`KafkaStreams::new`](super::KafkaStreams::new) until the client closes. Two
//! instances on one directory would share its stores and its process id (see
//! `process_id.rs`), hence, under exactly-once, their producers' `transactional.id`s:
//! the second fails at once instead.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Result, StreamsError};

/// The lock file's name, as in Kafka.
const LOCK_FILE_NAME: &str = ".lock";

/// An exclusive lock on an application's state directory, released on drop (or when
/// the process ends, however it ends: the operating system drops the file lock).
#[derive(Debug)]
pub(crate) struct StateDirLock {
    /// Locked while open.
    _file: File,
}

impl StateDirLock {
    /// Locks `state_dir`/`application_id` (created if missing). Fails with
    /// [`StreamsError::StateDirectoryLocked`] when another instance, in this process
    /// or another, holds it.
    pub(crate) fn acquire(state_dir: &Path, application_id: &str) -> Result<Self> {
        let dir = state_dir.join(application_id);
        let io = |operation: &str, e: std::io::Error| {
            StreamsError::Config(format!(
                "{operation} the state directory {} failed: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE_NAME))
            .map_err(|e| io("opening the lock file of", e))?;
        match file.try_lock() {
            Ok(()) => Ok(StateDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StreamsError::StateDirectoryLocked {
                directory: absolute(&dir),
            }),
            Err(TryLockError::Error(e)) => Err(io("locking", e)),
        }
    }
}

/// `path` made absolute for the error message (as is when that fails).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_directory_fails_until_the_first_is_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = StateDirLock::acquire(dir.path(), "app").expect("first lock");
        let error = StateDirLock::acquire(dir.path(), "app").expect_err("second lock");
        match &error {
            StreamsError::StateDirectoryLocked { directory } => {
                assert_eq!(directory, &dir.path().join("app"));
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(
            error
                .to_string()
                .contains(&dir.path().join("app").display().to_string()),
            "{error}"
        );
        // Another application in the same state.dir is another directory.
        let other_app = StateDirLock::acquire(dir.path(), "other-app").expect("other app");
        drop(first);
        let _again = StateDirLock::acquire(dir.path(), "app").expect("lock after release");
        drop(other_app);
    }

    use std::time::Duration;

    use kafka_client::ClientConfig;

    use crate::dsl::{Materialized, StreamsBuilder};
    use crate::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};
    use crate::topology::Topology;

    /// A word count whose store is on disk (RocksDB) or in memory.
    fn word_count(on_disk: bool) -> Topology {
        let builder = StreamsBuilder::new();
        let counts = Materialized::<String, i64>::as_("counts");
        builder
            .stream::<String, String>("lines")
            .group_by(|_, line| line.clone())
            .count_with(if on_disk { counts } else { counts.in_memory() })
            .to_stream()
            .to("counts");
        builder.build().expect("topology")
    }

    fn stateless() -> Topology {
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>("lines").to("copies");
        builder.build().expect("topology")
    }

    fn config(dir: &Path) -> StreamsConfig {
        // Nothing connects before start(): no broker is needed.
        StreamsConfig::new("app", ClientConfig::new("localhost:9"))
            .state_dir(dir)
            .commit_interval(Duration::from_millis(100))
    }

    #[test]
    fn second_instance_on_a_state_dir_fails_at_creation_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = KafkaStreams::new(word_count(true), config(dir.path())).expect("first");
        let Err(error) = KafkaStreams::new(word_count(true), config(dir.path())) else {
            panic!("a second instance got the locked state directory");
        };
        assert!(
            matches!(&error, StreamsError::StateDirectoryLocked { directory } if directory == &dir.path().join("app")),
            "{error}"
        );
        // Closing the first hands the directory over (before the value is dropped).
        assert!(first.close());
        let second = KafkaStreams::new(word_count(true), config(dir.path())).expect("second");
        drop(second);
        // Dropping releases it too.
        KafkaStreams::new(word_count(true), config(dir.path())).expect("third");
    }

    #[test]
    fn exactly_once_locks_the_directory_of_its_process_id_even_without_stores_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let eos = |d: &Path| config(d).processing_guarantee(ProcessingGuarantee::ExactlyOnceV2);
        let _first = KafkaStreams::new(stateless(), eos(dir.path())).expect("first");
        let error = KafkaStreams::new(word_count(false), eos(dir.path()))
            .err()
            .expect("second instance refused");
        assert!(
            matches!(error, StreamsError::StateDirectoryLocked { .. }),
            "{error}"
        );
    }

    #[test]
    fn instances_without_state_on_disk_share_a_state_dir() {
        // As in Kafka: no persistent store (and at-least-once, whose process id is not
        // kept on disk), no lock.
        let dir = tempfile::tempdir().expect("tempdir");
        let _one = KafkaStreams::new(word_count(false), config(dir.path())).expect("one");
        let _two = KafkaStreams::new(stateless(), config(dir.path())).expect("two");
    }
}
