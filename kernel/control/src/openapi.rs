//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API (`docs/openapi.json`,
//! embedded at build time), served without a token. The front door routes the path here
//! (`kernel/src/frontdoor/routes.rs`); this crate keeps the bytes and the answer, so the host
//! tests check that what the node serves is the file in the repository.

use pappus_http::Response;

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

/// The document, byte for byte the repository's `docs/openapi.json`.
pub const DOCUMENT: &[u8] = include_bytes!("../../../docs/openapi.json");

/// The answer to `GET /v1/openapi.json`: 200, `application/json`, the document.
pub fn response() -> Response {
    Response::json(200, DOCUMENT)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use alloc::string::String;
    use alloc::vec::Vec;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::from_slice(DOCUMENT).expect("docs/openapi.json is JSON")
    }

    #[test]
    fn served_bytes_are_the_repository_file() {
        let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap();
        let response = response();
        assert_eq!(response.status, 200);
        assert_eq!(response.header_value("content-type"), Some("application/json"));
        assert_eq!(response.body, file, "the served document differs from docs/openapi.json");
        assert_eq!(DOCUMENT, &file[..]);
    }

    #[test]
    fn is_an_openapi_3_1_document_of_this_path() {
        let doc = document();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1.")), Some(true), "{}", doc["openapi"]);
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key(PATH));
        assert_eq!(doc["paths"][PATH]["get"]["security"], serde_json::json!([]), "served without a token");
        let version = doc["info"]["version"].as_str().unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"), "info.version is the crate version");
    }

    /// Every error code the document names is one the kernel uses, and the codes listed per
    /// status agree with the `ErrorCode` enumeration.
    #[test]
    fn error_codes_are_enumerated() {
        let doc = document();
        let codes: Vec<String> =
            doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
                .as_array()
                .expect("an enumeration of the error codes")
                .iter()
                .map(|c| String::from(c.as_str().unwrap()))
                .collect();
        for code in ["unauthorized", "not_found", "method_not_allowed", "bad_name", "bad_spec", "memory_budget"] {
            assert!(codes.iter().any(|c| c == code), "{code} missing");
        }
    }
}
