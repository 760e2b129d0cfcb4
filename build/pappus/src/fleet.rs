//! Deploying to a fleet (`--fleet ETCD_URL`): the desired state goes to etcd (its v3 JSON
//! gateway, `POST /v3/kv/put|range|deleterange`) under the layout of `pappus_fleet::layout`,
//! and function images to the fleet's blob server, instead of to one node's API. Every node
//! of the fleet loads and watches that state (docs/fleet.md).
//!
//! The blob server's URL is in etcd itself, at [`BLOBS_KEY`] (`cargo xtask fleet up` writes
//! it); an image is uploaded with `PUT <blobs>/<sha256 hex>` before its key is written, so a
//! node never sees a key whose blob is not there yet.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pappus_fleet::layout::{FunctionValue, Key, Kind, PREFIX, sha256_hex};
use serde_json::{Value, json};

use crate::http::{self, Endpoint, Request};
use crate::{Failure, Result};

/// Where the fleet's blob server is: its URL as the deploying side reaches it.
pub const BLOBS_KEY: &str = "/pappus/v1/fleet/blobs";

const TIMEOUT: Duration = Duration::from_secs(30);

/// A fleet's etcd and the tenant whose state a command changes.
#[derive(Clone, Debug)]
pub struct Fleet {
    etcd: Endpoint,
    pub tenant: String,
}

impl Fleet {
    /// `etcd_url` is etcd's client URL (`http://A.B.C.D:2379`); `tenant` a tenant name of the
    /// nodes' boot configuration.
    pub fn new(etcd_url: &str, tenant: &str) -> Result<Fleet> {
        model::validate_function_name(tenant).map_err(|e| Failure(format!("bad tenant name {tenant:?}: {e}")))?;
        let etcd = Endpoint::parse(etcd_url).map_err(|e| Failure(format!("--fleet {etcd_url}: {e}")))?;
        Ok(Fleet { etcd, tenant: tenant.to_string() })
    }

    pub fn etcd_url(&self) -> String {
        self.etcd.url()
    }

    /// One call of etcd's JSON gateway: `POST /v3/kv/<op>` with `body`.
    fn call(&self, op: &str, body: &Value) -> Result<Value> {
        let text = body.to_string();
        let request = Request::new("POST", format!("/v3/kv/{op}"))
            .header("content-type", "application/json")
            .body(text.as_bytes());
        let response = http::send(&self.etcd, &request, TIMEOUT)
            .map_err(|e| Failure(format!("etcd at {}: {e}", self.etcd.url())))?;
        if response.status != 200 {
            return Err(Failure(format!(
                "etcd at {} answered {} to {op}: {}",
                self.etcd.url(),
                response.status,
                String::from_utf8_lossy(&response.body)
            )));
        }
        serde_json::from_slice(&response.body).map_err(|e| Failure(format!("etcd's answer to {op} is not JSON: {e}")))
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let answer = self.call("range", &json!({ "key": B64.encode(key) }))?;
        match answer["kvs"].as_array().and_then(|kvs| kvs.first()) {
            None => Ok(None),
            Some(kv) => {
                let value = kv["value"].as_str().unwrap_or_default();
                Ok(Some(B64.decode(value).map_err(|e| Failure(format!("etcd value at {key} is not base64: {e}")))?))
            }
        }
    }

    pub fn put(&self, key: &str, value: &[u8]) -> Result {
        self.call("put", &json!({ "key": B64.encode(key), "value": B64.encode(value) })).map(drop)
    }

    /// Deletes `key`; whether it was there.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let answer = self.call("deleterange", &json!({ "key": B64.encode(key) }))?;
        Ok(answer["deleted"].as_str().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0)
    }

    /// The blob server's URL, from [`BLOBS_KEY`].
    pub fn blobs_url(&self) -> Result<String> {
        match self.get(BLOBS_KEY)? {
            Some(url) => Ok(String::from_utf8_lossy(&url).trim_end_matches('/').to_string()),
            None => Err(Failure(format!(
                "etcd at {} has no {BLOBS_KEY}: not a Pappus fleet's etcd (`cargo xtask fleet up` writes it)",
                self.etcd.url()
            ))),
        }
    }

    /// Uploads `image` to the blob server; its digest.
    pub fn put_blob(&self, image: &[u8]) -> Result<String> {
        let url = self.blobs_url()?;
        let endpoint = Endpoint::parse(&url).map_err(|e| Failure(format!("{BLOBS_KEY} {url}: {e}")))?;
        let digest = sha256_hex(image);
        let request =
            Request::new("PUT", format!("/{digest}")).header("content-type", "application/octet-stream").body(image);
        let response =
            http::send(&endpoint, &request, TIMEOUT).map_err(|e| Failure(format!("blob server at {url}: {e}")))?;
        if !matches!(response.status, 200 | 201 | 204) {
            return Err(Failure(format!(
                "blob server at {url} answered {} to PUT {digest}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            )));
        }
        Ok(digest)
    }

    fn key(&self, kind: Kind, name: &str) -> Result<Key> {
        model::validate_function_name(name).map_err(|e| Failure(format!("bad name {name:?}: {e}")))?;
        Ok(Key::new(&self.tenant, kind, name))
    }

    /// Writes function `name` (registration `query`, `image`): the blob, then the key. Whether
    /// it replaced one.
    pub fn put_function(&self, name: &str, query: &str, image: &[u8]) -> Result<bool> {
        if image.is_empty() {
            return Err(Failure("the function image is empty".into()));
        }
        // The query is checked here as a node would, so a bad one fails now, not on every node.
        model::FunctionSpec::from_query(name, query).map_err(|e| Failure(format!("bad registration: {e}")))?;
        let key = self.key(Kind::Function, name)?;
        let composition = self.key(Kind::Composition, name)?;
        if self.get(&composition.path())?.is_some() {
            return Err(Failure(format!(
                "a composition is named '{name}'; functions and compositions share one namespace"
            )));
        }
        let replaced = self.get(&key.path())?.is_some();
        self.put_blob(image)?;
        self.put(&key.path(), FunctionValue::for_image(query, image).to_json().as_bytes())?;
        Ok(replaced)
    }

    /// Writes composition `name`'s source. Whether it replaced one. The source is parsed here
    /// first, with the node's rules for what a PUT may hold, so a program every node would
    /// refuse is refused now (whether the functions it applies are registered is each node's
    /// business, as on one node, where that is a warning).
    pub fn put_composition(&self, name: &str, program: &[u8]) -> Result<bool> {
        let key = self.key(Kind::Composition, name)?;
        check_program(name, program)?;
        if self.get(&self.key(Kind::Function, name)?.path())?.is_some() {
            return Err(Failure(format!(
                "a function is named '{name}'; functions and compositions share one namespace"
            )));
        }
        let replaced = self.get(&key.path())?.is_some();
        self.put(&key.path(), program)?;
        Ok(replaced)
    }

    /// Deletes function or composition `name`: which one it was, or `None`.
    pub fn remove(&self, name: &str) -> Result<Option<Kind>> {
        for kind in [Kind::Function, Kind::Composition] {
            if self.delete(&self.key(kind, name)?.path())? {
                return Ok(Some(kind));
            }
        }
        Ok(None)
    }

    /// Every key of the fleet's state, with its value's size (for `fleet status`).
    pub fn list(&self) -> Result<Vec<(String, usize)>> {
        let end = pappus_fleet::layout::range_end(PREFIX.as_bytes());
        let answer = self.call("range", &json!({ "key": B64.encode(PREFIX), "range_end": B64.encode(end) }))?;
        let mut keys = Vec::new();
        for kv in answer["kvs"].as_array().into_iter().flatten() {
            let key = B64.decode(kv["key"].as_str().unwrap_or_default()).unwrap_or_default();
            let value = B64.decode(kv["value"].as_str().unwrap_or_default()).unwrap_or_default();
            keys.push((String::from_utf8_lossy(&key).into_owned(), value.len()));
        }
        Ok(keys)
    }
}

/// What a node would refuse in a composition PUT, short of the registered functions: not UTF-8,
/// not parsing, empty, or not defining `name` when it defines compositions.
pub fn check_program(name: &str, program: &[u8]) -> Result {
    let source = std::str::from_utf8(program).map_err(|e| Failure(format!("the program is not UTF-8: {e}")))?;
    let parsed = dsl::parse(source).map_err(|diagnostics| {
        let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        Failure(format!("the program does not parse: {}", lines.join("; ")))
    })?;
    if parsed.compositions.is_empty() && parsed.functions.is_empty() {
        return Err(Failure("the program is empty: it declares no function and defines no composition".into()));
    }
    if !parsed.compositions.is_empty() && parsed.composition(name).is_none() {
        let found: Vec<&str> = parsed.compositions.iter().map(|c| c.name.as_str()).collect();
        return Err(Failure(format!(
            "the program defines no composition named '{name}' (it defines: {}); use --name",
            found.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_every_node_would_refuse_are_refused_here() {
        let good = b"function f (a) => (b);\ncomposition c (x) => (y) { f (a = all x) => (y = b); }";
        assert!(check_program("c", good).is_ok());
        assert!(check_program("c", b"function f (a) => (b);").is_ok(), "declarations only");
        for (name, bad, says) in [
            ("c", &b"composition ("[..], "does not parse"),
            ("c", b"", "empty"),
            ("c", b"\xff", "UTF-8"),
            ("other", &good[..], "no composition named 'other'"),
        ] {
            let e = check_program(name, bad).unwrap_err();
            assert!(e.0.contains(says), "{}", e.0);
        }
    }
}
