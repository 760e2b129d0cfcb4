use model::wire::{WireErrorKind, WireLimits, raw};
use model::{Bytes, Item, Set};

#[test]
fn body_becomes_one_item_without_copying() {
    let body = Bytes::from(&b"payload"[..]);
    let sets = raw::decode(body.clone(), "pics", "", &WireLimits::DEFAULT).unwrap();
    assert_eq!(
        sets,
        [Set { name: "pics".into(), items: vec![Item { name: Default::default(), key: None, data: body.clone() }] }]
    );
    assert_eq!(sets[0].items[0].data.as_ptr(), body.as_ptr());
    let named = raw::decode(Bytes::empty(), "pics", "cat.jpg", &WireLimits::DEFAULT).unwrap();
    assert_eq!(named[0].items[0].name, "cat.jpg");
}

#[test]
fn decode_errors() {
    let limits = WireLimits { max_total_bytes: 3, ..WireLimits::DEFAULT };
    let e = raw::decode(Bytes::from(&b"four"[..]), "in", "", &limits).unwrap_err();
    assert_eq!(e.to_string(), "sets.in[0].data: more than 3 bytes of item data in all");
    assert!(e.is_limit());
    let e = raw::decode(Bytes::empty(), "", "", &limits).unwrap_err();
    assert_eq!(e.to_string(), "sets[\"\"]: the name is empty");
    let e = raw::decode(Bytes::empty(), "in", &"n".repeat(256), &limits).unwrap_err();
    assert_eq!(e.at(), "sets.in[0].name");
    let none = WireLimits { max_items: 0, ..WireLimits::DEFAULT };
    assert!(raw::decode(Bytes::empty(), "in", "", &none).unwrap_err().is_limit());
    let none = WireLimits { max_sets: 0, ..WireLimits::DEFAULT };
    assert!(raw::decode(Bytes::empty(), "in", "", &none).unwrap_err().is_limit());
}

#[test]
fn output_needs_exactly_one_item() {
    let one = |n: usize| {
        (0..n).map(|i| Item { name: i.to_string().into(), key: None, data: Bytes::from(vec![i as u8]) }).collect()
    };
    let data = raw::encode(&[Set { name: "out".into(), items: one(1) }]).unwrap();
    assert_eq!(&*data, &[0]);
    for (sets, counts) in [
        (vec![], (0, 0)),
        (vec![Set::new("a")], (1, 0)),
        (vec![Set { name: "a".into(), items: one(2) }], (1, 2)),
        (vec![Set { name: "a".into(), items: one(1) }, Set::new("b")], (2, 1)),
    ] {
        let e = raw::encode(&sets).unwrap_err();
        assert_eq!(e.kind(), &WireErrorKind::NotOneItem { sets: counts.0, items: counts.1 });
        assert!(e.to_string().starts_with("a raw response needs exactly one output set with exactly one item"));
    }
}
