//! Running `schemathesis` (from [`crate::pyenv_dir`]) against a node's OpenAPI document: the one
//! command line the `openapi` QEMU suite (tests/tests/openapi.rs) and `cargo xtask openapi --url`
//! use.

use std::path::Path;
use std::process::Command;

use crate::pyenv_tool;

/// What every run checks of every answer. `positive_data_acceptance` is left out: a schema cannot
/// say which set names a target declares, which programs parse or which images an engine
/// accepts, so schema-valid requests are rightly refused with 400. `object_level_authorization`
/// needs a second tenant's credentials (the control suite checks that tenants see only their own
/// names).
pub const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                          response_schema_conformance,response_headers_conformance,negative_data_rejection,\
                          missing_required_header,ignored_auth,unsupported_method,allow_header_conformance,\
                          use_after_free,ensure_resource_availability";

/// The phases of a tenant's run; an operator's has no stateful phase (no links lead to or from
/// the operator's routes).
pub const TENANT_PHASES: &str = "examples,coverage,fuzzing,stateful";
pub const OPERATOR_PHASES: &str = "examples,coverage,fuzzing";

/// Examples per operation of a tenant's run unless told otherwise.
pub const TENANT_EXAMPLES: u32 = 50;

/// `schemathesis run` against the node at `base` (`http://127.0.0.1:8080`), reading the document
/// the node serves, with `Authorization: Bearer <token>` on every request, [`CHECKS`], at most
/// `examples` test cases per operation and phase, a fixed seed, no example database; `filter`
/// adds schemathesis's own selection flags (`--include-tag platform`). It works in `work` and
/// writes its HAR report to `work/run.har`.
pub fn schemathesis(base: &str, token: &str, phases: &str, examples: u32, filter: &[&str], work: &Path) -> Command {
    let base = base.trim_end_matches('/');
    let mut command = Command::new(pyenv_tool("schemathesis"));
    command
        .current_dir(work)
        .env("NO_COLOR", "1")
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--phases", phases])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", "18"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "60"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--no-color", "--output-truncate", "false"])
        .args(["--report", "har", "--report-har-path"])
        .arg(work.join("run.har"))
        .args(filter);
    command
}
