//! URL query strings: splitting into pairs and percent-decoding, as browsers and `curl` write
//! them (`application/x-www-form-urlencoded`: `%XX` escapes, `+` for a space).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a query component could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PercentError {
    /// A `%` not followed by two hex digits, at byte offset `at` of the encoded text.
    BadEscape { at: usize },
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for PercentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadEscape { at } => write!(f, "'%' at byte {at} is not followed by two hex digits"),
            Self::InvalidUtf8 => f.write_str("the decoded text is not UTF-8"),
        }
    }
}

/// Decodes one query component: `%XX` becomes the byte `0xXX` and `+` a space; the result must
/// be UTF-8. The output is never longer than the input.
pub fn percent_decode(text: &str) -> Result<String, PercentError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'%' => {
                let hi = bytes.get(at + 1).and_then(|&c| hex_value(c));
                let lo = bytes.get(at + 2).and_then(|&c| hex_value(c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(PercentError::BadEscape { at }),
                }
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            _ => {
                out.push(b);
                at += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| PercentError::InvalidUtf8)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The `key=value` pairs of a query string (the part after `?`), still encoded, in order.
/// Empty segments (`a=1&&b=2`, a trailing `&`) are skipped; a segment without `=` has no value.
pub fn pairs(query: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    query.split('&').filter(|segment| !segment.is_empty()).map(|segment| match segment.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (segment, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(percent_decode("A%2CB").as_deref(), Ok("A,B"));
        assert_eq!(percent_decode("a%2cb").as_deref(), Ok("a,b"));
        assert_eq!(percent_decode("a+b").as_deref(), Ok("a b"));
        assert_eq!(percent_decode("%2B").as_deref(), Ok("+"));
        assert_eq!(percent_decode("%C3%A9t%C3%A9").as_deref(), Ok("été"));
        assert_eq!(percent_decode("").as_deref(), Ok(""));
    }

    #[test]
    fn refuses_bad_escapes() {
        assert_eq!(percent_decode("abc%"), Err(PercentError::BadEscape { at: 3 }));
        assert_eq!(percent_decode("%4"), Err(PercentError::BadEscape { at: 0 }));
        assert_eq!(percent_decode("x%zz"), Err(PercentError::BadEscape { at: 1 }));
        assert_eq!(percent_decode("%FF"), Err(PercentError::InvalidUtf8));
    }

    #[test]
    fn splits_pairs() {
        let got: Vec<_> = pairs("a=1&&b=&c&d=x=y&").collect();
        assert_eq!(got, vec![("a", Some("1")), ("b", Some("")), ("c", None), ("d", Some("x=y"))]);
        assert_eq!(pairs("").count(), 0);
    }
}
