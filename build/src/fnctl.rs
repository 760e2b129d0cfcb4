//! `cargo xtask fn …`: deploy functions and compositions to a running Pappus, invoke them, list,
//! show and remove them, through the front door's `/v1` API.
//!
//! Results go to stdout; builds and progress to stderr. Where to connect: `--url`/`--token`,
//! else `PAPPUS_URL`/`PAPPUS_TOKEN`, else `http://127.0.0.1:8080` and the dev tenant's token
//! that `cargo xtask run` wrote to `target/pappus-dev.conf`.

use std::io::Write;
use std::path::{Path, PathBuf};

use model::wire::{WireFormat, WireLimits, binary, json as wire_json};
use serde_json::Value;

use crate::api::{ApiError, CallError, Client};
use crate::args::{Args, Spec};
use crate::fnmeta::{self, Metadata, Overrides, Registration, Workspace};
use crate::sets::{self, SetArg, Source};
use crate::util::{Failure, Result, human_bytes};

const DEPLOY: Spec = Spec {
    values: &["url", "token", "name", "engine", "inputs", "outputs", "memory", "timeout-ms"],
    switches: &[],
    max_positionals: 2,
};
const COMPOSE: Spec = Spec { values: &["url", "token", "name"], switches: &[], max_positionals: 2 };
const INVOKE: Spec = Spec { values: &["url", "token", "set", "raw", "out"], switches: &["binary"], max_positionals: 2 };
const LIST: Spec = Spec { values: &["url", "token"], switches: &[], max_positionals: 1 };
const ONE_NAME: Spec = Spec { values: &["url", "token"], switches: &[], max_positionals: 2 };

/// The flags `fn <subcommand>` accepts (the subcommand is the first positional).
pub fn spec(subcommand: Option<&str>) -> std::result::Result<&'static Spec, String> {
    match subcommand {
        Some("deploy") => Ok(&DEPLOY),
        Some("compose") => Ok(&COMPOSE),
        Some("invoke") => Ok(&INVOKE),
        Some("list") => Ok(&LIST),
        Some("get" | "rm") => Ok(&ONE_NAME),
        Some(other) => Err(format!("unknown subcommand {other:?} (deploy, compose, invoke, list, get, rm)")),
        None => Err("which one? deploy, compose, invoke, list, get or rm".into()),
    }
}

pub fn main(args: &Args) -> Result {
    let subcommand = args.positionals.first().map(String::as_str).unwrap_or_default();
    let operand = |what: &str| {
        args.positionals.get(1).map(String::as_str).ok_or_else(|| Failure(format!("`fn {subcommand}` needs {what}")))
    };
    match subcommand {
        "deploy" => deploy(args, Path::new(operand("a crate folder or a .wasm file")?)),
        "compose" => compose(args, Path::new(operand("a .pappus file")?)),
        "invoke" => invoke(args, operand("the name of a function or composition")?),
        "list" => list(&connect(args)?),
        "get" => get(&connect(args)?, operand("a name")?),
        "rm" => remove(&connect(args)?, operand("a name")?),
        other => Err(Failure(format!("unknown subcommand {other:?}"))),
    }
}

/// Where to connect and as whom.
pub fn connect(args: &Args) -> Result<Client> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let conf = pappus_tests::target_dir().join("pappus-dev.conf");
    let (url, token) = resolve_connection(
        (args.value("url"), args.value("token")),
        (env("PAPPUS_URL"), env("PAPPUS_TOKEN")),
        &conf,
        std::fs::read_to_string(&conf).ok().as_deref(),
    )?;
    Ok(Client::new(&url, &token)?)
}

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Flags, then the environment, then the defaults (the token of the dev configuration's first
/// tenant).
fn resolve_connection(
    flags: (Option<&str>, Option<&str>),
    env: (Option<String>, Option<String>),
    conf_path: &Path,
    conf: Option<&str>,
) -> Result<(String, String)> {
    let url = flags.0.map(str::to_string).or(env.0).unwrap_or_else(|| DEFAULT_URL.to_string());
    let token = match flags.1.map(str::to_string).or(env.1) {
        Some(token) => token,
        None => conf.and_then(|text| crate::run::first_token(text.as_bytes())).ok_or_else(|| {
            Failure(format!(
                "no token: pass --token or set PAPPUS_TOKEN, or start `cargo xtask run`, which writes \
                 its dev token to {}",
                conf_path.display()
            ))
        })?,
    };
    Ok((url, token))
}

fn deploy(args: &Args, path: &Path) -> Result {
    let overrides = Overrides::from_args(args)?;
    // A crate's manifest stands for its folder.
    let path = match path.parent() {
        Some(dir) if path.file_name().is_some_and(|n| n == "Cargo.toml") => {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        }
        _ => path,
    };
    if path.extension().is_some_and(|ext| ext == "pappus") {
        return Err(Failure(format!("{} is a composition: `cargo xtask fn compose` deploys it", path.display())));
    }
    if path.is_file() {
        let registration = Registration::for_file(path, &overrides)?;
        registration.check()?;
        let client = connect(args)?;
        println!("{}", deploy_function(&client, &registration, path)?);
        return Ok(());
    }
    if !path.is_dir() {
        return Err(Failure(format!("{}: no such file or folder", path.display())));
    }
    // Without this, cargo would find an enclosing workspace and every function would go.
    if !path.join("Cargo.toml").is_file() {
        return Err(Failure(format!("{}: no Cargo.toml: not a crate or workspace folder", path.display())));
    }
    let workspace = Workspace::load(path)?;
    let Some(package) = workspace.package_at(path) else {
        return deploy_workspace(args, path, &workspace, &overrides);
    };
    let metadata = package.pappus.as_ref().map(Metadata::parse).transpose()?;
    let registration = Registration::for_crate(&package.name, metadata.as_ref(), &overrides)?;
    registration.check()?;
    let client = connect(args)?;
    let image = if registration.is_native() {
        native_image(&workspace, &package.name)?
    } else {
        fnmeta::build(path, Some(&package.name))?;
        workspace.wasm_path(package).ok_or_else(|| no_cdylib(&package.name))?
    };
    println!("{}", deploy_function(&client, &registration, &image)?);
    Ok(())
}

/// Builds `package` of `workspace` as a native image (docs/writing-functions.md, "Native
/// builds") and returns the ELF's path.
fn native_image(workspace: &Workspace, package: &str) -> Result<PathBuf> {
    let root = workspace.target_dir.parent().unwrap_or(Path::new("."));
    pappus_tests::functions::build_native(root, package).map_err(Failure)
}

fn no_cdylib(package: &str) -> Failure {
    Failure(format!("{package}: no cdylib target, so no .wasm (add crate-type = [\"cdylib\", \"rlib\"] to [lib])"))
}

/// A workspace folder (e.g. `functions/`): every member that has registration metadata.
fn deploy_workspace(args: &Args, dir: &Path, workspace: &Workspace, overrides: &Overrides) -> Result {
    if overrides.name.is_some() || overrides.inputs.is_some() || overrides.outputs.is_some() {
        return Err(Failure(format!(
            "{} is a workspace, and --name/--inputs/--outputs describe one function: name its crate folder",
            dir.display()
        )));
    }
    let (functions, problems) = workspace_functions(workspace, overrides);
    if functions.is_empty() && problems.is_empty() {
        return Err(Failure(format!("{}: no crate with [package.metadata.pappus]", dir.display())));
    }
    let client = connect(args)?;
    fnmeta::build(dir, None)?;
    let mut failed = problems.len();
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    for (registration, wasm) in &functions {
        let image = if registration.is_native() {
            match native_image(workspace, &registration.name.replace('_', "-")) {
                Ok(image) => image,
                Err(e) => {
                    eprintln!("error: function {}: {}", registration.name, e.0);
                    failed += 1;
                    continue;
                }
            }
        } else {
            wasm.clone()
        };
        match deploy_function(&client, registration, &image) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("error: function {}: {}", registration.name, e.0);
                failed += 1;
            }
        }
    }
    if failed == 0 { Ok(()) } else { Err(Failure(format!("{failed} function(s) not deployed"))) }
}

/// The members of a workspace that have registration metadata, with their registration and
/// module path; and what is wrong with those whose metadata does not check.
pub fn workspace_functions(
    workspace: &Workspace,
    overrides: &Overrides,
) -> (Vec<(Registration, PathBuf)>, Vec<String>) {
    let mut functions = Vec::new();
    let mut problems = Vec::new();
    for package in workspace.packages.iter().filter(|p| p.pappus.is_some()) {
        let registration = package
            .pappus
            .as_ref()
            .map(Metadata::parse)
            .transpose()
            .map_err(|e| format!("{}: {e}", package.name))
            .and_then(|metadata| Registration::for_crate(&package.name, metadata.as_ref(), overrides))
            .and_then(|r| r.check().map(|()| r));
        let wasm = workspace.wasm_path(package).ok_or_else(|| no_cdylib(&package.name).0);
        match (registration, wasm) {
            (Ok(registration), Ok(wasm)) => functions.push((registration, wasm)),
            (Err(e), _) | (_, Err(e)) => problems.push(e),
        }
    }
    (functions, problems)
}

/// Uploads a module; the line to show says what the front door registered.
pub fn deploy_function(client: &Client, registration: &Registration, image: &Path) -> Result<String> {
    let bytes = std::fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    let registered = client.put_function(&registration.name, &registration.query(), &bytes)?;
    Ok(format!(
        "function {} {}: {}, module {}",
        text(&registered.json, "name"),
        if registered.created { "created" } else { "replaced" },
        function_details(&registered.json),
        human_bytes(bytes.len() as u64)
    ))
}

/// Uploads a composition program; the lines to show: what was registered, then its warnings.
pub fn deploy_composition(client: &Client, name: &str, program: &[u8]) -> Result<Vec<String>> {
    let registered = client.put_composition(name, program)?;
    let json = &registered.json;
    let mut lines = vec![format!(
        "composition {} {}: {}",
        text(json, "name"),
        if registered.created { "created" } else { "replaced" },
        signature(json)
    )];
    for warning in json["warnings"].as_array().into_iter().flatten() {
        lines.push(format!("  {}", crate::api::diagnostic(warning)));
    }
    Ok(lines)
}

/// The registered name of a composition file: `--name`, else the file stem.
pub fn composition_name(path: &Path, name: Option<&str>) -> Result<String> {
    match name {
        Some(name) => Ok(name.to_string()),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Failure(format!("{}: no file name to name the composition after", path.display()))),
    }
}

fn compose(args: &Args, path: &Path) -> Result {
    let program = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = composition_name(path, args.value("name"))?;
    let client = connect(args)?;
    for line in deploy_composition(&client, &name, &program)? {
        println!("{line}");
    }
    Ok(())
}

fn invoke(args: &Args, name: &str) -> Result {
    let set_args = args.values("set").iter().map(|s| SetArg::parse(s)).collect::<std::result::Result<Vec<_>, _>>()?;
    let out_dir = args.value("out").map(PathBuf::from);
    if let Some(raw) = args.value("raw") {
        if !set_args.is_empty() || args.switch("binary") || out_dir.is_some() {
            return Err(Failure(
                "--raw sends one body and prints the raw answer: without --set, --binary or --out \
                 (redirect stdout to keep it)"
                    .into(),
            ));
        }
        let body = Source::parse(raw).read()?;
        let client = connect(args)?;
        let raw = WireFormat::Raw.media_type();
        let response = client.invoke(name, raw, raw, &body)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&response.body)?;
        stdout.flush()?;
        return Ok(());
    }
    let sets = sets::build_sets(&set_args, &mut |source| source.read())?;
    let format = if args.switch("binary") { WireFormat::Binary } else { WireFormat::Json };
    let body = match format {
        WireFormat::Binary => binary::encode(&sets),
        _ => wire_json::encode(&sets).map(String::into_bytes),
    }
    .map_err(|e| format!("the input sets: {e}"))?;
    let client = connect(args)?;
    let response = client.invoke(name, format.media_type(), format.media_type(), &body)?;
    let content_type = response.header("content-type").map(str::to_string);
    let outputs = decode_output(content_type.as_deref(), response.body)?;
    match out_dir {
        Some(dir) => {
            for line in sets::write_sets(&outputs, &dir)? {
                println!("{line}");
            }
        }
        None => print!("{}", sets::format_sets(&outputs)),
    }
    Ok(())
}

/// The output sets of an invocation, in the format the answer says it is in.
fn decode_output(content_type: Option<&str>, body: Vec<u8>) -> Result<Vec<model::Set>> {
    // Our own server's answer: no bounds beyond the data model's.
    let limits = WireLimits::MODEL;
    let sets = match content_type.and_then(WireFormat::from_media_type) {
        Some(WireFormat::Binary) => binary::decode(&body.into(), &limits),
        Some(WireFormat::Json) | None => wire_json::decode(&body, &limits),
        Some(WireFormat::Raw) => return Err(Failure("the answer is raw bytes, not sets".into())),
    };
    sets.map_err(|e| Failure(format!("the answer's sets: {e}")))
}

fn list(client: &Client) -> Result {
    let functions = client.list_functions()?;
    let compositions = client.list_compositions()?;
    print!("{}", format_listing(&functions, &compositions));
    Ok(())
}

/// `name: engine (in) => (out), memory …, timeout … ms` from a declaration's JSON.
pub fn describe_function(f: &Value) -> String {
    format!("{}: {}", text(f, "name"), function_details(f))
}

/// `engine (in) => (out), memory …, timeout … ms`.
fn function_details(f: &Value) -> String {
    let mut line = format!("{} {}", text(f, "engine"), signature(f));
    if let Some(memory) = f["memory"].as_u64() {
        line.push_str(&format!(", memory {}", human_bytes(memory)));
    }
    if let Some(ms) = f["timeout_ms"].as_u64() {
        line.push_str(&format!(", timeout {ms} ms"));
    }
    line
}

fn describe_composition(c: &Value) -> String {
    format!("{}: {}", text(c, "name"), signature(c))
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("?")
}

/// `(a, b) => (c)` from a JSON object's `inputs` and `outputs`.
fn signature(v: &Value) -> String {
    let names = |field: &str| {
        v[field].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
    };
    format!("({}) => ({})", names("inputs"), names("outputs"))
}

pub fn format_listing(functions: &[Value], compositions: &[Value]) -> String {
    let mut out = String::new();
    for (title, entries, describe) in [
        ("functions", functions, describe_function as fn(&Value) -> String),
        ("compositions", compositions, describe_composition),
    ] {
        if entries.is_empty() {
            out.push_str(&format!("{title}: none\n"));
            continue;
        }
        out.push_str(&format!("{title} ({}):\n", entries.len()));
        for entry in entries {
            out.push_str(&format!("  {}\n", describe(entry)));
        }
    }
    out
}

/// A function's declaration, one field a line.
pub fn format_function(f: &Value) -> String {
    let mut out = format!("function {}\n", text(f, "name"));
    let names = |field: &str| {
        f[field].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
    };
    out.push_str(&format!(
        "  engine   {}\n  inputs   {}\n  outputs  {}\n",
        text(f, "engine"),
        names("inputs"),
        names("outputs")
    ));
    if let Some(memory) = f["memory"].as_u64() {
        out.push_str(&format!("  memory   {}\n", human_bytes(memory)));
    }
    if let Some(ms) = f["timeout_ms"].as_u64() {
        out.push_str(&format!("  timeout  {ms} ms\n"));
    }
    if let Some(digest) = f["digest"].as_str() {
        out.push_str(&format!("  digest   {digest}\n"));
    }
    out
}

/// 404 for a name that is neither a function nor a composition (they share one namespace).
fn neither(name: &str) -> Failure {
    let message = format!("no function or composition named '{name}'");
    Failure(
        CallError::Api(ApiError { status: 404, code: "not_found".into(), message, diagnostics: Vec::new() })
            .to_string(),
    )
}

fn get(client: &Client, name: &str) -> Result {
    match client.get_function(name) {
        Ok(function) => print!("{}", format_function(&function)),
        Err(e) if e.is_not_found() => match client.get_composition(name) {
            // The source as uploaded, so `fn get c > c.pappus` gives the file back.
            Ok(source) => print!("{source}"),
            Err(e) if e.is_not_found() => return Err(neither(name)),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn remove(client: &Client, name: &str) -> Result {
    match client.delete_function(name) {
        Ok(()) => println!("function {name} deleted"),
        Err(e) if e.is_not_found() => match client.delete_composition(name) {
            Ok(()) => println!("composition {name} deleted"),
            Err(e) if e.is_not_found() => return Err(neither(name)),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(words: &[&str]) -> std::result::Result<Args, String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Args::parse(spec(words.first().map(String::as_str))?, &words)
    }

    #[test]
    fn subcommand_flags() {
        let a = parse(&["invoke", "wc", "--set", "text=@a.txt", "--set=text=b", "--binary", "--out", "o"]).unwrap();
        assert_eq!(a.positionals, ["invoke", "wc"]);
        assert_eq!(a.values("set"), ["text=@a.txt", "text=b"]);
        assert!(a.switch("binary"));
        let a = parse(&["deploy", "functions/matmul", "--memory", "32MiB", "--timeout-ms", "50"]).unwrap();
        let o = Overrides::from_args(&a).unwrap();
        assert_eq!((o.memory.as_deref(), o.timeout_ms, o.inputs), (Some("32MiB"), Some(50), None));
        assert!(parse(&["deploy", "x", "--timeout-ms", "soon"]).map(|a| Overrides::from_args(&a).is_err()).unwrap());
        assert!(parse(&["list", "--set", "a=b"]).unwrap_err().contains("--set"));
        assert!(parse(&["get", "a", "b"]).is_err());
        assert!(parse(&["compose", "c.pappus", "--inputs", "a"]).is_err());
        assert!(parse(&["frobnicate"]).unwrap_err().contains("unknown subcommand"));
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn where_to_connect() {
        let conf = Path::new("target/pappus-dev.conf");
        let dev = Some("# made by run\ntenant dev pappus-dev-0123456789abcdef\n");
        let env = |u: Option<&str>, t: Option<&str>| (u.map(str::to_string), t.map(str::to_string));
        let (url, token) = resolve_connection((None, None), env(None, None), conf, dev).unwrap();
        assert_eq!((url.as_str(), token.as_str()), (DEFAULT_URL, "pappus-dev-0123456789abcdef"));
        let (url, token) =
            resolve_connection((None, None), env(Some("http://h:1"), Some("envtok")), conf, dev).unwrap();
        assert_eq!((url.as_str(), token.as_str()), ("http://h:1", "envtok"));
        let (url, token) =
            resolve_connection((Some("http://f:2"), Some("flagtok")), env(Some("http://h:1"), Some("e")), conf, dev)
                .unwrap();
        assert_eq!((url.as_str(), token.as_str()), ("http://f:2", "flagtok"));
        let e = resolve_connection((None, None), env(None, None), conf, None).unwrap_err();
        assert!(e.0.contains("--token") && e.0.contains("cargo xtask run"), "{}", e.0);
    }

    #[test]
    fn listings() {
        let f = json!({"name":"matmul","engine":"wasm","digest":"ab","inputs":["matrices"],"outputs":["product"],
                       "memory":16777216,"timeout_ms":1000});
        let b = json!({"name":"concat","engine":"builtin","inputs":["a","b"],"outputs":["out"]});
        let c = json!({"name":"pipeline","inputs":["urls"],"outputs":["report"]});
        assert_eq!(describe_function(&f), "matmul: wasm (matrices) => (product), memory 16.0MiB, timeout 1000 ms");
        assert_eq!(describe_function(&b), "concat: builtin (a, b) => (out)");
        assert_eq!(
            format_listing(std::slice::from_ref(&f), &[c]),
            "functions (1):\n  matmul: wasm (matrices) => (product), memory 16.0MiB, timeout 1000 ms\n\
             compositions (1):\n  pipeline: (urls) => (report)\n"
        );
        assert_eq!(format_listing(&[], &[]), "functions: none\ncompositions: none\n");
        assert_eq!(
            format_function(&f),
            "function matmul\n  engine   wasm\n  inputs   matrices\n  outputs  product\n  memory   16.0MiB\n  \
             timeout  1000 ms\n  digest   ab\n"
        );
        assert_eq!(neither("x").0, "404 not_found: no function or composition named 'x'");
    }

    #[test]
    fn composition_names() {
        assert_eq!(composition_name(Path::new("functions/compositions/top_k.pappus"), None).unwrap(), "top_k");
        assert_eq!(composition_name(Path::new("a.pappus"), Some("b")).unwrap(), "b");
    }

    #[test]
    fn output_decoding() {
        let sets = vec![model::Set {
            name: "out".into(),
            items: vec![model::Item { name: "x".into(), key: Some(2), data: b"hi".as_slice().into() }],
        }];
        let json = wire_json::encode(&sets).unwrap().into_bytes();
        assert_eq!(decode_output(Some("application/json"), json.clone()).unwrap(), sets);
        assert_eq!(decode_output(None, json).unwrap(), sets);
        let bin = binary::encode(&sets).unwrap();
        assert_eq!(decode_output(Some("application/x-pappus-sets"), bin).unwrap(), sets);
        assert!(decode_output(Some("application/json"), b"{\"sets\":".to_vec()).is_err());
        assert!(decode_output(Some("application/octet-stream"), b"hi".to_vec()).is_err());
    }
}
