//! The one error type of this crate.

use kafka_client::serde::{MessageField, SerdeError};

/// Why an Avro value could not be encoded or decoded, or why a schema-registry call failed.
///
/// Serializers hand it to kafka-client wrapped in [`SerdeError::Custom`]; get it back with
/// `serde_error.downcast_ref::<AvroSerdeError>()` and match on the variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AvroSerdeError {
    /// The first byte is not Confluent's magic byte `0x00`.
    #[error("{field} on topic {topic}: unknown magic byte {found:#04x}, expected 0x00 (Confluent wire format)")]
    InvalidMagicByte {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The byte found instead.
        found: u8,
    },
    /// Fewer than the 5 bytes of the magic byte and schema id.
    #[error("{field} on topic {topic}: payload of {len} bytes is shorter than the 5-byte Confluent header")]
    PayloadTooShort {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// Bytes received.
        len: usize,
    },
    /// The registry has no schema with this id (HTTP 404, error code 40403).
    #[error("schema id {id} not found in the schema registry")]
    UnknownSchemaId {
        /// The schema id looked up.
        id: u32,
    },
    /// The registry has no such subject (HTTP 404, error code 40401).
    #[error("subject {subject} not found in the schema registry")]
    SubjectNotFound {
        /// The subject looked up.
        subject: String,
    },
    /// The subject has no such version (HTTP 404, error code 40402).
    #[error("version {version} of subject {subject} not found in the schema registry")]
    VersionNotFound {
        /// The subject looked up.
        subject: String,
        /// The version looked up (a number or `latest`).
        version: String,
    },
    /// The schema is not registered under the subject (HTTP 404, error code 40403), e.g. with
    /// `auto.register.schemas=false`.
    #[error("schema not registered under subject {subject}")]
    SchemaNotFound {
        /// The subject looked up.
        subject: String,
    },
    /// The bytes after the header are not a valid Avro datum of the writer schema
    /// (truncated or garbage data).
    #[error("{field} on topic {topic}: invalid Avro data for schema id {schema_id}: {source}")]
    InvalidAvroData {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The writer schema id from the header.
        schema_id: u32,
        /// Avro's decoding error.
        source: apache_avro::Error,
    },
    /// The datum declares a string, bytes, fixed, array or map longer than the bytes that
    /// follow, or nests deeper than decoding allows: refused before decoding would
    /// allocate for it (see `bounds.rs`).
    #[error("{field} on topic {topic}: malformed Avro datum for schema id {schema_id}: {reason}")]
    MalformedDatum {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The writer schema id from the header.
        schema_id: u32,
        /// What does not fit.
        reason: String,
    },
    /// The value to encode does not match the writer schema.
    #[error("{field} on topic {topic}: value does not match schema id {schema_id} of subject {subject}: {reason}")]
    DatumMismatch {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The subject the schema is registered under.
        subject: String,
        /// The id of the writer schema.
        schema_id: u32,
        /// What did not match.
        reason: String,
    },
    /// The writer schema cannot be resolved into the reader schema (Avro resolution rules),
    /// or the resolved value does not fit the Rust type.
    #[error("{field} on topic {topic}: data written with schema id {writer_id} cannot be read as {reader}: {reason}")]
    SchemaResolution {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// The writer schema id from the header.
        writer_id: u32,
        /// The reader schema's full name (or type).
        reader: String,
        /// Why resolution failed.
        reason: String,
    },
    /// The registry rejected a schema as incompatible with earlier versions of the subject
    /// (HTTP 409).
    #[error("schema for subject {subject} is incompatible with earlier versions: {reason}")]
    IncompatibleSchema {
        /// The subject registered to.
        subject: String,
        /// What is incompatible.
        reason: String,
    },
    /// The schema is not a valid Avro schema, or a reference cannot be resolved (HTTP 422).
    #[error("invalid schema for subject {subject}: {reason}")]
    InvalidSchema {
        /// The subject (or `schema id N` when fetched by id).
        subject: String,
        /// Why the schema is invalid.
        reason: String,
    },
    /// The registry could not be reached (connection refused, timeout). Retriable.
    #[error("schema registry {url} unreachable: {reason}")]
    RegistryUnreachable {
        /// The URL tried.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The registry answered with a server error (5xx, 408, 429). Retriable.
    #[error(
        "schema registry {url} failed with HTTP {status} (error code {error_code}): {message}"
    )]
    RegistryServerError {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// Confluent's `error_code`, or the status when the body has none.
        error_code: u32,
        /// Confluent's `message`.
        message: String,
    },
    /// Any other error answer of the registry (401, 403, 400...). Not retriable.
    #[error("schema registry {url} rejected the request with HTTP {status} (error code {error_code}): {message}")]
    RegistryRequest {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// Confluent's `error_code`, or the status when the body has none.
        error_code: u32,
        /// Confluent's `message`.
        message: String,
    },
    /// The registry answered with a body this client does not understand.
    #[error("schema registry {url} sent an unexpected response: {reason}")]
    InvalidResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// `serialize`/`deserialize` was called before the asynchronous `prepare` that loads the
    /// schema (the typed Producer and Consumer always call it first).
    #[error("{field} on topic {topic}: {what} is not loaded yet; await prepare() before the synchronous call")]
    NotPrepared {
        /// Topic of the record.
        topic: String,
        /// Key or value.
        field: MessageField,
        /// What is missing (a subject's schema, a schema id).
        what: String,
    },
    /// A configuration property has an invalid value.
    #[error("invalid configuration {key}={value}: {reason}")]
    Config {
        /// The property name, e.g. `schema.registry.url`.
        key: String,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl AvroSerdeError {
    /// True when retrying the same call may succeed: the registry was unreachable or answered
    /// with a server error.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            AvroSerdeError::RegistryUnreachable { .. } | AvroSerdeError::RegistryServerError { .. }
        )
    }
}

impl From<AvroSerdeError> for SerdeError {
    fn from(error: AvroSerdeError) -> Self {
        SerdeError::custom(error)
    }
}

/// Result of this crate's operations.
pub type Result<T, E = AvroSerdeError> = std::result::Result<T, E>;
