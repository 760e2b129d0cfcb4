//! The commands: deploy functions and compositions to a running Pappus, invoke them, list,
//! show and remove them through the front door's `/v1` API, and read the node's health and
//! metrics. The `pappus` binary and `cargo xtask fn` both call these.
//!
//! Results go to stdout (text, or with [`Ui::json`] one JSON document per result); builds,
//! progress and per-function errors go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use model::wire::{WireFormat, WireLimits, binary, json as wire_json};
use serde_json::{Value, json};

use crate::api::{ApiError, CallError, Client};
use crate::config::{Role, Sources};
use crate::fnmeta::{self, Metadata, Overrides, Registration, Workspace};
use crate::http::Progress;
use crate::sets::{self, SetArg, Source};
use crate::{Failure, Result, Ui, human_bytes};

/// `deploy PATH`: a crate folder (or its Cargo.toml), a workspace folder, or a module file.
pub fn deploy(ui: &Ui, sources: &Sources, path: &Path, overrides: &Overrides) -> Result {
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
        return Err(Failure(format!("{} is a composition: `{} compose` deploys it", path.display(), ui.command)));
    }
    if path.is_file() {
        let registration = Registration::for_file(path, overrides)?;
        registration.check()?;
        let (text, json) = Destination::of(sources)?.deploy_function(ui, &registration, path)?;
        ui.emit(text, &json);
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
        return deploy_workspace(ui, sources, path, &workspace, overrides);
    };
    let metadata = package.pappus.as_ref().map(Metadata::parse).transpose()?;
    let registration = Registration::for_crate(&package.name, metadata.as_ref(), overrides)?;
    registration.check()?;
    let destination = Destination::of(sources)?;
    let image = if registration.is_native() {
        native_image(ui, &destination, &workspace, &package.name)?
    } else {
        fnmeta::build(ui, path, Some(&package.name))?;
        workspace.wasm_path(package).ok_or_else(|| no_cdylib(&package.name))?
    };
    let (text, json) = destination.deploy_function(ui, &registration, &image)?;
    ui.emit(text, &json);
    Ok(())
}

/// Builds `package` of `workspace` as a native image for the destination's architecture (a
/// node's `/healthz` says `"arch"`; docs/writing-functions.md, "Native builds"; a fleet's nodes
/// are x86_64, docs/fleet.md) and returns the ELF's path.
fn native_image(ui: &Ui, destination: &Destination, workspace: &Workspace, package: &str) -> Result<PathBuf> {
    let arch = match destination {
        Destination::Node(client) => node_arch(client)?,
        Destination::Fleet(_) => crate::native::NativeArch::X86_64,
    };
    ui.say(format!("building {package} as a native {} image ({})", arch.name(), arch.target()));
    crate::native::build_native_for(&workspace.root, package, arch).map_err(Failure)
}

/// The node's architecture, from `/healthz`.
fn node_arch(client: &Client) -> Result<crate::native::NativeArch> {
    let health = client.health().map_err(|e| Failure(format!("asking the node for its architecture: {e}")))?;
    let name = health.get("arch").and_then(|a| a.as_str()).unwrap_or("");
    crate::native::NativeArch::from_name(name).ok_or_else(|| {
        Failure(format!("the node's /healthz names no architecture a native image can be built for: {name:?}"))
    })
}

fn no_cdylib(package: &str) -> Failure {
    Failure(format!("{package}: no cdylib target, so no .wasm (add crate-type = [\"cdylib\", \"rlib\"] to [lib])"))
}

/// A workspace folder (e.g. `functions/`): every member that has registration metadata.
fn deploy_workspace(ui: &Ui, sources: &Sources, dir: &Path, workspace: &Workspace, overrides: &Overrides) -> Result {
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
    let destination = Destination::of(sources)?;
    fnmeta::build(ui, dir, None)?;
    let mut failed = problems.len();
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    for (registration, wasm) in &functions {
        let image = if registration.is_native() {
            match native_image(ui, &destination, workspace, &registration.name.replace('_', "-")) {
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
        match destination.deploy_function(ui, registration, &image) {
            Ok((text, json)) => ui.emit(text, &json),
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

/// Shows how an exchange goes on stderr: a bar while the body goes, then a spinner while the
/// node works, cleared at the end. Nothing unless the [`Ui`] wants progress (a terminal).
pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
    label: String,
    waiting: bool,
}

/// Bodies smaller than this go without a bar (it would only flicker).
const BAR_FROM: u64 = 256 << 10;

impl ProgressDisplay {
    pub fn new(ui: &Ui, label: impl Into<String>) -> ProgressDisplay {
        let bar = ui.progress.then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()));
        ProgressDisplay { bar, label: label.into(), waiting: false }
    }

    pub fn update(&mut self, progress: Progress) {
        let Some(bar) = &self.bar else { return };
        match progress {
            Progress::Sent { done, total } if total >= BAR_FROM => {
                if bar.length() != Some(total) {
                    let style = ProgressStyle::with_template(
                        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                    bar.set_style(style.progress_chars("=> "));
                    bar.set_message(format!("{}: uploading", self.label));
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
            Progress::Sent { .. } => {}
            Progress::Waiting if !self.waiting => {
                self.waiting = true;
                let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_message(format!("{}: waiting for the node", self.label));
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            Progress::Waiting => {}
            Progress::Receiving { bytes } => {
                bar.set_message(format!("{}: receiving {}", self.label, human_bytes(bytes)));
            }
        }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Uploads a module; the line to show says what the front door registered, and the JSON
/// document is `{"function": <its declaration>, "created": bool, "module_bytes": N}`.
/// Where `deploy` sends a function: one node's API, or a fleet's desired state (`--fleet`).
pub enum Destination<'a> {
    Node(Client),
    Fleet(&'a crate::fleet::Fleet),
}

impl<'a> Destination<'a> {
    pub fn of(sources: &'a Sources) -> Result<Self> {
        match &sources.fleet {
            Some(fleet) => Ok(Self::Fleet(fleet)),
            None => Ok(Self::Node(sources.client(Role::Tenant)?)),
        }
    }

    /// Registers `image` as `registration` says; the line to show and the JSON result.
    pub fn deploy_function(&self, ui: &Ui, registration: &Registration, image: &Path) -> Result<(String, Value)> {
        match self {
            Self::Node(client) => deploy_function(ui, client, registration, image),
            Self::Fleet(fleet) => {
                let bytes = std::fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
                let replaced = fleet.put_function(&registration.name, &registration.query(), &bytes)?;
                let digest = pappus_fleet::layout::sha256_hex(&bytes);
                let line = format!(
                    "function {} {} in the fleet (etcd {}, tenant {}): {}, module {} sha256:{}",
                    registration.name,
                    if replaced { "replaced" } else { "created" },
                    fleet.etcd_url(),
                    fleet.tenant,
                    registration.query(),
                    human_bytes(bytes.len() as u64),
                    &digest[..12]
                );
                let json = json!({"function": registration.name, "created": !replaced, "module_bytes": bytes.len(),
                                  "digest": digest, "fleet": fleet.etcd_url()});
                Ok((line, json))
            }
        }
    }
}

/// `rm NAME --fleet`: deletes the function or composition from the fleet's desired state.
pub fn remove_from_fleet(ui: &Ui, fleet: &crate::fleet::Fleet, name: &str) -> Result {
    match fleet.remove(name)? {
        Some(kind) => {
            let kind = match kind {
                pappus_fleet::Kind::Function => "function",
                pappus_fleet::Kind::Composition => "composition",
            };
            ui.emit(format!("{kind} {name} deleted from the fleet"), &json!({"deleted": kind, "name": name}));
            Ok(())
        }
        None => Err(neither(name)),
    }
}

pub fn deploy_function(ui: &Ui, client: &Client, registration: &Registration, image: &Path) -> Result<(String, Value)> {
    let bytes = std::fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    let mut display = ProgressDisplay::new(ui, format!("function {}", registration.name));
    let registered =
        client.put_function(&registration.name, &registration.query(), &bytes, &mut |p| display.update(p))?;
    drop(display);
    let line = format!(
        "function {} {}: {}, module {}",
        text(&registered.json, "name"),
        if registered.created { "created" } else { "replaced" },
        function_details(&registered.json),
        human_bytes(bytes.len() as u64)
    );
    let json = json!({"function": registered.json, "created": registered.created, "module_bytes": bytes.len()});
    Ok((line, json))
}

/// Uploads a composition program; the lines to show: what was registered, then its warnings.
pub fn deploy_composition(client: &Client, name: &str, program: &[u8]) -> Result<Vec<String>> {
    let registered = client.put_composition(name, program)?;
    Ok(composition_lines(&registered.json, registered.created))
}

/// The answer to a composition PUT: the composition named in the URL, every other one the
/// source defined (each registered under its own name), or that a source of declarations only
/// registered nothing.
fn composition_lines(json: &Value, created: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if json.get("name").is_some() {
        let verb = if created { "created" } else { "replaced" };
        lines.push(format!("composition {} {verb}: {}", text(json, "name"), signature(json)));
    }
    let named = json.get("name").and_then(Value::as_str);
    for other in json["compositions"].as_array().into_iter().flatten() {
        if other.get("name").and_then(Value::as_str) != named {
            lines.push(format!("composition {} registered: {}", text(other, "name"), signature(other)));
        }
    }
    if lines.is_empty() {
        lines.push("no composition in the source (declarations only): nothing registered".into());
    }
    for warning in json["warnings"].as_array().into_iter().flatten() {
        lines.push(format!("  {}", crate::api::diagnostic(warning)));
    }
    lines
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

/// `compose FILE`: registers a composition file under its file stem (or `name`).
pub fn compose(ui: &Ui, sources: &Sources, path: &Path, name: Option<&str>) -> Result {
    let program = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = composition_name(path, name)?;
    if let Some(fleet) = &sources.fleet {
        let verb = if fleet.put_composition(&name, &program)? { "replaced" } else { "created" };
        let line =
            format!("composition {name} {verb} in the fleet (etcd {}, tenant {})", fleet.etcd_url(), fleet.tenant);
        ui.emit(line, &json!({"composition": name, "created": verb == "created", "fleet": fleet.etcd_url()}));
        return Ok(());
    }
    let client = sources.client(Role::Tenant)?;
    let registered = client.put_composition(&name, &program)?;
    let lines = composition_lines(&registered.json, registered.created);
    ui.emit(lines.join("\n"), &json!({"composition": registered.json, "created": registered.created}));
    Ok(())
}

/// What `invoke` sends and how it shows the answer.
#[derive(Debug, Default)]
pub struct Invocation {
    pub name: String,
    /// `SET[:KEY]=@file|@-|text`, in order.
    pub sets: Vec<String>,
    /// One raw body (`@file`, `@-` or text) instead of sets.
    pub raw: Option<String>,
    /// Write each output item to `DIR/<set>/<item>`.
    pub out: Option<PathBuf>,
    /// Send and receive `application/x-pappus-sets` instead of JSON.
    pub binary: bool,
}

/// `invoke NAME`: the input sets (or a raw body) in, the output sets (or the raw answer) out.
pub fn invoke(ui: &Ui, sources: &Sources, invocation: &Invocation) -> Result {
    let name = invocation.name.as_str();
    let set_args = invocation.sets.iter().map(|s| SetArg::parse(s)).collect::<std::result::Result<Vec<_>, _>>()?;
    let mut display = ProgressDisplay::new(ui, name);
    if let Some(raw) = &invocation.raw {
        if !set_args.is_empty() || invocation.binary || invocation.out.is_some() {
            return Err(Failure(
                "--raw sends one body and prints the raw answer: without --set, --binary or --out \
                 (redirect stdout to keep it)"
                    .into(),
            ));
        }
        if ui.json {
            return Err(Failure("--raw prints the raw answer: without --json".into()));
        }
        let body = Source::parse(raw).read()?;
        let client = sources.client(Role::Tenant)?;
        let raw = WireFormat::Raw.media_type();
        let response = client.invoke(name, raw, raw, &body, &mut |p| display.update(p))?;
        drop(display);
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&response.body)?;
        stdout.flush()?;
        return Ok(());
    }
    let sets = sets::build_sets(&set_args, &mut |source| source.read())?;
    let format = if invocation.binary { WireFormat::Binary } else { WireFormat::Json };
    let body = match format {
        WireFormat::Binary => binary::encode(&sets),
        _ => wire_json::encode(&sets).map(String::into_bytes),
    }
    .map_err(|e| format!("the input sets: {e}"))?;
    let client = sources.client(Role::Tenant)?;
    let response = client.invoke(name, format.media_type(), format.media_type(), &body, &mut |p| display.update(p))?;
    drop(display);
    let content_type = response.header("content-type").map(str::to_string);
    let outputs = decode_output(content_type.as_deref(), response.body)?;
    match &invocation.out {
        Some(dir) => {
            let written = sets::write_sets(&outputs, dir)?;
            let text = written.iter().map(|w| w.line()).collect::<Vec<_>>().join("\n");
            let files: Vec<Value> = written
                .iter()
                .map(|w| {
                    json!({"path": w.path.display().to_string(), "set": w.set, "index": w.index, "name": w.name,
                           "key": w.key, "bytes": w.bytes})
                })
                .collect();
            if ui.json || !text.is_empty() {
                ui.emit(text, &json!({"files": files}));
            }
        }
        None => {
            // The wire format's own JSON, so a script reads what the API documents.
            let json = wire_json::encode(&outputs).map_err(|e| format!("the answer's sets: {e}"))?;
            let json: Value = serde_json::from_str(&json).map_err(|e| format!("the answer's sets: {e}"))?;
            ui.emit(sets::format_sets(&outputs), &json);
        }
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

/// `list`: every function and composition of the tenant.
pub fn list(ui: &Ui, client: &Client) -> Result {
    let functions = client.list_functions()?;
    let compositions = client.list_compositions()?;
    ui.emit(format_listing(&functions, &compositions), &json!({"functions": functions, "compositions": compositions}));
    Ok(())
}

/// `health`: `GET /healthz`.
pub fn health(ui: &Ui, client: &Client) -> Result {
    let health = client.health()?;
    ui.emit(format_health(&client.url(), &health), &health);
    Ok(())
}

/// `ok: http://…: pappus 0.1.0 (x86_64), 2 cores, up 12.3 s`.
pub fn format_health(url: &str, h: &Value) -> String {
    let uptime = h["uptime_ms"].as_u64().map(|ms| format!(", up {:.1} s", ms as f64 / 1000.0)).unwrap_or_default();
    let cores = h["cores"].as_u64().map(|n| format!(", {n} core{}", if n == 1 { "" } else { "s" })).unwrap_or_default();
    format!("{}: {url}: pappus {} ({}){cores}{uptime}", text(h, "status"), text(h, "version"), text(h, "arch"))
}

/// `metrics`: `GET /metrics` (the operator's token) as Prometheus text, or as JSON samples.
pub fn metrics(ui: &Ui, client: &Client) -> Result {
    let text = client.metrics()?;
    let json = if ui.json { Value::Array(parse_metrics(&text)) } else { Value::Null };
    ui.emit(&text, &json);
    Ok(())
}

/// Prometheus text as `[{"name": …, "labels": {…}, "value": …}]` (comments left out).
pub fn parse_metrics(text: &str) -> Vec<Value> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some((series, value)) => (series.trim(), value),
            None => continue,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => (series, serde_json::Map::new()),
        };
        let value = value.parse::<f64>().ok().and_then(|v| serde_json::Number::from_f64(v).map(Value::Number));
        samples.push(json!({"name": name, "labels": labels, "value": value.unwrap_or(Value::Null)}));
    }
    samples
}

/// `a="x",b="y"` (values with `\"`, `\\` and `\n` escapes).
fn parse_labels(text: &str) -> serde_json::Map<String, Value> {
    let mut labels = serde_json::Map::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim().trim_start_matches(',').trim().to_string(), Value::String(value));
        rest = &after[end..];
    }
    labels
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

/// `get NAME`: a function's declaration, or a composition's source.
pub fn get(ui: &Ui, client: &Client, name: &str) -> Result {
    match client.get_function(name) {
        Ok(function) => ui.emit(format_function(&function), &json!({"function": function})),
        Err(e) if e.is_not_found() => match client.get_composition(name) {
            // The source as uploaded, so `get c > c.pappus` gives the file back.
            Ok(source) if ui.json => println!("{}", json!({"composition": {"name": name, "source": source}})),
            Ok(source) => print!("{source}"),
            Err(e) if e.is_not_found() => return Err(neither(name)),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `rm NAME`: deletes the function or composition of that name.
pub fn remove(ui: &Ui, client: &Client, name: &str) -> Result {
    match client.delete_function(name) {
        Ok(()) => ui.emit(format!("function {name} deleted"), &json!({"deleted": "function", "name": name})),
        Err(e) if e.is_not_found() => match client.delete_composition(name) {
            Ok(()) => ui.emit(format!("composition {name} deleted"), &json!({"deleted": "composition", "name": name})),
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

    #[test]
    fn composition_answers_name_every_composition_registered() {
        let one = json!({"name":"pipe","inputs":["a"],"outputs":["b"],"compositions":[{"name":"pipe","inputs":["a"],"outputs":["b"]}]});
        assert_eq!(composition_lines(&one, true), ["composition pipe created: (a) => (b)"]);
        let two = json!({"name":"outer","inputs":["x"],"outputs":["z"],"compositions":[
            {"name":"inner","inputs":["x"],"outputs":["y"]},{"name":"outer","inputs":["x"],"outputs":["z"]}]});
        assert_eq!(
            composition_lines(&two, false),
            ["composition outer replaced: (x) => (z)", "composition inner registered: (x) => (y)"]
        );
        let none = json!({"compositions":[],"warnings":[]});
        assert_eq!(
            composition_lines(&none, false),
            ["no composition in the source (declarations only): nothing registered"]
        );
    }

    #[test]
    fn health_lines() {
        let h = json!({"status":"ok","version":"0.1.0","arch":"x86_64","uptime_ms":12345,"cores":2});
        assert_eq!(format_health("http://h:1", &h), "ok: http://h:1: pappus 0.1.0 (x86_64), 2 cores, up 12.3 s");
        assert_eq!(format_health("u", &json!({})), "?: u: pappus ? (?)");
    }

    #[test]
    fn metrics_as_json() {
        let text = "# HELP pappus_heap_used_bytes Heap in use.\n# TYPE pappus_heap_used_bytes gauge\n\
                    pappus_heap_used_bytes 19062272\n\
                    pappus_requests_total{route=\"invoke\",status=\"200\"} 7\n\
                    odd{a=\"x\\\"y,z\",b=\"\"} NaN\n";
        let samples = parse_metrics(text);
        assert_eq!(
            samples,
            [
                json!({"name":"pappus_heap_used_bytes","labels":{},"value":19062272.0}),
                json!({"name":"pappus_requests_total","labels":{"route":"invoke","status":"200"},"value":7.0}),
                json!({"name":"odd","labels":{"a":"x\"y,z","b":""},"value":null}),
            ]
        );
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
