//! Where to connect and as whom. Each setting comes from the first of these that has it:
//!
//! 1. the command line (`--url`, `--token`);
//! 2. the environment (`PAPPUS_URL`, `PAPPUS_TOKEN`, `PAPPUS_OPERATOR_TOKEN`);
//! 3. the user's config file, `$XDG_CONFIG_HOME/pappus/config.toml` or
//!    `~/.config/pappus/config.toml` (`url`, `token`, `operator_token`);
//! 4. the defaults: `http://127.0.0.1:8080`, and inside a Pappus checkout the tokens of the dev
//!    configuration that `cargo xtask run` wrote (`target/pappus-dev.conf`).
//!
//! `--token` is the token of the command's role: the tenant's for the API, the operator's for
//! `metrics`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::Client;
use crate::{Failure, Result};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The dev configuration's file name in the checkout's target folder.
pub const DEV_CONF: &str = "pappus-dev.conf";

/// Whose token a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A tenant's (`/v1`).
    Tenant,
    /// The operator's (`/metrics`).
    Operator,
    /// None (`/healthz`).
    Anyone,
}

/// One source's settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub url: Option<String>,
    pub token: Option<String>,
    pub operator_token: Option<String>,
}

impl Settings {
    /// `PAPPUS_URL`, `PAPPUS_TOKEN`, `PAPPUS_OPERATOR_TOKEN` (an empty value counts as unset).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Settings {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        Settings { url: get("PAPPUS_URL"), token: get("PAPPUS_TOKEN"), operator_token: get("PAPPUS_OPERATOR_TOKEN") }
    }

    /// A config file's text; a misspelt key is an error, not a silently ignored setting.
    pub fn parse_file(text: &str) -> std::result::Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The tokens of a boot configuration (`tenant <name> <token>`, `operator <token>`).
    pub fn from_boot_config(text: &str) -> Settings {
        Settings { url: None, token: first_token(text.as_bytes()), operator_token: operator_token(text.as_bytes()) }
    }
}

/// The user's config file: `$XDG_CONFIG_HOME/pappus/config.toml` when that variable is an
/// absolute path (the XDG rule), else `$HOME/.config/pappus/config.toml`.
pub fn config_path(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = match xdg_config_home.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("pappus").join("config.toml"))
}

/// The dev configuration of the Pappus checkout that `start` is in, if it is in one: the
/// checkout's target folder (`$CARGO_TARGET_DIR` when set) holds it.
pub fn find_dev_conf(start: &Path, cargo_target_dir: Option<OsString>) -> Option<PathBuf> {
    let root = start.ancestors().find(|dir| is_checkout(dir))?;
    let target = match cargo_target_dir.filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    Some(target.join(DEV_CONF))
}

/// Whether `dir` is the root of a Pappus source tree.
fn is_checkout(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("build/pappus/Cargo.toml").is_file() && dir.join("kernel").is_dir()
}

/// Every source of settings, gathered once.
#[derive(Debug, Default)]
pub struct Sources {
    pub flags: Settings,
    pub env: Settings,
    pub file: Settings,
    /// The user's config file (whether or not it exists), for messages.
    pub file_path: Option<PathBuf>,
    pub dev: Settings,
    /// The dev configuration it was read from (whether or not it exists), for messages.
    pub dev_path: Option<PathBuf>,
    /// `--fleet`: deploy, compose and rm write a fleet's desired state instead (crate::fleet).
    pub fleet: Option<crate::fleet::Fleet>,
}

impl Sources {
    /// Reads the environment, the user's config file and the dev configuration at `dev_path`.
    /// A config file that does not parse is an error; a missing one is no settings.
    pub fn gather(flags: Settings, dev_path: Option<PathBuf>) -> Result<Sources> {
        let env = Settings::from_env(|name| std::env::var(name).ok());
        let file_path = config_path(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME"));
        let file = match &file_path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Settings::parse_file(&text).map_err(|e| Failure(format!("{}: {e}", path.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
                Err(e) => return Err(Failure(format!("cannot read {}: {e}", path.display()))),
            },
            None => Settings::default(),
        };
        let dev = dev_path
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .map(|text| Settings::from_boot_config(&text))
            .unwrap_or_default();
        Ok(Sources { flags, env, file, file_path, dev, dev_path, fleet: None })
    }

    fn layers(&self) -> [&Settings; 4] {
        [&self.flags, &self.env, &self.file, &self.dev]
    }

    pub fn url(&self) -> String {
        self.layers().iter().find_map(|s| s.url.clone()).unwrap_or_else(|| DEFAULT_URL.to_string())
    }

    /// The token for `role` (empty for [`Role::Anyone`]).
    pub fn token(&self, role: Role) -> Result<String> {
        let found = match role {
            Role::Anyone => return Ok(String::new()),
            Role::Tenant => self.layers().iter().find_map(|s| s.token.clone()),
            // `--token` is the command's own token; the other sources name the operator's apart.
            Role::Operator => self
                .flags
                .token
                .clone()
                .or_else(|| [&self.env, &self.file, &self.dev].iter().find_map(|s| s.operator_token.clone())),
        };
        found.ok_or_else(|| Failure(self.no_token(role)))
    }

    fn no_token(&self, role: Role) -> String {
        let (what, var, key, line) = match role {
            Role::Operator => ("no operator token", "PAPPUS_OPERATOR_TOKEN", "operator_token", "operator"),
            _ => ("no token", "PAPPUS_TOKEN", "token", "dev"),
        };
        let file = match &self.file_path {
            Some(path) => format!(", or put `{key} = \"…\"` in {}", path.display()),
            None => String::new(),
        };
        let dev = match &self.dev_path {
            Some(path) => format!("start `cargo xtask run`, which writes its {line} token to {}", path.display()),
            None => format!(
                "run inside a Pappus checkout where `cargo xtask run` wrote its {line} token to target/{DEV_CONF}"
            ),
        };
        format!("{what}: pass --token or set {var}{file}; or {dev}")
    }

    /// A client for `role`.
    pub fn client(&self, role: Role) -> Result<Client> {
        Ok(Client::new(&self.url(), &self.token(role)?)?)
    }
}

/// The first tenant's token in a boot configuration.
pub fn first_token(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text).lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("tenant")).then(|| words.nth(1).map(str::to_string)).flatten()
    })
}

/// The operator token of a boot configuration.
pub fn operator_token(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text).lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("operator")).then(|| words.next().map(str::to_string)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(url: Option<&str>, token: Option<&str>, operator: Option<&str>) -> Settings {
        Settings {
            url: url.map(str::to_string),
            token: token.map(str::to_string),
            operator_token: operator.map(str::to_string),
        }
    }

    const DEV: &str = "# made by run\ntenant dev pappus-dev-0123456789abcdef\noperator pappus-ops-1\n";

    fn sources(flags: Settings, env: Settings, file: Settings, dev: Option<&str>) -> Sources {
        Sources {
            flags,
            env,
            file,
            file_path: Some("/home/u/.config/pappus/config.toml".into()),
            dev: dev.map(Settings::from_boot_config).unwrap_or_default(),
            dev_path: Some("/src/pappus/target/pappus-dev.conf".into()),
            fleet: None,
        }
    }

    #[test]
    fn precedence() {
        let none = Settings::default;
        // Defaults: the URL, and the dev configuration's tokens.
        let src = sources(none(), none(), none(), Some(DEV));
        assert_eq!(src.url(), DEFAULT_URL);
        assert_eq!(src.token(Role::Tenant).unwrap(), "pappus-dev-0123456789abcdef");
        assert_eq!(src.token(Role::Operator).unwrap(), "pappus-ops-1");
        assert_eq!(src.token(Role::Anyone).unwrap(), "");
        // The config file beats the dev configuration.
        let file = s(Some("http://file:1"), Some("filetok"), Some("fileops"));
        let src = sources(none(), none(), file.clone(), Some(DEV));
        assert_eq!((src.url(), src.token(Role::Tenant).unwrap()), ("http://file:1".into(), "filetok".into()));
        assert_eq!(src.token(Role::Operator).unwrap(), "fileops");
        // The environment beats the file, setting by setting.
        let src = sources(none(), s(None, Some("envtok"), None), file.clone(), Some(DEV));
        assert_eq!((src.url(), src.token(Role::Tenant).unwrap()), ("http://file:1".into(), "envtok".into()));
        assert_eq!(src.token(Role::Operator).unwrap(), "fileops");
        // Flags beat everything; --token is the operator's for an operator command.
        let src =
            sources(s(Some("http://flag:2"), Some("flagtok"), None), s(Some("http://env:3"), None, None), file, None);
        assert_eq!(src.url(), "http://flag:2");
        assert_eq!(src.token(Role::Tenant).unwrap(), "flagtok");
        assert_eq!(src.token(Role::Operator).unwrap(), "flagtok");
    }

    #[test]
    fn missing_tokens_say_where_to_put_one() {
        let src = sources(Settings::default(), Settings::default(), Settings::default(), None);
        let e = src.token(Role::Tenant).unwrap_err().0;
        assert!(e.starts_with("no token: pass --token or set PAPPUS_TOKEN"), "{e}");
        assert!(e.contains("/home/u/.config/pappus/config.toml") && e.contains("cargo xtask run"), "{e}");
        assert!(e.contains("/src/pappus/target/pappus-dev.conf"), "{e}");
        let e = src.token(Role::Operator).unwrap_err().0;
        assert!(e.starts_with("no operator token: pass --token or set PAPPUS_OPERATOR_TOKEN"), "{e}");
        assert!(e.contains("operator_token = "), "{e}");
        let outside = Sources { dev_path: None, file_path: None, ..src };
        let e = outside.token(Role::Tenant).unwrap_err().0;
        assert!(e.contains("inside a Pappus checkout"), "{e}");
    }

    #[test]
    fn environment() {
        let env = |name: &str| match name {
            "PAPPUS_URL" => Some("http://h:1".to_string()),
            "PAPPUS_TOKEN" => Some(String::new()),
            "PAPPUS_OPERATOR_TOKEN" => Some("ops".to_string()),
            _ => None,
        };
        assert_eq!(Settings::from_env(env), s(Some("http://h:1"), None, Some("ops")), "empty is unset");
    }

    #[test]
    fn config_files() {
        let text = "url = \"http://10.0.0.5:8080\"\ntoken = \"t\"\n# a comment\noperator_token = \"o\"\n";
        assert_eq!(Settings::parse_file(text).unwrap(), s(Some("http://10.0.0.5:8080"), Some("t"), Some("o")));
        assert_eq!(Settings::parse_file("").unwrap(), Settings::default());
        let e = Settings::parse_file("tokn = \"t\"").unwrap_err();
        assert!(e.contains("unknown field `tokn`"), "{e}");
        assert!(Settings::parse_file("url = 8080").is_err());
    }

    #[test]
    fn config_file_location() {
        let p = |x: Option<&str>, h: Option<&str>| config_path(x.map(Into::into), h.map(Into::into));
        assert_eq!(p(Some("/xdg"), Some("/home/u")).unwrap(), Path::new("/xdg/pappus/config.toml"));
        assert_eq!(p(None, Some("/home/u")).unwrap(), Path::new("/home/u/.config/pappus/config.toml"));
        // A relative XDG_CONFIG_HOME is to be ignored (XDG Base Directory specification).
        assert_eq!(p(Some("rel"), Some("/home/u")).unwrap(), Path::new("/home/u/.config/pappus/config.toml"));
        assert_eq!(p(Some(""), None), None);
    }

    #[test]
    fn dev_configuration_inside_a_checkout() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
        let inner = checkout.join("build/pappus/src");
        assert_eq!(find_dev_conf(&inner, None).unwrap(), checkout.join("target/pappus-dev.conf"));
        assert_eq!(find_dev_conf(&inner, Some("/t".into())).unwrap(), Path::new("/t/pappus-dev.conf"));
        assert_eq!(find_dev_conf(&checkout, Some("tgt".into())).unwrap(), checkout.join("tgt/pappus-dev.conf"));
        assert_eq!(find_dev_conf(Path::new("/"), None), None);
    }

    #[test]
    fn boot_configuration_tokens() {
        assert_eq!(first_token(DEV.as_bytes()).as_deref(), Some("pappus-dev-0123456789abcdef"));
        assert_eq!(operator_token(DEV.as_bytes()).as_deref(), Some("pappus-ops-1"));
        assert_eq!(first_token(b"operator x\n"), None);
        assert_eq!(operator_token(b"tenant a b\n"), None);
    }
}
