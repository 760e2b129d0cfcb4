//! The `pappus` host functions: the wasm transport of the function ABI.
//!
//! Every function charges fuel for its work (a flat fee plus one unit per 64 bytes copied, as
//! wasmi charges for `memory.copy`), so data movement counts against the same deterministic
//! budget as instructions. Queries about sets or items that do not exist return
//! [`NOT_FOUND`]; pointers outside linear memory, bad output and `abort` end the run.

use alloc::string::String;
use engine::BadOutput;
use engine::abi::{ITEM_FLAG_KEY, NOT_FOUND};
use model::{Bytes, Item, MAX_NAME_LEN};
use wasmi::{Caller, Func, Store};

use crate::abi;
use crate::fault::HostFault;
use crate::guest_memory::{self, Arg};
use crate::state::HostState;

type Ctx<'a> = Caller<'a, HostState>;
type HostResult<T> = Result<T, wasmi::Error>;

/// Fuel every host call costs, whatever it copies.
const HOST_CALL_FUEL: u64 = 8;

/// Bytes copied per unit of fuel (wasmi's own rate for bulk memory operations).
const BYTES_PER_FUEL: u64 = 64;

/// The longest `abort` message kept; the rest is cut (messages go into a JSON error body).
const MAX_ABORT_MESSAGE: usize = 4096;

/// The host function for ABI import `name`, made in `store` (`None`: no such import).
///
/// Each run's store gets its own host functions, one per import of the module, made directly:
/// a wasmi `Linker` would look every import up by module and name on every instantiation
/// (interned strings and a map; about 430 host instructions per import, `invoke_matmul_wasm`
/// under callgrind), while the imports were already matched against the ABI at prepare time.
pub(crate) fn func(store: &mut Store<HostState>, name: &str) -> Option<Func> {
    Some(match name {
        abi::INPUT_SET_COUNT => Func::wrap(store, input_set_count),
        abi::INPUT_SET_NAME => Func::wrap(store, input_set_name),
        abi::INPUT_ITEM_COUNT => Func::wrap(store, input_item_count),
        abi::INPUT_ITEM_INFO => Func::wrap(store, input_item_info),
        abi::INPUT_ITEM_NAME => Func::wrap(store, input_item_name),
        abi::INPUT_ITEM_READ => Func::wrap(store, input_item_read),
        abi::OUTPUT_SET_COUNT => Func::wrap(store, output_set_count),
        abi::OUTPUT_SET_NAME => Func::wrap(store, output_set_name),
        abi::OUTPUT_PUSH => Func::wrap(store, output_push),
        abi::ABORT => Func::wrap(store, abort),
        _ => return None,
    })
}

fn input_set_count(mut caller: Ctx<'_>) -> HostResult<i32> {
    charge(&mut caller, 0)?;
    Ok(count(caller.data().inputs.len()))
}

fn input_set_name(mut caller: Ctx<'_>, set: i32, dst: i32, cap: i32) -> HostResult<i32> {
    let arg = Arg { call: abi::INPUT_SET_NAME, what: "destination" };
    copy_name(&mut caller, |s| s.inputs.get(index(set)).map(|set| set.name.as_str()), dst, cap, arg)
}

fn input_item_count(mut caller: Ctx<'_>, set: i32) -> HostResult<i32> {
    charge(&mut caller, 0)?;
    Ok(caller.data().inputs.get(index(set)).map_or(NOT_FOUND, |set| count(set.items.len())))
}

fn input_item_info(mut caller: Ctx<'_>, set: i32, item: i32, dst: i32) -> HostResult<i32> {
    charge(&mut caller, 0)?;
    let (memory, state) = guest(&mut caller, abi::INPUT_ITEM_INFO)?;
    let Some(item) = input_item(state, set, item) else { return Ok(NOT_FOUND) };
    let info = engine::abi::item_info(item).encode();
    guest_memory::write(memory, dst, &info, Arg { call: abi::INPUT_ITEM_INFO, what: "destination" })?;
    Ok(0)
}

fn input_item_name(mut caller: Ctx<'_>, set: i32, item: i32, dst: i32, cap: i32) -> HostResult<i32> {
    let arg = Arg { call: abi::INPUT_ITEM_NAME, what: "destination" };
    copy_name(&mut caller, |s| Some(input_item(s, set, item)?.name.as_str()), dst, cap, arg)
}

fn input_item_read(mut caller: Ctx<'_>, set: i32, item: i32, offset: i64, dst: i32, len: i32) -> HostResult<i32> {
    let Some(total) = input_item(caller.data(), set, item).map(|item| item.data.len()) else {
        return Ok(NOT_FOUND);
    };
    let start = usize::try_from(offset.cast_unsigned()).unwrap_or(usize::MAX).min(total);
    // At most `len` bytes (read as unsigned), at most what is left, and a count an i32 can return.
    let wanted = usize::try_from(len.cast_unsigned()).unwrap_or(usize::MAX);
    let n = wanted.min(total - start).min(i32::MAX as usize);
    charge(&mut caller, n)?;
    // The item borrowed again beside memory (no clone of its buffer's handle).
    let (memory, state) = guest(&mut caller, abi::INPUT_ITEM_READ)?;
    let data = input_item(state, set, item).map(|item| &*item.data).unwrap_or_default();
    let bytes = data.get(start..start + n).unwrap_or_default();
    guest_memory::write(memory, dst, bytes, Arg { call: abi::INPUT_ITEM_READ, what: "destination" })?;
    Ok(count(n))
}

fn output_set_count(mut caller: Ctx<'_>) -> HostResult<i32> {
    charge(&mut caller, 0)?;
    Ok(count(caller.data().outputs.len()))
}

fn output_set_name(mut caller: Ctx<'_>, set: i32, dst: i32, cap: i32) -> HostResult<i32> {
    let arg = Arg { call: abi::OUTPUT_SET_NAME, what: "destination" };
    copy_name(&mut caller, |s| s.outputs.get(index(set)).map(|set| set.name.as_str()), dst, cap, arg)
}

#[allow(clippy::too_many_arguments)] // the ABI's shape: one call per item, scalars only
fn output_push(
    mut caller: Ctx<'_>,
    set: i32,
    name: i32,
    name_len: i32,
    flags: i32,
    key: i64,
    data: i32,
    data_len: i32,
) -> HostResult<()> {
    let name_bytes = u64::from(name_len.cast_unsigned());
    let data_bytes = u64::from(data_len.cast_unsigned());
    check_output(caller.data(), set, flags.cast_unsigned(), data_bytes)?;
    charge(&mut caller, usize::try_from(name_bytes.saturating_add(data_bytes)).unwrap_or(usize::MAX))?;
    let (memory, state) = guest(&mut caller, abi::OUTPUT_PUSH)?;
    let name = guest_memory::read(memory, name, name_len, Arg { call: abi::OUTPUT_PUSH, what: "name" })?;
    let data = guest_memory::read(memory, data, data_len, Arg { call: abi::OUTPUT_PUSH, what: "data" })?;
    let name = item_name(name)?;
    let key = (flags.cast_unsigned() & ITEM_FLAG_KEY != 0).then_some(key.cast_unsigned());
    // `check_output` found the set; the lookup cannot fail, but a failure must not panic.
    let Some(out) = state.outputs.get_mut(index(set)) else {
        return Err(bad_output(BadOutput::UndeclaredSet { index: u64::from(set.cast_unsigned()), declared: 0 }));
    };
    // In pages of its own when large, for a native function it goes to next (`Bytes::copy_out`).
    let data = Bytes::copy_out(data).unwrap_or_else(|| Bytes::from(data));
    out.items.push(Item { name, key, data });
    state.output_items += 1;
    state.output_bytes += data_bytes;
    Ok(())
}

fn abort(mut caller: Ctx<'_>, message: i32, len: i32) -> HostResult<()> {
    let (memory, _) = guest(&mut caller, abi::ABORT)?;
    let wanted = usize::try_from(len.cast_unsigned()).unwrap_or(usize::MAX);
    let kept = wanted.min(MAX_ABORT_MESSAGE);
    let arg = Arg { call: abi::ABORT, what: "message" };
    let text = match guest_memory::read(memory, message, count(kept), arg) {
        Ok(bytes) => {
            let mut text = String::from_utf8_lossy(bytes).into_owned();
            if kept < wanted {
                text.push_str(" …(truncated)");
            }
            text
        }
        // The function meant to abort: report that, with what is wrong with its message.
        Err(fault) => alloc::format!("(message unreadable: {fault})"),
    };
    Err(HostFault::Abort(text).into())
}

/// Checks an output write against the declaration and the limits before anything is copied.
fn check_output(state: &HostState, set: i32, flags: u32, data_bytes: u64) -> Result<(), wasmi::Error> {
    if state.outputs.get(index(set)).is_none() {
        let index = u64::from(set.cast_unsigned());
        return Err(bad_output(BadOutput::UndeclaredSet { index, declared: state.outputs.len() }));
    }
    if flags & !ITEM_FLAG_KEY != 0 {
        return Err(bad_output(BadOutput::ReservedFlags { flags }));
    }
    if state.output_items >= state.max_output_items {
        return Err(bad_output(BadOutput::TooManyItems { limit: state.max_output_items }));
    }
    let attempted = state.output_bytes.saturating_add(data_bytes);
    if attempted > state.max_output_bytes {
        return Err(bad_output(BadOutput::TooLarge { attempted, limit: state.max_output_bytes }));
    }
    Ok(())
}

/// An output item's name: UTF-8, at most [`MAX_NAME_LEN`] bytes.
fn item_name(bytes: &[u8]) -> Result<model::Name, wasmi::Error> {
    if bytes.len() > MAX_NAME_LEN {
        let reason = alloc::format!("{} bytes, the limit is {MAX_NAME_LEN}", bytes.len());
        return Err(bad_output(BadOutput::InvalidName { reason }));
    }
    match core::str::from_utf8(bytes) {
        Ok(name) => Ok(name.into()),
        Err(e) => Err(bad_output(BadOutput::InvalidName { reason: alloc::format!("not UTF-8 ({e})") })),
    }
}

fn bad_output(e: BadOutput) -> wasmi::Error {
    HostFault::BadOutput(e).into()
}

/// Copies up to `cap` bytes of a name to `dst` and returns the name's full length, or
/// [`NOT_FOUND`] when `name_of` finds nothing.
fn copy_name(
    caller: &mut Ctx<'_>,
    name_of: impl Fn(&HostState) -> Option<&str>,
    dst: i32,
    cap: i32,
    arg: Arg,
) -> HostResult<i32> {
    let Some(len) = name_of(caller.data()).map(str::len) else {
        charge(caller, 0)?;
        return Ok(NOT_FOUND);
    };
    let n = len.min(usize::try_from(cap.cast_unsigned()).unwrap_or(usize::MAX));
    charge(caller, n)?;
    let (memory, state) = guest(caller, arg.call)?;
    let name = name_of(state).map(str::as_bytes).unwrap_or_default();
    guest_memory::write(memory, dst, name.get(..n).unwrap_or_default(), arg)?;
    Ok(count(len))
}

/// The input item `item` of input set `set`, if both exist.
fn input_item(state: &HostState, set: i32, item: i32) -> Option<&Item> {
    state.inputs.get(index(set))?.items.get(index(item))
}

/// Linear memory and the host state, borrowed together.
fn guest<'a>(caller: &'a mut Ctx<'_>, call: &'static str) -> Result<(&'a mut [u8], &'a mut HostState), HostFault> {
    let memory = caller.data().memory.ok_or(HostFault::NoMemory(call))?;
    Ok(memory.data_and_store_mut(caller))
}

/// Charges one host call that copies `bytes`, from the budget's reserve first, then from the
/// store's fuel. Running out is a timeout, like running out inside wasm.
fn charge(caller: &mut Ctx<'_>, bytes: usize) -> HostResult<()> {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let cost = HOST_CALL_FUEL.saturating_add(bytes / BYTES_PER_FUEL);
    let state = caller.data_mut();
    let from_reserve = cost.min(state.fuel_reserve);
    state.fuel_reserve -= from_reserve;
    let rest = cost - from_reserve;
    if rest == 0 {
        return Ok(());
    }
    let fuel = caller.get_fuel()?;
    if fuel < rest {
        caller.set_fuel(0)?;
        return Err(HostFault::OutOfFuel.into());
    }
    caller.set_fuel(fuel - rest)?;
    Ok(())
}

/// A wasm `i32` index read as unsigned.
fn index(i: i32) -> usize {
    usize::try_from(i.cast_unsigned()).unwrap_or(usize::MAX)
}

/// A count as a wasm `i32` (saturating; counts here never approach it).
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;
    use engine::{Limits, TimeBudget};
    use wasmi::Store;

    use super::func;
    use crate::abi;
    use crate::config::WasmConfig;
    use crate::state::HostState;

    #[test]
    fn every_abi_import_has_a_host_function_of_its_signature() {
        let config = WasmConfig::default();
        let engine = wasmi::Engine::new(&config.wasmi_config());
        let limits = Limits::new(1 << 20, TimeBudget::from_millis(1));
        let mut store = Store::new(&engine, HostState::new(Vec::new(), &[], &limits, &config));
        for import in abi::IMPORTS {
            let f = func(&mut store, import.name).unwrap_or_else(|| panic!("no host function `{}`", import.name));
            let ty = f.ty(&store);
            assert_eq!((ty.params(), ty.results()), (import.params, import.results), "{}", import.name);
        }
        assert!(func(&mut store, "no_such_import").is_none());
    }
}
