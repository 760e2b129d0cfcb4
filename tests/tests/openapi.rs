//! The OpenAPI contract (docs/openapi.json) against a live node: `GET /v1/openapi.json` answers
//! the repository's document without a token and `openapi-spec-validator` accepts it; then
//! `schemathesis` generates requests for every operation (positive and negative data) and checks
//! every answer: no 5xx but the documented ones, no status, content type, header or body outside
//! the document (`pappus_tests::openapi::CHECKS`); every 405 lists the documented methods. The
//! Python tools come from `target/pyenv` (`cargo xtask test` installs them,
//! build/src/prereq.rs): without them these tests fail, they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pappus_tests::functions::deploy_examples;
use pappus_tests::node::{Node, OPERATOR_TOKEN, Tenant, boot};
use pappus_tests::openapi::{self, OPERATOR_PHASES, TENANT_EXAMPLES, TENANT_PHASES};
use pappus_tests::{pyenv_tool, target_dir, workspace_root};

const DEV: Tenant = Tenant { name: "dev", token: "dev-token-0123456789abcdef0123" };

/// What one schemathesis run may take at most under TCG (it normally takes far less: the bound
/// is on examples, not on time). A run past it is killed and fails.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn document_path() -> PathBuf {
    workspace_root().join("docs/openapi.json")
}

fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("tmp").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `command` to its end or `limit`, whichever is first; (success, stdout + stderr).
fn run_bounded(mut command: Command, limit: Duration) -> (bool, String) {
    let dir = scratch("openapi-out");
    let out_path = dir.join(format!("run-{}.log", std::process::id()));
    let out = std::fs::File::create(&out_path).unwrap();
    command.stdout(Stdio::from(out.try_clone().unwrap())).stderr(Stdio::from(out)).stdin(Stdio::null());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("{text}\n(killed after {limit:?})")),
    }
}

fn fetch_document(node: &Node) -> Vec<u8> {
    let r = node.request("GET", "/v1/openapi.json", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.body
}

#[test]
fn the_served_document_is_the_file_and_validates() {
    let Some(node) = boot("openapi_document", &[DEV]) else { return };
    let served = fetch_document(&node);
    let file = std::fs::read(document_path()).unwrap();
    assert!(served == file, "GET /v1/openapi.json is not docs/openapi.json ({} vs {} bytes)", served.len(), file.len());
    let doc: serde_json::Value = serde_json::from_slice(&served).expect("the served document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    // Open like /healthz: a wrong token changes nothing, other methods are 405.
    let r = node.request("GET", "/v1/openapi.json", &[("Authorization", "Bearer not-a-token")], b"");
    assert_eq!((r.status, r.body.len()), (200, file.len()));
    let r = node.request("DELETE", "/v1/openapi.json", &[], b"");
    assert_eq!(r.status, 405, "{}", r.text());

    let copy = scratch("openapi").join("served.json");
    std::fs::write(&copy, &served).unwrap();
    let mut validate = Command::new(pyenv_tool("openapi-spec-validator"));
    validate.arg(&copy);
    let (ok, output) = run_bounded(validate, Duration::from_secs(120));
    assert!(ok && output.contains("OK"), "openapi-spec-validator refused the served document:\n{output}");
    // And it says so about a broken one (the check can fail).
    let broken = scratch("openapi").join("broken.json");
    std::fs::write(&broken, br#"{"openapi":"3.1.0","info":{"title":"x"},"paths":{"/a":{"get":{"responses":7}}}}"#)
        .unwrap();
    let mut validate = Command::new(pyenv_tool("openapi-spec-validator"));
    validate.arg(&broken);
    let (ok, output) = run_bounded(validate, Duration::from_secs(120));
    assert!(!ok, "openapi-spec-validator accepted a broken document:\n{output}");
    node.request("GET", "/healthz", &[], b"");
}

/// A method no route takes answers 405 with `Allow` naming exactly the methods the document
/// gives the path (the front door's own routes lacked `Allow` until schemathesis's
/// `unsupported_method` check found it).
#[test]
fn every_405_lists_the_documented_methods() {
    let Some(node) = boot("openapi_allow", &[DEV]) else { return };
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(document_path()).unwrap()).unwrap();
    let auth = format!("Bearer {}", DEV.token);
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut documented: Vec<String> =
            item.as_object().unwrap().keys().filter(|k| *k != "parameters").map(|k| k.to_ascii_uppercase()).collect();
        documented.sort();
        let path = path.replace("{name}", "wordcount");
        for method in ["PATCH", "TRACE", "OPTIONS"] {
            let r = node.request(method, &path, &[("Authorization", &auth)], b"");
            assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
            let allow = r.header("allow").unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"));
            let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_string()).collect();
            allowed.sort();
            assert_eq!(allowed, documented, "{method} {path}: Allow {allow:?}");
        }
        checked.push((path, documented.join(", ")));
    }
    for expected in [("/healthz", "GET"), ("/v1/echo", "POST"), ("/v1/profile", "DELETE, GET")] {
        assert!(checked.iter().any(|(p, m)| p == expected.0 && m == expected.1), "{expected:?} in {checked:?}");
    }
    assert!(checked.iter().any(|(p, m)| p == "/v1/functions/wordcount" && m == "DELETE, GET, PUT"), "{checked:?}");
}

/// One schemathesis run against the node's served document with `token`, on the operations
/// `filter` selects; panics with schemathesis's report on any failure, else returns what it sent
/// and got.
fn schemathesis(node: &Node, token: &str, phases: &str, filter: &[&str], examples: u32, work: &Path) -> Vec<Exchange> {
    let base = format!("http://127.0.0.1:{}", node.port);
    let command = openapi::schemathesis(&base, token, phases, examples, filter, work);
    let (ok, output) = run_bounded(command, RUN_LIMIT);
    println!("{output}");
    assert!(ok, "schemathesis found answers outside docs/openapi.json (or a 5xx):\n{output}");
    exchanges(&work.join("run.har"))
}

/// One request of a run and its answer, from schemathesis's HAR report.
#[derive(Debug)]
struct Exchange {
    method: String,
    path: String,
    status: u16,
}

fn exchanges(har: &Path) -> Vec<Exchange> {
    let text = std::fs::read(har).unwrap_or_else(|e| panic!("{}: {e}", har.display()));
    let har: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    entries
        .iter()
        .map(|e| {
            let url = e["request"]["url"].as_str().unwrap();
            let path = url.splitn(4, '/').nth(3).map_or("/".into(), |p| format!("/{p}"));
            Exchange {
                method: e["request"]["method"].as_str().unwrap().into(),
                path: path.split('?').next().unwrap().into(),
                status: e["response"]["status"].as_u64().unwrap() as u16,
            }
        })
        .collect()
}

/// How many of `exchanges` were `method` on a path starting with `prefix`, answered `status`.
fn count(exchanges: &[Exchange], method: &str, prefix: &str, status: u16) -> usize {
    exchanges.iter().filter(|e| e.method == method && e.path.starts_with(prefix) && e.status == status).count()
}

#[test]
fn schemathesis_finds_no_answer_outside_the_document() {
    let Some(node) = boot("openapi_schemathesis", &[DEV]) else { return };
    let examples = std::env::var("PAPPUS_SCHEMATHESIS_EXAMPLES")
        .map_or(TENANT_EXAMPLES, |v| v.parse().expect("PAPPUS_SCHEMATHESIS_EXAMPLES is a number"));
    // The names the document's examples use (`wordcount`, `wordcount_mapreduce`) exist, so the
    // runs reach past 404 into registration, description and invocation.
    deploy_examples(&node, DEV.token, "wasm");
    // The tenant's view: every operation (the operator's answer 401, as documented).
    let tenant = schemathesis(&node, DEV.token, TENANT_PHASES, &[], examples, &scratch("openapi-tenant"));
    // Not a vacuous pass: the runs got past authentication and 404 into the routes' work.
    for (method, prefix, status) in [
        ("POST", "/v1/invoke/", 200),
        ("PUT", "/v1/compositions/", 201),
        ("GET", "/v1/functions/", 200),
        ("GET", "/v1/compositions/", 200),
        ("PUT", "/v1/functions/", 400),
    ] {
        assert!(
            count(&tenant, method, prefix, status) > 0,
            "no {method} {prefix}… answered {status} in {} requests",
            tenant.len()
        );
    }
    // The operator's: /metrics and /v1/profile with the operator's token.
    let operator = schemathesis(
        &node,
        OPERATOR_TOKEN,
        OPERATOR_PHASES,
        &["--include-tag", "platform"],
        10,
        &scratch("openapi-operator"),
    );
    assert!(count(&operator, "GET", "/metrics", 200) > 0, "the operator's run never read /metrics");
    // Still serving, and still right.
    let r = node.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let auth = format!("Bearer {}", DEV.token);
    let headers = [("Authorization", auth.as_str()), ("Accept", "application/octet-stream")];
    let r = node.request("POST", "/v1/invoke/identity", &headers, b"still here");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"still here"[..]), "{}", r.text());
}
