//! A small command-line parser: `--flag`, `--key value`, `--key=value`, and positionals.

use std::collections::BTreeMap;

/// What one subcommand accepts.
pub struct Spec {
    /// Flags that take a value.
    pub values: &'static [&'static str],
    /// Flags that take none.
    pub switches: &'static [&'static str],
    /// How many positionals at most.
    pub max_positionals: usize,
}

/// Parsed arguments of one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    pub positionals: Vec<String>,
    /// Every value given for each flag, in order (a flag may be repeated, e.g. `--set`).
    values: BTreeMap<String, Vec<String>>,
    switches: Vec<String>,
}

impl Args {
    pub fn parse(spec: &Spec, words: &[String]) -> Result<Args, String> {
        let mut args = Args::default();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let Some(flag) = word.strip_prefix("--") else {
                if word.starts_with('-') && word.len() > 1 {
                    return Err(format!("unknown option {word}"));
                }
                args.positionals.push(word.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag, None),
            };
            if spec.values.contains(&name) {
                let value = match inline {
                    Some(value) => value,
                    None => words.next().cloned().ok_or_else(|| format!("--{name} needs a value"))?,
                };
                args.values.entry(name.to_string()).or_default().push(value);
            } else if spec.switches.contains(&name) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                args.switches.push(name.to_string());
            } else {
                return Err(format!("unknown option --{name}"));
            }
        }
        if args.positionals.len() > spec.max_positionals {
            return Err(format!("unexpected argument {:?}", args.positionals[spec.max_positionals]));
        }
        Ok(args)
    }

    /// The flag's value; the last one when it was given more than once.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a repeatable flag, in the order given.
    pub fn values(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// A value parsed as `T`, with the flag's name in the error.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.value(name)
            .map(|v| v.parse::<T>().map_err(|_| format!("--{name}: {v:?} is not a valid value")))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec { values: &["port", "arch"], switches: &["no-build"], max_positionals: 1 };

    fn parse(words: &[&str]) -> Result<Args, String> {
        Args::parse(&SPEC, &words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_values() {
        let a = parse(&["--port", "9000", "--arch=aarch64", "--no-build", "boot"]).unwrap();
        assert_eq!(a.value("port"), Some("9000"));
        assert_eq!(a.parsed::<u16>("port").unwrap(), Some(9000));
        assert_eq!(a.value("arch"), Some("aarch64"));
        assert!(a.switch("no-build"));
        assert_eq!(a.positionals, ["boot"]);
    }

    #[test]
    fn repeated_values() {
        let a = parse(&["--arch", "x86_64", "--arch=aarch64"]).unwrap();
        assert_eq!(a.value("arch"), Some("aarch64"), "the last one wins");
        assert_eq!(a.values("arch"), ["x86_64", "aarch64"]);
        assert!(a.values("port").is_empty());
    }

    #[test]
    fn errors() {
        assert!(parse(&["--port"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--colour", "red"]).unwrap_err().contains("--colour"));
        assert!(parse(&["--no-build=1"]).is_err());
        assert!(parse(&["-x"]).is_err());
        assert!(parse(&["a", "b"]).unwrap_err().contains("\"b\""));
        assert!(parse(&["--port", "http"]).unwrap().parsed::<u16>("port").is_err());
    }
}
