//! Statically allocated kernel stacks, each with an unmapped guard page below it.
//!
//! The stacks live in `.bss.stacks`, page-aligned; `paging.rs` leaves every guard page out of
//! the kernel's mapping, so running off the end of a stack faults instead of silently
//! overwriting whatever lies below. The exception stacks (IST) let a double fault, NMI or
//! machine check be reported even when the current stack is the thing that broke.

const PAGE: usize = 4096;

/// One stack: a guard page, then `PAGES` pages of stack.
#[repr(C, align(4096))]
pub struct GuardedStack<const PAGES: usize> {
    guard: [u8; PAGE],
    stack: [[u8; PAGE]; PAGES],
}

impl<const PAGES: usize> GuardedStack<PAGES> {
    const fn new() -> Self {
        Self { guard: [0; PAGE], stack: [[0; PAGE]; PAGES] }
    }
}

pub const BOOT_STACK_PAGES: usize = 64;
pub const IST_STACK_PAGES: usize = 4;

/// The boot CPU's kernel stack.
#[unsafe(link_section = ".bss.stacks")]
pub static mut BOOT_STACK: GuardedStack<BOOT_STACK_PAGES> = GuardedStack::new();

/// Interrupt stacks for double fault, NMI and machine check, indexed by `IST_*`.
#[unsafe(link_section = ".bss.stacks")]
pub static mut IST_STACKS: [GuardedStack<IST_STACK_PAGES>; 3] =
    [GuardedStack::new(), GuardedStack::new(), GuardedStack::new()];

pub const USER_TRAP_STACK_PAGES: usize = 16;

/// The stack traps and interrupts from ring 3 land on (TSS.rsp0): a sandbox's fault, its timer
/// tick, a lazily mapped page. One per CPU; the boot CPU's for now.
#[unsafe(link_section = ".bss.stacks")]
pub static mut USER_TRAP_STACK: GuardedStack<USER_TRAP_STACK_PAGES> = GuardedStack::new();

/// Top of the ring-3 trap stack.
pub fn user_trap_stack_top() -> u64 {
    &raw const USER_TRAP_STACK as u64 + core::mem::size_of::<GuardedStack<USER_TRAP_STACK_PAGES>>() as u64
}

/// Size of the boot stack with its guard page; the entry code sets `rsp` to the end of it.
pub const BOOT_STACK_SIZE: usize = core::mem::size_of::<GuardedStack<BOOT_STACK_PAGES>>();

/// Guard pages (virtual start addresses) that the page tables must leave unmapped.
pub fn guard_pages() -> [u64; 5] {
    // SAFETY: only the addresses of the statics are taken.
    unsafe {
        [
            &raw const BOOT_STACK.guard as u64,
            &raw const IST_STACKS[0].guard as u64,
            &raw const IST_STACKS[1].guard as u64,
            &raw const IST_STACKS[2].guard as u64,
            &raw const USER_TRAP_STACK.guard as u64,
        ]
    }
}

/// Top of interrupt stack `index`.
pub fn ist_top(index: usize) -> u64 {
    // SAFETY: only the address is taken.
    unsafe { &raw const IST_STACKS[index] as u64 + core::mem::size_of::<GuardedStack<IST_STACK_PAGES>>() as u64 }
}

/// Where application processors' stacks are mapped: one slot of [`AP_SLOT_PAGES`] pages per CPU
/// index (index 0, the boot CPU, uses the statics above and leaves its slot empty). Each stack
/// has an unmapped guard page below it, as the boot CPU's do.
pub const AP_STACKS_BASE: u64 = 0xffff_c800_0000_0000;
pub const AP_SLOT_PAGES: u64 = 128;
/// The stacks in a slot, as `(first page, pages)`: the kernel stack (as large as the boot
/// stack), then the interrupt stacks for double fault, NMI and machine check (`IST_*` order),
/// then the stack traps from ring 3 (sandboxes) land on. Every page of the slot outside these is
/// left unmapped.
pub const AP_STACK_PAGES: [(u64, u64); 5] = [
    (1, BOOT_STACK_PAGES as u64),
    (2 + BOOT_STACK_PAGES as u64, IST_STACK_PAGES as u64),
    (3 + (BOOT_STACK_PAGES + IST_STACK_PAGES) as u64, IST_STACK_PAGES as u64),
    (4 + (BOOT_STACK_PAGES + 2 * IST_STACK_PAGES) as u64, IST_STACK_PAGES as u64),
    (5 + (BOOT_STACK_PAGES + 3 * IST_STACK_PAGES) as u64, USER_TRAP_STACK_PAGES as u64),
];

const _: () = {
    let (first, pages) = AP_STACK_PAGES[AP_STACK_PAGES.len() - 1];
    assert!(first + pages <= AP_SLOT_PAGES, "the AP stacks overflow their slot");
};

/// The `(bottom, top)` virtual addresses of AP `index`'s stacks, in [`AP_STACK_PAGES`] order.
pub fn ap_stacks(index: usize) -> [(u64, u64); 5] {
    let slot = AP_STACKS_BASE + index as u64 * AP_SLOT_PAGES * PAGE as u64;
    AP_STACK_PAGES.map(|(first, pages)| (slot + first * PAGE as u64, slot + (first + pages) * PAGE as u64))
}

/// Whether `addr` lies in a stack guard page or within 256 bytes above one (where a push that
/// ran off the stack, or the frame of a fault about it, lands): boot stacks and AP stacks.
pub fn near_guard(addr: u64) -> bool {
    if guard_pages().iter().any(|&g| addr.wrapping_sub(g) < PAGE as u64 + 256) {
        return true;
    }
    let in_ap_guard = |a: u64| {
        let Some(off) = a.checked_sub(AP_STACKS_BASE) else { return false };
        let slot_bytes = AP_SLOT_PAGES * PAGE as u64;
        if off / slot_bytes >= super::percpu::MAX_CPUS as u64 {
            return false;
        }
        let page = off % slot_bytes / PAGE as u64;
        let (first, pages) = AP_STACK_PAGES[AP_STACK_PAGES.len() - 1];
        let last = first + pages;
        page < last && !AP_STACK_PAGES.iter().any(|&(first, pages)| (first..first + pages).contains(&page))
    };
    in_ap_guard(addr) || in_ap_guard(addr.wrapping_sub(256))
}

/// The kernel stack `addr` lies in, as `(bottom, top)`: the boot CPU's stack or its ring-3 trap
/// stack, or one of an application processor's (`None` elsewhere, guard pages included). The
/// profiler's stack walk reads only within it.
pub fn kernel_stack_of(addr: u64) -> Option<(u64, u64)> {
    // SAFETY: only the addresses of the statics are taken.
    let (boot, trap) = unsafe { (&raw const BOOT_STACK.stack as u64, &raw const USER_TRAP_STACK.stack as u64) };
    let statics =
        [(boot, boot + (BOOT_STACK_PAGES * PAGE) as u64), (trap, trap + (USER_TRAP_STACK_PAGES * PAGE) as u64)];
    if let Some(&range) = statics.iter().find(|(lo, hi)| (*lo..*hi).contains(&addr)) {
        return Some(range);
    }
    let index = addr.checked_sub(AP_STACKS_BASE)? / (AP_SLOT_PAGES * PAGE as u64);
    if index == 0 || index >= super::percpu::MAX_CPUS as u64 {
        return None;
    }
    ap_stacks(index as usize).into_iter().find(|(lo, hi)| (*lo..*hi).contains(&addr))
}
