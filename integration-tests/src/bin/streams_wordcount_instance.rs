//! One word-count instance with a RocksDB store, for the crash-and-restore test
//! (`tests/streams_state.rs`): counts the words of `INPUT` into the store `counts`,
//! writes the counts to `OUTPUT`, keeps its state under `STATE_DIR`, prints `RUNNING`
//! once it is, and runs until killed.
//!
//! Usage: `streams_wordcount_instance APP INPUT OUTPUT STATE_DIR [KEY=VALUE...]` with
//! `KAFKA_BOOTSTRAP_SERVERS` set; each `KEY=VALUE` is a `StreamsConfig` property
//! (e.g. `processing.guarantee=exactly_once_v2`, for the crash test
//! `tests/streams_crash.rs`).

use std::time::Duration;

use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, input, output, state_dir, properties @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: streams_wordcount_instance APP INPUT OUTPUT STATE_DIR [KEY=VALUE...]"
        );
    };
    let builder = StreamsBuilder::new();
    integration_tests::count_words(builder.stream::<String, String>(input), "counts", output);
    let config = StreamsConfig::new(app.as_str(), integration_tests::config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(state_dir)
        .set("session.timeout.ms", "6000")?
        .set("heartbeat.interval.ms", "500")?;
    let config = integration_tests::with_properties(config, properties)?;
    let streams = KafkaStreams::new(builder.build()?, config)?;
    integration_tests::announce_running(&streams);
    integration_tests::run_until_stopped(&streams)
}
