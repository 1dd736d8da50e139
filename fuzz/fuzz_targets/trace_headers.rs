#![no_main]

// The body is fuzz_targets::target("trace_headers"), which the stable regression test replays.
static TARGET: std::sync::LazyLock<fuzz_targets::Target> =
    std::sync::LazyLock::new(|| kafka_sdk_fuzz::target("trace_headers"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    TARGET(data);
});
