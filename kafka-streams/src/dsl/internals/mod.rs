//! What the DSL types share but users never see: the builder state behind every
//! `KStream`/`KTable` handle, and the processors the operators add (Kafka's
//! `kstream/internals`).

pub(crate) mod fk_join_ops;
#[cfg(test)]
mod reads_headers_tests;
pub(crate) mod session_ops;
pub(crate) mod sliding_ops;
pub(crate) mod stream_join_ops;
pub(crate) mod stream_ops;
pub(crate) mod suppress_ops;
pub(crate) mod table_join_ops;
pub(crate) mod table_ops;
pub(crate) mod window_ops;
pub(crate) mod windowed_forward;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::topology::graph::LogicalGraph;

/// The logical graph being built and the node-name counter.
pub(crate) struct BuilderInner {
    pub graph: LogicalGraph,
    pub index: usize,
    /// How to read the current value of a key of a table that has no store of its
    /// own (a filter, map-values or join result), by the table's node: a
    /// `table_join_ops::ValueGetter<K, V>`, typed when read back (Kafka's
    /// `KTableValueGetterSupplier`, which joins use).
    pub value_getters: std::collections::HashMap<usize, Arc<dyn std::any::Any + Send + Sync>>,
}

impl BuilderInner {
    /// Kafka's `newProcessorName`: `prefix` and a ten-digit counter.
    pub fn new_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{:010}", self.index);
        self.index += 1;
        name
    }
}

pub(crate) type SharedBuilder = Arc<Mutex<BuilderInner>>;

pub(crate) fn lock(builder: &SharedBuilder) -> MutexGuard<'_, BuilderInner> {
    builder.lock().unwrap_or_else(|e| e.into_inner())
}
