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

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use engine::native::{ExitCall, KeyPool, exit_outcome, system_block};
use engine::{Completion, Engine, EngineError, ImageError, Invocation, Trap, TrapKind};

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::arch::usermode::{self, Exit, Session, UserRegs};
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
/// How often the timer checks a running sandbox's deadline.
const SLICE_MICROS: u64 = 2_000;

/// A checked image and its file (the loader copies segments from it at every run).
#[derive(Clone)]
pub struct NativeImage {
    image: Arc<fn_elf::Image>,
    file: Arc<[u8]>,
}

/// The page-table engine.
pub struct PagingEngine;

impl Engine for PagingEngine {
    type Image = NativeImage;

    fn name(&self) -> &'static str {
        "paging"
    }

    fn prepare(&self, file: &[u8]) -> Result<NativeImage, EngineError> {
        prepare(file)
    }

    fn run(&self, image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let start = time::ticks();
        let space = AddressSpace::new().ok_or_else(|| internal("no frame for a page table"))?;
        let mut memory = Memory::Own(space);
        let result = run_sandbox(&mut memory, Layout { base: 0 }, image, invocation, start);
        let start = time::ticks();
        drop(memory);
        add_ticks(DESTROY, start);
        result
    }
}

/// The MPK engine: one user address space shared by every live sandbox, each in its own slot
/// of [`SLOT_SIZE`] whose pages carry the sandbox's protection key (1..15); PKRU grants the
/// running sandbox its key alone. More live sandboxes than keys wait for a key.
pub struct MpkEngine {
    space: Mutex<AddressSpace>,
    keys: Mutex<KeyPool>,
}

/// TSC ticks (instructions under icount) spent in each phase of native runs, all engines and
/// cores: create (address space or slot, image, system data block), run (entry, the function,
/// its page faults and timer ticks, exit), collect (outputs out of the sandbox), destroy
/// (unmap and free); and the number of runs.
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

/// Protection keys held by live MPK sandboxes (all cores), as of the last take or release.
static KEYS_LIVE: AtomicU64 = AtomicU64::new(0);

/// Protection keys in use now (0 when no MPK sandbox is live): a soak checks it returns to 0.
pub fn keys_live() -> u64 {
    KEYS_LIVE.load(Ordering::Relaxed)
}

impl MpkEngine {
    /// The engine, if the CPU has protection keys (CR4.PKE on).
    pub fn new() -> Option<Self> {
        if !usermode::pku_enabled() {
            return None;
        }
        let space = AddressSpace::new()?;
        Some(Self { space: Mutex::new(space), keys: Mutex::new(KeyPool::new()) })
    }

    /// Takes a free key, waiting for one when all are taken.
    fn acquire(&self) -> u8 {
        let mut waited = false;
        loop {
            let mut keys = self.keys.lock();
            if let Some(key) = keys.try_acquire() {
                KEYS_LIVE.store(u64::from(keys.live()), Ordering::Relaxed);
                return key;
            }
            drop(keys);
            if !waited {
                waited = true;
                KEY_WAITS.fetch_add(1, Ordering::Relaxed);
            }
            core::hint::spin_loop();
        }
    }

    fn release(&self, key: u8) {
        let mut keys = self.keys.lock();
        keys.release(key);
        KEYS_LIVE.store(u64::from(keys.live()), Ordering::Relaxed);
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

    fn run(&self, image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let key = self.acquire();
        let start = time::ticks();
        let layout = Layout { base: u64::from(key) * SLOT_SIZE };
        let mut memory = Memory::Shared { space: &self.space, key };
        let result = run_sandbox(&mut memory, layout, image, invocation, start);
        // The slot is emptied (frames freed, zeroed when next allocated) before its key is free.
        let start = time::ticks();
        self.space.lock().clear_region(layout.base, SLOT_SIZE);
        add_ticks(DESTROY, start);
        self.release(key);
        result
    }
}

/// A sandbox's memory: its own address space (paging), or its key's slot in the shared one (MPK).
enum Memory<'a> {
    Own(AddressSpace),
    Shared { space: &'a Mutex<AddressSpace>, key: u8 },
}

impl Memory<'_> {
    fn with<R>(&mut self, f: impl FnOnce(&mut AddressSpace, u8) -> R) -> R {
        match self {
            Memory::Own(space) => f(space, 0),
            Memory::Shared { space, key } => f(&mut space.lock(), *key),
        }
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

/// The state of one run that the trap handlers see.
struct SandboxSession<'a, 'm> {
    memory: &'a mut Memory<'m>,
    layout: Layout,
    heap_end: u64,
    /// Pages the heap and stack may still take.
    pages_left: u64,
    memory_limit: u64,
    deadline: Option<&'a dyn engine::Deadline>,
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

impl SandboxSession<'_, '_> {
    fn lazy(&self, page: u64) -> bool {
        lazy_region(self.layout, self.heap_end, page)
    }
}

/// Whether `page` lies in the heap or stack, which are mapped on first touch (zero until then).
fn lazy_region(layout: Layout, heap_end: u64, page: u64) -> bool {
    (layout.heap()..heap_end).contains(&page) || (layout.stack_bottom()..layout.stack_top()).contains(&page)
}

impl Session for SandboxSession<'_, '_> {
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()> {
        let page = cr2 & !0xfff;
        if vector == 14 && error_code & 1 == 0 && error_code & 16 == 0 && self.lazy(page) {
            if self.pages_left == 0 {
                self.error = Some(EngineError::OutOfMemory {
                    limit_bytes: self.memory_limit,
                    detail: format!("touching {cr2:#x} at rip={rip:#x} needs a page beyond the limit"),
                });
                return None;
            }
            if self.memory.with(|space, key| space.map_zeroed(page, Access::Writable, key)).is_ok() {
                self.pages_left -= 1;
                return Some(());
            }
            self.error = Some(EngineError::OutOfMemory {
                limit_bytes: self.memory_limit,
                detail: format!("the node has no free frame for {cr2:#x}"),
            });
            return None;
        }
        let guard = self.layout.stack_bottom() - GUARD..self.layout.stack_bottom();
        let (kind, what) = if vector == 14 && guard.contains(&cr2) {
            (TrapKind::StackOverflow, format!("the stack ran into its guard at {cr2:#x}"))
        } else if vector == 14 {
            (fault_kind(vector), format!("address {cr2:#x}: {}", pf_detail(error_code)))
        } else {
            (fault_kind(vector), format!("error code {error_code:#x}"))
        };
        let message = format!("vector {vector} {} at rip={rip:#x}, {what}", arch::vector_name(vector));
        self.error = Some(Trap::new(kind, message).into());
        None
    }

    fn on_tick(&mut self) -> bool {
        if self.deadline.is_some_and(|d| d.expired()) {
            self.timed_out = true;
            return true;
        }
        usermode::arm_tick(time::ticks() + slice_ticks());
        false
    }
}

fn slice_ticks() -> u64 {
    (u128::from(SLICE_MICROS) * u128::from(time::ticks_per_second()) / 1_000_000) as u64
}

/// Runs one instance in `memory` at `layout`: load, enter, exit, collect. The caller frees
/// the memory (the paging engine by dropping its space, the MPK engine by clearing the slot).
fn run_sandbox(
    memory: &mut Memory<'_>,
    layout: Layout,
    image: &NativeImage,
    invocation: Invocation<'_>,
    start: u64,
) -> Result<Completion, EngineError> {
    RUNS.fetch_add(1, Ordering::Relaxed);
    let Invocation { inputs, outputs, limits, deadline } = invocation;
    // The image's pages count against the memory limit, as a wasm module's data does.
    let image_pages: u64 = image.image.segments().iter().map(|s| (s.pages().end - s.pages().start) / 4096).sum();
    if image_pages.saturating_mul(4096) > limits.memory_bytes {
        let detail = format!("the image needs {} bytes of pages before the function starts", image_pages * 4096);
        return Err(EngineError::OutOfMemory { limit_bytes: limits.memory_bytes, detail });
    }
    let heap_len = layout.heap_len(limits.memory_bytes - image_pages * 4096);
    let block = system_block(layout.sys(), &inputs, outputs, layout.heap(), heap_len)
        .ok_or_else(|| internal("no memory for the system data block"))?;
    drop(inputs);
    memory.with(|space, key| {
        load_image(space, key, layout, image)?;
        space
            .map_bytes(layout.sys(), &block, pages(block.len() as u64), Access::ReadOnly, key)
            .map_err(|_| internal("mapping the system data block"))
    })?;
    drop(block);
    // With CR4.PKE on, PKRU applies to every user page: the paging engine's pages carry key 0.
    let pkru = match memory {
        Memory::Own(_) => usermode::pku_enabled().then(|| usermode::pkru_grant_only(0)),
        Memory::Shared { key, .. } => Some(usermode::pkru_grant_only(*key)),
    };
    let mut session = SandboxSession {
        memory,
        layout,
        heap_end: layout.heap() + heap_len,
        pages_left: pages(limits.memory_bytes) - image_pages,
        memory_limit: limits.memory_bytes,
        deadline,
        timed_out: false,
        error: None,
    };
    let mut regs = UserRegs {
        rip: layout.image() + image.image.entry(),
        rsp: layout.stack_top() - 8, // as after a call: rsp + 8 is 16-byte aligned
        rdi: layout.sys(),
        ..UserRegs::default()
    };
    let kernel_cr3 = crate::arch::uspace::current_cr3();
    let created = add_ticks(CREATE, start);
    let previous = session.memory.with(|space, _| {
        space.refresh_kernel_half(kernel_cr3);
        space.activate()
    });
    if let Some(pkru) = pkru {
        usermode::write_pkru(pkru);
    }
    // Armed with interrupts off until the entry's `iretq`: a tick that came due before the
    // sandbox entered would otherwise be taken in kernel mode, where nothing re-arms it, and
    // the sandbox would then run with no timer at all (found by `cargo xtask soak`: an MPK
    // infinite loop past its 20 ms budget held the compute core for good, about one run in a
    // hundred on `-smp 2`). Pending, it is taken at once in ring 3 and checked there.
    let exit = x86_64::instructions::interrupts::without_interrupts(|| {
        usermode::arm_tick(time::ticks() + slice_ticks());
        usermode::enter_user(&mut regs, &mut session)
    });
    usermode::disarm_tick();
    if pkru.is_some() {
        usermode::write_pkru(usermode::PKRU_DENY_ALL);
    }
    AddressSpace::deactivate(previous);
    let ran = add_ticks(RUN, created);
    let result = match exit {
        Exit::Ended if session.timed_out => Err(EngineError::Timeout { budget: limits.time, wall_clock: true }),
        Exit::Ended => Err(session.error.take().unwrap_or_else(|| internal("sandbox ended without a cause"))),
        Exit::Syscall => {
            let heap_end = session.heap_end;
            session.memory.with(|space, _| finish(space, layout, heap_end, &regs, outputs, &limits))
        }
    };
    add_ticks(COLLECT, ran);
    result
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
