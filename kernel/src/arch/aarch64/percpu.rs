//! Per-CPU blocks: one per CPU, found through TPIDR_EL1 (set by each CPU before it takes an
//! interrupt or allocates; 0 until then, which reads as "not ready").

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use aarch64_cpu::registers::{Readable, TPIDR_EL1, Writeable};

use crate::smp::MAX_CPUS;

/// What each CPU keeps about itself (all atomics: other CPUs read the counters). `repr(C)`:
/// the EL0 entry and exception code (`usermode.rs`) reach the first two fields by offset.
#[repr(C)]
pub struct PerCpu {
    /// While a sandbox runs at EL0 on this CPU: the kernel's stack pointer to return to
    /// ([`USER_KERNEL_SP_OFFSET`]) and the sandbox's saved registers ([`USER_REGS_OFFSET`]).
    pub user_kernel_sp: AtomicU64,
    pub user_regs: AtomicU64,
    /// This CPU's index (0 = boot CPU), set once by [`install`].
    pub index: AtomicUsize,
    /// MPIDR_EL1's affinity fields, as the device tree lists them.
    pub mpidr: AtomicU64,
    /// GICv3: this CPU's redistributor (RD_base); GICv2: this CPU's interface mask (the
    /// distributor's banked ITARGETSR byte) for SGI target lists.
    pub gic_cpu: AtomicU64,
    /// The counter value the timer is armed for (`u64::MAX`: not armed; `timer.rs`).
    pub timer_deadline: AtomicU64,
    /// In `wait_for_work`, from before it looks for work until its wait ends
    /// (`wake_if_waiting` interrupts only such a CPU).
    pub waiting: AtomicBool,
    /// Counter value at this CPU's last timer interrupt, and how many it took.
    pub timer_fired_at: AtomicU64,
    pub timer_firings: AtomicU64,
    /// Wake-up SGIs this CPU took.
    pub wakeups: AtomicU64,
    /// Interrupts that were neither the timer nor a wake-up (or spurious acknowledgements).
    pub other_irqs: AtomicU64,
    /// Whether the CPU has come up (set by the CPU itself).
    pub online: AtomicBool,
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            user_kernel_sp: AtomicU64::new(0),
            user_regs: AtomicU64::new(0),
            index: AtomicUsize::new(0),
            mpidr: AtomicU64::new(0),
            gic_cpu: AtomicU64::new(0),
            timer_deadline: AtomicU64::new(u64::MAX),
            waiting: AtomicBool::new(false),
            timer_fired_at: AtomicU64::new(0),
            timer_firings: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            other_irqs: AtomicU64::new(0),
            online: AtomicBool::new(false),
        }
    }
}

pub const USER_KERNEL_SP_OFFSET: usize = core::mem::offset_of!(PerCpu, user_kernel_sp);
pub const USER_REGS_OFFSET: usize = core::mem::offset_of!(PerCpu, user_regs);

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Points this CPU's TPIDR_EL1 at block `index` and fills in its identity.
pub fn install(index: usize, mpidr: u64) {
    let cpu = &CPUS[index];
    cpu.index.store(index, Ordering::Relaxed);
    cpu.mpidr.store(mpidr, Ordering::Relaxed);
    cpu.online.store(true, Ordering::Release);
    TPIDR_EL1.set(cpu as *const PerCpu as u64);
}

/// Whether this CPU has installed its block.
pub fn loaded() -> bool {
    TPIDR_EL1.get() != 0
}

/// This CPU's block (the boot CPU's before [`install`], which is then the only one running).
pub fn current() -> &'static PerCpu {
    let ptr = TPIDR_EL1.get();
    if ptr == 0 {
        return &CPUS[0];
    }
    // SAFETY: TPIDR_EL1 is only ever set by `install`, to an element of the static CPUS.
    unsafe { &*(ptr as *const PerCpu) }
}

/// Block `index` (another CPU's counters), if in range.
pub fn of(index: usize) -> Option<&'static PerCpu> {
    CPUS.get(index)
}

/// This CPU's index.
pub fn current_index() -> usize {
    current().index.load(Ordering::Relaxed)
}
