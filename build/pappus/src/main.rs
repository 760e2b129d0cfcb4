//! `pappus`: the function author's command for a Pappus node (README, "The `pappus` command").

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use pappus::config::{self, Role, Settings, Sources};
use pappus::fnmeta::{Overrides, split_list};
use pappus::new::{Sdk, Template};
use pappus::{Failure, Result, Ui, commands};

const AFTER_HELP: &str = "\
Where to connect, setting by setting: --url and --token; else PAPPUS_URL, PAPPUS_TOKEN (and
PAPPUS_OPERATOR_TOKEN for `metrics`); else the config file $XDG_CONFIG_HOME/pappus/config.toml
or ~/.config/pappus/config.toml (url = \"…\", token = \"…\", operator_token = \"…\"); else
http://127.0.0.1:8080 and, inside a Pappus checkout, the tokens `cargo xtask run` wrote to
target/pappus-dev.conf.

Results go to stdout (--json: one JSON document per result), builds and progress to stderr; an
error ends with status 1 and `pappus: error: <status> <code>: <message>` on stderr.";

/// Deploy, compose, invoke, list, get and remove functions and compositions on a Pappus node.
#[derive(Debug, Parser)]
#[command(name = "pappus", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The node's URL (http://host:port)
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// The bearer token: the tenant's, or the operator's for `metrics`
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// deploy, compose, rm: write a fleet's desired state in its etcd (http://A.B.C.D:2379)
    /// instead of one node's API; every node of the fleet picks it up
    #[arg(long, global = true, value_name = "ETCD_URL")]
    fleet: Option<String>,
    /// With --fleet: the tenant (a name of the nodes' boot configuration) [default: dev]
    #[arg(long, global = true, value_name = "NAME")]
    tenant: Option<String>,
    /// Print results as JSON, one document per result (for scripts)
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars, even on a terminal
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a function crate (wasm32, or native for a native engine) and register it from its
    /// [package.metadata.pappus]; or every such crate of a workspace; or register a module file
    #[command(after_help = "Examples:\n  pappus deploy functions/wordcount\n  pappus deploy my-fn --engine native\n  \
                            pappus deploy my.wasm --inputs a,b --outputs c --memory 16MiB")]
    Deploy {
        /// A crate folder (or its Cargo.toml), a workspace folder, or a .wasm/.elf file
        path: PathBuf,
        /// Register under this name (default: the package name with `-` made `_`, or the file stem)
        #[arg(long)]
        name: Option<String>,
        /// The engine: wasm, native, mpk or paging (default: the metadata's, else wasm)
        #[arg(long)]
        engine: Option<String>,
        /// Input set names, comma-separated ('' for none)
        #[arg(long, value_name = "A,B")]
        inputs: Option<String>,
        /// Output set names, comma-separated
        #[arg(long, value_name = "C,D")]
        outputs: Option<String>,
        /// Memory limit, e.g. 16MiB
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// Time budget in milliseconds
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
    },
    /// Register a composition file (the composition language) under its file stem
    Compose {
        /// A .pappus file
        file: PathBuf,
        /// Register this composition of the file instead of the one named after it
        #[arg(long)]
        name: Option<String>,
    },
    /// Invoke a function or composition with input sets, and show or save its output sets
    #[command(after_help = "Examples:\n  pappus invoke wordcount --set texts=@README.md\n  \
                            pappus invoke top_words --set texts=@a.txt --set texts=@b.txt --set k=3\n  \
                            pappus invoke template --raw hello")]
    Invoke {
        /// The function or composition
        name: String,
        /// An input item: SET=@file (named after the file), SET=@- (stdin), SET=text (named by
        /// position); SET:KEY=… gives it a key. Repeat to add items and sets
        #[arg(long = "set", value_name = "SET[:KEY]=@FILE|@-|TEXT")]
        sets: Vec<String>,
        /// Send one raw body (@file, @- or text) and print the raw answer
        #[arg(long, value_name = "@FILE|@-|TEXT", conflicts_with_all = ["sets", "out", "binary"])]
        raw: Option<String>,
        /// Write each output item to DIR/<set>/<item>
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Send and receive the binary sets format (application/x-pappus-sets) instead of JSON
        #[arg(long)]
        binary: bool,
    },
    /// List the tenant's functions and compositions
    List,
    /// Show a function's declaration, or a composition's source
    Get {
        /// The function or composition
        name: String,
    },
    /// Remove a function or composition
    Rm {
        /// The function or composition
        name: String,
    },
    /// The node's health (GET /healthz; no token needed)
    Health,
    /// The node's metrics (GET /metrics, Prometheus text; the operator's token)
    Metrics,
    /// Make a new function crate that builds for wasm32 and natively, outside any checkout
    #[command(after_help = "The SDK is a dependency: --sdk-path DIR (the sdk/ folder of a Pappus checkout) or \
                            --sdk-git URL [--sdk-rev REV | --sdk-branch B]; default: the sdk/ of the checkout \
                            this pappus was installed from, while it is there.")]
    New {
        /// The package name (the function registers as it, with `-` made `_`)
        name: String,
        /// What to start from
        #[arg(long, default_value = "rust", value_parser = Template::NAMES)]
        template: String,
        /// Make it in DIR/NAME (default: ./NAME)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The SDK as a path dependency: a checkout's sdk/ folder
        #[arg(long, value_name = "DIR", conflicts_with = "sdk_git")]
        sdk_path: Option<PathBuf>,
        /// The SDK as a git dependency: a repository holding Pappus
        #[arg(long, value_name = "URL")]
        sdk_git: Option<String>,
        /// With --sdk-git: the commit or tag
        #[arg(long, value_name = "REV", requires = "sdk_git", conflicts_with = "sdk_branch")]
        sdk_rev: Option<String>,
        /// With --sdk-git: the branch
        #[arg(long, value_name = "BRANCH", requires = "sdk_git")]
        sdk_branch: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "e.g. pappus completions bash > ~/.local/share/bash-completion/completions/pappus")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut ui = Ui::new("pappus", "pappus");
    ui.json = cli.global.json;
    ui.progress &= !cli.global.no_progress;
    match run(&ui, cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("pappus: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn sources(global: &Global) -> Result<Sources> {
    let flags = Settings { url: global.url.clone(), token: global.token.clone(), operator_token: None };
    let here = std::env::current_dir().unwrap_or_default();
    let mut sources = Sources::gather(flags, config::find_dev_conf(&here, std::env::var_os("CARGO_TARGET_DIR")))?;
    if let Some(etcd) = &global.fleet {
        sources.fleet = Some(pappus::fleet::Fleet::new(etcd, global.tenant.as_deref().unwrap_or("dev"))?);
    }
    Ok(sources)
}

fn run(ui: &Ui, cli: Cli) -> Result {
    let writes = matches!(cli.command, Command::Deploy { .. } | Command::Compose { .. } | Command::Rm { .. });
    if cli.global.fleet.is_some() && !writes {
        return Err(Failure(
            "--fleet writes a fleet's desired state: deploy, compose and rm take it; ask a node (--url) for the rest"
                .into(),
        ));
    }
    if cli.global.tenant.is_some() && cli.global.fleet.is_none() {
        return Err(Failure("--tenant goes with --fleet (a node knows the tenant by its token)".into()));
    }
    match cli.command {
        Command::Deploy { path, name, engine, inputs, outputs, memory, timeout_ms } => {
            let overrides = Overrides {
                name,
                engine,
                inputs: inputs.as_deref().map(split_list),
                outputs: outputs.as_deref().map(split_list),
                memory,
                timeout_ms,
            };
            commands::deploy(ui, &sources(&cli.global)?, &path, &overrides)
        }
        Command::Compose { file, name } => commands::compose(ui, &sources(&cli.global)?, &file, name.as_deref()),
        Command::Invoke { name, sets, raw, out, binary } => {
            commands::invoke(ui, &sources(&cli.global)?, &commands::Invocation { name, sets, raw, out, binary })
        }
        Command::List => commands::list(ui, &sources(&cli.global)?.client(Role::Tenant)?),
        Command::Get { name } => commands::get(ui, &sources(&cli.global)?.client(Role::Tenant)?, &name),
        Command::Rm { name } => {
            let sources = sources(&cli.global)?;
            match &sources.fleet {
                Some(fleet) => commands::remove_from_fleet(ui, fleet, &name),
                None => commands::remove(ui, &sources.client(Role::Tenant)?, &name),
            }
        }
        Command::Health => commands::health(ui, &sources(&cli.global)?.client(Role::Anyone)?),
        Command::Metrics => commands::metrics(ui, &sources(&cli.global)?.client(Role::Operator)?),
        Command::New { name, template, dir, sdk_path, sdk_git, sdk_rev, sdk_branch } => {
            let sdk = match (sdk_path, sdk_git) {
                (Some(path), _) => Sdk::Path(std::path::absolute(&path)?),
                (None, Some(url)) => Sdk::Git { url, rev: sdk_rev, branch: sdk_branch },
                (None, None) => Sdk::Path(pappus::new::built_from_sdk().ok_or_else(|| {
                    Failure(
                        "where is the SDK? This pappus was not installed from a checkout that is still there: \
                         give --sdk-path DIR (a checkout's sdk/ folder) or --sdk-git URL"
                            .to_string(),
                    )
                })?),
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from(".")).join(&name);
            let files = pappus::new::create(ui, &dir, &name, Template::parse(&template)?, &sdk)?;
            let text = format!(
                "{}\nnext: cd {} && cargo test && pappus deploy .",
                files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join("\n"),
                pappus::shell_quote(&dir.display().to_string())
            );
            let json = serde_json::json!({
                "dir": dir.display().to_string(),
                "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "sdk": sdk.dependency(),
            });
            ui.emit(text, &json);
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "pappus", &mut std::io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pappus").chain(words.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
        let help = Cli::command().render_help().to_string();
        for command in ["deploy", "compose", "invoke", "list", "get", "rm", "health", "metrics", "new", "completions"] {
            assert!(help.contains(&format!("  {command} ")), "{command} missing from --help:\n{help}");
        }
    }

    #[test]
    fn invoke_flags() {
        let cli = parse(&["invoke", "wc", "--set", "text=@a.txt", "--set=text=b", "--binary", "--out", "o"]).unwrap();
        let Command::Invoke { name, sets, raw, out, binary } = cli.command else { panic!("{cli:?}") };
        assert_eq!(
            (name.as_str(), sets.as_slice()),
            ("wc", ["text=@a.txt".to_string(), "text=b".to_string()].as_slice())
        );
        assert_eq!((raw, out, binary), (None, Some(PathBuf::from("o")), true));
        assert!(parse(&["invoke", "wc", "--raw", "x", "--set", "a=b"]).is_err(), "--raw goes alone");
        assert!(parse(&["invoke"]).is_err(), "a name is needed");
    }

    #[test]
    fn fleet_flags() {
        let cli = parse(&["rm", "upper", "--fleet", "http://10.77.0.1:2379", "--tenant", "acme"]).unwrap();
        assert_eq!(cli.global.fleet.as_deref(), Some("http://10.77.0.1:2379"));
        assert_eq!(cli.global.tenant.as_deref(), Some("acme"));
        let sources = sources(&cli.global).unwrap();
        assert_eq!(sources.fleet.as_ref().map(|f| f.tenant.as_str()), Some("acme"));
        let ui = Ui::new("pappus", "pappus");
        let e = run(&ui, parse(&["list", "--fleet", "http://10.77.0.1:2379"]).unwrap()).unwrap_err();
        assert!(e.0.contains("deploy, compose and rm"), "{}", e.0);
        let e = run(&ui, parse(&["rm", "x", "--tenant", "acme"]).unwrap()).unwrap_err();
        assert!(e.0.contains("--tenant goes with --fleet"), "{}", e.0);
        assert!(pappus::fleet::Fleet::new("http://10.77.0.1:2379", "bad tenant!").is_err());
        assert!(pappus::fleet::Fleet::new("https://10.77.0.1:2379", "dev").is_err());
    }

    #[test]
    fn deploy_flags() {
        let cli =
            parse(&["deploy", "functions/matmul", "--memory", "32MiB", "--timeout-ms", "50", "--inputs", ""]).unwrap();
        let Command::Deploy { path, memory, timeout_ms, inputs, outputs, .. } = cli.command else { panic!() };
        assert_eq!(path, PathBuf::from("functions/matmul"));
        assert_eq!(
            (memory.as_deref(), timeout_ms, inputs.as_deref(), outputs),
            (Some("32MiB"), Some(50), Some(""), None)
        );
        assert_eq!(split_list(""), Vec::<String>::new(), "--inputs '' is no input set");
        let e = parse(&["deploy", "x", "--timeout-ms", "soon"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["compose", "c.pappus", "--inputs", "a"]).is_err());
        assert!(parse(&["get", "a", "b"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["--json", "list", "--url", "http://h:1", "--token", "t"]).unwrap();
        assert!(cli.global.json);
        assert_eq!((cli.global.url.as_deref(), cli.global.token.as_deref()), (Some("http://h:1"), Some("t")));
        let cli = parse(&["metrics"]).unwrap();
        assert!(!cli.global.json && cli.global.url.is_none());
    }

    #[test]
    fn new_flags() {
        let cli = parse(&["new", "my-fn", "--sdk-git", "https://g/p", "--sdk-rev", "v1"]).unwrap();
        let Command::New { name, template, sdk_git, sdk_rev, .. } = cli.command else { panic!() };
        assert_eq!((name.as_str(), template.as_str()), ("my-fn", "rust"));
        assert_eq!((sdk_git.as_deref(), sdk_rev.as_deref()), (Some("https://g/p"), Some("v1")));
        assert!(parse(&["new", "f", "--template", "cobol"]).is_err());
        assert!(parse(&["new", "f", "--sdk-rev", "v1"]).is_err(), "--sdk-rev needs --sdk-git");
        assert!(parse(&["new", "f", "--sdk-path", "s", "--sdk-git", "u"]).is_err());
        assert!(parse(&["new", "f", "--sdk-git", "u", "--sdk-rev", "a", "--sdk-branch", "b"]).is_err());
    }

    #[test]
    fn completions() {
        assert!(parse(&["completions", "bash"]).is_ok());
        assert!(parse(&["completions", "tcsh"]).is_err());
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "pappus", &mut script);
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("deploy") && script.contains("--set"), "{script}");
    }
}
