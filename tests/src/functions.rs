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

/// Registers the example functions on `engine` (`wasm` modules, or x86_64 native images for
/// the native engines) and the compositions over them, for the tenant with `token`.
pub fn deploy_examples(node: &crate::node::Node, token: &str, engine: &str) {
    deploy_examples_for(node, crate::Arch::X86_64, token, engine)
}

/// As [`deploy_examples`] on an `arch` node (native images built for `arch`).
pub fn deploy_examples_for(node: &crate::node::Node, arch: crate::Arch, token: &str, engine: &str) {
    let auth = format!("Bearer {token}");
    for (name, query) in EXAMPLES {
        let image = if engine == "wasm" { wasm(name) } else { native_for(name, arch) };
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

pub use pappus::native::{NATIVE_RUSTFLAGS, NATIVE_TARGET, NativeArch, build_native, build_native_for};

/// The native build of `arch`.
pub fn native_arch(arch: crate::Arch) -> NativeArch {
    match arch {
        crate::Arch::X86_64 => NativeArch::X86_64,
        crate::Arch::Aarch64 => NativeArch::Aarch64,
    }
}

/// The native x86_64 ELF of function package `name` (underscores), built on first use.
pub fn native(name: &str) -> Vec<u8> {
    native_for(name, crate::Arch::X86_64)
}

/// The native ELF of function package `name` (underscores) for `arch`, built on first use.
pub fn native_for(name: &str, arch: crate::Arch) -> Vec<u8> {
    type Built = Vec<(String, NativeArch, Result<PathBuf, String>)>;
    static BUILT: std::sync::Mutex<Built> = std::sync::Mutex::new(Vec::new());
    let arch = native_arch(arch);
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|(n, a, _)| n == name && *a == arch) {
        let functions = workspace_root().join("functions");
        let result = build_native_for(&functions, &name.replace('_', "-"), arch);
        built.push((name.to_string(), arch, result));
    }
    let (.., result) = built.iter().find(|(n, a, _)| n == name && *a == arch).unwrap();
    let path = result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A hostile native x86_64 function; see [`hostile_native_for`].
pub fn hostile_native(case: &str) -> Vec<u8> {
    hostile_native_for(case, crate::Arch::X86_64)
}

/// A hostile native function for `arch` (`tests/native-hostile/hostile.rs` built with `--cfg
/// case="<case>"`), linked like a real function: static PIE by rust-lld.
pub fn hostile_native_for(case: &str, arch: crate::Arch) -> Vec<u8> {
    let source = workspace_root().join("tests/native-hostile/hostile.rs");
    let native = native_arch(arch);
    let dir = crate::target_dir().join("native-hostile").join(native.name());
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{case}.elf"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "bin", "--target", native.target()])
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
    assert!(status.success(), "building hostile case {case} for {} failed", native.name());
    std::fs::read(&out).unwrap()
}

/// Function instances each core ran: `(cpu, runs)` from `/metrics`.
pub type CoreRuns = Vec<(u32, u64)>;

/// The tenant the composition checks deploy as.
const COMPOSER: crate::node::Tenant = crate::node::Tenant { name: "load", token: "dispatch-token-0123456789ab" };

/// The compositions' answers on an `arch` node with `smp` CPUs: the raw JSON bodies, in a fixed
/// order, and the function instances each compute core ran; `None` when the QEMU suites are off.
pub fn composition_answers(test: &str, arch: crate::Arch, smp: u32) -> Option<(Vec<String>, CoreRuns)> {
    composition_answers_on(test, arch.default_profile(), smp)
}

/// As [`composition_answers`], under QEMU profile `profile`.
pub fn composition_answers_on(test: &str, profile: &str, smp: u32) -> Option<(Vec<String>, CoreRuns)> {
    composition_answers_engine_on(test, profile, smp, "wasm")
}

/// As [`composition_answers_on`], the example functions registered on `engine` (`wasm`
/// modules, or native images built for the profile's architecture).
pub fn composition_answers_engine_on(
    test: &str,
    profile: &str,
    smp: u32,
    engine: &str,
) -> Option<(Vec<String>, CoreRuns)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::{Value, json};

    let node = crate::node::boot_profile(test, profile, &[COMPOSER], Some(smp))?;
    let arch = pappus_qemu::profile(profile).unwrap_or_else(|e| panic!("profile {profile}: {e}")).arch;
    let health = node.call("GET", "/healthz", b"").text();
    assert!(health.contains(&format!("\"cores\":{smp}")), "{profile} -smp {smp}: /healthz says {health}");
    deploy_examples_for(&node, arch, COMPOSER.token, engine);
    let auth = format!("Bearer {}", COMPOSER.token);
    let item = |name: &str, data: &str| json!({"name": name, "data": B64.encode(data)});
    // 64 texts: the map step of wordcount_mapreduce is a 64-way `each`.
    let texts: Vec<Value> = (0..64)
        .map(|t| item(&format!("t{t}"), &(0..300).map(|w| format!("w{} ", (w * 7 + t) % 211)).collect::<String>()))
        .collect();
    let tables = [item("t1", "name,qty\na,1\nb,2.5\n"), item("t2", "qty,name\n10,x\n-3,y\n")];
    let calls = [
        ("wordcount_mapreduce", json!({"texts": texts})),
        ("top_words", json!({"texts": texts, "k": [item("k", "7")]})),
        ("grep_count", json!({"pattern": [item("p", "w1")], "texts": texts})),
        ("csv_total", json!({"column": [item("c", "qty")], "tables": tables})),
    ];
    let mut answers = Vec::new();
    for (name, sets) in calls {
        let body = serde_json::to_vec(&json!({ "sets": sets })).unwrap();
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        let r = node.request("POST", &format!("/v1/invoke/{name}"), &headers, &body);
        assert_eq!(r.status, 200, "{name} on {arch:?} with -smp {smp}: {}", r.text());
        answers.push(r.text());
    }
    let metrics = node.metrics().text();
    let runs = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("pappus_core_runs_total{cpu=\""))
        .filter_map(|rest| {
            let (cpu, rest) = rest.split_once('"')?;
            Some((cpu.parse().ok()?, rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    Some((answers, runs))
}

/// The dispatch suite's known answers: the compositions give the same answers on 1, 2 and 4
/// CPUs of `arch`; single-core mode runs everything on the I/O core, and with more CPUs the
/// instances run on the compute cores (and the I/O core, for work they had no room for), the
/// fan-outs spread over at least two compute cores.
pub fn compositions_agree_across_cores(test: &str, arch: crate::Arch) {
    let Some((one, runs1)) = composition_answers(test, arch, 1) else { return };
    // Single-core mode: the I/O core (cpu 0) ran everything.
    assert_eq!(runs1.len(), 1, "{runs1:?}");
    assert_eq!(runs1[0].0, 0);
    let (two, runs2) = composition_answers(test, arch, 2).unwrap();
    assert_eq!(two, one, "-smp 2 answers differ from -smp 1");
    // One compute core (cpu 1), and the I/O core (cpu 0, listed last) for what it took when
    // the compute core was busy.
    assert_eq!(runs2.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 0], "one compute core, cpu 1: {runs2:?}");
    assert!(runs2[0].1 > 0, "the compute core ran instances: {runs2:?}");
    let total2: u64 = runs2.iter().map(|(_, n)| n).sum();
    assert_eq!(total2, runs1[0].1, "the same instances ran on -smp 2: {runs2:?}");
    let (four, runs4) = composition_answers(test, arch, 4).unwrap();
    assert_eq!(four, one, "-smp 4 answers differ from -smp 1");
    assert_eq!(runs4.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 0], "three compute cores: {runs4:?}");
    eprintln!("instances per core on {arch:?}: -smp 2 {runs2:?}, -smp 4 {runs4:?} (cpu 0: the I/O core helping)");
    let busy = runs4[..3].iter().filter(|(_, n)| *n > 0).count();
    assert!(busy >= 2, "the fan-outs ran on {busy} compute core(s): {runs4:?}");
    let total: u64 = runs4.iter().map(|(_, n)| n).sum();
    assert_eq!(total, runs1[0].1, "the same instances ran, spread over the cores");
}
