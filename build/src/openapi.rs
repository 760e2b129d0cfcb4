//! `cargo xtask openapi`: the OpenAPI contract suite alone. Without `--url` it builds the x86_64
//! kernel and runs the `openapi` QEMU suite (tests/tests/openapi.rs: the served document is
//! docs/openapi.json and validates, every 405 lists the documented methods, schemathesis finds
//! nothing outside the document). With `--url` it runs schemathesis once against a node that is
//! already up (e.g. `cargo xtask run`), with a tenant's token: it registers, replaces and deletes
//! functions and compositions, so point it at a scratch node.

use pappus_qemu::Arch;

use crate::args::{Args, Spec};
use crate::prereq;
use crate::util::{Failure, Result, cargo, root, run};

pub const SPEC: Spec = Spec { values: &["url", "token", "examples"], switches: &[], max_positionals: 0 };

/// The environment variable the suite reads for its examples per operation.
const EXAMPLES_ENV: &str = "PAPPUS_SCHEMATHESIS_EXAMPLES";

pub fn main(args: &Args) -> Result {
    let examples = match args.value("examples") {
        Some(n) => {
            n.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| format!("--examples {n:?}: a positive number"))?
        }
        None => pappus_tests::openapi::TENANT_EXAMPLES,
    };
    prereq::python_tools()?;
    if let Some(url) = args.value("url") {
        let token = match args.value("token") {
            Some(token) => token.to_string(),
            None => std::env::var("PAPPUS_TOKEN")
                .map_err(|_| Failure("--url needs a tenant's token: --token TOKEN or PAPPUS_TOKEN".into()))?,
        };
        let work = root().join("target/tmp/openapi-xtask");
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        let phases = pappus_tests::openapi::TENANT_PHASES;
        return run(pappus_tests::openapi::schemathesis(url, &token, phases, examples, &[], &work));
    }
    prereq::rust()?;
    prereq::suites(&[Arch::X86_64])?;
    let kernels = crate::util::build_kernels(&[Arch::X86_64])?;
    let mut command = cargo();
    command.args(["test", "-p", "pappus-tests", "--test", "openapi", "--", "--test-threads=1"]);
    command.env(pappus_tests::QEMU_TESTS_ENV, "1").env(EXAMPLES_ENV, examples.to_string());
    for (arch, kernel) in &kernels {
        command.env(pappus_tests::kernel_env_var(*arch), kernel);
    }
    run(command)
}
