#!/usr/bin/env bash
# Runs every test: installs what is missing, starts the test broker (unless
# KAFKA_BOOTSTRAP_SERVERS already names one, e.g. docker/compose.yaml), then runs
# the doc tests and every unit and integration test with cargo-nextest.
# Extra arguments go to `cargo nextest run` (e.g. a test-name filter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
source "$here/env.sh"

bash "$here/setup.sh"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    pid_file="$(mktemp)"
    trap 'kill "$(cat "$pid_file")" 2>/dev/null || true; rm -f "$pid_file"' EXIT
    KAFKA_BOOTSTRAP_SERVERS="$(bash "$here/broker.sh" "$pid_file")"
    export KAFKA_BOOTSTRAP_SERVERS
else
    echo "test: using the broker at KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
fi

cargo test --workspace --doc
cargo nextest run --workspace --no-fail-fast "$@"
