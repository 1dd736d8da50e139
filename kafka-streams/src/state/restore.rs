//! Restore progress: the user's [`StateRestoreListener`] and the `tracing` reports
//! ([`RestoreProgress`]) the runtime's restore loop emits.
//!
//! The restore loop belongs to the runtime (it owns the restore consumer); per store
//! and changelog partition it does:
//! ```text
//! let mut progress = RestoreProgress::start(store, &changelog, start_offset, end_offset, listener);
//! while position < end_offset {
//!     let batch = poll();                      // records of the changelog partition
//!     store.restore_batch(&batch)?;            // applies + advances the checkpoint
//!     progress.batch_restored(batch.len() as u64, last_offset_of(batch));
//! }
//! progress.finish();
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::restorable::ChangelogPartition;

/// Interval between `info`-level progress lines of one restore.
pub(crate) const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Told about restores (Kafka's `StateRestoreListener`). Called on the thread that
/// restores: keep it quick.
pub trait StateRestoreListener: Send + Sync {
    /// Restoring `store` from `changelog` starts at `start_offset`; the changelog ends at
    /// `end_offset` (exclusive).
    fn on_restore_start(
        &self,
        changelog: &ChangelogPartition,
        store: &str,
        start_offset: i64,
        end_offset: i64,
    ) {
        let _ = (changelog, store, start_offset, end_offset);
    }

    /// A batch of `num_restored` records ending at `batch_end_offset` was applied.
    fn on_batch_restored(
        &self,
        changelog: &ChangelogPartition,
        store: &str,
        batch_end_offset: i64,
        num_restored: u64,
    ) {
        let _ = (changelog, store, batch_end_offset, num_restored);
    }

    /// Restoring `store` finished after `total_restored` records.
    fn on_restore_end(&self, changelog: &ChangelogPartition, store: &str, total_restored: u64) {
        let _ = (changelog, store, total_restored);
    }
}

/// Tracks one store's restore and reports it: store, records restored of total, rate
/// and ETA through `tracing`, and the events to the user's listener.
pub(crate) struct RestoreProgress {
    store: String,
    changelog: ChangelogPartition,
    start_offset: i64,
    end_offset: i64,
    position: i64,
    restored: u64,
    started: Instant,
    last_log: Instant,
    listener: Option<Arc<dyn StateRestoreListener>>,
}

impl std::fmt::Debug for RestoreProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreProgress")
            .field("store", &self.store)
            .field("changelog", &self.changelog)
            .field("start_offset", &self.start_offset)
            .field("end_offset", &self.end_offset)
            .field("position", &self.position)
            .field("restored", &self.restored)
            .finish()
    }
}

impl RestoreProgress {
    /// Starts tracking the restore of `store` from `start_offset` to `end_offset`.
    pub fn start(
        store: impl Into<String>,
        changelog: &ChangelogPartition,
        start_offset: i64,
        end_offset: i64,
        listener: Option<Arc<dyn StateRestoreListener>>,
    ) -> Self {
        Self::start_at(
            Instant::now(),
            store,
            changelog,
            start_offset,
            end_offset,
            listener,
        )
    }

    /// [`RestoreProgress::start`] with an explicit clock reading (for tests).
    pub fn start_at(
        now: Instant,
        store: impl Into<String>,
        changelog: &ChangelogPartition,
        start_offset: i64,
        end_offset: i64,
        listener: Option<Arc<dyn StateRestoreListener>>,
    ) -> Self {
        let progress = RestoreProgress {
            store: store.into(),
            changelog: changelog.clone(),
            start_offset,
            end_offset,
            position: start_offset,
            restored: 0,
            started: now,
            last_log: now,
            listener,
        };
        tracing::info!(
            store = %progress.store,
            changelog = %progress.changelog,
            start_offset,
            end_offset,
            to_restore = progress.remaining(),
            "restoring state store"
        );
        if let Some(listener) = &progress.listener {
            listener.on_restore_start(
                &progress.changelog,
                &progress.store,
                start_offset,
                end_offset,
            );
        }
        progress
    }

    /// Records restored so far.
    #[cfg(test)]
    pub fn restored(&self) -> u64 {
        self.restored
    }

    /// Offsets left before the changelog's end (an upper bound on records: compaction
    /// and transaction markers leave gaps).
    pub fn remaining(&self) -> u64 {
        u64::try_from(self.end_offset.saturating_sub(self.position)).unwrap_or(0)
    }

    /// Records per second since the start, at `now`.
    pub fn rate_at(&self, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(self.started).as_secs_f64();
        if secs > 0.0 {
            self.restored as f64 / secs
        } else {
            0.0
        }
    }

    /// Estimated time to the changelog's end at the rate so far, at `now`.
    pub fn eta_at(&self, now: Instant) -> Option<Duration> {
        let rate = self.rate_at(now);
        (rate > 0.0).then(|| Duration::from_secs_f64(self.remaining() as f64 / rate))
    }

    /// A batch of `count` records up to `last_offset` was applied.
    pub fn batch_restored(&mut self, count: u64, last_offset: i64) {
        self.batch_restored_at(Instant::now(), count, last_offset);
    }

    /// [`RestoreProgress::batch_restored`] with an explicit clock reading.
    pub fn batch_restored_at(&mut self, now: Instant, count: u64, last_offset: i64) {
        self.restored += count;
        self.position = self.position.max(last_offset.saturating_add(1));
        if let Some(listener) = &self.listener {
            listener.on_batch_restored(&self.changelog, &self.store, last_offset, count);
        }
        let rate = self.rate_at(now);
        let eta_secs = self.eta_at(now).map(|d| d.as_secs());
        if now.saturating_duration_since(self.last_log) >= PROGRESS_LOG_INTERVAL {
            self.last_log = now;
            tracing::info!(
                store = %self.store,
                changelog = %self.changelog,
                restored = self.restored,
                total = self.restored + self.remaining(),
                rate_per_sec = rate as u64,
                eta_secs,
                "restore progress"
            );
        } else {
            tracing::debug!(
                store = %self.store,
                changelog = %self.changelog,
                restored = self.restored,
                remaining = self.remaining(),
                "restored batch"
            );
        }
    }

    /// The restore reached the changelog's end.
    pub fn finish(self) {
        self.finish_at(Instant::now());
    }

    /// [`RestoreProgress::finish`] with an explicit clock reading.
    pub fn finish_at(self, now: Instant) {
        tracing::info!(
            store = %self.store,
            changelog = %self.changelog,
            restored = self.restored,
            elapsed_ms = now.saturating_duration_since(self.started).as_millis() as u64,
            rate_per_sec = self.rate_at(now) as u64,
            "restored state store"
        );
        if let Some(listener) = &self.listener {
            listener.on_restore_end(&self.changelog, &self.store, self.restored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);
    impl StateRestoreListener for Recorder {
        fn on_restore_start(&self, c: &ChangelogPartition, s: &str, from: i64, to: i64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {c} {s} {from} {to}"));
        }
        fn on_batch_restored(&self, _: &ChangelogPartition, _: &str, end: i64, n: u64) {
            self.0.lock().unwrap().push(format!("batch {end} {n}"));
        }
        fn on_restore_end(&self, _: &ChangelogPartition, s: &str, total: u64) {
            self.0.lock().unwrap().push(format!("end {s} {total}"));
        }
    }

    #[test]
    fn rate_eta_and_listener_events() {
        let recorder = Arc::new(Recorder::default());
        let changelog = ChangelogPartition {
            topic: "app-counts-changelog".into(),
            partition: 1,
        };
        let t0 = Instant::now();
        let mut progress =
            RestoreProgress::start_at(t0, "counts", &changelog, 100, 1100, Some(recorder.clone()));
        assert_eq!(progress.remaining(), 1000);
        assert_eq!(progress.eta_at(t0), None);
        progress.batch_restored_at(t0 + Duration::from_secs(2), 200, 299);
        assert_eq!(progress.restored(), 200);
        assert_eq!(progress.remaining(), 800);
        assert!((progress.rate_at(t0 + Duration::from_secs(2)) - 100.0).abs() < 1e-9);
        assert_eq!(
            progress.eta_at(t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(8))
        );
        progress.batch_restored_at(t0 + Duration::from_secs(11), 800, 1099);
        assert_eq!(progress.remaining(), 0);
        progress.finish_at(t0 + Duration::from_secs(12));
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec![
                "start app-counts-changelog-1 counts 100 1100".to_string(),
                "batch 299 200".to_string(),
                "batch 1099 800".to_string(),
                "end counts 1000".to_string(),
            ]
        );
    }
}
