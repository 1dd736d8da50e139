#!/usr/bin/env bash
# Installs what building and testing need on a fresh machine; skips what is there.
#   - system packages: libclang (bindgen for rocksdb), a C/C++ toolchain, OpenSSL
#     headers, the openssl tool (TLS test certificates), pkg-config, cmake, and a
#     JDK with Maven for the test broker;
#   - the test broker: Apache Kafka's jars (docker/kafka-jvm/pom.xml), Kafka Streams
#     with its TopologyTestDriver for the conformance test (docker/kafka-streams-jvm/
#     pom.xml), and the test schema registry: Apicurio Registry (docker/apicurio/
#     pom.xml), each fetched once with Maven into $KAFKA_SDK_CACHE.
#
#   setup.sh            everything
#   setup.sh --client   only what building kafka-client needs (the quickstart)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
build_only=0
# librdkafka builds with make and a C compiler, and links OpenSSL (found by
# pkg-config); RocksDB also needs libclang (bindgen) and cmake.
packages=(libssl-dev pkg-config g++ make)
if [ "${1:-}" = "--client" ]; then
    build_only=1
else
    packages+=(libclang-dev openssl cmake)
fi

need_apt=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v python3 >/dev/null || need_apt+=(python3)
if [ "$build_only" -eq 0 ]; then
    # A virtualenv holds the prebuilt cargo-nextest (scripts/nextest.sh).
    python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
    command -v java >/dev/null || need_apt+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null || need_apt+=(maven)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[ "$build_only" -eq 1 ] && exit 0

if [ ! -f "$KAFKA_JARS/.complete" ]; then
    echo "setup: fetching Apache Kafka $KAFKA_VERSION's broker jars with Maven into $KAFKA_JARS (once)"
    rm -rf "$KAFKA_JARS"
    mvn -q -B -f "$KAFKA_JVM_DIR/pom.xml" "-Dkafka.version=$KAFKA_VERSION" \
        dependency:copy-dependencies "-DoutputDirectory=$KAFKA_JARS"
    ls "$KAFKA_JARS"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null
    touch "$KAFKA_JARS/.complete"
fi
if [ ! -f "$KAFKA_STREAMS_JARS/.complete" ]; then
    echo "setup: fetching Kafka Streams $KAFKA_VERSION and its test driver with Maven into $KAFKA_STREAMS_JARS (once)"
    rm -rf "$KAFKA_STREAMS_JARS"
    mvn -q -B -f "$KAFKA_STREAMS_JVM_DIR/pom.xml" "-Dkafka.version=$KAFKA_VERSION" \
        dependency:copy-dependencies "-DoutputDirectory=$KAFKA_STREAMS_JARS"
    ls "$KAFKA_STREAMS_JARS"/kafka-streams-"$KAFKA_VERSION".jar \
        "$KAFKA_STREAMS_JARS"/kafka-streams-test-utils-"$KAFKA_VERSION".jar >/dev/null
    touch "$KAFKA_STREAMS_JARS/.complete"
fi
bash "$here/registry.sh" --fetch
echo "setup: ready (broker: Apache Kafka $KAFKA_VERSION from $KAFKA_JARS; Kafka Streams for the conformance test from $KAFKA_STREAMS_JARS; schema registry: Apicurio)"
