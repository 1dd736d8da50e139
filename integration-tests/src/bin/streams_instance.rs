//! One kafka-streams application instance, for the two-process takeover test
//! (`tests/streams_runtime.rs`): doubles `i64` values from `INPUT` to `OUTPUT` in
//! application `APP`, prints `RUNNING` once it is, and runs until killed.
//!
//! Usage: `streams_instance APP INPUT OUTPUT` with `KAFKA_BOOTSTRAP_SERVERS` set.

use std::io::Write;
use std::time::Duration;

use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, input, output] = args.as_slice() else {
        anyhow::bail!("usage: streams_instance APP INPUT OUTPUT");
    };
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>(input)
        .map_values(|v| v * 2)
        .to(output);
    let config = StreamsConfig::new(app.as_str(), integration_tests::config())
        .commit_interval(Duration::from_millis(200))
        .set("session.timeout.ms", "6000")?
        .set("heartbeat.interval.ms", "500")?;
    let streams = KafkaStreams::new(builder.build()?, config)?;
    streams.set_state_listener(|new, _old| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            match new {
                State::Running => "RUNNING",
                State::Rebalancing => "REBALANCING",
                State::Error => "ERROR",
                _ => "OTHER",
            }
        );
        let _ = out.flush();
    });
    integration_tests::run_until_stopped(&streams)
}
