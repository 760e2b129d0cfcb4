//! Printer tests: the canonical form, and that printing then parsing gives back the program.

use dsl::parse;

fn canonical(src: &str) -> String {
    parse(src).unwrap().to_string()
}

#[test]
fn canonical_form() {
    let src = "// a comment goes away
function grep(lines)=>(matches);   function topk ( counts ) => ( top ) ;
composition top_errors (urls) => (report) { grep (lines = optional each urls) => (hits = matches);
  topk (counts = all hits, more = keyed hits) => (report = top) by more full counts cross x;
}
function last () => ();
composition empty () => () {}";
    assert_eq!(
        canonical(src),
        "function grep (lines) => (matches);
function topk (counts) => (top);

composition top_errors (urls) => (report) {
    grep (lines = optional each urls) => (hits = matches);
    topk (counts = all hits, more = keyed hits) => (report = top) by more full counts cross x;
}

function last () => ();

composition empty () => () {
}
"
    );
}

#[test]
fn canonical_form_is_a_fixed_point() {
    let once = canonical("composition c(a)=>(b){f(x=each a)=>(b=y)by x outer x;}function f(x)=>(y);");
    assert_eq!(canonical(&once), once);
    // Source order is kept: the composition printed first, as written.
    assert!(once.starts_with("composition c"), "{once}");
}

#[test]
fn diagnostic_display() {
    let d = dsl::Diagnostic::warning(dsl::Pos { line: 3, col: 17, offset: 40 }, "set `x` is never used");
    assert_eq!(d.to_string(), "3:17: set `x` is never used");
    assert_eq!(dsl::Severity::Warning.to_string(), "warning");
}
