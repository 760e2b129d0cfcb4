//! Property tests: round trips over arbitrary sets, and "never panics" over arbitrary input for
//! every parser that sees untrusted bytes.

use model::wire::{Encoder, WireFormat, WireLimits, binary, json, raw};
use model::{Bytes, FunctionSpec, Item, Set, TokenTable, bearer_token, parse_size, query};
use proptest::prelude::*;

use super::CASES;

fn item() -> impl Strategy<Value = Item> {
    (
        prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        any::<Option<u64>>(),
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(name, key, data)| Item { name: name.into(), key, data: Bytes::from(data) })
}

/// Valid set names: printable, no white space at the ends.
fn set_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9 _.,é\"\\\\-]{0,15}[A-Za-z0-9é]?"
        .prop_filter("valid", |n| model::validate_set_name(n).is_ok())
}

/// Sets with distinct names, in arbitrary order.
fn sets() -> impl Strategy<Value = Vec<Set>> {
    prop::collection::vec((set_name(), prop::collection::vec(item(), 0..6)), 0..6).prop_map(|sets| {
        let mut out: Vec<Set> = Vec::new();
        for (name, items) in sets {
            if !out.iter().any(|s| s.name == name) {
                out.push(Set { name: name.into(), items });
            }
        }
        out
    })
}

/// Sets whose names need no escapes in JSON (what the fast path decodes).
fn plain_sets() -> impl Strategy<Value = Vec<Set>> {
    let item = ("[a-z0-9_.]{0,6}", any::<Option<u64>>(), prop::collection::vec(any::<u8>(), 0..24))
        .prop_map(|(name, key, data)| Item { name: name.into(), key, data: Bytes::from(data) });
    prop::collection::vec(("[A-Za-z][a-z0-9]{0,5}", prop::collection::vec(item, 0..4)), 0..4).prop_map(|sets| {
        let mut out: Vec<Set> = Vec::new();
        for (name, items) in sets {
            if !out.iter().any(|s| s.name == name) {
                out.push(Set { name: name.into(), items });
            }
        }
        out
    })
}

/// A valid binary document, then damaged: truncated, or with some bytes overwritten.
fn damaged_binary() -> impl Strategy<Value = Vec<u8>> {
    (
        sets(),
        any::<prop::sample::Index>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<bool>(),
    )
        .prop_map(|(sets, cut, pokes, truncate)| {
            let mut bytes = binary::encode(&sets).unwrap_or_default();
            for (at, value) in pokes {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
            }
            if truncate && !bytes.is_empty() {
                bytes.truncate(cut.index(bytes.len()));
            }
            bytes
        })
}

/// Text made mostly of JSON punctuation and the words of the format, to reach deep into the decoder.
fn jsonish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(":"),
            Just(","),
            Just("\"sets\""),
            Just("\"A\""),
            Just("\"name\""),
            Just("\"key\""),
            Just("\"data\""),
            Just("\"aGk=\""),
            Just("\"*\""),
            Just("1"),
            Just("-1"),
            Just("null"),
            Just(" "),
            Just("\"\\u0000\""),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn query_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("engine"),
            Just("inputs"),
            Just("outputs"),
            Just("memory"),
            Just("timeout_ms"),
            Just("="),
            Just("&"),
            Just(","),
            Just("%"),
            Just("%2C"),
            Just("%FF"),
            Just("wasm"),
            Just("builtin"),
            Just("16MiB"),
            Just("99999999999999999999"),
            Just("GiB"),
            Just("A"),
            Just("+"),
            Just("0"),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn config_text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(&b"tenant"[..]),
            Just(&b" "[..]),
            Just(&b"\t"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"#"[..]),
            Just(&b"alice"[..]),
            Just(&b"0123456789abcdef"[..]),
            Just(&b"="[..]),
            Just(&b"\xff"[..]),
            Just(&b"-"[..]),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// Sets that may break the data model: empty, long or repeated set names, long item names.
fn rough_sets() -> impl Strategy<Value = Vec<Set>> {
    let name = prop::sample::select(vec![String::new(), "A".into(), "B".into(), " x".into(), "é".repeat(130)]);
    let item_name = prop::sample::select(vec![String::new(), "i".into(), "n".repeat(256)]);
    prop::collection::vec((name, prop::collection::vec(item_name, 0..4)), 0..4).prop_map(|sets| {
        sets.into_iter()
            .map(|(name, items)| Set {
                name: name.into(),
                items: items
                    .into_iter()
                    .map(|name| Item { name: name.into(), key: None, data: Bytes::from(&b"d"[..]) })
                    .collect(),
            })
            .collect()
    })
}

/// Encodes in pieces of at most `max_items` items and about `max_bytes` bytes; returns the body
/// and the number of calls, or the error.
fn in_pieces(
    format: WireFormat,
    sets: &[Set],
    max_items: usize,
    max_bytes: usize,
) -> Result<(Vec<u8>, usize), model::wire::WireError> {
    let mut encoder = Encoder::new(format, sets, 0).expect("JSON and binary have encoders");
    let mut calls = 1;
    while !encoder.write(max_items, max_bytes)? {
        calls += 1;
    }
    Ok((encoder.into_bytes(), calls))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn encoding_in_pieces_writes_the_same_bytes(
        sets in sets(),
        binary_format in any::<bool>(),
        max_items in 1usize..5,
        max_bytes in prop::sample::select(vec![1usize, 7, 64, usize::MAX]),
    ) {
        let (format, whole) = if binary_format {
            (WireFormat::Binary, binary::encode(&sets).unwrap())
        } else {
            (WireFormat::Json, json::encode(&sets).unwrap().into_bytes())
        };
        let (pieces, calls) = in_pieces(format, &sets, max_items, max_bytes).unwrap();
        prop_assert_eq!(pieces, whole);
        let items: usize = sets.iter().map(|s| s.items.len()).sum();
        prop_assert!(calls > (items.saturating_sub(1)) / max_items, "{} items in {} calls of {}", items, calls, max_items);
    }

    #[test]
    fn encoders_refuse_what_the_model_check_refuses(sets in rough_sets(), max_items in 1usize..4) {
        let check = WireLimits::MODEL.check(&sets).err();
        prop_assert_eq!(json::encode(&sets).err(), check.clone());
        prop_assert_eq!(binary::encode(&sets).err(), check.clone());
        prop_assert_eq!(in_pieces(WireFormat::Json, &sets, max_items, usize::MAX).err(), check.clone());
        prop_assert_eq!(in_pieces(WireFormat::Binary, &sets, max_items, 3).err(), check);
    }

    #[test]
    fn json_round_trip(sets in sets()) {
        let text = json::encode(&sets).unwrap();
        prop_assert_eq!(json::decode(text.as_bytes(), &WireLimits::DEFAULT).unwrap(), sets);
    }

    /// The JSON fast path gives what the full decoder gives, or leaves the document to it: over
    /// encoded documents (spaced out, damaged, under tight limits) and token soup.
    #[test]
    fn the_json_fast_path_agrees_with_the_full_decoder(
        sets in sets(),
        plain in plain_sets(),
        text in jsonish(),
        space in prop::sample::select(vec!["", " ", "\n\t ", "\r"]),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let spaced = |doc: &str| {
            doc.chars().fold(String::new(), |mut out, c| {
                out.push(c);
                if matches!(c, '{' | '[' | ':' | ',' | '}' | ']') { out.push_str(space) }
                out
            })
        };
        let encoded = json::encode(&plain).unwrap();
        // A plain document, spaced out or not, takes the fast path.
        prop_assert_eq!(json::decode_plain(encoded.as_bytes(), &WireLimits::DEFAULT), Some(plain.clone()));
        prop_assert_eq!(json::decode_plain(spaced(&encoded).as_bytes(), &WireLimits::DEFAULT), Some(plain));
        let mut damaged = json::encode(&sets).unwrap().into_bytes();
        for (at, byte) in damage {
            if !damaged.is_empty() {
                let at = at.index(damaged.len());
                damaged[at] = byte;
            }
        }
        let tight = WireLimits { max_sets: 2, max_items: 3, max_total_bytes: 40, max_name_len: 4 };
        for body in [encoded.into_bytes(), json::encode(&sets).unwrap().into_bytes(), damaged, text.into_bytes()] {
            for limits in [WireLimits::DEFAULT, tight] {
                let full = json::decode_full(&body, &limits);
                if let Some(fast) = json::decode_plain(&body, &limits) {
                    prop_assert_eq!(Ok(fast), full.clone());
                }
                prop_assert_eq!(json::decode(&body, &limits), full);
            }
        }
    }

    #[test]
    fn binary_round_trip(sets in sets()) {
        let bytes = binary::encode(&sets).unwrap();
        prop_assert_eq!(binary::decode(&Bytes::from(bytes), &WireLimits::DEFAULT).unwrap(), sets);
    }

    #[test]
    fn raw_round_trip(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let sets = raw::decode(Bytes::from(data.clone()), "in", "", &WireLimits::DEFAULT).unwrap();
        prop_assert_eq!(&*raw::encode(&sets).unwrap(), &data[..]);
    }

    #[test]
    fn json_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), text in jsonish()) {
        let _ = json::decode(&bytes, &WireLimits::DEFAULT);
        let _ = json::decode(text.as_bytes(), &WireLimits::DEFAULT);
        let tight = WireLimits { max_sets: 1, max_items: 1, max_total_bytes: 1, max_name_len: 1 };
        let _ = json::decode(text.as_bytes(), &tight);
    }

    #[test]
    fn binary_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), damaged in damaged_binary()) {
        let _ = binary::decode(&Bytes::from(bytes), &WireLimits::DEFAULT);
        let _ = binary::decode(&Bytes::from(damaged.clone()), &WireLimits::DEFAULT);
        let _ = binary::decode(&Bytes::from(damaged), &WireLimits::MODEL);
    }

    #[test]
    fn raw_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), set in ".{0,8}", item in ".{0,8}") {
        let _ = raw::decode(Bytes::from(bytes), &set, &item, &WireLimits::DEFAULT);
    }

    #[test]
    fn query_parser_never_panics(any_text in ".{0,128}", text in query_text(), name in ".{0,8}") {
        let _ = FunctionSpec::from_query(&name, &any_text);
        let _ = FunctionSpec::from_query("f", &text);
        let _ = query::percent_decode(&any_text);
        let _ = parse_size(&any_text);
    }

    #[test]
    fn token_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), text in config_text()) {
        let _ = TokenTable::parse(&bytes);
        if let Ok(table) = TokenTable::parse(&text) {
            let _ = table.authenticate(Some(&bytes));
        }
        let _ = bearer_token(&bytes);
    }
}
