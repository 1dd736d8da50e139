# Shared settings for the project's scripts (sourced, not run).
# The build cache lives outside the clone so CI runs stay incremental.
export KAFKA_SDK_CACHE="${KAFKA_SDK_CACHE:-$HOME/.cache/kafka-sdk}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KAFKA_SDK_CACHE/target}"
NISSHI_VERSION=0.8.1
NISSHI_ROOT="$KAFKA_SDK_CACHE/nisshi-$NISSHI_VERSION"
NISSHI_BIN="$NISSHI_ROOT/bin/nisshi"
