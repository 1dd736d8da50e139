//! Runs every example binary as a user would, with zero setup: no
//! `KAFKA_BOOTSTRAP_SERVERS` (so each starts librdkafka's embedded mock cluster) and
//! no `SCHEMA_REGISTRY_URL` (so the Avro example uses the `mock://` registry). Each
//! example checks its own results and exits non-zero when they are wrong.

use std::process::Command;

fn run(binary: &str, expect_last: &str) {
    let output = Command::new(binary)
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("SCHEMA_REGISTRY_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{binary} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("embedded mock cluster"),
        "{binary}'s first line should say it runs on the embedded cluster: {first}"
    );
    assert!(
        stdout.contains(expect_last),
        "{binary} did not print {expect_last:?}:\n{stdout}"
    );
}

#[test]
fn avro_sensors() {
    run(
        env!("CARGO_BIN_EXE_avro_sensors"),
        "done: 6 Avro measurements produced and consumed; every one read back \
         field for field, per key in send order",
    );
}

#[test]
fn iot_pipeline() {
    run(
        env!("CARGO_BIN_EXE_iot_pipeline"),
        "ok: the output topics hold exactly the readings computed from the input \
         (2 temperature, 1 pressure, 1 other; 2 bad readings absent)",
    );
}

#[test]
fn word_count() {
    run(
        env!("CARGO_BIN_EXE_word_count"),
        "ok: word count matches through queries and the output topic",
    );
}

#[test]
fn iot_latest() {
    run(
        env!("CARGO_BIN_EXE_iot_latest"),
        "ok: latest readings, key location and sensor metadata answered",
    );
}

#[test]
fn witness_protection() {
    run(
        env!("CARGO_BIN_EXE_witness_protection"),
        "ok: every derived table forgot witness-42",
    );
}

#[test]
fn iot_windowed() {
    run(
        env!("CARGO_BIN_EXE_iot_windowed"),
        "ok: per-minute average, minimum and maximum emitted final per sensor, and \
         temp-1's last hour answered",
    );
}

#[test]
fn iot_enriched() {
    run(
        env!("CARGO_BIN_EXE_iot_enriched"),
        "ok: every reading enriched with its sensor's unit, location and threshold \
         (1 alarm, 1 sensor without metadata)",
    );
}

#[test]
fn iot_correlated() {
    run(
        env!("CARGO_BIN_EXE_iot_correlated"),
        "ok: temperature and pressure correlated within 5 s per machine (2 pairs; \
         readings too far apart or without a partner gave none)",
    );
}
