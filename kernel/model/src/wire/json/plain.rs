//! The fast path of [`super::decode`]: a single forward scan of documents in the plain shape
//! clients send (and [`super::encode`] writes): strings without escapes, keys as plain integers
//! or `null`, any JSON whitespace. It accepts a document only when everything in it is well
//! formed and within the limits, and then gives exactly what the full decoder gives; anything
//! else (an escape, a float, an unknown or repeated field, a limit reached, bad base64, running
//! out of memory) is `None`, and the full decoder (serde_json with the visitors) decodes it again
//! and reports the precise error. `fast_and_full_agree` (below) and the `wire_json` fuzz target
//! hold the two to the same answers.
//!
//! Why it exists: `cargo xtask profile matmul3-native` showed the full decoder at ~9.9K guest
//! instructions for a two-item body of 300 bytes (serde's visitor machinery, string copies,
//! base64's `decode_vec`); this path decodes it for a fraction of that.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::name;
use crate::wire::{WireLimits, b64};
use crate::{Bytes, Item, Set};

/// Decodes `body` when it is plain and acceptable; `None` sends it to the full decoder.
pub fn decode(body: &[u8], limits: &WireLimits) -> Option<Vec<Set>> {
    let mut scan = Scan { bytes: body, at: 0 };
    // One allocation for every item's data: the body bounds what it decodes to.
    let mut data = Vec::new();
    data.try_reserve_exact(limits.max_total_bytes.min(body.len() / 4 * 3)).ok()?;
    // The items as they will be handed out, their data pending until the buffer is whole.
    let mut sets: Vec<Set> = Vec::new();
    let mut set_names = BTreeSet::new();
    let mut items = 0usize;
    scan.expect(b'{')?;
    if scan.raw_string()? != b"sets" {
        return None;
    }
    scan.expect(b':')?;
    scan.expect(b'{')?;
    if !scan.close(b'}') {
        loop {
            let name = scan.string()?;
            if sets.len() >= limits.max_sets
                || name::validate_set_name_within(name, limits.max_name_len).is_err()
                || super::super::repeats(name, sets.iter().map(|s| s.name.as_str()), &mut set_names)
            {
                return None;
            }
            scan.expect(b':')?;
            // Room for four items made at once (what the first push would grow it to, by a
            // longer path).
            let mut set = Set { name: name.into(), items: Vec::with_capacity(4) };
            scan.expect(b'[')?;
            if !scan.close(b']') {
                loop {
                    items += 1;
                    if items > limits.max_items {
                        return None;
                    }
                    set.items.push(item(&mut scan, limits, &mut data)?);
                    if !scan.next(b']')? {
                        break;
                    }
                }
            }
            sets.push(set);
            if !scan.next(b'}')? {
                break;
            }
        }
    }
    scan.expect(b'}')?;
    scan.skip_space();
    if scan.at != body.len() {
        return None;
    }
    let whole = Bytes::from(data);
    for item in sets.iter_mut().flat_map(|s| s.items.iter_mut()) {
        item.data = item.data.resolve(&whole);
    }
    Some(sets)
}

/// `{"name": "x", "key": 1, "data": "<base64>"}`, its fields in any order, each at most once.
fn item(scan: &mut Scan<'_>, limits: &WireLimits, data: &mut Vec<u8>) -> Option<Item> {
    let (mut name, mut key, mut range) = (None::<&str>, None::<Option<u64>>, None);
    scan.expect(b'{')?;
    loop {
        let field = scan.raw_string()?;
        scan.expect(b':')?;
        match field {
            b"name" if name.is_none() => {
                let text = scan.string()?;
                name::validate_item_name_within(text, limits.max_name_len).ok()?;
                name = Some(text);
            }
            b"key" if key.is_none() => key = Some(scan.key()?),
            b"data" if range.is_none() => {
                let start = data.len();
                scan.base64_data(data)?;
                // `data` holds what it was given room for, at most the limit; still checked.
                if data.len() > limits.max_total_bytes {
                    return None;
                }
                range = Some(start..data.len());
            }
            _ => return None,
        }
        if !scan.next(b'}')? {
            break;
        }
    }
    Some(Item { name: name.unwrap_or_default().into(), key: key.flatten(), data: Bytes::pending(range?) })
}

/// A cursor over the document.
struct Scan<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Scan<'b> {
    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn take(&mut self) -> Option<u8> {
        self.skip_space();
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.take()? == want).then_some(())
    }

    /// Consumes `end` if it comes next (an empty object or array).
    fn close(&mut self, end: u8) -> bool {
        self.skip_space();
        let closed = self.bytes.get(self.at) == Some(&end);
        self.at += usize::from(closed);
        closed
    }

    /// After a member: `,` (true: another follows) or `end` (false); anything else is `None`.
    fn next(&mut self, end: u8) -> Option<bool> {
        match self.take()? {
            b',' => Some(true),
            b if b == end => Some(false),
            _ => None,
        }
    }

    /// A string without escapes or control characters, as text.
    fn string(&mut self) -> Option<&'b str> {
        core::str::from_utf8(self.raw_string()?).ok()
    }

    /// A string without escapes or control characters, its bytes (a field name, compared as
    /// bytes: not worth UTF-8 validation).
    fn raw_string(&mut self) -> Option<&'b [u8]> {
        self.expect(b'"')?;
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at += len + 1;
        Some(&rest[..len])
    }

    /// A string of base64, decoded onto `data` within the room it has (no escapes: a `\\` or
    /// control byte in it fails [`b64::decode_quoted`]).
    fn base64_data(&mut self, data: &mut Vec<u8>) -> Option<()> {
        self.expect(b'"')?;
        let len = b64::decode_quoted(&self.bytes[self.at..], data)?;
        self.at += len + 1;
        Some(())
    }

    /// An item key: `null` or a plain integer 0..=2^64-1 (no sign, fraction, exponent or
    /// leading zero; those go to the full decoder).
    fn key(&mut self) -> Option<Option<u64>> {
        self.skip_space();
        let rest = &self.bytes[self.at..];
        if rest.starts_with(b"null") {
            self.at += 4;
            return Some(None);
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let after = rest.get(digits).copied();
        if digits == 0 || (digits > 1 && rest[0] == b'0') || matches!(after, Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value =
            rest[..digits].iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
        self.at += digits;
        Some(Some(value))
    }
}
