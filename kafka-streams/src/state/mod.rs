//! State stores: the handle processors use, and how a task owns its stores.
//!
//! This module holds the contract only; key-value stores, RocksDB, changelogs and
//! restoration come with the state-store work. What is fixed here:
//! - a task owns one instance of each store connected to its processors, built by a
//!   [`StoreBuilder`] when the task is created;
//! - the single commit path flushes every store of a task **before** the producer is
//!   flushed and the offsets are committed ([`StateStore::flush`]);
//! - stores are closed when their task closes.

use std::any::Any;

use crate::error::Result;
use crate::processor::TaskId;

/// A store owned by one task (Kafka's `StateStore`).
pub trait StateStore: Send + 'static {
    /// The store's name, unique in the topology.
    fn name(&self) -> &str;

    /// Makes every write so far durable (called by the commit path first).
    fn flush(&mut self) -> Result<()>;

    /// Releases the store's resources (called when the task closes).
    fn close(&mut self) -> Result<()>;

    /// Whether the store keeps its data on disk.
    fn persistent(&self) -> bool {
        false
    }

    /// The store as `Any`, so a processor can reach its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Makes a task's instance of a store (Kafka's `StoreBuilder`).
pub trait StoreBuilder: Send + Sync + 'static {
    /// Name of the stores it builds.
    fn name(&self) -> &str;

    /// A new store for `task`.
    fn build(&self, task: TaskId) -> Result<Box<dyn StateStore>>;
}
