//! The native engines: x86_64 static-PIE functions run at CPL 3 (docs/function-abi.md, "The
//! native transport").
//!
//! Every sandbox sees its image (W^X, from `pappus-elf`), the read-only system data block with
//! its inputs, a heap and a stack mapped on first touch (counted with the image against the
//! memory limit, zero until written), and guard gaps between them ([`Layout`]).
//! - `paging` ([`PagingEngine`]): every run gets its own address space (one PML4 sharing the
//!   kernel's upper half), torn down after it.
//! - `mpk` ([`MpkEngine`]): one shared user address space, a 32 GiB slot and a protection key
//!   (1..15) per live sandbox, PKRU granting that key alone while it runs.
//!
//! The timer interrupts the sandbox every [`SLICE_MICROS`] to check the run's deadline. The one
//! exit is `syscall` with the exit number; any other trap ends the run with an error naming the
//! vector, the address and the instruction pointer. Teardown frees every frame (frames are
//! zeroed when allocated again).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use engine::native::{ExitCall, KeyPool, exit_outcome, system_block};
use engine::{Completion, Engine, EngineError, ImageError, Invocation, Trap, TrapKind};
use model::Set;

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::arch::usermode::{self, Exit, ExtendedState, Session, Tick, UserRegs};
use crate::arch::uspace::{Access, AddressSpace};
use crate::{arch, time};

/// Where a sandbox's regions lie, relative to its base (0 for the paging engine, whose
/// sandboxes each have an address space of their own; the key's slot for the MPK engine).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    base: u64,
}

/// The image, at base + 4 MiB (2 MiB aligned; the first 4 MiB unmapped).
const IMAGE_OFFSET: u64 = 0x40_0000;
/// The most image span a function may have.
const MAX_IMAGE_SPAN: u64 = 256 << 20;
/// The system data block (read-only), at base + 4 GiB.
const SYS_OFFSET: u64 = 0x1_0000_0000;
/// The heap (read-write, mapped on first touch), at base + 8 GiB.
const HEAP_OFFSET: u64 = 0x2_0000_0000;
/// The stack's top, base + 16 GiB; it grows down over [`STACK_SIZE`], below it a guard gap of
/// [`GUARD`] that nothing is ever mapped in.
const STACK_TOP_OFFSET: u64 = 0x4_0000_0000;
const STACK_SIZE: u64 = 1 << 20;
const GUARD: u64 = 1 << 30;
/// The room one sandbox's layout takes: the MPK engine's slot size (32 GiB).
const SLOT_SIZE: u64 = 1 << 35;

impl Layout {
    fn image(self) -> u64 {
        self.base + IMAGE_OFFSET
    }
    fn sys(self) -> u64 {
        self.base + SYS_OFFSET
    }
    fn heap(self) -> u64 {
        self.base + HEAP_OFFSET
    }
    fn stack_top(self) -> u64 {
        self.base + STACK_TOP_OFFSET
    }
    fn stack_bottom(self) -> u64 {
        self.stack_top() - STACK_SIZE
    }
    /// The heap's size for `memory_bytes` (the limit less the image): less the stack, at most
    /// up to the guard.
    fn heap_len(self, memory_bytes: u64) -> u64 {
        (memory_bytes.saturating_sub(STACK_SIZE) & !0xfff).min(STACK_TOP_OFFSET - STACK_SIZE - GUARD - HEAP_OFFSET)
    }
}

/// Largest image file accepted.
const MAX_IMAGE_BYTES: usize = 32 << 20;
/// How often the timer checks a running sandbox's deadline and cancellation.
const CHECK_MICROS: u64 = 2_000;
/// A run's time slice: then it is preempted and goes back to the dispatcher's queue, so that
/// other tenants' work runs before it continues.
pub const SLICE_MICROS: u64 = 10_000;

/// A checked image and its file (the loader copies segments from it at every run).
#[derive(Clone)]
pub struct NativeImage {
    image: Arc<fn_elf::Image>,
    file: Arc<[u8]>,
}

/// How far one turn of a native run got ([`PagingEngine::start`], [`MpkEngine::start`],
/// [`Sandbox::resume`]).
pub enum Step {
    /// The run ended: its outputs, or why it failed.
    Done(Result<Completion, EngineError>),
    /// Its slice ran out: the sandbox, with its whole user context and its memory (address
    /// space, or slot and key), waits to be resumed, on this core or another. Dropping it
    /// frees everything it holds (a cancelled run).
    Preempted(Sandbox),
    /// MPK only: every protection key is held (some by parked sandboxes); the run did not
    /// start and its inputs come back, to be queued again.
    NoKey(Vec<Set>),
}

/// A native engine and an image of its own, ready to start runs that the dispatcher may
/// preempt and requeue (`Engines::native`).
pub enum Native<'a> {
    Paging(&'a PagingEngine, &'a NativeImage),
    Mpk(&'a MpkEngine, &'a NativeImage),
}

impl Native<'_> {
    /// Starts a run and runs its first slice.
    pub fn start(&self, invocation: Invocation<'_>) -> Step {
        match self {
            Native::Paging(engine, image) => engine.start(image, invocation),
            Native::Mpk(engine, image) => engine.start(image, invocation),
        }
    }
}

/// The page-table engine.
pub struct PagingEngine;

impl PagingEngine {
    /// Starts a run in a fresh address space and runs its first slice.
    pub fn start(&self, image: &NativeImage, invocation: Invocation<'_>) -> Step {
        let start = time::ticks();
        let Some(space) = AddressSpace::new() else { return Step::Done(Err(internal("no frame for a page table"))) };
        start_in(Memory::Own(Some(space)), Layout { base: 0 }, image, invocation, start)
    }
}

impl Engine for PagingEngine {
    type Image = NativeImage;

    fn name(&self) -> &'static str {
        "paging"
    }

    fn prepare(&self, file: &[u8]) -> Result<NativeImage, EngineError> {
        prepare(file)
    }

    fn run(&self, image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let deadline = invocation.deadline;
        to_end(self.start(image, invocation), deadline)
    }
}

/// Resumes a preempted sandbox until it ends (for callers that do not requeue).
fn to_end(mut step: Step, deadline: Option<&dyn engine::Deadline>) -> Result<Completion, EngineError> {
    loop {
        match step {
            Step::Done(result) => return result,
            Step::Preempted(sandbox) => step = sandbox.resume(deadline),
            Step::NoKey(_) => return Err(internal("no protection key")),
        }
    }
}

/// The MPK engine: one user address space shared by every live sandbox, each in its own slot
/// of [`SLOT_SIZE`] whose pages carry the sandbox's protection key (1..15); PKRU grants the
/// running sandbox its key alone. More live sandboxes than keys wait for a key.
pub struct MpkEngine {
    shared: Arc<MpkShared>,
}

/// What every MPK sandbox shares: the address space and the key pool. Parked sandboxes hold a
/// reference, so that dropping one (a cancelled run) can empty its slot and free its key.
struct MpkShared {
    space: Mutex<AddressSpace>,
    keys: Mutex<KeyPool>,
}

/// TSC ticks (instructions under icount) spent in each phase of native runs, all engines and
/// cores: create (address space or slot, image, system data block), run (entry, the function,
/// its page faults and timer ticks, exit; every slice), collect (outputs out of the sandbox),
/// destroy (unmap and free); and the number of runs.
static PHASE_TICKS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static RUNS: AtomicU64 = AtomicU64::new(0);
const CREATE: usize = 0;
const RUN: usize = 1;
const COLLECT: usize = 2;
const DESTROY: usize = 3;

fn add_ticks(phase: usize, since: u64) -> u64 {
    let now = time::ticks();
    PHASE_TICKS[phase].fetch_add(now.saturating_sub(since), Ordering::Relaxed);
    now
}

/// (runs, [create, run, collect, destroy] ticks) of native runs so far.
pub fn phase_stats() -> (u64, [u64; 4]) {
    (RUNS.load(Ordering::Relaxed), core::array::from_fn(|i| PHASE_TICKS[i].load(Ordering::Relaxed)))
}

/// MPK runs that found every key taken and waited for one (all cores).
static KEY_WAITS: AtomicU64 = AtomicU64::new(0);

/// MPK runs that had to wait for a key so far.
pub fn key_waits() -> u64 {
    KEY_WAITS.load(Ordering::Relaxed)
}

/// Counts one run that found every key taken (once per run: the dispatcher says whether this
/// run was counted before).
pub fn count_key_wait() {
    KEY_WAITS.fetch_add(1, Ordering::Relaxed);
}

/// Native runs preempted at the end of a slice so far (all cores).
static PREEMPTIONS: AtomicU64 = AtomicU64::new(0);

/// Native runs preempted at the end of a slice so far.
pub fn preemptions() -> u64 {
    PREEMPTIONS.load(Ordering::Relaxed)
}

impl MpkEngine {
    /// The engine, if the CPU has protection keys (CR4.PKE on).
    pub fn new() -> Option<Self> {
        if !usermode::pku_enabled() {
            return None;
        }
        let space = AddressSpace::new()?;
        Some(Self { shared: Arc::new(MpkShared { space: Mutex::new(space), keys: Mutex::new(KeyPool::new()) }) })
    }

    /// Starts a run in a free key's slot and runs its first slice; [`Step::NoKey`] when every
    /// key is held.
    pub fn start(&self, image: &NativeImage, invocation: Invocation<'_>) -> Step {
        let Some(key) = self.shared.keys.lock().try_acquire() else { return Step::NoKey(invocation.inputs) };
        self.start_with(key, image, invocation)
    }

    fn start_with(&self, key: u8, image: &NativeImage, invocation: Invocation<'_>) -> Step {
        let start = time::ticks();
        let layout = Layout { base: u64::from(key) * SLOT_SIZE };
        start_in(Memory::Shared { shared: Arc::clone(&self.shared), key }, layout, image, invocation, start)
    }
}

impl Engine for MpkEngine {
    type Image = NativeImage;

    fn name(&self) -> &'static str {
        "mpk"
    }

    fn prepare(&self, file: &[u8]) -> Result<NativeImage, EngineError> {
        prepare(file)
    }

    /// Runs to the end on this core, waiting (spinning) for a key when all are held.
    fn run(&self, image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let mut waited = false;
        let key = loop {
            if let Some(key) = self.shared.keys.lock().try_acquire() {
                break key;
            }
            if !waited {
                waited = true;
                count_key_wait();
            }
            core::hint::spin_loop();
        };
        let deadline = invocation.deadline;
        to_end(self.start_with(key, image, invocation), deadline)
    }
}

/// A sandbox's memory: its own address space (paging), or its key's slot in the shared one
/// (MPK). Dropping it frees every frame: the paging engine's space goes, the MPK slot is
/// emptied before its key is free again.
enum Memory {
    /// (Always `Some` until the drop.)
    Own(Option<AddressSpace>),
    Shared {
        shared: Arc<MpkShared>,
        key: u8,
    },
}

impl Memory {
    fn with<R>(&mut self, f: impl FnOnce(&mut AddressSpace, u8) -> R) -> R {
        match self {
            Memory::Own(Some(space)) => f(space, 0),
            Memory::Own(None) => unreachable!("a paging sandbox's space is only taken by its drop"),
            Memory::Shared { shared, key } => f(&mut shared.space.lock(), *key),
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let start = time::ticks();
        match self {
            Memory::Own(space) => drop(space.take()),
            Memory::Shared { shared, key } => {
                // The slot is emptied (frames freed, zeroed when next allocated) before its key
                // is free.
                shared.space.lock().clear_region(u64::from(*key) * SLOT_SIZE, SLOT_SIZE);
                shared.keys.lock().release(*key);
            }
        }
        add_ticks(DESTROY, start);
    }
}

/// Checks an image for the native engines: size, every ELF rule, the forbidden-instruction scan.
pub fn prepare(file: &[u8]) -> Result<NativeImage, EngineError> {
    if file.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge { size: file.len(), limit: MAX_IMAGE_BYTES }.into());
    }
    let limits = fn_elf::Limits { max_span: MAX_IMAGE_SPAN, max_align: 2 << 20 };
    let image = fn_elf::Image::parse_with(file, &limits)
        .map_err(|e| EngineError::from(ImageError::Malformed { reason: format!("{e}") }))?;
    Ok(NativeImage { image: Arc::new(image), file: Arc::from(file) })
}

fn internal(what: &str) -> EngineError {
    EngineError::internal(format!("native engine: {what}"))
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(4096)
}

/// Loads the image at the layout's image address: each segment's pages with its rights, RELRO
/// read-only.
fn load_image(space: &mut AddressSpace, key: u8, layout: Layout, image: &NativeImage) -> Result<(), EngineError> {
    let span = image.image.span();
    let mut memory = Vec::new();
    memory.try_reserve_exact(span as usize).map_err(|_| internal("no memory for the image"))?;
    memory.resize(span as usize, 0);
    image.image.load_into(&image.file, &mut memory, layout.image()).map_err(|e| internal(&format!("load: {e}")))?;
    let relro = image.image.relro().map(|r| (r.start.next_multiple_of(4096), r.end & !0xfff));
    for segment in image.image.segments() {
        let range = segment.pages();
        let mut page = range.start;
        while page < range.end {
            let in_relro = relro.is_some_and(|(s, e)| page >= s && page + 4096 <= e);
            let access = match (segment.perms.execute, segment.perms.write && !in_relro) {
                (true, _) => Access::Executable,
                (false, true) => Access::Writable,
                (false, false) => Access::ReadOnly,
            };
            let bytes = &memory[page as usize..(page + 4096) as usize];
            space.map_bytes(layout.image() + page, bytes, 1, access, key).map_err(|_| internal("mapping the image"))?;
            page += 4096;
        }
    }
    Ok(())
}

/// A sandbox's memory and where its regions are: what the fault handler needs.
struct Space {
    memory: Memory,
    layout: Layout,
    heap_end: u64,
    /// Pages the heap and stack may still take.
    pages_left: u64,
    memory_limit: u64,
}

/// A native run between its slices: its memory, its whole user context (general registers,
/// RIP/RFLAGS/RSP, data segments and FS/GS bases, x87/SSE/AVX), and what is left of its time
/// budget. Only [`Sandbox::resume`] runs it again; dropping it frees its memory and key.
pub struct Sandbox {
    space: Space,
    /// Its registers (on the heap: a parked sandbox waits in the run queue, whose entries stay
    /// small).
    context: Box<[Context; 1]>,
    outputs: Vec<String>,
    limits: engine::Limits,
    /// PKRU while it runs (None: CR4.PKE off).
    pkru: Option<u32>,
    /// Ticks of its time budget not yet used (time spent parked does not count).
    budget_left: u64,
}

/// A sandbox's whole user context.
struct Context {
    regs: UserRegs,
    extended: ExtendedState,
}

/// The state of one slice that the trap handlers see.
struct SliceSession<'a> {
    space: &'a mut Space,
    deadline: Option<&'a dyn engine::Deadline>,
    /// When the slice ends (preempt) and when the budget does (time out).
    slice_end: u64,
    budget_end: u64,
    timed_out: bool,
    error: Option<EngineError>,
}

fn fault_kind(vector: u64) -> TrapKind {
    match vector {
        0 => TrapKind::IntegerDivisionByZero,
        6 | 13 => TrapKind::InvalidInstruction,
        14 => TrapKind::MemoryOutOfBounds,
        _ => TrapKind::Other,
    }
}

fn pf_detail(error: u64) -> String {
    let mut s = String::from(if error & 1 != 0 { "protection violation" } else { "page not present" });
    s.push_str(if error & 16 != 0 {
        ", instruction fetch"
    } else if error & 2 != 0 {
        ", write"
    } else {
        ", read"
    });
    if error & 32 != 0 {
        s.push_str(", protection key");
    }
    s
}

impl Space {
    fn lazy(&self, page: u64) -> bool {
        lazy_region(self.layout, self.heap_end, page)
    }
}

/// Whether `page` lies in the heap or stack, which are mapped on first touch (zero until then).
fn lazy_region(layout: Layout, heap_end: u64, page: u64) -> bool {
    (layout.heap()..heap_end).contains(&page) || (layout.stack_bottom()..layout.stack_top()).contains(&page)
}

impl Session for SliceSession<'_> {
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()> {
        let page = cr2 & !0xfff;
        let space = &mut *self.space;
        if vector == 14 && error_code & 1 == 0 && error_code & 16 == 0 && space.lazy(page) {
            if space.pages_left == 0 {
                self.error = Some(EngineError::OutOfMemory {
                    limit_bytes: space.memory_limit,
                    detail: format!("touching {cr2:#x} at rip={rip:#x} needs a page beyond the limit"),
                });
                return None;
            }
            if space.memory.with(|s, key| s.map_zeroed(page, Access::Writable, key)).is_ok() {
                space.pages_left -= 1;
                return Some(());
            }
            self.error = Some(EngineError::OutOfMemory {
                limit_bytes: space.memory_limit,
                detail: format!("the node has no free frame for {cr2:#x}"),
            });
            return None;
        }
        let guard = space.layout.stack_bottom() - GUARD..space.layout.stack_bottom();
        let (kind, what) = if vector == 14 && guard.contains(&cr2) {
            (TrapKind::StackOverflow, format!("the stack ran into its guard at {cr2:#x}"))
        } else if vector == 14 {
            (fault_kind(vector), format!("address {}: {}", engine::native::Redacted(cr2), pf_detail(error_code)))
        } else {
            (fault_kind(vector), format!("error code {error_code:#x}"))
        };
        let message =
            format!("vector {vector} {} at rip={}, {what}", arch::vector_name(vector), engine::native::Redacted(rip));
        self.error = Some(Trap::new(kind, message).into());
        None
    }

    fn on_tick(&mut self) -> Tick {
        let now = time::ticks();
        if now >= self.budget_end || self.deadline.is_some_and(|d| d.expired()) {
            self.timed_out = true;
            return Tick::End;
        }
        if now >= self.slice_end {
            return Tick::Preempt;
        }
        usermode::arm_tick((now + micros_to_ticks(CHECK_MICROS)).min(self.slice_end).min(self.budget_end));
        Tick::Resume
    }
}

fn micros_to_ticks(us: u64) -> u64 {
    (u128::from(us) * u128::from(time::ticks_per_second()) / 1_000_000) as u64
}

/// Sets up a sandbox in `memory` at `layout` (image, system data block, registers) and runs
/// its first slice. On any failure `memory` is dropped, which frees it.
fn start_in(mut memory: Memory, layout: Layout, image: &NativeImage, invocation: Invocation<'_>, start: u64) -> Step {
    RUNS.fetch_add(1, Ordering::Relaxed);
    let Invocation { inputs, outputs, limits, deadline } = invocation;
    // The image's pages count against the memory limit, as a wasm module's data does.
    let image_pages: u64 = image.image.segments().iter().map(|s| (s.pages().end - s.pages().start) / 4096).sum();
    if image_pages.saturating_mul(4096) > limits.memory_bytes {
        let detail = format!("the image needs {} bytes of pages before the function starts", image_pages * 4096);
        return Step::Done(Err(EngineError::OutOfMemory { limit_bytes: limits.memory_bytes, detail }));
    }
    let heap_len = layout.heap_len(limits.memory_bytes - image_pages * 4096);
    let Some(block) = system_block(layout.sys(), &inputs, outputs, layout.heap(), heap_len) else {
        return Step::Done(Err(internal("no memory for the system data block")));
    };
    drop(inputs);
    let loaded = memory.with(|space, key| {
        load_image(space, key, layout, image)?;
        space
            .map_bytes(layout.sys(), &block, pages(block.len() as u64), Access::ReadOnly, key)
            .map_err(|_| internal("mapping the system data block"))
    });
    if let Err(e) = loaded {
        return Step::Done(Err(e));
    }
    drop(block);
    // With CR4.PKE on, PKRU applies to every user page: the paging engine's pages carry key 0.
    let pkru = match &memory {
        Memory::Own(_) => usermode::pku_enabled().then(|| usermode::pkru_grant_only(0)),
        Memory::Shared { key, .. } => Some(usermode::pkru_grant_only(*key)),
    };
    let mut names = Vec::new();
    if names.try_reserve_exact(outputs.len()).is_err() {
        return Step::Done(Err(internal("no memory for the sandbox's state")));
    }
    names.extend(outputs.iter().cloned());
    let regs = UserRegs {
        rip: layout.image() + image.image.entry(),
        rsp: layout.stack_top() - 8, // as after a call: rsp + 8 is 16-byte aligned
        rdi: layout.sys(),
        ..UserRegs::default()
    };
    let Some(context) = boxed_context(regs) else {
        return Step::Done(Err(internal("no memory for the sandbox's state")));
    };
    let budget = u128::from(limits.time.millis) * u128::from(time::ticks_per_second()) / 1000;
    let sandbox = Sandbox {
        space: Space {
            memory,
            layout,
            heap_end: layout.heap() + heap_len,
            pages_left: pages(limits.memory_bytes) - image_pages,
            memory_limit: limits.memory_bytes,
        },
        context,
        outputs: names,
        limits,
        pkru,
        budget_left: u64::try_from(budget).unwrap_or(u64::MAX),
    };
    add_ticks(CREATE, start);
    sandbox.resume(deadline)
}

/// A sandbox's first context on the heap (`regs`, the initial extended state), or `None` when
/// the heap has no room (a request's allocation: it must fail cleanly, not panic).
fn boxed_context(regs: UserRegs) -> Option<Box<[Context; 1]>> {
    let mut area = Vec::new();
    area.try_reserve_exact(1).ok()?;
    area.push(Context { regs, extended: ExtendedState::new() });
    area.into_boxed_slice().try_into().ok()
}

impl Sandbox {
    /// Runs the sandbox for one slice (at most [`SLICE_MICROS`], less when its budget ends
    /// first) on this core: it ends (exit call, trap, budget, `deadline` expired: cancelled),
    /// or comes back preempted with its context saved.
    pub fn resume(mut self, deadline: Option<&dyn engine::Deadline>) -> Step {
        let entered = time::ticks();
        let slice_end = entered + micros_to_ticks(SLICE_MICROS);
        let budget_end = entered.saturating_add(self.budget_left);
        let kernel_cr3 = crate::arch::uspace::current_cr3();
        let mut session =
            SliceSession { space: &mut self.space, deadline, slice_end, budget_end, timed_out: false, error: None };
        let previous = session.space.memory.with(|space, _| {
            space.refresh_kernel_half(kernel_cr3);
            space.activate()
        });
        if let Some(pkru) = self.pkru {
            usermode::write_pkru(pkru);
        }
        usermode::arm_tick((entered + micros_to_ticks(CHECK_MICROS)).min(slice_end).min(budget_end));
        let Context { regs, extended } = &mut self.context[0];
        let exit = usermode::enter_user(regs, extended, &mut session);
        usermode::disarm_tick();
        if self.pkru.is_some() {
            usermode::write_pkru(usermode::PKRU_DENY_ALL);
        }
        AddressSpace::deactivate(previous);
        let (timed_out, error) = (session.timed_out, session.error.take());
        let ran = add_ticks(RUN, entered);
        self.budget_left = self.budget_left.saturating_sub(ran - entered);
        let result = match exit {
            Exit::Preempted if self.budget_left > 0 => {
                PREEMPTIONS.fetch_add(1, Ordering::Relaxed);
                return Step::Preempted(self);
            }
            Exit::Preempted => Err(EngineError::Timeout { budget: self.limits.time, wall_clock: true }),
            Exit::Ended if timed_out => Err(EngineError::Timeout { budget: self.limits.time, wall_clock: true }),
            Exit::Ended => Err(error.unwrap_or_else(|| internal("sandbox ended without a cause"))),
            Exit::Syscall => {
                let Space { layout, heap_end, .. } = self.space;
                let (regs, outputs, limits) = (&self.context[0].regs, &self.outputs, &self.limits);
                self.space.memory.with(|space, _| finish(space, layout, heap_end, regs, outputs, limits))
            }
        };
        add_ticks(COLLECT, ran);
        Step::Done(result)
    }
}

/// The exit call: outputs (validated and copied out through the sandbox's page tables) or the
/// failure it reports (`engine::native::exit_outcome`).
fn finish(
    space: &mut AddressSpace,
    layout: Layout,
    heap_end: u64,
    regs: &UserRegs,
    output_names: &[String],
    limits: &engine::Limits,
) -> Result<Completion, EngineError> {
    let exit = ExitCall {
        number: regs.out_rax,
        status: regs.out_rdi,
        pointer: regs.out_rsi,
        len: regs.out_rdx,
        rip: regs.out_rip.wrapping_sub(2), // `syscall` is 2 bytes
    };
    let lazy = move |page: u64| lazy_region(layout, heap_end, page);
    exit_outcome(&exit, output_names, limits, heap_end - layout.heap(), |addr, len| space.read(addr, len, lazy))
}
