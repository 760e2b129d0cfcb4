//! The JSON invoke format: `{"sets":{"A":[{"name":"x","key":1,"data":"<base64>"}]}}`.
//!
//! - `sets` is an object from set name to an array of items; sets keep the order in which they
//!   appear in the document (not sorted), items the order of their array.
//! - An item has `data` (required: standard base64, RFC 4648 section 4, with `=` padding, no line
//!   breaks), `name` (optional, default `""`) and `key` (optional: an integer 0..=2^64-1, or
//!   `null` for none). Any other field, anywhere, is refused, so a misspelt field is an error
//!   rather than silently ignored.
//! - Duplicate set names and duplicate fields are refused.
//!
//! Decoding goes through serde_json's parser with visitors that check [`WireLimits`] as they go,
//! so nothing is allocated past a limit, and serde_json's recursion limit (128) turns deeply
//! nested input into an error instead of a stack overflow. All item data are decoded into one
//! buffer and handed out as slices of it: one allocation per request rather than one per item.

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::WireFormat;
use super::encoder::Encoder;
use super::error::{SetRef, WireError, WireErrorKind, path};
use super::limits::WireLimits;
use crate::name::{self, shorten};
use crate::{Bytes, Item, Name, Set};

mod plain;

/// Decodes a JSON invoke request into sets, in document order. Base64 error offsets count bytes
/// of the `data` string after JSON unescaping.
pub fn decode(body: &[u8], limits: &WireLimits) -> Result<Vec<Set>, WireError> {
    match decode_plain(body, limits) {
        Some(sets) => Ok(sets),
        None => decode_full(body, limits),
    }
}

/// [`decode`]'s fast path alone: the sets of a plain, acceptable document, else `None` (see
/// [`plain`]). Public so that tests and the fuzz target can hold it to [`decode_full`].
pub fn decode_plain(body: &[u8], limits: &WireLimits) -> Option<Vec<Set>> {
    plain::decode(body, limits)
}

/// [`decode`] without the fast path: serde_json's parser and the visitors below, for any
/// document, with a precise error for a refused one. Public so that tests and the fuzz target
/// can hold the two paths to the same answers.
pub fn decode_full(body: &[u8], limits: &WireLimits) -> Result<Vec<Set>, WireError> {
    let mut ctx = Ctx { limits, data: Vec::new(), sets: Vec::new(), set_names: BTreeSet::new(), items: 0, error: None };
    let mut parser = serde_json::Deserializer::from_slice(body);
    let parsed = Document(&mut ctx).deserialize(&mut parser).and_then(|()| parser.end());
    match parsed {
        Ok(()) => Ok(ctx.finish()),
        Err(e) => {
            Err(ctx.error.take().unwrap_or_else(|| WireError::new(String::new(), WireErrorKind::Json(e.to_string()))))
        }
    }
}

/// About how many bytes [`encode`] makes of `sets` (names with nothing to escape make it exact
/// to within a few bytes per item): what a server checks it has room for before encoding.
pub fn encoded_len(sets: &[Set]) -> usize {
    sets.iter().fold(16usize, |n, set| {
        set.items.iter().fold(n.saturating_add(set.name.len() + 8), |n, item| {
            n.saturating_add(item.name.len() + 48).saturating_add(item.data.len().div_ceil(3) * 4)
        })
    })
}

/// Encodes sets (e.g. a function's outputs) in the same shape as a request. Fails only if the
/// sets break the data model (see [`WireLimits::check`] with [`WireLimits::MODEL`]).
pub fn encode(sets: &[Set]) -> Result<String, WireError> {
    let mut encoder = Encoder::new(WireFormat::Json, sets, encoded_len(sets))
        .ok_or_else(|| WireError::new(String::new(), WireErrorKind::Json("not a JSON encoder".into())))?;
    encoder.write(usize::MAX, usize::MAX)?;
    Ok(encoder.into_string())
}

/// Decoding state shared by the visitors.
struct Ctx<'l> {
    limits: &'l WireLimits,
    /// Every item's decoded data, back to back.
    data: Vec<u8>,
    sets: Vec<PendingSet>,
    set_names: BTreeSet<String>,
    /// Items so far, over all sets.
    items: usize,
    /// The error to report. The innermost visitor that sees a failure records it, with its path;
    /// serde's own error then only unwinds the parser.
    error: Option<WireError>,
}

struct PendingSet {
    name: Name,
    items: Vec<PendingItem>,
}

struct PendingItem {
    name: Name,
    key: Option<u64>,
    data: Range<usize>,
}

impl Ctx<'_> {
    /// Records a precise error and returns the serde error that unwinds the parser.
    fn fail<E: de::Error>(&mut self, at: String, kind: WireErrorKind) -> E {
        if self.error.is_none() {
            self.error = Some(WireError::new(at, kind));
        }
        E::custom("invalid invoke request")
    }

    /// Passes on an error from the parser, recording it at `at` unless a more precise one was.
    fn note<E: de::Error>(&mut self, e: E, at: impl FnOnce(&Self) -> String) -> E {
        if self.error.is_none() {
            self.error = Some(WireError::new(at(self), WireErrorKind::Json(e.to_string())));
        }
        e
    }

    /// The path of item `item` (and `field`) of the set being decoded.
    fn item_path(&self, item: usize, field: Option<&str>) -> String {
        let set = self.sets.last().map_or("", |s| s.name.as_str());
        path(SetRef::Name(set), Some(item), field)
    }

    fn set_path(&self) -> String {
        path(SetRef::Name(self.sets.last().map_or("", |s| s.name.as_str())), None, None)
    }

    fn finish(self) -> Vec<Set> {
        finish(self.data, self.sets)
    }
}

/// The sets, their items' data slices of the one buffer `data`.
fn finish(data: Vec<u8>, sets: Vec<PendingSet>) -> Vec<Set> {
    let whole = Bytes::from(data);
    let item =
        |p: PendingItem| Item { name: p.name, key: p.key, data: whole.slice(p.data).unwrap_or_else(Bytes::empty) };
    sets.into_iter().map(|s| Set { name: s.name, items: s.items.into_iter().map(item).collect() }).collect()
}

/// A field name: one of the `known` ones, or another (shortened, for the error message).
enum Field {
    Known(&'static str),
    Unknown(String),
}

struct FieldSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(self.0.iter().find(|&&k| k == v).map_or_else(|| Field::Unknown(shorten(v, 64)), |&k| Field::Known(k)))
    }
}

/// The whole document: `{"sets": ...}`.
struct Document<'c, 'l>(&'c mut Ctx<'l>);

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"sets\" field")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let mut seen = false;
        while let Some(field) = map.next_key_seed(FieldSeed(&["sets"])).map_err(|e| ctx.note(e, |_| String::new()))? {
            match field {
                Field::Known(_) if seen => return Err(ctx.fail("sets".into(), WireErrorKind::DuplicateField("sets"))),
                Field::Known(_) => {
                    seen = true;
                    map.next_value_seed(SetsSeed(&mut *ctx)).map_err(|e| ctx.note(e, |_| "sets".into()))?;
                }
                Field::Unknown(other) => return Err(ctx.fail(String::new(), WireErrorKind::UnknownField(other))),
            }
        }
        if !seen {
            return Err(ctx.fail(String::new(), WireErrorKind::MissingField("sets")));
        }
        Ok(())
    }
}

/// `{"A": [...], "B": [...]}`.
struct SetsSeed<'c, 'l>(&'c mut Ctx<'l>);

impl<'de> DeserializeSeed<'de> for SetsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SetsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object from set names to arrays of items")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        while let Some(name) = map.next_key::<String>().map_err(|e| ctx.note(e, |_| "sets".into()))? {
            // Only a refusal names the place: no formatting on the way through.
            let at = |name: &str| path(SetRef::Name(name), None, None);
            if ctx.sets.len() >= ctx.limits.max_sets {
                return Err(ctx.fail("sets".into(), WireErrorKind::TooManySets { max: ctx.limits.max_sets }));
            }
            if let Err(e) = name::validate_set_name_within(&name, ctx.limits.max_name_len) {
                return Err(ctx.fail(at(&name), WireErrorKind::BadName(e)));
            }
            if super::repeats(&name, ctx.sets.iter().map(|s| s.name.as_str()), &mut ctx.set_names) {
                return Err(ctx.fail(at(&name), WireErrorKind::DuplicateSet));
            }
            ctx.sets.push(PendingSet { name: name.into(), items: Vec::new() });
            map.next_value_seed(ItemsSeed(&mut *ctx)).map_err(|e| ctx.note(e, Ctx::set_path))?;
        }
        Ok(())
    }
}

/// `[item, item, ...]` of the last set in `Ctx::sets`.
struct ItemsSeed<'c, 'l>(&'c mut Ctx<'l>);

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let mut index = 0;
        loop {
            // A parser error before the item seed ran (`ctx.items` unchanged) is between items.
            let before = ctx.items;
            let next = seq.next_element_seed(ItemSeed { ctx: &mut *ctx, index }).map_err(|e| {
                ctx.note(e, |c| if c.items == before { c.set_path() } else { c.item_path(index, None) })
            })?;
            let Some(item) = next else { break };
            if let Some(set) = ctx.sets.last_mut() {
                set.items.push(item);
            }
            index += 1;
        }
        Ok(())
    }
}

/// `{"name": "x", "key": 1, "data": "<base64>"}`, the `index`-th item of its set.
struct ItemSeed<'c, 'l> {
    ctx: &'c mut Ctx<'l>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_> {
    type Value = PendingItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PendingItem, D::Error> {
        self.ctx.items = self.ctx.items.saturating_add(1);
        if self.ctx.items > self.ctx.limits.max_items {
            let kind = WireErrorKind::TooManyItems { max: self.ctx.limits.max_items };
            return Err(self.ctx.fail(self.ctx.item_path(self.index, None), kind));
        }
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_> {
    type Value = PendingItem;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an item object {\"name\", \"key\", \"data\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PendingItem, A::Error> {
        let Self { ctx, index } = self;
        let (mut name, mut key, mut data) = (None::<Name>, None::<Option<u64>>, None::<Range<usize>>);
        let fields = FieldSeed(&["name", "key", "data"]);
        while let Some(field) =
            map.next_key_seed(fields.clone()).map_err(|e| ctx.note(e, |c| c.item_path(index, None)))?
        {
            let field = match field {
                Field::Known(field) => field,
                Field::Unknown(other) => {
                    return Err(ctx.fail(ctx.item_path(index, None), WireErrorKind::UnknownField(other)));
                }
            };
            let already = match field {
                "name" => name.is_some(),
                "key" => key.is_some(),
                _ => data.is_some(),
            };
            if already {
                return Err(ctx.fail(ctx.item_path(index, Some(field)), WireErrorKind::DuplicateField(field)));
            }
            let at = |c: &Ctx<'_>| c.item_path(index, Some(field));
            match field {
                "name" => {
                    let text: String = map.next_value().map_err(|e| ctx.note(e, at))?;
                    if let Err(e) = name::validate_item_name_within(&text, ctx.limits.max_name_len) {
                        return Err(ctx.fail(at(ctx), WireErrorKind::BadName(e)));
                    }
                    name = Some(Name::from(text));
                }
                "key" => key = Some(map.next_value_seed(KeySeed).map_err(|e| ctx.note(e, at))?),
                _ => data = Some(map.next_value_seed(DataSeed { ctx: &mut *ctx, index }).map_err(|e| ctx.note(e, at))?),
            }
        }
        let Some(data) = data else {
            return Err(ctx.fail(ctx.item_path(index, None), WireErrorKind::MissingField("data")));
        };
        Ok(PendingItem { name: name.unwrap_or_default(), key: key.flatten(), data })
    }
}

impl Clone for FieldSeed {
    fn clone(&self) -> Self {
        Self(self.0)
    }
}

/// An item key: an unsigned 64-bit integer or `null`.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<u64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key: an integer from 0 to 18446744073709551615, or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_u64(self)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
        Ok(Some(v))
    }
}

/// Base64 item data, decoded onto the end of `Ctx::data`; the value is its range there.
struct DataSeed<'c, 'l> {
    ctx: &'c mut Ctx<'l>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = Range<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Range<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for DataSeed<'_, '_> {
    type Value = Range<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Range<usize>, E> {
        let Self { ctx, index } = self;
        let start = ctx.data.len();
        let room = ctx.limits.max_total_bytes.saturating_sub(start);
        if decoded_len(text) > room {
            let kind = WireErrorKind::TooManyBytes { max: ctx.limits.max_total_bytes };
            return Err(ctx.fail(ctx.item_path(index, Some("data")), kind));
        }
        // Reserved fallibly first (base64's own growth would abort on failure); its estimate
        // is at most three bytes per four symbols of the text.
        if ctx.data.try_reserve(text.len().div_ceil(4) * 3).is_err() {
            let kind = WireErrorKind::OutOfMemory { bytes: decoded_len(text) };
            return Err(ctx.fail(ctx.item_path(index, Some("data")), kind));
        }
        if let Err(e) = STANDARD.decode_vec(text, &mut ctx.data) {
            return Err(ctx.fail(ctx.item_path(index, Some("data")), base64_error(e)));
        }
        Ok(start..ctx.data.len())
    }
}

/// The number of bytes well-formed base64 `text` decodes to (an upper bound for any text).
fn decoded_len(text: &str) -> usize {
    let symbols = text.trim_end_matches('=').len();
    symbols / 4 * 3 + (symbols % 4 * 3) / 4
}

fn base64_error(e: base64::DecodeError) -> WireErrorKind {
    let (at_byte, why) = match e {
        base64::DecodeError::InvalidByte(at, b'=') => (Some(at), "'=' is only allowed as padding at the end"),
        base64::DecodeError::InvalidByte(at, _) => {
            (Some(at), "not a base64 character (standard alphabet, no line breaks)")
        }
        base64::DecodeError::InvalidLength(_) => {
            (None, "the length is not possible for base64 (one symbol too many or too few)")
        }
        base64::DecodeError::InvalidLastSymbol { offset, .. } => {
            (Some(offset), "the last symbol has bits set beyond the end of the data")
        }
        base64::DecodeError::InvalidPadding => (None, "missing or wrong '=' padding"),
    };
    WireErrorKind::InvalidBase64 { at_byte, why }
}
