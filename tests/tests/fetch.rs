//! The `http` communication function end to end: a composition fetches documents from a real
//! HTTP server on the host (`python3 -m http.server`, reached from the guest as 10.0.2.2 through
//! QEMU's user networking), counts their words on the compute side and merges the counts,
//! checked against a host count; a URL that never answers and one that refuses come back as
//! per-item errors of their class.

use std::net::TcpStream;
use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_tests::functions;
use pappus_tests::node::{Tenant, boot};
use pappus_tests::sets::{self, decode, host_counts};
use serde_json::{Value, json};

const TENANT: Tenant = Tenant { name: "fetch", token: "fetch-token-0123456789abcdef" };

/// A host HTTP server (`python3 -m http.server`) on 127.0.0.1, which the guest reaches as
/// 10.0.2.2 through QEMU's user networking; killed on drop.
struct HostServer {
    child: std::process::Child,
    port: u16,
}

impl HostServer {
    fn serve(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, port };
            }
            thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("python3 -m http.server never listened on {port}");
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FETCH_COUNT: &str = "\
function http (requests) => (responses, bodies, errors);
function wordcount (texts) => (counts);
function wordcount_merge (partials) => (counts);
composition fetch_count (urls) => (counts, errors) {
    http (requests = all urls) => (bodies = bodies, errors = errors);
    wordcount (texts = each bodies) => (partials = counts);
    wordcount_merge (partials = all partials) => (counts = counts);
}
";

#[test]
fn a_composition_fetches_32_documents_and_counts_their_words() {
    let Some(node) = boot("a_composition_fetches_32_documents_and_counts_their_words", &[TENANT]) else { return };
    let auth = format!("Bearer {}", TENANT.token);
    let a = [("Authorization", auth.as_str())];
    for (name, query) in [
        ("wordcount", "inputs=texts&outputs=counts&timeout_ms=30000"),
        ("wordcount_merge", "inputs=partials&outputs=counts&timeout_ms=30000"),
    ] {
        let path = format!("/v1/functions/{name}?engine=wasm&{query}");
        let r = node.request("PUT", &path, &a, &functions::wasm(name));
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    }
    let r = node.request("PUT", "/v1/compositions/fetch_count", &a, FETCH_COUNT.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());

    // 32 documents of distinct words, served from a temporary folder.
    let dir = pappus_tests::target_dir().join("tmp").join("fetch-docs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let texts: Vec<String> =
        (0..32).map(|d| (0..200 + d * 10).map(|w| format!("Word{} doc{d} ", (w * 13 + d) % 97)).collect()).collect();
    for (d, text) in texts.iter().enumerate() {
        std::fs::write(dir.join(format!("doc{d}.txt")), text).unwrap();
    }
    let server = HostServer::serve(&dir);
    let urls: Vec<Value> = (0..32)
        .map(|d| json!({"name": format!("doc{d}"), "data": B64.encode(format!("http://10.0.2.2:{}/doc{d}.txt", server.port))}))
        .collect();
    let invoke = |urls: &[Value]| {
        let body = serde_json::to_vec(&json!({"sets": {"urls": urls}})).unwrap();
        let r = node.request(
            "POST",
            "/v1/invoke/fetch_count",
            &[("Authorization", auth.as_str()), ("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = decode(&r.body);
        (sets::texts(&answer, "counts"), sets::texts(&answer, "errors"))
    };
    let expected: Vec<(String, String)> = host_counts(&texts).into_iter().map(|(w, n)| (w, n.to_string())).collect();
    let (counts, errors) = invoke(&urls);
    assert_eq!(errors, vec![], "no request failed");
    assert_eq!(counts, expected, "merged counts differ from the host's");

    // The same with one URL that never answers (a listener that accepts and stays silent) and
    // one that refuses (a port nothing listens on): those two are per-item errors, the rest count.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hold = thread::spawn(move || {
        // Accept, then say nothing until well after the guest's read timeout.
        let held: Vec<TcpStream> = silent.incoming().take(1).filter_map(Result::ok).collect();
        thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut urls = urls;
    urls.push(json!({"name": "silent", "data": B64.encode(format!("http://10.0.2.2:{silent_port}/x"))}));
    urls.push(json!({"name": "closed", "data": B64.encode(format!("http://10.0.2.2:{refused_port}/x"))}));
    let (counts, errors) = invoke(&urls);
    assert_eq!(counts, expected, "the 32 good documents still count");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, "silent");
    assert!(errors[0].1.starts_with("timeout:"), "{errors:?}");
    assert_eq!(errors[1].0, "closed");
    assert!(errors[1].1.starts_with("refused:"), "{errors:?}");
    drop(server);
    drop(hold); // detached: it lets go of the silent connection by itself
}

/// Dandelion's programs unchanged: its `HTTP` function with its set layout, its adaptive
/// `anyEach`/`anyKeyed`, and a source of several compositions registered by one PUT.
const DANDELION: &str = "\
function HTTP (requests) => (headers, bodies);
function concat (a, b) => (out);
composition fetch (requests) => (headers, bodies) {
    HTTP (requests = each requests) => (headers = headers, bodies = bodies);
}
composition fetch_cut (requests, marks) => (headers, out) {
    HTTP (requests = anyEach requests) => (headers = headers, bodies = bodies);
    concat (a = anyKeyed bodies, b = all marks) => (out = out);
}
";

/// `(name, key, text)` of every item of `set` in a JSON answer.
fn keyed_texts(body: &[u8], set: &str) -> Vec<(String, Option<u64>, String)> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["sets"][set]
        .as_array()
        .unwrap_or_else(|| panic!("no set {set} in {v}"))
        .iter()
        .map(|i| {
            let data = String::from_utf8(B64.decode(i["data"].as_str().unwrap()).unwrap()).unwrap();
            (i["name"].as_str().unwrap().to_string(), i["key"].as_u64(), data)
        })
        .collect()
}

#[test]
fn dandelion_http_and_adaptive_distributions_give_dandelions_answers() {
    let test = "dandelion_http_and_adaptive_distributions_give_dandelions_answers";
    // Adaptive inputs aim at 2 instances on this node, whatever its cores.
    let config = format!("tenant {} {}\nlimit any_partitions 2\n", TENANT.name, TENANT.token);
    let Some(node) = pappus_tests::node::boot_with_config(test, pappus_tests::Arch::X86_64, &config, None) else {
        return;
    };
    let auth = format!("Bearer {}", TENANT.token);
    let a = [("Authorization", auth.as_str())];
    let r = node.request("PUT", "/v1/compositions/fetch_cut", &a, DANDELION.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> =
        answer["compositions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fetch", "fetch_cut"], "one PUT registers both compositions");

    let dir = pappus_tests::target_dir().join("tmp").join("dandelion-docs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let docs = ["zero", "one one", "two two two", "three three three three"];
    for (d, text) in docs.iter().enumerate() {
        std::fs::write(dir.join(format!("d{d}.txt")), text).unwrap();
    }
    let server = HostServer::serve(&dir);
    // Requests as Dandelion's functions write them: request line with the version, headers
    // `name: value`, an empty line. Keys 1, 1, 2, 3.
    let request = |d: usize, key: u64| {
        let text = format!("GET http://10.0.2.2:{}/d{d}.txt HTTP/1.1\naccept: text/plain\n\n", server.port);
        json!({"name": format!("r{d}"), "key": key, "data": B64.encode(text)})
    };
    let requests: Vec<Value> = [1, 1, 2, 3].iter().enumerate().map(|(d, &k)| request(d, k)).collect();
    let invoke = |name: &str, sets: Value| {
        let body = serde_json::to_vec(&json!({ "sets": sets })).unwrap();
        node.request(
            "POST",
            &format!("/v1/invoke/{name}"),
            &[("Authorization", auth.as_str()), ("Content-Type", "application/json")],
            &body,
        )
    };

    // `fetch`: headers and bodies in request order, named and keyed like the requests.
    let r = invoke("fetch", json!({ "requests": requests }));
    assert_eq!(r.status, 200, "{}", r.text());
    let bodies = keyed_texts(&r.body, "bodies");
    let expected: Vec<(String, Option<u64>, String)> = docs
        .iter()
        .zip([1, 1, 2, 3])
        .enumerate()
        .map(|(d, (t, k))| (format!("r{d}"), Some(k), t.to_string()))
        .collect();
    assert_eq!(bodies, expected);
    for ((name, key, head), doc) in keyed_texts(&r.body, "headers").iter().zip(docs) {
        // Dandelion's head text: status line, then `name:value` lines in lower case, `\n` ends.
        assert!(head.starts_with("HTTP/1.0 200 OK\n"), "{name}: {head:?}");
        assert!(head.contains(&format!("\ncontent-length:{}\n", doc.len())), "{name}: {head:?}");
        assert!(head.contains("\ncontent-type:text/plain"), "{name}: {head:?}");
        assert!(!head.contains('\r') && !head.ends_with("\n\n"), "{name}: {head:?}");
        assert!(key.is_some());
    }

    // `fetch_cut`: the 4 requests in 2 `anyEach` parts; the bodies' 3 key groups (1: d0 d1,
    // 2: d2, 3: d3) in 2 `anyKeyed` parts, {1, 2} and {3}, each followed by the mark.
    let r = invoke("fetch_cut", json!({ "requests": requests, "marks": [{"name": "m", "data": B64.encode("|")}] }));
    assert_eq!(r.status, 200, "{}", r.text());
    let out: Vec<String> = keyed_texts(&r.body, "out").into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(out, ["zero", "one one", "two two two", "|", "three three three three", "|"]);
    assert_eq!(keyed_texts(&r.body, "headers").len(), 4);

    // One request that fails fails Dandelion's HTTP function (and the invocation).
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut failing = requests.clone();
    failing.push(
        json!({"name": "closed", "data": B64.encode(format!("GET http://10.0.2.2:{refused_port}/x HTTP/1.1\n\n"))}),
    );
    let r = invoke("fetch", json!({ "requests": failing }));
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("function_failed") && r.text().contains("HTTP: refused:"), "{}", r.text());
    // The node still serves.
    let r = invoke("fetch", json!({ "requests": requests }));
    assert_eq!(r.status, 200, "{}", r.text());
    drop(server);
}
