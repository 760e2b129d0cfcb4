//! The template every function starts from: it copies each item of each input set to its
//! first output set, with the data uppercased (ASCII) and the name and key kept.
//!
//! Register it with one or more input sets and one output set, e.g.
//! `PUT /v1/functions/upper?engine=wasm&inputs=lines&outputs=upper`.
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use pappus_sdk::{Context, Error};

pappus_sdk::entry!(main);

fn main(ctx: &mut Context) -> Result<(), Error> {
    let out = ctx.output(0).ok_or("the template needs one output set")?;
    for set in ctx.inputs() {
        for item in set.items() {
            let mut data = item.data();
            data.make_ascii_uppercase();
            out.push_item(&item.name(), item.key(), &data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pappus_sdk::mock::{Mock, MockItem};

    #[test]
    fn uppercases_every_item_of_every_input() {
        let out = Mock::new()
            .input("a", [MockItem::new("one", "hello"), MockItem::keyed("two", 7, "World")])
            .input("b", [MockItem::new("three", "ß!")])
            .output("upper")
            .run(main)
            .unwrap();
        assert_eq!(
            out[0].items,
            [MockItem::new("one", "HELLO"), MockItem::keyed("two", 7, "WORLD"), MockItem::new("three", "ß!")]
        );
    }

    #[test]
    fn without_an_output_set_it_fails_with_a_message() {
        let err = Mock::new().run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: the template needs one output set");
    }
}
