//! End-to-end tests of the operations layer: admin client, group lag and offset
//! resets, dead-letter policy, transactions, statistics, trace context and
//! security settings.

mod admin;
mod dlq;
mod security;
mod stats;
mod trace;
mod transactions;
