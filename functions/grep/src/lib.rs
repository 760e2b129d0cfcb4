//! `grep`: the lines of texts that contain a literal substring.
//!
//! - Input set 0 (`pattern`): exactly one item, whose data is the substring, as bytes. One
//!   trailing line break (`\n` or `\r\n`) is dropped, since a line never contains one
//!   (`echo word | base64` adds it); any other line break in it is an error. An empty pattern
//!   matches every line, as `grep ''` does.
//! - Input set 1 (`texts`): any number of items of text. Bytes, not necessarily UTF-8: the
//!   match is byte for byte and case-sensitive.
//! - Output set 0 (`matches`): one item per matching line, in input order (item by item, line
//!   by line); name = `<text item name>:<line number>` (lines counted from 1), data = the line
//!   without its line break, key = the text item's key, if it has one.
//!
//! Lines end at `\n`; a `\r` before it is dropped (CRLF text). A last line without `\n` counts;
//! a final `\n` does not start another line, and an empty item has no lines.
//!
//! Errors: a pattern set without exactly one item, a line break inside the pattern, a text item
//! name too long to name its matches (the name limit is 255 bytes), or more matching lines or
//! bytes than a run may output (65 536 items, 64 MiB).
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use pappus_sdk::abi::{MAX_NAME_LEN, MAX_OUTPUT_BYTES, MAX_OUTPUT_ITEMS};
use pappus_sdk::{Context, Error};

pappus_sdk::entry!(main);

fn main(ctx: &mut Context) -> Result<(), Error> {
    let pattern_set = ctx.input(0).ok_or("grep needs two input sets (pattern, texts)")?;
    let texts = ctx.input(1).ok_or("grep needs a second input set (texts)")?;
    let out = ctx.output(0).ok_or("grep needs an output set (matches)")?;

    let pattern = match (pattern_set.len(), pattern_set.item(0)) {
        (1, Some(item)) => item.data(),
        (n, _) => {
            let set = pattern_set.name();
            return Err(format!("input `{set}` must hold exactly one item (the substring to find), it has {n}").into());
        }
    };
    let pattern = strip_line_break(&pattern);
    if pattern.contains(&b'\n') {
        return Err("the pattern contains a line break, so it can match no line (lines end at `\\n`)".into());
    }

    // One buffer for every item, sized for the largest: the SDK's bump allocator never frees.
    let largest = texts.items().map(|item| item.len()).max().unwrap_or(0);
    let mut buf = Vec::with_capacity(usize::try_from(largest).unwrap_or(0));
    let mut name = String::new();
    let (mut items, mut bytes) = (0usize, 0u64);
    for item in texts.items() {
        item.read_into(&mut buf)?;
        let item_name = item.name();
        for (number, line) in lines(&buf).enumerate() {
            if !contains(line, pattern) {
                continue;
            }
            name.clear();
            // Writing to a String cannot fail.
            let _ = write!(name, "{item_name}:{}", number + 1);
            if name.len() > MAX_NAME_LEN {
                return Err(format!(
                    "item `{item_name}` of input `{}` has a name too long to name its matching lines: \
                     `{item_name}:{}` is {} bytes, the limit is {MAX_NAME_LEN}",
                    texts.name(),
                    number + 1,
                    name.len()
                )
                .into());
            }
            items += 1;
            bytes = bytes.saturating_add(line.len() as u64);
            if items > MAX_OUTPUT_ITEMS || bytes > MAX_OUTPUT_BYTES {
                return Err(format!(
                    "more matching lines than a run may output ({MAX_OUTPUT_ITEMS} items, {} MiB); \
                     give fewer texts per instance (`each`)",
                    MAX_OUTPUT_BYTES >> 20
                )
                .into());
            }
            out.push_item(&name, item.key(), line);
        }
    }
    Ok(())
}

/// `pattern` without one trailing `\n` or `\r\n`.
fn strip_line_break(pattern: &[u8]) -> &[u8] {
    match pattern.strip_suffix(b"\n") {
        Some(rest) => rest.strip_suffix(b"\r").unwrap_or(rest),
        None => pattern,
    }
}

/// The lines of `text`, without their `\n` or `\r\n` (module docs).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    // An empty item has no lines; `split` would give one empty line.
    let lines = (!text.is_empty()).then(|| body.split(|&b| b == b'\n')).into_iter().flatten();
    lines.map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

/// Whether `needle` occurs in `haystack`; the empty needle occurs everywhere.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    // Compare the rest only where the first byte matches: most positions fail at once.
    haystack.windows(needle.len()).any(|window| window.split_first() == Some((&first, rest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn run(pattern: Vec<MockItem>, texts: Vec<MockItem>) -> Result<Vec<MockItem>, MockError> {
        let out = Mock::new().input("pattern", pattern).input("texts", texts).output("matches").run(main)?;
        Ok(out.into_iter().next().unwrap().items)
    }

    fn grep(pattern: &str, texts: &[(&str, &str)]) -> Vec<(String, String)> {
        let texts = texts.iter().map(|(n, t)| MockItem::new(*n, *t)).collect();
        run(vec![MockItem::new("p", pattern)], texts)
            .unwrap()
            .into_iter()
            .map(|item| (item.name, String::from_utf8(item.data).unwrap()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(n, l)| (n.to_string(), l.to_string())).collect()
    }

    fn error(pattern: Vec<MockItem>, texts: Vec<MockItem>) -> String {
        match run(pattern, texts) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn finds_matching_lines_in_order_with_their_numbers() {
        let texts = [("log", "ok start\nerror: disk\nok\nsome error here"), ("b", "no\nerror")];
        assert_eq!(
            grep("error", &texts),
            pairs(&[("log:2", "error: disk"), ("log:4", "some error here"), ("b:2", "error")])
        );
    }

    #[test]
    fn matching_is_case_sensitive_and_byte_for_byte() {
        assert_eq!(grep("Error", &[("t", "error\nError\nERROR")]), pairs(&[("t:2", "Error")]));
        assert_eq!(grep("ß", &[("t", "strasse\nstraße")]), pairs(&[("t:2", "straße")]));
        let out = run(vec![MockItem::new("p", b"\xff")], vec![MockItem::new("bin", b"a\n\x00\xff\x01\n")]).unwrap();
        assert_eq!(out, [MockItem::new("bin:2", b"\x00\xff\x01")]);
    }

    #[test]
    fn line_ends_crlf_and_the_last_line() {
        assert_eq!(grep("x", &[("t", "x1\r\nx2\r\nx3")]), pairs(&[("t:1", "x1"), ("t:2", "x2"), ("t:3", "x3")]));
        assert_eq!(grep("x", &[("t", "x\n")]), pairs(&[("t:1", "x")]));
        // A lone `\r` is not a line end.
        assert_eq!(grep("b", &[("t", "a\rb")]), pairs(&[("t:1", "a\rb")]));
    }

    #[test]
    fn an_empty_pattern_matches_every_line() {
        assert_eq!(grep("", &[("t", "a\n\nb\n")]), pairs(&[("t:1", "a"), ("t:2", ""), ("t:3", "b")]));
        assert_eq!(grep("", &[("t", "\n")]), pairs(&[("t:1", "")]));
        assert_eq!(grep("", &[("t", "")]), pairs(&[]));
    }

    #[test]
    fn one_trailing_line_break_of_the_pattern_is_dropped() {
        assert_eq!(grep("b\n", &[("t", "a\nb")]), pairs(&[("t:2", "b")]));
        assert_eq!(grep("b\r\n", &[("t", "a\nb")]), pairs(&[("t:2", "b")]));
        assert_eq!(grep("\n", &[("t", "a")]), pairs(&[("t:1", "a")]));
    }

    #[test]
    fn a_pattern_longer_than_the_line_or_at_its_edges() {
        assert_eq!(grep("abcd", &[("t", "abc\nbcd\nabcd\nxabcdx")]), pairs(&[("t:3", "abcd"), ("t:4", "xabcdx")]));
        assert_eq!(grep("aab", &[("t", "aaab")]), pairs(&[("t:1", "aaab")]));
    }

    #[test]
    fn keys_follow_their_text() {
        let out = run(vec![MockItem::new("p", "a")], vec![MockItem::keyed("k", 9, "a\nb\na")]).unwrap();
        assert_eq!(out, [MockItem::keyed("k:1", 9, "a"), MockItem::keyed("k:3", 9, "a")]);
    }

    #[test]
    fn no_texts_or_no_matches_give_no_items() {
        assert_eq!(grep("x", &[]), pairs(&[]));
        assert_eq!(grep("x", &[("t", "a\nb"), ("u", "")]), pairs(&[]));
    }

    #[test]
    fn the_pattern_set_must_hold_one_item() {
        let msg = |n| format!("input `pattern` must hold exactly one item (the substring to find), it has {n}");
        assert_eq!(error(vec![], vec![]), msg(0));
        assert_eq!(error(vec![MockItem::new("p", "a"), MockItem::new("q", "b")], vec![]), msg(2));
    }

    #[test]
    fn a_line_break_inside_the_pattern_is_refused() {
        assert_eq!(
            error(vec![MockItem::new("p", "a\nb")], vec![]),
            "the pattern contains a line break, so it can match no line (lines end at `\\n`)"
        );
        assert_eq!(
            error(vec![MockItem::new("p", "a\n\n")], vec![]),
            "the pattern contains a line break, so it can match no line (lines end at `\\n`)"
        );
    }

    #[test]
    fn an_item_name_too_long_for_its_match_names_is_refused() {
        let long = "n".repeat(MAX_NAME_LEN - 2);
        assert_eq!(grep("a", &[(&long, "a")]), vec![(format!("{long}:1"), "a".to_string())]);
        let err =
            error(vec![MockItem::new("p", "a")], vec![MockItem::new(long.clone(), "b\nb\nb\nb\nb\nb\nb\nb\nb\na")]);
        assert_eq!(
            err,
            format!(
                "item `{long}` of input `texts` has a name too long to name its matching lines: `{long}:10` is 256 bytes, the limit is 255"
            )
        );
    }

    #[test]
    fn more_matches_than_output_items_are_refused() {
        let text = "a\n".repeat(MAX_OUTPUT_ITEMS + 1);
        let err = error(vec![MockItem::new("p", "a")], vec![MockItem::new("t", text)]);
        assert_eq!(
            err,
            "more matching lines than a run may output (65536 items, 64 MiB); give fewer texts per instance (`each`)"
        );
        let text = "a\n".repeat(MAX_OUTPUT_ITEMS);
        assert_eq!(run(vec![MockItem::new("p", "a")], vec![MockItem::new("t", text)]).unwrap().len(), MAX_OUTPUT_ITEMS);
    }

    #[test]
    fn without_its_sets_it_fails_with_a_message() {
        let err = Mock::new().output("matches").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: grep needs two input sets (pattern, texts)");
        let err = Mock::new().input("pattern", []).output("matches").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: grep needs a second input set (texts)");
        let err = Mock::new().input("pattern", []).input("texts", []).run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: grep needs an output set (matches)");
    }
}
