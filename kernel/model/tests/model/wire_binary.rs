use model::wire::{WireError, WireErrorKind, WireLimits, binary};
use model::{Bytes, Item, Set};

/// The example of docs/wire-formats.md, byte for byte.
const EXAMPLE: &[u8] = &[
    0x50, 0x53, 0x45, 0x54, // "PSET"
    0x01, // version 1
    0x00, // flags
    0x02, 0x00, 0x00, 0x00, // 2 sets
    0x01, 0x41, // set name "A"
    0x02, 0x00, 0x00, 0x00, // 2 items
    0x01, 0x78, // item name "x"
    0x00, // flags: no key
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 2 bytes of data
    0x68, 0x69, // "hi"
    0x00, // item name ""
    0x01, // flags: key follows
    0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // key 0x102
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // no data
    0x01, 0x42, // set name "B"
    0x00, 0x00, 0x00, 0x00, // no items
];

fn example_sets() -> Vec<Set> {
    vec![
        Set {
            name: "A".into(),
            items: vec![
                Item { name: "x".into(), key: None, data: Bytes::from(&b"hi"[..]) },
                Item { name: Default::default(), key: Some(0x102), data: Bytes::empty() },
            ],
        },
        Set::new("B"),
    ]
}

fn decode(bytes: &[u8]) -> Result<Vec<Set>, WireError> {
    binary::decode(&Bytes::from(bytes), &WireLimits::DEFAULT)
}

#[test]
fn the_documented_example() {
    assert_eq!(binary::encode(&example_sets()).unwrap(), EXAMPLE);
    assert_eq!(decode(EXAMPLE).unwrap(), example_sets());
    assert_eq!(binary::encode(&[]).unwrap(), b"PSET\x01\x00\x00\x00\x00\x00");
    assert_eq!(decode(b"PSET\x01\x00\x00\x00\x00\x00").unwrap(), []);
}

#[test]
fn item_data_are_slices_of_the_input() {
    let input = Bytes::from(EXAMPLE);
    let sets = binary::decode(&input, &WireLimits::DEFAULT).unwrap();
    let data = &sets[0].items[0].data;
    // "hi" sits at offset 27 of the input: same buffer, nothing copied.
    assert_eq!(data.as_ptr() as usize - input.as_ptr() as usize, 27);
    // A decoder handed a slice of a larger buffer slices within it.
    let mut framed = b"junk".to_vec();
    framed.extend_from_slice(EXAMPLE);
    let outer = Bytes::from(framed);
    let inner = outer.slice(4..outer.len()).unwrap();
    let sets = binary::decode(&inner, &WireLimits::DEFAULT).unwrap();
    assert_eq!(sets, example_sets());
    assert_eq!(sets[0].items[0].data.as_ptr() as usize - outer.as_ptr() as usize, 31);
}

/// `EXAMPLE` with `bytes` written at `at`.
fn patched(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = EXAMPLE.to_vec();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    out
}

#[test]
fn malformed_documents_say_where() {
    let cases: Vec<(Vec<u8>, &str, WireErrorKind)> = vec![
        (vec![], "header", WireErrorKind::Truncated { offset: 0, needed: 4, left: 0 }),
        (b"PSE".to_vec(), "header", WireErrorKind::Truncated { offset: 0, needed: 4, left: 3 }),
        (patched(0, b"JSON"), "header", WireErrorKind::BadMagic),
        (patched(4, &[2]), "header", WireErrorKind::UnsupportedVersion(2)),
        (patched(5, &[0x80]), "header", WireErrorKind::ReservedBits(0x80)),
        (EXAMPLE[..8].to_vec(), "header", WireErrorKind::Truncated { offset: 6, needed: 4, left: 2 }),
        (EXAMPLE[..10].to_vec(), "sets[#0].name", WireErrorKind::Truncated { offset: 10, needed: 1, left: 0 }),
        (patched(10, &[0]), "sets[\"\"]", WireErrorKind::BadName(model::NameError::Empty)),
        (patched(11, &[0xff]), "sets[#0].name", WireErrorKind::InvalidUtf8),
        (patched(12, &[3]), "sets.A[2].data", WireErrorKind::Truncated { offset: 50, needed: 8, left: 3 }),
        (patched(17, &[0xc0]), "sets.A[0].name", WireErrorKind::InvalidUtf8),
        (patched(18, &[0x03]), "sets.A[0].flags", WireErrorKind::ReservedBits(0x03)),
        (
            patched(19, &[0xff, 0xff]),
            "sets.A[0].data",
            WireErrorKind::Truncated { offset: 27, needed: 0xffff, left: 26 },
        ),
        (EXAMPLE[..35].to_vec(), "sets.A[1].key", WireErrorKind::Truncated { offset: 31, needed: 8, left: 4 }),
        (patched(48, b"A"), "sets.A", WireErrorKind::DuplicateSet),
        ([EXAMPLE, b"x"].concat(), "body", WireErrorKind::TrailingBytes { offset: 53 }),
    ];
    for (bytes, at, kind) in cases {
        let e = decode(&bytes).unwrap_err();
        assert_eq!((e.at(), e.kind()), (at, &kind), "{bytes:02x?}");
        assert!(!e.is_limit());
    }
    let e = decode(&patched(19, &[0xff, 0xff])).unwrap_err();
    assert_eq!(e.to_string(), "sets.A[0].data: truncated: 65535 bytes needed at byte 27, only 26 left");
}

#[test]
fn counts_and_lengths_are_checked_before_allocating() {
    // Claims of 4 billion sets or items, or 2^64 bytes, in a tiny document.
    let many_sets = patched(6, &[0xff, 0xff, 0xff, 0xff]);
    let e = decode(&many_sets).unwrap_err();
    assert_eq!((e.at(), e.kind()), ("header", &WireErrorKind::TooManySets { max: 64 }));
    assert!(e.is_limit());
    let many_items = patched(12, &[0xff, 0xff, 0xff, 0xff]);
    let e = decode(&many_items).unwrap_err();
    assert_eq!((e.at(), e.kind()), ("sets.A", &WireErrorKind::TooManyItems { max: 65_536 }));
    let huge = patched(19, &[0xff; 8]);
    let e = decode(&huge).unwrap_err();
    assert_eq!((e.at(), e.kind()), ("sets.A[0].data", &WireErrorKind::TooManyBytes { max: 64 << 20 }));
    // Without limits, the same claims fail as truncation, having allocated nothing large.
    let unlimited = WireLimits::MODEL;
    for bytes in [many_sets, many_items, huge] {
        let e = binary::decode(&Bytes::from(bytes), &unlimited).unwrap_err();
        assert!(matches!(e.kind(), WireErrorKind::Truncated { .. } | WireErrorKind::TooManyBytes { .. }), "{e}");
    }
}

#[test]
fn limits_are_enforced_at_the_boundary() {
    let exact = WireLimits { max_sets: 2, max_items: 2, max_total_bytes: 2, max_name_len: 1 };
    assert_eq!(binary::decode(&Bytes::from(EXAMPLE), &exact).unwrap(), example_sets());
    for (limits, message) in [
        (WireLimits { max_sets: 1, ..exact }, "header: more than 1 sets"),
        (WireLimits { max_items: 1, ..exact }, "sets.A: more than 1 items in all"),
        (WireLimits { max_total_bytes: 1, ..exact }, "sets.A[0].data: more than 1 bytes of item data in all"),
        (WireLimits { max_name_len: 0, ..exact }, "sets.A: the name is 1 bytes long, at most 0 are allowed"),
    ] {
        let e = binary::decode(&Bytes::from(EXAMPLE), &limits).unwrap_err();
        assert_eq!(e.to_string(), message);
    }
}

#[test]
fn encoder_refuses_what_the_model_forbids() {
    let long = [Set { name: "s".repeat(256).into(), items: vec![] }];
    assert!(binary::encode(&long).unwrap_err().to_string().contains("at most 255"));
    let dup = [Set::new("a"), Set::new("a")];
    assert_eq!(binary::encode(&dup).unwrap_err().kind(), &WireErrorKind::DuplicateSet);
}

#[test]
fn limits_check_in_memory_sets() {
    let sets = example_sets();
    assert_eq!(WireLimits::DEFAULT.check(&sets), Ok(()));
    let tight = WireLimits { max_sets: 1, ..WireLimits::DEFAULT };
    assert_eq!(tight.check(&sets).unwrap_err().kind(), &WireErrorKind::TooManySets { max: 1 });
    let tight = WireLimits { max_items: 1, ..WireLimits::DEFAULT };
    assert_eq!(tight.check(&sets).unwrap_err().at(), "sets.A[1]");
    let tight = WireLimits { max_total_bytes: 1, ..WireLimits::DEFAULT };
    assert_eq!(tight.check(&sets).unwrap_err().at(), "sets.A[0].data");
    assert_eq!(WireLimits::default(), WireLimits::DEFAULT);
}

#[test]
fn media_types() {
    use model::wire::WireFormat;
    assert_eq!(WireFormat::from_media_type("Application/JSON; charset=utf-8"), Some(WireFormat::Json));
    assert_eq!(WireFormat::from_media_type("application/x-pappus-sets"), Some(WireFormat::Binary));
    assert_eq!(WireFormat::from_media_type("text/plain"), None);
    assert_eq!(WireFormat::for_request(Some("application/json")), WireFormat::Json);
    assert_eq!(WireFormat::for_request(Some("application/x-pappus-sets")), WireFormat::Binary);
    assert_eq!(WireFormat::for_request(Some("application/x-www-form-urlencoded")), WireFormat::Raw);
    assert_eq!(WireFormat::for_request(None), WireFormat::Raw);
    assert_eq!(WireFormat::for_response(None), WireFormat::Json);
    assert_eq!(WireFormat::for_response(Some("*/*")), WireFormat::Json);
    assert_eq!(WireFormat::for_response(Some("text/html, application/octet-stream;q=0.9")), WireFormat::Raw);
    assert_eq!(WireFormat::Binary.media_type(), "application/x-pappus-sets");
}

/// A binary document of empty sets with these names, built by hand.
fn empty_sets_document(names: &[String]) -> Vec<u8> {
    let mut out = b"PSET\x01\x00".to_vec();
    out.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for name in names {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

/// Set names repeated anywhere are refused by every decoder, encoder and check, with few sets
/// (names compared one by one) and with many (kept in a tree); distinct names never are.
#[test]
fn repeated_set_names_are_refused_with_few_and_many_sets() {
    use model::wire::json;
    for n in 1..=20usize {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let sets: Vec<Set> = names.iter().map(Set::new).collect();
        let limits = WireLimits::default();
        assert!(WireLimits::MODEL.check(&sets).is_ok(), "{n} distinct");
        let encoded = binary::encode(&sets).unwrap();
        assert_eq!(binary::decode(&Bytes::from(encoded), &limits).unwrap(), sets, "{n} distinct (binary)");
        let text = json::encode(&sets).unwrap();
        assert_eq!(json::decode(text.as_bytes(), &limits).unwrap(), sets, "{n} distinct (json)");
        for again in 0..n {
            let mut names = names.clone();
            names.push(names[again].clone());
            let sets: Vec<Set> = names.iter().map(Set::new).collect();
            let duplicate = |r: Result<_, WireError>| r.err().map(|e| e.kind().clone());
            let want = Some(WireErrorKind::DuplicateSet);
            assert_eq!(duplicate(WireLimits::MODEL.check(&sets)), want, "{n} sets, s{again} again (check)");
            assert_eq!(duplicate(binary::encode(&sets).map(drop)), want, "{n} sets, s{again} again (encode)");
            assert_eq!(duplicate(json::encode(&sets).map(drop)), want, "{n} sets, s{again} again (json encode)");
            let document = Bytes::from(empty_sets_document(&names));
            assert_eq!(duplicate(binary::decode(&document, &limits).map(drop)), want, "{n}, s{again} (binary)");
            let fields: Vec<String> = names.iter().map(|n| format!("\"{n}\":[]")).collect();
            let text = format!("{{\"sets\":{{{}}}}}", fields.join(","));
            assert_eq!(duplicate(json::decode(text.as_bytes(), &limits).map(drop)), want, "{n}, s{again} (json)");
        }
    }
}
