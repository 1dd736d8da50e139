//! serde-avro targets: Confluent wire-format splitting, and generic Avro decoding with
//! the writer's schema resolved into a reader's.
//!
//! The resolution target decodes through a real [`GenericAvroDeserializer`] per reader
//! schema, over an in-memory (`mock://`) registry holding the writer schemas: a few
//! writer/reader pairs of the schema-evolution rules (serde-avro/tests/evolution.rs), a
//! schema using every Avro type with an evolved reader of it, and a recursive schema.
//! The input's first byte picks the reader (modulo their number, the last meaning "as
//! written"); the rest is the Confluent payload, whose schema id picks the writer.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::Schema;
use kafka_client::serde::{Deserializer, MessageField, SerdeContext};
use kafka_client::Headers;
use serde_avro::{
    wire, AvroSerdeConfig, GenericAvroDeserializer, GenericAvroSerializer, SchemaDefinition,
    SchemaRegistryClient,
};

const TOPIC: &str = "fuzz";

fn sensor_record(fields: &[&str]) -> String {
    format!(
        r#"{{"type":"record","name":"SensorMeasurement","namespace":"com.acme.iot","fields":[{}]}}"#,
        fields.join(",")
    )
}

// The fields of serde-avro/tests/evolution.rs.
const SENSOR_ID: &str = r#"{"name":"sensor_id","type":"string"}"#;
const DATETIME: &str = r#"{"name":"datetime","type":"long"}"#;
const VALUE: &str = r#"{"name":"value","type":"long"}"#;
const TYPE_MANDATORY: &str = r#"{"name":"type","type":"string"}"#;
const UNIT_OPTIONAL: &str = r#"{"name":"unit","type":"string","default":"cm","aliases":["uom"]}"#;

/// Every Avro type, logical types and named-type references included.
const READING: &str = r#"{"type":"record","name":"Reading","namespace":"com.acme.iot","fields":[
  {"name":"id","type":"string"},
  {"name":"count","type":"int"},
  {"name":"ratio","type":"float"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["TEMPERATURE","HUMIDITY"]}},
  {"name":"label","type":["null","string"],"default":null},
  {"name":"samples","type":{"type":"array","items":"long"}},
  {"name":"tags","type":{"type":"map","values":"bytes"}},
  {"name":"checksum","type":{"type":"fixed","name":"Checksum","size":4}},
  {"name":"location","type":{"type":"record","name":"Location","fields":[
    {"name":"lat","type":"double"},{"name":"lon","type":"double"}]}},
  {"name":"raw","type":"bytes"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"children","type":{"type":"array","items":"Location"}},
  {"name":"flag","type":"boolean"}
]}"#;

/// [`READING`] evolved: promoted numbers, an enum symbol with a default, a dropped
/// field and an added one with a default.
const READING_EVOLVED: &str = r#"{"type":"record","name":"Reading","namespace":"com.acme.iot","fields":[
  {"name":"id","type":"string"},
  {"name":"count","type":"long"},
  {"name":"ratio","type":"double"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["TEMPERATURE","HUMIDITY","PRESSURE"],"default":"PRESSURE"}},
  {"name":"label","type":["null","string"],"default":null},
  {"name":"samples","type":{"type":"array","items":"double"}},
  {"name":"tags","type":{"type":"map","values":"bytes"}},
  {"name":"checksum","type":{"type":"fixed","name":"Checksum","size":4}},
  {"name":"location","type":{"type":"record","name":"Location","fields":[
    {"name":"lat","type":"double"},{"name":"lon","type":"double"}]}},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"children","type":{"type":"array","items":"Location"}},
  {"name":"flag","type":"boolean"},
  {"name":"unit","type":"string","default":"cm"}
]}"#;

/// A recursive schema: a linked list, nested as deep as the bytes say.
const NODE: &str = r#"{"type":"record","name":"Node","fields":[
  {"name":"value","type":"int"},
  {"name":"next","type":["null","Node"],"default":null}
]}"#;

/// The writer schemas with a value of each, in registration order.
fn writers() -> Vec<(String, Value)> {
    let string = |s: &str| Value::String(s.to_owned());
    let sensor = |fields: &[&str], values: Vec<(&str, Value)>| {
        let record = values
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        (sensor_record(fields), Value::Record(record))
    };
    let location = |lat, lon| {
        Value::Record(vec![
            ("lat".to_owned(), Value::Double(lat)),
            ("lon".to_owned(), Value::Double(lon)),
        ])
    };
    let reading = Value::Record(vec![
        ("id".to_owned(), string("r-1")),
        ("count".to_owned(), Value::Int(-7)),
        ("ratio".to_owned(), Value::Float(0.25)),
        ("kind".to_owned(), Value::Enum(1, "HUMIDITY".to_owned())),
        (
            "label".to_owned(),
            Value::Union(1, Box::new(string("greenhouse"))),
        ),
        (
            "samples".to_owned(),
            Value::Array(vec![Value::Long(1), Value::Long(i64::MIN)]),
        ),
        (
            "tags".to_owned(),
            Value::Map(HashMap::from([(
                "source".to_owned(),
                Value::Bytes(b"plant01".to_vec()),
            )])),
        ),
        (
            "checksum".to_owned(),
            Value::Fixed(4, vec![0xde, 0xad, 0xbe, 0xef]),
        ),
        ("location".to_owned(), location(52.5, 13.4)),
        ("raw".to_owned(), Value::Bytes(vec![0, 1, 2])),
        ("at".to_owned(), Value::TimestampMillis(1_700_000_000_000)),
        (
            "children".to_owned(),
            Value::Array(vec![location(1.0, 2.0), location(-1.0, -2.0)]),
        ),
        ("flag".to_owned(), Value::Boolean(true)),
    ]);
    let node = |value, next: Value| {
        Value::Record(vec![
            ("value".to_owned(), Value::Int(value)),
            ("next".to_owned(), next),
        ])
    };
    let list = node(
        1,
        Value::Union(1, Box::new(node(2, Value::Union(0, Box::new(Value::Null))))),
    );
    vec![
        sensor(
            &[SENSOR_ID, VALUE],
            vec![("sensor_id", string("s-1")), ("value", Value::Long(42))],
        ),
        sensor(
            &[SENSOR_ID, VALUE, TYPE_MANDATORY],
            vec![
                ("sensor_id", string("s-2")),
                ("value", Value::Long(-1)),
                ("type", string("temperature")),
            ],
        ),
        sensor(
            &[SENSOR_ID, DATETIME, VALUE],
            vec![
                ("sensor_id", string("s-3")),
                ("datetime", Value::Long(1_700_000_000_000)),
                ("value", Value::Long(0)),
            ],
        ),
        sensor(
            &[SENSOR_ID, VALUE, UNIT_OPTIONAL],
            vec![
                ("sensor_id", string("s-4")),
                ("value", Value::Long(i64::MAX)),
                ("unit", string("mm")),
            ],
        ),
        (READING.to_owned(), reading),
        (NODE.to_owned(), list),
    ]
}

/// The reader schemas: each writer's, then the evolved reading. One more selector
/// value reads as written.
fn readers() -> Vec<String> {
    let mut readers: Vec<String> = writers().into_iter().map(|(schema, _)| schema).collect();
    readers.push(READING_EVOLVED.to_owned());
    readers
}

/// (reader, writer) pairs that Avro's rules resolve, besides each schema reading itself.
const RESOLVING_PAIRS: &[(usize, usize)] = &[
    (0, 1), // v1 reads v2 with an added mandatory field: skips it
    (0, 2), // v1 reads a writer with a removed mandatory field: skips it
    (3, 0), // reads without the optional field: its default
    (0, 3), // the optional field is skipped
    (6, 4), // the evolved reading
];

struct Fixture {
    /// A deserializer per reader, then one reading as written.
    deserializers: Vec<GenericAvroDeserializer>,
    /// A payload of each writer, as the serializer wrote it.
    payloads: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime for the in-memory registry")
            .block_on(build_fixture())
    })
}

async fn build_fixture() -> Fixture {
    let client = SchemaRegistryClient::from_url("mock://fuzz-avro-resolve").expect("mock URL");
    let headers = Headers::new();
    let mut payloads = Vec::new();
    for (index, (schema, value)) in writers().into_iter().enumerate() {
        // One subject per writer, so no compatibility rule stands in the way.
        let topic = format!("writer-{index}");
        let ctx = SerdeContext::new(&topic, MessageField::Value, &headers);
        let serializer = GenericAvroSerializer::new(
            client.clone(),
            AvroSerdeConfig::default(),
            SchemaDefinition::new(schema),
        );
        let payload = serializer
            .serialize_async(&value, &ctx)
            .await
            .unwrap_or_else(|e| panic!("writer {index} serializes its value: {e}"))
            .expect("not null");
        payloads.push(payload);
    }
    let mut deserializers = Vec::new();
    for reader in readers() {
        let schema = Schema::parse_str(&reader).expect("a valid reader schema");
        deserializers.push(
            GenericAvroDeserializer::with_reader_schema(client.clone(), schema)
                .expect("a self-contained reader schema"),
        );
    }
    deserializers.push(GenericAvroDeserializer::new(client.clone()));
    // Loads every writer schema into every deserializer, so that decoding needs no I/O.
    let ctx = SerdeContext::new(TOPIC, MessageField::Value, &headers);
    for deserializer in &deserializers {
        for payload in &payloads {
            let _ = deserializer.deserialize_async(Some(payload), &ctx).await;
        }
    }
    Fixture {
        deserializers,
        payloads,
    }
}

fn with_ctx<T>(f: impl FnOnce(&SerdeContext<'_>) -> T) -> T {
    let headers = Headers::new();
    f(&SerdeContext::new(TOPIC, MessageField::Value, &headers))
}

/// `wire::split`: a payload that splits must be its header and datum again.
pub fn wire_split(data: &[u8]) -> bool {
    with_ctx(|ctx| {
        let Ok((id, datum)) = wire::split(data, ctx) else {
            return false;
        };
        let mut joined = wire::header(id, datum.len());
        joined.extend_from_slice(datum);
        assert_eq!(joined, data, "a split payload must join back to itself");
        true
    })
}

/// Payloads as the serializer writes them.
pub fn wire_split_seeds() -> Vec<Vec<u8>> {
    fixture().payloads.clone()
}

/// Generic decoding, resolved into the reader that the first byte picks.
pub fn avro_resolve(data: &[u8]) -> bool {
    let Some((selector, payload)) = data.split_first() else {
        return false;
    };
    let deserializers = &fixture().deserializers;
    let deserializer = &deserializers[usize::from(*selector) % deserializers.len()];
    with_ctx(|ctx| deserializer.deserialize(Some(payload), ctx).is_ok())
}

/// Each writer's payload read as written and by its own schema, and the evolution
/// pairs that resolve.
pub fn avro_resolve_seeds() -> Vec<Vec<u8>> {
    let fixture = fixture();
    let as_written = fixture.deserializers.len() - 1;
    let mut pairs: Vec<(usize, usize)> = (0..fixture.payloads.len())
        .flat_map(|writer| [(as_written, writer), (writer, writer)])
        .collect();
    pairs.extend_from_slice(RESOLVING_PAIRS);
    pairs
        .into_iter()
        .map(|(reader, writer)| {
            let selector = u8::try_from(reader).expect("few readers");
            [&[selector][..], &fixture.payloads[writer]].concat()
        })
        .collect()
}
