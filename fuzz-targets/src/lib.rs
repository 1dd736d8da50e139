//! The fuzz targets, one function each over `&[u8]`, in one place: `fuzz/` (cargo-fuzz,
//! nightly) runs them under libFuzzer, and `tests/regression.rs` (stable, in every
//! `cargo test`/CI run) replays the committed corpora `fuzz/corpus/<target>/` and the
//! crashing inputs `fuzz/regressions/<target>/` through the same functions.
//!
//! A target returns whether its input decoded. Decoders may refuse any input; the only
//! failures are panics (including the round-trip assertions inside the targets), hangs
//! and huge allocations.
//!
//! The bodies of the kafka-streams targets live in `kafka_streams::fuzzing`, next to the
//! crate-private decoders they reach; those of serde-avro and kafka-client, which use
//! public API only, live here.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc_limit;
pub mod avro;
pub mod client;

/// A fuzz target: decodes `data`, returning whether it decoded.
pub type Target = fn(&[u8]) -> bool;

/// Every target, by the name of its cargo-fuzz binary and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_split", avro::wire_split),
    ("avro_resolve", avro::avro_resolve),
    ("windowed_key", kafka_streams::fuzzing::windowed_key),
    ("checkpoint", kafka_streams::fuzzing::checkpoint),
    ("changelog_record", kafka_streams::fuzzing::changelog_record),
    ("trace_headers", client::trace_headers),
    ("client_config", client::client_config),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, run)| *run)
}

/// Seed inputs of target `name` written by the real encoders: each must decode.
pub fn valid_seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "wire_split" => avro::wire_split_seeds(),
        "avro_resolve" => avro::avro_resolve_seeds(),
        "windowed_key" => kafka_streams::fuzzing::windowed_key_seeds(),
        "checkpoint" => kafka_streams::fuzzing::checkpoint_seeds(),
        "changelog_record" => kafka_streams::fuzzing::changelog_record_seeds(),
        "trace_headers" => client::trace_headers_seeds(),
        "client_config" => client::client_config_seeds(),
        _ => Vec::new(),
    }
}

/// Edge-case seed inputs of target `name` (empty, truncated, boundary values): they
/// may or may not decode.
pub fn edge_seeds(name: &str) -> Vec<Vec<u8>> {
    let mut seeds = vec![Vec::new(), vec![0], vec![0xff; 16]];
    match name {
        "wire_split" | "avro_resolve" => {
            seeds.push(vec![0, 0, 0, 0]);
            seeds.push(vec![1, 0, 0, 0, 1, 2]);
            // A datum claiming a string/array of 2^62 bytes/items.
            seeds.push(vec![
                0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ]);
        }
        "windowed_key" => {
            seeds.push([&[0u8][..], &[0; 8], &[0; 8]].concat());
            seeds.push([&[0u8][..], &[0xff; 8], &i64::MAX.to_be_bytes()].concat());
            seeds.push([&[2u8][..], &5i64.to_be_bytes(), &7i64.to_be_bytes()].concat());
            seeds.push([&[3u8][..], &(-1i64).to_be_bytes(), &(-1i64).to_be_bytes()].concat());
        }
        "checkpoint" => {
            for text in [
                "0\n",
                "0\n1\n",
                "0\n1\ns t 1 5 6\n",
                "0\n2\ns t 1 5\ns t 1 6\n",
                "0\n18446744073709551616\n",
                "0\n1\ns t -2147483648 9223372036854775807\n",
            ] {
                seeds.push(text.as_bytes().to_vec());
            }
        }
        "changelog_record" => {
            seeds.push(vec![1, 2]);
            seeds.push(vec![1, 0xff, 0xff, 0xff, 0xff, 0x0f, 2]);
            seeds.push(vec![2, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
            seeds.push([&[2u8, 12][..], &(-1i64).to_be_bytes(), &[0; 4], &[0xff]].concat());
            seeds.push([&[3u8, 16][..], &[0; 8], &5i64.to_be_bytes(), &[0]].concat());
            seeds.push([&[4u8, 1, b'k', 40][..], &[0xff; 40]].concat());
        }
        "trace_headers" => {
            let header = |value: &str| {
                kafka_streams::fuzzing::frame(&[(b"traceparent", Some(value.as_bytes()))])
            };
            seeds.push(header(
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            ));
            seeds.push(header(
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ));
            seeds.push(header(
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            ));
            seeds.push(header(
                "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            ));
        }
        "client_config" => {
            seeds.push(b"KAFKA_BOOTSTRAP_SERVERS=\n".to_vec());
            seeds.push(b"=\n==\n\n".to_vec());
            seeds.push(b"schema.registry.url=,,\nmax.retries=-1\n".to_vec());
            seeds.push(b"use.schema.id=99999999999\nlatest.cache.ttl.sec=-1\n".to_vec());
        }
        _ => {}
    }
    seeds
}
