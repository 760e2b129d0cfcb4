//! `cargo xtask fuzz [--seconds N] [--target NAME]`: every cargo-fuzz target of a parser of
//! untrusted input, each for a bounded time.
//!
//! The targets live in two fuzz crates, each its own workspace: `kernel/http/fuzz` (the HTTP
//! request connection machine) and `kernel/fuzz` (the composition language, the JSON and
//! binary set formats, the boot configuration, the function registration query, ELF images,
//! the `http` function's response parser). cargo-fuzz runs them with `-s none`: no sanitizer,
//! so none of the nightly-only `-Z` flags, and the pinned stable toolchain builds them (with
//! `--cfg fuzzing` and the stable `-C` coverage flags); a panic or an assertion in a target is
//! what finds a bug. Seeds from the tree (example compositions, a configuration, sets, a
//! native image when one is built) are written into each target's corpus first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::args::{Args, Spec};
use crate::util::{Failure, Result, root, say};

pub const SPEC: Spec = Spec { values: &["seconds", "target"], switches: &[], max_positionals: 0 };

/// (fuzz crate, relative to the workspace root; target).
pub const TARGETS: [(&str, &str); 8] = [
    ("kernel/http/fuzz", "connection"),
    ("kernel/fuzz", "dsl"),
    ("kernel/fuzz", "wire_json"),
    ("kernel/fuzz", "wire_binary"),
    ("kernel/fuzz", "boot_config"),
    ("kernel/fuzz", "function_query"),
    ("kernel/fuzz", "elf"),
    ("kernel/fuzz", "http_response"),
];

pub fn main(args: &Args) -> Result {
    let seconds: u64 = args.parsed("seconds")?.unwrap_or(30);
    let only = args.value("target");
    if let Some(name) = only
        && !TARGETS.iter().any(|(_, t)| *t == name)
    {
        let names: Vec<&str> = TARGETS.iter().map(|(_, t)| *t).collect();
        return Err(Failure(format!("no fuzz target {name:?}; there are {}", names.join(", "))));
    }
    cargo_fuzz_installed()?;
    let mut failed = Vec::new();
    for (dir, target) in TARGETS.iter().filter(|(_, t)| only.is_none_or(|o| o == *t)) {
        let crate_dir = root().join(dir);
        seed(&crate_dir, target)?;
        let started = Instant::now();
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .current_dir(&crate_dir)
            .args(["fuzz", "run", "-s", "none", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            // Keeps libFuzzer from stopping on a slow input it would otherwise call a hang.
            .arg("-timeout=30")
            .env_remove("CARGO_TARGET_DIR");
        say(format!("fuzz {target}: {seconds} s in {dir}"));
        let out = command.output().map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let runs = stderr.lines().rev().find_map(runs_of);
        let elapsed = started.elapsed().as_secs_f64();
        if out.status.success() {
            let runs = runs.map_or_else(|| "?".to_string(), |n| n.to_string());
            println!("FUZZ {target} ok runs {runs} seconds {elapsed:.0}");
        } else {
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            say(format!("fuzz {target} FAILED:\n{}", tail.join("\n")));
            println!("FUZZ {target} FAILED seconds {elapsed:.0} (artifacts in {dir}/artifacts/{target})");
            failed.push(*target);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(Failure(format!("fuzz targets failed: {}", failed.join(", ")))) }
}

/// `N` of libFuzzer's closing `Done N runs in S second(s)`.
fn runs_of(line: &str) -> Option<u64> {
    line.strip_prefix("Done ")?.split(' ').next()?.parse().ok()
}

fn cargo_fuzz_installed() -> Result {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    match Command::new(cargo).args(["fuzz", "--version"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(Failure("cargo-fuzz is not installed: run `cargo install cargo-fuzz`".into())),
    }
}

/// Writes the target's seeds (if it has any) into its corpus folder.
fn seed(crate_dir: &Path, target: &str) -> Result {
    let seeds = seeds(target);
    if seeds.is_empty() {
        return Ok(());
    }
    let dir = crate_dir.join("corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    for (i, bytes) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), bytes)?;
    }
    Ok(())
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "dsl" => files(&root().join("functions/compositions"), "pappus"),
        "boot_config" => vec![
            b"tenant alice 7c1d0e5a9b2f4c3e8a6d1b0f9e8d7c6b\n# comment\noperator 9e8d7c6b7c1d0e5a9b2f4c3e8a6d1b0f\n\
              host docs.internal 10.0.2.2\ndns 10.0.2.3\nip 10.0.2.15/24\ngateway 10.0.2.2\ncompute 3\n\
              limit invocations 128\n"
                .to_vec(),
        ],
        "wire_json" => vec![
            br#"{"sets":{"A":[{"name":"x","key":3,"data":"aGVsbG8="}],"B":[]}}"#.to_vec(),
            br#"{"sets":{"A":[{"name":"y","data":""}]}}"#.to_vec(),
        ],
        "wire_binary" => {
            let mut a = model::Set::new("A");
            a.items.push(model::Item { name: "x".into(), key: Some(3), data: b"hello".to_vec().into() });
            a.items.push(model::Item { name: "y".into(), key: None, data: Vec::new().into() });
            model::wire::binary::encode(&[a, model::Set::new("B")]).map(|b| vec![b]).unwrap_or_default()
        }
        "function_query" => {
            vec![b"upper\0engine=wasm&inputs=lines,b&outputs=upper&memory=16MiB&timeout_ms=1000".to_vec()]
        }
        "http_response" => vec![
            b"\x10HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"\x03HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
            b"\x7fHTTP/1.0 404 Not Found\r\n\r\nuntil close".to_vec(),
        ],
        // Native images built by the test suites, when there are any.
        "elf" => files(&crate::util::root().join("target/native-hostile"), "elf").into_iter().take(4).collect(),
        _ => Vec::new(),
    }
}

/// The contents of the files in `dir` whose name ends in `.ext` (none when `dir` is missing).
fn files(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == ext));
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_declared_in_its_crate() {
        for (dir, target) in TARGETS {
            let manifest = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
            assert!(manifest.contains(&format!("name = \"{target}\"")), "{dir} lacks {target}");
            assert!(root().join(dir).join(format!("fuzz_targets/{target}.rs")).exists(), "{dir}: {target}.rs");
        }
    }

    #[test]
    fn seeds_exist_and_parse_where_they_should() {
        let dsl = seeds("dsl");
        assert!(dsl.len() >= 4, "the example compositions");
        let config = &seeds("boot_config")[0];
        assert!(model::BootConfig::parse(config).is_ok());
        for json in seeds("wire_json") {
            model::wire::json::decode(&json, &model::wire::WireLimits::default()).unwrap();
        }
        let binary = &seeds("wire_binary")[0];
        let sets = model::wire::binary::decode(&model::Bytes::from(binary.clone()), &Default::default()).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(runs_of("Done 409129 runs in 11 second(s)"), Some(409_129));
        assert_eq!(runs_of("#2 INITED"), None);
    }
}
