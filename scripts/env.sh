# Shared settings for the project's scripts (sourced, not run).
# The build cache lives outside the clone so CI runs stay incremental.
export KAFKA_SDK_CACHE="${KAFKA_SDK_CACHE:-$HOME/.cache/kafka-sdk}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KAFKA_SDK_CACHE/target}"
# The test broker: Apache Kafka's own jars, fetched once with Maven (setup.sh).
KAFKA_JVM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../docker/kafka-jvm" && pwd)"
export KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
export KAFKA_JARS="$KAFKA_SDK_CACHE/kafka-$KAFKA_VERSION/lib"
# Kafka Streams and its TopologyTestDriver, for the conformance harness (conformance/),
# fetched once with Maven (setup.sh).
KAFKA_STREAMS_JVM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../docker/kafka-streams-jvm" && pwd)"
export KAFKA_STREAMS_JARS="$KAFKA_SDK_CACHE/kafka-streams-$KAFKA_VERSION/lib"
