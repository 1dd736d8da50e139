//! # kafka-streams
//!
//! Kafka Streams for Rust, over librdkafka: a typed DSL, topologies you can print and
//! draw, a runtime of stream threads and tasks with one commit path, error handlers,
//! the Processor API, and a synchronous test driver that runs the same task code.
//!
//! ```
//! use kafka_streams::dsl::StreamsBuilder;
//! use kafka_streams::test_driver::TopologyTestDriver;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, i64>("plant01")
//!     .filter(|_, celsius| *celsius > -273)
//!     .map_values(|celsius| celsius * 9 / 5 + 32)
//!     .to("plant01-fahrenheit");
//! let topology = builder.build().unwrap();
//!
//! let driver = TopologyTestDriver::new(topology).unwrap();
//! let input = driver.create_input_topic::<String, i64>("plant01");
//! let output = driver.create_output_topic::<String, i64>("plant01-fahrenheit");
//! input.pipe_input("t1".to_string(), 100).unwrap();
//! input.pipe_input("t2".to_string(), -300).unwrap();
//! assert_eq!(output.read_key_values_to_list().unwrap(), vec![("t1".to_string(), 212)]);
//! ```
//!
//! ## Layout
//! Dependencies flow one way: [`dsl`] → [`topology`] → [`processor`] / [`state`] ←
//! [`runtime`]; [`test_driver`] drives the runtime's tasks without a broker
//! (`tests/module_layering.rs` fails on any other arrow).
//! - [`dsl`]: `StreamsBuilder`, `KStream`, `KTable`, the grouped and cogrouped streams,
//!   option structs; their processors sit in `dsl/internals`. Each call adds a node to
//!   the topology's logical graph. Knows nothing of threads.
//! - [`topology`]: the logical graph, the optimize pass (`topology.optimization`),
//!   the built node graph, sub-topologies, repartition sizing, co-partition groups and
//!   `describe()` (text, DOT, Mermaid).
//! - [`processor`]: the public `Processor` trait, `ProcessorContext`, `Record`.
//! - [`state`]: store traits, the key-value stack (typed → caching → logging →
//!   RocksDB or memory) and the persistence trait every store kind implements.
//! - [`runtime`]: `KafkaStreams` and `StreamsConfig`; inside, the stream thread, task
//!   manager, task, partition group (`max.task.idle.ms`), record deserializer, state
//!   manager, record collector and the commit path.
//! - [`test_driver`]: `TopologyTestDriver`, no broker.
//! - [`error`]: `StreamsError`, with a domain and a retry hint.
//! - `windowed` (no layer; reached through [`dsl`]): `Window`, `Windowed` keys and
//!   their serdes, shared by the DSL and the window stores.
//!
//! A record's path from fetch to sink: `runtime/thread.rs` (poll, hand to the task) →
//! `runtime/task.rs` (add, process, drive the nodes, encode at a sink) →
//! `runtime/record_deserializer.rs` (decode, deserialization handler) →
//! `runtime/partition_group.rs` (which record next) → `runtime/record_collector.rs`
//! (send).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod common;
pub mod dsl;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod processor;
pub mod runtime;
pub mod state;
pub mod test_driver;
pub mod topology;
mod windowed;

pub use dsl::{KStream, StreamsBuilder};
pub use error::{ErrorDomain, InvalidStoreReason, Result, StreamsError};
pub use topology::Topology;
