//! Writing the few JSON shapes the API answers with, by hand: the output stays in document order
//! and this crate needs no serialiser of its own (parsing JSON is the wire module's job).

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt::Write;

/// Appends `text` as a JSON string literal (RFC 8259 section 7: `"`, `\` and control characters
/// escaped, everything else as is).
pub(crate) fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON array of strings.
pub(crate) fn push_str_array<S: AsRef<str>>(out: &mut String, items: impl IntoIterator<Item = S>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, item.as_ref());
    }
    out.push(']');
}

/// At most `max` bytes of `text`, cut at a character boundary and marked with `…`, so that
/// names echoed from a request keep messages short.
pub(crate) fn shorten(text: &str, max: usize) -> String {
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

/// "a, b, c" (or "none"), with at most 16 names, for messages.
pub(crate) fn list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for (i, name) in names.into_iter().enumerate() {
        if i == 16 {
            out.push_str(", …");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&shorten(name.as_ref(), 64));
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_shortens() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(shorten("ééé", 3), "é…");
        assert_eq!(list(["a", "b"]), "a, b");
        assert_eq!(list::<&str>([]), "none");
        let mut out = String::new();
        push_str_array(&mut out, ["x", "y"]);
        assert_eq!(out, "[\"x\",\"y\"]");
    }
}
