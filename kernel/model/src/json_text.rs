//! Writing JSON text by hand, for the few shapes this crate (and the control plane) emits. Writing directly into one
//! `String` keeps the output in document order (serde_json's own map sorts keys without its
//! `preserve_order` feature) and lets base64 be written in place, without an intermediate copy.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Appends `text` as a JSON string literal, quotes included (RFC 8259 section 7: `"`, `\` and
/// control characters escaped; everything else, including non-ASCII, written as is).
pub fn push_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c.is_ascii_control()) {
        let (plain, tail) = rest.split_at(at);
        out.push_str(plain);
        let mut chars = tail.chars();
        match chars.next() {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            None => {}
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

/// [`push_string`] onto bytes: a string without a quote, backslash or control character (what
/// names nearly always are) is copied between quotes as it is, without walking its chars.
pub fn push_string_bytes(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let mut escaped = String::new();
        push_string(&mut escaped, text);
        out.extend_from_slice(escaped.as_bytes());
    }
}

/// Appends a list of strings as a JSON array.
pub fn push_string_array<S: AsRef<str>>(out: &mut String, items: impl IntoIterator<Item = S>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, item.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn literal(text: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, text);
        out
    }

    #[test]
    fn bytes_as_text() {
        for text in ["plain", "", "a\"b", "é ü", "tab\t", "del\u{7f}", "back\\slash"] {
            let mut out = b"x".to_vec();
            push_string_bytes(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), alloc::format!("x{}", literal(text)), "{text:?}");
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(literal("plain"), "\"plain\"");
        assert_eq!(literal("a\"b\\c\nd\u{1}é\u{7f}"), "\"a\\\"b\\\\c\\nd\\u0001é\\u007f\"");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn serde_json_reads_back_what_we_write(text in any::<String>()) {
            let back: String = serde_json::from_str(&literal(&text)).map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?;
            prop_assert_eq!(back, text);
        }
    }
}
