//! The example compositions in `functions/compositions/` parse and check cleanly, against the
//! functions the `functions/` workspace registers (their `[package.metadata.pappus]` sets) and
//! the platform's builtins, as the front door would see them on upload.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use dsl::{CheckOptions, Signature, check_with, parse};

/// The platform's builtins (kernel/control/src/builtin.rs).
const BUILTINS: [(&str, Signature); 4] = [
    ("identity", Signature { inputs: 1, outputs: 1 }),
    ("concat", Signature { inputs: 2, outputs: 1 }),
    ("fail", Signature { inputs: 1, outputs: 1 }),
    ("sleep", Signature { inputs: 1, outputs: 1 }),
];

/// The compositions the examples must include.
const REQUIRED: [&str; 3] = ["wordcount_mapreduce", "top_words", "grep_count"];

fn functions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions")
}

/// How many quoted strings a one-line TOML array of strings holds: `["a", "b"]` is 2.
fn string_array_len(value: &str, file: &Path) -> usize {
    let value = value.trim();
    assert!(
        value.starts_with('[') && value.ends_with(']'),
        "{}: expected a one-line array of strings, got {value}",
        file.display()
    );
    let quotes = value.matches('"').count();
    assert_eq!(quotes % 2, 0, "{}: unbalanced quotes in {value}", file.display());
    quotes / 2
}

/// The registered name and set counts of a function crate, from its Cargo.toml: the package
/// name with `-` as `_`, and the lengths of `inputs` and `outputs` in
/// `[package.metadata.pappus]`. `None` for a crate without that section.
///
/// A line-based reader rather than a TOML parser: this crate has no TOML dependency, and the
/// function crates write these keys on one line each.
fn registration(manifest: &Path) -> Option<(String, Signature)> {
    let text = fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut section = String::new();
    let (mut name, mut inputs, mut outputs, mut pappus) = (None, None, None, false);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line.to_string();
            pappus |= section == "[package.metadata.pappus]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        match (section.as_str(), key.trim()) {
            ("[package]", "name") => name = Some(value.trim().trim_matches('"').replace('-', "_")),
            ("[package.metadata.pappus]", "inputs") => inputs = Some(string_array_len(value, manifest)),
            ("[package.metadata.pappus]", "outputs") => outputs = Some(string_array_len(value, manifest)),
            _ => {}
        }
    }
    if !pappus {
        return None;
    }
    let name = name.unwrap_or_else(|| panic!("{}: no package name", manifest.display()));
    let inputs = inputs.unwrap_or_else(|| panic!("{}: metadata without `inputs`", manifest.display()));
    let outputs = outputs.unwrap_or_else(|| panic!("{}: metadata without `outputs`", manifest.display()));
    Some((name, Signature { inputs, outputs }))
}

/// Every registered example function and builtin, by name.
fn registry() -> BTreeMap<String, Signature> {
    let mut registry: BTreeMap<String, Signature> = BUILTINS.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    for entry in fs::read_dir(functions_dir()).expect("functions/ exists") {
        let manifest = entry.expect("read functions/").path().join("Cargo.toml");
        if manifest.is_file()
            && let Some((name, signature)) = registration(&manifest)
        {
            assert!(registry.insert(name.clone(), signature).is_none(), "`{name}` is registered twice");
        }
    }
    registry
}

fn compositions() -> Vec<PathBuf> {
    let dir = functions_dir().join("compositions");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read compositions/").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pappus"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_registry_holds_the_example_functions() {
    let registry = registry();
    for (name, inputs, outputs) in [
        ("template", 1, 1),
        ("matmul", 1, 1),
        ("wordcount", 1, 1),
        ("wordcount_merge", 1, 1),
        ("grep", 2, 1),
        ("topk", 2, 1),
        ("csv_sum", 2, 1),
    ] {
        assert_eq!(registry.get(name), Some(&Signature { inputs, outputs }), "{name}");
    }
}

#[test]
fn every_example_composition_parses_and_checks_without_errors_or_warnings() {
    let registry = registry();
    let registered = |name: &str| registry.get(name).copied();
    let options = CheckOptions { require_registered: true };
    let files = compositions();
    for required in REQUIRED {
        assert!(
            files.iter().any(|f| f.file_stem().is_some_and(|s| s == required)),
            "functions/compositions/{required}.pappus is missing"
        );
    }
    for file in &files {
        let shown = file.display();
        let src = fs::read_to_string(file).unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert!(src.starts_with("//"), "{shown}: should start with a comment saying what it does");
        let program = parse(&src).unwrap_or_else(|errors| {
            panic!("{shown}: syntax errors:\n{}", errors.iter().map(|e| format!("  {e}\n")).collect::<String>())
        });
        match check_with(&program, &registered, options) {
            Ok(warnings) => assert!(
                warnings.is_empty(),
                "{shown}: warnings:\n{}",
                warnings.iter().map(|w| format!("  {w}\n")).collect::<String>()
            ),
            Err(errors) => {
                panic!("{shown}: errors:\n{}", errors.iter().map(|e| format!("  {e}\n")).collect::<String>())
            }
        }
        // One composition per file, named as the file: that is the name it is uploaded under.
        let names: Vec<&str> = program.compositions.iter().map(|c| c.name.name.as_str()).collect();
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        assert_eq!(names, [stem], "{shown}: should define exactly the composition `{stem}`");
    }
}

#[test]
fn a_declaration_that_disagrees_with_the_registration_is_caught() {
    // The check above would mean little if a wrong set count slipped through.
    let registry = registry();
    let program = parse(
        "function grep (texts) => (matches);
         composition g (texts) => (m) { grep (texts = each texts) => (m = matches); }",
    )
    .expect("parses");
    let errors = check_with(&program, &|n| registry.get(n).copied(), CheckOptions { require_registered: true })
        .expect_err("grep takes two inputs");
    assert!(
        errors[0].message.contains("declared with 1 input set(s), but the registered function has 2"),
        "{errors:?}"
    );
}
