//! Encode + decode of a 5-field record through the Avro serdes (registry caches warm,
//! `mock://`) against bare apache-avro with a prebuilt writer and reader.
//!
//! Prints the throughput ratio serde/bare at the end (target ≥ 0.9).

use std::time::{Duration, Instant};

use apache_avro::reader::datum::SpecificDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::AvroSchema;
use criterion::{criterion_group, Criterion};
use kafka_client::serde::{Deserializer, MessageField, SerdeContext, Serializer};
use kafka_client::Headers;
use serde::{Deserialize, Serialize};
use serde_avro::{AvroDeserializer, AvroSerializer};
use std::hint::black_box;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
struct SensorMeasurement {
    sensor_id: String,
    datetime: i64,
    value: i64,
    kind: String,
    unit: String,
}

fn record() -> SensorMeasurement {
    SensorMeasurement {
        sensor_id: "plant01-boiler-temperature-07".into(),
        datetime: 1_700_000_000_123,
        value: 734,
        kind: "temperature".into(),
        unit: "celsius".into(),
    }
}

struct Serdes {
    serializer: AvroSerializer<SensorMeasurement>,
    deserializer: AvroDeserializer<SensorMeasurement>,
    headers: Headers,
}

fn warm_serdes() -> Serdes {
    let props = [("schema.registry.url", "mock://bench")];
    let serdes = Serdes {
        serializer: AvroSerializer::from_properties(props).expect("serializer"),
        deserializer: AvroDeserializer::from_properties(props).expect("deserializer"),
        headers: Headers::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let ctx = SerdeContext::new("plant01", MessageField::Value, &serdes.headers);
        let bytes = serdes
            .serializer
            .serialize_async(&record(), &ctx)
            .await
            .expect("warm serializer");
        serdes
            .deserializer
            .deserialize_async(bytes.as_deref(), &ctx)
            .await
            .expect("warm deserializer");
    });
    serdes
}

fn through_serdes(serdes: &Serdes, value: &SensorMeasurement) -> SensorMeasurement {
    let ctx = SerdeContext::new("plant01", MessageField::Value, &serdes.headers);
    // The typed Producer/Consumer call prepare first; with warm caches it is None.
    assert!(serdes.serializer.prepare(value, &ctx).is_none());
    let bytes = serdes.serializer.serialize(value, &ctx).expect("serialize");
    serdes
        .deserializer
        .deserialize(bytes.as_deref(), &ctx)
        .expect("deserialize")
}

fn bare(
    writer: &GenericDatumWriter<'_>,
    reader: &SpecificDatumReader<SensorMeasurement>,
    value: &SensorMeasurement,
) -> SensorMeasurement {
    let bytes = writer.write_ser_to_vec(value).expect("encode");
    reader.read(&mut &bytes[..]).expect("decode")
}

fn bench(c: &mut Criterion) {
    let serdes = warm_serdes();
    let schema = SensorMeasurement::get_schema();
    let writer = GenericDatumWriter::builder(&schema)
        .build()
        .expect("writer");
    let reader = SpecificDatumReader::<SensorMeasurement>::builder()
        .build()
        .expect("reader");
    let value = record();
    assert_eq!(through_serdes(&serdes, &value), value);
    assert_eq!(bare(&writer, &reader, &value), value);

    let mut group = c.benchmark_group("encode+decode 5-field record");
    group.bench_function("serde-avro (warm mock:// cache)", |b| {
        b.iter(|| through_serdes(&serdes, black_box(&value)))
    });
    group.bench_function("bare apache-avro", |b| {
        b.iter(|| bare(&writer, &reader, black_box(&value)))
    });
    group.finish();

    // Interleaved timing of both paths, for a direct ratio in the output.
    let rounds = 5;
    let per_round = 200_000;
    let (mut serde_best, mut bare_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..per_round {
            black_box(through_serdes(&serdes, black_box(&value)));
        }
        serde_best = serde_best.min(start.elapsed());
        let start = Instant::now();
        for _ in 0..per_round {
            black_box(bare(&writer, &reader, black_box(&value)));
        }
        bare_best = bare_best.min(start.elapsed());
    }
    let per_op = |d: Duration| d.as_nanos() as f64 / per_round as f64;
    println!(
        "ratio (throughput serde-avro / bare apache-avro): {:.3}  [serde-avro {:.0} ns/op, bare {:.0} ns/op, best of {rounds}x{per_round}]",
        per_op(bare_best) / per_op(serde_best),
        per_op(serde_best),
        per_op(bare_best),
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
