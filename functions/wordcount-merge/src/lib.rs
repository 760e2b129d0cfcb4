//! `wordcount_merge`: sums per-word counts; the reduce step of a map-reduce word count.
//!
//! - Input set 0 (`partials`): any number of items, each named by a word, data = a count in
//!   decimal ASCII: one or more digits `0-9`, no sign, at most 18446744073709551615 (u64),
//!   with ASCII white space around it allowed (so `"3\n"` is 3). Keys are ignored. The same
//!   word usually appears several times (once per `wordcount` instance that saw it).
//! - Output set 0 (`counts`): one item per distinct name, sorted by name (code point order),
//!   data = the sum of its counts in decimal ASCII, no key: the same format as `wordcount`'s
//!   output, so merges can be merged again.
//!
//! Names are taken as they are (not lowercased again): it merges any name → count items.
//!
//! Errors: data that is not a count (naming the item), a sum beyond u64, or more distinct names
//! than the 65 536 items a run may output.
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use pappus_sdk::abi::MAX_OUTPUT_ITEMS;
use pappus_sdk::{Context, Error, InputItem};
use word_counts::Counts;

pappus_sdk::entry!(main);

/// The longest count data read: 20 digits and generous white space. Anything longer is not a
/// count, and refusing it early keeps one huge item from being read whole.
const MAX_COUNT_LEN: u64 = 64;

fn main(ctx: &mut Context) -> Result<(), Error> {
    let partials = ctx.input(0).ok_or("wordcount_merge needs an input set (partials)")?;
    let out = ctx.output(0).ok_or("wordcount_merge needs an output set (counts)")?;
    let mut totals = Counts::default();
    let mut buf = Vec::new();
    for item in partials.items() {
        let name = item.name();
        let n = read_count(&item, &mut buf)
            .map_err(|why| format!("item `{name}` of input `{}`: {why}", partials.name()))?;
        totals.add(&name, n).ok_or_else(|| format!("the counts of `{name}` add up to more than {}", u64::MAX))?;
    }
    if totals.len() > MAX_OUTPUT_ITEMS {
        return Err(format!(
            "{} distinct words: more than the {MAX_OUTPUT_ITEMS} items a run may output",
            totals.len()
        )
        .into());
    }
    let mut digits = String::new();
    for (name, total) in &totals.into_sorted() {
        digits.clear();
        // Writing to a String cannot fail.
        let _ = write!(digits, "{total}");
        out.push(name, digits.as_bytes());
    }
    Ok(())
}

/// The count `item` holds; `buf` is scratch space reused for every item.
fn read_count(item: &InputItem, buf: &mut Vec<u8>) -> Result<u64, String> {
    if item.len() > MAX_COUNT_LEN {
        return Err(format!("{} bytes is not a count (a decimal number up to {})", item.len(), u64::MAX));
    }
    item.read_into(buf).map_err(|e| String::from(e.message()))?;
    parse_count(buf)
}

/// A decimal count: ASCII digits only (`u64::from_str` would also take a `+`), white space
/// around them allowed.
fn parse_count(bytes: &[u8]) -> Result<u64, String> {
    let digits = bytes.trim_ascii();
    let not_a_count =
        || format!("`{}` is not a count (a decimal number up to {})", String::from_utf8_lossy(bytes), u64::MAX);
    if digits.is_empty() {
        return Err(not_a_count());
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return Err(not_a_count());
        }
        n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or_else(not_a_count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn run(partials: Vec<MockItem>) -> Result<Vec<(String, String)>, MockError> {
        let out = Mock::new().input("partials", partials).output("counts").run(main)?;
        Ok(out[0]
            .items
            .iter()
            .map(|item| {
                assert_eq!(item.key, None);
                (item.name.clone(), String::from_utf8(item.data.clone()).unwrap())
            })
            .collect())
    }

    fn items(partials: &[(&str, &str)]) -> Vec<MockItem> {
        partials.iter().map(|(w, n)| MockItem::new(*w, *n)).collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(w, n)| (w.to_string(), n.to_string())).collect()
    }

    fn error(partials: &[(&str, &str)]) -> String {
        match run(items(partials)) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn sums_counts_per_word_sorted() {
        let partials = [("the", "3"), ("cat", "1"), ("the", "2"), ("zebra", "7"), ("cat", "0"), ("Cat", "4")];
        assert_eq!(run(items(&partials)).unwrap(), pairs(&[("Cat", "4"), ("cat", "1"), ("the", "5"), ("zebra", "7")]));
    }

    #[test]
    fn white_space_around_a_count_and_leading_zeros_are_fine() {
        assert_eq!(
            run(items(&[("a", " 3\n"), ("a", "\t007\r\n"), ("", "1")])).unwrap(),
            pairs(&[("", "1"), ("a", "10")])
        );
    }

    #[test]
    fn keys_are_ignored() {
        let out = run(vec![MockItem::keyed("a", 1, "2"), MockItem::keyed("a", 2, "3")]).unwrap();
        assert_eq!(out, pairs(&[("a", "5")]));
    }

    #[test]
    fn the_largest_count_passes_and_a_larger_sum_is_refused() {
        let max = u64::MAX.to_string();
        assert_eq!(run(items(&[("a", &max), ("a", "0")])).unwrap(), pairs(&[("a", &max)]));
        assert_eq!(error(&[("a", &max), ("a", "1")]), "the counts of `a` add up to more than 18446744073709551615");
    }

    #[test]
    fn no_partials_give_no_counts() {
        assert_eq!(run(vec![]).unwrap(), pairs(&[]));
    }

    #[test]
    fn data_that_is_not_a_count_is_refused_naming_the_item() {
        let bad = |data: &str| {
            format!(
                "item `w` of input `partials`: `{data}` is not a count (a decimal number up to 18446744073709551615)"
            )
        };
        for data in ["", " ", "-1", "+1", "1.5", "1 2", "x", "18446744073709551616", "١"] {
            assert_eq!(error(&[("ok", "1"), ("w", data)]), bad(data), "{data:?}");
        }
        assert_eq!(
            error(&[("w", &"1".repeat(65))]),
            "item `w` of input `partials`: 65 bytes is not a count (a decimal number up to 18446744073709551615)"
        );
    }

    #[test]
    fn more_distinct_words_than_output_items_are_refused() {
        let partials: Vec<MockItem> = (0..=MAX_OUTPUT_ITEMS).map(|i| MockItem::new(format!("w{i}"), "1")).collect();
        match run(partials) {
            Err(MockError::Failed(e)) => {
                assert_eq!(e.to_string(), "65537 distinct words: more than the 65536 items a run may output")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn without_its_sets_it_fails_with_a_message() {
        let err = Mock::new().output("counts").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: wordcount_merge needs an input set (partials)");
        let err = Mock::new().input("partials", []).run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: wordcount_merge needs an output set (counts)");
    }
}
