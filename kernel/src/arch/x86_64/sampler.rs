//! The profiler's sample, taken in the timer interrupt (`timer.rs` decides when).
//!
//! It records the interrupted instruction pointer and the frame-pointer chain above it (the
//! kernel is built with frame pointers, `.cargo/config.toml`), at most `profile::MAX_DEPTH`
//! frames. Every frame address is checked to lie within the kernel stack the interrupted code
//! ran on before it is read, so the walk cannot fault, whatever a frame pointer holds. A
//! sandbox's (ring 3) memory is never read: its sample is the kernel frames under its entry,
//! from the context `usermode::enter_user` saved. A halted CPU is only counted.

use core::sync::atomic::Ordering;

use super::percpu::PerCpu;
use super::stacks;
use super::traps::{TrapFrame, halt_resume_address};
use crate::profile::{self, Kind, MAX_DEPTH};

/// Where `pappus_enter_user` leaves the caller's frame pointer and its return address, above
/// the kernel stack pointer it saves (`usermode.rs`: rdi, rflags, r15..r12, rbx, then rbp).
const ENTER_USER_SAVED_RBP: u64 = 7 * 8;
const ENTER_USER_RETURN: u64 = 8 * 8;

/// Takes one sample of what `frame` interrupted on this CPU. Returns whether the CPU was halted.
pub fn sample(cpu: &PerCpu, frame: &TrapFrame) -> bool {
    let index = cpu.index as usize;
    if frame.cs & 3 == 0 && frame.rip == halt_resume_address() && cpu.halted.load(Ordering::Relaxed) {
        profile::record_idle(index);
        return true;
    }
    let mut addrs = [0u64; MAX_DEPTH + 1];
    let (kind, n) = if frame.cs & 3 != 0 {
        // The kernel stack `pappus_enter_user` saved: its caller's frame, then the chain.
        let krsp = cpu.user_kernel_rsp.get();
        match stacks::kernel_stack_of(krsp) {
            Some((_, top)) if krsp.is_multiple_of(8) && krsp + ENTER_USER_RETURN + 8 <= top => {
                // SAFETY: both words lie within the current CPU's kernel stack, mapped and
                // not written while the sandbox runs.
                let (rbp, ret) = unsafe {
                    (
                        core::ptr::read_volatile((krsp + ENTER_USER_SAVED_RBP) as *const u64),
                        core::ptr::read_volatile((krsp + ENTER_USER_RETURN) as *const u64),
                    )
                };
                addrs[0] = ret;
                (Kind::Sandbox, 1 + walk(rbp, krsp, top, &mut addrs[1..]))
            }
            _ => (Kind::Sandbox, 0),
        }
    } else {
        addrs[0] = frame.rip;
        match stacks::kernel_stack_of(frame.rsp) {
            Some((_, top)) => (Kind::Kernel, 1 + walk(frame.rbp, frame.rsp, top, &mut addrs[1..])),
            None => (Kind::Kernel, 1),
        }
    };
    profile::record(index, kind, &addrs[..n]);
    cpu.samples.fetch_add(1, Ordering::Relaxed);
    false
}

/// Records the caller's stack as a kernel sample on this CPU (`profile=alloc`: a heap
/// allocation): its return address and the frame-pointer chain above it, walked as a timer
/// sample's is.
#[inline(never)]
pub fn record_here() {
    let (rbp, rsp): (u64, u64);
    // SAFETY: reads two registers, touches nothing.
    unsafe { core::arch::asm!("mov {}, rbp", "mov {}, rsp", out(reg) rbp, out(reg) rsp, options(nomem, nostack)) };
    let mut addrs = [0u64; MAX_DEPTH + 1];
    let n = match stacks::kernel_stack_of(rsp) {
        Some((_, top)) => walk(rbp, rsp, top, &mut addrs),
        None => 0,
    };
    let index = super::cpu_index_if_ready().unwrap_or(0);
    profile::record(index, Kind::Kernel, &addrs[..n]);
}

/// Follows frame pointers from `fp` within `[low, top)` (the live part of one kernel stack),
/// writing return addresses to `out`; stops at the first frame outside it, a return address
/// outside the kernel image, or a chain that does not climb.
fn walk(mut fp: u64, low: u64, top: u64, out: &mut [u64]) -> usize {
    let mut n = 0;
    while n < out.len() && fp >= low && fp.is_multiple_of(8) && fp.checked_add(16).is_some_and(|end| end <= top) {
        // SAFETY: `[fp, fp + 16)` lies within the live part of the kernel stack this CPU was
        // running on (checked just above), which is mapped; reading it has no side effects.
        let (next, ret) =
            unsafe { (core::ptr::read_volatile(fp as *const u64), core::ptr::read_volatile((fp + 8) as *const u64)) };
        if ret < super::KERNEL_VMA {
            break;
        }
        out[n] = ret;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}
