//! The architecture interface: everything the portable kernel needs from a CPU family.
//!
//! Each `arch/<name>/` module provides the same small set of items:
//!
//! | item | what it does |
//! |---|---|
//! | `NAME` | `"x86_64"`, `"aarch64"` |
//! | `console_write(&[u8])` | raw bytes to the boot serial port (the caller locks) |
//! | `ticks()`, `ticks_per_second()`, `clock_source()` | the free-running counter (TSC, CNTVCT) |
//! | `phys_to_virt(u64) -> *mut u8` | the direct map of physical memory |
//! | `init(&BootInfo)` | page tables, traps, interrupt controller, timer |
//! | `selftests()` | the architecture's self-tests (paging, traps, timer) |
//! | `exit(passed) -> !` | stop the other CPUs, then leave QEMU with a pass/fail code (test mode), else halt |
//! | `idle() -> !` | wait for interrupts forever |
//! | `sleep_until(ticks)` | halt until the counter reaches `ticks` (or an earlier interrupt) |
//! | `wait_for_work(deadline, pending)` | halt unless `pending()`, until a `wake` or the deadline; no lost wake-ups |
//! | `start_cpus(&BootInfo, max, entry) -> usize` | start the other CPUs (x86: ACPI MADT, INIT-SIPI-SIPI; aarch64: the device tree, PSCI `CPU_ON`); each runs `entry(index)` |
//! | `cpu_index()`, `cpu_count()` | this CPU's index (0 = boot CPU), CPUs online |
//! | `wake(index)` | end CPU `index`'s halt (an IPI); a no-op for this CPU |
//! | `start_sampling(interval) -> bool` | the profiler's timer sampling (`profile.rs`); false where there is none (aarch64) |
//! | `can_record_here() -> bool`, `record_here()` | the caller's stack as a profile sample (`profile=alloc`); false and a no-op where there is no stack walk (aarch64) |
//! | `without_interrupts(f)` | run `f` with this CPU's interrupts off |
//! | `usermode`, `uspace` | the native engines' user mode (ring 3, EL0: entry, the exit call, traps, `UserRegs`) and sandbox address spaces (`AddressSpace`) |
//!
//! The boot entry is architecture code too: it builds a [`crate::boot::BootInfo`] and calls
//! [`crate::kernel_main`].

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub use self::aarch64::*;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
