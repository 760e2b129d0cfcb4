//! The JSON sets format of invoke bodies: any bytes decode or give an error, never a panic;
//! what decodes encodes and decodes to the same sets; the fast path gives what the full decoder
//! gives whenever it answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::wire::{WireLimits, json};

fuzz_target!(|data: &[u8]| {
    let limits = WireLimits::default();
    let full = json::decode_full(data, &limits);
    if let Some(fast) = json::decode_plain(data, &limits) {
        assert_eq!(Ok(fast), full, "the fast path differs from the full decoder");
    }
    let Ok(sets) = full else { return };
    let text = json::encode(&sets).expect("decoded sets encode");
    let again = json::decode(text.as_bytes(), &limits).expect("encoded sets decode");
    assert_eq!(again, sets);
});
