//! `cargo xtask fn …`: the `pappus` command's library (build/pappus) behind the repository's own
//! argument style. Deploy functions and compositions to a running Pappus, invoke them, list,
//! show and remove them; `pappus` itself has the same commands (and more).
//!
//! Where to connect: `--url`/`--token`, else `PAPPUS_URL`/`PAPPUS_TOKEN`, else the user's
//! `pappus/config.toml`, else `http://127.0.0.1:8080` and the dev tenant's token that
//! `cargo xtask run` wrote to `target/pappus-dev.conf` (pappus::config).

use std::path::{Path, PathBuf};

use pappus::Ui;
use pappus::commands::{self, Invocation};
use pappus::config::{DEV_CONF, Role, Settings, Sources};
use pappus::fnmeta::{Overrides, split_list};

use crate::args::{Args, Spec};
use crate::util::{Failure, Result};

const DEPLOY: Spec = Spec {
    values: &["url", "token", "name", "engine", "inputs", "outputs", "memory", "timeout-ms", "fleet", "tenant"],
    switches: &[],
    max_positionals: 2,
};
const COMPOSE: Spec = Spec { values: &["url", "token", "name", "fleet", "tenant"], switches: &[], max_positionals: 2 };
const RM: Spec = Spec { values: &["url", "token", "fleet", "tenant"], switches: &[], max_positionals: 2 };
const INVOKE: Spec = Spec { values: &["url", "token", "set", "raw", "out"], switches: &["binary"], max_positionals: 2 };
const LIST: Spec = Spec { values: &["url", "token"], switches: &[], max_positionals: 1 };
const ONE_NAME: Spec = Spec { values: &["url", "token"], switches: &[], max_positionals: 2 };

/// The flags `fn <subcommand>` accepts (the subcommand is the first positional).
pub fn spec(subcommand: Option<&str>) -> std::result::Result<&'static Spec, String> {
    match subcommand {
        Some("deploy") => Ok(&DEPLOY),
        Some("compose") => Ok(&COMPOSE),
        Some("invoke") => Ok(&INVOKE),
        Some("list") => Ok(&LIST),
        Some("get") => Ok(&ONE_NAME),
        Some("rm") => Ok(&RM),
        Some(other) => Err(format!("unknown subcommand {other:?} (deploy, compose, invoke, list, get, rm)")),
        None => Err("which one? deploy, compose, invoke, list, get or rm".into()),
    }
}

/// How `cargo xtask fn` shows things: progress lines prefixed `xtask:`, text results.
pub fn ui() -> Ui {
    Ui::new("xtask", "cargo xtask fn")
}

pub fn main(args: &Args) -> Result {
    let ui = ui();
    let subcommand = args.positionals.first().map(String::as_str).unwrap_or_default();
    let operand = |what: &str| {
        args.positionals.get(1).map(String::as_str).ok_or_else(|| Failure(format!("`fn {subcommand}` needs {what}")))
    };
    let lib = |result: pappus::Result| result.map_err(|e| Failure(e.0));
    match subcommand {
        "deploy" => {
            let path = operand("a crate folder or a .wasm file")?;
            let overrides = overrides(args)?;
            lib(commands::deploy(&ui, &sources(args)?, Path::new(path), &overrides))
        }
        "compose" => {
            let path = operand("a .pappus file")?;
            lib(commands::compose(&ui, &sources(args)?, Path::new(path), args.value("name")))
        }
        "invoke" => {
            let invocation = Invocation {
                name: operand("the name of a function or composition")?.to_string(),
                sets: args.values("set").to_vec(),
                raw: args.value("raw").map(str::to_string),
                out: args.value("out").map(PathBuf::from),
                binary: args.switch("binary"),
            };
            lib(commands::invoke(&ui, &sources(args)?, &invocation))
        }
        "list" => lib(commands::list(&ui, &client(args)?)),
        "get" => {
            let name = operand("a name")?;
            lib(commands::get(&ui, &client(args)?, name))
        }
        "rm" => {
            let name = operand("a name")?;
            match fleet(args)? {
                Some(fleet) => lib(commands::remove_from_fleet(&ui, &fleet, name)),
                None => lib(commands::remove(&ui, &client(args)?, name)),
            }
        }
        other => Err(Failure(format!("unknown subcommand {other:?}"))),
    }
}

/// What the command line says about a registration.
fn overrides(args: &Args) -> Result<Overrides> {
    Ok(Overrides {
        name: args.value("name").map(str::to_string),
        engine: args.value("engine").map(str::to_string),
        inputs: args.value("inputs").map(split_list),
        outputs: args.value("outputs").map(split_list),
        memory: args.value("memory").map(str::to_string),
        timeout_ms: args.parsed("timeout-ms")?,
    })
}

/// Where to connect: the flags, then what the `pappus` command reads, with this checkout's dev
/// configuration as the default.
fn sources(args: &Args) -> Result<Sources> {
    let flags = Settings {
        url: args.value("url").map(str::to_string),
        token: args.value("token").map(str::to_string),
        operator_token: None,
    };
    let mut sources =
        Sources::gather(flags, Some(pappus_tests::target_dir().join(DEV_CONF))).map_err(|e| Failure(e.0))?;
    sources.fleet = fleet(args)?;
    Ok(sources)
}

/// `--fleet ETCD_URL [--tenant NAME]` (tenant `dev` by default, as `fleet up` configures it).
fn fleet(args: &Args) -> Result<Option<pappus::fleet::Fleet>> {
    match args.value("fleet") {
        Some(etcd) => {
            pappus::fleet::Fleet::new(etcd, args.value("tenant").unwrap_or("dev")).map(Some).map_err(|e| Failure(e.0))
        }
        None if args.value("tenant").is_some() => Err(Failure("--tenant goes with --fleet".into())),
        None => Ok(None),
    }
}

fn client(args: &Args) -> Result<pappus::api::Client> {
    sources(args)?.client(Role::Tenant).map_err(|e| Failure(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> std::result::Result<Args, String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Args::parse(spec(words.first().map(String::as_str))?, &words)
    }

    #[test]
    fn subcommand_flags() {
        let a = parse(&["invoke", "wc", "--set", "text=@a.txt", "--set=text=b", "--binary", "--out", "o"]).unwrap();
        assert_eq!(a.positionals, ["invoke", "wc"]);
        assert_eq!(a.values("set"), ["text=@a.txt", "text=b"]);
        assert!(a.switch("binary"));
        let a = parse(&["deploy", "functions/matmul", "--memory", "32MiB", "--timeout-ms", "50"]).unwrap();
        let o = overrides(&a).unwrap();
        assert_eq!((o.memory.as_deref(), o.timeout_ms, o.inputs), (Some("32MiB"), Some(50), None));
        assert!(parse(&["deploy", "x", "--timeout-ms", "soon"]).map(|a| overrides(&a).is_err()).unwrap());
        assert!(parse(&["list", "--set", "a=b"]).unwrap_err().contains("--set"));
        assert!(parse(&["get", "a", "b"]).is_err());
        assert!(parse(&["compose", "c.pappus", "--inputs", "a"]).is_err());
        assert!(parse(&["frobnicate"]).unwrap_err().contains("unknown subcommand"));
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn the_dev_configuration_is_this_checkouts() {
        let sources = sources(&parse(&["list", "--url", "http://h:1"]).unwrap()).unwrap();
        assert_eq!(sources.url(), "http://h:1");
        assert_eq!(sources.dev_path, Some(pappus_tests::target_dir().join("pappus-dev.conf")));
    }
}
