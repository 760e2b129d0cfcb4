use model::{
    DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_MS, EngineKind, FunctionDecl, FunctionSpec, ImageDigest, MAX_QUERY_LEN,
    NameError, Param, SpecError, parse_size,
};

fn parse(query: &str) -> Result<FunctionSpec, SpecError> {
    FunctionSpec::from_query("classify", query)
}

#[test]
fn the_design_example_parses() {
    let spec = parse("engine=wasm&inputs=A,B&outputs=C&memory=16MiB&timeout_ms=1000").unwrap();
    assert_eq!(spec.name(), "classify");
    assert_eq!(spec.engine(), EngineKind::Wasm);
    assert_eq!(spec.inputs(), ["A", "B"]);
    assert_eq!(spec.outputs(), ["C"]);
    assert_eq!(spec.memory_bytes(), 16 << 20);
    assert_eq!(spec.timeout_ms(), 1000);
}

#[test]
fn defaults_and_order() {
    let spec = parse("outputs=z,a,m&engine=native").unwrap();
    assert_eq!(spec.inputs(), [] as [&str; 0]);
    assert_eq!(spec.outputs(), ["z", "a", "m"], "order is kept: binding is by position");
    assert_eq!(spec.memory_bytes(), DEFAULT_MEMORY_BYTES);
    assert_eq!(spec.timeout_ms(), DEFAULT_TIMEOUT_MS);
    assert_eq!(parse("engine=mpk&outputs=x&inputs=").unwrap().inputs().len(), 0);
}

#[test]
fn values_are_percent_decoded() {
    let spec = parse("engine=paging&inputs=A%2CB&outputs=C%2cD&memory=512%4BiB").unwrap();
    assert_eq!(spec.inputs(), ["A", "B"]);
    assert_eq!(spec.outputs(), ["C", "D"]);
    assert_eq!(spec.memory_bytes(), 512 << 10);
    let spec = parse("engine=wasm&outputs=two+words,%C3%A9t%C3%A9&&").unwrap();
    assert_eq!(spec.outputs(), ["two words", "été"]);
}

#[test]
fn every_engine() {
    for kind in EngineKind::ALL {
        assert_eq!(EngineKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        let spec = parse(&format!("engine={kind}&outputs=o"));
        assert_eq!(spec.is_ok(), kind.is_uploadable(), "{kind}");
    }
    assert_eq!(EngineKind::parse("WASM"), None);
    // The kernel declares built-in functions itself.
    let http = FunctionSpec::new("HTTP", EngineKind::Builtin, &["requests"], &["responses"]).unwrap();
    assert_eq!(http.engine(), EngineKind::Builtin);
}

#[test]
fn parameter_errors_name_the_parameter() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("engine=wasm&outputs=o&colour=red", Some("colour"), "unknown parameter \"colour\""),
        ("engine=wasm&engine=mpk&outputs=o", Some("engine"), "engine: given more than once"),
        ("outputs=o", Some("engine"), "engine: missing (one of wasm, mpk, paging, native)"),
        ("engine=wasm", Some("outputs"), "outputs: missing (a function needs at least one output set)"),
        ("engine=jvm&outputs=o", Some("engine"), "engine: unknown engine \"jvm\""),
        ("engine=builtin&outputs=o", Some("engine"), "engine: builtin functions are part of the platform"),
        ("engine=wasm&outputs=o&inputs", Some("inputs"), "inputs: has no value (write inputs=...)"),
        ("engine=wasm&outputs=", Some("outputs"), "outputs: a function needs at least one output set"),
        ("engine=wasm&outputs=a,,b", Some("outputs"), "outputs: set 2: the name is empty"),
        ("engine=wasm&outputs=a,", Some("outputs"), "outputs: set 2: the name is empty"),
        ("engine=wasm&outputs=a,%20b", Some("outputs"), "outputs: set 2: the name has ' ' at byte 0"),
        ("engine=wasm&outputs=a%0Ab", Some("outputs"), "outputs: set 1: the name has '\\n' at byte 1"),
        ("engine=wasm&outputs=o&inputs=x,y,x", Some("inputs"), "inputs: set \"x\" appears twice"),
        ("engine=wasm&outputs=o&memory=16MB", Some("memory"), "memory: \"16MB\" is not a size"),
        ("engine=wasm&outputs=o&memory=1KiB", Some("memory"), "memory: 1024 bytes is outside 65536..=4294967296"),
        ("engine=wasm&outputs=o&memory=5GiB", Some("memory"), "memory: 5368709120 bytes is outside"),
        ("engine=wasm&outputs=o&memory=99999999999GiB", Some("memory"), "memory: \"99999999999GiB\" is too large"),
        ("engine=wasm&outputs=o&timeout_ms=0", Some("timeout_ms"), "timeout_ms: 0 ms is outside 1..=300000"),
        ("engine=wasm&outputs=o&timeout_ms=300001", Some("timeout_ms"), "timeout_ms: 300001 ms is outside"),
        ("engine=wasm&outputs=o&timeout_ms=1s", Some("timeout_ms"), "timeout_ms: \"1s\" is not a whole number"),
        ("engine=wasm&outputs=o&timeout_ms=-5", Some("timeout_ms"), "timeout_ms: \"-5\" is not a whole number"),
        ("engine=wasm&outputs=o%", Some("outputs"), "outputs: '%' at byte 1 is not followed by two hex digits"),
        ("engine=wasm&outputs=%FF", Some("outputs"), "outputs: the decoded text is not UTF-8"),
        ("engine=wasm&outputs=o&%ZZ=1", Some("%ZZ"), "unknown parameter \"%ZZ\""),
    ];
    for &(query, param, message) in cases {
        let e = parse(query).expect_err(query);
        assert_eq!(e.param(), param, "{query}");
        assert!(e.to_string().starts_with(message), "{query}: got {e:?} / {e}");
    }
}

#[test]
fn too_many_sets() {
    let sets: Vec<String> = (0..17).map(|i| format!("s{i}")).collect();
    let e = parse(&format!("engine=wasm&outputs=o&inputs={}", sets.join(","))).unwrap_err();
    assert_eq!(e.to_string(), "inputs: 17 sets, at most 16 are allowed");
    assert!(parse(&format!("engine=wasm&outputs={}", sets[..16].join(","))).is_ok());
}

#[test]
fn the_same_name_may_be_input_and_output() {
    let spec = parse("engine=wasm&inputs=items&outputs=items").unwrap();
    assert_eq!(spec.inputs(), spec.outputs());
}

#[test]
fn bad_function_names() {
    let e = FunctionSpec::from_query("a/b", "engine=wasm&outputs=o").unwrap_err();
    assert_eq!(e.param(), Some("name"));
    assert_eq!(e.to_string(), "name: the name has '/' at byte 1, which is not allowed");
    assert!(FunctionSpec::from_query("", "engine=wasm&outputs=o").is_err());
    assert!(FunctionSpec::from_query("..", "engine=wasm&outputs=o").is_err());
    assert!(FunctionSpec::from_query(&"f".repeat(65), "engine=wasm&outputs=o").is_err());
    assert_eq!(model::validate_function_name("ok.name-1_x"), Ok(()));
    assert_eq!(model::validate_function_name("-x"), Err(NameError::BadStart('-')));
}

#[test]
fn query_length_is_bounded() {
    let long = format!("engine=wasm&outputs=o&{}", "&".repeat(MAX_QUERY_LEN));
    assert!(matches!(parse(&long), Err(SpecError::QueryTooLong { .. })));
    assert_eq!(parse(&long).unwrap_err().param(), None);
}

#[test]
fn limits_via_builders() {
    let spec = FunctionSpec::new("f", EngineKind::Wasm, &[], &["o"]).unwrap();
    assert!(spec.clone().with_memory(64 << 10).is_ok());
    assert!(spec.clone().with_memory(4 << 30).is_ok());
    assert!(spec.clone().with_memory((4 << 30) + 1).is_err());
    assert!(spec.clone().with_timeout_ms(1).is_ok());
    assert!(spec.clone().with_timeout_ms(300_000).is_ok());
    let e = spec.with_timeout_ms(0).unwrap_err();
    assert_eq!(e, SpecError::Invalid { param: Param::TimeoutMs, reason: "0 ms is outside 1..=300000".into() });
    assert!(FunctionSpec::new("f", EngineKind::Wasm, &["a"], &[]).is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("10B"), Ok(10));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("0"), Ok(0));
    for bad in ["", "MiB", "16MB", "16mib", "16 MiB", " 16", "1.5GiB", "+5", "-5", "16M", "18446744073709551616"] {
        assert!(parse_size(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    assert!(parse_size("17179869184GiB").unwrap_err().contains("too large"));
}

#[test]
fn declaration_and_listing_json() {
    let spec = parse("engine=wasm&inputs=A,B&outputs=C&memory=16MiB&timeout_ms=1000").unwrap();
    let decl = FunctionDecl::new(spec.clone(), b"abc");
    assert_eq!(decl.name(), "classify");
    assert_eq!(decl.spec(), &spec);
    assert_eq!(decl.digest().to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(FunctionDecl::with_digest(spec, *decl.digest()), decl);
    let json = decl.to_json();
    assert_eq!(
        json,
        "{\"name\":\"classify\",\"engine\":\"wasm\",\
         \"digest\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\
         \"inputs\":[\"A\",\"B\"],\"outputs\":[\"C\"],\"memory\":16777216,\"timeout_ms\":1000}"
    );
    let spec = parse("engine=wasm&outputs=%22quoted%22+%5C").unwrap();
    let value: serde_json::Value =
        serde_json::from_str(&FunctionDecl::with_digest(spec, ImageDigest::of(b"")).to_json()).unwrap();
    assert_eq!(value["outputs"][0], "\"quoted\" \\");
}
