//! Bounded work: oversized programs are refused at once, and the largest accepted ones (valid or
//! pathological) parse and check in reasonable time without deep recursion.

use std::time::{Duration, Instant};

use dsl::{MAX_SOURCE_LEN, Signature, check, parse};

/// Generous, so a loaded shared machine running a debug build does not fail the test; a
/// super-linear parser would blow far past it at these sizes.
const SLOW: Duration = Duration::from_secs(20);

fn none(_: &str) -> Option<Signature> {
    None
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took < SLOW, "{what} took {took:?}");
    out
}

#[test]
fn ten_mebibytes_are_refused_quickly() {
    let src = "function f () => ();\n".repeat(10 * 1024 * 1024 / 21 + 1);
    let errors = timed("refuse 10 MiB", || parse(&src).unwrap_err());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].to_string(), format!("1:1: program is {} bytes, more than the limit of 1048576", src.len()));
    let start = Instant::now();
    let _ = parse(&src);
    assert!(start.elapsed() < Duration::from_millis(50), "refusing must not look at the text");
}

#[test]
fn limit_is_exact() {
    let mut src = String::from("function f () => ();");
    src.push_str(&" ".repeat(MAX_SOURCE_LEN - src.len()));
    assert!(parse(&src).is_ok());
    src.push(' ');
    assert!(parse(&src).is_err());
}

/// Builds a valid program just under the limit: a chain of applications through one
/// composition, so the checker also walks a dataflow path of tens of thousands of sets.
fn big_valid_program() -> (String, usize) {
    let mut src = String::from("function f (a) => (b);\ncomposition chain (s0) => (out) {\n");
    let mut n = 0;
    loop {
        let line = format!("    f (a = each s{n}) => (s{} = b);\n", n + 1);
        if src.len() + line.len() + 64 > MAX_SOURCE_LEN {
            break;
        }
        src.push_str(&line);
        n += 1;
    }
    src.push_str(&format!("    f (a = all s{n}) => (out = b);\n}}\n"));
    (src, n + 1)
}

#[test]
fn a_valid_mebibyte_program_parses_and_checks() {
    let (src, applications) = big_valid_program();
    assert!(src.len() <= MAX_SOURCE_LEN && src.len() > MAX_SOURCE_LEN - 100, "{}", src.len());
    let program = timed("parse 1 MiB", || parse(&src).unwrap());
    assert_eq!(program.compositions[0].body.len(), applications);
    let warnings = timed("check 1 MiB", || check(&program, &none).unwrap());
    assert!(warnings.is_empty(), "{:?}", &warnings[..1]);
    let printed = timed("print 1 MiB", || program.to_string());
    assert_eq!(printed.len(), src.len() + 1, "the canonical form adds a blank line after the declaration");
}

#[test]
fn a_mebibyte_cycle_is_found_without_recursion() {
    let (src, _) = big_valid_program();
    // Close the chain into a loop: the first application reads what the last defines.
    let src = src.replace("(a = each s0)", "(a = each out)");
    let program = parse(&src).unwrap();
    let errors = timed("check 1 MiB cycle", || check(&program, &none).unwrap_err());
    assert!(
        errors.iter().any(|e| e.message.starts_with("dataflow cycle through sets: s1 -> s2 -> ")),
        "{:?}",
        &errors[..1]
    );
}

#[test]
fn pathological_mebibytes_are_handled_quickly() {
    let fill = |unit: &str| unit.repeat(MAX_SOURCE_LEN / unit.len());
    let cases = [
        ("one long name", fill("a")),
        ("open parens", fill("(")),
        ("comment openers", fill("/*")),
        ("line comments", fill("//\n")),
        ("keywords", fill("function ")),
        ("compositions", fill("composition ")),
        ("bad characters", fill("@")),
        ("non-ASCII", fill("é")),
        ("statements", format!("composition c () => () {{{}", fill("function ( ;")[32..].to_owned())),
        ("errors in bodies", format!("composition c () => () {{{}", fill("f (a = x) => ();")[32..].to_owned())),
        ("unterminated", format!("function f /*{}", &fill("x")[16..])),
    ];
    for (what, src) in cases {
        assert!(src.len() <= MAX_SOURCE_LEN);
        let result = timed(what, || parse(&src));
        if let Ok(program) = result {
            timed(what, || check(&program, &none)).ok();
        }
    }
}

#[test]
fn deep_composition_nesting_checks_quickly() {
    // Ten thousand compositions, each applying the one before.
    let mut src = String::from("function f (a) => (b);\ncomposition c0 (x) => (y) { f (a = all x) => (y = b); }\n");
    for i in 1..10_000 {
        src.push_str(&format!("composition c{i} (x) => (y) {{ c{} (x = all x) => (y = y); }}\n", i - 1));
    }
    let program = timed("parse nesting", || parse(&src).unwrap());
    assert_eq!(timed("check nesting", || check(&program, &none)), Ok(vec![]));
    // And the same, made recursive through all of them.
    let src = src.replace("{ f (a = all x) => (y = b); }", "{ c9999 (x = all x) => (y = y); }");
    let program = parse(&src).unwrap();
    let errors = timed("check recursion", || check(&program, &none).unwrap_err());
    assert_eq!(errors.len(), 1, "{:?}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>());
    assert_eq!(
        errors[0].to_string(),
        "2:29: recursive composition: c0 -> c9999 -> c9998 -> c9997 -> c9996 -> c9995 -> c9994 -> c9993 -> … -> c1 -> c0 (10000 on the cycle)"
    );
}

#[test]
fn wide_signatures_check_quickly_with_short_messages() {
    let inputs: Vec<String> = (0..20_000).map(|i| format!("a{i}")).collect();
    let mut src = format!("function f ({}) => (b);\ncomposition c (A) => () {{\n", inputs.join(", "));
    // One application giving every input under a wrong name, with a `by` over all of them ...
    let args: Vec<String> = (0..20_000).map(|i| format!("x{i} = keyed A")).collect();
    let by: Vec<String> = (0..20_000).map(|i| format!("x{i}")).collect();
    src.push_str(&format!("    f ({}) => () by {};\n", args.join(", "), by.join(" inner ")));
    // ... and many applications leaving every input out.
    while src.len() < MAX_SOURCE_LEN - 100 {
        src.push_str("    f () => ();\n");
    }
    src.push_str("}\n");
    let program = timed("parse wide", || parse(&src).unwrap());
    let errors = timed("check wide", || check(&program, &none).unwrap_err());
    assert_eq!(errors.len(), dsl::MAX_CHECK_DIAGNOSTICS + 1);
    assert_eq!(errors[0].message, "`f` has no input `x0` (its inputs: a0, a1, a2, a3, a4, a5, a6, a7, …)");
    assert!(errors.last().unwrap().message.ends_with(" more errors not shown"), "{}", errors.last().unwrap());
    assert!(errors.iter().all(|e| e.message.len() < 200));

    // Only the warnings left: every application leaves all 20000 inputs out.
    let src = src.replacen(&format!("    f ({}) => () by {};\n", args.join(", "), by.join(" inner ")), "", 1);
    let program = parse(&src).unwrap();
    let warnings = timed("check wide warnings", || check(&program, &none).unwrap());
    assert_eq!(warnings[0].message, "input `A` of `c` is never used");
    assert_eq!(warnings[1].message, "20000 inputs of `f` are not given: a0, a1, a2, a3, a4, a5, a6, a7, …");
    assert_eq!(warnings.len(), dsl::MAX_CHECK_DIAGNOSTICS + 1);
}
