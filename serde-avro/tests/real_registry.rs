//! The HTTP client against a real schema registry speaking Confluent's REST API, named by
//! `SCHEMA_REGISTRY_URL`: the Apicurio Registry `scripts/test.sh` starts
//! (`scripts/registry.sh`, its Confluent API under `/apis/ccompat/v7`), or Confluent's own
//! from docker/compose.yaml (`http://localhost:8081`). Without it the test fails with a
//! message saying how to run it; it never skips silently.
//!
//! The tests delete subjects softly only. The registry is shared by every test of the
//! run, and Apicurio 2.6 removes orphaned schema content on a permanent delete, in a
//! transaction of its own: a registration running at that moment can lose the content it
//! has just written, and then fails with a 500 (a foreign-key violation in the registry's
//! log) or answers an id that `GET /schemas/ids/{id}` no longer knows. Permanent deletes
//! are checked against Confluent's documented answers in `http_client.rs`
//! (`delete_subject_soft_and_permanent`).

use apache_avro::AvroSchema;
use kafka_client::serde::{MessageField, SerdeContext};
use kafka_client::Headers;
use serde::{Deserialize, Serialize};
use serde_avro::{
    AvroDeserializer, AvroSerdeConfig, AvroSerdeError, AvroSerializer, CompatibilityLevel,
    SchemaDefinition, SchemaReference, SchemaRegistryClient, SchemaRegistryConfig,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
struct SensorMeasurement {
    sensor_id: String,
    datetime: i64,
    value: i64,
}

/// The registry's URL; fails the test clearly when none is configured.
fn registry_url() -> String {
    match std::env::var("SCHEMA_REGISTRY_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "SCHEMA_REGISTRY_URL is not set. This test needs a schema registry with \
             Confluent's REST API: run `bash scripts/test.sh` (starts one), or start one with \
             `bash scripts/registry.sh PID_FILE` (prints its URL) or docker/compose.yaml, and \
             set SCHEMA_REGISTRY_URL to its URL (e.g. http://localhost:8081)."
        ),
    }
}

#[tokio::test]
async fn real_registry_round_trip() {
    let url = registry_url();
    let mut properties = vec![("schema.registry.url".to_owned(), url.clone())];
    if let Ok(user_info) = std::env::var("SCHEMA_REGISTRY_USER_INFO") {
        properties.push(("basic.auth.user.info".to_owned(), user_info));
    }
    let config = SchemaRegistryConfig::from_properties(properties).unwrap();
    let client = SchemaRegistryClient::new(&config).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("serde-avro-it-{nanos}");
    let subject = format!("{topic}-value");

    // Serializer registers, deserializer fetches by id.
    let serializer =
        AvroSerializer::<SensorMeasurement>::new(client.clone(), AvroSerdeConfig::default())
            .unwrap();
    let deserializer = AvroDeserializer::<SensorMeasurement>::new(client.clone()).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new(&topic, MessageField::Value, &headers);
    let record = SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1,
        value: 2,
    };
    let bytes = serializer.serialize_async(&record, &ctx).await.unwrap();
    assert_eq!(
        deserializer
            .deserialize_async(bytes.as_deref(), &ctx)
            .await
            .unwrap(),
        record
    );

    let v1 = serializer.schema().clone();
    let latest = client.latest_version(&subject).await.unwrap();
    assert_eq!(latest.version, 1);
    assert_eq!(client.version(&subject, 1).await.unwrap().id, latest.id);
    assert_eq!(
        client.lookup_schema(&subject, &v1).await.unwrap().id,
        latest.id
    );
    assert_eq!(client.versions(&subject).await.unwrap(), [1]);
    assert!(client.subjects().await.unwrap().contains(&subject));
    // No level of its own yet: Confluent answers 404 (error code 40408), hence `None`;
    // Apicurio's ccompat API answers with the global level instead.
    let global = client.global_compatibility().await.unwrap();
    let own = client.subject_compatibility(&subject).await.unwrap();
    assert!(
        own.is_none() || own == Some(global),
        "subject level {own:?}, global level {global:?}"
    );

    // FULL rejects a new mandatory field: a 409, matched by type.
    client
        .set_subject_compatibility(&subject, CompatibilityLevel::Full)
        .await
        .unwrap();
    assert_eq!(
        client.subject_compatibility(&subject).await.unwrap(),
        Some(CompatibilityLevel::Full)
    );
    let mandatory = SchemaDefinition::new(
        r#"{"type":"record","name":"SensorMeasurement","namespace":"com.acme.iot","fields":[
        {"name":"sensor_id","type":"string"},{"name":"datetime","type":"long"},{"name":"value","type":"long"},
        {"name":"type","type":"string"}]}"#,
    );
    assert!(!client
        .test_compatibility(&subject, &mandatory)
        .await
        .unwrap());
    let err = client.register(&subject, &mandatory).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::IncompatibleSchema { .. }),
        "{err}"
    );
    let err = client.schema_by_id(i32::MAX as u32).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::UnknownSchemaId { .. }),
        "{err}"
    );

    // References: a schema using the measurement type from the subject above.
    let batch_subject = format!("{topic}-batch-value");
    let batch = SchemaDefinition::new(
        r#"{"type":"record","name":"Batch","namespace":"com.acme.iot","fields":[{"name":"items","type":{"type":"array","items":"com.acme.iot.SensorMeasurement"}}]}"#,
    )
    .with_references(vec![SchemaReference::new("com.acme.iot.SensorMeasurement", &subject, 1)]);
    let batch_id = client.register(&batch_subject, &batch).await.unwrap();
    let parsed = client.parsed_schema_by_id(batch_id).await.unwrap();
    assert_eq!(parsed.full_name().as_deref(), Some("com.acme.iot.Batch"));

    assert_eq!(
        client.delete_subject(&batch_subject, false).await.unwrap(),
        [1]
    );
    // A soft delete only (see the module docs); `subject` stays, still referenced.
    assert!(!client.subjects().await.unwrap().contains(&batch_subject));
}

/// The registry's error answers arrive as the crate's typed errors: Confluent's documented
/// codes (40401, 40402, 40403, 42201), which Apicurio's ccompat API answers too.
#[tokio::test]
async fn real_registry_error_answers() {
    let mut properties = vec![("schema.registry.url".to_owned(), registry_url())];
    if let Ok(user_info) = std::env::var("SCHEMA_REGISTRY_USER_INFO") {
        properties.push(("basic.auth.user.info".to_owned(), user_info));
    }
    let client = SchemaRegistryClient::from_properties(properties).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let subject = format!("serde-avro-it-errors-{nanos}-value");
    let missing = format!("serde-avro-it-missing-{nanos}-value");
    let v1 = SchemaDefinition::from_schema(&SensorMeasurement::get_schema());
    let other = SchemaDefinition::new(
        r#"{"type":"record","name":"Other","namespace":"com.acme.iot","fields":[{"name":"a","type":"long"}]}"#,
    );

    let err = client.latest_version(&missing).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::SubjectNotFound { .. }),
        "{err}"
    );
    let err = client.versions(&missing).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::SubjectNotFound { .. }),
        "{err}"
    );

    client.register(&subject, &v1).await.unwrap();
    let err = client.version(&subject, 99).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::VersionNotFound { .. }),
        "{err}"
    );
    // A schema never registered under the subject (auto.register.schemas=false's lookup).
    let err = client.lookup_schema(&subject, &other).await.unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::SchemaNotFound { .. }),
        "{err}"
    );
    // Valid JSON, not a valid Avro schema.
    let invalid = SchemaDefinition::new(
        r#"{"type":"record","name":"Broken","fields":[{"name":"a","type":"no-such-type"}]}"#,
    );
    let err = client.register(&subject, &invalid).await.unwrap_err();
    assert!(matches!(err, AvroSerdeError::InvalidSchema { .. }), "{err}");

    // Soft deletes only (see the module docs).
    assert_eq!(client.delete_subject(&subject, false).await.unwrap(), [1]);
}
