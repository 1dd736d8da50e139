#!/usr/bin/env bash
# Starts the nisshi test broker on a free loopback port and waits until it accepts
# Kafka connections. Prints the bootstrap address on stdout; the broker's pid goes
# to $1 (a file) so the caller can stop it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
pid_file="${1:?usage: broker.sh PID_FILE}"

[ -x "$NISSHI_BIN" ] || { echo "broker: $NISSHI_BIN is missing; run scripts/setup.sh" >&2; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$KAFKA_SDK_CACHE/nisshi-$port.log"
# The broker gets its own log level: a RUST_LOG meant for the SDK (e.g. `info` or
# `debug` to trace an app) would make nisshi log every request, tens of GB a minute.
RUST_LOG="${NISSHI_LOG:-warn}" "$NISSHI_BIN" \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://nisshi/" \
    --group-initial-rebalance-delay 0s >"$log" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"

deadline=$((SECONDS + 60))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "broker: nisshi exited during startup; its log ($log):" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
        echo "broker: nisshi did not accept connections on port $port within 60s" >&2
        tail -n 40 "$log" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
echo "broker: nisshi (pid $pid) listening on 127.0.0.1:$port, log $log" >&2
echo "127.0.0.1:$port"
