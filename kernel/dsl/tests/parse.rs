//! Parser tests: every construct, whitespace and comment variants, Dandelion's own examples, and
//! every syntax error with its exact message and position.

use dsl::ast::{Distribution, JoinKind, Pos};
use dsl::{Program, parse};

fn ok(src: &str) -> Program {
    match parse(src) {
        Ok(p) => p,
        Err(errors) => {
            panic!("unexpected errors: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
        }
    }
}

/// The first error, rendered `line:col: message`.
fn err(src: &str) -> String {
    match parse(src) {
        Ok(p) => panic!("parsed, but should not have: {p:?}"),
        Err(errors) => errors[0].to_string(),
    }
}

fn names(ids: &[dsl::ast::Ident]) -> Vec<&str> {
    ids.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn empty_program() {
    assert_eq!(ok(""), Program::default());
    assert_eq!(ok("  \n\t // nothing\n /* at all */ "), Program::default());
}

#[test]
fn function_declaration() {
    let p = ok("function classify (pics) => (tagged, archives);");
    let f = &p.functions[0];
    assert_eq!(f.name.name, "classify");
    assert_eq!(f.name.pos, Pos { line: 1, col: 10, offset: 9 });
    assert_eq!(names(&f.inputs), ["pics"]);
    assert_eq!(names(&f.outputs), ["tagged", "archives"]);
    assert!(p.compositions.is_empty());
}

#[test]
fn empty_lists_are_allowed() {
    let p = ok("function f () => ();\ncomposition c () => () { f () => (); }");
    assert!(p.functions[0].inputs.is_empty() && p.functions[0].outputs.is_empty());
    let app = &p.compositions[0].body[0];
    assert!(app.args.is_empty() && app.outputs.is_empty() && app.join.is_none());
}

#[test]
fn empty_composition_body() {
    let p = ok("composition c (a) => (a) {}");
    assert!(p.compositions[0].body.is_empty());
    assert_eq!(names(&p.compositions[0].outputs), ["a"]);
}

#[test]
fn composition_with_all_each_keyed() {
    let p = ok("function f (a, b, c) => (x);
        composition comp (A, B, C) => (X) {
            f (a = all A, b = each B, c = keyed C) => (X = x);
        }");
    let comp = &p.compositions[0];
    assert_eq!(comp.name.name, "comp");
    assert_eq!(names(&comp.inputs), ["A", "B", "C"]);
    let app = &comp.body[0];
    assert_eq!(app.function.name, "f");
    let dist: Vec<_> = app.args.iter().map(|a| (a.param.name.as_str(), a.distribution, a.set.name.as_str())).collect();
    assert_eq!(dist, [("a", Distribution::All, "A"), ("b", Distribution::Each, "B"), ("c", Distribution::Keyed, "C")]);
    assert!(app.args.iter().all(|a| !a.optional));
    assert_eq!((app.outputs[0].set.name.as_str(), app.outputs[0].param.name.as_str()), ("X", "x"));
}

#[test]
fn optional_arguments() {
    let p = ok("composition c (A) => () { f (a = optional each A, b =optional      keyed A, c = all A) => (); }");
    let args = &p.compositions[0].body[0].args;
    assert_eq!(args.iter().map(|a| a.optional).collect::<Vec<_>>(), [true, true, false]);
    assert_eq!(args[0].distribution, Distribution::Each);
    assert_eq!(args[1].distribution, Distribution::Keyed);
}

#[test]
fn multiple_outputs() {
    let p = ok("composition c (A) => (X, Y) { f (a = all A) => (X = x, Y = y, Z = z); }");
    let outs: Vec<_> =
        p.compositions[0].body[0].outputs.iter().map(|o| (o.set.name.as_str(), o.param.name.as_str())).collect();
    assert_eq!(outs, [("X", "x"), ("Y", "y"), ("Z", "z")]);
}

#[test]
fn join_kinds() {
    for (word, kind) in [
        ("inner", JoinKind::Inner),
        ("left", JoinKind::Left),
        ("right", JoinKind::Right),
        ("outer", JoinKind::Outer),
        ("full", JoinKind::Outer),
        ("cross", JoinKind::Cross),
    ] {
        let src = format!("composition c (A, B) => () {{ f (a = keyed A, b = keyed B) => () by a {word} b; }}");
        let join = ok(&src).compositions[0].body[0].join.clone().unwrap();
        assert_eq!(join.first.name, "a");
        assert_eq!(join.rest.len(), 1);
        assert_eq!(join.rest[0].0, kind, "{word}");
        assert_eq!(join.rest[0].1.name, "b");
    }
}

#[test]
fn chained_joins_and_single_name_by() {
    let p = ok("composition c (A, B, C) => () {
        f (a = keyed A, b = keyed B, c = keyed C) => () by a
          left b  full c;
        f (a = keyed A, b = keyed B, c = keyed C) => () by a cross b inner c;
        f (a = keyed A) => () by a;
    }");
    let body = &p.compositions[0].body;
    let chain = |i: usize| {
        let j = body[i].join.as_ref().unwrap();
        (j.first.name.clone(), j.rest.iter().map(|(k, n)| (*k, n.name.clone())).collect::<Vec<_>>())
    };
    assert_eq!(chain(0), ("a".into(), vec![(JoinKind::Left, "b".into()), (JoinKind::Outer, "c".into())]));
    assert_eq!(chain(1), ("a".into(), vec![(JoinKind::Cross, "b".into()), (JoinKind::Inner, "c".into())]));
    assert_eq!(chain(2), ("a".into(), vec![]));
    let joined: Vec<_> = body[0].join.as_ref().unwrap().names().map(|n| n.name.as_str()).collect();
    assert_eq!(joined, ["a", "b", "c"]);
}

#[test]
fn keywords_are_contextual() {
    // Dandelion's parser takes any identifier where a name goes, keywords included.
    let p = ok("function all (left, right) => (by);
        composition function (each, keyed) => (optional) {
            all (left = keyed each, right = optional keyed keyed) => (optional = by) by left inner right;
            function (all = all all) => ();
        }");
    assert_eq!(p.functions[0].name.name, "all");
    let comp = &p.compositions[0];
    assert_eq!(comp.name.name, "function");
    let app = &comp.body[0];
    assert_eq!(app.args[1].param.name, "right");
    assert!(app.args[1].optional);
    assert_eq!(app.args[1].set.name, "keyed");
    assert_eq!(app.outputs[0].set.name, "optional");
    assert_eq!(comp.body[1].function.name, "function");
}

#[test]
fn identifiers() {
    let p = ok("function _a1 (B_2, __) => (x);");
    assert_eq!(p.functions[0].name.name, "_a1");
    assert_eq!(names(&p.functions[0].inputs), ["B_2", "__"]);
}

#[test]
fn comments_everywhere() {
    let p = ok("// leading comment
        function /* inline */ f (a /* x */, b) // trailing
          => (c); /* block
          over lines */
        composition c (A, B) => (C) { // after brace
            // a whole line
            f (a = all A, b = all B) => (C = c); /**/
        } //");
    assert_eq!(names(&p.functions[0].inputs), ["a", "b"]);
    assert_eq!(p.compositions[0].body.len(), 1);
    assert_eq!(p.compositions[0].body[0].function.pos.line, 7);
}

#[test]
fn whitespace_variants() {
    let dense = ok("function f(a)=>(b);composition c(A)=>(B){f(a=each A)=>(B=b)by a;}");
    let airy = ok(
        "\r\n\tfunction\u{a0}f\n(\na\n)\n=>\n(\nb\n)\n;\n\ncomposition c ( A ) => ( B )\n{\n  f\n  (\n    a = each A\n  )\n  =>\n  ( B = b )\n  by\n  a\n  ;\n}\n",
    );
    let (mut dense, mut airy) = (dense, airy);
    dense.clear_positions();
    airy.clear_positions();
    assert_eq!(dense, airy);
}

#[test]
fn positions_are_line_and_character_columns() {
    let p = ok("// é\nfunction f (a) => (b);\n  composition c (x) => () {}");
    assert_eq!(p.functions[0].name.pos, Pos { line: 2, col: 10, offset: 15 });
    assert_eq!(p.compositions[0].name.pos.line, 3);
    assert_eq!(p.compositions[0].name.pos.col, 15);
    // Columns count characters, not bytes.
    let e = err("/* éé */ x");
    assert_eq!(e, "1:10: expected 'function' or 'composition', found 'x'");
}

#[test]
fn design_example() {
    let p = ok("function grep (lines) => (matches);
function topk (counts) => (top);
function HTTP (requests) => (responses);
composition top_errors (urls) => (report) {
    HTTP (requests = each urls) => (pages = responses);
    grep (lines = each pages) => (hits = matches);
    topk (counts = all hits) => (report = top);
}");
    assert_eq!(p.functions.len(), 3);
    assert_eq!(p.compositions[0].body.len(), 3);
}

/// Dandelion's README example, byte for byte. It misspells `composition`, which Dandelion's
/// parser refuses as well; corrected, it parses.
const DANDELION_README: &str = r#"function classify (pics) => (tagged_pics, archives);
function compress (pics, archives) => (put_requests);
function HTTP(requests) => (responses);

compositon image_process (images) => (status) {
    classify (pics = all images) => (
        classified = tagged_pics,
        fetch_requests = archives
    );
    
    HTTP (requests = each fetch_requests) =>
        (fetched_archives = responses);
    
    compress (
        pics = keyed classified,
        archives = keyed fetched_archives
    ) => (
        store_requests = put_requests    
    ) by classified left fetched_archives;
    
    HTTP (requests = each store_requests) =>
        (status = responses);
}
"#;

#[test]
fn dandelion_readme_example_verbatim() {
    assert_eq!(err(DANDELION_README), "5:1: expected 'function' or 'composition', found 'compositon'");
    let p = ok(&DANDELION_README.replace("compositon", "composition"));
    assert_eq!(p.functions.len(), 3);
    let body = &p.compositions[0].body;
    assert_eq!(body.len(), 4);
    let join = body[2].join.as_ref().unwrap();
    assert_eq!(
        (join.first.name.as_str(), join.rest[0].0, join.rest[0].1.name.as_str()),
        ("classified", JoinKind::Left, "fetched_archives")
    );
    // The README names the sets read, which resolve to the arguments reading them.
    assert_eq!(body[2].join_argument("classified"), Some(0));
    assert_eq!(body[2].join_argument("fetched_archives"), Some(1));
}

/// `dparser/example_input.txt` from Dandelion, verbatim.
#[test]
fn dandelion_example_input() {
    let p = ok("function Access(AccessToken) => (HTTPRequest);
function FanOut(HTTPResponse, Topic) => (HTTPRequests);
function Render(HTTPResponses) => (HTMLOutput);

function HTTP(Request) => (Response);

composition RenderLogs(InputAccessToken, InputTopic) => (HTMLOutput) {
    Access(AccessToken = all InputAccessToken) => (AuthRequest = HTTPRequest);
    HTTP(Request = each AuthRequest) => (AuthResponse = Response);
    FanOut(HTTPResponse = all AuthResponse, Topic = all InputTopic) => (LogRequests = HTTPRequests);
    HTTP(Request = each LogRequests) => (LogResponses = Response);
    Render(HTTPResponses = all LogResponses) => (HTMLOutput = HTMLOutput);
}");
    assert_eq!(p.functions.len(), 4);
    assert_eq!(p.compositions[0].body.len(), 5);
}

/// Inputs from the tests of Dandelion's parser, verbatim: odd spacing, `=> ( )`, `;` after space.
#[test]
fn dandelion_parser_test_inputs() {
    ok(r#"
    function Access( AccessToken) => (HTTPRequest);
    function FanOut(HTTPResponse , Topic) => (HTTPRequests);
    function Render(HTTPResponses )   => (HTMLOutput);
    
    function HTTP(Request) => ( Response) ;
    "#);
    let p = ok(r#"
    function HTTP(Request) => (Response);
    function MakePNGGrayscaleS3 (S3GetResponse) => (S3PutRequest);
    
    composition MakePNGGrayscale (S3GetRequest) => () {
        HTTP(Request = optional keyed S3GetRequest) => (ToProcess = Response);
        MakePNGGrayscaleS3 (  S3GetResponse =optional      keyed ToProcess ) => (PutRequest = S3PutRequest) ;
        HTTP ( Request = keyed PutRequest) => ( );
    }
"#);
    assert_eq!(p.compositions[0].body.len(), 3);
    let p = ok(r#"
    function FunA (A, B) => (C);
    function FunB (A, B,C) => (D);
    function FunC (D) => (E);
    
    composition Test (InputA, InputB) => (OutputE) { 
        FunA (
            A = keyed InputA,
            B = keyed InputB
        ) => 
            (InterC = C)
        by A right B;
    
        FunB (
            A = keyed InputA,
            B = keyed InputB,
            C = keyed InputC
        ) => (
            InterD = D
        ) by A
          left B  full C;
        
        FunB (
            A = keyed InputA,
            B = keyed InputB,
            C = keyed InputC
        ) => (
            InterD = D
        ) by A cross B inner C; 

        FunC
            ( D = all InterD ) =>
            ( OutputE = E) ;
    }
"#);
    assert_eq!(p.compositions[0].body.len(), 4);
}

// ---- syntax errors: exact message and position ----

#[test]
fn error_missing_arrow() {
    assert_eq!(err("function f (a) (b);"), "1:16: expected '=>', found '('");
    assert_eq!(err("composition c () => () {\n  f (a = all x) ;\n}"), "2:17: expected '=>', found ';'");
}

#[test]
fn error_arrow_expected_before_semicolon() {
    // The message form the kernel shows: `line:col: expected X, found Y`.
    assert_eq!(err("composition c () => () {\n    f (a = all b)      ;\n}"), "2:24: expected '=>', found ';'");
}

#[test]
fn error_top_level_garbage() {
    assert_eq!(err("fn f () => ();"), "1:1: expected 'function' or 'composition', found 'fn'");
    assert_eq!(err("  ;"), "1:3: expected 'function' or 'composition', found ';'");
}

#[test]
fn error_missing_name() {
    assert_eq!(err("function (a) => (b);"), "1:10: expected a name, found '('");
    assert_eq!(err("function"), "1:9: expected a name, found end of input");
}

#[test]
fn error_bad_names() {
    assert_eq!(
        err("function 9lives () => ();"),
        "1:10: expected a name, found '9lives' (names are ASCII letters, digits and '_', not starting with a digit)"
    );
    assert_eq!(
        err("function f (naïve) => ();"),
        "1:13: expected a name, found 'naïve' (names are ASCII letters, digits and '_', not starting with a digit)"
    );
    assert_eq!(err("function f-g () => ();"), "1:11: expected '(', found '-'");
}

#[test]
fn error_trailing_comma() {
    assert_eq!(err("function f (a,) => ();"), "1:15: expected a name, found ')'");
    assert_eq!(err("composition c (A) => () { f (a = all A,) => (); }"), "1:40: expected a name, found ')'");
    assert_eq!(err("composition c (A) => () { f (a = all A) => (x = y,); }"), "1:51: expected a name, found ')'");
}

#[test]
fn error_list_separator() {
    assert_eq!(err("function f (a b) => ();"), "1:15: expected ',' or ')', found 'b'");
    assert_eq!(err("function f (,) => ();"), "1:13: expected a name or ')', found ','");
    assert_eq!(err("composition c () => () { f (=) => (); }"), "1:29: expected an input name or ')', found '='");
    assert_eq!(err("composition c () => () { f () => (;) ; }"), "1:35: expected a set name or ')', found ';'");
}

#[test]
fn error_missing_semicolon_after_declaration() {
    assert_eq!(err("function f () => ()\nfunction g () => ();"), "2:1: expected ';', found 'function'");
}

#[test]
fn error_missing_distribution() {
    assert_eq!(
        err("composition c (A) => () { f (a = A) => (); }"),
        "1:34: expected 'optional', 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed', found 'A'"
    );
    assert_eq!(
        err("composition c (A) => () { f (a = optional A) => (); }"),
        "1:43: expected 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed', found 'A'"
    );
    assert_eq!(err("composition c (A) => () { f (a = all) => (); }"), "1:37: expected a name, found ')'");
    assert_eq!(err("composition c (A) => () { f (a all A) => (); }"), "1:32: expected '=', found 'all'");
}

#[test]
fn error_keywords_must_stand_alone() {
    // Dandelion's parser would read `eachA` as `each A`; here it is a name.
    assert_eq!(
        err("composition c (A) => () { f (a = eachA) => (); }"),
        "1:34: expected 'optional', 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed', found 'eachA'"
    );
}

#[test]
fn adaptive_distributions_parse_and_print_back() {
    let src = "function f (a, b, c) => (o);\n\ncomposition k (A, B, C) => (O) {\n    f (a = anyEach A, b = optional anyKeyed B, c = anyKeyed C) => (O = o) by b inner c;\n}\n";
    let program = parse(src).unwrap();
    let args = &program.compositions[0].body[0].args;
    assert_eq!(args[0].distribution, Distribution::AnyEach);
    assert_eq!((args[1].optional, args[1].distribution), (true, Distribution::AnyKeyed));
    assert_eq!(args[2].distribution, Distribution::AnyKeyed);
    assert_eq!(program.to_string(), src);
}

#[test]
fn adaptive_keywords_are_case_sensitive_and_stand_alone() {
    // Dandelion spells them `anyEach` and `anyKeyed`; other spellings are names.
    assert_eq!(
        err("composition c (A) => () { f (a = anyeach A) => (); }"),
        "1:34: expected 'optional', 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed', found 'anyeach'"
    );
    assert_eq!(
        err("composition c (A) => () { f (a = anyKeyedA) => (); }"),
        "1:34: expected 'optional', 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed', found 'anyKeyedA'"
    );
}

#[test]
fn error_output_binding() {
    assert_eq!(err("composition c () => () { f () => (X); }"), "1:36: expected '=', found ')'");
    assert_eq!(err("composition c () => () { f () => (X = ); }"), "1:39: expected a name, found ')'");
}

#[test]
fn error_after_outputs() {
    assert_eq!(err("composition c () => () { f () => () }"), "1:37: expected 'by' or ';', found '}'");
    assert_eq!(err("composition c () => () { f () => () with a; }"), "1:37: expected 'by' or ';', found 'with'");
}

#[test]
fn error_join_clause() {
    let kinds = "a join kind ('inner', 'left', 'right', 'outer', 'full', 'cross')";
    assert_eq!(
        err("composition c (A) => () { f (a = keyed A) => () by a join b; }"),
        format!("1:54: expected {kinds} or ';', found 'join'")
    );
    assert_eq!(err("composition c (A) => () { f (a = keyed A) => () by ; }"), "1:52: expected a name, found ';'");
    assert_eq!(
        err("composition c (A) => () { f (a = keyed A) => () by a left ; }"),
        "1:59: expected a name, found ';'"
    );
    assert_eq!(
        err("composition c (A) => () { f (a = keyed A) => () by a left b }"),
        format!("1:61: expected {kinds} or ';', found '}}'")
    );
}

#[test]
fn error_composition_structure() {
    assert_eq!(err("composition c () => ();"), "1:23: expected '{', found ';'");
    assert_eq!(err("composition c () => () {"), "1:25: expected a function name or '}', found end of input");
    assert_eq!(err("composition c () => () { ( }"), "1:26: expected a function name or '}', found '('");
    assert_eq!(err("composition c () => () {\n}\n}"), "3:1: expected 'function' or 'composition', found '}'");
}

#[test]
fn error_missing_closing_brace_before_next_item() {
    let src = "composition c () => () {\n  f () => ();\nfunction g () => ();";
    assert_eq!(err(src), "3:1: expected '}', found 'function'");
    let errors = parse(src).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn error_unexpected_characters() {
    assert_eq!(err("function f () => () ;\n@"), "2:1: expected 'function' or 'composition', found '@'");
    assert_eq!(err("function f () = > ();"), "1:15: expected '=>', found '='");
    assert_eq!(err("function f () => ()\u{0};"), "1:20: expected ';', found '\\0'");
    assert_eq!(err("function f / () => ();"), "1:12: expected '(', found '/'");
}

#[test]
fn error_unterminated_comment() {
    assert_eq!(err("function f () => () /* no end ;"), "1:21: expected ';', found an unterminated comment");
}

#[test]
fn errors_are_values_with_severity_and_position() {
    let errors = parse("function f () => ()").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].severity, dsl::Severity::Error);
    assert_eq!(errors[0].pos, Pos { line: 1, col: 20, offset: 19 });
    assert_eq!(errors[0].message, "expected ';', found end of input");
}

#[test]
fn recovery_reports_independent_errors() {
    let src = "function f (a b) => ();
function g () => ();
composition c (A) => () {
    f (a = every A) => ();
    g () => ();
    f (a = all A) => () by;
}
composition d () => () { g () => () }
";
    let errors: Vec<String> = parse(src).unwrap_err().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [
            "1:15: expected ',' or ')', found 'b'",
            "4:12: expected 'optional', 'all', 'each', 'keyed', 'anyEach' or 'anyKeyed', found 'every'",
            "6:27: expected a name, found ';'",
            "8:37: expected 'by' or ';', found '}'",
        ]
    );
}

#[test]
fn error_count_is_bounded() {
    let src = "function f (a b) => ();\n".repeat(1000);
    assert_eq!(parse(&src).unwrap_err().len(), dsl::MAX_PARSE_ERRORS);
    let src = format!("composition c () => () {{ {} }}", "f (a = x) => ();".repeat(1000));
    assert_eq!(parse(&src).unwrap_err().len(), dsl::MAX_PARSE_ERRORS);
}
