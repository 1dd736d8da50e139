#!/usr/bin/env bash
# Installs what building and testing need on a fresh machine; skips what is there.
#   - system packages: libclang (bindgen for rocksdb), a C/C++ toolchain, OpenSSL
#     headers, the openssl tool (TLS test certificates) and pkg-config, cmake;
#   - the test broker: nisshi, a Kafka-protocol broker, built once into the cache.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"

need_apt=()
for pkg in libclang-dev libssl-dev openssl pkg-config cmake g++ make; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v python3 >/dev/null || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$NISSHI_BIN" ]; then
    echo "setup: building the nisshi $NISSHI_VERSION test broker into $NISSHI_ROOT (10-15 minutes, once)"
    cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
        --root "$NISSHI_ROOT" --target-dir "$KAFKA_SDK_CACHE/nisshi-build"
fi
echo "setup: ready (broker: $NISSHI_BIN)"
