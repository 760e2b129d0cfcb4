//! `target/bench/report.md`: every suite's figures beside their targets, a bar chart per suite.
//!
//! Each `BENCH` line a suite prints goes through [`record`], which also keeps it. When a suite
//! ends (or fails part-way), its figures are written to `target/bench/<suite>.json`, its chart
//! to `target/bench/<suite>.svg`, and `report.md` is made again from every `<suite>.json`
//! present, so figures from separate `cargo xtask bench <suite>` runs add up to one report.
//! The targets are issue 14's (`TARGETS`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::util::Result;

/// One `BENCH <name> <value> <unit>` figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    /// The value as printed (keeps the suite's own rounding).
    pub text: String,
    pub unit: String,
}

impl Figure {
    /// A `BENCH` line: `BENCH`, a name, a number and a unit of one or more words.
    pub fn parse_line(line: &str) -> Option<Figure> {
        let mut words = line.split_whitespace();
        if words.next()? != "BENCH" {
            return None;
        }
        let name = words.next()?.to_string();
        let text = words.next()?.to_string();
        let value: f64 = text.parse().ok().filter(|v: &f64| v.is_finite())?;
        let unit = words.collect::<Vec<_>>().join(" ");
        if unit.is_empty() {
            return None;
        }
        Some(Figure { name, value, text, unit })
    }
}

/// What one run of one suite measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteRun {
    pub suite: String,
    pub figures: Vec<Figure>,
    /// What went wrong (the suite's error), empty when it completed.
    pub problems: Vec<String>,
    /// Markdown the suite adds under its table (boot: the per-profile table).
    pub notes: String,
    /// When it ran (seconds since the Unix epoch) and at which commit (`git describe`).
    pub unix_time: u64,
    pub commit: String,
}

static RECORDED: Mutex<Vec<Figure>> = Mutex::new(Vec::new());
static NOTES: Mutex<String> = Mutex::new(String::new());

/// Prints `BENCH <name> <value> <unit>` and keeps it for the suite's report.
pub fn record(name: &str, value: impl std::fmt::Display, unit: &str) {
    let line = format!("BENCH {name} {value} {unit}");
    println!("{line}");
    match Figure::parse_line(&line) {
        Some(figure) => RECORDED.lock().unwrap_or_else(|e| e.into_inner()).push(figure),
        None => crate::util::say(format!("not a figure, left out of the report: {line}")),
    }
}

/// Markdown for the current suite's section of the report.
pub fn note(markdown: &str) {
    NOTES.lock().unwrap_or_else(|e| e.into_inner()).push_str(markdown);
}

/// The figures and notes recorded since the last call.
pub fn take() -> (Vec<Figure>, String) {
    let figures = std::mem::take(&mut *RECORDED.lock().unwrap_or_else(|e| e.into_inner()));
    let notes = std::mem::take(&mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()));
    (figures, notes)
}

/// Which side of its bound a figure must be on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

impl Bound {
    fn holds(self, value: f64) -> bool {
        match self {
            Bound::AtMost(b) => value <= b,
            Bound::AtLeast(b) => value >= b,
        }
    }

    fn limit(self) -> f64 {
        match self {
            Bound::AtMost(b) | Bound::AtLeast(b) => b,
        }
    }

    fn describe(self) -> String {
        match self {
            Bound::AtMost(b) => format!("≤ {}", number(b)),
            Bound::AtLeast(b) => format!("≥ {}", number(b)),
        }
    }
}

/// Issue 14's targets ("The lean path").
pub const TARGETS: &[(&str, Bound)] = &[
    ("net.echo64.instructions_per_request", Bound::AtMost(10_000.0)),
    ("e2e.matmul3.native.json.instructions_per_request", Bound::AtMost(30_000.0)),
    ("e2e.matmul3.wasm.json.instructions_per_request", Bound::AtMost(60_000.0)),
    ("native.mpk.noop.engine_instructions", Bound::AtMost(5_000.0)),
    ("native.paging.noop.engine_instructions", Bound::AtMost(10_000.0)),
    ("boot.instructions_to_ready", Bound::AtMost(2_000_000.0)),
    ("e2e.matmul3.native_over_wasm.1_clients", Bound::AtLeast(2.0)),
    ("e2e.matmul3.native_over_wasm.4_clients", Bound::AtLeast(2.0)),
    ("smp.matmul64.smp2_over_smp1", Bound::AtLeast(1.8)),
];

pub fn target(name: &str) -> Option<Bound> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Whether a figure meets its target (`None`: it has none).
pub fn met(figure: &Figure) -> Option<bool> {
    target(&figure.name).map(|b| b.holds(figure.value))
}

/// `1234567` as `1,234,567`; fractions as written, up to 2 decimals.
fn number(v: f64) -> String {
    if v.fract() != 0.0 {
        return format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let digits = format!("{}", v.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// The figure as printed, with thousands separators for whole numbers.
fn shown(f: &Figure) -> String {
    if f.text.contains('.') { f.text.clone() } else { number(f.value) }
}

/// The suites' runs saved under `dir`, in `order` (then any other, by name).
pub fn load_all(dir: &Path, order: &[&str]) -> Vec<SuiteRun> {
    let mut runs: Vec<SuiteRun> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice::<SuiteRun>(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    let rank = |s: &str| order.iter().position(|o| *o == s).unwrap_or(order.len());
    runs.sort_by(|a, b| (rank(&a.suite), &a.suite).cmp(&(rank(&b.suite), &b.suite)));
    runs
}

/// Saves `run` (`<suite>.json`) and makes `report.md` and every `<suite>.svg` again from every
/// suite saved in `dir`. Returns the report's path.
pub fn save(dir: &Path, run: &SuiteRun, order: &[&str]) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(run).map_err(|e| crate::util::Failure(e.to_string()))?;
    std::fs::write(dir.join(format!("{}.json", run.suite)), json)?;
    let runs = load_all(dir, order);
    for run in &runs {
        std::fs::write(dir.join(format!("{}.svg", run.suite)), chart(run))?;
    }
    let report = dir.join("report.md");
    std::fs::write(&report, report_md(&runs))?;
    Ok(report)
}

pub fn report_md(runs: &[SuiteRun]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Pappus benchmarks\n");
    let _ = writeln!(
        md,
        "Made by `cargo xtask bench <suite>` from the figures of every suite that has run \
         (`target/bench/<suite>.json`; `cargo xtask bench all` runs them all). Instruction \
         figures are guest instructions under `-icount shift=0` (TCG), exact and repeatable; \
         wall-clock figures (req/s, ratios of them) depend on the host and are comparable only \
         within one run. Targets are issue 14's.\n"
    );
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| figure | target | measured | |\n|---|---:|---:|---|");
    for (name, bound) in TARGETS {
        let found = runs.iter().flat_map(|r| &r.figures).find(|f| f.name == *name);
        let (value, status) = match found {
            Some(f) => (format!("{} {}", shown(f), f.unit), if bound.holds(f.value) { "met" } else { "**not met**" }),
            None => ("—".to_string(), "not measured"),
        };
        let _ = writeln!(md, "| `{name}` | {} | {value} | {status} |", bound.describe());
    }
    for run in runs {
        let _ = writeln!(md, "\n## {}\n", run.suite);
        let _ = writeln!(
            md,
            "`cargo xtask bench {}` at `{}`, {} (Unix time).\n",
            run.suite,
            if run.commit.is_empty() { "?" } else { &run.commit },
            run.unix_time
        );
        let _ = writeln!(md, "![{} figures]({}.svg)\n", run.suite, run.suite);
        let _ = writeln!(md, "| figure | value | unit | target | |\n|---|---:|---|---:|---|");
        for f in &run.figures {
            let (bound, status) = match (target(&f.name), met(f)) {
                (Some(b), Some(true)) => (b.describe(), "met"),
                (Some(b), _) => (b.describe(), "**not met**"),
                (None, _) => (String::new(), ""),
            };
            let _ = writeln!(md, "| `{}` | {} | {} | {bound} | {status} |", f.name, shown(f), f.unit);
        }
        if !run.notes.is_empty() {
            let _ = writeln!(md, "\n{}", run.notes.trim_end());
        }
        if !run.problems.is_empty() {
            let _ = writeln!(md, "\n**Problems**\n");
            for p in &run.problems {
                let _ = writeln!(md, "- {}", p.replace('\n', " "));
            }
        }
    }
    md
}

/// Text for SVG: `&`, `<`, `>`, `"` escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The suite's units, in the order their first figure came.
fn units(run: &SuiteRun) -> Vec<&str> {
    let mut units: Vec<&str> = Vec::new();
    for f in &run.figures {
        if !units.contains(&f.unit.as_str()) {
            units.push(&f.unit);
        }
    }
    units
}

/// A horizontal bar chart of the suite's figures, one panel per unit (each to its own scale): a
/// bar per figure, green where it meets its target, red where not, blue without one; a target
/// is a dashed line.
pub fn chart(run: &SuiteRun) -> String {
    const WIDTH: f64 = 960.0;
    const LABEL: f64 = 400.0;
    const BAR_H: f64 = 20.0;
    const GAP: f64 = 8.0;
    const HEADING: f64 = 30.0;
    const TOP: f64 = 36.0;
    let units = units(run);
    let height = TOP + units.len() as f64 * HEADING + run.figures.len().max(1) as f64 * (BAR_H + GAP) + 16.0;
    let span = WIDTH - LABEL - 110.0;
    let prefix = format!("{}.", run.suite);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">cargo xtask bench {} (green: target met, red: not met, dashed: target)</text>"#,
        escape(&run.suite)
    );
    if run.figures.is_empty() {
        let _ = writeln!(svg, r#"<text x="10" y="{}">no figures (see report.md)</text>"#, TOP + 16.0);
    }
    let mut y = TOP;
    for unit in units {
        let bars: Vec<&Figure> = run.figures.iter().filter(|f| f.unit == unit).collect();
        let max = bars
            .iter()
            .flat_map(|f| [f.value, target(&f.name).map_or(0.0, Bound::limit)])
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let _ = writeln!(svg, r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#, y + 20.0, escape(unit));
        y += HEADING;
        for f in bars {
            let w = (f.value.max(0.0) / max * span).max(1.0);
            let fill = match met(f) {
                Some(true) => "#3a9a4a",
                Some(false) => "#c8453c",
                None => "#3b73b9",
            };
            let label = f.name.strip_prefix(&prefix).unwrap_or(&f.name);
            let _ = writeln!(svg, r#"<text x="10" y="{:.1}">{}</text>"#, y + BAR_H * 0.7, escape(label));
            let _ = writeln!(svg, r#"<rect x="{LABEL}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{fill}"/>"#);
            let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, LABEL + w + 6.0, y + BAR_H * 0.7, shown(f));
            if let Some(b) = target(&f.name) {
                let x = LABEL + b.limit() / max * span;
                let _ = writeln!(
                    svg,
                    r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#000000" stroke-width="2" stroke-dasharray="4 3"/>"##,
                    y - 3.0,
                    y + BAR_H + 3.0
                );
            }
            y += BAR_H + GAP;
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// The commit the figures come from (`git describe --always --dirty`), or empty.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(crate::util::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(name: &str, text: &str, unit: &str) -> Figure {
        Figure::parse_line(&format!("BENCH {name} {text} {unit}")).unwrap()
    }

    fn run(suite: &str, figures: Vec<Figure>) -> SuiteRun {
        SuiteRun {
            suite: suite.into(),
            figures,
            problems: vec![],
            notes: String::new(),
            unix_time: 1,
            commit: "abc".into(),
        }
    }

    #[test]
    fn parses_bench_lines() {
        let f = Figure::parse_line("BENCH net.echo64.instructions_per_request 54321 instructions").unwrap();
        assert_eq!(
            (f.name.as_str(), f.value, f.text.as_str(), f.unit.as_str()),
            ("net.echo64.instructions_per_request", 54321.0, "54321", "instructions")
        );
        let f = Figure::parse_line("BENCH smp.fanout64.makespan_ms.smp2 812 ms").unwrap();
        assert_eq!(f.unit, "ms");
        assert_eq!(Figure::parse_line("BENCH a.b 1.25 x").unwrap().value, 1.25);
        assert_eq!(Figure::parse_line("BENCH a.b 3 guest instructions").unwrap().unit, "guest instructions");
        for bad in ["", "BENCH", "BENCH a.b", "BENCH a.b 12", "BENCH a.b twelve x", "BENCH a.b NaN x", "bench a.b 1 x"]
        {
            assert_eq!(Figure::parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn compares_with_targets() {
        assert_eq!(met(&fig("net.echo64.instructions_per_request", "10000", "instructions")), Some(true));
        assert_eq!(met(&fig("net.echo64.instructions_per_request", "10001", "instructions")), Some(false));
        assert_eq!(met(&fig("smp.matmul64.smp2_over_smp1", "1.80", "x")), Some(true));
        assert_eq!(met(&fig("smp.matmul64.smp2_over_smp1", "1.25", "x")), Some(false));
        assert_eq!(met(&fig("e2e.matmul3.native_over_wasm.4_clients", "0.37", "x")), Some(false));
        assert_eq!(met(&fig("net.echo64.keepalive_requests_per_s", "900", "req/s")), None);
        // Every target names a figure a suite prints under that name.
        for (name, _) in TARGETS {
            let suite = name.split('.').next().unwrap();
            assert!(crate::bench::SUITES.contains(&suite), "{name}");
        }
        assert_eq!(number(2_000_000.0), "2,000,000");
        assert_eq!(number(1.8), "1.8");
        assert_eq!(number(999.0), "999");
    }

    #[test]
    fn report_puts_figures_beside_targets() {
        let e2e = run(
            "e2e",
            vec![
                fig("e2e.matmul3.native.json.instructions_per_request", "228000", "instructions"),
                fig("e2e.matmul3.wasm.json.instructions_per_request", "59000", "instructions"),
                fig("e2e.matmul3.native_over_wasm.1_clients", "0.37", "x"),
            ],
        );
        let mut boot = run("boot", vec![fig("boot.instructions_to_ready", "7700000", "instructions")]);
        boot.notes = "| profile |\n|---|\n".into();
        boot.problems = vec!["aarch64 kernel:\nbuild failed".into()];
        let md = report_md(&[boot, e2e]);
        assert!(
            md.contains(
                "| `e2e.matmul3.native.json.instructions_per_request` | ≤ 30,000 | 228,000 instructions | **not met** |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `e2e.matmul3.wasm.json.instructions_per_request` | ≤ 60,000 | 59,000 instructions | met |")
        );
        assert!(md.contains("| `net.echo64.instructions_per_request` | ≤ 10,000 | — | not measured |"));
        assert!(md.contains("| `e2e.matmul3.native_over_wasm.1_clients` | 0.37 | x | ≥ 2 | **not met** |"));
        assert!(md.contains("![e2e figures](e2e.svg)") && md.contains("![boot figures](boot.svg)"));
        assert!(md.contains("| profile |") && md.contains("- aarch64 kernel: build failed"));
        assert!(md.find("## boot").unwrap() < md.find("## e2e").unwrap());
    }

    #[test]
    fn charts_are_well_formed_svg() {
        let r = run(
            "e2e",
            vec![
                fig("e2e.matmul3.native.json.instructions_per_request", "228000", "instructions"),
                fig("e2e.matmul3.wasm.raw.instructions_per_request", "50000", "instructions"),
                fig("e2e.matmul3.native_over_wasm.1_clients", "0.37", "x"),
                fig("e2e.<odd>&\"name\"", "1", "instructions"),
            ],
        );
        let svg = chart(&r);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let rects: Vec<_> = root.children().filter(|n| n.has_tag_name("rect")).collect();
        // The background, then one bar per figure: instructions first, then the ratio's panel.
        assert_eq!(rects.len(), 5);
        assert_eq!(rects[1].attribute("fill"), Some("#c8453c"));
        assert_eq!(rects[2].attribute("fill"), Some("#3b73b9"));
        assert_eq!(rects[3].attribute("fill"), Some("#3b73b9"));
        assert_eq!(rects[4].attribute("fill"), Some("#c8453c"));
        // Two dashed target lines: the native JSON figure's and the ratio's.
        assert_eq!(root.children().filter(|n| n.has_tag_name("line")).count(), 2);
        let headings: Vec<_> =
            root.children().filter(|n| n.attribute("font-weight") == Some("bold")).filter_map(|n| n.text()).collect();
        assert_eq!(headings[1..], ["instructions", "x"]);
        assert!(root.children().any(|n| n.text() == Some("<odd>&\"name\"")));
        let empty = chart(&run("smp", vec![]));
        assert!(
            roxmltree::Document::parse(&empty)
                .unwrap()
                .root_element()
                .children()
                .any(|n| n.text().is_some_and(|t| t.contains("no figures")))
        );
    }

    #[test]
    fn saved_runs_accumulate_into_one_report() {
        let dir = std::env::temp_dir().join(format!("pappus-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let order = ["boot", "net", "e2e"];
        save(
            &dir,
            &run("e2e", vec![fig("e2e.matmul3.native.json.instructions_per_request", "29000", "instructions")]),
            &order,
        )
        .unwrap();
        let report =
            save(&dir, &run("boot", vec![fig("boot.instructions_to_ready", "1900000", "instructions")]), &order)
                .unwrap();
        std::fs::write(dir.join("junk.json"), "not json").unwrap();
        let runs = load_all(&dir, &order);
        assert_eq!(runs.iter().map(|r| r.suite.as_str()).collect::<Vec<_>>(), ["boot", "e2e"]);
        let md = std::fs::read_to_string(report).unwrap();
        assert!(md.contains("| `boot.instructions_to_ready` | ≤ 2,000,000 | 1,900,000 instructions | met |"), "{md}");
        assert!(
            md.contains(
                "| `e2e.matmul3.native.json.instructions_per_request` | ≤ 30,000 | 29,000 instructions | met |"
            )
        );
        assert!(dir.join("boot.svg").exists() && dir.join("e2e.svg").exists());
        // A second run of a suite replaces its figures.
        save(
            &dir,
            &run("e2e", vec![fig("e2e.matmul3.native.json.instructions_per_request", "31000", "instructions")]),
            &order,
        )
        .unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.contains("31,000 instructions | **not met**") && !md.contains("29,000"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
