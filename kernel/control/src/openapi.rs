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

    /// Every status and error code docs/api.md ("Every status the node sends") lists is in the
    /// document, under that status; every error status has its own code list, within `Error`'s.
    #[test]
    fn error_codes_match_the_prose() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let codes = |schema: &Value| -> Vec<String> {
            schema.as_array().unwrap().iter().map(|c| String::from(c.as_str().unwrap())).collect()
        };
        let all = codes(&schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"]);
        let prose = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
        let mut rows = 0;
        for line in prose.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(status) = cells.get(1).and_then(|c| c.parse::<u16>().ok()) else { continue };
            if status < 400 {
                continue;
            }
            rows += 1;
            let listed = codes(
                &schemas[std::format!("Error{status}").as_str()]["allOf"][1]["properties"]["error"]["properties"]["code"]
                    ["enum"],
            );
            for code in cells[2].split(',').map(|c| c.trim().trim_matches('`')) {
                assert!(listed.iter().any(|c| c == code), "{status} {code} (docs/api.md) is not in Error{status}");
            }
            assert!(listed.iter().all(|c| all.contains(c)), "Error{status} has codes outside Error");
            assert!(
                doc["components"]["responses"][std::format!("E{status}").as_str()].is_object(),
                "no response E{status}"
            );
        }
        assert!(rows >= 20, "read {rows} error rows of docs/api.md");
    }
}
