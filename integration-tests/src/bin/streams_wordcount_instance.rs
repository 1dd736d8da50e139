//! One word-count instance with a RocksDB store, for the crash-and-restore test
//! (`tests/streams_state.rs`): counts the words of `INPUT` into the store `counts`,
//! writes the counts to `OUTPUT`, keeps its state under `STATE_DIR`, prints `RUNNING`
//! once it is, and runs until killed. Should the client fail, it prints
//! `FAILED <error>` and exits with an error.
//!
//! Usage: `streams_wordcount_instance APP INPUT OUTPUT STATE_DIR [--tag TAG]
//! [KEY=VALUE...]` with `KAFKA_BOOTSTRAP_SERVERS` set; each `KEY=VALUE` is a
//! `StreamsConfig` property (e.g. `processing.guarantee=exactly_once_v2`, for the
//! crash test `tests/streams_crash.rs`). With `--tag`, each output value is the count
//! as text followed by `@TAG` (`3@a`), so a reader can tell which instance wrote it
//! (the fencing tests, `tests/streams_fencing.rs`).

use std::io::Write as _;
use std::time::Duration;

use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, input, output, state_dir, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: streams_wordcount_instance APP INPUT OUTPUT STATE_DIR [--tag TAG] [KEY=VALUE...]"
        );
    };
    let (tag, properties) = match rest {
        [flag, tag, properties @ ..] if flag == "--tag" => (Some(tag.clone()), properties),
        properties => (None, properties),
    };
    let builder = StreamsBuilder::new();
    let lines = builder.stream::<String, String>(input);
    match tag {
        None => integration_tests::count_words(lines, "counts", output),
        Some(tag) => integration_tests::word_counts(lines, "counts")
            .to_stream()
            .map_values(move |count| count.map(|c| format!("{c}@{tag}")))
            .to(output),
    }
    let config = StreamsConfig::new(app.as_str(), integration_tests::config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(state_dir)
        .set("session.timeout.ms", "6000")?
        .set("heartbeat.interval.ms", "500")?;
    let config = integration_tests::with_properties(config, properties)?;
    let streams = KafkaStreams::new(builder.build()?, config)?;
    integration_tests::announce_running(&streams);
    let result = integration_tests::run_until_stopped(&streams);
    if let Err(error) = &result {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "FAILED {error}");
        let _ = out.flush();
    }
    result
}
