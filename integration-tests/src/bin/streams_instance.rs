//! One kafka-streams application instance for the tests that kill a separate process,
//! in application `APP`, reading `INPUT` and writing `OUTPUT`; it prints `RUNNING`
//! once it is, and runs until killed.
//!
//! - `streams_instance APP INPUT OUTPUT`: doubles `i64` values (the two-process
//!   takeover test, `tests/streams_runtime.rs`);
//! - `streams_instance APP INPUT OUTPUT windowed-count STATE_DIR [KEY=VALUE...]`:
//!   the one-minute windowed count of `integration_tests::count_per_minute` (store
//!   `window-counts`, one hour of grace), with its state under `STATE_DIR` (the
//!   SIGKILL restore test, `tests/streams_windows.rs`); each `KEY=VALUE` is a
//!   `StreamsConfig` property (e.g. `processing.guarantee=exactly_once_v2`, for the
//!   crash test `tests/streams_crash.rs`).
//! - `streams_instance APP INPUT OUTPUT final-count STATE_DIR [KEY=VALUE...]`: the
//!   emit-final tumbling windowed count of `integration_tests::final_count` (store
//!   `final-counts`), for the emit-final restart tests (`tests/streams_emit_final.rs`).
//!
//! `KAFKA_BOOTSTRAP_SERVERS` must be set.

use std::io::Write;
use std::time::Duration;

use integration_tests::{
    count_per_minute, final_count, FINAL_COUNTS_STORE, WINDOW_COUNTS_GRACE, WINDOW_COUNTS_STORE,
};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let builder = StreamsBuilder::new();
    let (app, state_dir, properties) = match args.as_slice() {
        [app, input, output] => {
            builder
                .stream::<String, i64>(input)
                .map_values(|v| v * 2)
                .to(output);
            (app, None, &[][..])
        }
        [app, input, output, mode, state_dir, properties @ ..] if mode == "windowed-count" => {
            count_per_minute(
                builder.stream(input),
                WINDOW_COUNTS_GRACE,
                WINDOW_COUNTS_STORE,
                output,
                false,
            );
            (app, Some(state_dir), properties)
        }
        [app, input, output, mode, state_dir, properties @ ..] if mode == "final-count" => {
            final_count(builder.stream(input), false, FINAL_COUNTS_STORE, output);
            (app, Some(state_dir), properties)
        }
        _ => anyhow::bail!(
            "usage: streams_instance APP INPUT OUTPUT [windowed-count|final-count STATE_DIR [KEY=VALUE...]]"
        ),
    };
    let mut config = StreamsConfig::new(app.as_str(), integration_tests::config())
        .commit_interval(Duration::from_millis(200))
        .set("session.timeout.ms", "6000")?
        .set("heartbeat.interval.ms", "500")?;
    if let Some(dir) = state_dir {
        config = config.state_dir(dir);
    }
    let config = integration_tests::with_properties(config, properties)?;
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
