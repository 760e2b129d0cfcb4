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

/// The example functions with their registration queries, as `cargo xtask run` preloads them.
pub const EXAMPLES: [(&str, &str); 6] = [
    ("matmul", "inputs=matrices&outputs=product&memory=64MiB&timeout_ms=5000"),
    ("wordcount", "inputs=texts&outputs=counts"),
    ("wordcount_merge", "inputs=partials&outputs=counts"),
    ("grep", "inputs=pattern,texts&outputs=matches"),
    ("topk", "inputs=k,counts&outputs=top"),
    ("csv_sum", "inputs=column,tables&outputs=sums"),
];

/// The example compositions (`functions/compositions/NAME.pappus`).
pub const COMPOSITIONS: [&str; 4] = ["wordcount_mapreduce", "top_words", "grep_count", "csv_total"];

/// Registers the example functions (wasm) and compositions for the tenant with `token`.
pub fn deploy_examples(node: &crate::node::Node, token: &str) {
    let auth = format!("Bearer {token}");
    for (name, query) in EXAMPLES {
        let r = node.request(
            "PUT",
            &format!("/v1/functions/{name}?engine=wasm&{query}"),
            &[("Authorization", &auth)],
            &wasm(name),
        );
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    }
    for name in COMPOSITIONS {
        let source = std::fs::read(workspace_root().join(format!("functions/compositions/{name}.pappus"))).unwrap();
        let r = node.request("PUT", &format!("/v1/compositions/{name}"), &[("Authorization", &auth)], &source);
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    }
}
