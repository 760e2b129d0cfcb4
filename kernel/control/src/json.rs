//! Writing the few JSON shapes the API answers with, by hand: the output stays in document order
//! and this crate needs no serialiser of its own (parsing JSON is the wire module's job).

use alloc::string::String;

// The string and array writers and `shorten` are the model crate's: one escaper for every JSON
// text the platform writes by hand.
pub(crate) use model::json_text::{push_string as push_str, push_string_array as push_str_array};
pub(crate) use model::shorten;

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
