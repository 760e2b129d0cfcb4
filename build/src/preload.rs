//! What `cargo xtask run` preloads: every crate of `functions/` with `[package.metadata.pappus]`
//! and every `functions/compositions/*.pappus`. They are built before the boot (so the boot is
//! not kept waiting) and deployed through the same client as `cargo xtask fn` once the kernel is
//! up. A failure is reported and the rest goes on: `run` is still useful without them.

use std::path::PathBuf;
use std::time::Duration;

use pappus_qemu::shell_quote;

use pappus::api::Client;
use pappus::commands;
use pappus::config::DEFAULT_URL;
use pappus::fnmeta::{self, Overrides, Registration, Workspace};

use crate::util::{Failure, Result, relative, root, say};

pub struct Preload {
    functions: Vec<(Registration, PathBuf)>,
    compositions: Vec<PathBuf>,
}

/// Finds the example functions and compositions and, with `build`, builds the functions.
pub fn prepare(build: bool) -> Preload {
    let dir = root().join("functions");
    let mut functions = Vec::new();
    match Workspace::load(&dir) {
        Ok(workspace) => {
            let (found, problems) = commands::workspace_functions(&workspace, &Overrides::default());
            for problem in problems {
                say(format!("preload: {problem}: not deployed"));
            }
            functions = found;
        }
        Err(e) => say(format!("preload: cannot read the functions workspace: {}", e.0)),
    }
    if build
        && !functions.is_empty()
        && let Err(e) = fnmeta::build(&crate::fnctl::ui(), &dir, None)
    {
        say(format!("preload: {} did not build ({}): no function is preloaded", relative(&dir), e.0));
        functions.clear();
    }
    let compositions = composition_files(&dir.join("compositions"));
    Preload { functions, compositions }
}

/// The `.pappus` files of a folder, sorted by name (none when there is no folder).
fn composition_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "pappus") && path.is_file())
        .collect();
    files.sort();
    files
}

/// How long one preload request may wait: registration compiles a module, and under TCG that
/// takes a while, but a kernel that says nothing for this long is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Deploys functions first (compositions are checked against them), one line each on stderr;
/// returns the registrations of the functions now deployed.
pub fn deploy<'a>(url: &str, token: &str, preload: &'a Preload) -> Result<Vec<&'a Registration>> {
    let client = Client::new(url, token)?.timeout(REQUEST_TIMEOUT);
    // Progress lines as `xtask: …` on stderr; no bars: the serial log streams there too.
    let ui = pappus::Ui { progress: false, ..crate::fnctl::ui() };
    let mut deployed = Vec::new();
    for (registration, wasm) in &preload.functions {
        match commands::deploy_function(&ui, &client, registration, wasm) {
            Ok((line, _)) => {
                say(format!("preload: {line}"));
                deployed.push(registration);
            }
            Err(e) => say(format!("preload: function {} NOT deployed: {}", registration.name, e.0)),
        }
    }
    for file in &preload.compositions {
        let result = std::fs::read(file).map_err(|e| Failure(format!("cannot read it: {e}"))).and_then(|program| {
            let name = commands::composition_name(file, None).map_err(|e| Failure(e.0))?;
            commands::deploy_composition(&client, &name, &program).map_err(|e| Failure(e.0))
        });
        match result {
            Ok(lines) => lines.into_iter().for_each(|line| say(format!("preload: {line}"))),
            Err(e) => say(format!("preload: composition {} NOT deployed: {}", relative(file), e.0)),
        }
    }
    if preload.functions.is_empty() && preload.compositions.is_empty() {
        say("preload: no example functions or compositions found in functions/");
    }
    Ok(deployed)
}

/// Functions that make a good first example, in order of preference (text in, text out).
const EXAMPLES: [&str; 3] = ["wordcount", "grep", "template"];

/// How to call a deployed function: with curl (raw text in, JSON out) and with `cargo xtask fn`.
/// `url_flag`/`token_flag`: whether `fn` needs them (it defaults to port 8080 and the dev token).
pub fn examples(deployed: &[&Registration], url: &str, token: &str, dev_token: bool) -> Vec<String> {
    let pick = EXAMPLES
        .iter()
        .find_map(|name| deployed.iter().find(|r| r.name == *name && r.inputs.len() == 1))
        .or_else(|| deployed.iter().find(|r| r.inputs.len() == 1));
    let Some(function) = pick else {
        return Vec::new();
    };
    let text = "the quick brown fox jumps over the lazy dog";
    let curl = format!(
        "curl -s -H {} --data-binary {} {url}/v1/invoke/{}",
        shell_quote(&format!("Authorization: Bearer {token}")),
        shell_quote(text),
        function.name
    );
    let mut fn_line = format!(
        "cargo xtask fn invoke {} --set {}",
        function.name,
        shell_quote(&format!("{}={text}", function.inputs[0]))
    );
    if url != DEFAULT_URL {
        fn_line.push_str(&format!(" --url {url}"));
    }
    if !dev_token {
        fn_line.push_str(&format!(" --token {}", shell_quote(token)));
    }
    vec![curl, fn_line]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, inputs: &[&str]) -> Registration {
        Registration {
            name: name.into(),
            engine: "wasm".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec!["out".into()],
            memory: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn example_lines() {
        let matmul = registration("matmul", &["matrices"]);
        let wc = registration("wordcount", &["text"]);
        let merge = registration("wordcount_merge", &["a", "b"]);
        let lines = examples(&[&matmul, &merge, &wc], "http://127.0.0.1:18090", "tok", true);
        assert_eq!(
            lines,
            [
                "curl -s -H 'Authorization: Bearer tok' --data-binary 'the quick brown fox jumps over the lazy dog' \
                 http://127.0.0.1:18090/v1/invoke/wordcount",
                "cargo xtask fn invoke wordcount --set 'text=the quick brown fox jumps over the lazy dog' \
                 --url http://127.0.0.1:18090",
            ]
        );
        let lines = examples(&[&merge, &matmul], DEFAULT_URL, "t0k", false);
        assert!(lines[1].starts_with("cargo xtask fn invoke matmul --set"), "{}", lines[1]);
        assert!(lines[1].ends_with("' --token t0k"), "{}", lines[1]);
        assert!(examples(&[&merge], DEFAULT_URL, "t", true).is_empty(), "no one-input function");
    }

    #[test]
    fn failures_are_reported_not_fatal() {
        let dir = pappus_tests::target_dir().join("xtask-unit").join("preload");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.pappus"), "composition c () => (x) {}").unwrap();
        let preload = Preload {
            functions: vec![(registration("f", &["in"]), dir.join("missing.wasm"))],
            compositions: vec![dir.join("c.pappus"), dir.join("gone.pappus")],
        };
        // Nothing listens there: every item fails, and `deploy` still returns.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let deployed = deploy(&format!("http://127.0.0.1:{port}"), "t", &preload).unwrap();
        assert!(deployed.is_empty());
    }

    #[test]
    fn finds_composition_files() {
        let dir = pappus_tests::target_dir().join("xtask-unit").join("compositions");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["b.pappus", "a.pappus", "notes.md"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let names: Vec<String> =
            composition_files(&dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.pappus", "b.pappus"]);
        assert!(composition_files(&dir.join("missing")).is_empty());
    }
}
