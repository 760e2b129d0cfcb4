//! Checker tests: valid programs pass, and every error and warning class comes with its exact
//! message and position.

use dsl::{CheckOptions, Diagnostic, Severity, Signature, check, check_with, parse};

fn none(_: &str) -> Option<Signature> {
    None
}

fn run(src: &str, registered: &dyn Fn(&str) -> Option<Signature>) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let program = parse(src).unwrap_or_else(|e| panic!("syntax errors: {e:?}"));
    check(&program, registered)
}

fn render(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().map(|d| d.to_string()).collect()
}

/// Warnings of a program that must pass.
fn warnings(src: &str) -> Vec<String> {
    match run(src, &none) {
        Ok(warnings) => {
            assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
            render(&warnings)
        }
        Err(errors) => panic!("unexpected errors: {:?}", render(&errors)),
    }
}

/// Errors of a program that must fail.
fn errors(src: &str) -> Vec<String> {
    match run(src, &none) {
        Ok(warnings) => panic!("passed, with warnings {:?}", render(&warnings)),
        Err(errors) => {
            assert!(errors.iter().all(|e| e.severity == Severity::Error));
            render(&errors)
        }
    }
}

const DESIGN_EXAMPLE: &str = "function grep (lines) => (matches);
function topk (counts) => (top);
function HTTP (requests) => (responses);
composition top_errors (urls) => (report) {
    HTTP (requests = each urls) => (pages = responses);
    grep (lines = each pages) => (hits = matches);
    topk (counts = all hits) => (report = top);
}";

#[test]
fn design_example_is_clean() {
    assert_eq!(warnings(DESIGN_EXAMPLE), Vec::<String>::new());
}

#[test]
fn dandelion_readme_example_is_clean() {
    let src = "function classify (pics) => (tagged_pics, archives);
function compress (pics, archives) => (put_requests);
function HTTP(requests) => (responses);

composition image_process (images) => (status) {
    classify (pics = all images) => (classified = tagged_pics, fetch_requests = archives);
    HTTP (requests = each fetch_requests) => (fetched_archives = responses);
    compress (pics = keyed classified, archives = keyed fetched_archives) => (store_requests = put_requests)
        by classified left fetched_archives;
    HTTP (requests = each store_requests) => (status = responses);
}";
    assert_eq!(warnings(src), Vec::<String>::new());
}

#[test]
fn statement_order_does_not_matter() {
    // The body is a dataflow graph: a set may be read above the line that defines it.
    let src = "function f (a) => (b);
composition c (A) => (C) {
    f (a = all B) => (C = b);
    f (a = all A) => (B = b);
}";
    assert_eq!(warnings(src), Vec::<String>::new());
}

#[test]
fn passthrough_output_is_defined_by_the_input() {
    // Dandelion lets a composition output be one of its inputs.
    assert_eq!(warnings("composition c (A) => (A) {}"), Vec::<String>::new());
}

#[test]
fn nested_composition() {
    let src = "function f (a) => (b);
composition inner (X) => (Y) {
    f (a = each X) => (Y = b);
}
composition outer (P) => (Q) {
    inner (X = all P) => (Q = Y);
}";
    assert_eq!(warnings(src), Vec::<String>::new());
}

#[test]
fn registered_signatures_are_compared_by_count() {
    let src = "function f (a, b) => (c);
composition k (A) => (C) {
    f (a = all A, b = all A) => (C = c);
}";
    let registry = |name: &str| (name == "f").then_some(Signature { inputs: 2, outputs: 1 });
    assert_eq!(run(src, &registry), Ok(vec![]));
    let wrong = |name: &str| (name == "f").then_some(Signature { inputs: 1, outputs: 2 });
    assert_eq!(
        render(&run(src, &wrong).unwrap_err()),
        [
            "1:10: `f` is declared with 2 input set(s), but the registered function has 1",
            "1:10: `f` is declared with 1 output set(s), but the registered function has 2",
        ]
    );
}

#[test]
fn unregistered_functions_are_errors_only_when_asked() {
    let program = parse("function later () => ();").unwrap();
    assert_eq!(check(&program, &none), Ok(vec![]));
    let strict = CheckOptions { require_registered: true };
    assert_eq!(render(&check_with(&program, &none, strict).unwrap_err()), ["1:10: `later` is not registered"]);
    let registered = |_: &str| Some(Signature { inputs: 0, outputs: 0 });
    assert_eq!(check_with(&program, &registered, strict), Ok(vec![]));
}

#[test]
fn duplicate_declarations() {
    assert_eq!(errors("function f () => ();\nfunction f (a) => ();"), ["2:10: `f` is already declared at 1:10"]);
    assert_eq!(errors("function f () => ();\ncomposition f () => () {}"), ["2:13: `f` is already declared at 1:10"]);
    assert_eq!(
        errors("composition f () => () {}\ncomposition f () => () {}"),
        ["2:13: `f` is already declared at 1:13"]
    );
}

#[test]
fn duplicate_names_in_signatures() {
    assert_eq!(
        errors("function f (a, a) => (b, b);"),
        ["1:16: input `a` of `f` is listed twice", "1:26: output `b` of `f` is listed twice"]
    );
    assert_eq!(
        errors("composition c (A, A) => (A, A) {}"),
        ["1:19: input `A` of `c` is listed twice", "1:29: output `A` of `c` is listed twice"]
    );
}

#[test]
fn unknown_function() {
    assert_eq!(
        errors("composition c () => () {\n    g () => ();\n}"),
        ["2:5: `g` is neither a declared function nor an earlier composition"]
    );
}

#[test]
fn function_used_before_its_declaration() {
    assert_eq!(
        errors("composition c () => () {\n    f () => ();\n}\nfunction f () => ();"),
        ["2:5: `f` is used before its declaration at 4:10"]
    );
}

#[test]
fn composition_used_before_its_definition() {
    assert_eq!(
        errors("composition a () => () {\n    b () => ();\n}\ncomposition b () => () {}"),
        ["2:5: `b` is used before its definition at 4:13"]
    );
}

#[test]
fn composition_applying_itself() {
    assert_eq!(errors("composition c () => () {\n    c () => ();\n}"), ["2:5: recursive composition: c -> c"]);
}

#[test]
fn compositions_applying_each_other() {
    let src = "composition a () => () {
    b () => ();
}
composition b () => () {
    c () => ();
}
composition c () => () {
    a () => ();
}";
    assert_eq!(errors(src), ["2:5: recursive composition: a -> b -> c -> a"]);
}

#[test]
fn unknown_input() {
    let src = "function f (a, b) => ();
composition c (A) => () {
    f (a = all A, b = all A, x = all A) => ();
}";
    assert_eq!(errors(src), ["3:30: `f` has no input `x` (its inputs: a, b)"]);
    let src = "function g () => ();\ncomposition c (A) => () {\n    g (x = all A) => ();\n}";
    assert_eq!(errors(src), ["3:8: `g` has no input `x` (it has no inputs)"]);
}

#[test]
fn input_given_twice() {
    let src = "function f (a) => ();\ncomposition c (A) => () {\n    f (a = all A, a = each A) => ();\n}";
    assert_eq!(errors(src), ["3:19: input `a` of `f` is given twice"]);
}

#[test]
fn input_left_out_is_a_warning() {
    // As in Dandelion's own tests: `matmac (add_left = …, add_right = …)` leaves `mul_left` out.
    let src = "function f (a, b, c) => ();\ncomposition k (A) => () {\n    f (b = all A) => ();\n}";
    assert_eq!(warnings(src), ["3:5: 2 inputs of `f` are not given: a, c"]);
    let src = "function f (a, b) => ();\ncomposition k (A) => () {\n    f (b = all A) => ();\n}";
    assert_eq!(warnings(src), ["3:5: input `a` of `f` is not given"]);
}

#[test]
fn unknown_output() {
    let src = "function f () => (b);\ncomposition c () => (X) {\n    f () => (X = b, Y = y);\n}";
    assert_eq!(errors(src), ["3:25: `f` has no output `y` (its outputs: b)"]);
}

#[test]
fn output_bound_twice() {
    let src = "function f () => (b);\ncomposition c () => (X, Y) {\n    f () => (X = b, Y = b);\n}";
    assert_eq!(errors(src), ["3:25: output `b` of `f` is bound twice"]);
}

#[test]
fn unused_outputs_of_a_function_are_fine() {
    let src = "function f () => (b, unused);\ncomposition c () => (X) {\n    f () => (X = b);\n}";
    assert_eq!(warnings(src), Vec::<String>::new());
}

#[test]
fn set_never_defined() {
    let src = "function f (a) => ();\ncomposition c () => () {\n    f (a = all Nope) => ();\n}";
    assert_eq!(errors(src), ["3:16: set `Nope` is never defined"]);
}

#[test]
fn set_defined_twice() {
    let src = "function f () => (b);
composition c () => (X) {
    f () => (X = b);
    f () => (X = b);
}";
    assert_eq!(errors(src), ["4:14: set `X` is already defined at 3:14"]);
}

#[test]
fn assigning_a_composition_input() {
    let src = "function f (a) => (b);\ncomposition c (A) => () {\n    f (a = all A) => (A = b);\n}";
    assert_eq!(errors(src), ["3:23: set `A` is already defined at 2:16"]);
}

#[test]
fn output_never_assigned() {
    assert_eq!(errors("composition c () => (R) {}"), ["1:22: output `R` of `c` is never assigned"]);
}

#[test]
fn unused_sets_and_inputs_are_warnings() {
    let src = "function f (a) => (b, c);
composition k (A, Unused) => (X) {
    f (a = all A) => (X = b, Spare = c);
}";
    assert_eq!(warnings(src), ["2:19: input `Unused` of `k` is never used", "3:30: set `Spare` is never used"]);
}

#[test]
fn dataflow_cycle() {
    let src = "function f (a) => (b);
composition c (A) => () {
    f (a = all A) => (Start = b);
    f (a = all Z) => (Y = b);
    f (a = all Y) => (Z = b);
}";
    // `Start` is unused: a warning, not reported since there are errors.
    assert_eq!(errors(src), ["4:23: dataflow cycle through sets: Y -> Z -> Y"]);
}

#[test]
fn application_reading_its_own_output() {
    let src = "function f (a) => (b);\ncomposition c () => () {\n    f (a = all X) => (X = b);\n}";
    assert_eq!(errors(src), ["3:23: dataflow cycle through sets: X -> X"]);
}

#[test]
fn join_by_input_name_or_set_name() {
    let src = "function f (a, b) => ();
composition c (A, B) => () {
    f (a = keyed A, b = keyed B) => () by a inner b;
    f (a = keyed A, b = keyed B) => () by A outer B;
    f (a = keyed A, b = keyed B) => () by a cross B;
}";
    assert_eq!(warnings(src), Vec::<String>::new());
}

#[test]
fn join_names_not_an_argument() {
    let src = "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = keyed A, b = keyed B) => () by a left x;\n}";
    assert_eq!(errors(src), ["3:50: `x` in `by` is not an argument of `f`"]);
}

#[test]
fn join_names_an_argument_that_is_not_keyed() {
    let src =
        "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = keyed A, b = each B) => () by a left b;\n}";
    assert_eq!(errors(src), ["3:49: `b` in `by` is not keyed (it is `each`)"]);
}

#[test]
fn join_of_adaptive_keyed_inputs() {
    let ok = "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = anyKeyed A, b = anyKeyed B) => () by a left b;\n}";
    assert_eq!(warnings(ok), Vec::<String>::new());
    let mixed = "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = keyed A, b = anyKeyed B) => () by a left b;\n}";
    assert_eq!(errors(mixed), ["3:53: `b` in `by` mixes `keyed` and `anyKeyed` inputs; join inputs of one kind"]);
    let cross = "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = anyKeyed A, b = anyKeyed B) => () by a cross b;\n}";
    assert_eq!(errors(cross), ["3:57: `b` is `anyKeyed`: a `by` chain of `anyKeyed` inputs cannot use `cross`"]);
    let each = "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = anyKeyed A, b = anyEach B) => () by a inner b;\n}";
    assert_eq!(errors(each), ["3:56: `b` in `by` is not keyed (it is `anyEach`)"]);
}

#[test]
fn join_names_an_argument_twice() {
    let src = "function f (a, b) => ();\ncomposition c (A, B) => () {\n    f (a = keyed A, b = keyed B) => () by a left A;\n}";
    assert_eq!(errors(src), ["3:50: `A` is joined twice"]);
}

#[test]
fn join_set_name_read_by_two_arguments() {
    let src = "function f (a, b) => ();\ncomposition c (A) => () {\n    f (a = keyed A, b = keyed A) => () by A;\n}";
    assert_eq!(errors(src), ["3:43: `A` in `by` is read by several arguments of `f`; name the input instead"]);
}

#[test]
fn join_input_name_wins_over_set_name() {
    // Dandelion's runtime resolves `by` names among the inputs; `b` is the input, not set `b`.
    let src = "function f (a, b) => ();\ncomposition c (b, B) => () {\n    f (a = keyed b, b = keyed B) => () by b inner a;\n}";
    assert_eq!(warnings(src), Vec::<String>::new());
    let program = parse(src).unwrap();
    let app = &program.compositions[0].body[0];
    assert_eq!(app.join_argument("b"), Some(1));
    assert_eq!(app.join_argument("a"), Some(0));
}

#[test]
fn errors_are_sorted_and_all_reported() {
    let src = "function f (a) => (b);
composition c (A) => (R) {
    g () => ();
    f (a = all Nope) => (A = b);
}";
    assert_eq!(
        errors(src),
        [
            "2:23: output `R` of `c` is never assigned",
            "3:5: `g` is neither a declared function nor an earlier composition",
            "4:16: set `Nope` is never defined",
            "4:26: set `A` is already defined at 2:16",
        ]
    );
}

#[test]
fn check_never_panics_on_hand_built_programs() {
    // A program built in code, all positions default: the checker must still be consistent.
    use dsl::ast::*;
    let id = |s: &str| Ident::new(s, Pos::default());
    let program = Program {
        functions: vec![FunctionDecl { name: id("f"), inputs: vec![id("a")], outputs: vec![id("b")] }],
        compositions: vec![Composition {
            name: id("c"),
            inputs: vec![id("A")],
            outputs: vec![id("B")],
            body: vec![Application {
                function: id("f"),
                args: vec![Argument {
                    param: id("a"),
                    optional: false,
                    distribution: Distribution::Keyed,
                    set: id("A"),
                }],
                outputs: vec![OutputBinding { set: id("B"), param: id("b") }],
                join: Some(JoinClause { first: id("a"), rest: vec![(JoinKind::Cross, id(""))] }),
            }],
        }],
    };
    assert_eq!(render(&check(&program, &none).unwrap_err()), ["0:0: `` in `by` is not an argument of `f`"]);
}
