//! The streams metrics through the [`metrics`] crate facade (feature `metrics`, off by
//! default), for whatever recorder the application installs (e.g.
//! `metrics-exporter-prometheus`).
//!
//! [`KafkaStreams::spawn_metrics_publisher`] copies a [`MetricsSnapshot`] into the
//! facade every interval (and [`KafkaStreams::publish_metrics`] once): totals as
//! counters (set to the absolute value), everything else as gauges. Names are Kafka's
//! metric names with `kafka_streams_` in front and `_` for `-`; latencies are in
//! milliseconds (suffix `_ms`), as Kafka reports them. Labels:
//!
//! | metric | labels |
//! | --- | --- |
//! | `kafka_streams_poll_records_avg`, `…_max`, `kafka_streams_poll_total`, `kafka_streams_commit_total`, `kafka_streams_commit_rate`, `kafka_streams_commit_latency_avg_ms`, `…_max_ms`, `kafka_streams_thread_process_total`, `kafka_streams_thread_process_rate`, `kafka_streams_thread_dropped_records_total` | `thread` |
//! | `kafka_streams_process_total`, `kafka_streams_process_rate`, `kafka_streams_process_latency_avg_ms`, `…_max_ms`, `kafka_streams_record_e2e_latency_avg_ms`, `…_min_ms`, `…_max_ms`, `kafka_streams_dropped_records_total` | `thread`, `task` |
//! | `kafka_streams_records_lag` | `thread`, `task`, `topic`, `partition` |
//! | `kafka_streams_put_total`, `kafka_streams_put_latency_avg_ms`, `…_max_ms`, and the same for `get` and `delete` | `thread`, `task`, `store` |
//! | `kafka_streams_restore_records_restored`, `kafka_streams_restore_records_total`, `kafka_streams_restore_percent`, `kafka_streams_restore_eta_seconds` | `store`, `topic`, `partition` |
//! | `kafka_streams_processed_records_total`, `kafka_streams_skipped_records_total`, `kafka_streams_produced_records_total`, `kafka_streams_commits_total` | none (the client) |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::{counter, gauge, Label};

use super::metrics::{MetricsSnapshot, StreamsMetrics};
use super::KafkaStreams;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn set_counter(name: &'static str, labels: &[Label], value: u64) {
    counter!(name, labels.iter()).absolute(value);
}

fn set_gauge(name: &'static str, labels: &[Label], value: f64) {
    gauge!(name, labels.iter()).set(value);
}

/// Copies `snapshot` into the `metrics` facade's current recorder (see the module
/// docs for names and labels).
pub fn publish(snapshot: &MetricsSnapshot) {
    let none: [Label; 0] = [];
    set_counter(
        "kafka_streams_processed_records_total",
        &none,
        snapshot.processed_records,
    );
    set_counter(
        "kafka_streams_skipped_records_total",
        &none,
        snapshot.skipped_records,
    );
    set_counter(
        "kafka_streams_produced_records_total",
        &none,
        snapshot.produced_records,
    );
    set_counter("kafka_streams_commits_total", &none, snapshot.commits);
    for t in &snapshot.threads {
        let thread = [Label::new("thread", t.thread.clone())];
        set_counter(
            "kafka_streams_thread_process_total",
            &thread,
            t.process_total,
        );
        set_gauge("kafka_streams_thread_process_rate", &thread, t.process_rate);
        set_counter("kafka_streams_poll_total", &thread, t.poll_total);
        set_gauge(
            "kafka_streams_poll_records_avg",
            &thread,
            t.poll_records_avg,
        );
        set_gauge(
            "kafka_streams_poll_records_max",
            &thread,
            t.poll_records_max as f64,
        );
        set_counter("kafka_streams_commit_total", &thread, t.commit_total);
        set_gauge("kafka_streams_commit_rate", &thread, t.commit_rate);
        set_gauge(
            "kafka_streams_commit_latency_avg_ms",
            &thread,
            ms(t.commit_latency_avg),
        );
        set_gauge(
            "kafka_streams_commit_latency_max_ms",
            &thread,
            ms(t.commit_latency_max),
        );
        set_counter(
            "kafka_streams_thread_dropped_records_total",
            &thread,
            t.dropped_records_total,
        );
        for task in &t.tasks {
            let labels = [
                Label::new("thread", t.thread.clone()),
                Label::new("task", task.task.to_string()),
            ];
            set_counter("kafka_streams_process_total", &labels, task.process_total);
            set_gauge("kafka_streams_process_rate", &labels, task.process_rate);
            set_gauge(
                "kafka_streams_process_latency_avg_ms",
                &labels,
                ms(task.process_latency_avg),
            );
            set_gauge(
                "kafka_streams_process_latency_max_ms",
                &labels,
                ms(task.process_latency_max),
            );
            set_counter(
                "kafka_streams_dropped_records_total",
                &labels,
                task.dropped_records_total,
            );
            if let Some(avg) = task.record_e2e_latency_avg_ms {
                set_gauge("kafka_streams_record_e2e_latency_avg_ms", &labels, avg);
            }
            if let Some(min) = task.record_e2e_latency_min_ms {
                set_gauge(
                    "kafka_streams_record_e2e_latency_min_ms",
                    &labels,
                    min as f64,
                );
            }
            if let Some(max) = task.record_e2e_latency_max_ms {
                set_gauge(
                    "kafka_streams_record_e2e_latency_max_ms",
                    &labels,
                    max as f64,
                );
            }
            for lag in &task.records_lag {
                if let Some(records) = lag.records_lag {
                    let mut labels = labels.to_vec();
                    labels.push(Label::new("topic", lag.topic.clone()));
                    labels.push(Label::new("partition", lag.partition.to_string()));
                    set_gauge("kafka_streams_records_lag", &labels, records as f64);
                }
            }
            for store in &task.stores {
                let mut labels = labels.to_vec();
                labels.push(Label::new("store", store.store.clone()));
                for (stat, total, avg, max) in [
                    (
                        &store.put,
                        "kafka_streams_put_total",
                        "kafka_streams_put_latency_avg_ms",
                        "kafka_streams_put_latency_max_ms",
                    ),
                    (
                        &store.get,
                        "kafka_streams_get_total",
                        "kafka_streams_get_latency_avg_ms",
                        "kafka_streams_get_latency_max_ms",
                    ),
                    (
                        &store.delete,
                        "kafka_streams_delete_total",
                        "kafka_streams_delete_latency_avg_ms",
                        "kafka_streams_delete_latency_max_ms",
                    ),
                ] {
                    set_counter(total, &labels, stat.count);
                    set_gauge(avg, &labels, ms(stat.avg()));
                    set_gauge(max, &labels, ms(stat.max));
                }
            }
        }
    }
    for r in &snapshot.restores {
        let labels = [
            Label::new("store", r.store.clone()),
            Label::new("topic", r.changelog.topic.clone()),
            Label::new("partition", r.changelog.partition.to_string()),
        ];
        set_gauge(
            "kafka_streams_restore_records_restored",
            &labels,
            r.restored as f64,
        );
        set_gauge(
            "kafka_streams_restore_records_total",
            &labels,
            r.total() as f64,
        );
        set_gauge("kafka_streams_restore_percent", &labels, r.percent());
        if let Some(eta) = r.eta() {
            set_gauge(
                "kafka_streams_restore_eta_seconds",
                &labels,
                eta.as_secs_f64(),
            );
        }
    }
}

/// Publishes a client's metrics to the `metrics` facade every interval, on a thread
/// of its own, until dropped (or until the client is dropped).
#[derive(Debug)]
pub struct MetricsPublisher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    published: Arc<AtomicBool>,
}

impl MetricsPublisher {
    /// Whether a snapshot was published yet.
    pub fn has_published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }
}

impl Drop for MetricsPublisher {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which then ends.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_publisher(
    metrics: Weak<StreamsMetrics>,
    interval: Duration,
    stop: mpsc::Receiver<()>,
    published: Arc<AtomicBool>,
) {
    loop {
        let Some(metrics) = metrics.upgrade() else {
            return;
        };
        publish(&metrics.snapshot());
        drop(metrics);
        published.store(true, Ordering::Release);
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl KafkaStreams {
    /// Copies the current [`metrics`](KafkaStreams::metrics) into the `metrics`
    /// facade once (feature `metrics`; names and labels in the module docs of
    /// `runtime::metrics_export`).
    pub fn publish_metrics(&self) {
        publish(&self.metrics());
    }

    /// Publishes the metrics to the `metrics` facade now and then every `interval`
    /// on a thread of its own, until the returned publisher is dropped (feature
    /// `metrics`). Kafka samples its rates over 30 s; a few seconds suit a
    /// Prometheus scrape interval.
    pub fn spawn_metrics_publisher(&self, interval: Duration) -> std::io::Result<MetricsPublisher> {
        let metrics = Arc::downgrade(self.streams_metrics());
        let (stop, stopped) = mpsc::channel();
        let published = Arc::new(AtomicBool::new(false));
        let flag = published.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-streams-metrics".into())
            .spawn(move || run_publisher(metrics, interval, stopped, flag))?;
        Ok(MetricsPublisher {
            stop: Some(stop),
            thread: Some(thread),
            published,
        })
    }
}
