//! The `.checkpoint` file of a task directory: store → changelog partition → offset.
//!
//! RocksDB stores keep their checkpoint inside the database, in the same write batch as
//! the data ([`RocksDbStore`](super::RocksDbStore)), which is crash-consistent without
//! any file. The `.checkpoint` file is the mechanism for everything else: stores
//! without transactional metadata, and the runtime's Kafka-style per-task record of how
//! far each store has got (what Kafka reads to report task lags without opening stores).
//!
//! The file is replaced atomically: written to `.checkpoint.tmp`, synced, renamed over
//! `.checkpoint`, and the directory synced, so a crash leaves the old or the new file,
//! never a torn one. A file that does not parse is reported as
//! [`StateError::CorruptCheckpoint`], which means "restore from the beginning".
//!
//! Format (text, one entry a line, names never contain whitespace since Kafka topic
//! and store names cannot):
//! ```text
//! 0                                   <- format version
//! 2                                   <- number of entries
//! counts app-counts-changelog 3 1042  <- store topic partition next-offset
//! totals app-totals-changelog 3 77
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{StateError, StateResult};
use super::restorable::ChangelogPartition;

/// Name of the checkpoint file in a task directory.
pub(crate) const CHECKPOINT_FILE_NAME: &str = ".checkpoint";

const VERSION: u32 = 0;

/// How far one store has got in its changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointEntry {
    /// The store's changelog partition.
    pub changelog: ChangelogPartition,
    /// The next changelog offset to restore from (one past the last reflected record).
    pub offset: i64,
}

/// A task directory's `.checkpoint` file (Kafka's `OffsetCheckpoint`).
#[derive(Debug, Clone)]
pub(crate) struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint file of the task directory `task_dir`.
    pub fn in_dir(task_dir: impl AsRef<Path>) -> Self {
        CheckpointFile {
            path: task_dir.as_ref().join(CHECKPOINT_FILE_NAME),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, reason: impl Into<String>) -> StateError {
        StateError::CorruptCheckpoint {
            store: "*".into(),
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn io(&self, operation: &'static str, path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            store: "*".into(),
            path: path.to_path_buf(),
            operation,
            source,
        }
    }

    /// Reads every entry, by store name. A missing file reads as no entries.
    pub fn read(&self) -> StateResult<BTreeMap<String, CheckpointEntry>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(self.corrupt("not UTF-8 text"))
            }
            Err(e) => return Err(self.io("reading", &self.path, e)),
        };
        self.parse(&text)
    }

    /// The entries of a checkpoint file's text.
    pub fn parse(&self, text: &str) -> StateResult<BTreeMap<String, CheckpointEntry>> {
        let mut lines = text.lines();
        let version = lines.next().ok_or_else(|| self.corrupt("empty file"))?;
        if version.trim().parse::<u32>().ok() != Some(VERSION) {
            return Err(self.corrupt(format!("unknown version line {version:?}")));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| self.corrupt("missing or invalid entry count"))?;
        let mut entries = BTreeMap::new();
        for line in lines.by_ref().take(count) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [store, topic, partition, offset] = fields[..] else {
                return Err(self.corrupt(format!("expected 4 fields in line {line:?}")));
            };
            let partition: i32 = partition
                .parse()
                .map_err(|_| self.corrupt(format!("invalid partition in line {line:?}")))?;
            let offset: i64 = offset
                .parse()
                .ok()
                .filter(|o: &i64| *o >= 0)
                .ok_or_else(|| self.corrupt(format!("invalid offset in line {line:?}")))?;
            entries.insert(
                store.to_owned(),
                CheckpointEntry {
                    changelog: ChangelogPartition {
                        topic: topic.to_owned(),
                        partition,
                    },
                    offset,
                },
            );
        }
        if entries.len() != count {
            return Err(self.corrupt(format!("expected {count} entries, found {}", entries.len())));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(self.corrupt("trailing data after the entries"));
        }
        Ok(entries)
    }

    /// Replaces the file with `entries`, atomically.
    pub fn write(&self, entries: &BTreeMap<String, CheckpointEntry>) -> StateResult<()> {
        let text = Self::render(entries)?;
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        fs::create_dir_all(dir).map_err(|e| self.io("creating the directory", dir, e))?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = fs::File::create(&tmp).map_err(|e| self.io("creating", &tmp, e))?;
            file.write_all(text.as_bytes())
                .map_err(|e| self.io("writing", &tmp, e))?;
            file.sync_all().map_err(|e| self.io("syncing", &tmp, e))?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| self.io("renaming into place", &tmp, e))?;
        // Persist the rename itself (best effort where directories cannot be opened).
        if let Ok(dir_handle) = fs::File::open(dir) {
            dir_handle
                .sync_all()
                .map_err(|e| self.io("syncing the directory", dir, e))?;
        }
        Ok(())
    }

    /// The file's text for `entries`; names that the format cannot hold are refused.
    pub fn render(entries: &BTreeMap<String, CheckpointEntry>) -> StateResult<String> {
        let mut text = format!("{VERSION}\n{}\n", entries.len());
        for (store, entry) in entries {
            for name in [store.as_str(), entry.changelog.topic.as_str()] {
                if name.is_empty() || name.chars().any(char::is_whitespace) {
                    return Err(StateError::Config {
                        store: store.clone(),
                        reason: format!("name {name:?} cannot be written to a checkpoint file"),
                    });
                }
            }
            text.push_str(&format!(
                "{store} {} {} {}\n",
                entry.changelog.topic, entry.changelog.partition, entry.offset
            ));
        }
        Ok(text)
    }

    /// Sets the entry of `store` and rewrites the file (other stores' entries are kept).
    pub fn update(
        &self,
        store: &str,
        changelog: &ChangelogPartition,
        offset: i64,
    ) -> StateResult<()> {
        // A corrupt file is replaced rather than blocking the commit: its entries are
        // lost, which only means a longer restore for those stores.
        let mut entries = self.read().unwrap_or_else(|err| {
            tracing::warn!(path = %self.path.display(), error = %err, "replacing corrupt checkpoint file");
            BTreeMap::new()
        });
        entries.insert(
            store.to_owned(),
            CheckpointEntry {
                changelog: changelog.clone(),
                offset,
            },
        );
        self.write(&entries)
    }

    /// Removes the entry of `store`, if any (e.g. before its state is wiped).
    pub fn remove(&self, store: &str) -> StateResult<()> {
        let mut entries = self.read()?;
        if entries.remove(store).is_some() {
            self.write(&entries)?;
        }
        Ok(())
    }

    /// Deletes the file (Kafka deletes it while an exactly-once task runs, so that a
    /// crash leaves no checkpoint and the state is rebuilt).
    pub fn delete(&self) -> StateResult<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("deleting", &self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(topic: &str, partition: i32) -> ChangelogPartition {
        ChangelogPartition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn round_trip_update_remove() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::in_dir(dir.path().join("0_1"));
        assert!(file.read().unwrap().is_empty());
        file.update("counts", &cp("app-counts-changelog", 1), 42)
            .unwrap();
        file.update("totals", &cp("app-totals-changelog", 1), 7)
            .unwrap();
        file.update("counts", &cp("app-counts-changelog", 1), 50)
            .unwrap();
        let entries = file.read().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries["counts"].offset, 50);
        assert_eq!(entries["totals"].changelog, cp("app-totals-changelog", 1));
        let text = fs::read_to_string(file.path()).unwrap();
        assert_eq!(
            text,
            "0\n2\ncounts app-counts-changelog 1 50\ntotals app-totals-changelog 1 7\n"
        );
        assert!(!file.path().with_extension("tmp").exists());
        file.remove("counts").unwrap();
        assert_eq!(file.read().unwrap().len(), 1);
        file.delete().unwrap();
        assert!(file.read().unwrap().is_empty());
        file.delete().unwrap();
    }

    #[test]
    fn corrupt_files_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::in_dir(dir.path());
        for bad in [
            "",
            "7\n0\n",
            "0\nx\n",
            "0\n2\ncounts t 1 5\n",
            "0\n1\ncounts t one 5\n",
            "0\n1\ncounts t 1 -3\n",
            "0\n1\ncounts t 1 5\ngarbage\n",
        ] {
            fs::write(file.path(), bad).unwrap();
            let err = file.read().unwrap_err();
            assert!(err.is_corruption(), "{bad:?} gave {err}");
        }
        fs::write(file.path(), [0xff, 0xfe, 0x00]).unwrap();
        assert!(file.read().unwrap_err().is_corruption());
        // update() replaces a corrupt file instead of failing the commit.
        file.update("s", &cp("t", 0), 3).unwrap();
        assert_eq!(file.read().unwrap()["s"].offset, 3);
    }

    #[test]
    fn names_with_whitespace_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::in_dir(dir.path());
        let err = file.update("my store", &cp("t", 0), 1).unwrap_err();
        assert!(matches!(err, StateError::Config { .. }), "{err}");
    }
}
