//! `wordcount`: counts the words of UTF-8 texts.
//!
//! - Input set 0 (`texts`): any number of items, each UTF-8 text; names and keys are ignored.
//! - Output set 0 (`counts`): one item per distinct word over all the texts, sorted by word
//!   (Unicode code point order, which is UTF-8 byte order); name = the word, data = how often
//!   it occurs, as decimal ASCII digits (`"3"`), no key.
//!
//! **What a word is.** A maximal run of characters for which `char::is_alphanumeric` holds
//! (Unicode `Alphabetic` or `Numeric`); every other character separates words. So `don't` is
//! `don` and `t`, `snake_case` is `snake` and `case`, `abc123` is one word, and a script written
//! without spaces (`日本語のテキスト`) is one word per run. The word is then lowercased with
//! `char::to_lowercase` (Unicode's full, locale-free mapping: `Straße` → `straße`, `İ` → `i̇`,
//! `Σ` → `σ` everywhere). No normalization: `é` precomposed (NFC) and `e` + combining accent
//! (NFD) differ, and the combining accent, not being alphanumeric, splits the word.
//!
//! Errors: an item that is not UTF-8 (with the byte offset), a word longer than the 255 bytes
//! an item name may have, or more distinct words than the 65 536 items a run may output.
//!
//! The map step of a map-reduce word count; `wordcount_merge` is the reduce step.
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use pappus_sdk::abi::{MAX_NAME_LEN, MAX_OUTPUT_ITEMS};
use pappus_sdk::{Context, Error, Output};
use word_counts::Counts;

pappus_sdk::entry!(main);

fn main(ctx: &mut Context) -> Result<(), Error> {
    let texts = ctx.input(0).ok_or("wordcount needs an input set (texts)")?;
    let out = ctx.output(0).ok_or("wordcount needs an output set (counts)")?;
    let mut counts = Counts::default();
    // One buffer for every item, sized for the largest: the SDK's bump allocator never frees,
    // so a vector per item would keep all of them until the run ends.
    let largest = texts.items().map(|item| item.len()).max().unwrap_or(0);
    let mut buf = Vec::with_capacity(usize::try_from(largest).unwrap_or(0));
    let mut word = String::new();
    for item in texts.items() {
        item.read_into(&mut buf)?;
        let text = core::str::from_utf8(&buf)
            .map_err(|e| format!("item `{}` of input `{}` is not UTF-8: {e}", item.name(), texts.name()))?;
        count_words(text, &mut counts, &mut word);
    }
    emit(&out, counts)
}

/// Adds the words of `text` to `counts`; `word` is scratch space reused for each word.
///
/// Shaped for the wasm engine's fuel metering, which charges every instruction of a loop's
/// body (outside nested loops and `if`s) on each iteration, whether a branch skips it or not:
/// the per-byte work is the small loop of [`ascii_run`], and everything else runs once per word
/// or per non-ASCII character, out of line.
/// Measured: under 20 fuel per byte of ASCII separators, where `str::split` with a predicate
/// cost about 250.
fn count_words(text: &str, counts: &mut Counts, word: &mut String) {
    let bytes = text.as_bytes();
    let mut i = 0;
    loop {
        // Skip to the start of the next word.
        loop {
            i = ascii_run(bytes, i, SEPARATOR);
            match bytes.get(i) {
                None => return,
                Some(b) if b.is_ascii() => break,
                Some(_) => match non_ascii(text, i) {
                    (true, _) => break,
                    (false, width) => i += width,
                },
            }
        }
        // Take it.
        let start = i;
        let mut ascii = true;
        loop {
            i = ascii_run(bytes, i, WORD);
            match bytes.get(i) {
                Some(b) if !b.is_ascii() => match non_ascii(text, i) {
                    (true, width) => {
                        i += width;
                        ascii = false;
                    }
                    (false, _) => break,
                },
                _ => break,
            }
        }
        lowercase(text.get(start..i).unwrap_or_default(), ascii, word);
        // A count of words in memory cannot reach u64::MAX.
        let _ = counts.add(word, 1);
    }
}

/// Byte classes: an ASCII separator, an ASCII word character, or part of a non-ASCII character.
const SEPARATOR: u8 = 0;
const WORD: u8 = 1;
const NON_ASCII: u8 = 2;

/// The class of every byte, so the loop in [`ascii_run`] does one load and one compare.
const CLASS: [u8; 256] = {
    let mut table = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = if (b as u8).is_ascii_alphanumeric() { WORD } else { SEPARATOR };
        b += 1;
    }
    table
};

/// The first index from `i` on whose byte is not of `class` (or the end).
#[inline(never)]
fn ascii_run(bytes: &[u8], mut i: usize, class: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        if CLASS[usize::from(b)] != class {
            break;
        }
        i += 1;
    }
    i
}

/// Whether the non-ASCII character at `i` is a word character, and its length in bytes.
#[inline(never)]
fn non_ascii(text: &str, i: usize) -> (bool, usize) {
    // `text` is UTF-8 and `i` is on a character boundary: decode that one character.
    let c = text.get(i..).and_then(|rest| rest.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER);
    (c.is_alphanumeric(), c.len_utf8())
}

/// `raw` lowercased into `word`; `ascii` says `raw` is all ASCII, which needs no tables.
#[inline(never)]
fn lowercase(raw: &str, ascii: bool, word: &mut String) {
    word.clear();
    if ascii {
        word.push_str(raw);
        word.make_ascii_lowercase();
    } else {
        word.extend(raw.chars().flat_map(char::to_lowercase));
    }
}

/// Writes one item per word, sorted by word, after checking the platform's limits so a
/// violation is an error that names the word rather than a bare `bad_output`.
fn emit(out: &Output, counts: Counts) -> Result<(), Error> {
    if counts.len() > MAX_OUTPUT_ITEMS {
        return Err(format!(
            "{} distinct words: more than the {MAX_OUTPUT_ITEMS} items a run may output (split the texts and merge)",
            counts.len()
        )
        .into());
    }
    let counts = counts.into_sorted();
    if let Some((long, _)) = counts.iter().find(|(w, _)| w.len() > MAX_NAME_LEN) {
        return Err(format!(
            "the word `{}…` is {} bytes, longer than the {MAX_NAME_LEN} bytes an item name may have",
            &long[..long.floor_char_boundary(32)],
            long.len()
        )
        .into());
    }
    let mut digits = String::new();
    for (word, n) in &counts {
        digits.clear();
        // Writing to a String cannot fail.
        let _ = write!(digits, "{n}");
        out.push(word, digits.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn run(texts: Vec<MockItem>) -> Result<Vec<(String, String)>, MockError> {
        let out = Mock::new().input("texts", texts).output("counts").run(main)?;
        Ok(out[0]
            .items
            .iter()
            .map(|item| {
                assert_eq!(item.key, None);
                (item.name.clone(), String::from_utf8(item.data.clone()).unwrap())
            })
            .collect())
    }

    fn count(texts: &[&str]) -> Vec<(String, String)> {
        run(texts.iter().enumerate().map(|(i, t)| MockItem::new(i.to_string(), *t)).collect()).unwrap()
    }

    fn pairs(expected: &[(&str, u64)]) -> Vec<(String, String)> {
        expected.iter().map(|(w, n)| (w.to_string(), n.to_string())).collect()
    }

    fn error(texts: Vec<MockItem>) -> String {
        match run(texts) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn counts_lowercased_words_sorted() {
        assert_eq!(
            count(&["The cat saw the other cat.\nTHE END"]),
            pairs(&[("cat", 2), ("end", 1), ("other", 1), ("saw", 1), ("the", 3)])
        );
    }

    #[test]
    fn sums_over_every_item() {
        assert_eq!(count(&["a b", "b c", "", "c c"]), pairs(&[("a", 1), ("b", 2), ("c", 3)]));
    }

    #[test]
    fn anything_not_alphanumeric_separates_words() {
        assert_eq!(
            count(&["don't snake_case abc123 42,42\t-x-\u{a0}y\r\n(z)"]),
            pairs(&[
                ("42", 2),
                ("abc123", 1),
                ("case", 1),
                ("don", 1),
                ("snake", 1),
                ("t", 1),
                ("x", 1),
                ("y", 1),
                ("z", 1)
            ])
        );
    }

    #[test]
    fn unicode_letters_and_lowercasing() {
        assert_eq!(
            count(&["Straße STRASSE straße Ünïcödé ΣΊΣΥΦΟΣ \u{212a}elvin İ 日本語のテキスト"]),
            pairs(&[
                ("i\u{307}", 1),
                ("kelvin", 1),
                ("strasse", 1),
                ("straße", 2),
                ("ünïcödé", 1),
                ("σίσυφοσ", 1),
                ("日本語のテキスト", 1),
            ])
        );
    }

    #[test]
    fn words_mixing_ascii_and_other_letters_stay_whole() {
        assert_eq!(
            count(&["abcÉdef Über café—CAFÉ a\u{2014}b x\u{a0}y ١٢٣ 3½ naïve"]),
            pairs(&[
                ("3½", 1),
                ("a", 1),
                ("abcédef", 1),
                ("b", 1),
                ("café", 2),
                ("naïve", 1),
                ("x", 1),
                ("y", 1),
                ("über", 1),
                ("١٢٣", 1),
            ])
        );
        // Texts that start and end inside a non-ASCII word, or are one non-ASCII separator.
        assert_eq!(count(&["éa", "aé", "—"]), pairs(&[("aé", 1), ("éa", 1)]));
    }

    #[test]
    fn a_combining_accent_splits_a_word() {
        assert_eq!(count(&["cafe\u{301}"]), pairs(&[("cafe", 1)]));
    }

    #[test]
    fn nothing_to_count_gives_no_items() {
        assert_eq!(count(&[]), pairs(&[]));
        assert_eq!(count(&["", " ,.;\n\t!? -- "]), pairs(&[]));
    }

    #[test]
    fn invalid_utf8_is_refused_with_the_item_and_offset() {
        assert_eq!(
            error(vec![MockItem::new("ok", "fine"), MockItem::new("bad", b"ab\xffcd")]),
            "item `bad` of input `texts` is not UTF-8: invalid utf-8 sequence of 1 bytes from index 2"
        );
    }

    #[test]
    fn words_up_to_the_name_limit_pass_and_longer_ones_are_refused() {
        let longest = "x".repeat(MAX_NAME_LEN);
        assert_eq!(count(&[&longest]), vec![(longest.clone(), "1".to_string())]);
        let err = error(vec![MockItem::new("t", format!("ok {longest}é"))]);
        assert_eq!(
            err,
            "the word `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…` is 257 bytes, longer than the 255 bytes an item name may have"
        );
    }

    #[test]
    fn more_distinct_words_than_output_items_are_refused() {
        let text: String = (0..=MAX_OUTPUT_ITEMS).map(|i| format!("w{i} ")).collect();
        assert_eq!(
            error(vec![MockItem::new("t", text)]),
            "65537 distinct words: more than the 65536 items a run may output (split the texts and merge)"
        );
        let text: String = (0..MAX_OUTPUT_ITEMS).map(|i| format!("w{i} ")).collect();
        assert_eq!(count(&[&text]).len(), MAX_OUTPUT_ITEMS);
    }

    #[test]
    fn without_its_sets_it_fails_with_a_message() {
        let err = Mock::new().output("counts").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: wordcount needs an input set (texts)");
        let err = Mock::new().input("texts", []).run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: wordcount needs an output set (counts)");
    }
}
