//! Sets on the command line: `--set A=@file` / `--set A=text` into input sets, and output sets
//! shown on a terminal or written to files.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use model::{Item, Set};

use crate::human_bytes;

/// Where an item's bytes come from: `@path`, `@-` (stdin), or the text itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Stdin,
    Text(String),
}

impl Source {
    pub fn parse(value: &str) -> Source {
        match value.strip_prefix('@') {
            Some("-") => Source::Stdin,
            Some(path) => Source::File(PathBuf::from(path)),
            None => Source::Text(value.to_string()),
        }
    }

    /// The bytes, from the file, stdin or the text.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Source::File(path) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
            Source::Stdin => {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)
                    .map_err(|e| format!("cannot read stdin: {e}"))?;
                Ok(data)
            }
            Source::Text(text) => Ok(text.clone().into_bytes()),
        }
    }
}

/// One `--set SET[:KEY]=VALUE`.
#[derive(Debug, PartialEq, Eq)]
pub struct SetArg {
    pub set: String,
    pub key: Option<u64>,
    pub source: Source,
}

impl SetArg {
    pub fn parse(text: &str) -> Result<SetArg, String> {
        let (set, value) = text.split_once('=').ok_or_else(|| {
            format!("--set {text:?}: write SET=@file, SET=@- (stdin) or SET=text, e.g. --set lines=@input.txt")
        })?;
        // `SET:KEY` gives the item a key (for `keyed` distribution and joins).
        let (set, key) = match set.rsplit_once(':') {
            Some((name, key)) if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) => {
                (name, Some(key.parse::<u64>().map_err(|_| format!("--set {text:?}: key {key} is too large"))?))
            }
            _ => (set, None),
        };
        if set.is_empty() {
            return Err(format!("--set {text:?}: no set name before '='"));
        }
        if value == "@" {
            return Err(format!("--set {text:?}: no file name after '@'"));
        }
        Ok(SetArg { set: set.to_string(), key, source: Source::parse(value) })
    }
}

/// The input sets, in the order their names first appear. An item from a file is named after
/// the file; any other is named by its position in its set (`0`, `1`, …).
pub fn build_sets(
    args: &[SetArg],
    read: &mut dyn FnMut(&Source) -> Result<Vec<u8>, String>,
) -> Result<Vec<Set>, String> {
    if args.iter().filter(|a| a.source == Source::Stdin).count() > 1 {
        return Err("stdin (@-) can feed one item only".into());
    }
    let mut sets: Vec<Set> = Vec::new();
    for arg in args {
        let index = match sets.iter().position(|s| s.name == arg.set) {
            Some(index) => index,
            None => {
                sets.push(Set::new(arg.set.clone()));
                sets.len() - 1
            }
        };
        let set = &mut sets[index];
        let name = match &arg.source {
            Source::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            Source::Stdin | Source::Text(_) => set.items.len().to_string(),
        };
        let data = read(&arg.source)?;
        set.items.push(Item { name: name.into(), key: arg.key, data: data.into() });
    }
    Ok(sets)
}

/// Text longer than this is not printed (`--out` writes it).
const SHOWN_TEXT: usize = 160;

/// Output sets for a terminal: one line per set, one per item with its name, key and size, and
/// its text when it is short UTF-8.
pub fn format_sets(sets: &[Set]) -> String {
    let mut out = String::new();
    if sets.is_empty() {
        out.push_str("(no output sets)\n");
    }
    for set in sets {
        let count = set.items.len();
        let _ = writeln!(out, "{} ({count} item{})", set.name, if count == 1 { "" } else { "s" });
        for (i, item) in set.items.iter().enumerate() {
            let _ = writeln!(out, "  {}", describe_item(i, item));
        }
    }
    out
}

/// `#0 "x" key=1, 5B: "hello"`.
pub fn describe_item(index: usize, item: &Item) -> String {
    let mut line = format!("#{index} {:?}", item.name);
    if let Some(key) = item.key {
        let _ = write!(line, " key={key}");
    }
    let size = human_bytes(item.data.len() as u64);
    match std::str::from_utf8(&item.data) {
        Ok(text) if text.len() <= SHOWN_TEXT => {
            let _ = write!(line, ", {size}: {text:?}");
        }
        Ok(_) => {
            let _ = write!(line, ", {size} of text (--out DIR writes it)");
        }
        Err(_) => {
            let _ = write!(line, ", {size} binary (--out DIR writes it)");
        }
    }
    line
}

/// A name usable as one path component as it is, or `None`.
fn plain_file_name(name: &str) -> Option<&str> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    (!bad).then_some(name)
}

/// The file name of each item of a set: its own name when that is a plain file name not taken
/// yet, else its position (`3`, or `3-name` for a repeated name).
pub fn item_file_names(set: &Set) -> Vec<String> {
    let mut used = BTreeSet::new();
    let mut names = Vec::with_capacity(set.items.len());
    for (i, item) in set.items.iter().enumerate() {
        let mut candidates = Vec::new();
        if let Some(name) = plain_file_name(&item.name) {
            candidates.push(name.to_string());
            candidates.push(format!("{i}-{name}"));
        }
        candidates.push(i.to_string());
        let mut chosen = candidates.into_iter().find(|c| !used.contains(c)).unwrap_or_else(|| i.to_string());
        while used.contains(&chosen) {
            chosen.push('_');
        }
        used.insert(chosen.clone());
        names.push(chosen);
    }
    names
}

/// The folder a set's items go to under `--out DIR`.
pub fn set_dir_name(set: &str) -> String {
    match plain_file_name(set) {
        Some(name) => name.to_string(),
        None => set.replace(['/', '\\', '\0'], "_").replace("..", "__"),
    }
}

/// One item written by [`write_sets`].
#[derive(Debug, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub set: String,
    /// The item's position in its set.
    pub index: usize,
    pub name: String,
    pub key: Option<u64>,
    pub bytes: u64,
}

impl Written {
    /// The line for the user: `out/r.txt (#0 "r.txt", 2B, key 3)`.
    pub fn line(&self) -> String {
        let key = self.key.map(|k| format!(", key {k}")).unwrap_or_default();
        format!("{} (#{} {:?}, {}{key})", self.path.display(), self.index, self.name, human_bytes(self.bytes))
    }
}

/// Writes every item to `dir/<set>/<item>`; returns what went where.
pub fn write_sets(sets: &[Set], dir: &Path) -> Result<Vec<Written>, String> {
    let mut written = Vec::new();
    for set in sets {
        let set_dir = dir.join(set_dir_name(&set.name));
        std::fs::create_dir_all(&set_dir).map_err(|e| format!("cannot create {}: {e}", set_dir.display()))?;
        for ((item, file), index) in set.items.iter().zip(item_file_names(set)).zip(0..) {
            let path = set_dir.join(file);
            std::fs::write(&path, &*item.data).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            written.push(Written {
                path,
                set: set.name.to_string(),
                index,
                name: item.name.to_string(),
                key: item.key,
                bytes: item.data.len() as u64,
            });
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, key: Option<u64>, data: &[u8]) -> Item {
        Item { name: name.into(), key, data: data.into() }
    }

    #[test]
    fn set_arguments() {
        assert_eq!(
            SetArg::parse("lines=@dir/in.txt").unwrap(),
            SetArg { set: "lines".into(), key: None, source: Source::File("dir/in.txt".into()) }
        );
        assert_eq!(
            SetArg::parse("A=x=1").unwrap(),
            SetArg { set: "A".into(), key: None, source: Source::Text("x=1".into()) }
        );
        assert_eq!(
            SetArg::parse("A:7=").unwrap(),
            SetArg { set: "A".into(), key: Some(7), source: Source::Text("".into()) }
        );
        assert_eq!(SetArg::parse("a:b=@-").unwrap(), SetArg { set: "a:b".into(), key: None, source: Source::Stdin });
        assert!(SetArg::parse("A").unwrap_err().contains("SET=@file"));
        assert!(SetArg::parse("=x").is_err());
        assert!(SetArg::parse(":3=x").is_err());
        assert!(SetArg::parse("A=@").is_err());
        assert!(SetArg::parse("A:99999999999999999999=x").unwrap_err().contains("too large"));
    }

    #[test]
    fn building_sets() {
        let args: Vec<SetArg> =
            ["A=one", "B=@/tmp/x/in.csv", "A:5=two", "A=@data.bin"].iter().map(|a| SetArg::parse(a).unwrap()).collect();
        let mut read = |source: &Source| match source {
            Source::Text(t) => Ok(t.clone().into_bytes()),
            Source::File(p) => Ok(format!("<{}>", p.display()).into_bytes()),
            Source::Stdin => Err("no stdin here".to_string()),
        };
        let sets = build_sets(&args, &mut read).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].name, "A");
        assert_eq!(
            sets[0].items,
            [item("0", None, b"one"), item("1", Some(5), b"two"), item("data.bin", None, b"<data.bin>")]
        );
        assert_eq!(sets[1].items, [item("in.csv", None, b"</tmp/x/in.csv>")]);
        let twice = [SetArg::parse("A=@-").unwrap(), SetArg::parse("B=@-").unwrap()];
        assert!(build_sets(&twice, &mut read).unwrap_err().contains("one item"));
        let unreadable = [SetArg::parse("A=@-").unwrap()];
        assert_eq!(build_sets(&unreadable, &mut read).unwrap_err(), "no stdin here");
    }

    #[test]
    fn formatting() {
        let sets = vec![
            Set {
                name: "counts".into(),
                items: vec![
                    item("x", Some(1), b"hello\nworld"),
                    item("", None, &[0xff, 0, 1]),
                    item("big", None, &[b'a'; 500]),
                ],
            },
            Set::new("empty"),
        ];
        assert_eq!(
            format_sets(&sets),
            "counts (3 items)\n  #0 \"x\" key=1, 11B: \"hello\\nworld\"\n  #1 \"\", 3B binary (--out DIR writes it)\n  \
             #2 \"big\", 500B of text (--out DIR writes it)\nempty (0 items)\n"
        );
        assert_eq!(format_sets(&[]), "(no output sets)\n");
    }

    #[test]
    fn file_names() {
        let set = Set {
            name: "s".into(),
            items: vec![
                item("a.txt", None, b""),
                item("", None, b""),
                item("a.txt", None, b""),
                item("../etc", None, b""),
                item("1", None, b""),
                item("..", None, b""),
            ],
        };
        assert_eq!(item_file_names(&set), ["a.txt", "1", "2-a.txt", "3", "4-1", "5"]);
        assert_eq!(set_dir_name("out"), "out");
        assert_eq!(set_dir_name("a/../b"), "a____b");
        assert_eq!(set_dir_name(".."), "__");
    }

    #[test]
    fn writing() {
        let dir = std::env::temp_dir().join(format!("pappus-unit-{}", std::process::id())).join("sets-out");
        let _ = std::fs::remove_dir_all(&dir);
        let sets = vec![Set { name: "out".into(), items: vec![item("r.txt", Some(3), b"hi"), item("", None, b"x")] }];
        let written = write_sets(&sets, &dir).unwrap();
        assert_eq!(std::fs::read(dir.join("out/r.txt")).unwrap(), b"hi");
        assert_eq!(std::fs::read(dir.join("out/1")).unwrap(), b"x");
        let line = written[0].line();
        assert!(line.ends_with("out/r.txt (#0 \"r.txt\", 2B, key 3)"), "{line}");
        assert_eq!((written[1].set.as_str(), written[1].index, written[1].bytes), ("out", 1, 1));
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}
