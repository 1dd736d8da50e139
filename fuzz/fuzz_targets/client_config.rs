#![no_main]

// The body is fuzz_targets::target("client_config"), which the stable regression test replays.
static TARGET: std::sync::LazyLock<fuzz_targets::Target> =
    std::sync::LazyLock::new(|| kafka_sdk_fuzz::target("client_config"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    TARGET(data);
});
