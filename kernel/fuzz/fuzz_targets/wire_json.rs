//! The JSON sets format of invoke bodies: any bytes decode or give an error, never a panic;
//! what decodes encodes and decodes to the same sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::wire::{WireLimits, json};

fuzz_target!(|data: &[u8]| {
    let limits = WireLimits::default();
    let Ok(sets) = json::decode(data, &limits) else { return };
    let text = json::encode(&sets).expect("decoded sets encode");
    let again = json::decode(text.as_bytes(), &limits).expect("encoded sets decode");
    assert_eq!(again, sets);
});
