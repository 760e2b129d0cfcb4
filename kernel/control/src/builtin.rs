//! Builtins: trusted platform functions every tenant can invoke and use in compositions.
//!
//! | name       | signature          | does                                                                 |
//! |------------|--------------------|----------------------------------------------------------------------|
//! | `identity` | `(in) => (out)`    | returns its input items                                              |
//! | `concat`   | `(a, b) => (out)`  | the items of `a`, then those of `b`                                  |
//! | `fail`     | `(in) => (out)`    | always fails (500 `function_failed`); the message is the first item's data (UTF-8, at most 256 bytes), or `fail called` |
//! | `sleep`    | `(in) => (out)`    | returns its input items after N ms, N being the first item's data as a decimal number (0..=10000; no item: 0) |
//! | `http`     | `(requests) => (responses, bodies, errors)` | a communication function: fetches each request item over HTTP (docs/wire-formats.md, "The http function"); the runtime does the I/O |
//! | `HTTP`     | `(requests) => (headers, bodies)` | Dandelion's HTTP function: `http` with Dandelion's set layout (docs/wire-formats.md, "Dandelion's HTTP function"); any failed request fails the instance |
//!
//! A program declares a builtin like any other function before applying it (the composition
//! language resolves only declared names), e.g. `function concat (a, b) => (out);`; a
//! declaration with other set counts than the table's is refused when the program is uploaded.
//!
//! Their names are reserved in every tenant's namespace: registering a function or a composition
//! under one is 409 `reserved`. `GET /v1/functions/{builtin}` describes one; listings show only
//! the tenant's own functions.
//!
//! `sleep` never blocks: its instance waits on a deadline while the invocation stays pending,
//! and [`ControlPlane::poll`](crate::ControlPlane::poll) completes it once `now_ms` has passed
//! the deadline. It is how tests (and users) see that invocations are asynchronous.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use dsl::Signature;
use model::{Bytes, Item, Set};

use crate::json;
use crate::runtime::{Comm, RunError};

/// The longest `sleep`, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 10_000;

/// The longest message `fail` returns, in bytes.
const MAX_FAIL_MESSAGE: usize = 256;

/// A platform function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Builtin {
    Identity,
    Concat,
    Fail,
    Sleep,
    Http,
    /// Dandelion's `HTTP`: the `http` exchange, its outputs laid out as Dandelion's are.
    DandelionHttp,
}

/// What running a builtin gives.
#[derive(Debug)]
pub(crate) enum BuiltinRun {
    Done(Vec<Set>),
    Failed(RunError),
    /// Done with these outputs once `ms` milliseconds have passed.
    After {
        ms: u64,
        outputs: Vec<Set>,
    },
    /// A communication function: the runtime runs it on these inputs.
    Comm(Comm, Vec<Set>),
}

impl Builtin {
    pub const ALL: [Self; 6] = [Self::Identity, Self::Concat, Self::Fail, Self::Sleep, Self::Http, Self::DandelionHttp];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Concat => "concat",
            Self::Fail => "fail",
            Self::Sleep => "sleep",
            Self::Http => "http",
            Self::DandelionHttp => "HTTP",
        }
    }

    /// The builtin called `name`, if any.
    pub fn find(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Input set names, in order.
    pub const fn inputs(self) -> &'static [&'static str] {
        match self {
            Self::Concat => &["a", "b"],
            Self::Identity | Self::Fail | Self::Sleep => &["in"],
            Self::Http | Self::DandelionHttp => &["requests"],
        }
    }

    /// Output set names, in order.
    pub const fn outputs(self) -> &'static [&'static str] {
        match self {
            Self::Http => &["responses", "bodies", "errors"],
            Self::DandelionHttp => &["headers", "bodies"],
            Self::Identity | Self::Concat | Self::Fail | Self::Sleep => &["out"],
        }
    }

    pub const fn signature(self) -> Signature {
        Signature { inputs: self.inputs().len(), outputs: self.outputs().len() }
    }

    /// `{"name":"concat","engine":"builtin","inputs":["a","b"],"outputs":["out"]}`.
    pub(crate) fn to_json(self) -> String {
        let mut out = String::from("{\"name\":");
        json::push_str(&mut out, self.name());
        out.push_str(",\"engine\":\"builtin\",\"inputs\":");
        json::push_str_array(&mut out, self.inputs());
        out.push_str(",\"outputs\":");
        json::push_str_array(&mut out, self.outputs());
        out.push('}');
        out
    }

    /// Runs the builtin on its inputs (one set per declared input, in order; missing ones count
    /// as empty).
    pub(crate) fn run(self, inputs: Vec<Set>) -> BuiltinRun {
        let mut inputs = inputs.into_iter();
        let mut first = inputs.next().map(|s| s.items).unwrap_or_default();
        let out = |items: Vec<Item>| vec![Set { name: "out".into(), items }];
        match self {
            Self::Identity => BuiltinRun::Done(out(first)),
            Self::Concat => {
                first.extend(inputs.next().map(|s| s.items).unwrap_or_default());
                BuiltinRun::Done(out(first))
            }
            Self::Fail => {
                let message = match first.first() {
                    Some(item) => {
                        let data = item.data.get(..item.data.len().min(MAX_FAIL_MESSAGE)).unwrap_or_default();
                        String::from_utf8_lossy(data).into_owned()
                    }
                    None => "fail called".to_owned(),
                };
                BuiltinRun::Failed(RunError::failed(message))
            }
            Self::Sleep => match first.first().map(|item| parse_ms(&item.data)).unwrap_or(Ok(0)) {
                Ok(ms) => BuiltinRun::After { ms, outputs: out(first) },
                Err(message) => BuiltinRun::Failed(RunError::failed(message)),
            },
            Self::Http | Self::DandelionHttp => {
                BuiltinRun::Comm(Comm::Http, vec![Set { name: "requests".into(), items: first }])
            }
        }
    }

    /// Turns what the runtime's communication function gave into this builtin's outputs: as is
    /// for `http`; for Dandelion's `HTTP`, its layout (see [`dandelion_http`]).
    pub(crate) fn adapt(self, outputs: Vec<Set>) -> Result<Vec<Set>, RunError> {
        match self {
            Self::DandelionHttp => dandelion_http(outputs),
            _ => Ok(outputs),
        }
    }
}

/// Dandelion's `HTTP (requests) => (headers, bodies)` from `http`'s `(responses, bodies, errors)`.
///
/// Dandelion fails the whole function when one request fails, so any `errors` item fails the
/// instance (500 `function_failed`, the first error line and how many failed). Each `headers`
/// item is Dandelion's text: the status line, then one `name:value` line per header field, the
/// name in lower case, every line ending in `\n` (no empty line at the end). Bodies are as
/// `http` gives them. Items keep the names and keys of their requests, in request order.
fn dandelion_http(outputs: Vec<Set>) -> Result<Vec<Set>, RunError> {
    let mut sets = outputs.into_iter();
    let (Some(responses), Some(bodies), Some(errors)) = (sets.next(), sets.next(), sets.next()) else {
        return Err(RunError::new(500, "internal", "the http exchange gave fewer than three sets"));
    };
    if let Some(first) = errors.items.first() {
        let line =
            String::from_utf8_lossy(first.data.get(..first.data.len().min(512)).unwrap_or_default()).into_owned();
        let more = match errors.items.len() {
            1 => String::new(),
            n => format!(" (and {} more failed request(s))", n - 1),
        };
        return Err(RunError::failed(format!("HTTP: {line}{more}")));
    }
    let headers = responses
        .items
        .into_iter()
        .map(|item| Item { data: Bytes::from(dandelion_head(&item.data)), ..item })
        .collect();
    Ok(vec![Set { name: "headers".into(), items: headers }, Set { name: "bodies".into(), items: bodies.items }])
}

/// `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n` -> `HTTP/1.1 200 OK\ncontent-type:text/plain\n`.
fn dandelion_head(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    if let Some(status) = lines.next() {
        out.extend_from_slice(status);
        out.push(b'\n');
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (line.get(..colon).unwrap_or_default(), line.get(colon + 1..).unwrap_or_default()),
            None => (line, &[][..]),
        };
        out.extend(name.iter().map(u8::to_ascii_lowercase));
        out.push(b':');
        out.extend_from_slice(value.trim_ascii());
        out.push(b'\n');
    }
    out
}

/// A decimal number of milliseconds in 0..=[`MAX_SLEEP_MS`] (ASCII white space around it ignored).
fn parse_ms(data: &[u8]) -> Result<u64, String> {
    let text = data.trim_ascii();
    let invalid = || {
        let shown = json::shorten(&String::from_utf8_lossy(data.get(..64).unwrap_or(data)), 32);
        format!("sleep: {shown:?} is not a whole number of milliseconds in 0..={MAX_SLEEP_MS}")
    };
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let ms = text.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')));
    match ms {
        Some(ms) if ms <= MAX_SLEEP_MS => Ok(ms),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Set {
        Set {
            name: "x".into(),
            items: items
                .iter()
                .map(|d| Item { name: Default::default(), key: None, data: Bytes::from(d.as_bytes()) })
                .collect(),
        }
    }

    fn data(sets: &[Set]) -> Vec<Vec<u8>> {
        sets.iter().flat_map(|s| s.items.iter().map(|i| i.data.to_vec())).collect()
    }

    #[test]
    fn names_and_signatures() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::find(b.name()), Some(b));
        }
        assert_eq!(Builtin::find("HTTP"), Some(Builtin::DandelionHttp));
        assert_eq!(Builtin::find("Http"), None);
        assert_eq!(
            Builtin::DandelionHttp.to_json(),
            r#"{"name":"HTTP","engine":"builtin","inputs":["requests"],"outputs":["headers","bodies"]}"#
        );
        assert_eq!(Builtin::Http.signature(), Signature { inputs: 1, outputs: 3 });
        assert_eq!(Builtin::Concat.signature(), Signature { inputs: 2, outputs: 1 });
        assert_eq!(
            Builtin::Concat.to_json(),
            r#"{"name":"concat","engine":"builtin","inputs":["a","b"],"outputs":["out"]}"#
        );
    }

    #[test]
    fn identity_concat_fail() {
        let BuiltinRun::Done(out) = Builtin::Identity.run(vec![set(&["a", "b"])]) else { panic!() };
        assert_eq!(data(&out), [b"a".to_vec(), b"b".to_vec()]);
        let BuiltinRun::Done(out) = Builtin::Concat.run(vec![set(&["a"]), set(&["b", "c"])]) else { panic!() };
        assert_eq!(data(&out), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let BuiltinRun::Done(out) = Builtin::Concat.run(vec![]) else { panic!() };
        assert!(out[0].items.is_empty());
        let BuiltinRun::Failed(e) = Builtin::Fail.run(vec![set(&["boom"])]) else { panic!() };
        assert_eq!((e.status, e.code, e.message.as_str()), (500, "function_failed", "boom"));
        let BuiltinRun::Failed(e) = Builtin::Fail.run(vec![set(&[])]) else { panic!() };
        assert_eq!(e.message, "fail called");
        let long = "x".repeat(1000);
        let BuiltinRun::Failed(e) = Builtin::Fail.run(vec![set(&[&long])]) else { panic!() };
        assert_eq!(e.message.len(), MAX_FAIL_MESSAGE);
    }

    #[test]
    fn sleep_parses_milliseconds() {
        assert_eq!(parse_ms(b"250"), Ok(250));
        assert_eq!(parse_ms(b" 10000\n"), Ok(10_000));
        assert!(parse_ms(b"10001").is_err());
        assert!(parse_ms(b"-1").is_err());
        assert!(parse_ms(b"").is_err());
        assert!(parse_ms(b"99999999999999999999999").is_err());
        let BuiltinRun::After { ms, outputs } = Builtin::Sleep.run(vec![set(&["5", "x"])]) else { panic!() };
        assert_eq!((ms, data(&outputs).len()), (5, 2));
        let BuiltinRun::After { ms, .. } = Builtin::Sleep.run(vec![set(&[])]) else { panic!() };
        assert_eq!(ms, 0);
        let BuiltinRun::Failed(e) = Builtin::Sleep.run(vec![set(&["soon"])]) else { panic!() };
        assert_eq!(e.message, "sleep: \"soon\" is not a whole number of milliseconds in 0..=10000");
    }

    fn named(name: &str, key: Option<u64>, data: &[u8]) -> Item {
        Item { name: name.into(), key, data: Bytes::from(data) }
    }

    #[test]
    fn dandelion_http_lays_out_headers_and_bodies_as_dandelion() {
        let BuiltinRun::Comm(Comm::Http, inputs) = Builtin::DandelionHttp.run(vec![set(&["GET http://h/ HTTP/1.1"])])
        else {
            panic!("not a communication function")
        };
        assert_eq!((inputs.len(), inputs[0].name.as_str(), inputs[0].items.len()), (1, "requests", 1));
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Two:  a b \r\n\r\n";
        let outputs = vec![
            Set { name: "responses".into(), items: vec![named("r1", Some(7), head)] },
            Set { name: "bodies".into(), items: vec![named("r1", Some(7), b"hello")] },
            Set { name: "errors".into(), items: vec![] },
        ];
        let got = Builtin::DandelionHttp.adapt(outputs).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].name.as_str(), got[1].name.as_str()), ("headers", "bodies"));
        let h = &got[0].items[0];
        assert_eq!((h.name.as_str(), h.key), ("r1", Some(7)));
        assert_eq!(&h.data[..], b"HTTP/1.1 200 OK\ncontent-type:text/plain\nx-two:a b\n");
        assert_eq!(&got[1].items[0].data[..], b"hello");
    }

    #[test]
    fn dandelion_http_fails_when_a_request_fails() {
        let outputs = vec![
            Set { name: "responses".into(), items: vec![] },
            Set { name: "bodies".into(), items: vec![] },
            Set {
                name: "errors".into(),
                items: vec![named("a", None, b"refused: 10.0.2.2:9 refused the connection"), named("b", None, b"x")],
            },
        ];
        let e = Builtin::DandelionHttp.adapt(outputs).unwrap_err();
        assert_eq!((e.status, e.code), (500, "function_failed"));
        assert_eq!(e.message, "HTTP: refused: 10.0.2.2:9 refused the connection (and 1 more failed request(s))");
        // `http` itself passes its three sets through.
        let three = vec![Set::new("r"), Set::new("b"), Set::new("e")];
        assert_eq!(Builtin::Http.adapt(three).unwrap().len(), 3);
    }
}
