//! The native engines: x86_64 static-PIE functions run at CPL 3 (docs/function-abi.md, "The
//! native transport").
//!
//! `paging`: every run gets its own address space (one PML4 sharing the kernel's upper half),
//! so a sandbox sees nothing but its own pages: the image (W^X, from `pappus-elf`), the
//! read-only system data block with its inputs, a heap and a stack mapped on first touch (both
//! counted against the memory limit, zero until written), guard gaps between them. The timer
//! interrupts the sandbox every [`SLICE_MICROS`] to check the run's deadline. The one exit is
//! `syscall` with [`native::SYS_EXIT`]; any other trap ends the run with an error naming the
//! vector, the address and the instruction pointer. Teardown frees every frame (frames are
//! zeroed when allocated again).

mod sysdata;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use engine::{BadOutput, Completion, Engine, EngineError, ImageError, Invocation, Trap, TrapKind};
use model::{Bytes, Item, Set};
use pappus_sdk::abi::{ITEM_FLAG_KEY, MAX_NAME_LEN, native};

use crate::arch::usermode::{self, Exit, Session, UserRegs};
use crate::arch::uspace::{Access, AddressSpace};
use crate::time;

/// Where the image is loaded (its base; 2 MiB aligned, page 0 and the first 4 MiB unmapped).
pub const IMAGE_BASE: u64 = 0x40_0000;
/// The most image span a function may have.
const MAX_IMAGE_SPAN: u64 = 256 << 20;
/// The system data block (read-only).
pub const SYS_BASE: u64 = 0x1_0000_0000;
/// The heap (read-write, mapped on first touch).
pub const HEAP_BASE: u64 = 0x2_0000_0000;
/// The stack's top; it grows down over [`STACK_SIZE`], below it a guard gap of [`GUARD`].
pub const STACK_TOP: u64 = 0x4_0000_0000;
pub const STACK_SIZE: u64 = 1 << 20;
const GUARD: u64 = 1 << 30;
/// Largest image file accepted.
const MAX_IMAGE_BYTES: usize = 32 << 20;
/// How often the timer checks a running sandbox's deadline.
const SLICE_MICROS: u64 = 2_000;
/// The abort message kept, at most.
const MAX_ABORT_MESSAGE: u64 = 4096;

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
        run(image, invocation)
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

/// Loads the image at [`IMAGE_BASE`]: each segment's pages with its rights, RELRO read-only.
fn load_image(space: &mut AddressSpace, image: &NativeImage) -> Result<(), EngineError> {
    let span = image.image.span();
    let mut memory = Vec::new();
    memory.try_reserve_exact(span as usize).map_err(|_| internal("no memory for the image"))?;
    memory.resize(span as usize, 0);
    image.image.load_into(&image.file, &mut memory, IMAGE_BASE).map_err(|e| internal(&format!("load: {e}")))?;
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
            space.map_bytes(IMAGE_BASE + page, bytes, 1, access).map_err(|_| internal("mapping the image"))?;
            page += 4096;
        }
    }
    Ok(())
}

/// The state of one run that the trap handlers see.
struct PagingSession<'a> {
    space: AddressSpace,
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

fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating point (#MF)",
        17 => "alignment check (#AC)",
        19 => "SIMD floating point (#XM)",
        21 => "control protection (#CP)",
        _ => "exception",
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

impl PagingSession<'_> {
    fn lazy(&self, page: u64) -> bool {
        (HEAP_BASE..self.heap_end).contains(&page) || (STACK_TOP - STACK_SIZE..STACK_TOP).contains(&page)
    }
}

impl Session for PagingSession<'_> {
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
            if self.space.map_zeroed(page, Access::Writable).is_ok() {
                self.pages_left -= 1;
                return Some(());
            }
            self.error = Some(EngineError::OutOfMemory {
                limit_bytes: self.memory_limit,
                detail: format!("the node has no free frame for {cr2:#x}"),
            });
            return None;
        }
        let guard = STACK_TOP - STACK_SIZE - GUARD..STACK_TOP - STACK_SIZE;
        let (kind, what) = if vector == 14 && guard.contains(&cr2) {
            (TrapKind::StackOverflow, format!("the stack ran into its guard at {cr2:#x}"))
        } else if vector == 14 {
            (fault_kind(vector), format!("address {cr2:#x}: {}", pf_detail(error_code)))
        } else {
            (fault_kind(vector), format!("error code {error_code:#x}"))
        };
        let message = format!("vector {vector} {} at rip={rip:#x}, {what}", vector_name(vector));
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

/// Runs one instance in a fresh address space.
pub fn run(image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
    let Invocation { inputs, outputs, limits, deadline } = invocation;
    let mut space = AddressSpace::new().ok_or_else(|| internal("no frame for a page table"))?;
    load_image(&mut space, image)?;
    let heap_len = limits.memory_bytes.saturating_sub(STACK_SIZE) & !0xfff;
    let heap_len = heap_len.min(STACK_TOP - STACK_SIZE - GUARD - HEAP_BASE);
    let block = sysdata::build(SYS_BASE, &inputs, outputs, HEAP_BASE, heap_len)
        .ok_or_else(|| internal("no memory for the system data block"))?;
    let block_len = block.len() as u64;
    space
        .map_bytes(SYS_BASE, &block, pages(block_len), Access::ReadOnly)
        .map_err(|_| internal("mapping the system data block"))?;
    drop(block);
    let mut session = PagingSession {
        space,
        heap_end: HEAP_BASE + heap_len,
        pages_left: pages(limits.memory_bytes),
        memory_limit: limits.memory_bytes,
        deadline,
        timed_out: false,
        error: None,
    };
    let mut regs = UserRegs {
        rip: IMAGE_BASE + image.image.entry(),
        rsp: STACK_TOP - 8, // as after a call: rsp + 8 is 16-byte aligned
        rdi: SYS_BASE,
        ..UserRegs::default()
    };
    let previous = session.space.activate();
    usermode::arm_tick(time::ticks() + slice_ticks());
    let exit = usermode::enter_user(&mut regs, &mut session);
    usermode::disarm_tick();
    AddressSpace::deactivate(previous);
    match exit {
        Exit::Ended if session.timed_out => Err(EngineError::Timeout { budget: limits.time, wall_clock: true }),
        Exit::Ended => Err(session.error.take().unwrap_or_else(|| internal("sandbox ended without a cause"))),
        Exit::Syscall => finish(&mut session, &regs, outputs, &limits),
    }
}

/// The exit call: outputs (validated and copied out) or the abort message.
fn finish(
    session: &mut PagingSession<'_>,
    regs: &UserRegs,
    output_names: &[String],
    limits: &engine::Limits,
) -> Result<Completion, EngineError> {
    if regs.out_rax != native::SYS_EXIT {
        let message = format!(
            "syscall number {} at rip={:#x}: the only system call is the exit call ({})",
            regs.out_rax,
            regs.out_rip.wrapping_sub(2),
            native::SYS_EXIT
        );
        return Err(Trap::new(TrapKind::InvalidInstruction, message).into());
    }
    let heap_end = session.heap_end;
    let lazy =
        move |page: u64| (HEAP_BASE..heap_end).contains(&page) || (STACK_TOP - STACK_SIZE..STACK_TOP).contains(&page);
    let space = &mut session.space;
    let oob = |what: &str, addr: u64, len: u64| -> EngineError {
        Trap::new(
            TrapKind::MemoryOutOfBounds,
            format!("exit call: {what} at {addr:#x} of {len} bytes lies outside the sandbox's memory"),
        )
        .into()
    };
    match regs.out_rdi {
        native::EXIT_DONE => {}
        native::EXIT_ABORT => {
            let len = regs.out_rdx.min(MAX_ABORT_MESSAGE);
            let message = match space.read(regs.out_rsi, len, lazy) {
                Some(bytes) => {
                    let mut text = String::from_utf8_lossy(&bytes).into_owned();
                    if len < regs.out_rdx {
                        text.push_str(" …(truncated)");
                    }
                    text
                }
                None => format!("(message unreadable: {})", oob("message", regs.out_rsi, len)),
            };
            return Err(EngineError::Aborted { message });
        }
        other => {
            return Err(
                Trap::new(TrapKind::InvalidInstruction, format!("exit call with unknown status {other}")).into()
            );
        }
    }
    let count = regs.out_rdx;
    if count > limits.max_output_items as u64 {
        return Err(BadOutput::TooManyItems { limit: limits.max_output_items }.into());
    }
    let table_len = count * native::OUT_DESC_SIZE as u64;
    let table =
        space.read(regs.out_rsi, table_len, lazy).ok_or_else(|| oob("output table", regs.out_rsi, table_len))?;
    let mut sets: Vec<Set> = output_names.iter().map(|n| Set::new(n.clone())).collect();
    let mut bytes_total = 0u64;
    for desc in table.chunks_exact(native::OUT_DESC_SIZE) {
        let u32_at = |at: usize| u32::from_le_bytes(desc[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| u64::from_le_bytes(desc[at..at + 8].try_into().unwrap_or_default());
        let (set, flags, key, name_ptr, name_len, data_ptr, data_len) =
            (u32_at(0), u32_at(4), u64_at(8), u64_at(16), u64_at(24), u64_at(32), u64_at(40));
        let declared = sets.len();
        let Some(out) = sets.get_mut(set as usize) else {
            return Err(BadOutput::UndeclaredSet { index: u64::from(set), declared }.into());
        };
        if flags & !ITEM_FLAG_KEY != 0 {
            return Err(BadOutput::ReservedFlags { flags }.into());
        }
        bytes_total = bytes_total.saturating_add(data_len);
        if bytes_total > limits.max_output_bytes {
            return Err(BadOutput::TooLarge { attempted: bytes_total, limit: limits.max_output_bytes }.into());
        }
        if name_len > MAX_NAME_LEN as u64 {
            let reason = format!("{name_len} bytes, the limit is {MAX_NAME_LEN}");
            return Err(BadOutput::InvalidName { reason }.into());
        }
        let name = space.read(name_ptr, name_len, lazy).ok_or_else(|| oob("item name", name_ptr, name_len))?;
        let name = String::from_utf8(name)
            .map_err(|e| BadOutput::InvalidName { reason: format!("not UTF-8 ({})", e.utf8_error()) })?;
        let data = space.read(data_ptr, data_len, lazy).ok_or_else(|| oob("item data", data_ptr, data_len))?;
        let key = (flags & ITEM_FLAG_KEY != 0).then_some(key);
        out.items.push(Item { name, key, data: Bytes::from(data) });
    }
    Ok(Completion { outputs: sets, instructions: None })
}
