//! What the DSL types share but users never see: the builder state behind every
//! `KStream`/`KTable` handle, and the processors the operators add (Kafka's
//! `kstream/internals`).

pub(crate) mod session_ops;
pub(crate) mod sliding_ops;
pub(crate) mod stream_join_ops;
pub(crate) mod stream_ops;
pub(crate) mod table_ops;
pub(crate) mod window_ops;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::topology::graph::LogicalGraph;

/// The logical graph being built and the node-name counter.
pub(crate) struct BuilderInner {
    pub graph: LogicalGraph,
    pub index: usize,
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
