//! Shared pieces of the benchmark binaries: broker connection, topic creation,
//! timing and ratio reporting.

use std::time::{Duration, Instant};

use kafka_client::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use kafka_client::rdkafka::client::DefaultClientContext;
use kafka_client::ClientConfig;

/// The broker under test: `KAFKA_BOOTSTRAP_SERVERS` (set by `scripts/bench.sh`).
pub fn broker_config() -> anyhow::Result<ClientConfig> {
    ClientConfig::from_env().map_err(|e| {
        anyhow::anyhow!(
            "{e}: run the benchmarks with `bash scripts/bench.sh`, which starts a broker"
        )
    })
}

/// Creates a topic and waits for the broker to confirm it.
pub async fn create_topic(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.to_rdkafka().create()?;
    let results = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code:?}"))?;
    }
    Ok(())
}

/// A name unique to this run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{nanos}")
}

/// Throughput of one timed run.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Records processed.
    pub records: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl Rate {
    /// Records per second.
    pub fn per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// Times `run`, which returns the number of records it processed.
pub async fn timed<F, Fut>(run: F) -> anyhow::Result<Rate>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let start = Instant::now();
    let records = run().await?;
    Ok(Rate {
        records,
        elapsed: start.elapsed(),
    })
}

/// The median of the rates, by records per second.
pub fn median(rates: &[Rate]) -> f64 {
    let mut values: Vec<f64> = rates.iter().map(Rate::per_second).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Prints one comparison line and returns the ratio ours / baseline.
pub fn report(name: &str, ours: &[Rate], baseline: &[Rate], target: f64) -> f64 {
    let (o, b) = (median(ours), median(baseline));
    let ratio = o / b;
    println!(
        "{name:<44} ours {o:>12.0} rec/s   raw {b:>12.0} rec/s   ratio {ratio:.3}   (target >= {target})   {}",
        if ratio >= target { "OK" } else { "BELOW TARGET" }
    );
    ratio
}

/// Installs a `tracing` subscriber for progress lines (RUST_LOG, default info).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn")),
        )
        .try_init();
}
