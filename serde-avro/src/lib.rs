//! Avro serializers and deserializers in Confluent's wire format, for kafka-client's
//! [`Serializer`](kafka_client::serde::Serializer) / [`Deserializer`](kafka_client::serde::Deserializer)
//! traits, so they plug into the typed Producer, Consumer and kafka-streams.
//!
//! - [`AvroSerializer<T>`] / [`AvroDeserializer<T>`] for Rust types deriving serde and
//!   `apache_avro::AvroSchema`; [`GenericAvroSerializer`] / [`GenericAvroDeserializer`] for
//!   `apache_avro::types::Value` with an explicit schema.
//! - Bytes: magic byte `0x00`, 4-byte big-endian schema id, Avro binary datum ([`wire`]),
//!   byte-compatible with Confluent's Java and Python serdes.
//! - Readers resolve the writer's schema into their own with Avro's rules, so consumers on
//!   schema v1 read v2 data and the reverse wherever the rules allow.
//! - [`SchemaRegistryClient`], selected by `schema.registry.url`: Confluent's REST API over
//!   HTTP, or `mock://<scope>`, an in-memory registry shared by the clients of the process
//!   using that scope, with the same compatibility checks ([`CompatibilityLevel`]).
//!
//! Registry I/O happens only in the asynchronous `prepare` hooks; `serialize` and
//! `deserialize` use the caches and never block.
//!
//! Errors are [`AvroSerdeError`]s inside `SerdeError::Custom`:
//! `err.downcast_ref::<AvroSerdeError>()`.
//!
//! A producer and a consumer of Avro values, sharing one registry client (and its caches):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use apache_avro::AvroSchema;
//! use kafka_client::serde::StringSerde;
//! use kafka_client::{ClientConfig, Consumer, Producer, ProducerRecord};
//! use serde_avro::{AvroDeserializer, AvroSerdeConfig, AvroSerializer, SchemaRegistryClient};
//!
//! #[derive(Debug, serde::Serialize, serde::Deserialize, AvroSchema)]
//! struct Reading { sensor_id: String, value: i64 }
//!
//! let registry = SchemaRegistryClient::from_url("http://localhost:8081")?;
//! let config = ClientConfig::new("localhost:9092").group_id("readers");
//!
//! // Registers `Reading`'s schema under the subject `plant01-value` on the first send.
//! let producer = Producer::with_serializers(
//!     &config,
//!     StringSerde,
//!     AvroSerializer::<Reading>::new(registry.clone(), AvroSerdeConfig::default())?,
//! )?;
//! let reading = Reading { sensor_id: "t1".into(), value: 21 };
//! producer.send(ProducerRecord::new("plant01", "t1".to_string(), reading)).await?;
//!
//! // Fetches each writer schema by the id in the record, once, and resolves it into `Reading`.
//! let consumer = Consumer::with_deserializers(
//!     &config,
//!     StringSerde,
//!     AvroDeserializer::<Reading>::new(registry)?,
//! )?;
//! consumer.subscribe(&["plant01"])?;
//! let record = consumer.recv().await?;
//! println!("{} -> {:?}", record.key, record.value);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bounds;
pub mod client;
pub mod compatibility;
pub mod config;
pub mod deserializer;
pub mod error;
mod http;
pub mod mock;
pub mod schema;
pub mod serializer;
pub mod wire;

pub use client::SchemaRegistryClient;
pub use compatibility::{check_compatibility, CompatibilityLevel};
pub use config::{AvroSerdeConfig, Credentials, SchemaRegistryConfig, SubjectNameStrategy};
pub use deserializer::{AvroDeserializer, GenericAvroDeserializer};
pub use error::AvroSerdeError;
pub use mock::MockSchemaRegistry;
pub use schema::{ParsedSchema, RegisteredSchema, SchemaDefinition, SchemaReference};
pub use serializer::{AvroSerializer, GenericAvroSerializer};

/// Re-export of the Avro library this crate is built on, so users derive `AvroSchema` with
/// the matching version.
pub use apache_avro;
