//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use kafka_client::serde::SerdeError;
use serde_avro::AvroSerdeError;

/// A `mock://` URL no other test uses, so tests run in parallel without sharing subjects.
pub fn fresh_mock_url(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "mock://{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The crate's error inside a `SerdeError`, failing the test if it is something else.
pub fn avro_error(error: &SerdeError) -> &AvroSerdeError {
    error
        .downcast_ref::<AvroSerdeError>()
        .unwrap_or_else(|| panic!("expected an AvroSerdeError, got {error:?}"))
}
