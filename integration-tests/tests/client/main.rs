//! End-to-end tests of the typed producer and consumer against a real
//! Kafka-protocol broker (`KAFKA_BOOTSTRAP_SERVERS`).

mod groups;
mod positions;
mod producer;
mod roundtrip;
mod timestamps;
