//! Typed client against raw rdkafka, on the same broker in the same run.
//!
//! - Producer: `Producer<String, String>` (serializers, per-record delivery future,
//!   tracing span) against rdkafka's `ThreadedProducer` with a counting delivery
//!   callback, both sending the same 100-byte values with the same settings.
//! - Producer, batched: `Producer::send_batch` (chunks of 10,000, four in flight)
//!   against the same raw callback producer.
//! - Consumer: `Consumer<String, String>` (`recv().await`, UTF-8 decoding, owned
//!   records) against rdkafka's `BaseConsumer` poll loop over the same topic.
//!
//! Runs alternate (raw, typed, raw, typed, ...) and the medians are compared.
//!
//! ```text
//! bash scripts/bench.sh client_throughput -- --records 200000 --rounds 3
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use kafka_benchmarks::{broker_config, create_topic, init_tracing, report, timed, unique, Rate};
use kafka_client::rdkafka::client::ClientContext;
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer as _};
use kafka_client::rdkafka::message::DeliveryResult;
use kafka_client::rdkafka::producer::{
    BaseRecord, FutureProducer, FutureRecord, Producer as _, ProducerContext, ThreadedProducer,
};
use kafka_client::rdkafka::util::Timeout;
use kafka_client::rdkafka::{Message, Offset, TopicPartitionList};
use kafka_client::{
    ClientConfig, Consumer, Offset as TypedOffset, Producer, ProducerRecord, TopicPartition,
};

#[derive(Parser, Debug)]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Runs of each side (medians are compared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Sends in flight at once for the typed producer.
    #[arg(long, default_value_t = 50_000)]
    window: usize,
}

/// Counts acknowledged deliveries, for the raw producer.
struct Counting(Arc<AtomicU64>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer_settings(config: &ClientConfig) -> ClientConfig {
    config
        .clone()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
}

fn keys(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("sensor-{}", i % 1000)).collect()
}

async fn raw_produce(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
) -> anyhow::Result<u64> {
    let delivered = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Counting> = producer_settings(config)
        .to_rdkafka()
        .create_with_context(Counting(delivered.clone()))?;
    let topic = topic.to_owned();
    let keys = keys.to_vec();
    let value = value.to_owned();
    // The raw producer's natural loop: enqueue, and on a full queue let the poll
    // thread drain it.
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        for key in &keys {
            let mut record = BaseRecord::to(&topic)
                .key(key.as_str())
                .payload(value.as_str());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, back))
                        if e.rdkafka_error_code()
                            == Some(kafka_client::rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                    {
                        record = back;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        producer.flush(Duration::from_secs(120))?;
        Ok(delivered.load(Ordering::Relaxed))
    })
    .await?
}

async fn raw_future_produce(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
    window: usize,
) -> anyhow::Result<u64> {
    let producer: FutureProducer = producer_settings(config).to_rdkafka().create()?;
    let mut sends = futures::stream::iter(keys.iter())
        .map(|key| {
            producer.send(
                FutureRecord::to(topic).key(key.as_str()).payload(value),
                Timeout::Never,
            )
        })
        .buffer_unordered(window);
    let mut delivered = 0;
    while let Some(result) = sends.next().await {
        result.map_err(|(e, _)| e)?;
        delivered += 1;
    }
    Ok(delivered)
}

async fn typed_produce(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
    window: usize,
) -> anyhow::Result<u64> {
    let producer: Producer<String, String> = Producer::new(&producer_settings(config))?;
    let mut sends = futures::stream::iter(keys.iter().cloned())
        .map(|key| producer.send(ProducerRecord::new(topic, key, value.to_owned())))
        .buffer_unordered(window);
    let mut delivered = 0;
    while let Some(result) = sends.next().await {
        result.map_err(|e| anyhow::anyhow!("{e}"))?;
        delivered += 1;
    }
    Ok(delivered)
}

async fn typed_produce_batches(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
    batch: usize,
) -> anyhow::Result<u64> {
    let producer: Producer<String, String> = Producer::new(&producer_settings(config))?;
    // A few batches in flight, so librdkafka's queue never runs dry between them.
    let mut batches = futures::stream::iter(keys.chunks(batch.max(1)))
        .map(|chunk| {
            let records = chunk
                .iter()
                .map(|key| ProducerRecord::new(topic, key.clone(), value.to_owned()))
                .collect();
            producer.send_batch(records)
        })
        .buffer_unordered(4);
    let mut delivered = 0;
    while let Some(results) = batches.next().await {
        for result in results {
            result.map_err(|e| anyhow::anyhow!("{e}"))?;
            delivered += 1;
        }
    }
    Ok(delivered)
}

fn consumer_settings(config: &ClientConfig) -> ClientConfig {
    config
        .clone()
        .group_id(unique("bench-consumer"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
}

async fn raw_consume(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    expected: u64,
) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = consumer_settings(config).to_rdkafka().create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let (mut count, mut bytes) = (0_u64, 0_usize);
        while count < expected {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message?;
                bytes += message.payload().map_or(0, <[u8]>::len);
                count += 1;
            }
        }
        anyhow::ensure!(bytes > 0, "no payload bytes read");
        Ok(count)
    })
    .await?
}

async fn typed_consume(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    expected: u64,
) -> anyhow::Result<u64> {
    let consumer: Consumer<String, String> = Consumer::new(&consumer_settings(config))?;
    let assignment: Vec<_> = (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), TypedOffset::Beginning))
        .collect();
    consumer.assign(&assignment)?;
    let (mut count, mut bytes) = (0_u64, 0_usize);
    while count < expected {
        let record = consumer.recv().await?;
        bytes += record.value.len();
        count += 1;
    }
    anyhow::ensure!(bytes > 0, "no payload bytes read");
    Ok(count)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    let config = broker_config()?;
    let value = "x".repeat(args.value_size);
    let keys = keys(args.records);
    println!(
        "client_throughput: {} records of {} bytes, {} rounds, broker {}",
        args.records,
        args.value_size,
        args.rounds,
        config.get("bootstrap.servers").unwrap_or("?")
    );

    let (mut raw_p, mut typed_p): (Vec<Rate>, Vec<Rate>) = (Vec::new(), Vec::new());
    let mut future_p: Vec<Rate> = Vec::new();
    let mut batch_p: Vec<Rate> = Vec::new();
    let mut filled_topic = None;
    for round in 0..args.rounds {
        let raw_topic = unique("bench-raw-produce");
        create_topic(&config, &raw_topic, args.partitions).await?;
        let rate = timed(|| raw_produce(&config, &raw_topic, &keys, &value)).await?;
        tracing::info!(
            round,
            side = "raw",
            rate = rate.per_second() as u64,
            "produce run done"
        );
        raw_p.push(rate);

        let future_topic = unique("bench-future-produce");
        create_topic(&config, &future_topic, args.partitions).await?;
        let rate = timed(|| raw_future_produce(&config, &future_topic, &keys, &value, args.window))
            .await?;
        tracing::info!(
            round,
            side = "raw-future",
            rate = rate.per_second() as u64,
            "produce run done"
        );
        future_p.push(rate);

        let typed_topic = unique("bench-typed-produce");
        create_topic(&config, &typed_topic, args.partitions).await?;
        let rate =
            timed(|| typed_produce(&config, &typed_topic, &keys, &value, args.window)).await?;
        tracing::info!(
            round,
            side = "typed",
            rate = rate.per_second() as u64,
            "produce run done"
        );
        typed_p.push(rate);
        filled_topic = Some(typed_topic);

        let batch_topic = unique("bench-typed-batch");
        create_topic(&config, &batch_topic, args.partitions).await?;
        let rate =
            timed(|| typed_produce_batches(&config, &batch_topic, &keys, &value, 10_000)).await?;
        tracing::info!(
            round,
            side = "typed-batch",
            rate = rate.per_second() as u64,
            "produce run done"
        );
        batch_p.push(rate);
    }

    let topic = filled_topic.ok_or_else(|| anyhow::anyhow!("--rounds must be at least 1"))?;
    let (mut raw_c, mut typed_c): (Vec<Rate>, Vec<Rate>) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let rate = timed(|| raw_consume(&config, &topic, args.partitions, args.records)).await?;
        tracing::info!(
            round,
            side = "raw",
            rate = rate.per_second() as u64,
            "consume run done"
        );
        raw_c.push(rate);
        let rate = timed(|| typed_consume(&config, &topic, args.partitions, args.records)).await?;
        tracing::info!(
            round,
            side = "typed",
            rate = rate.per_second() as u64,
            "consume run done"
        );
        typed_c.push(rate);
    }

    report("producer (typed / raw callback)", &typed_p, &raw_p, 0.95);
    report(
        "producer (typed / raw FutureProducer)",
        &typed_p,
        &future_p,
        0.95,
    );
    report(
        "producer (typed send_batch / raw callback)",
        &batch_p,
        &raw_p,
        0.95,
    );
    report("consumer (typed / raw)", &typed_c, &raw_c, 0.9);
    Ok(())
}
