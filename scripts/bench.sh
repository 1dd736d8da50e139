#!/usr/bin/env bash
# Runs a benchmark binary (release build) against the test broker (Apache Kafka, as
# scripts/test.sh starts it), started here unless KAFKA_BOOTSTRAP_SERVERS names one. BENCH_CARGO_ARGS go to cargo (for
# example --no-default-features).
#   bash scripts/bench.sh client_throughput [-- ARGS]
# `peers` (kafka-streams against Kafka Streams and Quix Streams) also gets a Python
# virtualenv with quixstreams (scripts/peers-venv.sh) and the Kafka Streams jars
# (setup.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
source "$here/env.sh"
bench="${1:?usage: bench.sh BENCH_BIN [-- ARGS]}"
shift
[ "${1:-}" = "--" ] && shift

bash "$here/setup.sh"
if [ "$bench" = "peers" ]; then
    PEERS_PYTHON="$(bash "$here/peers-venv.sh")"
    export PEERS_PYTHON
fi
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    broker_dir="$(mktemp -d "${TMPDIR:-/tmp}/kafka-bench-broker.XXXXXX")"
    trap 'bash "$here/broker.sh" --stop "$broker_dir/pid"; rm -rf "$broker_dir"' EXIT
    KAFKA_BOOTSTRAP_SERVERS="$(bash "$here/broker.sh" "$broker_dir/pid" --dir "$broker_dir")"
    export KAFKA_BOOTSTRAP_SERVERS
fi
# shellcheck disable=SC2086 # BENCH_CARGO_ARGS is a list of cargo flags
cargo run --release -p kafka-benchmarks ${BENCH_CARGO_ARGS:-} --bin "$bench" -- "$@"
