//! librdkafka callbacks: logs and errors routed into `tracing`, delivery reports,
//! the partitioner hook, and rebalance notifications.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{Partitioner as RdPartitioner, ProducerContext};
use rdkafka::Message;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::consumer::{RebalanceEvent, RebalanceListener};
use crate::producer::{default_partition, Partitioner};
use crate::record::TopicPartition;

/// The librdkafka log level matching the most verbose `tracing` level enabled.
pub(crate) fn rdkafka_log_level() -> RDKafkaLogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE | LevelFilter::DEBUG => RDKafkaLogLevel::Debug,
        LevelFilter::INFO => RDKafkaLogLevel::Info,
        LevelFilter::WARN => RDKafkaLogLevel::Warning,
        _ => RDKafkaLogLevel::Error,
    }
}

/// Logging shared by every client: librdkafka's log lines and global errors go to
/// `tracing` under the target `librdkafka`, at the matching level.
#[derive(Clone, Default)]
pub(crate) struct LoggingContext;

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(target: "librdkafka", error = %error, "{reason}");
    }
}

/// The outcome of one delivery: partition, offset and timestamp, or the error.
pub(crate) type DeliveryOutcome = Result<(i32, i64, rdkafka::Timestamp), KafkaError>;

/// Producer callbacks: completes each send's oneshot and wakes senders waiting
/// for room in librdkafka's queue.
pub(crate) struct ProducerCallbacks {
    pub(crate) queue_space: Arc<Notify>,
    pub(crate) partitioner: PartitionerAdapter,
}

impl ClientContext for ProducerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        LoggingContext.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason)
    }
}

impl ProducerContext<PartitionerAdapter> for ProducerCallbacks {
    type DeliveryOpaque = Box<oneshot::Sender<DeliveryOutcome>>;

    fn delivery(&self, result: &DeliveryResult<'_>, done: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset(), message.timestamp())),
            Err((error, _)) => Err(error.clone()),
        };
        // The sender may have been dropped (a cancelled send); the record was still
        // delivered or failed, and nobody is waiting for which.
        let _ = done.send(outcome);
        self.queue_space.notify_waiters();
    }

    fn get_custom_partitioner(&self) -> Option<&PartitionerAdapter> {
        self.partitioner.custom.as_ref().map(|_| &self.partitioner)
    }
}

/// Bridges the user's [`Partitioner`] to librdkafka, falling back to Kafka's
/// murmur2 key hashing when it declines.
pub(crate) struct PartitionerAdapter {
    pub(crate) custom: Option<Arc<dyn Partitioner>>,
    round_robin: AtomicU32,
}

impl PartitionerAdapter {
    pub(crate) fn new(custom: Option<Arc<dyn Partitioner>>) -> Self {
        PartitionerAdapter {
            custom,
            round_robin: AtomicU32::new(0),
        }
    }
}

impl RdPartitioner for PartitionerAdapter {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        partition_count: i32,
        is_available: impl Fn(i32) -> bool,
    ) -> i32 {
        let chosen = self
            .custom
            .as_ref()
            .and_then(|p| p.partition(topic, key, partition_count))
            .filter(|p| (0..partition_count).contains(p))
            .or_else(|| default_partition(key, partition_count));
        if let Some(partition) = chosen {
            return partition;
        }
        // Null key: spread over available partitions, as Kafka does.
        let start = self.round_robin.fetch_add(1, Ordering::Relaxed) as i32;
        (0..partition_count)
            .map(|i| (start.wrapping_add(i)).rem_euclid(partition_count.max(1)))
            .find(|&p| is_available(p))
            .unwrap_or(rdkafka::producer::PARTITION_UA)
    }
}

/// Consumer callbacks: rebalances go to the user's listener and to the event
/// channel, if anyone asked for it.
pub(crate) struct ConsumerCallbacks {
    pub(crate) listener: Option<Arc<dyn RebalanceListener>>,
    pub(crate) events: Mutex<Option<mpsc::UnboundedSender<RebalanceEvent>>>,
}

impl ConsumerCallbacks {
    fn emit(&self, event: RebalanceEvent) {
        if let Some(listener) = &self.listener {
            match &event {
                RebalanceEvent::Assigned(p) => listener.on_assigned(p),
                RebalanceEvent::Revoked(p) => listener.on_revoked(p),
                RebalanceEvent::Lost(p) => listener.on_lost(p),
                RebalanceEvent::Error(_) => {}
            }
        }
        let mut events = match self.events.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = events.as_ref() {
            if tx.send(event).is_err() {
                *events = None; // the receiver is gone
            }
        }
    }
}

impl ClientContext for ConsumerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        LoggingContext.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason)
    }
}

fn partitions(tpl: &rdkafka::TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ConsumerContext for ConsumerCallbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = partitions(tpl);
            tracing::info!(partitions = ?parts, lost = consumer.assignment_lost(), "partitions revoked");
            if consumer.assignment_lost() {
                self.emit(RebalanceEvent::Lost(parts));
            } else {
                self.emit(RebalanceEvent::Revoked(parts));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(partitions = ?parts, "partitions assigned");
                self.emit(RebalanceEvent::Assigned(parts));
            }
            Rebalance::Error(e) => {
                tracing::error!(error = %e, "rebalance failed");
                self.emit(RebalanceEvent::Error(e.to_string()));
            }
            Rebalance::Revoke(_) => {}
        }
    }
}
