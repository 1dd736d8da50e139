#![no_main]

// The body is fuzz_targets::target("wire_split"), which the stable regression test replays.
static TARGET: std::sync::LazyLock<fuzz_targets::Target> =
    std::sync::LazyLock::new(|| kafka_sdk_fuzz::target("wire_split"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    TARGET(data);
});
