#![no_main]

// The body is fuzz_targets::TARGETS' "checkpoint", which the stable regression test replays.
static TARGET: std::sync::LazyLock<fuzz_targets::Target> =
    std::sync::LazyLock::new(|| fuzz_targets::target("checkpoint").expect("a listed target"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    TARGET(data);
});
