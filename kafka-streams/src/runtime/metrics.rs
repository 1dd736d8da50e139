//! Counters of a Kafka Streams client, shared by its stream threads and tasks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (Kafka Streams' task and thread metrics, reduced to what matters).
#[derive(Debug, Default)]
pub struct StreamsMetrics {
    processed: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    processing_errors_skipped: AtomicU64,
    production_errors_skipped: AtomicU64,
    produced: AtomicU64,
    commits: AtomicU64,
    punctuations: AtomicU64,
    enforced_processing: AtomicU64,
}

/// A point-in-time copy of a client's counters (Kafka Streams' task and thread metrics,
/// reduced to what matters), from [`KafkaStreams::metrics`](super::KafkaStreams::metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Input records processed through the topology.
    pub processed_records: u64,
    /// Input records skipped: undeserializable with log-and-continue, or with an
    /// invalid timestamp; and records a processor dropped, such as a windowed
    /// aggregation's record for a window already closed (counted once per closed
    /// window it falls in, as Kafka does). Kafka's task-level `dropped-records`.
    pub skipped_records: u64,
    /// Input records sent to the dead-letter topic.
    pub dead_lettered_records: u64,
    /// Records skipped after a processing error with log-and-continue.
    pub processing_errors_skipped: u64,
    /// Records skipped after a production error with continue.
    pub production_errors_skipped: u64,
    /// Records handed to the producer.
    pub produced_records: u64,
    /// Commits completed.
    pub commits: u64,
    /// Punctuations run.
    pub punctuations: u64,
    /// Records a task processed although one of its inputs had no buffered record,
    /// after waiting `max.task.idle.ms` for it (Kafka's task metric
    /// `enforced-processing-total`): they may be out of timestamp order across the
    /// task's inputs.
    pub enforced_processing_total: u64,
}

impl StreamsMetrics {
    /// A copy of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            processed_records: get(&self.processed),
            skipped_records: get(&self.skipped),
            dead_lettered_records: get(&self.dead_lettered),
            processing_errors_skipped: get(&self.processing_errors_skipped),
            production_errors_skipped: get(&self.production_errors_skipped),
            produced_records: get(&self.produced),
            commits: get(&self.commits),
            punctuations: get(&self.punctuations),
            enforced_processing_total: get(&self.enforced_processing),
        }
    }

    pub(crate) fn processed(&self) {
        self.processed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    /// The `dropped-records` counter itself, handed to processors through their
    /// context (the processor layer does not know the runtime's metrics).
    pub(crate) fn dropped_records_counter(&self) -> &AtomicU64 {
        &self.skipped
    }
    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn processing_error_skipped(&self) {
        self.processing_errors_skipped
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn production_error_skipped(&self) {
        self.production_errors_skipped
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn produced(&self) {
        self.produced.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn punctuated(&self) {
        self.punctuations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn enforced_processing(&self) {
        self.enforced_processing.fetch_add(1, Ordering::Relaxed);
    }
}
