//! Reusing an instance: a run that completed leaves its store, reset to the state instantiation
//! gives, for the next run of the same image.
//!
//! Instantiating costs every run far more than the function itself for small functions (a 3×3
//! matmul: about 45 K of the kernel's 150 K instructions per request in `wasmi`'s
//! instantiation, host functions and teardown, `cargo xtask profile matmul3-wasm`). A reused
//! store skips all of it; what a run can change is put back instead:
//!
//! - linear memory: its bytes are put back as instantiation left them: zeroed (with the
//!   kernel's 32- or 16-bytes-a-store zeroing, [`WasmConfig::zero`]), then the initial memory's
//!   non-zero blocks (its data segments) copied over; a memory that grew is not reused. (Copying
//!   the whole initial memory, as before, cost ~8,200 of a 3×3 matmul's ~81,000 instructions:
//!   `rep movsq` is one instruction per 8 bytes under icount, for 64 KiB mostly zero);
//! - mutable globals: set back to their initial values;
//! - tables: every element set back; a table that grew is not reused. A module none of whose
//!   instructions can change a table (`table.set`, `.grow`, `.fill`, `.copy`, `.init`: the
//!   example functions use none) keeps its tables as instantiation made them, and nothing is
//!   put back (17 elements of a 3×3 matmul's function table: ~500 instructions a run);
//! - the host state (inputs, outputs, limits, fuel): made anew for each run.
//!
//! Everything else in a store is fixed after instantiation (functions, the instance, the
//! module's constant globals). A module qualifies only when the engine can reach all of that
//! state, i.e. it exports its memory, every mutable global and every table (the example
//! functions do: `functions/.cargo/config.toml`), and has no passive data or element segments
//! (their dropped state could not be put back), no initial memory above [`MAX_POOLED_MEMORY`],
//! and no more than [`MAX_KEPT_TABLE_ELEMENTS`] table elements and [`MAX_KEPT_GLOBALS`] mutable
//! globals (putting them back is not charged to the run's budget); other modules get a fresh
//! instance every run, as before. A run that
//! fails (trap, timeout, abort, bad output) or grew its memory or a table does not give its
//! store back: a new instance is made for the slot instead ([`Reuse::refill`]), so the heap an
//! image holds does not depend on what its runs did. One store per image is kept, made at
//! prepare time (so that the image's memory measure includes it); a second concurrent run
//! instantiates as before and gives its store back only when the slot is empty, and a run
//! dropped unfinished leaves the slot empty until then.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use engine::{Limits, TimeBudget};
use wasmi::{Extern, Func, Global, Instance, Memory, Module, Ref, Store, Table, Val};

use crate::abi;
use crate::config::WasmConfig;
use crate::state::HostState;

/// The largest initial memory an image's kept store may have: registration makes one, and the
/// image holds it (and a copy of the initial memory) for its lifetime.
pub(crate) const MAX_POOLED_MEMORY: u64 = 256 << 10;

/// The most table elements (over all tables) and mutable globals a kept store puts back after
/// each run; that work is not charged to the run's budget, so a module with more instantiates
/// for every run instead (which the run's budget does pay for, as before).
pub(crate) const MAX_KEPT_TABLE_ELEMENTS: u64 = 4096;
/// See [`MAX_KEPT_TABLE_ELEMENTS`].
pub(crate) const MAX_KEPT_GLOBALS: usize = 256;

/// What of a module's state a run can change, named by its exports.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    memory: Option<String>,
    globals: Vec<String>,
    tables: Vec<String>,
}

/// An image's reuse: its initial memory, what instantiation costs in fuel, and the kept store.
pub(crate) struct Reuse {
    plan: Plan,
    /// Linear memory as instantiation leaves it.
    memory: Box<[u8]>,
    /// Where `memory` is not zero: blocks of [`BLOCK`] bytes, adjacent ones merged.
    nonzero: Vec<core::ops::Range<usize>>,
    /// The fuel instantiation took: a reused run is charged the same, so that a run's fuel does
    /// not depend on whether its store was reused.
    pub instantiation_fuel: u64,
    slot: spin::Mutex<Option<Box<Ready>>>,
    /// How many runs took the kept store (for tests).
    pub taken: AtomicU64,
    /// What [`refill`](Reuse::refill) instantiates.
    wasmi: wasmi::Engine,
    module: Module,
    imports: Arc<[&'static str]>,
    config: WasmConfig,
}

/// A fresh store for `module`, instantiated, idle, with its handles; and the fuel that took.
fn fresh(
    plan: &Plan,
    wasmi: &wasmi::Engine,
    module: &Module,
    imports: &[&'static str],
    config: &WasmConfig,
) -> Option<(Box<Ready>, u64)> {
    let limits = Limits::new(MAX_POOLED_MEMORY, TimeBudget::from_millis(1));
    let mut store = Store::new(wasmi, HostState::new(Vec::new(), &[], &limits, config));
    store.limiter(|state| &mut state.limiter);
    const FUEL: u64 = u64::MAX / 2;
    store.set_fuel(FUEL).ok()?;
    let instance = instantiate(&mut store, module, imports).ok()?;
    let fuel = FUEL.saturating_sub(store.get_fuel().ok()?);
    let handles = Handles::new(&store, instance, plan)?;
    *store.data_mut() = HostState::idle();
    Some((Box::new(Ready { store, handles }), fuel))
}

/// An instantiated store in its initial state, with the handles a run needs and the initial
/// values to put back.
pub(crate) struct Ready {
    pub store: Store<HostState>,
    pub handles: Handles,
}

/// What a run of a kept store uses, and what is put back after it.
pub(crate) struct Handles {
    pub entry: Func,
    /// The memory exported as `memory`, which the host functions read and write.
    pub abi_memory: Option<Memory>,
    /// The memory to put back (the one memory, under any export name).
    memory: Option<Memory>,
    globals: Vec<(Global, Val)>,
    tables: Vec<(Table, Vec<Ref>)>,
}

impl Reuse {
    /// Makes the first store for `module` and records its initial state, if the module
    /// qualifies (`plan`) and its instantiation succeeds.
    pub fn new(
        plan: Plan,
        wasmi: &wasmi::Engine,
        module: &Module,
        imports: &Arc<[&'static str]>,
        config: &WasmConfig,
    ) -> Option<Self> {
        let (ready, instantiation_fuel) = fresh(&plan, wasmi, module, imports, config)?;
        let memory = match ready.handles.memory {
            Some(memory) => Box::from(memory.data(&ready.store)),
            None => Box::default(),
        };
        let nonzero = nonzero_blocks(&memory);
        Some(Self {
            plan,
            memory,
            nonzero,
            instantiation_fuel,
            slot: spin::Mutex::new(Some(ready)),
            taken: AtomicU64::new(0),
            wasmi: wasmi.clone(),
            module: module.clone(),
            imports: imports.clone(),
            config: config.clone(),
        })
    }

    /// Makes a new kept store if the slot is empty: after a run that held the kept store failed
    /// or grew it, so that the slot is full again whatever runs did (the heap an image holds
    /// does not depend on its history; `cargo xtask soak` checks it comes back to its baseline).
    /// A run dropped unfinished leaves it empty until a run instantiates and gives its store.
    pub fn refill(&self) {
        if self.slot.lock().is_some() {
            return;
        }
        if let Some((ready, _)) = fresh(&self.plan, &self.wasmi, &self.module, &self.imports, &self.config) {
            let mut slot = self.slot.lock();
            if slot.is_none() {
                *slot = Some(ready);
            }
        }
    }

    /// The kept store, if no other run holds it and a run with `limits` may have its memory
    /// (else the run instantiates, and fails as instantiation does).
    pub fn take(&self, limits: &Limits) -> Option<Box<Ready>> {
        if self.memory.len() as u64 > limits.memory_bytes {
            return None;
        }
        let ready = self.slot.lock().take();
        if ready.is_some() {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        ready
    }

    /// The handles of a fresh instance of this image in `store` (before its first run), so that
    /// the store can be kept after the run.
    pub fn handles(&self, store: &Store<HostState>, instance: Instance) -> Option<Handles> {
        Handles::new(store, instance, &self.plan)
    }

    /// Puts `ready`'s state back as instantiation left it and keeps it, if it can be and the
    /// slot is empty; else drops it.
    pub fn give_back(&self, mut ready: Box<Ready>) {
        // No run's inputs or outputs stay in a kept store.
        *ready.store.data_mut() = HostState::idle();
        if ready.reset(&self.memory, &self.nonzero, self.config.zero).is_some() {
            let mut slot = self.slot.lock();
            if slot.is_none() {
                *slot = Some(ready);
            }
        } else {
            drop(ready);
            self.refill();
        }
    }
}

impl Handles {
    fn new(store: &Store<HostState>, instance: Instance, plan: &Plan) -> Option<Self> {
        let entry = instance.get_func(store, abi::ENTRY)?;
        let abi_memory = instance.get_export(store, abi::MEMORY).and_then(Extern::into_memory);
        let memory = match &plan.memory {
            Some(name) => Some(instance.get_memory(store, name)?),
            None => None,
        };
        let mut globals = Vec::new();
        globals.try_reserve_exact(plan.globals.len()).ok()?;
        for name in &plan.globals {
            let global = instance.get_global(store, name)?;
            globals.push((global, global.get(store)));
        }
        let mut tables = Vec::new();
        tables.try_reserve_exact(plan.tables.len()).ok()?;
        for name in &plan.tables {
            let table = instance.get_table(store, name)?;
            let size = table.size(store);
            let mut elements = Vec::new();
            elements.try_reserve_exact(usize::try_from(size).ok()?).ok()?;
            for i in 0..size {
                elements.push(table.get(store, i)?);
            }
            tables.push((table, elements));
        }
        Some(Self { entry, abi_memory, memory, globals, tables })
    }
}

impl Ready {
    /// Puts memory, globals and tables back as instantiation left them (memory: zeroed with
    /// `zero`, then `initial`'s `nonzero` blocks copied). `None`: this store cannot be (memory
    /// or a table grew), drop it.
    fn reset(&mut self, initial: &[u8], nonzero: &[core::ops::Range<usize>], zero: fn(&mut [u8])) -> Option<()> {
        let handles = &self.handles;
        if let Some(memory) = handles.memory {
            let bytes = memory.data_mut(&mut self.store);
            if bytes.len() != initial.len() {
                return None;
            }
            restore(bytes, initial, nonzero, zero);
        }
        for (global, value) in &handles.globals {
            global.set(&mut self.store, value.clone()).ok()?;
        }
        for (table, elements) in &handles.tables {
            if table.size(&self.store) != elements.len() as u64 {
                return None;
            }
            for (i, element) in (0u64..).zip(elements) {
                table.set(&mut self.store, i, *element).ok()?;
            }
        }
        Some(())
    }
}

/// The granularity of [`nonzero_blocks`]: a block holding one non-zero byte is copied whole.
const BLOCK: usize = 256;

/// The blocks of `initial` that are not all zero, adjacent ones merged into one range.
fn nonzero_blocks(initial: &[u8]) -> Vec<core::ops::Range<usize>> {
    let mut runs: Vec<core::ops::Range<usize>> = Vec::new();
    for (i, block) in initial.chunks(BLOCK).enumerate() {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        let range = i * BLOCK..i * BLOCK + block.len();
        match runs.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => runs.push(range),
        }
    }
    runs
}

/// Makes `memory` equal to `initial` (the same length), whose non-zero bytes all lie in
/// `nonzero` ([`nonzero_blocks`]): the gaps between those ranges zeroed with `zero`, the ranges
/// copied.
fn restore(memory: &mut [u8], initial: &[u8], nonzero: &[core::ops::Range<usize>], zero: fn(&mut [u8])) {
    let mut at = 0;
    for range in nonzero {
        zero(&mut memory[at..range.start]);
        memory[range.clone()].copy_from_slice(&initial[range.clone()]);
        at = range.end;
    }
    zero(&mut memory[at..]);
}

/// A fresh instance of `module` in `store`, with one host function per import.
pub(crate) fn instantiate(
    store: &mut Store<HostState>,
    module: &Module,
    imports: &[&'static str],
) -> Result<Instance, wasmi::Error> {
    let mut externs = Vec::new();
    externs.try_reserve_exact(imports.len()).map_err(|_| wasmi::Error::new("no memory for the module's imports"))?;
    for name in imports {
        // Checked at prepare time; an image from elsewhere must still not panic.
        let func = crate::host::func(store, name).ok_or_else(|| wasmi::Error::new("an import the ABI lacks"))?;
        externs.push(Extern::Func(func));
    }
    Instance::new(store, module, &externs)
}

/// Whether a run of `bytes` (a valid module: wasmi has validated it) can reuse its store: the
/// exports that reach its changeable state, or `None`.
pub(crate) fn plan(bytes: &[u8]) -> Option<Plan> {
    let mut mutable_globals = Vec::new();
    let mut tables = 0u32;
    let mut memories = 0u32;
    let mut memory_min_pages = 0u64;
    let mut table_elements = 0u64;
    let mut tables_written = false;
    let mut exports = Vec::new();
    let mut r = Reader { bytes: bytes.get(8..)?, at: 0 };
    while !r.done() {
        let id = r.byte()?;
        let size = usize::try_from(r.leb()?).ok()?;
        let mut s = Reader { bytes: r.take(size)?, at: 0 };
        match id {
            // Imports: functions only (the ABI's); anything else shifts indices, refuse.
            2 => {
                for _ in 0..s.leb()? {
                    s.name()?;
                    s.name()?;
                    if s.byte()? != 0 {
                        return None;
                    }
                    s.leb()?;
                }
            }
            4 => {
                tables = s.leb()?;
                for _ in 0..tables {
                    s.byte()?; // element type
                    let flags = s.byte()?;
                    // 64-bit or shared tables: not the ABI's, refuse.
                    if flags & !0x1 != 0 {
                        return None;
                    }
                    table_elements = table_elements.saturating_add(s.leb64()?);
                    if flags & 1 != 0 {
                        s.leb64()?; // maximum
                    }
                }
            }
            5 => {
                memories = s.leb()?;
                if memories > 0 {
                    let flags = s.byte()?;
                    memory_min_pages = s.leb64()?;
                    // 64-bit memories or custom page sizes: not the ABI's, refuse.
                    if flags & !0x1 != 0 {
                        return None;
                    }
                }
            }
            6 => {
                for index in 0..s.leb()? {
                    s.byte()?; // value type
                    if s.byte()? != 0 {
                        mutable_globals.push(index);
                    }
                    s.const_expr()?;
                }
            }
            7 => {
                for _ in 0..s.leb()? {
                    let name = s.name()?;
                    let kind = s.byte()?;
                    let index = s.leb()?;
                    exports.push((name, kind, index));
                }
            }
            9 => {
                for _ in 0..s.leb()? {
                    let flags = s.leb()?;
                    match flags {
                        // Passive: its dropped state could not be put back, refuse.
                        1 | 5 => return None,
                        // Active, table 0: offset, then function indices (0) or expressions (4).
                        0 | 4 => {
                            s.const_expr()?;
                        }
                        // Active with a table index: table, offset, element kind or type.
                        2 | 6 => {
                            s.leb()?;
                            s.const_expr()?;
                            s.byte()?;
                        }
                        // Declarative (dropped at instantiation, as active ones are): kind or type.
                        3 | 7 => {
                            s.byte()?;
                        }
                        _ => return None,
                    }
                    for _ in 0..s.leb()? {
                        if flags & 4 != 0 {
                            s.const_expr()?;
                        } else {
                            s.leb()?;
                        }
                    }
                }
            }
            10 => tables_written = writes_a_table(s.bytes)?,
            11 => {
                for _ in 0..s.leb()? {
                    match s.leb()? {
                        0 => {}
                        2 => {
                            s.leb()?;
                        }
                        _ => return None, // passive
                    }
                    s.const_expr()?;
                    let len = usize::try_from(s.leb()?).ok()?;
                    s.take(len)?;
                }
            }
            _ => {}
        }
    }
    if memories > 1 || memory_min_pages.checked_mul(65536)? > MAX_POOLED_MEMORY {
        return None;
    }
    if !tables_written {
        // Every table stays as instantiation made it: nothing to put back.
        tables = 0;
        table_elements = 0;
    }
    // Putting state back is the platform's work, not charged to the run: keep it small.
    if table_elements > MAX_KEPT_TABLE_ELEMENTS || mutable_globals.len() > MAX_KEPT_GLOBALS {
        return None;
    }
    let export = |kind: u8, index: u32| {
        exports.iter().find(|(_, k, i)| *k == kind && *i == index).map(|(name, _, _)| String::from(*name))
    };
    let mut plan = Plan::default();
    if memories == 1 {
        plan.memory = Some(export(2, 0)?);
    }
    for index in mutable_globals {
        plan.globals.push(export(3, index)?);
    }
    for index in 0..tables {
        plan.tables.push(export(1, index)?);
    }
    Some(plan)
}

/// Whether an instruction in `code` (the code section's contents) can change a table:
/// `table.set`, `.grow`, `.fill`, `.copy` or `.init`. Tables are not imported (the ABI's imports
/// are functions) and host functions touch none, so without such an instruction a run leaves
/// every table as instantiation made it. `None`: unreadable (wasmi validated the module, so
/// that would be a wasmparser this crate does not expect; the module is then not reused).
fn writes_a_table(code: &[u8]) -> Option<bool> {
    use wasmparser::Operator as Op;
    let bodies = wasmparser::CodeSectionReader::new(wasmparser::BinaryReader::new(code, 0)).ok()?;
    for body in bodies {
        let mut ops = body.ok()?.get_operators_reader().ok()?;
        while !ops.eof() {
            let op = ops.read().ok()?;
            if matches!(
                op,
                Op::TableSet { .. }
                    | Op::TableGrow { .. }
                    | Op::TableFill { .. }
                    | Op::TableCopy { .. }
                    | Op::TableInit { .. }
            ) {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// A cursor over a module's bytes; every read is checked (`None` past the end).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn leb64(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn leb(&mut self) -> Option<u32> {
        u32::try_from(self.leb64()?).ok()
    }

    fn name(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.leb()?).ok()?;
        core::str::from_utf8(self.take(len)?).ok()
    }

    /// Skips a constant expression up to its `end`. Unknown instructions: `None`.
    fn const_expr(&mut self) -> Option<()> {
        loop {
            match self.byte()? {
                0x0b => return Some(()),
                0x41 | 0x42 | 0x23 | 0xd2 => {
                    self.leb64()?; // i32.const, i64.const (signed LEB, same length), global.get, ref.func
                }
                0x43 => {
                    self.take(4)?;
                }
                0x44 => {
                    self.take(8)?;
                }
                0xd0 => {
                    self.byte()?; // ref.null's heap type
                }
                0x6a | 0x6b | 0x6c | 0x7c | 0x7d | 0x7e => {} // extended constant arithmetic
                0xfd => {
                    // v128.const
                    if self.leb()? != 12 {
                        return None;
                    }
                    self.take(16)?;
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A pseudo-random byte stream (xorshift), for memories a run scribbled on.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn restoring_puts_every_byte_back() {
        // Initial memories: all zero, all data, and data segments at block edges and inside.
        let len = 9 * BLOCK + 17;
        let mut shapes: Vec<Vec<u8>> = vec![vec![0; len], noise(1, len), vec![0; 0]];
        for segments in [&[(0, 1)][..], &[(BLOCK - 1, 2), (3 * BLOCK, BLOCK)], &[(len - 1, 1)], &[(5, 3 * BLOCK)]] {
            let mut initial = vec![0; len];
            for &(at, n) in segments {
                initial[at..at + n].copy_from_slice(&noise(at as u64 + 7, n));
            }
            shapes.push(initial);
        }
        for initial in &shapes {
            let nonzero = nonzero_blocks(initial);
            for r in &nonzero {
                assert!(r.start % BLOCK == 0 && r.end <= initial.len() && r.start < r.end);
            }
            let outside = |i: usize| !nonzero.iter().any(|r| r.contains(&i));
            assert!((0..initial.len()).filter(|&i| outside(i)).all(|i| initial[i] == 0), "a non-zero byte left out");
            for seed in 1..4 {
                let mut memory = noise(seed * 1000, initial.len());
                restore(&mut memory, initial, &nonzero, |b| b.fill(0));
                assert_eq!(&memory, initial);
            }
        }
    }

    #[test]
    fn truncated_or_foreign_bytes_have_no_plan() {
        assert!(plan(b"").is_none());
        assert!(plan(b"\0asm\x01\0\0\0\x07\x05").is_none(), "a section longer than the module");
        // A global of an unknown constant instruction (0xff).
        assert!(plan(b"\0asm\x01\0\0\0\x06\x05\x01\x7f\x01\xff\x0b").is_none());
    }

    #[test]
    fn an_empty_module_has_nothing_to_put_back() {
        let plan = plan(b"\0asm\x01\0\0\0").unwrap();
        assert!(plan.memory.is_none() && plan.globals.is_empty() && plan.tables.is_empty());
    }

    #[test]
    fn an_unexported_mutable_global_rules_reuse_out() {
        // (global (mut i32) (i32.const 7))
        let module = b"\0asm\x01\0\0\0\x06\x06\x01\x7f\x01\x41\x07\x0b";
        assert!(plan(module).is_none());
        // The same global exported as "g".
        let mut exported = module.to_vec();
        exported.extend_from_slice(b"\x07\x05\x01\x01g\x03\x00");
        assert_eq!(plan(&exported).unwrap().globals, ["g"]);
    }
}
