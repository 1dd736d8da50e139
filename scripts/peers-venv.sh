#!/usr/bin/env bash
# The Python side of the peer benchmark (bash scripts/bench.sh peers): a virtualenv
# under $KAFKA_SDK_CACHE with Quix Streams and matplotlib (for the chart), pinned,
# made once. Prints the interpreter's path. Not part of the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
QUIXSTREAMS_VERSION="3.28.1"
MATPLOTLIB_VERSION="3.11.2"
venv="$KAFKA_SDK_CACHE/peers-venv"
stamp="$venv/.complete-quixstreams-$QUIXSTREAMS_VERSION-matplotlib-$MATPLOTLIB_VERSION"
if [ ! -f "$stamp" ]; then
    echo "peers-venv: installing quixstreams $QUIXSTREAMS_VERSION and matplotlib $MATPLOTLIB_VERSION into $venv (once)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "quixstreams==$QUIXSTREAMS_VERSION" "matplotlib==$MATPLOTLIB_VERSION" >&2
    rm -f "$venv"/.complete-*
    touch "$stamp"
fi
echo "$venv/bin/python"
