//! Typed client against raw rdkafka, on the same broker in the same run.
//!
//! - Producer: `Producer<String, String>` (serializers, per-record delivery future,
//!   tracing span) against rdkafka's `ThreadedProducer` with a counting delivery
//!   callback, both sending the same 100-byte values with the same settings.
//! - Producer, batched: `Producer::send_batch` (chunks of 10,000, four in flight)
//!   against the same raw callback producer.
//! - Producer, fire-and-forget: `Producer::send_and_forget` then `flush`, against the
//!   same raw callback producer.
//! - Consumer: `Consumer<String, String>` read three ways (`recv` returning owned
//!   `ConsumerRecord`s, `recv_fetched` and `recv_batch` returning `FetchedRecord`s
//!   that keep librdkafka's message; UTF-8 decoding of key and value in all) against
//!   rdkafka's `BaseConsumer` poll loop over the same topic with the same settings,
//!   which reads only the payload (the targets apply to this one). Two more raw
//!   loops show what owning a record costs a raw user: one also reads each record's
//!   headers, and one copies each message into an owned `OwnedMessage` (`detach`).
//!
//! Each round runs every side once, in an order that rotates between rounds, and the
//! medians are compared. Producers are timed from the first send of the run to the
//! last delivery, after one warm-up record that every side sends and sees delivered
//! first. Without it the sides measured librdkafka's start-up, not their sends: an
//! idempotent producer has no producer id until a metadata answer arrives while a
//! broker connection is up, or else until its 500 ms retry timer fires, and which
//! of the two happens is a race (a producer that sent at once lost it and stalled
//! half a second, a third of a 1M-record run). Consumers are timed from the first
//! record to the last (steady state, the figure the target applies to) and from
//! creation (also printed).
//!
//! The whole process runs on jemalloc (the `jemalloc` feature, on by default), C
//! libraries included, as `streams_state` does: a typed consumer allocates its keys
//! and values on its own thread while librdkafka's broker thread allocates and frees
//! fetch buffers, and on glibc's malloc the two contend for arenas. Both sides of every
//! ratio run on the same allocator; `BENCH_CARGO_ARGS=--no-default-features` measures
//! glibc's.
//!
//! ```text
//! bash scripts/bench.sh client_throughput -- --records 1000000 --rounds 5
//! ```

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use kafka_benchmarks::{
    broker_config, create_topic, init_tracing, median, report, unique, Counting, Rate, Timings,
};
use kafka_client::config::DEFAULT_FETCH_QUEUE_BACKOFF_MS;
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer as _};
use kafka_client::rdkafka::message::Headers as _;
use kafka_client::rdkafka::producer::{
    BaseRecord, FutureProducer, FutureRecord, Producer as _, ThreadedProducer,
};
use kafka_client::rdkafka::util::Timeout;
use kafka_client::rdkafka::{Message, Offset, TopicPartitionList};
use kafka_client::{
    ClientConfig, Consumer, Offset as TypedOffset, Producer, ProducerRecord, TopicPartition,
};

#[derive(Parser, Debug)]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
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
    /// Most records per `recv_batch` call.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Consumer sides only (the producers still fill one topic, once).
    #[arg(long)]
    consumers_only: bool,
    /// The producer sides to run (for profiling one), by index: 0 raw callback, 1 raw
    /// FutureProducer, 2 typed send, 3 typed send_batch, 4 typed send_and_forget.
    /// Ratios need all of them.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 2, 3, 4])]
    producer_sides: Vec<usize>,
    /// Consume this topic (holding at least `--records` records over `--partitions`
    /// partitions, e.g. from an earlier run) instead of producing one.
    #[arg(long)]
    topic: Option<String>,
    /// The consumer sides to run (for profiling one), by index: 0 raw, 1 raw +
    /// headers, 2 raw + detach, 3 typed recv, 4 typed recv_fetched, 5 typed
    /// recv_batch. Ratios need sides 0, 4 and 5.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 2, 3, 4, 5])]
    consumer_sides: Vec<usize>,
}

fn producer_settings(config: &ClientConfig) -> ClientConfig {
    config
        .clone()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
}

/// The key of each producer's warm-up record.
const WARM_UP_KEY: &str = "warm-up";

fn keys(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("sensor-{}", i % 1000)).collect()
}

async fn raw_produce(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
) -> anyhow::Result<Rate> {
    let delivered = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Counting> = producer_settings(config)
        .to_rdkafka()
        .create_with_context(Counting(delivered.clone()))?;
    producer
        .send(BaseRecord::to(topic).key(WARM_UP_KEY).payload(value))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    anyhow::ensure!(
        delivered.swap(0, Ordering::Relaxed) == 1,
        "warm-up record not delivered"
    );
    let topic = topic.to_owned();
    let keys = keys.to_vec();
    let value = value.to_owned();
    // The raw producer's natural loop: enqueue, and on a full queue let the poll
    // thread drain it.
    tokio::task::spawn_blocking(move || -> anyhow::Result<Rate> {
        let start = Instant::now();
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
        Ok(Rate {
            records: delivered.load(Ordering::Relaxed),
            elapsed: start.elapsed(),
        })
    })
    .await?
}

async fn raw_future_produce(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
    window: usize,
) -> anyhow::Result<Rate> {
    let producer: FutureProducer = producer_settings(config).to_rdkafka().create()?;
    producer
        .send(
            FutureRecord::to(topic).key(WARM_UP_KEY).payload(value),
            Timeout::Never,
        )
        .await
        .map_err(|(e, _)| e)?;
    let start = Instant::now();
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
    Ok(Rate {
        records: delivered,
        elapsed: start.elapsed(),
    })
}

/// A typed producer with the benchmark's settings that has sent one record and seen
/// it delivered (see the module's notes on timing).
async fn warm_typed_producer(
    config: &ClientConfig,
    topic: &str,
    value: &str,
) -> anyhow::Result<Producer<String, String>> {
    let producer: Producer<String, String> = Producer::new(&producer_settings(config))?;
    producer
        .send(ProducerRecord::new(
            topic,
            WARM_UP_KEY.to_owned(),
            value.to_owned(),
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(producer)
}

async fn typed_produce(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
    window: usize,
) -> anyhow::Result<Rate> {
    let producer = warm_typed_producer(config, topic, value).await?;
    let start = Instant::now();
    let mut sends = futures::stream::iter(keys.iter().cloned())
        .map(|key| producer.send(ProducerRecord::new(topic, key, value.to_owned())))
        .buffer_unordered(window);
    let mut delivered = 0;
    while let Some(result) = sends.next().await {
        result.map_err(|e| anyhow::anyhow!("{e}"))?;
        delivered += 1;
    }
    Ok(Rate {
        records: delivered,
        elapsed: start.elapsed(),
    })
}

async fn typed_produce_and_forget(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
) -> anyhow::Result<Rate> {
    let producer = warm_typed_producer(config, topic, value).await?;
    let mut failures = producer.delivery_failures();
    let start = Instant::now();
    for key in keys {
        producer
            .send_and_forget(ProducerRecord::new(topic, key.clone(), value.to_owned()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(120)).await?;
    let elapsed = start.elapsed();
    if let Ok(failure) = failures.try_recv() {
        anyhow::bail!("{failure}");
    }
    Ok(Rate {
        records: keys.len() as u64,
        elapsed,
    })
}

async fn typed_produce_batches(
    config: &ClientConfig,
    topic: &str,
    keys: &[String],
    value: &str,
    batch: usize,
) -> anyhow::Result<Rate> {
    let producer = warm_typed_producer(config, topic, value).await?;
    let start = Instant::now();
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
    Ok(Rate {
        records: delivered,
        elapsed: start.elapsed(),
    })
}

/// The settings of every consumer side, raw and typed: the same fetch pacing on both
/// (the typed consumer's default `fetch.queue.backoff.ms`, set explicitly so that the
/// raw loops get it too, unless `BENCH_CLIENT_PROPERTIES` sets it).
fn consumer_settings(config: &ClientConfig) -> ClientConfig {
    let backoff = config
        .get("fetch.queue.backoff.ms")
        .map_or_else(|| DEFAULT_FETCH_QUEUE_BACKOFF_MS.to_string(), str::to_owned);
    config
        .clone()
        .group_id(unique("bench-consumer"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", backoff)
}

/// Times a consumer run both ways: from `started` (client creation and first fetch
/// included) and from the first read to the last. `first` is when the first read
/// returned and how many records it returned (they are not counted in the steady
/// rate).
fn consume_timings(started: Instant, first: Option<(Instant, u64)>, count: u64) -> Timings {
    let done = Instant::now();
    let total = Rate {
        records: count,
        elapsed: done - started,
    };
    let steady = match first {
        Some((first, before)) if count > before => Rate {
            records: count - before,
            elapsed: done - first,
        },
        _ => total,
    };
    Timings { total, steady }
}

/// What a raw consume loop does with each message.
#[derive(Debug, Clone, Copy)]
enum RawWork {
    /// Reads the payload's length (the baseline the target applies to).
    Payload,
    /// Also reads the headers, which librdkafka parses on demand (the typed
    /// consumer always does, to fill `ConsumerRecord::headers`).
    Headers,
    /// Copies the message into rdkafka's `OwnedMessage` (topic, key, payload,
    /// headers): what a raw user does to keep a record past the next poll, the
    /// counterpart of the typed consumer's owned `ConsumerRecord`.
    Detach,
}

async fn raw_consume(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    expected: u64,
    work: RawWork,
) -> anyhow::Result<Timings> {
    let started = Instant::now();
    let consumer: BaseConsumer = consumer_settings(config).to_rdkafka().create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<Timings> {
        let (mut count, mut bytes, mut first) = (0_u64, 0_usize, None);
        while count < expected {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message?;
                first.get_or_insert_with(|| (Instant::now(), 1));
                bytes += match work {
                    RawWork::Payload => message.payload().map_or(0, <[u8]>::len),
                    RawWork::Headers => {
                        message.payload().map_or(0, <[u8]>::len)
                            + message.headers().map_or(0, |h| h.count())
                    }
                    RawWork::Detach => {
                        let owned = std::hint::black_box(message.detach());
                        owned.payload().map_or(0, <[u8]>::len)
                    }
                };
                count += 1;
            }
        }
        anyhow::ensure!(bytes > 0, "no payload bytes read");
        Ok(consume_timings(started, first, count))
    })
    .await?
}

/// How the typed consumer is read.
#[derive(Debug, Clone, Copy)]
enum TypedRead {
    /// `recv()`: owned `ConsumerRecord`s (topic and headers copied).
    Owned,
    /// `recv_fetched()`: `FetchedRecord`s holding librdkafka's message, headers
    /// parsed only on demand (none here, as in the raw baseline).
    Fetched,
    /// `recv_batch(max)`.
    Batch(usize),
}

async fn typed_consume(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    expected: u64,
    read: TypedRead,
) -> anyhow::Result<Timings> {
    let started = Instant::now();
    let consumer: Consumer<String, String> = Consumer::new(&consumer_settings(config))?;
    let assignment: Vec<_> = (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), TypedOffset::Beginning))
        .collect();
    consumer.assign(&assignment)?;
    let (mut count, mut bytes, mut first) = (0_u64, 0_usize, None);
    while count < expected {
        match read {
            TypedRead::Owned => {
                let record = consumer.recv().await?;
                bytes += record.value.len();
                count += 1;
            }
            TypedRead::Fetched => {
                let record = consumer.recv_fetched().await?;
                bytes += record.value.len();
                count += 1;
            }
            TypedRead::Batch(max) => {
                for record in consumer.recv_batch(max).await? {
                    bytes += record?.value.len();
                    count += 1;
                }
            }
        }
        first.get_or_insert_with(|| (Instant::now(), count));
    }
    anyhow::ensure!(bytes > 0, "no payload bytes read");
    Ok(consume_timings(started, first, count))
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

    // Each round runs every side once; the order rotates between rounds so that no
    // side always meets a broker that has just taken the others' writes.
    const PRODUCERS: [&str; 5] = ["raw", "raw-future", "typed", "typed-batch", "typed-forget"];
    let mut produced: [Vec<Rate>; 5] = Default::default();
    let mut filled_topic = args.topic.clone();
    let producer_rounds = match (&args.topic, args.consumers_only) {
        (Some(_), _) => 0,
        (None, true) => 1,
        (None, false) => args.rounds,
    };
    for round in 0..producer_rounds {
        for i in 0..PRODUCERS.len() {
            let side = (round + i) % PRODUCERS.len();
            if !args.producer_sides.contains(&side) || (args.consumers_only && side != 0) {
                continue;
            }
            let topic = unique(&format!("bench-{}-produce", PRODUCERS[side]));
            create_topic(&config, &topic, args.partitions).await?;
            let rate = match side {
                0 => raw_produce(&config, &topic, &keys, &value).await?,
                1 => raw_future_produce(&config, &topic, &keys, &value, args.window).await?,
                2 => typed_produce(&config, &topic, &keys, &value, args.window).await?,
                3 => typed_produce_batches(&config, &topic, &keys, &value, 10_000).await?,
                _ => typed_produce_and_forget(&config, &topic, &keys, &value).await?,
            };
            tracing::info!(
                round,
                side = PRODUCERS[side],
                rate = rate.per_second() as u64,
                "produce run done"
            );
            produced[side].push(rate);
            tracing::info!(topic, "filled");
            filled_topic = Some(topic);
        }
    }

    let topic = filled_topic.ok_or_else(|| anyhow::anyhow!("--rounds must be at least 1"))?;
    // Three raw `BaseConsumer` loops doing more and more of what a typed consumer
    // may do, and the typed consumer read three ways. Same consumer settings (fetch
    // pacing) for all.
    const CONSUMERS: [&str; 6] = [
        "raw consume",
        "raw consume + headers",
        "raw consume + detach",
        "typed recv (owned ConsumerRecord)",
        "typed recv_fetched",
        "typed recv_batch",
    ];
    let mut consumed: [Vec<Timings>; 6] = Default::default();
    for round in 0..args.rounds {
        for i in 0..CONSUMERS.len() {
            let side = (round + i) % CONSUMERS.len();
            if !args.consumer_sides.contains(&side) {
                continue;
            }
            let (topic, partitions, n) = (&topic, args.partitions, args.records);
            let timings = match side {
                0 => raw_consume(&config, topic, partitions, n, RawWork::Payload).await?,
                1 => raw_consume(&config, topic, partitions, n, RawWork::Headers).await?,
                2 => raw_consume(&config, topic, partitions, n, RawWork::Detach).await?,
                3 => typed_consume(&config, topic, partitions, n, TypedRead::Owned).await?,
                4 => typed_consume(&config, topic, partitions, n, TypedRead::Fetched).await?,
                _ => {
                    let read = TypedRead::Batch(args.batch);
                    typed_consume(&config, topic, partitions, n, read).await?
                }
            };
            timings.log(round, CONSUMERS[side]);
            consumed[side].push(timings);
        }
    }
    let [raw_c, raw_headers_c, raw_detach_c, owned_c, fetched_c, batch_c] = &consumed;

    if producer_rounds == args.rounds {
        let [raw_p, future_p, typed_p, batch_p, forget_p] = &produced;
        println!(
            "producer, / raw callback: raw FutureProducer {:.3}; typed send {:.3}",
            median(future_p) / median(raw_p),
            median(typed_p) / median(raw_p),
        );
        report(
            "producer (typed send / raw FutureProducer)",
            typed_p,
            future_p,
            1.0,
        );
        report(
            "producer (typed send_batch / raw callback)",
            batch_p,
            raw_p,
            0.9,
        );
        report(
            "producer (typed send_and_forget / raw callback)",
            forget_p,
            raw_p,
            0.9,
        );
    }
    let steady_raw = Timings::steady(raw_c);
    report(
        "consumer (typed recv_fetched / raw), steady",
        &Timings::steady(fetched_c),
        &steady_raw,
        0.9,
    );
    report(
        "consumer (typed recv_batch / raw), steady",
        &Timings::steady(batch_c),
        &steady_raw,
        0.95,
    );
    let steady = |side: &[Timings]| median(&Timings::steady(side));
    let total = |side: &[Timings]| median(&Timings::total(side));
    println!(
        "consumer, steady state / raw: raw + headers {:.3}; raw + detach {:.3}; typed recv (owned) {:.3}",
        steady(raw_headers_c) / steady(raw_c),
        steady(raw_detach_c) / steady(raw_c),
        steady(owned_c) / steady(raw_c),
    );
    println!(
        "consumer, from creation / raw: typed recv (owned) {:.3}; typed recv_fetched {:.3}; typed recv_batch {:.3}",
        total(owned_c) / total(raw_c),
        total(fetched_c) / total(raw_c),
        total(batch_c) / total(raw_c),
    );
    Ok(())
}
