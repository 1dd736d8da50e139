//! Writes every target's seeds (from the real encoders, and edge cases) into
//! `fuzz/corpus/<target>/seed-<n>`, replacing earlier seed files; run before fuzzing a
//! new or changed target: `cargo run -p fuzz-targets --bin write_seeds`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, _) in fuzz_targets::TARGETS {
        let dir = fuzz.join("corpus").join(name);
        std::fs::create_dir_all(&dir)?;
        let seeds = fuzz_targets::valid_seeds(name)
            .into_iter()
            .chain(fuzz_targets::edge_seeds(name));
        let mut count = 0;
        for (index, seed) in seeds.enumerate() {
            std::fs::write(dir.join(format!("seed-{index:02}")), seed)?;
            count += 1;
        }
        println!("{name}: {count} seeds in {}", dir.display());
    }
    Ok(())
}
