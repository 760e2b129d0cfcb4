//! The binary sets format (`application/x-pappus-sets`): any bytes decode or give an error,
//! never a panic; what decodes encodes and decodes to the same sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::Bytes;
use model::wire::{WireLimits, binary};

fuzz_target!(|data: &[u8]| {
    let limits = WireLimits::default();
    let Ok(sets) = binary::decode(&Bytes::from(data.to_vec()), &limits) else { return };
    let encoded = binary::encode(&sets).expect("decoded sets encode");
    let again = binary::decode(&Bytes::from(encoded), &limits).expect("encoded sets decode");
    assert_eq!(again, sets);
});
