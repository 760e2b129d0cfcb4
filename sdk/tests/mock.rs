//! The SDK's API, exercised on the host through the mock transport.

use pappus_sdk::mock::{MAX_NAME_LEN, Mock, MockError, MockItem, MockSet};
use pappus_sdk::{Context, Error};

fn two_inputs() -> Mock {
    Mock::new()
        .input("words", [MockItem::new("w1", "alpha"), MockItem::keyed("w2", 9, "beta")])
        .input("empty", [])
        .output("first")
        .output("second")
}

#[test]
fn inputs_are_seen_in_declaration_order_with_names_keys_and_data() {
    fn check(ctx: &mut Context) -> Result<(), Error> {
        assert_eq!(ctx.input_count(), 2);
        let names: Vec<String> = ctx.inputs().map(|s| s.name()).collect();
        assert_eq!(names, ["words", "empty"]);
        let words = ctx.input(0).unwrap();
        assert_eq!((words.index(), words.len(), words.is_empty()), (0, 2, false));
        let items: Vec<(String, Option<u64>, Vec<u8>)> = words.items().map(|i| (i.name(), i.key(), i.data())).collect();
        assert_eq!(items, [("w1".into(), None, b"alpha".to_vec()), ("w2".into(), Some(9), b"beta".to_vec())]);
        assert!(ctx.input(1).unwrap().is_empty());
        assert!(ctx.input(2).is_none());
        assert_eq!(ctx.input_named("empty").map(|s| s.index()), Some(1));
        assert!(ctx.input_named("nope").is_none());
        assert!(words.item(2).is_none());
        Ok(())
    }
    two_inputs().run(check).unwrap();
}

#[test]
fn item_names_can_be_read_into_a_buffer() {
    fn check(ctx: &mut Context) -> Result<(), Error> {
        let set = ctx.input(0).unwrap();
        let (w1, w2) = (set.item(0).unwrap(), set.item(1).unwrap());
        assert_eq!(w1.name_into(&mut [0; 8]), Some(&b"w1"[..]));
        assert_eq!(w2.name_into(&mut [0; 2]), Some(&b"w2"[..]), "an exact fit");
        assert_eq!(w2.name_into(&mut [0; 1]), None, "too short: use name()");
        Ok(())
    }
    two_inputs().run(check).unwrap();
    // An empty name fits any buffer, an empty one too.
    let unnamed = Mock::new().input("in", [MockItem::new("", "x")]);
    unnamed
        .run(|ctx| {
            let item = ctx.input(0).unwrap().item(0).unwrap();
            assert_eq!(item.name_into(&mut []), Some(&b""[..]));
            assert_eq!(item.name(), "");
            Ok(())
        })
        .unwrap();
}

#[test]
fn item_data_can_be_read_in_parts() {
    fn check(ctx: &mut Context) -> Result<(), Error> {
        let item = ctx.input(0).unwrap().item(0).unwrap();
        assert_eq!((item.len(), item.is_empty()), (5, false));
        let mut buf = [0u8; 3];
        assert_eq!(item.read(0, &mut buf), 3);
        assert_eq!(&buf, b"alp");
        assert_eq!(item.read(3, &mut buf), 2);
        assert_eq!(&buf[..2], b"ha");
        assert_eq!(item.read(5, &mut buf), 0);
        assert_eq!(item.read(u64::MAX, &mut buf), 0);
        Ok(())
    }
    two_inputs().run(check).unwrap();
}

#[test]
fn outputs_by_index_and_by_name() {
    fn write(ctx: &mut Context) -> Result<(), Error> {
        assert_eq!(ctx.output_count(), 2);
        ctx.output(0).unwrap().push("a", b"1");
        let second = ctx.output_named("second").ok_or("no second")?;
        assert_eq!((second.index(), second.name()), (1, "second".to_string()));
        second.push_keyed("b", 2, b"2");
        second.push_item("c", None, b"3");
        ctx.push(0, "d", Some(4), b"4");
        assert!(ctx.output(2).is_none());
        assert!(ctx.output_named("third").is_none());
        Ok(())
    }
    let out = two_inputs().run(write).unwrap();
    assert_eq!(
        out,
        [
            MockSet { name: "first".into(), items: vec![MockItem::new("a", "1"), MockItem::keyed("d", 4, "4")] },
            MockSet { name: "second".into(), items: vec![MockItem::keyed("b", 2, "2"), MockItem::new("c", "3")] },
        ]
    );
}

#[test]
fn long_names_are_read_whole() {
    fn echo_name(ctx: &mut Context) -> Result<(), Error> {
        let item = ctx.input(0).unwrap().item(0).unwrap();
        ctx.push(0, "len", None, item.name().len().to_string().as_bytes());
        Ok(())
    }
    let long = "n".repeat(1000);
    let out = Mock::new().input("in", [MockItem::new(long, "")]).output("out").run(echo_name).unwrap();
    assert_eq!(out[0].items[0].data, b"1000");
}

#[test]
fn a_returned_error_fails_the_run() {
    let failing: pappus_sdk::Entry = |_| Err(Error::msg(format_args!("bad {}", 42)));
    assert_eq!(Mock::new().run(failing), Err(MockError::Failed(Error::new("bad 42"))));
    assert_eq!(MockError::Failed(Error::from("x")).to_string(), "function failed: x");
}

#[test]
fn bad_output_fails_the_run_and_stops_output() {
    let undeclared: pappus_sdk::Entry = |ctx| {
        ctx.push(1, "x", None, b"");
        ctx.push(0, "after", None, b"");
        Ok(())
    };
    let mock = Mock::new().output("only");
    assert_eq!(mock.run(undeclared), Err(MockError::UndeclaredSet { index: 1, declared: 1 }));

    let long_name: pappus_sdk::Entry = |ctx| {
        ctx.push(0, &"x".repeat(MAX_NAME_LEN + 1), None, b"");
        Ok(())
    };
    assert_eq!(mock.run(long_name), Err(MockError::NameTooLong { len: MAX_NAME_LEN + 1 }));
}

#[test]
fn declared_outputs_are_returned_even_when_empty() {
    let nothing: pappus_sdk::Entry = |_| Ok(());
    let out = Mock::new().output("a").output("b").run(nothing).unwrap();
    assert_eq!(out, [MockSet { name: "a".into(), items: vec![] }, MockSet { name: "b".into(), items: vec![] }]);
}

mod entry_macro {
    use pappus_sdk::{Context, Error};

    // On the host the macro only checks the signature; this compiling is the test.
    pappus_sdk::entry!(main);

    fn main(_ctx: &mut Context) -> Result<(), Error> {
        Ok(())
    }
}

#[test]
fn data_and_read_into_copy_items_whole_whatever_their_size() {
    fn check(ctx: &mut Context) -> Result<(), Error> {
        let set = ctx.input(0).unwrap();
        let mut buf = vec![7u8; 5];
        for item in set.items() {
            let expected: Vec<u8> = (0..item.len()).map(|i| (i % 251) as u8).collect();
            assert_eq!(item.data(), expected, "data() of {}", item.name());
            item.read_into(&mut buf)?;
            assert_eq!(buf, expected, "read_into of {}", item.name());
        }
        Ok(())
    }
    let item = |name: &str, len: usize| MockItem::new(name, (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    Mock::new()
        .input("sizes", [item("empty", 0), item("one", 1), item("small", 80), item("large", 300_000)])
        .run(check)
        .unwrap();
}
