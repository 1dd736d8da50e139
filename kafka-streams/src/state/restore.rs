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

/// Interval between `info`-level progress lines (and
/// [`StateRestoreListener::on_restore_progress`] calls) of one restore: checked
/// between batches, so a line comes with the first batch after it elapsed.
pub(crate) const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Where one store's restore from one changelog partition stands (what
/// [`StateRestoreListener::on_restore_progress`] gets, and what the runtime's metrics
/// report per store and partition).
///
/// Progress is measured in changelog offsets: `total` is `end_offset - start_offset`,
/// an upper bound on the records (compaction and transaction markers leave gaps), so
/// `restored` may finish below it while `percent` reaches 100.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRestoreProgress {
    /// The store being restored.
    pub store: String,
    /// The changelog partition it is restored from.
    pub changelog: ChangelogPartition,
    /// The first changelog offset to restore (the checkpoint, or the log start).
    pub start_offset: i64,
    /// Where the restore ends (exclusive): the changelog's end when it started.
    pub end_offset: i64,
    /// Records applied so far.
    pub restored: u64,
    /// Changelog offsets still to read before `end_offset`.
    pub remaining: u64,
    /// Time since the restore started.
    pub elapsed: Duration,
    /// Whether the restore reached `end_offset`.
    pub done: bool,
}

impl StoreRestoreProgress {
    /// Offsets to restore in all: `end_offset - start_offset`.
    pub fn total(&self) -> u64 {
        u64::try_from(self.end_offset.saturating_sub(self.start_offset)).unwrap_or(0)
    }

    /// Offsets read so far: `total - remaining`.
    pub fn progressed(&self) -> u64 {
        self.total().saturating_sub(self.remaining)
    }

    /// Share of the offsets read, 0 to 100 (100 when there was nothing to restore or
    /// the restore is done).
    pub fn percent(&self) -> f64 {
        let total = self.total();
        if self.done || total == 0 {
            100.0
        } else {
            self.progressed() as f64 * 100.0 / total as f64
        }
    }

    /// Records restored per second since the start (0 before time has passed).
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.restored as f64 / secs
        } else {
            0.0
        }
    }

    /// Estimated time left, at the pace of offsets read so far: zero when done, `None`
    /// while nothing was read yet.
    pub fn eta(&self) -> Option<Duration> {
        if self.done || self.remaining == 0 {
            return Some(Duration::ZERO);
        }
        let progressed = self.progressed();
        (progressed > 0 && !self.elapsed.is_zero()).then(|| {
            Duration::from_secs_f64(
                self.elapsed.as_secs_f64() * self.remaining as f64 / progressed as f64,
            )
        })
    }
}

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

    /// Where a restore stands: called with the first batch after each
    /// [progress interval](StoreRestoreProgress) (5 s), as the progress is logged, and
    /// once more when the restore ends. Not part of Kafka's listener.
    fn on_restore_progress(&self, progress: &StoreRestoreProgress) {
        let _ = progress;
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

    /// Where the restore stands at `now`.
    pub fn progress_at(&self, now: Instant) -> StoreRestoreProgress {
        StoreRestoreProgress {
            store: self.store.clone(),
            changelog: self.changelog.clone(),
            start_offset: self.start_offset,
            end_offset: self.end_offset,
            restored: self.restored,
            remaining: self.remaining(),
            elapsed: now.saturating_duration_since(self.started),
            done: false,
        }
    }

    /// Records per second since the start, at `now`.
    #[cfg(test)]
    pub fn rate_at(&self, now: Instant) -> f64 {
        self.progress_at(now).rate()
    }

    /// Estimated time to the changelog's end at the pace so far, at `now`.
    #[cfg(test)]
    pub fn eta_at(&self, now: Instant) -> Option<Duration> {
        let progress = self.progress_at(now);
        (progress.progressed() > 0)
            .then(|| progress.eta())
            .flatten()
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
        if now.saturating_duration_since(self.last_log) >= PROGRESS_LOG_INTERVAL {
            self.last_log = now;
            let progress = self.progress_at(now);
            tracing::info!(
                store = %self.store,
                changelog = %self.changelog,
                restored = progress.restored,
                total = progress.total(),
                percent = format_args!("{:.1}", progress.percent()),
                rate_per_sec = progress.rate() as u64,
                eta_secs = progress.eta().map(|d| d.as_secs()),
                "restore progress"
            );
            if let Some(listener) = &self.listener {
                listener.on_restore_progress(&progress);
            }
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
    pub fn finish_at(mut self, now: Instant) {
        // The end was reached, whatever offsets compaction or markers left unread.
        self.position = self.position.max(self.end_offset);
        let progress = StoreRestoreProgress {
            done: true,
            ..self.progress_at(now)
        };
        tracing::info!(
            store = %self.store,
            changelog = %self.changelog,
            restored = self.restored,
            elapsed_ms = progress.elapsed.as_millis() as u64,
            rate_per_sec = progress.rate() as u64,
            "restored state store"
        );
        if let Some(listener) = &self.listener {
            listener.on_restore_progress(&progress);
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

    #[test]
    fn percent_total_and_eta() {
        let changelog = ChangelogPartition {
            topic: "app-counts-changelog".into(),
            partition: 0,
        };
        let t0 = Instant::now();
        let mut progress = RestoreProgress::start_at(t0, "counts", &changelog, 1_000, 5_000, None);
        let at_start = progress.progress_at(t0);
        assert_eq!(at_start.total(), 4_000);
        assert_eq!(at_start.percent(), 0.0);
        assert_eq!(at_start.eta(), None);
        // 1 000 offsets in 4 s (900 records: compaction gaps): 25 %, 12 s to go.
        progress.batch_restored_at(t0 + Duration::from_secs(4), 900, 1_999);
        let p = progress.progress_at(t0 + Duration::from_secs(4));
        assert_eq!(
            (p.restored, p.remaining, p.progressed()),
            (900, 3_000, 1_000)
        );
        assert!((p.percent() - 25.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.eta(), Some(Duration::from_secs(12)));
        assert!((p.rate() - 225.0).abs() < 1e-9);
        assert!(!p.done);
        // Finished with offsets left unread (a compacted tail): 100 %, nothing to go.
        let done = StoreRestoreProgress {
            done: true,
            ..p.clone()
        };
        assert_eq!(done.percent(), 100.0);
        assert_eq!(done.eta(), Some(Duration::ZERO));
        // Nothing to restore at all.
        let empty = StoreRestoreProgress {
            start_offset: 7,
            end_offset: 7,
            remaining: 0,
            ..p
        };
        assert_eq!(empty.total(), 0);
        assert_eq!(empty.percent(), 100.0);
    }

    /// Captures the `tracing` events' messages and fields, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct ProgressRecorder(Mutex<Vec<(u64, String, bool)>>);
    impl StateRestoreListener for ProgressRecorder {
        fn on_restore_progress(&self, p: &StoreRestoreProgress) {
            self.0
                .lock()
                .unwrap()
                .push((p.restored, format!("{:.0}", p.percent()), p.done));
        }
    }

    #[test]
    fn a_long_restore_logs_its_progress_every_five_seconds() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .without_time()
            .finish();
        let recorder = Arc::new(ProgressRecorder::default());
        let changelog = ChangelogPartition {
            topic: "app-counts-changelog".into(),
            partition: 3,
        };
        tracing::subscriber::with_default(subscriber, || {
            let t0 = Instant::now();
            let mut progress = RestoreProgress::start_at(
                t0,
                "counts",
                &changelog,
                0,
                12_000,
                Some(recorder.clone()),
            );
            // A batch of 1 000 records a second for 12 s, on a controlled clock.
            for second in 1..=12u64 {
                progress.batch_restored_at(
                    t0 + Duration::from_secs(second),
                    1_000,
                    second as i64 * 1_000 - 1,
                );
            }
            progress.finish_at(t0 + Duration::from_secs(12));
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let progress_lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("restore progress"))
            .collect();
        // At 5 s and 10 s: every 5 s, not with every batch.
        assert_eq!(progress_lines.len(), 2, "{log}");
        assert!(progress_lines[0].contains("restored=5000"), "{log}");
        assert!(progress_lines[0].contains("total=12000"), "{log}");
        assert!(progress_lines[0].contains("percent=41.7"), "{log}");
        assert!(progress_lines[0].contains("eta_secs=7"), "{log}");
        assert!(progress_lines[0].contains("store=counts"), "{log}");
        assert!(
            progress_lines[0].contains("changelog=app-counts-changelog-3"),
            "{log}"
        );
        assert!(progress_lines[1].contains("restored=10000"), "{log}");
        assert!(progress_lines[1].contains("eta_secs=2"), "{log}");
        assert!(log.contains("restored state store"), "{log}");
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec![
                (5_000, "42".to_string(), false),
                (10_000, "83".to_string(), false),
                (12_000, "100".to_string(), true),
            ]
        );
    }
}
