use model::wire::{WireError, WireErrorKind, WireLimits, json};
use model::{Bytes, Item, Set};

fn item(name: &str, key: Option<u64>, data: &[u8]) -> Item {
    Item { name: name.into(), key, data: Bytes::from(data) }
}

fn set(name: &str, items: Vec<Item>) -> Set {
    Set { name: name.into(), items }
}

fn decode(text: &str) -> Result<Vec<Set>, WireError> {
    json::decode(text.as_bytes(), &WireLimits::DEFAULT)
}

/// The error message for `text`, which must not decode.
fn fails(text: &str) -> String {
    decode(text).expect_err(text).to_string()
}

#[test]
fn decodes_the_design_example() {
    let sets = decode(r#"{"sets":{"A":[{"name":"x","data":"aGVsbG8="}]}}"#).unwrap();
    assert_eq!(sets, [set("A", vec![item("x", None, b"hello")])]);
}

#[test]
fn document_order_defaults_and_keys() {
    let text = r#" {
        "sets": {
            "zeta": [ {"data": ""}, {"key": 7, "name": "k", "data": "AQID"}, {"key": null, "data": "/w=="} ],
            "alpha": [],
            "mid": [ {"name": "é\n\"", "key": 18446744073709551615, "data": "AAAA"} ]
        }
    } "#;
    let sets = decode(text).unwrap();
    assert_eq!(
        sets,
        [
            set("zeta", vec![item("", None, b""), item("k", Some(7), &[1, 2, 3]), item("", None, &[0xff])]),
            set("alpha", vec![]),
            set("mid", vec![item("é\n\"", Some(u64::MAX), &[0, 0, 0])]),
        ]
    );
    assert_eq!(decode(r#"{"sets":{}}"#).unwrap(), []);
}

#[test]
fn encodes_the_same_shape() {
    let sets = [set("C", vec![item("x", None, b"hello"), item("q\"", Some(3), b"")]), set("D", vec![])];
    let text = json::encode(&sets).unwrap();
    assert_eq!(text, r#"{"sets":{"C":[{"name":"x","data":"aGVsbG8="},{"name":"q\"","key":3,"data":""}],"D":[]}}"#);
    assert_eq!(decode(&text).unwrap(), sets);
}

#[test]
fn encoder_refuses_what_the_model_forbids() {
    let dup = [set("A", vec![]), set("A", vec![])];
    assert_eq!(json::encode(&dup).unwrap_err().to_string(), "sets.A: a set of this name was already given");
    let long = [set("A", vec![item(&"n".repeat(256), None, b"")])];
    assert_eq!(
        json::encode(&long).unwrap_err().to_string(),
        "sets.A[0].name: the name is 256 bytes long, at most 255 are allowed"
    );
    assert!(json::encode(&[set("", vec![])]).is_err());
}

#[test]
fn structure_errors_say_where() {
    let cases: &[(&str, &str)] = &[
        ("", "EOF while parsing a value at line 1 column 0"),
        ("{\"sets\":{}} x", "trailing characters at line 1 column 13"),
        ("[]", "invalid type: sequence, expected an object with a \"sets\" field at line 1 column 0"),
        ("{}", "missing field \"sets\""),
        (r#"{"sets":{},"extra":1}"#, "unknown field \"extra\""),
        (r#"{"sets":{},"sets":{}}"#, "sets: field \"sets\" given twice"),
        (r#"{"sets":[]}"#, "sets: invalid type: sequence, expected an object from set names"),
        (r#"{"sets":{"A":{}}}"#, "sets.A: invalid type: map, expected an array of items"),
        (r#"{"sets":{"A":[1]}}"#, "sets.A[0]: invalid type: integer `1`, expected an item object"),
        (r#"{"sets":{"A":[{"data":"","size":1}]}}"#, "sets.A[0]: unknown field \"size\""),
        (r#"{"sets":{"A":[{"data":"","data":""}]}}"#, "sets.A[0].data: field \"data\" given twice"),
        (r#"{"sets":{"A":[{"name":"","name":"","data":""}]}}"#, "sets.A[0].name: field \"name\" given twice"),
        (r#"{"sets":{"A":[{"key":1,"key":2,"data":""}]}}"#, "sets.A[0].key: field \"key\" given twice"),
        (r#"{"sets":{"A":[{"data":""},{"name":"x"}]}}"#, "sets.A[1]: missing field \"data\""),
        (r#"{"sets":{"A":[{"name":5,"data":""}]}}"#, "sets.A[0].name: invalid type: integer `5`, expected a string"),
        (r#"{"sets":{"A":[{"key":-1,"data":""}]}}"#, "sets.A[0].key: invalid type: integer `-1`, expected a key"),
        (r#"{"sets":{"A":[{"key":1.5,"data":""}]}}"#, "sets.A[0].key: invalid type: floating point `1.5`"),
        (r#"{"sets":{"A":[{"key":"1","data":""}]}}"#, "sets.A[0].key: invalid type: string \"1\""),
        (r#"{"sets":{"A":[{"key":18446744073709551616,"data":""}]}}"#, "sets.A[0].key: invalid type: floating point"),
        (r#"{"sets":{"A":[{"data":null}]}}"#, "sets.A[0].data: invalid type: null, expected a base64 string"),
        (r#"{"sets":{"A":[],"A":[]}}"#, "sets.A: a set of this name was already given"),
        (r#"{"sets":{"":[]}}"#, "sets[\"\"]: the name is empty"),
        (r#"{"sets":{"a\u0000":[]}}"#, "sets[\"a\\0\"]: the name has '\\0' at byte 1, which is not allowed"),
        (r#"{"sets":{"A":[{"data":""}}}"#, "sets.A: expected `,` or `]` at line 1 column 26"),
        (r#"{"sets":{"A":[{"data":"" "name":""}]}}"#, "sets.A[0]: expected `,` or `}` at line 1 column 26"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .map(|&(text, message)| (text, message, fails(text)))
        .filter(|(_, message, got)| !got.starts_with(message))
        .map(|(text, message, got)| format!("{text}\n  got:  {got}\n  want: {message}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn base64_errors_give_the_offset() {
    let bad_at_17 = r#"{"sets":{"A":[{"data":""},{"data":""},{"data":""},{"data":"aGVsbG8gd29ybGQh*GVsbG8="}]}}"#;
    let e = decode(bad_at_17).unwrap_err();
    assert_eq!(e.at(), "sets.A[3].data");
    assert_eq!(
        e.kind(),
        &WireErrorKind::InvalidBase64 {
            at_byte: Some(16),
            why: "not a base64 character (standard alphabet, no line breaks)"
        }
    );
    assert_eq!(
        e.to_string(),
        "sets.A[3].data: invalid base64 at byte 16: not a base64 character (standard alphabet, no line breaks)"
    );
    assert!(!e.is_limit());
    for (data, message) in [
        ("aGVsbG8", "invalid base64: missing or wrong '=' padding"),
        ("aGVsbG8==", "invalid base64 at byte 7: '=' is only allowed as padding"),
        ("aGVs\nbG8=", "invalid base64 at byte 4: not a base64 character"),
        ("aGVsb", "invalid base64: the length is not possible"),
        ("aGVsbG9=", "invalid base64 at byte 6: the last symbol has bits set"),
        ("aGVs-G8=", "invalid base64 at byte 4: not a base64 character"),
    ] {
        let text = format!(r#"{{"sets":{{"B":[{{"data":"{}"}}]}}}}"#, data.replace('\n', "\\n"));
        let got = fails(&text);
        assert!(got.starts_with(&format!("sets.B[0].data: {message}")), "{data:?}: {got}");
    }
}

#[test]
fn limits_are_enforced_at_the_boundary() {
    let limits = WireLimits { max_sets: 2, max_items: 3, max_total_bytes: 5, max_name_len: 4 };
    let ok = r#"{"sets":{"A":[{"name":"abcd","data":"aGVs"}],"Bcde":[{"data":"aGk="},{"data":""}]}}"#;
    assert_eq!(json::decode(ok.as_bytes(), &limits).unwrap().len(), 2);
    let cases: &[(&str, &str, bool)] = &[
        (r#"{"sets":{"A":[],"B":[],"C":[]}}"#, "sets: more than 2 sets", true),
        (
            r#"{"sets":{"A":[{"data":""},{"data":""}],"B":[{"data":""},{"data":""}]}}"#,
            "sets.B[1]: more than 3 items in all",
            true,
        ),
        (
            r#"{"sets":{"A":[{"data":"aGVs"}],"B":[{"data":"aGVs"}]}}"#,
            "sets.B[0].data: more than 5 bytes of item data in all",
            true,
        ),
        (r#"{"sets":{"A":[{"data":"aGVsbG8h"}]}}"#, "sets.A[0].data: more than 5 bytes", true),
        (r#"{"sets":{"Abcde":[]}}"#, "sets.Abcde: the name is 5 bytes long, at most 4 are allowed", false),
        (r#"{"sets":{"A":[{"name":"abcde","data":""}]}}"#, "sets.A[0].name: the name is 5 bytes long", false),
    ];
    for &(text, message, is_limit) in cases {
        let e = json::decode(text.as_bytes(), &limits).unwrap_err();
        assert!(e.to_string().starts_with(message), "{text}: {e}");
        assert_eq!(e.is_limit(), is_limit, "{text}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    // The decoder never descends into a value it does not expect, so nesting ends at the first
    // unexpected bracket, wherever it is.
    for (text, message) in [
        (deep.clone(), "invalid type: sequence, expected an object"),
        (format!("{deep}{}", "]".repeat(100_000)), "invalid type: sequence, expected an object"),
        (format!(r#"{{"sets":{deep}"#), "sets: invalid type: sequence, expected an object from set names"),
        (format!(r#"{{"sets":{{"A":{deep}"#), "sets.A[0]: invalid type: sequence, expected an item object"),
        (format!(r#"{{"sets":{{"A":[{deep}"#), "sets.A[0]: invalid type: sequence, expected an item object"),
        (format!(r#"{{"sets":{{"A":[{{"data":{deep}"#), "sets.A[0].data: invalid type: sequence"),
        (format!(r#"{{"sets":{{"A":[{{"key":{deep}"#), "sets.A[0].key: invalid type: sequence"),
        (format!(r#"{{"sets":{{"A":[{{"x":{deep}"#), "sets.A[0]: unknown field \"x\""),
        ("{\"a\":".repeat(100_000), "unknown field \"a\""),
    ] {
        let got = fails(&text);
        assert!(got.starts_with(message), "got {got}, want {message}");
    }
    // And serde_json keeps its recursion limit (its `unbounded_depth` feature is off), in case a
    // later change makes the decoder walk arbitrary values.
    let e = serde_json::from_slice::<serde_json::Value>(deep.as_bytes()).unwrap_err();
    assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
}

#[test]
fn messages_quoted_in_the_docs() {
    let e = fails(r#"{"sets":{"A":[{"key":-1,"data":""}]}}"#);
    assert_eq!(
        e,
        "sets.A[0].key: invalid type: integer `-1`, expected a key: an integer from 0 to 18446744073709551615, \
         or null at line 1 column 23"
    );
    let many: Vec<String> = (0..65).map(|i| format!("\"s{i}\":[]")).collect();
    assert_eq!(fails(&format!("{{\"sets\":{{{}}}}}", many.join(","))), "sets: more than 64 sets");
    let long = "n".repeat(300);
    let text = format!(r#"{{"sets":{{"two words":[{{"name":"{long}","data":""}}]}}}}"#);
    assert_eq!(fails(&text), "sets[\"two words\"][0].name: the name is 300 bytes long, at most 255 are allowed");
}
