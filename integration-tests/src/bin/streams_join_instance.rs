//! One stream-stream join instance, for the crash-and-restore test
//! (`tests/streams_joins.rs`): joins `LEFT` with `RIGHT` within 10 s (grace 60 s),
//! inner into `INNER_OUTPUT` (stores named `pairs-…`) and left into `LEFT_OUTPUT`
//! (stores `maybe-pairs-…`), values `<left>+<right>` (`null` for no partner); keeps
//! its state under `STATE_DIR`, prints `RUNNING` once it is, and runs until killed.
//!
//! Usage: `streams_join_instance APP LEFT RIGHT INNER_OUTPUT LEFT_OUTPUT STATE_DIR`
//! with `KAFKA_BOOTSTRAP_SERVERS` set.

use std::time::Duration;

use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, left, right, inner_output, left_output, state_dir] = args.as_slice() else {
        anyhow::bail!(
            "usage: streams_join_instance APP LEFT RIGHT INNER_OUTPUT LEFT_OUTPUT STATE_DIR"
        );
    };
    let builder = StreamsBuilder::new();
    integration_tests::join_streams(
        builder.stream::<String, String>(left),
        builder.stream::<String, String>(right),
        inner_output,
        left_output,
    );
    let config = StreamsConfig::new(app.as_str(), integration_tests::config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(state_dir)
        .set("session.timeout.ms", "6000")?
        .set("heartbeat.interval.ms", "500")?
        // Left-join results of closed windows go out at the next record, not at most
        // once a second, so that the test's expectations do not depend on timing.
        .set(
            "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__",
            "0",
        )?;
    let streams = KafkaStreams::new(builder.build()?, config)?;
    integration_tests::announce_running(&streams);
    integration_tests::run_until_stopped(&streams)
}
