//! Runs the main example as a user would, with zero setup: no
//! `KAFKA_BOOTSTRAP_SERVERS`, so it starts librdkafka's embedded mock cluster. The
//! example compares what it consumed with what it produced and exits non-zero
//! when they differ.

use std::process::Command;

#[test]
fn quickstart_consumes_exactly_what_it_produced() {
    let output = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running the quickstart binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "quickstart failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("embedded mock cluster"), "{first}");
    assert!(
        stdout.contains(
            "done: 12 readings produced and consumed, each sensor's series complete and in order"
        ),
        "{stdout}"
    );
    // The readings printed are the ones produced: temp-0..2 with values 850..861.
    let mut values: Vec<i64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("consumed "))
        .map(|l| l.rsplit(" = ").next().unwrap().parse().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, (850..862).collect::<Vec<_>>());
}
