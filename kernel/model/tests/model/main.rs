//! The public API of `pappus-model`, tested from outside: every format, every error path, and
//! property tests (round trips, and "never panics" on arbitrary input).

mod function;
mod props;
mod tenant;
mod wire_binary;
mod wire_json;
mod wire_raw;

/// Cases per property: enough to find shallow bugs, few enough to keep `cargo test` quick.
pub const CASES: u32 = 256;
