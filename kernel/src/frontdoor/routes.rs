//! The routes the front door answers, from a complete request to a response.

use alloc::format;

use model::OperatorToken;
use pappus_http::{Request, Response};

use super::Backend;
use crate::arch;
use crate::metrics::Export;

/// Whether a request with `Expect: 100-continue` goes to a route that wants its body (the
/// others are answered before the client sends it).
pub fn wants_body(request: &Request) -> bool {
    request.method == "POST" && request.path == "/v1/echo"
}

/// Answers a request for the kernel's own routes. `/metrics` names tenants and functions, so it
/// needs the operator's token (401 otherwise); `/healthz`, `/v1/echo` and `/v1/openapi.json` are open.
pub fn route(
    request: Request,
    now_ms: u64,
    door: &dyn Export,
    backend: &dyn Backend,
    operator: &OperatorToken,
) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/healthz") => {
            // A fleet node says how its sync with etcd stands; serving goes on either way.
            let fleet = backend.fleet_health().map(|f| format!(r#","fleet":{f}"#)).unwrap_or_default();
            Response::json(
                200,
                format!(
                    r#"{{"status":"ok","version":"{}","arch":"{}","uptime_ms":{},"cores":{}{fleet}}}"#,
                    env!("CARGO_PKG_VERSION"),
                    arch::NAME,
                    now_ms,
                    arch::cpu_count()
                ),
            )
        }
        ("GET", "/metrics") => match control::authorize_operator(operator, &request) {
            Ok(()) => {
                Response::new(200).header("content-type", "text/plain; version=0.0.4").body(backend.metrics(door))
            }
            Err(refusal) => refusal,
        },
        // The sampling profiler's samples (`profile=N` on the command line): drained by GET,
        // dropped by DELETE; operator only, as they show the kernel's code addresses.
        ("GET" | "DELETE", "/v1/profile") => match control::authorize_operator(operator, &request) {
            Ok(()) => profile_route(request.method == "GET"),
            Err(refusal) => refusal,
        },
        // The API's OpenAPI document (docs/openapi.json), open like /healthz: a copy of 64 KB
        // per answer, held until sent, so only when the heap has room beyond its reserve.
        ("GET", control::openapi::PATH) => {
            if crate::mm::heap_room_for(control::openapi::DOCUMENT.len()) {
                control::openapi::response()
            } else {
                Response::error(503, "out_of_memory", "the node has no memory for the document now; retry later")
                    .header("retry-after", "1")
            }
        }
        // The body moves into the response: a 64 MiB echo is not copied here.
        ("POST", "/v1/echo") => {
            Response::new(200).header("content-type", "application/octet-stream").body(request.body)
        }
        (method, path) => match allowed(path) {
            // RFC 9110 section 15.5.6: a 405 lists the methods the resource takes, as the
            // control plane's do.
            Some(allow) => Response::error(405, "method_not_allowed", &format!("{method} is not allowed on {path}"))
                .header("allow", allow),
            None => Response::error(404, "not_found", &format!("no route for {method} {path}")),
        },
    }
}

/// The methods each of the front door's own paths takes (the `Allow` field of its 405s), or
/// `None` for a path that is not one of them.
fn allowed(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" | "/metrics" | control::openapi::PATH => Some("GET"),
        "/v1/echo" => Some("POST"),
        "/v1/profile" => Some("GET, DELETE"),
        _ => None,
    }
}

fn profile_route(get: bool) -> Response {
    let off = || {
        Response::error(
            409,
            "profiler_off",
            "the profiler is off: boot with `profile=N` or `profile=alloc` on the command line",
        )
    };
    if get {
        match crate::profile::drain() {
            Some(text) => Response::new(200).header("content-type", "text/plain").body(text.into_bytes()),
            None => off(),
        }
    } else if crate::profile::reset() {
        Response::new(204)
    } else {
        off()
    }
}
