//! The HTTP client against a real Confluent Schema Registry (docker/compose.yaml provides
//! one). Opt-in: runs when `SCHEMA_REGISTRY_URL` is set, otherwise says it skipped.

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

#[tokio::test]
async fn real_registry_round_trip() {
    let Ok(url) = std::env::var("SCHEMA_REGISTRY_URL") else {
        println!("skipped: SCHEMA_REGISTRY_URL not set");
        return;
    };
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
    client.global_compatibility().await.unwrap();

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
    client.delete_subject(&batch_subject, true).await.unwrap();
    assert_eq!(client.delete_subject(&subject, false).await.unwrap(), [1]);
    client.delete_subject(&subject, true).await.unwrap();
}
