//! Streams metrics against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a word
//! count whose state directory is lost restores its store from the changelog, and the
//! metrics and the restore listener report that restore per store and partition
//! (records restored, total, percent, ETA), while the thread, task and store
//! metrics report the processing before it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::{
    block_on, config, count_words, counts_of, create_topic, produce_lines, start_running,
    unique_name, wait_until,
};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::state::{StateRestoreListener, StoreRestoreProgress};

/// The progress reports the listener got.
#[derive(Clone, Default)]
struct ProgressRecorder(Arc<Mutex<Vec<StoreRestoreProgress>>>);

impl StateRestoreListener for ProgressRecorder {
    fn on_restore_progress(&self, progress: &StoreRestoreProgress) {
        self.0.lock().unwrap().push(progress.clone());
    }
}

const WORDS: usize = 1_000;

#[test]
fn a_restore_is_reported_by_the_metrics_and_the_listener() {
    let app = unique_name("metrics-restore");
    let input = unique_name("metrics-lines");
    let output = unique_name("metrics-counts");
    block_on(create_topic(&input, 1));
    let dir = tempfile::tempdir().expect("state dir");
    let start = |listener: ProgressRecorder| {
        let builder = StreamsBuilder::new();
        count_words(builder.stream::<String, String>(&input), "counts", &output);
        let config = StreamsConfig::new(&app, config())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path())
            // No record cache: one changelog record per word.
            .cache_max_bytes(0)
            .state_restore_listener(listener);
        start_running(builder, config)
    };
    // 100 lines of 10 distinct words.
    let lines: Vec<String> = (0..WORDS / 10)
        .map(|i| {
            (0..10)
                .map(|j| format!("w{}", i * 10 + j))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let expected: BTreeMap<String, i64> = (0..WORDS).map(|w| (format!("w{w}"), 1)).collect();

    let first = start(ProgressRecorder::default());
    produce_lines(
        &input,
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_until("counts", || counts_of(&output) == expected);
    // The counts are out before the commit that covers them (at-least-once).
    wait_until("a commit", || {
        first
            .metrics()
            .threads
            .first()
            .is_some_and(|t| t.commit_total >= 1)
    });
    let m = first.metrics();
    assert_eq!(m.processed_records, (WORDS / 10 + WORDS) as u64, "{m:#?}");
    let thread = &m.threads[0];
    assert_eq!(thread.process_total, m.processed_records);
    assert!(thread.poll_total >= 1 && thread.poll_records_max >= 1);
    assert!(thread.commit_total >= 1);
    // Two sub-topologies of one partition: the split, and the count.
    assert_eq!(thread.tasks.len(), 2, "{thread:#?}");
    let count_task = thread
        .tasks
        .iter()
        .find(|t| !t.stores.is_empty())
        .expect("the count's task");
    assert_eq!(count_task.process_total, WORDS as u64);
    assert_eq!(count_task.stores[0].store, "counts");
    assert_eq!(count_task.stores[0].get.count, WORDS as u64);
    assert_eq!(count_task.stores[0].put.count, WORDS as u64);
    assert!(count_task.record_e2e_latency_min_ms.is_some_and(|l| l >= 0));
    wait_until("lags refreshed", || {
        first.metrics().tasks().all(|t| {
            !t.records_lag.is_empty() && t.records_lag.iter().all(|l| l.records_lag == Some(0))
        })
    });
    assert!(first.close(), "graceful close");
    drop(first);

    // The state directory is lost: the whole changelog is restored.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let listener = ProgressRecorder::default();
    let second = start(listener.clone());
    let m = second.metrics();
    let restores: Vec<_> = m.restores.iter().filter(|r| r.store == "counts").collect();
    assert_eq!(restores.len(), 1, "{:#?}", m.restores);
    let restore = restores[0];
    assert_eq!(restore.changelog.topic, format!("{app}-counts-changelog"));
    assert_eq!(restore.changelog.partition, 0);
    assert!(restore.done, "{restore:?}");
    assert_eq!(restore.start_offset, 0);
    assert_eq!(restore.total(), WORDS as u64, "{restore:?}");
    assert_eq!(restore.restored, WORDS as u64, "{restore:?}");
    assert_eq!(restore.percent(), 100.0);
    assert_eq!(restore.eta(), Some(Duration::ZERO));
    assert!(restore.elapsed > Duration::ZERO);
    // The listener heard the end (with the first progress reports, if the restore
    // took over 5 s).
    let reports = listener.0.lock().unwrap().clone();
    let last = reports.last().expect("a progress report");
    assert!(last.done && last.restored == WORDS as u64, "{reports:#?}");
    assert!(second.close(), "graceful close");
}
