//! Property tests: printing round-trips, valid programs check clean, and neither the parser nor
//! the checker panics on anything.

use dsl::ast::*;
use dsl::{Signature, check, parse};
use proptest::prelude::*;

fn none(_: &str) -> Option<Signature> {
    None
}

/// Names, with the keywords over-represented: they must survive as names.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z_][A-Za-z0-9_]{0,6}",
        1 => prop::sample::select(vec![
            "function", "composition", "all", "each", "keyed", "optional", "by", "inner", "left", "right",
            "outer", "full", "cross", "anyEach", "_",
        ])
        .prop_map(String::from),
    ]
}

fn ident() -> impl Strategy<Value = Ident> {
    name().prop_map(|n| Ident::new(n, Pos::default()))
}

fn idents(max: usize) -> impl Strategy<Value = Vec<Ident>> {
    prop::collection::vec(ident(), 0..max)
}

fn distribution() -> impl Strategy<Value = Distribution> {
    prop::sample::select(vec![
        Distribution::All,
        Distribution::Each,
        Distribution::Keyed,
        Distribution::AnyEach,
        Distribution::AnyKeyed,
    ])
}

fn join_kind() -> impl Strategy<Value = JoinKind> {
    prop::sample::select(vec![JoinKind::Inner, JoinKind::Left, JoinKind::Right, JoinKind::Outer, JoinKind::Cross])
}

fn application() -> impl Strategy<Value = Application> {
    let arg = (ident(), any::<bool>(), distribution(), ident())
        .prop_map(|(param, optional, distribution, set)| Argument { param, optional, distribution, set });
    let binding = (ident(), ident()).prop_map(|(set, param)| OutputBinding { set, param });
    let join = (ident(), prop::collection::vec((join_kind(), ident()), 0..3))
        .prop_map(|(first, rest)| JoinClause { first, rest });
    (ident(), prop::collection::vec(arg, 0..4), prop::collection::vec(binding, 0..3), prop::option::of(join))
        .prop_map(|(function, args, outputs, join)| Application { function, args, outputs, join })
}

/// Any program the grammar can express (meaningful or not).
fn program() -> impl Strategy<Value = Program> {
    let function =
        (ident(), idents(4), idents(4)).prop_map(|(name, inputs, outputs)| FunctionDecl { name, inputs, outputs });
    let composition = (ident(), idents(3), idents(3), prop::collection::vec(application(), 0..4))
        .prop_map(|(name, inputs, outputs, body)| Composition { name, inputs, outputs, body });
    (prop::collection::vec(function, 0..4), prop::collection::vec(composition, 0..3))
        .prop_map(|(functions, compositions)| Program { functions, compositions })
}

/// A meaningful program: declared functions, one composition whose applications read only
/// composition inputs or earlier outputs, joins only over keyed inputs; body order shuffled.
fn valid_program() -> impl Strategy<Value = Program> {
    let arity = (0usize..3, 1usize..3);
    (prop::collection::vec(arity, 1..4), 1usize..3, prop::collection::vec(any::<u32>(), 1..8), any::<u64>()).prop_map(
        |(arities, n_inputs, picks, shuffle_seed)| {
            let id = |s: String| Ident::new(s, Pos::default());
            let functions: Vec<FunctionDecl> = arities
                .iter()
                .enumerate()
                .map(|(i, &(ins, outs))| FunctionDecl {
                    name: id(format!("f{i}")),
                    inputs: (0..ins).map(|k| id(format!("in{k}"))).collect(),
                    outputs: (0..outs).map(|k| id(format!("out{k}"))).collect(),
                })
                .collect();
            let mut available: Vec<String> = (0..n_inputs).map(|k| format!("I{k}")).collect();
            let mut body = Vec::new();
            for (a, &pick) in picks.iter().enumerate() {
                let f = &functions[pick as usize % functions.len()];
                let mut r = pick;
                let mut next = |n: usize| {
                    r = r.wrapping_mul(2_654_435_761).wrapping_add(12345);
                    (r >> 8) as usize % n
                };
                let args: Vec<Argument> = f
                    .inputs
                    .iter()
                    .map(|p| Argument {
                        param: p.clone(),
                        optional: next(2) == 0,
                        distribution: [Distribution::All, Distribution::Each, Distribution::Keyed][next(3)],
                        set: id(available[next(available.len())].clone()),
                    })
                    .collect();
                let keyed: Vec<&Ident> =
                    args.iter().filter(|a| a.distribution == Distribution::Keyed).map(|a| &a.param).collect();
                let join = (!keyed.is_empty() && next(2) == 0).then(|| JoinClause {
                    first: keyed[0].clone(),
                    rest: keyed[1..].iter().map(|p| (JoinKind::Inner, (*p).clone())).collect(),
                });
                let outputs: Vec<OutputBinding> = f
                    .outputs
                    .iter()
                    .enumerate()
                    .map(|(k, p)| OutputBinding { set: id(format!("s{a}_{k}")), param: p.clone() })
                    .collect();
                available.extend(outputs.iter().map(|o| o.set.name.clone()));
                body.push(Application { function: f.name.clone(), args, outputs, join });
            }
            // The last application's first output is the composition's output.
            let outputs = vec![body.last().unwrap().outputs[0].set.clone()];
            let mut seed = shuffle_seed;
            for i in (1..body.len()).rev() {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                body.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let composition = Composition {
                name: id("comp".into()),
                inputs: (0..n_inputs).map(|k| id(format!("I{k}"))).collect(),
                outputs,
                body,
            };
            Program { functions, compositions: vec![composition] }
        },
    )
}

/// Source made of the language's tokens, and some that are not.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "function",
        "composition",
        "(",
        ")",
        "{",
        "}",
        ",",
        "=",
        "=>",
        ";",
        "all",
        "each",
        "keyed",
        "optional",
        "by",
        "inner",
        "left",
        "right",
        "outer",
        "full",
        "cross",
        "anyKeyed",
        "a",
        "b",
        "f",
        "x_1",
        "9",
        "é",
        "@",
        "/",
        "//c\n",
        "/*c*/",
        "/*",
        " ",
        "\n",
        "\t",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.join(" "))
}

fn stripped(mut p: Program) -> Program {
    p.clear_positions();
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printed_programs_parse_back(p in program()) {
        let text = p.to_string();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        prop_assert_eq!(stripped(parsed), p);
    }

    #[test]
    fn valid_programs_check_clean(p in valid_program()) {
        let text = p.to_string();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        let result = check(&parsed, &none);
        prop_assert!(result.is_ok(), "{:?}\n{}", result, text);
        let registered = |name: &str| p.function(name).map(|f| Signature { inputs: f.inputs.len(), outputs: f.outputs.len() });
        prop_assert!(check(&parsed, &registered).is_ok());
    }

    #[test]
    fn checker_never_panics_on_arbitrary_programs(p in program()) {
        let _ = check(&p, &none);
        let _ = check(&p, &|_| Some(Signature { inputs: 1, outputs: 1 }));
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(src in any::<String>()) {
        let _ = parse(&src);
    }

    #[test]
    fn parser_never_panics_on_token_soup(src in token_soup()) {
        match parse(&src) {
            Ok(p) => {
                // Whatever parses also prints and parses back, and checks without panicking.
                let _ = check(&p, &none);
                let again = parse(&p.to_string()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                prop_assert_eq!(stripped(again), stripped(p));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty() && errors.len() <= dsl::MAX_PARSE_ERRORS);
                for e in &errors {
                    prop_assert!(e.message.starts_with("expected "), "{}", e);
                    prop_assert!(e.pos.line >= 1 && e.pos.col >= 1 && e.pos.offset <= src.len());
                    prop_assert!(src.is_char_boundary(e.pos.offset));
                }
            }
        }
    }
}
