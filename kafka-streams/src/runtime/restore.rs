//! Restoring a task's logged stores from their changelogs (Kafka's
//! `StoreChangelogReader`), on the stream thread when the task is assigned.
//!
//! Each logged store restores from its checkpoint (`None`: from the start of the
//! changelog) to the changelog partition's end, batch by batch through
//! [`KeyValueStore::restore_batch`](crate::state::KeyValueStore::restore_batch), which
//! advances the checkpoint with the data. Progress goes to `tracing` and the user's
//! [`StateRestoreListener`] through [`RestoreProgress`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::task::StreamTask;
use crate::error::{Result, StreamsError};
use crate::state::{RestoreProgress, RestoreRecord, StateRestoreListener};

/// Records applied per restore batch.
const RESTORE_BATCH: usize = 1000;

/// How long a restore may go without reading a record before it fails.
const RESTORE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Restores every logged store of `task` to the end of its changelog partition.
pub(crate) fn restore_task(
    task: &mut StreamTask,
    client: &rdkafka::ClientConfig,
    application_id: &str,
    listener: Option<Arc<dyn StateRestoreListener>>,
) -> Result<()> {
    let task_id = task.id();
    for (name, store) in task.stores_mut() {
        let Some(changelog) = store.changelog().cloned() else {
            continue;
        };
        let Some(bytes) = store.byte_store() else {
            continue;
        };
        let kafka_err = |what: &str, e| {
            StreamsError::kafka(
                format!(
                    "{what} (restoring store {name} of task {task_id}, partition {})",
                    changelog.partition
                ),
                &changelog.topic,
                e,
            )
        };
        let mut config = client.clone();
        config
            .set("group.id", format!("{application_id}-restore-consumer"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| kafka_err("creating the restore consumer", e))?;
        let (low, high) = consumer
            .fetch_watermarks(
                &changelog.topic,
                changelog.partition,
                Duration::from_secs(30),
            )
            .map_err(|e| kafka_err("fetching changelog watermarks", e))?;
        let start = bytes.checkpointed_offset().unwrap_or(low).max(low);
        if start >= high {
            tracing::debug!(store = %name, task = %task_id, changelog = %changelog, start, high, "store is up to date; nothing to restore");
            if let Some(l) = &listener {
                l.on_restore_start(&changelog, name, start, high);
                l.on_restore_end(&changelog, name, 0);
            }
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&changelog.topic, changelog.partition, Offset::Offset(start))
            .map_err(|e| kafka_err("assigning the changelog partition", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err("assigning the changelog partition", e))?;
        let mut progress =
            RestoreProgress::start(name.clone(), &changelog, start, high, listener.clone());
        let mut next = start;
        let mut last_progress = Instant::now();
        while next < high {
            let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>, i64)> = Vec::new();
            while batch.len() < RESTORE_BATCH {
                let wait = if batch.is_empty() {
                    Duration::from_millis(100)
                } else {
                    Duration::ZERO
                };
                match consumer.poll(wait) {
                    Some(Ok(m)) => {
                        next = m.offset() + 1;
                        if let Some(key) = m.key() {
                            batch.push((key.to_vec(), m.payload().map(<[u8]>::to_vec), m.offset()));
                        }
                        if next >= high {
                            break;
                        }
                    }
                    Some(Err(e)) => return Err(kafka_err("reading the changelog", e)),
                    None => break,
                }
            }
            if batch.is_empty() {
                if last_progress.elapsed() > RESTORE_STALL_TIMEOUT {
                    return Err(StreamsError::IllegalState(format!(
                        "restoring store {name} of task {task_id} from {changelog} stalled at offset {next} (end {high})"
                    )));
                }
                continue;
            }
            last_progress = Instant::now();
            let records: Vec<RestoreRecord<'_>> = batch
                .iter()
                .map(|(k, v, offset)| RestoreRecord {
                    key: k,
                    value: v.as_deref(),
                    offset: *offset,
                })
                .collect();
            bytes.restore_batch(&records)?;
            let last = batch.last().map_or(next - 1, |b| b.2);
            progress.batch_restored(batch.len() as u64, last);
        }
        progress.finish();
    }
    Ok(())
}
