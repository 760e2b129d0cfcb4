//! The `pappus` binary against a live node (x86_64 q35 under QEMU, booted by the harness): run
//! as a user would, from a folder outside the repository, with a clean environment and its own
//! config folder. Deploy (a crate of functions/, the whole functions/ workspace, and a crate
//! made by `pappus new`, for wasm32 and natively), invoke with `--set` text, keys and `@file`, `--raw`, `--out`, `--json`,
//! compose, list, get, rm, health, metrics, the config file and its precedence, and errors (a
//! bad token, unknown names) with their messages and exit status.
//!
//! A QEMU suite: it runs with `PAPPUS_QEMU_TESTS=1` (`cargo xtask test` sets it), and prints a
//! SKIP line otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pappus_tests::node::{OPERATOR_TOKEN, Tenant, boot, boot_arch};
use pappus_tests::sets::{decode, host_counts};
use pappus_tests::workspace_root;
use serde_json::Value;

const TENANT: Tenant = Tenant { name: "cli", token: "cli-token-0123456789abcdef" };

/// How the binary is run: a clean environment (no `PAPPUS_*`, no cargo variables), a config
/// folder of its own (`XDG_CONFIG_HOME`), and a working folder outside the repository.
struct Pappus {
    home: PathBuf,
    work: PathBuf,
    env: Vec<(String, String)>,
}

impl Pappus {
    fn new(scratch: &Path) -> Pappus {
        let home = scratch.join("home");
        let work = scratch.join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        Pappus { home, work, env: Vec::new() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pappus"));
        command.args(args).current_dir(&self.work);
        // What cargo test sets for us is not a user's shell: no `CARGO` (so `pappus` runs the
        // `cargo` on the path) and no toolchain override (so a crate's rust-toolchain.toml
        // picks). CARGO_HOME and HOME stay: rustup and cargo live there.
        for (name, _) in std::env::vars() {
            let cargo = name.starts_with("CARGO") && name != "CARGO_HOME";
            if name.starts_with("PAPPUS_") || cargo || name == "RUSTUP_TOOLCHAIN" {
                command.env_remove(name);
            }
        }
        command.env("XDG_CONFIG_HOME", self.home.join(".config"));
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap_or_else(|e| panic!("cannot run pappus: {e}"))
    }

    /// Runs `pappus args…`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pappus {args:?} failed ({}):\n{stderr}", out.status);
        // Not a terminal here: no progress bar, no cursor control.
        assert!(!stderr.contains('\r') && !stderr.contains('\x1b'), "progress drawn off a terminal: {stderr:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `pappus args…`, which must fail with status 1; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert_eq!(out.status.code(), Some(1), "pappus {args:?}: {out:?}");
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("pappus {args:?}: not one JSON document ({e}):\n{stdout}"))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_pappus")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["deploy", "compose", "invoke", "list", "get", "rm", "health", "metrics", "new", "completions"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(command)), "{command} not in --help:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pappus")).args(["invoke", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

#[test]
fn cli_against_a_live_node() {
    let Some(node) = boot("cli_against_a_live_node", &[TENANT]) else { return };
    let url = format!("http://127.0.0.1:{}", node.port);
    let scratch = std::env::temp_dir().join(format!("pappus-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut pappus = Pappus::new(&scratch);
    let root = workspace_root();
    let readme = root.join("README.md");

    // Health needs no token; outside a checkout with nothing configured, a token is asked for.
    let health = pappus.ok(&["health", "--url", &url]);
    assert!(health.starts_with(&format!("ok: {url}: pappus ")), "{health}");
    assert_eq!(pappus.json(&["health", "--url", &url, "--json"])["status"], "ok");
    let e = pappus.fails(&["list", "--url", &url]);
    assert!(e.starts_with("pappus: error: no token: pass --token or set PAPPUS_TOKEN"), "{e}");
    assert!(e.contains(&path(&pappus.home.join(".config/pappus/config.toml")).to_string()), "{e}");

    // The config file names the node and the token; the environment beats it.
    let config = pappus.home.join(".config/pappus");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), format!("url = \"{url}\"\ntoken = \"{}\"\n", TENANT.token)).unwrap();
    assert_eq!(pappus.ok(&["list"]), "functions: none\ncompositions: none\n");
    pappus.env.push(("PAPPUS_TOKEN".into(), "not-a-token".into()));
    let e = pappus.fails(&["list"]);
    assert!(e.starts_with("pappus: error: 401 unauthorized: "), "a bad token: {e}");
    pappus.env.clear();
    let e = pappus.fails(&["list", "--token", "also-wrong"]);
    assert!(e.starts_with("pappus: error: 401 unauthorized: "), "{e}");
    std::fs::write(config.join("config.toml"), "tokn = \"x\"\n").unwrap();
    let e = pappus.fails(&["list"]);
    assert!(e.contains("config.toml") && e.contains("unknown field `tokn`"), "{e}");
    std::fs::write(config.join("config.toml"), format!("url = \"{url}\"\ntoken = \"{}\"\n", TENANT.token)).unwrap();

    // Deploy a crate of the repository's functions/ workspace.
    let out = pappus.ok(&["deploy", path(&root.join("functions/wordcount"))]);
    assert!(out.starts_with("function wordcount created: wasm (texts) => (counts)"), "{out}");
    let again = pappus.json(&["deploy", path(&root.join("functions/wordcount")), "--json"]);
    assert_eq!((again["created"].as_bool(), again["function"]["name"].as_str()), (Some(false), Some("wordcount")));

    // Invoke with @file: the text, and the --json answer, count what the host counts.
    let text = pappus.ok(&["invoke", "wordcount", "--set", &format!("texts=@{}", path(&readme))]);
    assert!(text.starts_with("counts ("), "{text}");
    let json = pappus.ok(&["invoke", "wordcount", "--set", &format!("texts=@{}", path(&readme)), "--json"]);
    let answer = decode(json.as_bytes());
    let counts: BTreeMap<String, u64> =
        answer["counts"].iter().map(|(w, n)| (w.clone(), String::from_utf8_lossy(n).parse().unwrap())).collect();
    assert_eq!(counts, host_counts(&[std::fs::read_to_string(&readme).unwrap()]));
    // Text items, keys and the binary format; --out writes the items to files.
    let out_dir = scratch.join("out");
    let lines = pappus.ok(&[
        "invoke",
        "wordcount",
        "--set",
        "texts=b a b",
        "--set",
        "texts:7=c",
        "--binary",
        "--out",
        path(&out_dir),
    ]);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    for (word, count) in [("a", "1"), ("b", "2"), ("c", "1")] {
        assert_eq!(std::fs::read_to_string(out_dir.join("counts").join(word)).unwrap(), count, "{lines}");
    }

    // A whole workspace: every crate with metadata, one JSON document per function.
    let lines = pappus.ok(&["deploy", path(&root.join("functions")), "--json"]);
    let mut names: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))["function"]["name"].to_string()
        })
        .collect();
    names.sort();
    let expected = ["csv_sum", "grep", "matmul", "template", "topk", "wordcount", "wordcount_merge"];
    assert_eq!(names, expected.map(|n| format!("\"{n}\"")), "{lines}");

    // A composition: registered, listed, shown as its source, invoked, removed.
    let program = "function wordcount (texts) => (counts);\n\
                   composition wc_all (texts) => (counts) {\n    wordcount (texts = all texts) => (counts = counts);\n}\n";
    let file = pappus.work.join("wc_all.pappus");
    std::fs::write(&file, program).unwrap();
    assert_eq!(pappus.ok(&["compose", path(&file)]), "composition wc_all created: (texts) => (counts)\n");
    let out = pappus.ok(&["invoke", "wc_all", "--set", "texts=x y x"]);
    assert_eq!(out, "counts (2 items)\n  #0 \"x\", 1B: \"2\"\n  #1 \"y\", 1B: \"1\"\n");
    let listing = pappus.ok(&["list"]);
    assert!(listing.contains("  wordcount: wasm (texts) => (counts)"), "{listing}");
    assert!(listing.contains("compositions (1):\n  wc_all: (texts) => (counts)\n"), "{listing}");
    let listing = pappus.json(&["list", "--json"]);
    let functions = listing["functions"].as_array().unwrap();
    assert!(functions.iter().any(|f| f["name"] == "wordcount" && f["engine"] == "wasm"), "{listing}");
    assert_eq!(listing["compositions"][0]["name"], "wc_all");
    assert_eq!(pappus.ok(&["get", "wc_all"]), program);
    let get = pappus.ok(&["get", "wordcount"]);
    assert!(get.starts_with("function wordcount\n  engine   wasm\n  inputs   texts\n  outputs  counts\n"), "{get}");
    assert_eq!(pappus.json(&["get", "wc_all", "--json"])["composition"]["source"], program);
    assert_eq!(pappus.ok(&["rm", "wc_all"]), "composition wc_all deleted\n");
    let e = pappus.fails(&["rm", "wc_all"]);
    assert_eq!(e, "pappus: error: 404 not_found: no function or composition named 'wc_all'\n");
    let e = pappus.fails(&["get", "nothing_here"]);
    assert_eq!(e, "pappus: error: 404 not_found: no function or composition named 'nothing_here'\n");
    let e = pappus.fails(&["invoke", "nothing_here", "--set", "a=b"]);
    assert!(e.starts_with("pappus: error: 404 not_found: "), "{e}");
    let e = pappus.fails(&["deploy", path(&file)]);
    assert!(e.contains("is a composition: `pappus compose` deploys it"), "{e}");

    // A crate made by `pappus new` outside the repository, the SDK as a path dependency:
    // built for wasm32 and deployed, then natively (mpk on -cpu max).
    let sdk = root.join("sdk");
    let made = pappus.ok(&["new", "hello-fn", "--sdk-path", path(&sdk)]);
    assert!(made.contains("next: cd ./hello-fn && cargo test && pappus deploy ."), "{made}");
    let crate_dir = pappus.work.join("hello-fn");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(&format!("pappus-sdk = {{ path = \"{}\" }}", path(&sdk))), "{manifest}");
    assert!(pappus.fails(&["new", "hello-fn", "--sdk-path", path(&sdk)]).contains("already exists"));
    let out = pappus.ok(&["deploy", "hello-fn"]);
    assert!(out.starts_with("function hello_fn created: wasm (lines) => (upper)"), "{out}");
    assert!(crate_dir.join("target/wasm32-unknown-unknown/release/hello_fn.wasm").is_file());
    assert_eq!(pappus.ok(&["invoke", "hello_fn", "--raw", "hello"]), "HELLO");
    let out = pappus.ok(&["invoke", "hello_fn", "--set", "lines=shout"]);
    assert_eq!(out, "upper (1 item)\n  #0 \"0\", 5B: \"SHOUT\"\n");
    let out = pappus.ok(&["deploy", "hello-fn/Cargo.toml", "--engine", "native", "--name", "hello_native"]);
    assert!(out.starts_with("function hello_native created: native (lines) => (upper)"), "{out}");
    assert_eq!(pappus.ok(&["invoke", "hello_native", "--raw", "native"]), "NATIVE");
    assert_eq!(pappus.ok(&["rm", "hello_native"]), "function hello_native deleted\n");

    // Metrics take the operator's token: the tenant's is refused; the environment gives it.
    let e = pappus.fails(&["metrics", "--token", TENANT.token]);
    assert!(e.starts_with("pappus: error: 401 "), "{e}");
    pappus.env.push(("PAPPUS_OPERATOR_TOKEN".into(), OPERATOR_TOKEN.into()));
    let metrics = pappus.ok(&["metrics"]);
    assert!(metrics.lines().any(|l| l.starts_with("pappus_heap_bytes_used ")), "{metrics}");
    let samples = pappus.json(&["metrics", "--json"]);
    assert!(samples.as_array().is_some_and(|s| !s.is_empty() && s.iter().all(|m| m["name"].is_string())));

    let _ = std::fs::remove_dir_all(&scratch);
}

/// `pappus deploy --engine native` against an aarch64 node builds for aarch64 (the node's
/// `/healthz` says so): a crate made by `pappus new` and the example word count answer the same
/// natively (EL0) as under wasm.
#[test]
fn cli_deploys_native_images_for_an_aarch64_node() {
    let Some(node) = boot_arch("cli_deploys_native_images_for_an_aarch64_node", pappus_tests::Arch::Aarch64, &[TENANT])
    else {
        return;
    };
    let url = format!("http://127.0.0.1:{}", node.port);
    let scratch = std::env::temp_dir().join(format!("pappus-cli-aarch64-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut pappus = Pappus::new(&scratch);
    pappus.env.push(("PAPPUS_URL".into(), url.clone()));
    pappus.env.push(("PAPPUS_TOKEN".into(), TENANT.token.into()));
    let root = workspace_root();
    let sdk = root.join("sdk");
    pappus.ok(&["new", "hello-fn", "--sdk-path", path(&sdk)]);
    let out = pappus.ok(&["deploy", "hello-fn"]);
    assert!(out.starts_with("function hello_fn created: wasm"), "{out}");
    let out = pappus.ok(&["deploy", "hello-fn/Cargo.toml", "--engine", "native", "--name", "hello_native"]);
    assert!(out.starts_with("function hello_native created: native (lines) => (upper)"), "{out}");
    let crate_dir = pappus.work.join("hello-fn");
    let elf = crate_dir.join("target/native/aarch64-unknown-none/release/hello_fn.elf");
    let bytes = std::fs::read(&elf).unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 183, "EM_AARCH64");
    assert_eq!(pappus.ok(&["invoke", "hello_native", "--raw", "native"]), "NATIVE");
    assert_eq!(pappus.ok(&["invoke", "hello_fn", "--raw", "native"]), "NATIVE");
    // The example word count, deployed from the repository's functions workspace.
    let wordcount = root.join("functions/wordcount");
    pappus.ok(&["deploy", path(&wordcount), "--name", "wc_wasm"]);
    pappus.ok(&["deploy", path(&wordcount), "--engine", "native", "--name", "wc_native"]);
    let text = "the quick brown fox jumps over the lazy dog the end";
    let wasm = pappus.ok(&["invoke", "wc_wasm", "--set", &format!("texts={text}")]);
    let native = pappus.ok(&["invoke", "wc_native", "--set", &format!("texts={text}")]);
    assert!(wasm.contains("\"the\""), "{wasm}");
    assert_eq!(native, wasm, "native and wasm word counts differ");
    let _ = std::fs::remove_dir_all(&scratch);
}
