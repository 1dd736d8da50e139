//! Every error class of the serdes, produced by a test input and matched by type.

mod common;

use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::AvroSchema;
use common::{avro_error, fresh_mock_url};
use kafka_client::serde::{
    Deserializer, MessageField, OptionSerde, SerdeContext, SerdeError, Serializer,
};
use kafka_client::Headers;
use serde::{Deserialize, Serialize};
use serde_avro::{
    AvroDeserializer, AvroSerdeConfig, AvroSerdeError, AvroSerializer, GenericAvroSerializer,
    SchemaDefinition, SchemaRegistryClient, SchemaRegistryConfig,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
struct SensorMeasurement {
    sensor_id: String,
    datetime: i64,
    value: i64,
}

fn measurement() -> SensorMeasurement {
    SensorMeasurement {
        sensor_id: "sensor-1".into(),
        datetime: 1_700_000_000_000,
        value: 42,
    }
}

struct Fixture {
    serializer: AvroSerializer<SensorMeasurement>,
    deserializer: AvroDeserializer<SensorMeasurement>,
    headers: Headers,
}

impl Fixture {
    fn new(test: &str) -> Self {
        let url = fresh_mock_url(test);
        let props = [("schema.registry.url", url.as_str())];
        Fixture {
            serializer: AvroSerializer::from_properties(props).unwrap(),
            deserializer: AvroDeserializer::from_properties(props).unwrap(),
            headers: Headers::new(),
        }
    }

    fn ctx(&self) -> SerdeContext<'_> {
        SerdeContext::new("plant01", MessageField::Value, &self.headers)
    }

    async fn valid_bytes(&self) -> Vec<u8> {
        self.serializer
            .serialize_async(&measurement(), &self.ctx())
            .await
            .unwrap()
            .unwrap()
    }

    async fn read(&self, bytes: &[u8]) -> Result<SensorMeasurement, SerdeError> {
        self.deserializer
            .deserialize_async(Some(bytes), &self.ctx())
            .await
    }
}

#[tokio::test]
async fn wrong_magic_byte() {
    let fixture = Fixture::new("magic");
    let mut bytes = fixture.valid_bytes().await;
    bytes[0] = 1;
    let err = fixture.read(&bytes).await.unwrap_err();
    match avro_error(&err) {
        AvroSerdeError::InvalidMagicByte {
            topic,
            field,
            found,
        } => {
            assert_eq!(
                (topic.as_str(), *field, *found),
                ("plant01", MessageField::Value, 1)
            );
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("topic plant01"), "{err}");
}

#[tokio::test]
async fn payload_shorter_than_the_header() {
    let fixture = Fixture::new("short");
    for len in 0..5 {
        let err = fixture.read(&[0, 0, 0, 1][..len]).await.unwrap_err();
        assert!(
            matches!(avro_error(&err), AvroSerdeError::PayloadTooShort { len: l, .. } if *l == len),
            "{err}"
        );
    }
}

#[tokio::test]
async fn unknown_schema_id() {
    let fixture = Fixture::new("unknown-id");
    let mut bytes = fixture.valid_bytes().await;
    bytes[1..5].copy_from_slice(&4242_u32.to_be_bytes());
    let err = fixture.read(&bytes).await.unwrap_err();
    assert!(
        matches!(
            avro_error(&err),
            AvroSerdeError::UnknownSchemaId { id: 4242 }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("schema id 4242"), "{err}");
}

#[tokio::test]
async fn truncated_or_garbage_avro_data() {
    let fixture = Fixture::new("truncated");
    let bytes = fixture.valid_bytes().await;
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    // Truncated: the last long is cut.
    let err = fixture.read(&bytes[..bytes.len() - 1]).await.unwrap_err();
    assert!(
        matches!(avro_error(&err), AvroSerdeError::InvalidAvroData { schema_id, .. } if *schema_id == id),
        "{err}"
    );
    // Garbage: a string length of -1 (zig-zag 0x01).
    let mut garbage = bytes[..5].to_vec();
    garbage.extend_from_slice(&[0x01, 0xff, 0xff]);
    let err = fixture.read(&garbage).await.unwrap_err();
    assert!(
        matches!(avro_error(&err), AvroSerdeError::InvalidAvroData { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn lengths_beyond_the_datum_are_refused_before_decoding() {
    let fixture = Fixture::new("huge-length");
    let bytes = fixture.valid_bytes().await;
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    // A sensor_id string declaring 2^62 bytes: apache-avro would allocate up to its
    // 512 MiB limit for it before finding the datum short (found by fuzzing).
    let mut huge = bytes[..5].to_vec();
    huge.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]);
    let err = fixture.read(&huge).await.unwrap_err();
    match avro_error(&err) {
        AvroSerdeError::MalformedDatum {
            topic,
            schema_id,
            reason,
            ..
        } => {
            assert_eq!((topic.as_str(), *schema_id), ("plant01", id));
            assert!(reason.contains("string of"), "{reason}");
        }
        other => panic!("expected MalformedDatum, got {other}"),
    }
}

#[tokio::test]
async fn datum_that_does_not_match_the_schema() {
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("mismatch")).unwrap();
    let schema = SchemaDefinition::from_schema(&SensorMeasurement::get_schema());
    let serializer = GenericAvroSerializer::new(client, AvroSerdeConfig::default(), schema);
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    // `value` is a string where the schema says long, and `datetime` is missing.
    let wrong = Value::Record(vec![
        ("sensor_id".into(), Value::String("s1".into())),
        ("value".into(), Value::String("high".into())),
    ]);
    let err = serializer.serialize_async(&wrong, &ctx).await.unwrap_err();
    match avro_error(&err) {
        AvroSerdeError::DatumMismatch {
            subject, schema_id, ..
        } => {
            assert_eq!(subject, "plant01-value");
            assert_eq!(*schema_id, 1);
        }
        other => panic!("{other}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
#[serde(rename = "SensorMeasurement")]
struct IncompatibleMeasurement {
    sensor_id: String,
    value: String,
}

#[tokio::test]
async fn incompatible_schema_on_register() {
    let url = fresh_mock_url("incompatible");
    let props = [("schema.registry.url", url.as_str())];
    let fixture_headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &fixture_headers);
    AvroSerializer::<SensorMeasurement>::from_properties(props)
        .unwrap()
        .serialize_async(&measurement(), &ctx)
        .await
        .unwrap();
    let incompatible = AvroSerializer::<IncompatibleMeasurement>::from_properties(props).unwrap();
    let err = incompatible
        .serialize_async(
            &IncompatibleMeasurement {
                sensor_id: "s1".into(),
                value: "high".into(),
            },
            &ctx,
        )
        .await
        .unwrap_err();
    let error = avro_error(&err);
    assert!(
        matches!(error, AvroSerdeError::IncompatibleSchema { subject, .. } if subject == "plant01-value"),
        "{err}"
    );
    assert!(!error.is_retriable());
}

#[tokio::test]
async fn registry_unreachable_is_retriable() {
    // Port 9 on loopback (discard) is closed here: connection refused at once.
    let config =
        SchemaRegistryConfig::new("http://127.0.0.1:9").with_retries(1, Duration::from_millis(1));
    let client = SchemaRegistryClient::new(&config).unwrap();
    let serializer =
        AvroSerializer::<SensorMeasurement>::new(client, AvroSerdeConfig::default()).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let err = serializer
        .serialize_async(&measurement(), &ctx)
        .await
        .unwrap_err();
    let error = avro_error(&err);
    assert!(
        matches!(error, AvroSerdeError::RegistryUnreachable { url, .. } if url.starts_with("http://127.0.0.1:9/subjects/plant01-value/versions")),
        "{err}"
    );
    assert!(error.is_retriable());
}

#[tokio::test]
async fn synchronous_calls_before_prepare_are_rejected_not_blocked() {
    let fixture = Fixture::new("not-prepared");
    let err = fixture
        .serializer
        .serialize(&measurement(), &fixture.ctx())
        .unwrap_err();
    assert!(
        matches!(avro_error(&err), AvroSerdeError::NotPrepared { .. }),
        "{err}"
    );
    let bytes = fixture.valid_bytes().await;
    let err = fixture
        .deserializer
        .deserialize(Some(&bytes), &fixture.ctx())
        .unwrap_err();
    assert!(
        matches!(avro_error(&err), AvroSerdeError::NotPrepared { what, .. } if what == "writer schema id 1"),
        "{err}"
    );
}

#[tokio::test]
async fn nulls_are_rejected_unless_wrapped_in_option() {
    let fixture = Fixture::new("nulls");
    let err = fixture
        .deserializer
        .deserialize_async(None, &fixture.ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, SerdeError::UnexpectedNull { .. }), "{err}");
    // A tombstone through OptionSerde: None both ways, and no registry call.
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let optional = OptionSerde(fixture.deserializer);
    assert!(Deserializer::prepare(&optional, None, &ctx).is_none());
    assert_eq!(optional.deserialize(None, &ctx).unwrap(), None);
    let optional_serializer = OptionSerde(fixture.serializer);
    assert_eq!(optional_serializer.serialize(&None, &ctx).unwrap(), None);
}
