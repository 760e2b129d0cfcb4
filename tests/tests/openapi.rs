//! The OpenAPI contract (docs/openapi.json) against a live node: `GET /v1/openapi.json` answers
//! the repository's document without a token and `openapi-spec-validator` accepts it; then
//! `schemathesis` generates requests for every operation (positive and negative data) and checks
//! every answer: no 5xx but the documented ones, no status, content type, header or body outside
//! the document. The Python tools come from `target/pyenv` (`cargo xtask test` installs them,
//! build/src/prereq.rs): without them these tests fail, they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pappus_tests::node::{Node, OPERATOR_TOKEN, Tenant, boot};
use pappus_tests::{pyenv_tool, target_dir, workspace_root};

const DEV: Tenant = Tenant { name: "dev", token: "dev-token-0123456789abcdef0123" };

/// The checks the runs make (the whole point of the suite: a failure of any is a bug in the
/// kernel or in the document).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";

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

/// One schemathesis run against the node's served document with `token`, on the operations
/// `filter` selects; panics with schemathesis's report on any failure.
fn schemathesis(node: &Node, token: &str, filter: &[&str], examples: u32, work: &Path) {
    let mut command = Command::new(pyenv_tool("schemathesis"));
    command
        .current_dir(work)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .arg("run")
        .arg(format!("http://127.0.0.1:{}/v1/openapi.json", node.port))
        .arg("--url")
        .arg(format!("http://127.0.0.1:{}", node.port))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", "18"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "60"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--no-color", "--output-truncate", "false"])
        .args(filter);
    let (ok, output) = run_bounded(command, RUN_LIMIT);
    println!("{output}");
    assert!(ok, "schemathesis found answers outside docs/openapi.json (or a 5xx):\n{output}");
}

#[test]
fn schemathesis_finds_no_answer_outside_the_document() {
    let Some(node) = boot("openapi_schemathesis", &[DEV]) else { return };
    let work = scratch("openapi-schemathesis");
    // The tenant's view: every operation (the operator's answer 401, as documented).
    schemathesis(&node, DEV.token, &[], 25, &work);
    // The operator's: /metrics and /v1/profile with the operator's token.
    schemathesis(&node, OPERATOR_TOKEN, &["--include-tag", "platform"], 10, &work);
    // Still serving, and still right.
    let r = node.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let auth = format!("Bearer {}", DEV.token);
    let headers = [("Authorization", auth.as_str()), ("Accept", "application/octet-stream")];
    let r = node.request("POST", "/v1/invoke/identity", &headers, b"still here");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"still here"[..]), "{}", r.text());
}
