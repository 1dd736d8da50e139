//! Schema evolution: the rules table users are taught (../shared/cases.md, section 5),
//! transitive levels, typed v1/v2 readers, references, subject strategies and the
//! serializer options.

mod common;

use apache_avro::types::Value;
use apache_avro::{AvroSchema, Schema};
use common::{avro_error, fresh_mock_url};
use kafka_client::serde::{MessageField, SerdeContext, SerdeError};
use kafka_client::Headers;
use serde::{Deserialize, Serialize};
use serde_avro::{
    AvroDeserializer, AvroSerdeConfig, AvroSerdeError, AvroSerializer, CompatibilityLevel,
    GenericAvroDeserializer, GenericAvroSerializer, SchemaDefinition, SchemaReference,
    SchemaRegistryClient, SubjectNameStrategy,
};

const TOPIC: &str = "plant01";

fn record_schema(fields: &str) -> String {
    format!(
        r#"{{"type":"record","name":"SensorMeasurement","namespace":"com.acme.iot","fields":[{fields}]}}"#
    )
}

const SENSOR_ID: &str = r#"{"name":"sensor_id","type":"string","doc":"ID which uniquely identifies the sensor across the plant"}"#;
const DATETIME: &str =
    r#"{"name":"datetime","type":"long","doc":"UTC timestamp of the sensor measurement"}"#;
const VALUE: &str = r#"{"name":"value","type":"long","doc":"The value of the sensor measurement"}"#;
const TYPE_MANDATORY: &str =
    r#"{"name":"type","type":"string","doc":"The type of the measurement"}"#;
const UNIT_OPTIONAL: &str =
    r#"{"name":"unit","type":"string","default":"cm","aliases":["uom"],"doc":"Unit of the value"}"#;

/// A change from the table, as v1 and v2 field lists.
struct Change {
    name: &'static str,
    v1: Vec<&'static str>,
    v2: Vec<&'static str>,
    accepted_under: &'static [CompatibilityLevel],
}

fn changes() -> Vec<Change> {
    use CompatibilityLevel::*;
    vec![
        Change {
            name: "add a mandatory field",
            v1: vec![SENSOR_ID, VALUE],
            v2: vec![SENSOR_ID, VALUE, TYPE_MANDATORY],
            accepted_under: &[Forward, None],
        },
        Change {
            name: "remove a mandatory field",
            v1: vec![SENSOR_ID, DATETIME, VALUE],
            v2: vec![SENSOR_ID, VALUE],
            accepted_under: &[Backward, None],
        },
        Change {
            name: "add an optional field",
            v1: vec![SENSOR_ID, VALUE],
            v2: vec![SENSOR_ID, VALUE, UNIT_OPTIONAL],
            accepted_under: &[Backward, Forward, Full, None],
        },
        Change {
            name: "remove an optional field",
            v1: vec![SENSOR_ID, VALUE, UNIT_OPTIONAL],
            v2: vec![SENSOR_ID, VALUE],
            accepted_under: &[Backward, Forward, Full, None],
        },
    ]
}

/// A record of `schema`'s fields with fixed test values.
fn record_for(fields: &[&str], version: &str) -> Value {
    let mut record = Vec::new();
    for field in fields {
        let name = serde_json::from_str::<serde_json::Value>(field).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let value = match name.as_str() {
            "sensor_id" => Value::String(format!("sensor-{version}")),
            "datetime" => Value::Long(1_700_000_000_000),
            "value" => Value::Long(42),
            "type" => Value::String("temperature".into()),
            "unit" => Value::String("mm".into()),
            other => panic!("unexpected field {other}"),
        };
        record.push((name, value));
    }
    Value::Record(record)
}

fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let Value::Record(fields) = value else {
        panic!("record expected, got {value:?}")
    };
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn field_names(value: &Value) -> Vec<&str> {
    let Value::Record(fields) = value else {
        panic!("record expected, got {value:?}")
    };
    fields.iter().map(|(n, _)| n.as_str()).collect()
}

fn resolution_failed(result: Result<Value, SerdeError>) -> bool {
    match result {
        Err(e) => matches!(avro_error(&e), AvroSerdeError::SchemaResolution { .. }),
        Ok(v) => panic!("expected a resolution error, read {v:?}"),
    }
}

#[tokio::test]
async fn evolution_rules_matrix() {
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    for change in changes() {
        for level in [
            CompatibilityLevel::Backward,
            CompatibilityLevel::Forward,
            CompatibilityLevel::Full,
            CompatibilityLevel::None,
        ] {
            let case = format!("{} under {level}", change.name);
            let client = SchemaRegistryClient::from_url(&fresh_mock_url("matrix")).unwrap();
            client
                .set_subject_compatibility("plant01-value", level)
                .await
                .unwrap();
            let v1_json = record_schema(&change.v1.join(","));
            let v2_json = record_schema(&change.v2.join(","));
            let v1_producer = GenericAvroSerializer::new(
                client.clone(),
                AvroSerdeConfig::default(),
                SchemaDefinition::new(&v1_json),
            );
            let v2_producer = GenericAvroSerializer::new(
                client.clone(),
                AvroSerdeConfig::default(),
                SchemaDefinition::new(&v2_json),
            );
            let v1_data = v1_producer
                .serialize_async(&record_for(&change.v1, "v1"), &ctx)
                .await
                .unwrap_or_else(|e| panic!("{case}: v1 must register: {e}"));

            let registered = v2_producer
                .serialize_async(&record_for(&change.v2, "v2"), &ctx)
                .await;
            let expected_accepted = change.accepted_under.contains(&level);
            let v2_data = match registered {
                Ok(bytes) => {
                    assert!(expected_accepted, "{case}: the registry must reject v2");
                    bytes
                }
                Err(e) => {
                    assert!(
                        !expected_accepted,
                        "{case}: the registry must accept v2, got {e}"
                    );
                    assert!(
                        matches!(avro_error(&e), AvroSerdeError::IncompatibleSchema { subject, .. } if subject == "plant01-value"),
                        "{case}: {e}"
                    );
                    assert_eq!(
                        client.versions("plant01-value").await.unwrap(),
                        [1],
                        "{case}"
                    );
                    continue;
                }
            };
            assert_eq!(
                client.versions("plant01-value").await.unwrap(),
                [1, 2],
                "{case}"
            );

            let old_consumer = GenericAvroDeserializer::with_reader_schema(
                client.clone(),
                Schema::parse_str(&v1_json).unwrap(),
            )
            .unwrap();
            let new_consumer = GenericAvroDeserializer::with_reader_schema(
                client.clone(),
                Schema::parse_str(&v2_json).unwrap(),
            )
            .unwrap();
            let old_reads_new = old_consumer
                .deserialize_async(v2_data.as_deref(), &ctx)
                .await;
            let new_reads_old = new_consumer
                .deserialize_async(v1_data.as_deref(), &ctx)
                .await;
            match change.name {
                "add a mandatory field" => {
                    // Producers upgrade first: old consumers skip the new field...
                    let read = old_reads_new.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(field_names(&read), ["sensor_id", "value"], "{case}");
                    assert_eq!(
                        field(&read, "sensor_id"),
                        Some(&Value::String("sensor-v2".into()))
                    );
                    // ...and new consumers cannot read old data (no default for `type`).
                    assert!(resolution_failed(new_reads_old), "{case}");
                }
                "remove a mandatory field" => {
                    // Consumers upgrade first: old consumers miss `datetime`, which has no default...
                    assert!(resolution_failed(old_reads_new), "{case}");
                    // ...new consumers ignore it in old data.
                    let read = new_reads_old.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(field_names(&read), ["sensor_id", "value"], "{case}");
                    assert_eq!(field(&read, "value"), Some(&Value::Long(42)));
                }
                "add an optional field" => {
                    let read = old_reads_new.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(field_names(&read), ["sensor_id", "value"], "{case}");
                    let read = new_reads_old.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(
                        field(&read, "unit"),
                        Some(&Value::String("cm".into())),
                        "{case}: the default"
                    );
                    assert_eq!(
                        field(&read, "sensor_id"),
                        Some(&Value::String("sensor-v1".into()))
                    );
                }
                "remove an optional field" => {
                    let read = old_reads_new.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(
                        field(&read, "unit"),
                        Some(&Value::String("cm".into())),
                        "{case}: the default"
                    );
                    assert_eq!(
                        field(&read, "sensor_id"),
                        Some(&Value::String("sensor-v2".into()))
                    );
                    let read = new_reads_old.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(field_names(&read), ["sensor_id", "value"], "{case}");
                }
                other => panic!("unknown change {other}"),
            }
        }
    }
}

/// Three versions where v3 is compatible with v2 but not with v1, for each transitive level.
#[tokio::test]
async fn transitive_levels_check_every_earlier_version() {
    let a = r#"{"name":"a","type":"long"}"#;
    let b_default = r#"{"name":"b","type":"string","default":"x"}"#;
    let b_mandatory = r#"{"name":"b","type":"string"}"#;
    let cases = [
        (
            CompatibilityLevel::Backward,
            CompatibilityLevel::BackwardTransitive,
            [vec![a], vec![a, b_default], vec![a, b_mandatory]],
        ),
        (
            CompatibilityLevel::Forward,
            CompatibilityLevel::ForwardTransitive,
            [vec![a, b_mandatory], vec![a, b_default], vec![a]],
        ),
        (
            CompatibilityLevel::Full,
            CompatibilityLevel::FullTransitive,
            [vec![a], vec![a, b_default], vec![a, b_mandatory]],
        ),
    ];
    for (plain, transitive, versions) in cases {
        for (level, v3_accepted) in [(plain, true), (transitive, false)] {
            let client = SchemaRegistryClient::from_url(&fresh_mock_url("transitive")).unwrap();
            client.set_global_compatibility(level).await.unwrap();
            assert_eq!(client.global_compatibility().await.unwrap(), level);
            let [v1, v2, v3] = versions
                .clone()
                .map(|fields| SchemaDefinition::new(record_schema(&fields.join(","))));
            client.register("s-value", &v1).await.unwrap();
            client
                .register("s-value", &v2)
                .await
                .unwrap_or_else(|e| panic!("{level}: v2: {e}"));
            let result = client.register("s-value", &v3).await;
            if v3_accepted {
                result.unwrap_or_else(|e| panic!("{level} must accept v3: {e}"));
            } else {
                let error = result.expect_err("transitive level must reject v3");
                let AvroSerdeError::IncompatibleSchema { subject, reason } = &error else {
                    panic!("{level}: {error}")
                };
                assert_eq!(subject, "s-value");
                assert!(
                    reason.contains("version 1"),
                    "{level}: names the failing version: {reason}"
                );
            }
        }
    }
}

mod v1 {
    use super::*;

    /// The IoT record as first deployed.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
    #[avro(namespace = "com.acme.iot")]
    pub struct SensorMeasurement {
        /// ID which uniquely identifies the sensor across the plant
        pub sensor_id: String,
        /// UTC timestamp of the sensor measurement
        pub datetime: i64,
        /// The value of the sensor measurement
        pub value: i64,
    }
}

mod v2 {
    use super::*;

    /// v1 plus an optional unit.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
    #[avro(namespace = "com.acme.iot")]
    pub struct SensorMeasurement {
        /// ID which uniquely identifies the sensor across the plant
        pub sensor_id: String,
        /// UTC timestamp of the sensor measurement
        pub datetime: i64,
        /// The value of the sensor measurement
        pub value: f64,
        /// Unit of the value
        #[avro(default = r#""cm""#)]
        pub unit: String,
    }
}

#[tokio::test]
async fn typed_v1_and_v2_read_each_other() {
    let url = fresh_mock_url("typed-evolution");
    let props = [("schema.registry.url", url.as_str())];
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    let v1_producer = AvroSerializer::<v1::SensorMeasurement>::from_properties(props).unwrap();
    let v2_producer = AvroSerializer::<v2::SensorMeasurement>::from_properties(props).unwrap();
    let v1_consumer = AvroDeserializer::<v1::SensorMeasurement>::from_properties(props).unwrap();
    let v2_consumer = AvroDeserializer::<v2::SensorMeasurement>::from_properties(props).unwrap();

    let old = v1::SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1_700_000_000_000,
        value: 17,
    };
    let old_bytes = v1_producer.serialize_async(&old, &ctx).await.unwrap();
    // v2 reads v1 data: long promoted to double, unit from the default.
    let read = v2_consumer
        .deserialize_async(old_bytes.as_deref(), &ctx)
        .await
        .unwrap();
    assert_eq!(
        read,
        v2::SensorMeasurement {
            sensor_id: "s1".into(),
            datetime: 1_700_000_000_000,
            value: 17.0,
            unit: "cm".into()
        }
    );

    // v2 widened `value` to double: BACKWARD accepts it (long promotes to double).
    let new = v2::SensorMeasurement {
        sensor_id: "s2".into(),
        datetime: 1_700_000_000_001,
        value: 2.5,
        unit: "mm".into(),
    };
    let new_bytes = v2_producer.serialize_async(&new, &ctx).await.unwrap();
    // v1 cannot read a double as a long: Avro does not demote numbers.
    let err = v1_consumer
        .deserialize_async(new_bytes.as_deref(), &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(
            avro_error(&err),
            AvroSerdeError::SchemaResolution { writer_id: 2, .. }
        ),
        "{err}"
    );
}

mod v2_unit_only {
    use super::*;

    /// v1 plus an optional unit, keeping `value` a long: readable both ways.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
    #[avro(namespace = "com.acme.iot")]
    pub struct SensorMeasurement {
        pub sensor_id: String,
        pub datetime: i64,
        pub value: i64,
        #[avro(default = r#""cm""#)]
        pub unit: String,
    }
}

#[tokio::test]
async fn typed_v2_producer_and_v1_consumer() {
    let url = fresh_mock_url("typed-forward");
    let props = [("schema.registry.url", url.as_str())];
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    let v1_producer = AvroSerializer::<v1::SensorMeasurement>::from_properties(props).unwrap();
    let v2_producer =
        AvroSerializer::<v2_unit_only::SensorMeasurement>::from_properties(props).unwrap();
    let v1_consumer = AvroDeserializer::<v1::SensorMeasurement>::from_properties(props).unwrap();
    let old = v1::SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 5,
        value: 6,
    };
    v1_producer.serialize_async(&old, &ctx).await.unwrap();
    let new = v2_unit_only::SensorMeasurement {
        sensor_id: "s2".into(),
        datetime: 7,
        value: 8,
        unit: "mm".into(),
    };
    let bytes = v2_producer
        .serialize_async(&new, &ctx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&bytes[1..5], &2_u32.to_be_bytes(), "v2 got its own id");
    let read = v1_consumer
        .deserialize_async(Some(&bytes), &ctx)
        .await
        .unwrap();
    assert_eq!(
        read,
        v1::SensorMeasurement {
            sensor_id: "s2".into(),
            datetime: 7,
            value: 8
        }
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.plant")]
struct Location {
    plant: String,
    hall: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.plant")]
struct Sensor {
    sensor_id: String,
    location: Location,
    backup_location: Option<Location>,
}

#[tokio::test]
async fn schema_references_on_the_mock_registry() {
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("references")).unwrap();
    let location = SchemaDefinition::from_schema(&Location::get_schema());
    client
        .register("com.acme.plant.Location", &location)
        .await
        .unwrap();
    let sensor = SchemaDefinition::new(
        r#"{"type":"record","name":"Sensor","namespace":"com.acme.plant","fields":[
            {"name":"sensor_id","type":"string"},
            {"name":"location","type":"Location"},
            {"name":"backup_location","type":["null","com.acme.plant.Location"],"default":null}]}"#,
    )
    .with_references(vec![SchemaReference::new(
        "com.acme.plant.Location",
        "com.acme.plant.Location",
        1,
    )]);

    // A reference that does not exist is an invalid schema (HTTP 422 class).
    let dangling = sensor.clone().with_references(vec![SchemaReference::new(
        "com.acme.plant.Location",
        "nowhere",
        1,
    )]);
    let err = client
        .register("sensors-value", &dangling)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AvroSerdeError::InvalidSchema { ref subject, .. } if subject == "sensors-value"),
        "{err}"
    );

    let producer =
        GenericAvroSerializer::new(client.clone(), AvroSerdeConfig::default(), sensor.clone());
    let headers = Headers::new();
    let ctx = SerdeContext::new("sensors", MessageField::Value, &headers);
    let location_value = |plant: &str, hall: i32| {
        Value::Record(vec![
            ("plant".into(), Value::String(plant.into())),
            ("hall".into(), Value::Int(hall)),
        ])
    };
    let record = Value::Record(vec![
        ("sensor_id".into(), Value::String("s1".into())),
        ("location".into(), location_value("plant01", 2)),
        (
            "backup_location".into(),
            Value::Union(1, Box::new(location_value("plant02", 5))),
        ),
    ]);
    let bytes = producer.serialize_async(&record, &ctx).await.unwrap();
    let id = u32::from_be_bytes(bytes.as_deref().unwrap()[1..5].try_into().unwrap());
    assert_eq!(
        client.schema_by_id(id).await.unwrap().references,
        sensor.references
    );

    // The typed consumer resolves the referencing writer schema into its own inlined schema.
    let consumer = AvroDeserializer::<Sensor>::new(client.clone()).unwrap();
    let read = consumer
        .deserialize_async(bytes.as_deref(), &ctx)
        .await
        .unwrap();
    assert_eq!(
        read,
        Sensor {
            sensor_id: "s1".into(),
            location: Location {
                plant: "plant01".into(),
                hall: 2
            },
            backup_location: Some(Location {
                plant: "plant02".into(),
                hall: 5
            }),
        }
    );
}

#[tokio::test]
async fn subject_name_strategies() {
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("strategies")).unwrap();
    let headers = Headers::new();
    let record = v1::SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1,
        value: 2,
    };
    for (strategy, field, subject) in [
        (
            SubjectNameStrategy::TopicName,
            MessageField::Key,
            "plant01-key",
        ),
        (
            SubjectNameStrategy::TopicName,
            MessageField::Value,
            "plant01-value",
        ),
        (
            SubjectNameStrategy::RecordName,
            MessageField::Value,
            "com.acme.iot.SensorMeasurement",
        ),
        (
            SubjectNameStrategy::TopicRecordName,
            MessageField::Value,
            "plant01-com.acme.iot.SensorMeasurement",
        ),
    ] {
        let config = AvroSerdeConfig {
            key_subject_name_strategy: strategy,
            value_subject_name_strategy: strategy,
            ..AvroSerdeConfig::default()
        };
        let serializer =
            AvroSerializer::<v1::SensorMeasurement>::new(client.clone(), config).unwrap();
        let ctx = SerdeContext::new(TOPIC, field, &headers);
        serializer.serialize_async(&record, &ctx).await.unwrap();
        assert_eq!(
            client.versions(subject).await.unwrap(),
            [1],
            "{strategy:?} {field}"
        );
    }
    let config = AvroSerdeConfig::from_properties([
        (
            "key.subject.name.strategy",
            "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
        ),
        ("value.subject.name.strategy", "RecordNameStrategy"),
    ])
    .unwrap();
    assert_eq!(
        config.key_subject_name_strategy,
        SubjectNameStrategy::TopicRecordName
    );
    assert_eq!(
        config.value_subject_name_strategy,
        SubjectNameStrategy::RecordName
    );
    assert!(matches!(
        AvroSerdeConfig::from_properties([("value.subject.name.strategy", "Nope")]),
        Err(AvroSerdeError::Config { .. })
    ));
}

#[tokio::test]
async fn auto_register_disabled_looks_the_schema_up() {
    let url = fresh_mock_url("no-auto-register");
    let serializer = AvroSerializer::<v1::SensorMeasurement>::from_properties([
        ("schema.registry.url", url.as_str()),
        ("auto.register.schemas", "false"),
    ])
    .unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    let record = v1::SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1,
        value: 2,
    };
    let err = serializer.serialize_async(&record, &ctx).await.unwrap_err();
    assert!(
        matches!(avro_error(&err), AvroSerdeError::SubjectNotFound { subject } if subject == "plant01-value"),
        "{err}"
    );
    // An unrelated schema in the subject: the subject exists, the schema does not.
    let other = SchemaDefinition::new(r#"{"type":"record","name":"Other","fields":[]}"#);
    serializer
        .client()
        .register("plant01-value", &other)
        .await
        .unwrap();
    let err = serializer.serialize_async(&record, &ctx).await.unwrap_err();
    assert!(
        matches!(avro_error(&err), AvroSerdeError::SchemaNotFound { subject } if subject == "plant01-value"),
        "{err}"
    );
    // Registered by an operator: now it is found, and nothing new is registered.
    serializer
        .client()
        .set_subject_compatibility("plant01-value", CompatibilityLevel::None)
        .await
        .unwrap();
    let id = serializer
        .client()
        .register("plant01-value", serializer.schema())
        .await
        .unwrap();
    let bytes = serializer
        .serialize_async(&record, &ctx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&bytes[1..5], &id.to_be_bytes());
    assert_eq!(
        serializer.client().versions("plant01-value").await.unwrap(),
        [1, 2]
    );
}

#[tokio::test]
async fn use_latest_version_writes_the_latest_id() {
    let url = fresh_mock_url("latest");
    let client = SchemaRegistryClient::from_url(&url).unwrap();
    let own = SchemaDefinition::from_schema(&v1::SensorMeasurement::get_schema());
    client.register("plant01-value", &own).await.unwrap();
    // A later version with the same fields and a different doc (so a different schema).
    let latest_json = record_schema(
        &[
            SENSOR_ID,
            DATETIME,
            r#"{"name":"value","type":"long","doc":"in mm"}"#,
        ]
        .join(","),
    );
    let latest_id = client
        .register("plant01-value", &SchemaDefinition::new(latest_json))
        .await
        .unwrap();
    assert_eq!(latest_id, 2);
    let serializer = AvroSerializer::<v1::SensorMeasurement>::from_properties([
        ("schema.registry.url", url.as_str()),
        ("use.latest.version", "true"),
        ("auto.register.schemas", "false"),
    ])
    .unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    let record = v1::SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1,
        value: 2,
    };
    let bytes = serializer
        .serialize_async(&record, &ctx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&bytes[1..5], &latest_id.to_be_bytes());
    let back = AvroDeserializer::<v1::SensorMeasurement>::new(client)
        .unwrap()
        .deserialize_async(Some(&bytes), &ctx)
        .await
        .unwrap();
    assert_eq!(back, record);
}

#[tokio::test]
async fn mock_registry_api_and_shared_scope() {
    let url = fresh_mock_url("api");
    let client = SchemaRegistryClient::from_url(&url).unwrap();
    let same_scope = SchemaRegistryClient::from_url(&url).unwrap();
    let other_scope = SchemaRegistryClient::from_url(&fresh_mock_url("api-other")).unwrap();
    let v1 = SchemaDefinition::new(record_schema(&[SENSOR_ID, VALUE].join(",")));
    let v2 = SchemaDefinition::new(record_schema(&[SENSOR_ID, VALUE, UNIT_OPTIONAL].join(",")));
    let id1 = client.register("plant01-value", &v1).await.unwrap();
    // Same schema, same subject: same id, no new version. Whitespace does not matter.
    let spaced = SchemaDefinition::new(v1.schema.replace(',', " , "));
    assert_eq!(
        same_scope.register("plant01-value", &spaced).await.unwrap(),
        id1
    );
    // Same schema, other subject: same id (ids are registry-wide), version 1 there.
    assert_eq!(
        same_scope.register("plant02-value", &v1).await.unwrap(),
        id1
    );
    let id2 = same_scope.register("plant01-value", &v2).await.unwrap();
    assert_ne!(id1, id2);
    assert_eq!(client.versions("plant01-value").await.unwrap(), [1, 2]);
    assert_eq!(
        client.subjects().await.unwrap(),
        ["plant01-value", "plant02-value"]
    );
    assert!(
        other_scope.subjects().await.unwrap().is_empty(),
        "scopes are separate"
    );

    let latest = client.latest_version("plant01-value").await.unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    let first = client.version("plant01-value", 1).await.unwrap();
    assert_eq!((first.version, first.id), (1, id1));
    let looked_up = client.lookup_schema("plant01-value", &v2).await.unwrap();
    assert_eq!((looked_up.version, looked_up.id), (2, id2));
    assert_eq!(
        client.schema_by_id(id2).await.unwrap(),
        v2.normalized_for_test()
    );

    assert_eq!(
        client.global_compatibility().await.unwrap(),
        CompatibilityLevel::Backward
    );
    assert_eq!(
        client.subject_compatibility("plant01-value").await.unwrap(),
        None
    );
    client
        .set_subject_compatibility("plant01-value", CompatibilityLevel::Full)
        .await
        .unwrap();
    assert_eq!(
        client.subject_compatibility("plant01-value").await.unwrap(),
        Some(CompatibilityLevel::Full)
    );
    let mandatory = SchemaDefinition::new(record_schema(
        &[SENSOR_ID, VALUE, UNIT_OPTIONAL, TYPE_MANDATORY].join(","),
    ));
    assert!(!client
        .test_compatibility("plant01-value", &mandatory)
        .await
        .unwrap());
    assert!(client
        .test_compatibility("plant01-value", &v1)
        .await
        .unwrap());

    assert_eq!(
        client.delete_subject("plant01-value", false).await.unwrap(),
        [1, 2]
    );
    assert_eq!(client.subjects().await.unwrap(), ["plant02-value"]);
    assert!(matches!(
        client.versions("plant01-value").await,
        Err(AvroSerdeError::SubjectNotFound { .. })
    ));
    // Ids stay readable after a delete, as in Confluent's registry.
    assert!(client.schema_by_id(id2).await.is_ok());
}

/// The registry stores schemas with normalized JSON.
trait NormalizedForTest {
    fn normalized_for_test(&self) -> SchemaDefinition;
}

impl NormalizedForTest for SchemaDefinition {
    fn normalized_for_test(&self) -> SchemaDefinition {
        let json: serde_json::Value = serde_json::from_str(&self.schema).unwrap();
        SchemaDefinition::new(json.to_string()).with_references(self.references.clone())
    }
}

#[tokio::test]
async fn enum_union_and_promotion_resolution_rules() {
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("rules")).unwrap();
    client
        .set_subject_compatibility("plant01-value", CompatibilityLevel::None)
        .await
        .unwrap();
    let writer = SchemaDefinition::new(
        r#"{"type":"record","name":"Signal","fields":[
            {"name":"state","type":{"type":"enum","name":"MotorState","symbols":["ON","OFF","SERVICE"]}},
            {"name":"rpm","type":"int"},
            {"name":"reading","type":["null","int"]}]}"#,
    );
    let reader = Schema::parse_str(
        r#"{"type":"record","name":"Signal","fields":[
            {"name":"state","type":{"type":"enum","name":"MotorState","symbols":["ON","OFF","UNKNOWN"],"default":"UNKNOWN"}},
            {"name":"rpm","type":"double"},
            {"name":"reading","type":["null","long","string"]}]}"#,
    )
    .unwrap();
    let producer = GenericAvroSerializer::new(client.clone(), AvroSerdeConfig::default(), writer);
    let consumer = GenericAvroDeserializer::with_reader_schema(client, reader).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    let record = Value::Record(vec![
        ("state".into(), Value::Enum(2, "SERVICE".into())),
        ("rpm".into(), Value::Int(1500)),
        ("reading".into(), Value::Union(1, Box::new(Value::Int(7)))),
    ]);
    let bytes = producer.serialize_async(&record, &ctx).await.unwrap();
    let read = consumer
        .deserialize_async(bytes.as_deref(), &ctx)
        .await
        .unwrap();
    // An unknown symbol takes the reader's enum default.
    assert_eq!(
        field(&read, "state"),
        Some(&Value::Enum(2, "UNKNOWN".into()))
    );
    // int promotes to double.
    assert_eq!(field(&read, "rpm"), Some(&Value::Double(1500.0)));
    // A union branch resolves to the first reader branch it promotes to (int -> long).
    assert_eq!(
        field(&read, "reading"),
        Some(&Value::Union(1, Box::new(Value::Long(7))))
    );
}

#[tokio::test]
async fn registry_rejects_a_partial_enum_match() {
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("partial-enum")).unwrap();
    let with_symbols = |symbols: &str| {
        SchemaDefinition::new(format!(
            r#"{{"type":"record","name":"Signal","fields":[{{"name":"unit","type":{{"type":"enum","name":"Unit","symbols":[{symbols}]}}}}]}}"#
        ))
    };
    client
        .register("signals-value", &with_symbols(r#""CM","MM","KM""#))
        .await
        .unwrap();
    // BACKWARD: the new reader lacks KM and has no default. apache-avro calls this a
    // partial match; Confluent rejects it, and so does the mock registry.
    let err = client
        .register("signals-value", &with_symbols(r#""CM","MM""#))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AvroSerdeError::IncompatibleSchema { reason, .. } if reason.contains("partial")),
        "{err}"
    );
    // Adding a symbol is fine under BACKWARD.
    client
        .register("signals-value", &with_symbols(r#""CM","MM","KM","M""#))
        .await
        .unwrap();
}
