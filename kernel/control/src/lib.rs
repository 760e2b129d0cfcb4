//! The control plane: the `/v1` HTTP API of the front door (DESIGN.md, "The front door") over
//! the tenants' functions and compositions, and the invocations that run them.
//!
//! `no_std` + `alloc`, no clock, no I/O: the kernel hands [`ControlPlane::handle`] complete
//! requests with the time (`now_ms`) and a [`Runtime`] that runs functions on the real
//! engines; the tests hand it a fake. So every route, status and body is tested on the host machine.
//!
//! ```text
//! match plane.handle(request, now_ms, &mut engines) {
//!     Reply::Now(response) => send(response),
//!     Reply::Pending(id) => remember(connection, id),       // e.g. a composition that sleeps
//! }
//! // in the I/O loop:
//! if plane.poll(now_ms, &mut engines) { for each remembered id: plane.take_response(id) -> send }
//! // connection closed early: plane.cancel(id)
//! ```
//!
//! # Routes
//!
//! Every route requires `Authorization: Bearer <token>` (401 `unauthorized` with
//! `WWW-Authenticate: Bearer realm="pappus"` otherwise). A tenant only ever sees its own
//! functions and compositions: another tenant's names are 404 `not_found`, exactly like names
//! nobody registered. Functions and compositions of one tenant share one namespace (409
//! `name_taken`); builtin names are reserved (409 `reserved`).
//!
//! | route | answers |
//! |---|---|
//! | `PUT /v1/functions/{name}?engine=…&inputs=…&outputs=…&memory=…&timeout_ms=…` | 201/200 + declaration JSON ([`functions`] docs) |
//! | `GET /v1/functions/{name}`, `GET /v1/functions` | declaration JSON; `{"functions":[…]}` sorted by name |
//! | `DELETE /v1/functions/{name}` | 204 |
//! | `PUT /v1/compositions/{name}` (DSL text) | 201/200 + `{"name","inputs","outputs","warnings"}` ([`compositions`] docs) |
//! | `GET /v1/compositions/{name}`, `GET /v1/compositions` | the source (`text/plain`); `{"compositions":[…]}` |
//! | `DELETE /v1/compositions/{name}` | 204 |
//! | `POST /v1/invoke/{name}` | 200 + output sets ([`invoke`] docs) |
//!
//! The OpenAPI 3.1 document of the whole API is `docs/openapi.json`, served without a token at
//! `GET /v1/openapi.json` by the front door ([`openapi`]).
//!
//! # Errors
//!
//! JSON `{"error":{"code":…,"message":…}}` with these statuses and codes:
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `bad_name` | a path name breaks the name rule (1..=64 of `[A-Za-z0-9_.-]`, starting alphanumeric) |
//! | 400 | `bad_spec` | the function registration query is invalid (the message names the parameter) |
//! | 400 | `bad_image` | empty image, or the engine refused it (the engine's status and message) |
//! | 400 | `bad_composition` | the program does not parse or check (with `diagnostics`), is not UTF-8, or lacks the composition named in the path |
//! | 400 | `bad_input` / `unknown_set` | an invoke body that does not decode / sets the target does not declare |
//! | 401 | `unauthorized` | missing, non-Bearer, malformed or unknown token |
//! | 404 | `not_found` | no such route, or no such name for this tenant |
//! | 405 | `method_not_allowed` | with `Allow` |
//! | 406 | `not_acceptable` | raw output asked of other than one output item |
//! | 409 | `reserved`, `name_taken`, `registry_full` | builtin name; name used by the other kind; tenant at its limit |
//! | 409 | `function_not_registered`, `signature_mismatch` | a composition's function does not resolve when invoked |
//! | 413 | `payload_too_large` | image, program or invoke body over the limits |
//! | 422 | `plan_limit` | the composition would plan more instances or nesting than allowed |
//! | 500 | `function_failed` | a function faulted, or the `fail` builtin ran (runtime errors pass their own status and code) |
//! | 502 | `bad_output` | a function's outputs do not match its declaration or the data model |
//! | 429 | `too_many_invocations` | the tenant holds its share of the live invocations (an equal share of the limit, at least one); with `Retry-After` |
//! | 503 | `saturated` | too many live invocations; with `Retry-After` |
//! | 503 | `out_of_memory` | the node's heap has no room for the work now (not the tenant's budget); with `Retry-After` |
//! | 504 | `timeout` | a function ran past its time budget (as the runtime reports it) |
//! | 507 | `memory_budget` | the tenant's memory budget cannot hold it (images, prepared modules, compositions, invocation data, sandbox memory); other tenants are unaffected |
//!
//! Registry full is 409 (not 507): the tenant can fix it by deleting something; the server
//! itself is not out of storage.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod accounting;
mod api;
mod auth;
pub mod builtin;
pub mod compositions;
mod errors;
mod fleet;
pub mod functions;
mod invocation;
pub mod invoke;
mod json;
mod limits;
pub mod openapi;
mod plane;
mod runtime;
pub mod stats;

pub use auth::{Credentials, authorize_operator};
pub use builtin::{Builtin, MAX_SLEEP_MS};
pub use fleet::FleetChange;
pub use limits::ControlLimits;
pub use plane::{ControlPlane, Counters, InvocationId, Reply};
pub use runtime::{Comm, Prepared, RunError, Runtime, Started, StoredFunction, Ticket};
pub use stats::{InvocationStats, Outcome};
