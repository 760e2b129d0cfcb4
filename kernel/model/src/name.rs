//! Name rules, checked wherever a name enters the system (a URL path, a query string, a request
//! body, a boot configuration), so that everything behind them can rely on them.
//!
//! - Function, composition and tenant names end up in URL paths, logs and metrics labels: 1 to
//!   [`MAX_FUNCTION_NAME_LEN`] characters of `[A-Za-z0-9_.-]`, starting with a letter or digit (so
//!   never `.` or `..`, never an option-like `-x`).
//! - Set names are chosen by function authors and appear as JSON keys: 1 to [`MAX_NAME_LEN`] bytes
//!   of UTF-8 without control characters (which would garble logs and error messages).
//! - Item names are data: 0 to [`MAX_NAME_LEN`] bytes of any UTF-8 (DESIGN.md, "The programming model").

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;

use crate::MAX_NAME_LEN;

/// The longest function, composition or tenant name, in bytes (all ASCII).
pub const MAX_FUNCTION_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty where one is required.
    Empty,
    /// The name has `len` bytes; at most `max` are allowed.
    TooLong { len: usize, max: usize },
    /// The first character must be an ASCII letter or digit.
    BadStart(char),
    /// A character outside the allowed set, at byte offset `at`.
    BadChar { ch: char, at: usize },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the name is empty"),
            Self::TooLong { len, max } => write!(f, "the name is {len} bytes long, at most {max} are allowed"),
            Self::BadStart(ch) => write!(f, "the name starts with {ch:?}; it must start with a letter or digit"),
            Self::BadChar { ch, at } => write!(f, "the name has {ch:?} at byte {at}, which is not allowed"),
        }
    }
}

/// Checks a function, composition or tenant name: 1..=64 characters of `[A-Za-z0-9_.-]`,
/// starting with an ASCII letter or digit.
pub fn validate_function_name(name: &str) -> Result<(), NameError> {
    // Byte by byte: every allowed character is ASCII, so the first byte that is not allowed
    // starts the first character that is not (every request checks the name in its path;
    // decoding chars cost ~150 guest instructions for `matmul`).
    let bytes = name.as_bytes();
    let &first = bytes.first().ok_or(NameError::Empty)?;
    let char_at = |at: usize| name.get(at..).and_then(|rest| rest.chars().next()).unwrap_or('\0');
    if name.len() > MAX_FUNCTION_NAME_LEN {
        return Err(NameError::TooLong { len: name.len(), max: MAX_FUNCTION_NAME_LEN });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::BadStart(char_at(0)));
    }
    match bytes.iter().position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))) {
        Some(at) => Err(NameError::BadChar { ch: char_at(at), at }),
        None => Ok(()),
    }
}

/// [`validate_set_name_within`]'s rule for an ASCII name, byte by byte (the same errors, in the
/// same order): decoding chars to ask `is_whitespace` and `is_control` cost ~240 guest
/// instructions for `product`, and every invoke checks its set names several times.
fn ascii_set_name(bytes: &[u8]) -> Result<(), NameError> {
    // `char::is_whitespace` of an ASCII char: `u8::is_ascii_whitespace` and vertical tab.
    let space = |b: u8| b.is_ascii_whitespace() || b == 0x0b;
    let bad = |at: usize| Err(NameError::BadChar { ch: char::from(bytes[at]), at });
    if bytes.first().is_some_and(|&b| space(b)) {
        return bad(0);
    }
    if bytes.last().is_some_and(|&b| space(b)) {
        return bad(bytes.len() - 1);
    }
    if !has_control(bytes) {
        return Ok(());
    }
    match bytes.iter().position(u8::is_ascii_control) {
        Some(at) => bad(at),
        None => Ok(()),
    }
}

/// Whether an ASCII control byte (below 0x20, or 0x7f) is among `bytes`: eight at a step, the
/// last few in a word padded with letters (a byte at a time cost ~60 instructions a short set
/// name, checked three times a request: decoding, output checks, encoding).
fn has_control(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Some byte below 0x20 (`hasless`), or equal to 0x7f (`haszero` of the XOR): exact as
    // booleans for bytes up to 0x7f, and a byte above it is no control either way.
    let any = |w: u64| {
        let del = w ^ (ONES * 0x7f);
        (w.wrapping_sub(ONES * 0x20) | del.wrapping_sub(ONES)) & !w & !del & HIGHS != 0
    };
    let (words, tail) = bytes.as_chunks::<8>();
    let mut last = [b'a'; 8];
    last[..tail.len()].copy_from_slice(tail);
    words.iter().any(|w| any(u64::from_le_bytes(*w))) || any(u64::from_le_bytes(last))
}

/// Checks a set name against [`MAX_NAME_LEN`]: see [`validate_set_name_within`].
pub fn validate_set_name(name: &str) -> Result<(), NameError> {
    validate_set_name_within(name, MAX_NAME_LEN)
}

/// Checks a set name: 1..=`max` bytes of UTF-8 without control characters, and without white
/// space at either end (`inputs=A, B` is a typo, not a set named `" B"`). `max` is capped at
/// [`MAX_NAME_LEN`], so a caller can only tighten the rule.
pub fn validate_set_name_within(name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    check_len(name, max)?;
    if name.is_ascii() { ascii_set_name(name.as_bytes()) } else { chars_set_name(name) }
}

/// [`validate_set_name_within`]'s rule on chars, for any UTF-8.
fn chars_set_name(name: &str) -> Result<(), NameError> {
    if let Some(ch) = name.chars().next().filter(|c| c.is_whitespace()) {
        return Err(NameError::BadChar { ch, at: 0 });
    }
    let last = name.char_indices().next_back().filter(|(_, c)| c.is_whitespace());
    let bad = last.or_else(|| name.char_indices().find(|&(_, c)| c.is_control()));
    match bad {
        Some((at, ch)) => Err(NameError::BadChar { ch, at }),
        None => Ok(()),
    }
}

/// Checks an item name against [`MAX_NAME_LEN`]: any UTF-8, possibly empty.
pub fn validate_item_name(name: &str) -> Result<(), NameError> {
    validate_item_name_within(name, MAX_NAME_LEN)
}

/// Checks an item name: 0..=`max` bytes of any UTF-8; `max` is capped at [`MAX_NAME_LEN`].
pub fn validate_item_name_within(name: &str, max: usize) -> Result<(), NameError> {
    check_len(name, max)
}

fn check_len(name: &str, max: usize) -> Result<(), NameError> {
    let max = max.min(MAX_NAME_LEN);
    if name.len() > max { Err(NameError::TooLong { len: name.len(), max }) } else { Ok(()) }
}

/// At most `max` bytes of `text`, cut at a character boundary and marked with `…`, so names
/// echoed from a request keep error messages short.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text.get(..end).unwrap_or_default().to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        for ok in ["a", "A9", "hello_world", "v1.2-beta", "0start"] {
            assert_eq!(validate_function_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_function_name(""), Err(NameError::Empty));
        assert_eq!(validate_function_name(".hidden"), Err(NameError::BadStart('.')));
        assert_eq!(validate_function_name("-x"), Err(NameError::BadStart('-')));
        assert_eq!(validate_function_name("a/b"), Err(NameError::BadChar { ch: '/', at: 1 }));
        assert_eq!(validate_function_name("aé"), Err(NameError::BadChar { ch: 'é', at: 1 }));
        assert_eq!(validate_function_name(&"a".repeat(64)), Ok(()));
        assert_eq!(validate_function_name(&"a".repeat(65)), Err(NameError::TooLong { len: 65, max: 64 }));
    }

    #[test]
    fn set_names() {
        assert_eq!(validate_set_name("pics"), Ok(()));
        assert_eq!(validate_set_name("with space, comma and ünïcode"), Ok(()));
        assert_eq!(validate_set_name(""), Err(NameError::Empty));
        assert_eq!(validate_set_name("a\nb"), Err(NameError::BadChar { ch: '\n', at: 1 }));
        assert_eq!(validate_set_name(" b"), Err(NameError::BadChar { ch: ' ', at: 0 }));
        assert_eq!(validate_set_name("b\u{a0}"), Err(NameError::BadChar { ch: '\u{a0}', at: 1 }));
        assert_eq!(validate_set_name(&"s".repeat(255)), Ok(()));
        assert_eq!(validate_set_name(&"s".repeat(256)), Err(NameError::TooLong { len: 256, max: 255 }));
        // A caller may tighten the limit but never loosen it.
        assert_eq!(validate_set_name_within("abc", 2), Err(NameError::TooLong { len: 3, max: 2 }));
        assert_eq!(validate_set_name_within(&"s".repeat(256), 1000), Err(NameError::TooLong { len: 256, max: 255 }));
    }

    /// The rule as it was written first, over chars (the reference for the byte-wise check).
    fn chars_function_name(name: &str) -> Result<(), NameError> {
        let first = name.chars().next().ok_or(NameError::Empty)?;
        if name.len() > MAX_FUNCTION_NAME_LEN {
            return Err(NameError::TooLong { len: name.len(), max: MAX_FUNCTION_NAME_LEN });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(NameError::BadStart(first));
        }
        match name.char_indices().find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            Some((at, ch)) => Err(NameError::BadChar { ch, at }),
            None => Ok(()),
        }
    }

    proptest::proptest! {
        /// Function names checked byte by byte give what the chars rule gives, errors and all.
        #[test]
        fn function_names_as_chars(name in "[a-z0-9_.é/ -]{0,70}|([a-z0-9_.-]|\\PC){0,70}") {
            proptest::prop_assert_eq!(validate_function_name(&name), chars_function_name(&name));
        }

        /// The ASCII rule is the chars rule, errors and all.
        #[test]
        fn ascii_names_as_chars(name in "[\\x00-\\x7f]{1,10}|[ -~]{1,40}[\\x00-\\x1f\\x7f]?[ -~]{0,20}") {
            proptest::prop_assert_eq!(ascii_set_name(name.as_bytes()), chars_set_name(&name));
        }

        /// The word-at-a-time control test is the byte-at-a-time one, for any bytes.
        #[test]
        fn control_bytes_by_words(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            proptest::prop_assert_eq!(has_control(&bytes), bytes.iter().any(u8::is_ascii_control));
        }
    }

    #[test]
    fn item_names() {
        assert_eq!(validate_item_name(""), Ok(()));
        assert_eq!(validate_item_name("any\0thing"), Ok(()));
        let long: String = "é".repeat(128); // 256 bytes
        assert_eq!(validate_item_name(&long), Err(NameError::TooLong { len: 256, max: 255 }));
    }

    #[test]
    fn messages_name_the_problem() {
        use alloc::string::ToString;
        assert_eq!(
            NameError::BadChar { ch: '/', at: 3 }.to_string(),
            "the name has '/' at byte 3, which is not allowed"
        );
    }
}
