//! Function crates and their registration: the `[package.metadata.pappus]` table of a crate's
//! Cargo.toml, command-line overrides, the `PUT /v1/functions` query they make, and the wasm
//! the crate builds to.
//!
//! Crates are read through `cargo metadata` rather than by parsing Cargo.toml here, so workspace
//! inheritance, member globs, `[lib] name` and `CARGO_TARGET_DIR` all mean what cargo says.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::http::percent_encode;
use crate::{Failure, Result, Ui, cargo};

/// The target function crates build for, and the engine their modules run on.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// A Cargo workspace (or single package) as `cargo metadata --no-deps` describes it.
#[derive(Debug)]
pub struct Workspace {
    /// The folder of the workspace's Cargo.toml.
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub packages: Vec<Package>,
}

#[derive(Debug)]
pub struct Package {
    pub name: String,
    /// The folder of its Cargo.toml.
    pub dir: PathBuf,
    /// The name of its `cdylib` target (what the `.wasm` file is called), if it has one.
    pub cdylib: Option<String>,
    /// `[package.metadata.pappus]`, unparsed (see [`Metadata::parse`]).
    pub pappus: Option<Value>,
}

impl Workspace {
    /// The workspace `dir` belongs to (cargo searches upward from it).
    pub fn load(dir: &Path) -> Result<Workspace> {
        let mut command = cargo();
        command.current_dir(dir).args(["metadata", "--no-deps", "--format-version", "1"]);
        let json = crate::output(command)?;
        Workspace::parse(&json).map_err(|e| Failure(format!("`cargo metadata` in {}: {e}", dir.display())))
    }

    pub fn parse(json: &str) -> std::result::Result<Workspace, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let target_dir = v["target_directory"].as_str().ok_or("no target_directory")?;
        let root = v["workspace_root"].as_str().ok_or("no workspace_root")?;
        let packages = v["packages"]
            .as_array()
            .ok_or("no packages")?
            .iter()
            .map(|p| {
                let name = p["name"].as_str().ok_or("a package without a name")?;
                let manifest = Path::new(p["manifest_path"].as_str().ok_or("a package without a manifest_path")?);
                let cdylib = p["targets"].as_array().into_iter().flatten().find_map(|t| {
                    let kinds = t["crate_types"].as_array()?;
                    kinds.iter().any(|k| k == "cdylib").then(|| t["name"].as_str().map(str::to_string)).flatten()
                });
                Ok(Package {
                    name: name.to_string(),
                    dir: manifest.parent().unwrap_or(manifest).to_path_buf(),
                    cdylib,
                    pappus: p.get("metadata").and_then(|m| m.get("pappus")).cloned(),
                })
            })
            .collect::<std::result::Result<Vec<_>, &str>>()?;
        Ok(Workspace { root: PathBuf::from(root), target_dir: PathBuf::from(target_dir), packages })
    }

    /// The package whose Cargo.toml is in `dir`.
    pub fn package_at(&self, dir: &Path) -> Option<&Package> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.packages.iter().find(|p| p.dir.canonicalize().unwrap_or_else(|_| p.dir.clone()) == dir)
    }

    /// Where a release build for wasm32 leaves the package's module.
    pub fn wasm_path(&self, package: &Package) -> Option<PathBuf> {
        let lib = package.cdylib.as_ref()?;
        Some(self.target_dir.join(WASM_TARGET).join("release").join(format!("{lib}.wasm")))
    }
}

/// Builds the workspace of `dir` for wasm32, release: one package, or every member.
pub fn build(ui: &Ui, dir: &Path, package: Option<&str>) -> Result {
    let mut command = cargo();
    // Run inside the workspace so that its own .cargo/config.toml (the wasm stack size) applies.
    command.current_dir(dir).args(["build", "--target", WASM_TARGET, "--release"]);
    match package {
        Some(package) => command.args(["-p", package]),
        None => command.arg("--workspace"),
    };
    ui.say(format!("building {} for {WASM_TARGET}", crate::relative(dir)));
    crate::run(ui, command)
}

/// `[package.metadata.pappus]`: how a function crate is registered.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub engine: Option<String>,
    pub inputs: Option<Vec<String>>,
    pub outputs: Option<Vec<String>>,
    pub memory: Option<Size>,
    pub timeout_ms: Option<u64>,
}

/// A memory size as TOML allows it: `"16MiB"` or a number of bytes.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Size {
    Text(String),
    Bytes(u64),
}

impl Metadata {
    /// A misspelt key is an error: a silently ignored `output = […]` would register the wrong
    /// function.
    pub fn parse(value: &Value) -> std::result::Result<Metadata, String> {
        Metadata::deserialize(value).map_err(|e| format!("[package.metadata.pappus]: {e}"))
    }
}

/// What the command line says about a registration; it wins over the metadata.
#[derive(Debug, Default)]
pub struct Overrides {
    pub name: Option<String>,
    pub engine: Option<String>,
    pub inputs: Option<Vec<String>>,
    pub outputs: Option<Vec<String>>,
    pub memory: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// `A,B` as set names; the empty string is no sets.
pub fn split_list(text: &str) -> Vec<String> {
    if text.is_empty() { Vec::new() } else { text.split(',').map(str::to_string).collect() }
}

/// A function as it is registered: the path's name and the query's parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub engine: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub memory: Option<String>,
    pub timeout_ms: Option<u64>,
}

impl Registration {
    /// The registration of a crate: its metadata, overridden by the command line. The name is
    /// the package's with `-` made `_` (so it matches the module's file name).
    pub fn for_crate(
        package: &str,
        metadata: Option<&Metadata>,
        overrides: &Overrides,
    ) -> std::result::Result<Registration, String> {
        let Some(metadata) = metadata else {
            if overrides.inputs.is_none() || overrides.outputs.is_none() {
                return Err(format!(
                    "{package}: its Cargo.toml has no [package.metadata.pappus] (engine, inputs, outputs, \
                     memory, timeout_ms); add one, or give --inputs and --outputs"
                ));
            }
            return Ok(Registration::merge(package_function_name(package), &Metadata::default(), overrides));
        };
        let registration = Registration::merge(package_function_name(package), metadata, overrides);
        if registration.engine != "wasm" && !registration.is_native() {
            return Err(format!(
                "{package}: engine {:?}: crates are built for {WASM_TARGET} (engine wasm) or as native images \
                 for the node's architecture (engines mpk, paging, native); deploy other images as a file with --engine",
                registration.engine
            ));
        }
        if registration.outputs.is_empty() {
            return Err(format!("{package}: [package.metadata.pappus] names no outputs (and no --outputs was given)"));
        }
        Ok(registration)
    }

    /// Whether it runs on a native engine (the crate is then built as a native image).
    pub fn is_native(&self) -> bool {
        matches!(self.engine.as_str(), "mpk" | "paging" | "cheri" | "native")
    }

    /// The registration of an image file, which carries no metadata: the sets must be given.
    pub fn for_file(path: &Path, overrides: &Overrides) -> std::result::Result<Registration, String> {
        if overrides.inputs.is_none() || overrides.outputs.is_none() {
            return Err(format!(
                "{}: a module file carries no registration metadata: give --inputs A,B and --outputs C \
                 (--inputs '' for none), or deploy its crate folder",
                path.display()
            ));
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Registration::merge(package_function_name(&stem), &Metadata::default(), overrides))
    }

    fn merge(default_name: String, metadata: &Metadata, overrides: &Overrides) -> Registration {
        let memory = metadata.memory.as_ref().map(|m| match m {
            Size::Text(text) => text.clone(),
            Size::Bytes(bytes) => bytes.to_string(),
        });
        Registration {
            name: overrides.name.clone().unwrap_or(default_name),
            engine: overrides.engine.clone().or_else(|| metadata.engine.clone()).unwrap_or_else(|| "wasm".into()),
            inputs: overrides.inputs.clone().or_else(|| metadata.inputs.clone()).unwrap_or_default(),
            outputs: overrides.outputs.clone().or_else(|| metadata.outputs.clone()).unwrap_or_default(),
            memory: overrides.memory.clone().or(memory),
            timeout_ms: overrides.timeout_ms.or(metadata.timeout_ms),
        }
    }

    /// The query of `PUT /v1/functions/{name}?…`.
    pub fn query(&self) -> String {
        let list = |sets: &[String]| sets.iter().map(|s| percent_encode(s)).collect::<Vec<_>>().join(",");
        let mut query = format!(
            "engine={}&inputs={}&outputs={}",
            percent_encode(&self.engine),
            list(&self.inputs),
            list(&self.outputs)
        );
        if let Some(memory) = &self.memory {
            query.push_str(&format!("&memory={}", percent_encode(memory)));
        }
        if let Some(ms) = self.timeout_ms {
            query.push_str(&format!("&timeout_ms={ms}"));
        }
        query
    }

    /// Checks the registration with the kernel's own parser, so a typo fails before a build or
    /// an upload, with the message the front door would give.
    pub fn check(&self) -> std::result::Result<(), String> {
        model::FunctionSpec::from_query(&self.name, &self.query()).map(drop).map_err(|e| format!("{}: {e}", self.name))
    }
}

/// The registered name of a package: `-` becomes `_`.
pub fn package_function_name(package: &str) -> String {
    package.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = r#"{
      "packages": [
        {"name": "word-count", "manifest_path": "/w/functions/word-count/Cargo.toml",
         "targets": [{"name": "word_count", "kind": ["cdylib", "rlib"], "crate_types": ["cdylib", "rlib"]}],
         "metadata": {"pappus": {"engine": "wasm", "inputs": ["text"], "outputs": ["counts"],
                                 "memory": "16MiB", "timeout_ms": 1000}}},
        {"name": "helper", "manifest_path": "/w/functions/helper/Cargo.toml",
         "targets": [{"name": "helper", "kind": ["lib"], "crate_types": ["lib"]}], "metadata": null}
      ],
      "target_directory": "/w/functions/target",
      "workspace_root": "/w/functions"
    }"#;

    fn overrides() -> Overrides {
        Overrides::default()
    }

    #[test]
    fn cargo_metadata() {
        let ws = Workspace::parse(METADATA).unwrap();
        assert_eq!(ws.packages.len(), 2);
        let wc = &ws.packages[0];
        assert_eq!((wc.name.as_str(), wc.dir.as_path()), ("word-count", Path::new("/w/functions/word-count")));
        assert_eq!(
            ws.wasm_path(wc).unwrap(),
            Path::new("/w/functions/target/wasm32-unknown-unknown/release/word_count.wasm")
        );
        assert!(wc.pappus.is_some());
        assert_eq!(ws.wasm_path(&ws.packages[1]), None, "no cdylib, no module");
        assert!(ws.packages[1].pappus.is_none());
        assert!(ws.package_at(Path::new("/w/functions/helper")).is_some());
        assert!(ws.package_at(Path::new("/w/functions")).is_none());
        assert!(Workspace::parse("{}").is_err());
    }

    #[test]
    fn crate_registration() {
        let ws = Workspace::parse(METADATA).unwrap();
        let meta = Metadata::parse(ws.packages[0].pappus.as_ref().unwrap()).unwrap();
        let r = Registration::for_crate("word-count", Some(&meta), &overrides()).unwrap();
        assert_eq!(r.name, "word_count");
        assert_eq!(r.query(), "engine=wasm&inputs=text&outputs=counts&memory=16MiB&timeout_ms=1000");
        r.check().unwrap();

        let flags = Overrides {
            name: Some("wc2".into()),
            inputs: Some(split_list("a,b")),
            memory: Some("1GiB".into()),
            timeout_ms: Some(5),
            ..overrides()
        };
        let r = Registration::for_crate("word-count", Some(&meta), &flags).unwrap();
        assert_eq!(r.name, "wc2");
        assert_eq!(r.query(), "engine=wasm&inputs=a,b&outputs=counts&memory=1GiB&timeout_ms=5");
    }

    #[test]
    fn metadata_forms_and_mistakes() {
        let meta = Metadata::parse(&serde_json::json!({"outputs": ["o"], "memory": 65536})).unwrap();
        let r = Registration::for_crate("f", Some(&meta), &overrides()).unwrap();
        assert_eq!(r.query(), "engine=wasm&inputs=&outputs=o&memory=65536", "engine defaults to wasm");

        let typo = Metadata::parse(&serde_json::json!({"output": ["o"]})).unwrap_err();
        assert!(typo.contains("unknown field `output`"), "{typo}");
        assert!(Metadata::parse(&serde_json::json!({"timeout_ms": "1s"})).is_err());

        let none = Metadata::parse(&serde_json::json!({"inputs": ["i"]})).unwrap();
        let e = Registration::for_crate("f", Some(&none), &overrides()).unwrap_err();
        assert!(e.contains("no outputs"), "{e}");
        let mpk = Metadata::parse(&serde_json::json!({"engine": "mpk", "outputs": ["o"]})).unwrap();
        assert!(Registration::for_crate("f", Some(&mpk), &overrides()).unwrap().is_native());
        let jvm = Metadata::parse(&serde_json::json!({"engine": "jvm", "outputs": ["o"]})).unwrap();
        assert!(Registration::for_crate("f", Some(&jvm), &overrides()).unwrap_err().contains("native images"));

        let e = Registration::for_crate("f", None, &overrides()).unwrap_err();
        assert!(e.contains("[package.metadata.pappus]"), "{e}");
        let flags = Overrides { inputs: Some(vec![]), outputs: Some(vec!["o".into()]), ..overrides() };
        assert_eq!(Registration::for_crate("f", None, &flags).unwrap().query(), "engine=wasm&inputs=&outputs=o");
    }

    #[test]
    fn file_registration() {
        let e = Registration::for_file(Path::new("x/my-fn.wasm"), &overrides()).unwrap_err();
        assert!(e.contains("--inputs A,B and --outputs C"), "{e}");
        let flags = Overrides { inputs: Some(split_list("")), outputs: Some(split_list("out")), ..overrides() };
        let r = Registration::for_file(Path::new("x/my-fn.wasm"), &flags).unwrap();
        assert_eq!((r.name.as_str(), r.inputs.len()), ("my_fn", 0));
        r.check().unwrap();
    }

    #[test]
    fn checks_use_the_kernels_rules() {
        let bad = |r: Registration| r.check().unwrap_err();
        let base = || Registration {
            name: "f".into(),
            engine: "wasm".into(),
            inputs: vec!["in".into()],
            outputs: vec!["out".into()],
            memory: None,
            timeout_ms: None,
        };
        assert!(bad(Registration { memory: Some("16MB".into()), ..base() }).contains("memory"));
        assert!(bad(Registration { timeout_ms: Some(0), ..base() }).contains("timeout_ms"));
        assert!(bad(Registration { name: "-x".into(), ..base() }).contains("name"));
        assert!(bad(Registration { engine: "jvm".into(), ..base() }).contains("engine"));
        assert!(bad(Registration { outputs: vec!["a".into(), "a".into()], ..base() }).contains("twice"));
        // Odd but legal set names survive the query's encoding.
        let r = Registration { inputs: vec!["two words".into(), "a&b".into()], ..base() };
        assert_eq!(r.query(), "engine=wasm&inputs=two%20words,a%26b&outputs=out");
        r.check().unwrap();
    }
}
