#!/usr/bin/env bash
# The test schema registry: Apicurio Registry (docker/apicurio/pom.xml, from Maven
# Central), which serves the Confluent Schema Registry REST API under
# /apis/ccompat/v7 and keeps its schemas in an in-memory H2 database, so every start
# is an empty registry and nothing is left on disk.
#
#   registry.sh --fetch           fetches and unpacks it once into the cache
#   registry.sh PID_FILE [--dir DIR]
#                                 starts it on a free loopback port and waits until
#                                 the API answers; prints the URL clients use
#                                 (http://127.0.0.1:PORT/apis/ccompat/v7) on stdout;
#                                 the java pid goes to PID_FILE, its log to
#                                 DIR/registry.log (default: a new temporary DIR)
#   registry.sh --stop PID_FILE   stops it (SIGTERM) and waits
#
# APICURIO_VERSION picks another 2.x release of io.apicurio:apicurio-registry-app.
# Apicurio 3.x needs Java 21; the test machines have Java 17 (see the pom).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
APICURIO_DIR="$(cd "$here/../docker/apicurio" && pwd)"
APICURIO_VERSION="${APICURIO_VERSION:-2.6.13.Final}"
APICURIO_HOME="$KAFKA_SDK_CACHE/apicurio-$APICURIO_VERSION"
runner="$APICURIO_HOME/apicurio-registry-app-$APICURIO_VERSION-runner.jar"

fetch() {
    [ -f "$APICURIO_HOME/.complete" ] && return 0
    echo "registry: fetching Apicurio Registry $APICURIO_VERSION with Maven into $APICURIO_HOME (once)" >&2
    rm -rf "$APICURIO_HOME"
    mkdir -p "$APICURIO_HOME"
    local download="$APICURIO_HOME/.download"
    # Maven's own output is the error message when the artifact cannot be resolved.
    if ! mvn -q -B -f "$APICURIO_DIR/pom.xml" "-Dapicurio.version=$APICURIO_VERSION" \
        dependency:copy-dependencies "-DoutputDirectory=$download" >&2; then
        echo "registry: Maven could not fetch io.apicurio:apicurio-registry-app:tar.gz:all:$APICURIO_VERSION" >&2
        rm -rf "$APICURIO_HOME"
        exit 1
    fi
    tar -xzf "$download/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$APICURIO_HOME"
    rm -rf "$download"
    [ -f "$runner" ] || {
        echo "registry: the archive has no $(basename "$runner"); its layout changed:" >&2
        ls -la "$APICURIO_HOME" >&2
        exit 1
    }
    touch "$APICURIO_HOME/.complete"
}

case "${1:-}" in
    --fetch)
        fetch
        echo "registry: Apicurio Registry $APICURIO_VERSION ready in $APICURIO_HOME" >&2
        exit 0
        ;;
    --stop)
        pid="$(cat "${2:?usage: registry.sh --stop PID_FILE}" 2>/dev/null)" || exit 0
        kill "$pid" 2>/dev/null || exit 0
        timeout 30 tail --pid="$pid" -f /dev/null || kill -9 "$pid" 2>/dev/null || true
        exit 0
        ;;
esac
pid_file="${1:?usage: registry.sh --fetch | PID_FILE [--dir DIR] | --stop PID_FILE}"
shift
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        *) echo "registry: unknown argument $1" >&2; exit 2 ;;
    esac
done

[ -f "$APICURIO_HOME/.complete" ] || {
    echo "registry: Apicurio Registry $APICURIO_VERSION is missing from $APICURIO_HOME; run \`bash scripts/registry.sh --fetch\`" >&2
    exit 1
}
[ -n "$dir" ] || dir="$(mktemp -d "${TMPDIR:-/tmp}/apicurio-registry.XXXXXX")"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
log="$dir/registry.log"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port/apis/ccompat/v7"

# A clean environment: Apicurio reads many plain environment variables as settings,
# e.g. KAFKA_BOOTSTRAP_SERVERS (which the test scripts export) would make it publish
# registry events to the test broker, and REGISTRY_DATASOURCE_URL or HTTP_PORT would
# move its storage or port. Only what the JVM itself needs is passed on.
jvm_env=(PATH="$PATH" HOME="$HOME" LANG=C.UTF-8)
[ -n "${JAVA_HOME:-}" ] && jvm_env+=(JAVA_HOME="$JAVA_HOME")
# A small heap and the serial collector: a test registry holds a few hundred schemas,
# and shares two cores with the broker and the tests. C1 only (TieredStopAtLevel=1)
# starts it in about 3 s instead of 4.5 s; its requests are not CPU-bound.
java_opts=(-Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Djava.io.tmpdir=$dir"
    # Loopback only, on the port picked above.
    -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$port"
    # In-memory H2 (2.x's default, spelled out): nothing survives a restart. The pool
    # starts with 20 connections otherwise; a test registry needs few.
    "-Dquarkus.datasource.jdbc.url=jdbc:h2:mem:registry_db"
    -Dquarkus.datasource.jdbc.initial-size=2 -Dquarkus.datasource.jdbc.min-size=2
    # Requests go to the log, so a failing test can be matched with what the registry saw.
    -Dquarkus.http.access-log.enabled=true)

start="$(date +%s%N)"
env -i "${jvm_env[@]}" java "${java_opts[@]}" -jar "$runner" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pid_file"

# Ready when the Confluent API lists subjects (an empty list on a fresh registry).
if ! python3 - "$url/subjects" "$pid" <<'EOF'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 120
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the registry process exited during startup")
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(f"GET {url} did not answer 200 within 120 s")
EOF
then
    echo "registry: Apicurio Registry did not become ready at $url; its log ($log):" >&2
    tail -n 40 "$log" >&2 || true
    kill "$pid" 2>/dev/null || true
    exit 1
fi
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
echo "registry: Apicurio Registry $APICURIO_VERSION (pid $pid) ready in ${elapsed_ms} ms at $url, log $log" >&2
echo "$url"
