//! What the examples share: logging, a per-run name suffix, topic creation that also
//! works on the embedded mock cluster (which has no CreateTopics API), reading a
//! topic's latest value per key, retrying an interactive query while its store
//! restores, and a checked close.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_client::admin::{AdminClient, NewTopic};
use kafka_client::config::AutoOffsetReset;
use kafka_client::consumer::Offset;
use kafka_client::dev::Cluster;
use kafka_client::serde::DefaultSerde;
use kafka_client::{Consumer, TopicPartition};
use kafka_streams::runtime::{KafkaStreams, MetricsSnapshot, State};

/// Logs warnings and errors (or what `RUST_LOG` asks for) to stderr.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// Closes `streams` off the async executor (close blocks while the stream threads
/// commit) and checks that it closed cleanly.
pub async fn close(streams: KafkaStreams) -> anyhow::Result<()> {
    let (closed, state) = tokio::task::spawn_blocking(move || {
        let closed = streams.close();
        (closed, streams.state())
    })
    .await?;
    anyhow::ensure!(
        closed && state == State::NotRunning,
        "streams did not close cleanly ({state:?})"
    );
    Ok(())
}

/// Checks the client's metrics every 50 ms until `done` holds, and returns them then;
/// fails when the client fails or `timeout` passes first (`what` names the wait).
pub async fn wait_for_metrics(
    streams: &KafkaStreams,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&MetricsSnapshot) -> bool,
) -> anyhow::Result<MetricsSnapshot> {
    let deadline = Instant::now() + timeout;
    loop {
        let m = streams.metrics();
        if done(&m) {
            return Ok(m);
        }
        anyhow::ensure!(
            streams.state() != State::Error,
            "streams failed: {:?}",
            streams.error()
        );
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?} ({} records processed, {} skipped, {} commits; state {:?})",
            m.processed_records,
            m.skipped_records,
            m.commits,
            streams.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Milliseconds since the epoch: suffixes topic and application names, so that reruns
/// against a real broker never see an earlier run's data.
pub fn run_id() -> anyhow::Result<u128> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())
}

/// Creates the example's own topics (`name`, `partitions`) with the admin API, and on
/// the embedded cluster (which has no CreateTopics API) also the runtime's
/// `internal` topics; on a real broker the streams runtime creates those itself
/// (changelogs compacted).
pub async fn create_topics(
    cluster: &Cluster,
    own: &[(&str, i32)],
    internal: &[(&str, i32)],
) -> anyhow::Result<()> {
    if let Some(embedded) = cluster.embedded() {
        for (topic, partitions) in own.iter().chain(internal) {
            embedded.create_topic(topic, *partitions)?;
        }
        return Ok(());
    }
    let admin = AdminClient::new(&cluster.client_config())?;
    let topics: Vec<NewTopic> = own.iter().map(|(t, p)| NewTopic::new(*t, *p)).collect();
    admin.create_topics(&topics).await?;
    for (topic, _) in own {
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin.describe_topic(topic).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "topic {topic} did not appear");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Reads `topic` from the beginning until `done` holds for the latest value per key
/// (a `None` value, a tombstone, is kept as `None`), or fails after `timeout`.
pub async fn latest_per_key<K, V>(
    cluster: &Cluster,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&BTreeMap<K, Option<V>>) -> bool,
) -> anyhow::Result<BTreeMap<K, Option<V>>>
where
    K: DefaultSerde + Ord + Send + Sync + 'static,
    V: DefaultSerde + Send + Sync + 'static,
{
    let deadline = Instant::now() + timeout;
    let consumer: Consumer<K, Option<V>> = Consumer::new(
        &cluster
            .client_config()
            .group_id(format!("reader-{topic}"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )?;
    // Assigning every partition (no group join and rebalance) starts reading at once.
    let admin = AdminClient::new(&cluster.client_config())?;
    let partitions = loop {
        match admin.describe_topic(topic).await {
            Ok(listing) => break listing.partitions,
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("cannot describe {topic}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let start: Vec<(TopicPartition, Offset)> = partitions
        .iter()
        .map(|p| (TopicPartition::new(topic, p.id), Offset::Beginning))
        .collect();
    consumer.assign(&start)?;
    let mut latest = BTreeMap::new();
    while !done(&latest) {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "{topic} did not reach the expected contents"
        );
        if let Ok(record) = tokio::time::timeout(left, consumer.recv()).await {
            let record = record?;
            latest.insert(record.key, record.value);
        }
    }
    consumer.close().await?;
    Ok(latest)
}

/// Runs `query` until it answers, retrying while the store is restoring or moving
/// (the "migrating" error), for at most `timeout`.
pub async fn query_until<T>(
    timeout: Duration,
    mut query: impl FnMut() -> kafka_streams::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match query() {
            Ok(Some(answer)) => return Ok(answer),
            Ok(None) => {}
            Err(e) if e.is_store_migrating() => {}
            Err(e) => return Err(e.into()),
        }
        anyhow::ensure!(Instant::now() < deadline, "no answer within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
