//! The boot CPU's kernel stack, with an unmapped guard page below it and an emergency stack
//! for reporting a stack overflow.
//!
//! One 512 KiB block, aligned to 512 KiB: the upper 256 KiB is the stack proper (as large as
//! x86_64's boot stack: bringing up the NIC and the front door needs more than 64 KiB) and the
//! lower half holds (from the bottom) a guard page, the emergency stack and the stack's own
//! guard page. Bit 18 of any address in the stack proper is therefore 1 and of anything it can
//! overflow into is 0: the exception vectors test that bit (no memory access needed) before
//! they push a frame, and switch to the emergency stack when it is clear (see `traps.rs`).
//! Every secondary CPU's block (`smp.rs`) keeps this layout, at [`ap_block`] in a virtual region
//! of its own, mapped page by page with the same two guard pages left unmapped.

const PAGE: usize = 4096;

/// Size and alignment of a stack block.
pub const BLOCK: usize = 512 * 1024;
/// Offset of the emergency stack's top within its block.
pub const EMERGENCY_TOP: usize = PAGE + EMERGENCY_PAGES * PAGE;
/// The bit that is 1 in the stack proper and 0 below it.
pub const STACK_BIT: u32 = 18;

const EMERGENCY_PAGES: usize = 62;
const STACK_PAGES: usize = 64;

#[repr(C, align(524288))]
pub struct StackBlock {
    emergency_guard: [u8; PAGE],
    emergency: [u8; EMERGENCY_PAGES * PAGE],
    guard: [u8; PAGE],
    stack: [u8; STACK_PAGES * PAGE],
}

const _: () = assert!(core::mem::size_of::<StackBlock>() == BLOCK);
const _: () = assert!(EMERGENCY_TOP + PAGE == BLOCK / 2);

/// The boot CPU's stacks. The entry code sets `sp` to the end of this block.
#[unsafe(link_section = ".bss.stacks")]
pub static mut BOOT_STACKS: StackBlock = StackBlock {
    emergency_guard: [0; PAGE],
    emergency: [0; EMERGENCY_PAGES * PAGE],
    guard: [0; PAGE],
    stack: [0; STACK_PAGES * PAGE],
};

/// Guard pages (start addresses) that the page tables must leave unmapped.
pub fn guard_pages() -> [u64; 2] {
    // SAFETY: only the addresses of the static's fields are taken.
    unsafe { [&raw const BOOT_STACKS.emergency_guard as u64, &raw const BOOT_STACKS.guard as u64] }
}

/// The whole block `[start, end)`, for the stack walk's bounds check.
pub fn block_range() -> (u64, u64) {
    let start = &raw const BOOT_STACKS as u64;
    (start, start + BLOCK as u64)
}

/// Where secondary CPUs' stack blocks lie (virtual; a level-0 slot nothing else uses).
const AP_STACKS_BASE: u64 = 0x0000_5000_0000_0000;

/// CPU `index`'s stack block (index >= 1).
pub fn ap_block(index: usize) -> u64 {
    AP_STACKS_BASE + index as u64 * BLOCK as u64
}

/// Whether `addr` lies in the secondary CPUs' stack region (not identity-mapped).
pub fn in_ap_region(addr: u64) -> bool {
    (AP_STACKS_BASE..ap_block(crate::smp::MAX_CPUS)).contains(&addr)
}

/// The two guard pages of the block at `block`.
pub fn guards_of(block: u64) -> [u64; 2] {
    [block, block + EMERGENCY_TOP as u64]
}
