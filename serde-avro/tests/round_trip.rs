//! Round trips through the serializers and deserializers for every Avro type and the
//! logical types, and the exact bytes of the wire format.

mod common;

use std::collections::HashMap;
use std::collections::HashSet;

use apache_avro::schema::{Name, NamespaceRef};
use apache_avro::types::Value;
use apache_avro::{AvroSchema, Decimal, Schema, Uuid};
use common::fresh_mock_url;
use kafka_client::serde::{Deserializer, MessageField, SerdeContext, Serializer};
use kafka_client::Headers;
use serde::{Deserialize, Serialize};
use serde_avro::{
    AvroDeserializer, AvroSerdeConfig, AvroSerializer, GenericAvroDeserializer,
    GenericAvroSerializer, SchemaDefinition, SchemaRegistryClient,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.types")]
enum Status {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.types")]
struct Location {
    plant: String,
    line: i32,
}

fn null_schema(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::Null
}
fn date_schema(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::Date
}
fn timestamp_millis_schema(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::TimestampMillis
}
fn timestamp_micros_schema(_: &mut HashSet<Name>, _: NamespaceRef) -> Schema {
    Schema::TimestampMicros
}

/// One field of every Avro type, plus the logical types the derive supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.types")]
struct EveryType {
    #[avro(with = null_schema)]
    nothing: (),
    flag: bool,
    small: i32,
    big: i64,
    ratio: f32,
    precise: f64,
    #[avro(with)]
    #[serde(with = "apache_avro::serde::bytes")]
    raw: Vec<u8>,
    text: String,
    location: Location,
    status: Status,
    readings: Vec<i64>,
    labels: HashMap<String, String>,
    maybe_some: Option<i64>,
    maybe_none: Option<String>,
    #[avro(with = apache_avro::serde::fixed::get_schema_in_ctxt::<4>)]
    #[serde(with = "apache_avro::serde::fixed")]
    checksum: [u8; 4],
    id: Uuid,
    #[avro(with = date_schema)]
    day: i32,
    #[avro(with = timestamp_millis_schema)]
    at_millis: i64,
    #[avro(with = timestamp_micros_schema)]
    at_micros: i64,
}

fn every_type() -> EveryType {
    EveryType {
        nothing: (),
        flag: true,
        small: -42,
        big: 1 << 40,
        ratio: 1.5,
        precise: -2.25e100,
        raw: vec![0, 1, 255],
        text: "héllo".into(),
        location: Location {
            plant: "plant01".into(),
            line: 3,
        },
        status: Status::Stopped,
        readings: vec![1, -2, 3],
        labels: HashMap::from([("unit".to_string(), "cm".to_string())]),
        maybe_some: Some(7),
        maybe_none: None,
        checksum: [0xde, 0xad, 0xbe, 0xef],
        id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        day: 19_000,
        at_millis: 1_700_000_000_123,
        at_micros: 1_700_000_000_123_456,
    }
}

#[tokio::test]
async fn typed_round_trip_of_every_avro_type_same_schema() {
    let url = fresh_mock_url("every-type");
    let props = [("schema.registry.url", url.as_str())];
    let serializer = AvroSerializer::<EveryType>::from_properties(props).unwrap();
    let deserializer = AvroDeserializer::<EveryType>::from_properties(props).unwrap();
    let headers = Headers::new();
    for field in [MessageField::Key, MessageField::Value] {
        let ctx = SerdeContext::new("types", field, &headers);
        let value = every_type();
        let bytes = serializer.serialize_async(&value, &ctx).await.unwrap();
        let back = deserializer
            .deserialize_async(bytes.as_deref(), &ctx)
            .await
            .unwrap();
        assert_eq!(back, value, "{field}");
    }
    // Keys and values are registered under TopicNameStrategy subjects.
    let mut subjects = serializer.client().subjects().await.unwrap();
    subjects.sort();
    assert_eq!(subjects, ["types-key", "types-value"]);
    // The registered schema carries every type.
    let json = &serializer.schema().schema;
    for avro_type in [
        "\"null\"",
        "\"boolean\"",
        "\"int\"",
        "\"long\"",
        "\"float\"",
        "\"double\"",
        "\"bytes\"",
        "\"string\"",
        "\"record\"",
        "\"enum\"",
        "\"array\"",
        "\"map\"",
        "[\"null\",\"long\"]",
        "\"fixed\"",
        "\"logicalType\":\"uuid\"",
        "\"logicalType\":\"date\"",
        "\"logicalType\":\"timestamp-millis\"",
        "\"logicalType\":\"timestamp-micros\"",
    ] {
        assert!(json.contains(avro_type), "{avro_type} missing in {json}");
    }
}

/// The writer has one extra field, so the reader takes the resolving path for every type.
#[tokio::test]
async fn typed_round_trip_of_every_avro_type_through_schema_resolution() {
    let url = fresh_mock_url("every-type-resolve");
    let client = SchemaRegistryClient::from_url(&url).unwrap();
    let mut writer_json: serde_json::Value = serde_json::to_value(EveryType::get_schema()).unwrap();
    writer_json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "writer_only", "type": "string"}));
    let writer_schema = Schema::parse(&writer_json).unwrap();
    let serializer = GenericAvroSerializer::new(
        client.clone(),
        AvroSerdeConfig::default(),
        SchemaDefinition::new(writer_json.to_string()),
    );
    let deserializer = AvroDeserializer::<EveryType>::new(client).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("types", MessageField::Value, &headers);

    let expected = every_type();
    // to_value renders the UUID as plain bytes; the uuid logical type wants Value::Uuid.
    let Value::Record(mut fields) = apache_avro::to_value(&expected).unwrap() else {
        panic!("a record")
    };
    for (name, value) in &mut fields {
        if name == "id" {
            *value = Value::Uuid(expected.id);
        }
    }
    let Value::Record(mut fields) = Value::Record(fields)
        .resolve(&EveryType::get_schema())
        .unwrap()
    else {
        panic!("a record")
    };
    fields.push(("writer_only".into(), Value::String("ignored".into())));
    let record = Value::Record(fields);
    assert!(record.validate(&writer_schema));
    let bytes = serializer.serialize_async(&record, &ctx).await.unwrap();
    let back = deserializer
        .deserialize_async(bytes.as_deref(), &ctx)
        .await
        .unwrap();
    assert_eq!(back, expected);
}

const LOGICAL_SCHEMA: &str = r#"{
  "type": "record", "name": "Logical", "namespace": "com.acme.types",
  "fields": [
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at_millis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "at_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "nothing", "type": "null"},
    {"name": "fixed4", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "choice", "type": ["null", "string", "long"]}
  ]
}"#;

#[tokio::test]
async fn generic_round_trip_of_logical_types() {
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("logical")).unwrap();
    let serializer = GenericAvroSerializer::new(
        client.clone(),
        AvroSerdeConfig::default(),
        SchemaDefinition::new(LOGICAL_SCHEMA),
    );
    let deserializer = GenericAvroDeserializer::new(client.clone());
    let resolving = GenericAvroDeserializer::with_reader_schema(
        client,
        Schema::parse_str(LOGICAL_SCHEMA).unwrap(),
    )
    .unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("prices", MessageField::Value, &headers);
    let record = Value::Record(vec![
        (
            "price".into(),
            Value::Decimal(Decimal::from(12_345_i64.to_be_bytes().to_vec())),
        ),
        ("id".into(), Value::Uuid(Uuid::from_u128(42))),
        ("day".into(), Value::Date(19_000)),
        (
            "at_millis".into(),
            Value::TimestampMillis(1_700_000_000_123),
        ),
        (
            "at_micros".into(),
            Value::TimestampMicros(1_700_000_000_123_456),
        ),
        ("nothing".into(), Value::Null),
        ("fixed4".into(), Value::Fixed(4, vec![1, 2, 3, 4])),
        ("choice".into(), Value::Union(2, Box::new(Value::Long(5)))),
    ]);
    let bytes = serializer.serialize_async(&record, &ctx).await.unwrap();
    for deserializer in [&deserializer, &resolving] {
        let back = deserializer
            .deserialize_async(bytes.as_deref(), &ctx)
            .await
            .unwrap();
        let Value::Record(fields) = &back else {
            panic!("record expected, got {back:?}")
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let Value::Decimal(price) = get("price") else {
            panic!("decimal")
        };
        assert_eq!(
            Vec::<u8>::try_from(price).unwrap(),
            12_345_i64.to_be_bytes().to_vec()
        );
        assert_eq!(get("id"), Value::Uuid(Uuid::from_u128(42)));
        assert_eq!(get("day"), Value::Date(19_000));
        assert_eq!(get("at_millis"), Value::TimestampMillis(1_700_000_000_123));
        assert_eq!(
            get("at_micros"),
            Value::TimestampMicros(1_700_000_000_123_456)
        );
        assert_eq!(get("nothing"), Value::Null);
        assert_eq!(get("fixed4"), Value::Fixed(4, vec![1, 2, 3, 4]));
        assert_eq!(get("choice"), Value::Union(2, Box::new(Value::Long(5))));
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
struct SensorMeasurement {
    sensor_id: String,
    datetime: i64,
    value: i64,
}

/// Schema id 42, record {sensor_id: "s1", datetime: 1000, value: -3}.
const GOLDEN: [u8; 11] = [
    0x00, // magic byte
    0x00, 0x00, 0x00, 0x2a, // schema id 42, big-endian
    0x04, b's', b'1', // string: zig-zag length 2, then UTF-8
    0xd0, 0x0f, // long 1000: zig-zag 2000 as a varint
    0x05, // long -3: zig-zag 5
];

#[tokio::test]
async fn golden_bytes_for_schema_id_42() {
    let config = AvroSerdeConfig {
        use_schema_id: Some(42),
        ..AvroSerdeConfig::default()
    };
    // use.schema.id needs no registry round trip: the serializer is ready without prepare.
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("golden")).unwrap();
    let serializer = AvroSerializer::<SensorMeasurement>::new(client, config).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let record = SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1000,
        value: -3,
    };
    assert!(Serializer::prepare(&serializer, &record, &ctx).is_none());
    let bytes = serializer.serialize(&record, &ctx).unwrap().unwrap();
    assert_eq!(bytes, GOLDEN);
}

#[tokio::test]
async fn golden_bytes_decode_with_the_registered_id() {
    // Register so that id 1 is the schema, then rewrite the golden id to it and decode.
    let client = SchemaRegistryClient::from_url(&fresh_mock_url("golden-decode")).unwrap();
    let id = client
        .register(
            "plant01-value",
            &SchemaDefinition::from_schema(&SensorMeasurement::get_schema()),
        )
        .await
        .unwrap();
    let mut bytes = GOLDEN.to_vec();
    bytes[1..5].copy_from_slice(&id.to_be_bytes());
    let deserializer = AvroDeserializer::<SensorMeasurement>::new(client).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let back = deserializer
        .deserialize_async(Some(&bytes), &ctx)
        .await
        .unwrap();
    assert_eq!(
        back,
        SensorMeasurement {
            sensor_id: "s1".into(),
            datetime: 1000,
            value: -3
        }
    );
}

#[tokio::test]
async fn warm_caches_need_no_prepare() {
    let url = fresh_mock_url("warm");
    let props = [("schema.registry.url", url.as_str())];
    let serializer = AvroSerializer::<SensorMeasurement>::from_properties(props).unwrap();
    let deserializer = AvroDeserializer::<SensorMeasurement>::from_properties(props).unwrap();
    let headers = Headers::new();
    let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
    let record = SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1,
        value: 2,
    };
    assert!(
        Serializer::prepare(&serializer, &record, &ctx).is_some(),
        "cold cache must prepare"
    );
    let bytes = serializer
        .serialize_async(&record, &ctx)
        .await
        .unwrap()
        .unwrap();
    assert!(
        Serializer::prepare(&serializer, &record, &ctx).is_none(),
        "warm cache needs no I/O"
    );
    assert!(Deserializer::prepare(&deserializer, Some(&bytes), &ctx).is_some());
    deserializer
        .deserialize_async(Some(&bytes), &ctx)
        .await
        .unwrap();
    assert!(Deserializer::prepare(&deserializer, Some(&bytes), &ctx).is_none());
    // Another topic is another subject: prepare again.
    let other = SerdeContext::new("plant02", MessageField::Value, &headers);
    assert!(Serializer::prepare(&serializer, &record, &other).is_some());
}

/// Both deserializers say they never read headers (so the typed consumer skips parsing
/// them), and indeed decode the same whatever the headers hold: headers that look like
/// a schema id in a header (`__value_schema_id`) or a trace context change nothing.
/// Were either to start reading headers while declaring `false`, the typed consumer
/// would hand it empty headers and this would fail.
#[tokio::test]
async fn deserializers_never_read_headers() {
    let url = fresh_mock_url("reads-headers");
    let props = [("schema.registry.url", url.as_str())];
    let serializer = AvroSerializer::<SensorMeasurement>::from_properties(props).unwrap();
    let typed = AvroDeserializer::<SensorMeasurement>::from_properties(props).unwrap();
    let generic = GenericAvroDeserializer::new(SchemaRegistryClient::from_url(&url).unwrap());
    assert!(!Deserializer::reads_headers(&typed));
    assert!(!Deserializer::reads_headers(&generic));

    let none = Headers::new();
    let some = Headers::new()
        .with("__value_schema_id", vec![0, 0, 0, 0x2a])
        .with("__key_schema_id", vec![0xff; 17])
        .with(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
    let record = SensorMeasurement {
        sensor_id: "s1".into(),
        datetime: 1000,
        value: -3,
    };
    let bytes = serializer
        .serialize_async(
            &record,
            &SerdeContext::new("plant01", MessageField::Value, &none),
        )
        .await
        .unwrap()
        .unwrap();
    for headers in [&none, &some] {
        let ctx = SerdeContext::new("plant01", MessageField::Value, headers);
        assert_eq!(
            typed.deserialize_async(Some(&bytes), &ctx).await.unwrap(),
            record
        );
        let value = generic.deserialize_async(Some(&bytes), &ctx).await.unwrap();
        assert_eq!(
            apache_avro::from_value::<SensorMeasurement>(&value).unwrap(),
            record
        );
    }
}
