//! `pappus new NAME`: a function crate that builds for wasm32 and as a native image from
//! anywhere, with the SDK as a path or a git dependency (docs/writing-functions.md).

use std::path::{Path, PathBuf};

use crate::fnmeta::{Metadata, Overrides, Registration, package_function_name};
use crate::{Failure, Result, Ui};

/// The toolchain the crate pins (`rust-toolchain.toml`): the project's own, so the SDK builds
/// as it does in the repository, and rustup adds the wasm32 target itself.
pub const TOOLCHAIN: &str = "1.95.0";

/// The templates `new` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A Rust function that copies its inputs to its output, uppercased (functions/template).
    Rust,
}

impl Template {
    pub const NAMES: [&'static str; 1] = ["rust"];

    pub fn parse(name: &str) -> std::result::Result<Template, String> {
        match name {
            "rust" => Ok(Template::Rust),
            other => Err(format!("unknown template {other:?} (there is: {})", Template::NAMES.join(", "))),
        }
    }
}

/// Where the crate gets the SDK (`pappus-sdk`) from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// A checkout's `sdk/` folder.
    Path(PathBuf),
    /// A git repository holding the SDK (cargo finds the `pappus-sdk` package in it), at a
    /// revision, a branch, or its default branch.
    Git { url: String, rev: Option<String>, branch: Option<String> },
}

impl Sdk {
    /// The dependency's TOML value.
    pub fn dependency(&self) -> String {
        match self {
            Sdk::Path(path) => format!("{{ path = {} }}", toml_string(&path.display().to_string())),
            Sdk::Git { url, rev, branch } => {
                let mut value = format!("{{ git = {}", toml_string(url));
                if let Some(rev) = rev {
                    value.push_str(&format!(", rev = {}", toml_string(rev)));
                }
                if let Some(branch) = branch {
                    value.push_str(&format!(", branch = {}", toml_string(branch)));
                }
                value.push_str(" }");
                value
            }
        }
    }
}

/// The SDK of the source tree this binary was built from, while that tree is still there (a
/// `cargo install --path build/pappus` from a checkout): the default of `new`.
pub fn built_from_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    sdk.join("Cargo.toml").is_file().then(|| sdk.canonicalize().ok()).flatten()
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A package name Cargo takes and whose function name (`-` made `_`) the node takes.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(format!("{name:?} is not a package name: letters, digits, '-' and '_', starting with a letter"));
    }
    let metadata = Metadata { outputs: Some(vec!["upper".into()]), ..Metadata::default() };
    Registration::for_crate(name, Some(&metadata), &Overrides::default())?.check()
}

/// The files of a new crate, as (path in the crate, contents).
pub fn files(name: &str, template: Template, sdk: &Sdk) -> Vec<(&'static str, String)> {
    let Template::Rust = template;
    let function = package_function_name(name);
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# How `pappus deploy` registers it: as `{function}` (the package name with `-` made `_`).
[package.metadata.pappus]
engine = "wasm"          # or "native" (mpk where the CPU has protection keys, else paging)
inputs = ["lines"]       # input sets, bound by position
outputs = ["upper"]      # output sets, bound by position
memory = "16MiB"
timeout_ms = 1000

[lib]
# cdylib: the .wasm module; rlib: so `cargo test` can unit-test the logic on the host.
crate-type = ["cdylib", "rlib"]

[dependencies]
pappus-sdk = {sdk}

[lints.rust]
# The SDK's native transport (`--cfg pappus_native`, set by `pappus deploy` for native engines).
unexpected_cfgs = {{ level = "warn", check-cfg = ["cfg(pappus_native)"] }}

[profile.release]
# Small modules: they are uploaded, validated and compiled at registration.
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
debug = false
strip = true

[profile.dev]
panic = "abort"

# Its own workspace, wherever it lives. Delete this table to make it a member of an enclosing
# workspace (then move the profiles there too).
[workspace]
"#,
        sdk = sdk.dependency()
    );
    let toolchain = format!(
        r#"# The toolchain Pappus builds with, and the target functions build for: rustup adds it.
[toolchain]
channel = "{TOOLCHAIN}"
targets = ["wasm32-unknown-unknown"]
profile = "minimal"
"#
    );
    let cargo_config = r#"# Rust's wasm32 default is a 1 MiB stack that every run would have to allocate and zero;
# 32 KiB is plenty for most functions and keeps stack, static data and the start of the heap
# in one 64 KiB page (one page to zero per run). Raise it here for a deeply recursive one.
# The two exports let the platform reuse the function's instance between runs, putting its
# memory, stack pointer and function table back (without them each run instantiates anew).
[target.wasm32-unknown-unknown]
rustflags = ["-C", "link-arg=-zstack-size=32768", "-C", "link-arg=--export=__stack_pointer", "-C", "link-arg=--export-table"]
"#
    .to_string();
    let lib = format!(
        r#"//! `{function}`: copies each item of each input set to its first output set, with the data
//! uppercased (ASCII) and the name and key kept. Make it yours.
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use pappus_sdk::{{Context, Error}};

pappus_sdk::entry!(main);

fn main(ctx: &mut Context) -> Result<(), Error> {{
    let out = ctx.output(0).ok_or("{function} needs one output set")?;
    for set in ctx.inputs() {{
        for item in set.items() {{
            let mut data = item.data();
            data.make_ascii_uppercase();
            out.push_item(&item.name(), item.key(), &data);
        }}
    }}
    Ok(())
}}

#[cfg(test)]
mod tests {{
    use super::*;
    use pappus_sdk::mock::{{Mock, MockItem}};

    #[test]
    fn uppercases_every_item() {{
        let out = Mock::new()
            .input("lines", [MockItem::new("one", "hello"), MockItem::keyed("two", 7, "World")])
            .output("upper")
            .run(main)
            .unwrap();
        assert_eq!(out[0].items, [MockItem::new("one", "HELLO"), MockItem::keyed("two", 7, "WORLD")]);
    }}
}}
"#
    );
    let readme = format!(
        r#"# {name}

A Pappus function (docs/writing-functions.md in the Pappus repository).

    cargo test                                    # unit tests on the host (the SDK's mock platform)
    pappus deploy .                               # build for wasm32 and register it as `{function}`
    pappus deploy . --engine native               # or as a native x86_64 image
    pappus invoke {function} --set lines=hello    # run it
"#
    );
    vec![
        ("Cargo.toml", manifest),
        ("rust-toolchain.toml", toolchain),
        (".cargo/config.toml", cargo_config),
        (".gitignore", "/target\n".to_string()),
        ("README.md", readme),
        ("src/lib.rs", lib),
    ]
}

/// Writes a new crate at `dir` (which must not exist yet); returns the files written.
pub fn create(ui: &Ui, dir: &Path, name: &str, template: Template, sdk: &Sdk) -> Result<Vec<PathBuf>> {
    check_name(name).map_err(Failure)?;
    if let Sdk::Path(path) = sdk
        && !path.join("Cargo.toml").is_file()
    {
        return Err(Failure(format!("{}: no Cargo.toml: not the SDK's folder (sdk/ of a checkout)", path.display())));
    }
    if dir.exists() {
        return Err(Failure(format!("{} already exists", dir.display())));
    }
    let mut written = Vec::new();
    for (file, contents) in files(name, template, sdk) {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    ui.say(format!("made {} ({} files), the SDK from {}", dir.display(), written.len(), sdk.dependency()));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        check_name("wordcount").unwrap();
        check_name("my-fn_2").unwrap();
        assert!(check_name("2fast").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(300)).unwrap_err().contains("name"), "the node's length limit");
    }

    #[test]
    fn templates() {
        assert_eq!(Template::parse("rust").unwrap(), Template::Rust);
        assert!(Template::parse("cobol").unwrap_err().contains("rust"));
    }

    #[test]
    fn sdk_dependencies() {
        assert_eq!(Sdk::Path("/src/pappus/sdk".into()).dependency(), r#"{ path = "/src/pappus/sdk" }"#);
        let git = Sdk::Git { url: "https://git.example/pappus".into(), rev: Some("abc123".into()), branch: None };
        assert_eq!(git.dependency(), r#"{ git = "https://git.example/pappus", rev = "abc123" }"#);
        let odd = Sdk::Path(r#"C:\a "b""#.into());
        assert_eq!(odd.dependency(), r#"{ path = "C:\\a \"b\"" }"#);
    }

    /// The generated manifest is TOML that says what `deploy` reads.
    #[test]
    fn manifest_parses_and_registers() {
        let files = files("my-fn", Template::Rust, &Sdk::Path("/s/sdk".into()));
        let manifest: toml::Table = toml::from_str(&files[0].1).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-fn"));
        assert_eq!(manifest["dependencies"]["pappus-sdk"]["path"].as_str(), Some("/s/sdk"));
        let pappus = serde_json::to_value(&manifest["package"]["metadata"]["pappus"]).unwrap();
        let metadata = Metadata::parse(&pappus).unwrap();
        let registration = Registration::for_crate("my-fn", Some(&metadata), &Overrides::default()).unwrap();
        assert_eq!(registration.query(), "engine=wasm&inputs=lines&outputs=upper&memory=16MiB&timeout_ms=1000");
        registration.check().unwrap();
        let toolchain: toml::Table = toml::from_str(&files[1].1).unwrap();
        assert_eq!(toolchain["toolchain"]["channel"].as_str(), Some(TOOLCHAIN));
        assert!(files.iter().any(|(f, text)| *f == "src/lib.rs" && text.contains("pappus_sdk::entry!(main)")));
    }

    /// The crate pins the toolchain the repository pins.
    #[test]
    fn toolchain_is_the_repositorys() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rust-toolchain.toml");
        let text = std::fs::read_to_string(root).unwrap();
        let pinned: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(pinned["toolchain"]["channel"].as_str(), Some(TOOLCHAIN));
    }

    #[test]
    fn refuses_to_overwrite() {
        let ui = Ui { tool: "t".into(), command: "t".into(), json: false, progress: false };
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sdk = Sdk::Path(here.join("../../sdk"));
        assert!(create(&ui, here, "x", Template::Rust, &sdk).unwrap_err().0.contains("already exists"));
        let bad = Sdk::Path(here.join("src"));
        assert!(create(&ui, &here.join("nope"), "x", Template::Rust, &bad).unwrap_err().0.contains("not the SDK"));
        assert!(!here.join("nope").exists());
    }
}
