//! The crate's rooms stay apart: `dsl → topology → {processor, state} ← runtime`, and
//! `test_driver → runtime`. This reads the crate's own sources and fails on any
//! `crate::<module>` reference outside the allowed arrows, so a cycle cannot creep in.
//!
//! Only library code counts: comments, doc comments and each file's trailing
//! `#[cfg(test)]` module (the convention in this crate) are skipped, because white-box
//! tests may build a topology with the DSL to test the runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules a module may reference, besides itself.
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let neutral = ["error", "common", "windowed"];
    let layers: [(&str, &[&str]); 10] = [
        ("dsl", &["topology", "processor", "state"]),
        ("topology", &["processor", "state"]),
        ("processor", &["state"]),
        ("state", &[]),
        ("runtime", &["topology", "processor", "state"]),
        (
            "test_driver",
            &["runtime", "topology", "processor", "state"],
        ),
        // The fuzz targets' entry points reach decoders in every layer.
        (
            "fuzzing",
            &["dsl", "topology", "processor", "state", "runtime"],
        ),
        ("error", &[]),
        ("common", &[]),
        ("windowed", &[]),
    ];
    layers
        .into_iter()
        .map(|(module, uses)| {
            let mut set: BTreeSet<&str> = uses.iter().copied().collect();
            set.extend(neutral.iter().copied().filter(|n| *n != module));
            (module, set)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/runtime/task.rs` → `runtime`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a path component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The crate root's re-exports (`pub use error::{Result, ...}` in lib.rs), by name,
/// with the module they come from.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        for item in items
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
        {
            let item = item.trim();
            if !item.is_empty() {
                names.insert(item.to_owned(), module.to_owned());
            }
        }
    }
    names
}

/// `crate::<module>` references in library code.
fn references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

#[test]
fn modules_only_reference_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed = allowed();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let reexports = root_reexports(&lib);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for file in files {
        let module = module_of(&src, &file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for name in references(&text) {
            let target = reexports.get(&name).cloned().unwrap_or(name);
            if target == module {
                continue;
            }
            graph
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
            let ok = allowed
                .get(module.as_str())
                .is_some_and(|set| set.contains(target.as_str()));
            if !ok {
                violations.push(format!(
                    "{} references crate::{target}",
                    file.strip_prefix(&src).unwrap_or(&file).display()
                ));
            }
        }
    }
    // Printed so the import graph can be read in the test output.
    for (module, targets) in &graph {
        println!(
            "{module} -> {}",
            targets.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}
