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
