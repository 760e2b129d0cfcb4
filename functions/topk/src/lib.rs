//! `topk`: the `k` items with the largest counts.
//!
//! - Input set 0 (`k`): exactly one item, data = `k` in decimal ASCII (digits only, ASCII white
//!   space around them allowed). `k = 0` gives no items; `k` above the number of items gives
//!   them all.
//! - Input set 1 (`counts`): any number of items, each named by a word, data = a count in the
//!   same decimal format (up to u64::MAX), e.g. the output of `wordcount` or `wordcount_merge`.
//! - Output set 0 (`top`): the `k` items with the largest counts, largest first; equal counts in
//!   ascending name order (code point order), then in input order. Each keeps its name and key;
//!   its data is the count, rewritten canonically (`" 007\n"` becomes `7`).
//!
//! Items are ranked as they are, not merged: two items with the same name are two entries
//! (merge first with `wordcount_merge`).
//!
//! Errors: a `k` set without exactly one item, or data that is not a number (naming the item).
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt::Write;

use pappus_sdk::{Context, Error, InputItem};

pappus_sdk::entry!(main);

/// The longest number read: 20 digits and generous white space. Anything longer is not a
/// number, and refusing it early keeps one huge item from being read whole.
const MAX_NUMBER_LEN: u64 = 64;

/// One ranked item.
struct Entry {
    count: u64,
    name: String,
    key: Option<u64>,
    /// Its place in the input: the last tie-break, so the order is total and the result the
    /// same whatever the sort.
    index: usize,
}

/// Largest count first, then name ascending, then input order.
fn rank(a: &Entry, b: &Entry) -> Ordering {
    b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)).then(a.index.cmp(&b.index))
}

fn main(ctx: &mut Context) -> Result<(), Error> {
    let k_set = ctx.input(0).ok_or("topk needs two input sets (k, counts)")?;
    let counts = ctx.input(1).ok_or("topk needs a second input set (counts)")?;
    let out = ctx.output(0).ok_or("topk needs an output set (top)")?;

    let mut buf = Vec::new();
    let k = match (k_set.len(), k_set.item(0)) {
        (1, Some(item)) => read_number(&item, &mut buf).map_err(|why| format!("input `{}`: {why}", k_set.name()))?,
        (n, _) => {
            let set = k_set.name();
            return Err(format!("input `{set}` must hold exactly one item (k, a decimal number), it has {n}").into());
        }
    };
    // More than there are items means all of them; a `k` past usize (wasm32) is that too.
    let k = usize::try_from(k).unwrap_or(usize::MAX).min(counts.len());

    let mut entries = Vec::with_capacity(counts.len());
    for item in counts.items() {
        let name = item.name();
        let count =
            read_number(&item, &mut buf).map_err(|why| format!("item `{name}` of input `{}`: {why}", counts.name()))?;
        entries.push(Entry { count, name, key: item.key(), index: item.index() });
    }
    // Partition around the k-th, then sort only the k: O(n + k log k), not O(n log n).
    if k == 0 {
        return Ok(());
    }
    if k < entries.len() {
        entries.select_nth_unstable_by(k - 1, rank);
        entries.truncate(k);
    }
    entries.sort_unstable_by(rank);

    let mut digits = String::new();
    for entry in &entries {
        digits.clear();
        // Writing to a String cannot fail.
        let _ = write!(digits, "{}", entry.count);
        out.push_item(&entry.name, entry.key, digits.as_bytes());
    }
    Ok(())
}

/// The number `item` holds; `buf` is scratch space reused for every item.
fn read_number(item: &InputItem, buf: &mut Vec<u8>) -> Result<u64, String> {
    if item.len() > MAX_NUMBER_LEN {
        return Err(format!("{} bytes is not a decimal number up to {}", item.len(), u64::MAX));
    }
    item.read_into(buf).map_err(|e| String::from(e.message()))?;
    parse_number(buf)
}

/// A decimal number: ASCII digits only (`u64::from_str` would also take a `+`), white space
/// around them allowed.
fn parse_number(bytes: &[u8]) -> Result<u64, String> {
    let digits = bytes.trim_ascii();
    let not_a_number = || format!("`{}` is not a decimal number up to {}", String::from_utf8_lossy(bytes), u64::MAX);
    if digits.is_empty() {
        return Err(not_a_number());
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return Err(not_a_number());
        }
        n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or_else(not_a_number)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn run(k: Vec<MockItem>, counts: Vec<MockItem>) -> Result<Vec<MockItem>, MockError> {
        let out = Mock::new().input("k", k).input("counts", counts).output("top").run(main)?;
        Ok(out.into_iter().next().unwrap().items)
    }

    fn top(k: &str, counts: &[(&str, &str)]) -> Vec<(String, String)> {
        let counts = counts.iter().map(|(w, n)| MockItem::new(*w, *n)).collect();
        run(vec![MockItem::new("k", k)], counts)
            .unwrap()
            .into_iter()
            .map(|item| (item.name, String::from_utf8(item.data).unwrap()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect()
    }

    fn error(k: Vec<MockItem>, counts: Vec<MockItem>) -> String {
        match run(k, counts) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    const COUNTS: [(&str, &str); 6] =
        [("the", "9"), ("cat", "3"), ("a", "9"), ("dog", "3"), ("zebra", "1"), ("bee", "4")];

    #[test]
    fn the_k_largest_largest_first_ties_by_name() {
        assert_eq!(top("3", &COUNTS), pairs(&[("a", "9"), ("the", "9"), ("bee", "4")]));
        assert_eq!(top("4", &COUNTS), pairs(&[("a", "9"), ("the", "9"), ("bee", "4"), ("cat", "3")]));
        assert_eq!(top("1", &COUNTS), pairs(&[("a", "9")]));
    }

    #[test]
    fn k_at_or_above_the_item_count_gives_them_all_sorted() {
        let all = pairs(&[("a", "9"), ("the", "9"), ("bee", "4"), ("cat", "3"), ("dog", "3"), ("zebra", "1")]);
        assert_eq!(top("6", &COUNTS), all);
        assert_eq!(top("7", &COUNTS), all);
        assert_eq!(top("18446744073709551615", &COUNTS), all);
    }

    #[test]
    fn k_zero_or_no_counts_give_no_items() {
        assert_eq!(top("0", &COUNTS), pairs(&[]));
        assert_eq!(top("5", &[]), pairs(&[]));
    }

    #[test]
    fn numbers_are_read_leniently_and_written_canonically() {
        assert_eq!(top(" 2\n", &[("a", "007"), ("b", "\t10\r\n"), ("c", "8")]), pairs(&[("b", "10"), ("c", "8")]));
    }

    #[test]
    fn duplicate_names_are_separate_entries_in_input_order_with_their_keys() {
        let counts = vec![MockItem::keyed("a", 2, "5"), MockItem::new("b", "5"), MockItem::keyed("a", 1, "5")];
        assert_eq!(
            run(vec![MockItem::new("k", "3")], counts).unwrap(),
            [MockItem::keyed("a", 2, "5"), MockItem::keyed("a", 1, "5"), MockItem::new("b", "5")]
        );
    }

    #[test]
    fn the_largest_counts_sort_correctly() {
        let max = u64::MAX.to_string();
        assert_eq!(top("2", &[("x", "1"), ("y", &max), ("z", "0")]), pairs(&[("y", &max), ("x", "1")]));
    }

    #[test]
    fn many_items_agree_with_a_full_sort() {
        // Counts 0..50 spread with repeats; names unique.
        let counts: Vec<(String, String)> =
            (0..200u64).map(|i| (format!("w{:03}", (i * 7919) % 200), ((i * 31) % 50).to_string())).collect();
        let mut sorted = counts.clone();
        sorted
            .sort_by(|a, b| b.1.parse::<u64>().unwrap().cmp(&a.1.parse::<u64>().unwrap()).then_with(|| a.0.cmp(&b.0)));
        let borrowed: Vec<(&str, &str)> = counts.iter().map(|(w, n)| (w.as_str(), n.as_str())).collect();
        for k in [1, 2, 17, 100, 199, 200] {
            assert_eq!(top(&k.to_string(), &borrowed), sorted[..k], "k = {k}");
        }
    }

    #[test]
    fn k_must_be_one_number() {
        let msg = |n| format!("input `k` must hold exactly one item (k, a decimal number), it has {n}");
        assert_eq!(error(vec![], vec![]), msg(0));
        assert_eq!(error(vec![MockItem::new("k", "1"), MockItem::new("k", "2")], vec![]), msg(2));
        for k in ["", "-1", "+1", "1.0", "ten", "18446744073709551616"] {
            assert_eq!(
                error(vec![MockItem::new("k", k)], vec![]),
                format!("input `k`: `{k}` is not a decimal number up to 18446744073709551615"),
                "{k:?}"
            );
        }
    }

    #[test]
    fn a_count_that_is_not_a_number_is_refused_naming_the_item() {
        let counts = vec![MockItem::new("ok", "1"), MockItem::new("bad", "1e3")];
        assert_eq!(
            error(vec![MockItem::new("k", "1")], counts),
            "item `bad` of input `counts`: `1e3` is not a decimal number up to 18446744073709551615"
        );
        let counts = vec![MockItem::new("huge", vec![b'1'; 100])];
        assert_eq!(
            error(vec![MockItem::new("k", "1")], counts),
            "item `huge` of input `counts`: 100 bytes is not a decimal number up to 18446744073709551615"
        );
    }

    #[test]
    fn without_its_sets_it_fails_with_a_message() {
        let err = Mock::new().output("top").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: topk needs two input sets (k, counts)");
        let err = Mock::new().input("k", []).output("top").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: topk needs a second input set (counts)");
        let err = Mock::new().input("k", []).input("counts", []).run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: topk needs an output set (top)");
    }
}
