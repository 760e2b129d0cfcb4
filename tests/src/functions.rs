//! The example functions as the suites use them: built once per test process for wasm32 in the
//! functions workspace (`functions/`), read from its target folder.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::workspace_root;

/// The `.wasm` of function package `name` (underscores), building the functions workspace first.
pub fn wasm(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let functions = workspace_root().join("functions");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
            .current_dir(&functions)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| format!("cannot run cargo in {}: {e}", functions.display()))?;
        if !out.status.success() {
            return Err(format!("building functions/ failed:\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(functions.join("target/wasm32-unknown-unknown/release"))
    });
    let dir = dir.as_ref().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example functions with their registration queries. The time budgets are generous: they
/// are enforced on the wall clock too, and TCG guests on a loaded CI machine run slowly.
pub const EXAMPLES: [(&str, &str); 6] = [
    ("matmul", "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=30000"),
    ("wordcount", "inputs=texts&outputs=counts&timeout_ms=30000"),
    ("wordcount_merge", "inputs=partials&outputs=counts&timeout_ms=30000"),
    ("grep", "inputs=pattern,texts&outputs=matches&timeout_ms=30000"),
    ("topk", "inputs=k,counts&outputs=top&timeout_ms=30000"),
    ("csv_sum", "inputs=column,tables&outputs=sums&timeout_ms=30000"),
];

/// The example compositions (`functions/compositions/NAME.pappus`).
pub const COMPOSITIONS: [&str; 4] = ["wordcount_mapreduce", "top_words", "grep_count", "csv_total"];

/// Registers the example functions on `engine` (`wasm` modules, or native images for the
/// native engines) and the compositions over them, for the tenant with `token`.
pub fn deploy_examples(node: &crate::node::Node, token: &str, engine: &str) {
    let auth = format!("Bearer {token}");
    for (name, query) in EXAMPLES {
        let image = if engine == "wasm" { wasm(name) } else { native(name) };
        let path = format!("/v1/functions/{name}?engine={engine}&{query}");
        let r = node.request("PUT", &path, &[("Authorization", &auth)], &image);
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    }
    for name in COMPOSITIONS {
        let source = std::fs::read(workspace_root().join(format!("functions/compositions/{name}.pappus"))).unwrap();
        let r = node.request("PUT", &format!("/v1/compositions/{name}"), &[("Authorization", &auth)], &source);
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    }
}

pub use pappus::native::{NATIVE_RUSTFLAGS, NATIVE_TARGET, build_native};

/// The native ELF of function package `name` (underscores), built on first use.
pub fn native(name: &str) -> Vec<u8> {
    static BUILT: std::sync::Mutex<Vec<(String, Result<PathBuf, String>)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|(n, _)| n == name) {
        let functions = workspace_root().join("functions");
        let result = build_native(&functions, &name.replace('_', "-"));
        built.push((name.to_string(), result));
    }
    let (_, result) = built.iter().find(|(n, _)| n == name).unwrap();
    let path = result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A hostile native function (`tests/native-hostile/hostile.rs` built with `--cfg
/// case="<case>"`), linked like a real function: static PIE by rust-lld.
pub fn hostile_native(case: &str) -> Vec<u8> {
    let source = workspace_root().join("tests/native-hostile/hostile.rs");
    let dir = crate::target_dir().join("native-hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{case}.elf"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "bin", "--target", NATIVE_TARGET])
        .args(["-C", "relocation-model=pie", "-C", "opt-level=1", "-C", "panic=abort"])
        .args(["-C", "linker=rust-lld", "-C", "linker-flavor=ld.lld"])
        .args(["-C", "link-arg=-static", "-C", "link-arg=-pie", "-C", "link-arg=--no-dynamic-linker"])
        .args(["-C", "link-arg=-ztext", "-C", "link-arg=-nostdlib"])
        .arg("--cfg")
        .arg(format!("case=\"{case}\""))
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("rustc: {e}"));
    assert!(status.success(), "building hostile case {case} failed");
    std::fs::read(&out).unwrap()
}
