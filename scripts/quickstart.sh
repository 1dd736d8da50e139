#!/usr/bin/env bash
# The main example with zero setup, on a fresh machine too: installs the system
# packages a build of kafka-client needs (skipping those present), then runs the
# quickstart on librdkafka's embedded mock cluster (or on KAFKA_BOOTSTRAP_SERVERS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
source "$here/env.sh"
bash "$here/setup.sh" --client
exec cargo run -p kafka-quickstart --bin quickstart "$@"
