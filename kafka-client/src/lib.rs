//! # kafka-client
//!
//! Typed Kafka clients over librdkafka (through the `rdkafka` crate), for tokio.
//!
//! - [`Producer<K, V>`] and [`Consumer<K, V>`] move typed records; keys and values go
//!   through the [`serde::Serializer`] / [`serde::Deserializer`] traits, the one codec
//!   path shared with `serde-avro` and `kafka-streams`.
//! - [`Consumer::recv_fetched`] and [`Consumer::recv_batch`] return [`FetchedRecord`]s,
//!   which keep librdkafka's message instead of copying it and parse headers only
//!   when asked; [`Producer::send_and_forget`] queues a record without a future per
//!   record. Both consumer and producer read and write through librdkafka's batch
//!   queue and cached topic handles.
//! - [`ClientConfig`] is a typed builder over librdkafka's properties.
//! - Every librdkafka call that blocks (commit, flush, metadata, seek) runs on
//!   tokio's blocking pool, so the executor keeps running other tasks.
//! - librdkafka's log lines go to `tracing` (target `librdkafka`); `send`, `recv` and
//!   `commit` have debug-level spans.
//! - [`dev::EmbeddedCluster`] runs librdkafka's mock cluster in-process for
//!   zero-setup examples and tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_client::{serde::Json, ClientConfig, Consumer, Producer, ProducerRecord};
//!
//! #[derive(Debug, serde::Serialize, serde::Deserialize)]
//! struct Reading { sensor_id: String, value: i64 }
//!
//! let config = ClientConfig::new("localhost:9092").group_id("readers");
//! let producer: Producer<String, Json<Reading>> = Producer::new(&config)?;
//! let reading = Reading { sensor_id: "t1".into(), value: 21 };
//! producer.send(ProducerRecord::new("plant01", "t1".to_string(), Json(reading))).await?;
//!
//! let consumer: Consumer<String, Json<Reading>> = Consumer::new(&config)?;
//! consumer.subscribe(&["plant01"])?;
//! let record = consumer.recv().await?;
//! println!("{} -> {}", record.key, record.value.value);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// Every call into librdkafka's C API is in `ffi`. It and `delivery` (the pointers
// that librdkafka hands back with each delivery report) are the modules allowed
// `unsafe`.
#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod consumer;
mod context;
#[allow(unsafe_code)]
mod delivery;
pub mod dev;
pub mod dlq;
pub mod error;
mod fetch_queue;
pub mod fetched;
#[allow(unsafe_code)]
mod ffi;
pub mod producer;
pub mod record;
pub mod serde;
pub mod stats;
mod topic_producer;
pub mod trace_context;
pub mod transaction;

/// Building blocks that `kafka-streams` uses and that are not a stable API: batch
/// reads of chosen partitions ([`FetchQueue`](internal::FetchQueue)) and producing
/// through cached topic handles ([`TopicProducer`](internal::TopicProducer)), over
/// librdkafka's C API. They may change or go in any release; use [`Consumer`] and
/// [`Producer`] instead.
#[doc(hidden)]
pub mod internal {
    pub use crate::fetch_queue::{FetchQueue, FetchedBatch, FetchedMessage};
    pub use crate::ffi::partition_metadata_bytes;
    pub use crate::topic_producer::{OutgoingRecord, TopicProducer};
}

pub use config::ClientConfig;
pub use consumer::{
    Consumer, ConsumerBuilder, Offset, PartitionLag, RebalanceEvent, RebalanceListener,
};
pub use error::{ConsumeError, DeserializationError, Error, Result, SendError, SendErrorKind};
pub use fetched::FetchedRecord;
pub use producer::{default_partition, Partitioner, Producer, ProducerBuilder};
pub use record::{
    ConsumerRecord, Header, Headers, ProducerRecord, RecordMetadata, TimestampType, TopicPartition,
};

/// The `rdkafka` crate this SDK is built on, for what the typed API does not cover.
pub use rdkafka;
