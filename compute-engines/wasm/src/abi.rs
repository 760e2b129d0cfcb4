//! The wasm transport of the function ABI: names and signatures (docs/function-abi.md).
//!
//! The SDK declares the same imports (`pappus_sdk` `sys` module); an image that imports
//! anything not listed here, or with another signature, is refused at prepare time.

use wasmi::ValType;

/// The one import namespace the platform provides.
pub const NAMESPACE: &str = "pappus";

/// The export the engine calls: `run: [] -> []`. Returning from it is the one exit path.
pub const ENTRY: &str = "run";

/// The linear memory export the host functions read and write.
pub const MEMORY: &str = "memory";

/// `input_set_count() -> i32`
pub const INPUT_SET_COUNT: &str = "input_set_count";
/// `input_set_name(set, dst, cap) -> i32`: copies up to `cap` bytes, returns the full length.
pub const INPUT_SET_NAME: &str = "input_set_name";
/// `input_item_count(set) -> i32`
pub const INPUT_ITEM_COUNT: &str = "input_item_count";
/// `input_item_info(set, item, dst) -> i32`: writes the 24-byte item descriptor, returns 0.
pub const INPUT_ITEM_INFO: &str = "input_item_info";
/// `input_item_name(set, item, dst, cap) -> i32`: copies up to `cap` bytes, returns the full length.
pub const INPUT_ITEM_NAME: &str = "input_item_name";
/// `input_item_read(set, item, offset: i64, dst, len) -> i32`: copies data from `offset`, returns the count.
pub const INPUT_ITEM_READ: &str = "input_item_read";
/// `output_set_count() -> i32`
pub const OUTPUT_SET_COUNT: &str = "output_set_count";
/// `output_set_name(set, dst, cap) -> i32`
pub const OUTPUT_SET_NAME: &str = "output_set_name";
/// `output_push(set, name, name_len, flags, key: i64, data, data_len)`: ends the run on bad output.
pub const OUTPUT_PUSH: &str = "output_push";
/// `abort(msg, msg_len)`: ends the run as failed with the message; never returns.
pub const ABORT: &str = "abort";

const I32: ValType = ValType::I32;
const I64: ValType = ValType::I64;

/// One import of the ABI: its name and wasm signature.
#[derive(Debug)]
pub struct Import {
    /// The import's name in [`NAMESPACE`].
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result types.
    pub results: &'static [ValType],
    /// Whether it takes pointers into linear memory (then the module must export [`MEMORY`]).
    pub uses_memory: bool,
}

/// Every import the platform provides.
pub const IMPORTS: &[Import] = &[
    Import { name: INPUT_SET_COUNT, params: &[], results: &[I32], uses_memory: false },
    Import { name: INPUT_SET_NAME, params: &[I32, I32, I32], results: &[I32], uses_memory: true },
    Import { name: INPUT_ITEM_COUNT, params: &[I32], results: &[I32], uses_memory: false },
    Import { name: INPUT_ITEM_INFO, params: &[I32, I32, I32], results: &[I32], uses_memory: true },
    Import { name: INPUT_ITEM_NAME, params: &[I32, I32, I32, I32], results: &[I32], uses_memory: true },
    Import { name: INPUT_ITEM_READ, params: &[I32, I32, I64, I32, I32], results: &[I32], uses_memory: true },
    Import { name: OUTPUT_SET_COUNT, params: &[], results: &[I32], uses_memory: false },
    Import { name: OUTPUT_SET_NAME, params: &[I32, I32, I32], results: &[I32], uses_memory: true },
    Import { name: OUTPUT_PUSH, params: &[I32, I32, I32, I32, I64, I32, I32], results: &[], uses_memory: true },
    Import { name: ABORT, params: &[I32, I32], results: &[], uses_memory: true },
];

/// The ABI import called `name`, if there is one.
pub fn import(name: &str) -> Option<&'static Import> {
    IMPORTS.iter().find(|i| i.name == name)
}

/// `params -> results` in wasm text notation, for error messages.
pub fn signature(params: &[ValType], results: &[ValType]) -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::from("[");
    let list = |out: &mut alloc::string::String, types: &[ValType]| {
        for (i, t) in types.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            let _ = write!(out, "{sep}{}", type_name(*t));
        }
    };
    list(&mut out, params);
    out.push_str("] -> [");
    list(&mut out, results);
    out.push(']');
    out
}

fn type_name(t: ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::FuncRef => "funcref",
        ValType::ExternRef => "externref",
        ValType::V128 => "v128",
    }
}
