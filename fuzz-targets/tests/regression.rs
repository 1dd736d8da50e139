//! Replays the fuzz corpora on the stable toolchain, in every `cargo test` and CI run:
//! every file of `fuzz/corpus/<target>/` (what fuzzing reached, minimized) and of
//! `fuzz/regressions/<target>/` (inputs that once crashed a target, each a fixed bug)
//! goes through the same target function cargo-fuzz runs. Seeds written by the real
//! encoders must decode, so the targets are known to reach their decoders.

use std::path::{Path, PathBuf};

use fuzz_targets::alloc_limit::LimitedAllocator;
use fuzz_targets::{edge_seeds, valid_seeds, TARGETS};

// As under libFuzzer: a huge allocation aborts the test.
#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `f` on a thread with a 64 MiB stack: apache-avro's decoder, unoptimized as
/// tests build it, takes about 25 KiB of stack per frame, and a datum of a recursive
/// schema nested the 64 levels that serde-avro allows (`bounds.rs`) needs a few MiB.
fn on_a_large_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .expect("a thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

fn replay(kind: &'static str, require_files: bool) {
    on_a_large_stack(move || replay_on_this_thread(kind, require_files));
}

fn replay_on_this_thread(kind: &str, require_files: bool) {
    for (name, run) in TARGETS {
        let files = files_in(&fuzz_dir().join(kind).join(name));
        assert!(
            !require_files || !files.is_empty(),
            "fuzz/{kind}/{name} holds no inputs"
        );
        for file in files {
            let data = std::fs::read(&file).expect("a readable input");
            // A panic here names the target; the file is in the test's output.
            println!("{name}: {}", file.display());
            run(&data);
        }
    }
}

#[test]
fn corpora_replay_without_panics() {
    replay("corpus", true);
}

#[test]
fn regressions_replay_without_panics() {
    replay("regressions", false);
}

#[test]
fn seeds_from_the_encoders_decode() {
    on_a_large_stack(seeds_decode);
}

fn seeds_decode() {
    for (name, run) in TARGETS {
        let seeds = valid_seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for (index, seed) in seeds.iter().enumerate() {
            assert!(run(seed), "{name}: seed {index} does not decode: {seed:?}");
        }
        for seed in edge_seeds(name) {
            run(&seed);
        }
    }
}

#[test]
fn every_fuzz_target_and_corpus_is_listed() {
    let listed: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let stems = |dir: PathBuf, files: bool| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.is_file() == files)
            .map(|path| {
                path.file_stem()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let mut expected: Vec<String> = listed.iter().map(|name| name.to_string()).collect();
    expected.sort();
    assert_eq!(stems(fuzz_dir().join("fuzz_targets"), true), expected);
    assert_eq!(stems(fuzz_dir().join("corpus"), false), expected);
    for (name, _) in TARGETS {
        let source = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("the target's source");
        assert!(
            source.contains(&format!("kafka_sdk_fuzz::target(\"{name}\")")),
            "fuzz/fuzz_targets/{name}.rs runs another target"
        );
    }
}
