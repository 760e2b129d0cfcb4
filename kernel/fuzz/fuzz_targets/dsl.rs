//! The composition language: any text either parses or gets diagnostics, never a panic; a
//! program that parses goes through the semantic checks, and its printed form parses again and
//! prints the same (the printer is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else { return };
    let Ok(program) = dsl::parse(text) else { return };
    let _ = dsl::check(&program, &|_| None);
    let printed = program.to_string();
    let again = dsl::parse(&printed).unwrap_or_else(|e| panic!("printed program does not parse: {e:?}\n{printed}"));
    assert_eq!(again.to_string(), printed, "printing is not canonical");
});
