#!/usr/bin/env bash
# Runs every test: installs what is missing, starts Apache Kafka as the test broker
# (unless KAFKA_BOOTSTRAP_SERVERS already names one, e.g. docker/compose.yaml) and
# Apicurio Registry as the schema registry (unless SCHEMA_REGISTRY_URL names one),
# then runs the doc tests and every unit and integration test with cargo-nextest.
# Extra arguments go to `cargo nextest run` (e.g. a test-name filter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
source "$here/env.sh"

bash "$here/setup.sh"
source "$here/nextest.sh"

cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done' EXIT
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    broker_dir="$(mktemp -d "${TMPDIR:-/tmp}/kafka-test-broker.XXXXXX")"
    cleanup+=("bash '$here/broker.sh' --stop '$broker_dir/pid'; rm -rf '$broker_dir'")
    KAFKA_BOOTSTRAP_SERVERS="$(bash "$here/broker.sh" "$broker_dir/pid" --dir "$broker_dir")"
    export KAFKA_BOOTSTRAP_SERVERS
else
    echo "test: using the broker at KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
fi
if [ -z "${SCHEMA_REGISTRY_URL:-}" ]; then
    registry_dir="$(mktemp -d "${TMPDIR:-/tmp}/schema-registry.XXXXXX")"
    cleanup+=("bash '$here/registry.sh' --stop '$registry_dir/pid'; rm -rf '$registry_dir'")
    SCHEMA_REGISTRY_URL="$(bash "$here/registry.sh" "$registry_dir/pid" --dir "$registry_dir")"
    export SCHEMA_REGISTRY_URL
    echo "test: schema registry (Apicurio) at $SCHEMA_REGISTRY_URL"
else
    echo "test: using the schema registry at SCHEMA_REGISTRY_URL=$SCHEMA_REGISTRY_URL"
fi

cargo test --workspace --doc
cargo nextest run --workspace --no-fail-fast "$@"
