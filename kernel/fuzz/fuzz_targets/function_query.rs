//! A function registration's name and query string (`PUT /v1/functions/{name}?…`): any text
//! gives a spec or an error, never a panic. Input: the name, a NUL, the query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::FunctionSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else { return };
    let (name, query) = text.split_once('\0').unwrap_or(("f", text));
    if let Ok(spec) = FunctionSpec::from_query(name, query) {
        assert_eq!(spec.name(), name, "the spec names the function it was asked for");
    }
    let _ = model::parse_size(query);
    let _ = model::query::percent_decode(query);
});
