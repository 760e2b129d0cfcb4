//! aarch64: device-tree boot at EL1 (QEMU `virt`), translation tables, exception vectors,
//! the GIC and the generic timer's per-CPU interrupt, PSCI and semihosting for leaving QEMU.
//!
//! Interrupts: the kernel runs with IRQs masked in PSTATE and takes them only where it waits
//! ([`wait_for_work`], [`sleep_until`]): with IRQs masked it checks for work, arms the virtual
//! timer for the deadline and executes `wfi`, which wakes on a pending interrupt even while it
//! is masked; then it unmasks for an instant, and the pending interrupts are taken there. So no
//! wake-up sent after the check is lost, and no interrupt handler ever runs inside kernel code
//! holding a lock. A handler records and returns (timer: the firing; SGI: the wake-up); the
//! loop that waited decides what to do.

mod boot;
mod gic;
pub mod morello;
mod paging;
mod percpu;
mod selftests;
mod smp;
mod stacks;
mod timer;
mod traps;
pub mod usermode;
mod usermode_selftests;
pub mod uspace;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTKCTL_EL1, CNTVCT_EL0, CurrentEL, ID_AA64MMFR0_EL1, MIDR_EL1, MPIDR_EL1, Readable, Writeable,
};
use drivers::serial::pl011::Pl011;
use spin::Mutex;

use crate::boot::BootInfo;

pub use selftests::selftests;

pub const NAME: &str = "aarch64";

/// MPIDR_EL1's affinity fields (Aff3 in 39:32, Aff2-Aff0 in 23:0), as the device tree's `reg`.
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// QEMU `virt`'s PL011 UART (mapped Device memory by the early and the final tables).
const UART_BASE: usize = 0x0900_0000;

/// PSCI 0.2+ SYSTEM_OFF (SMC32 function id).
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// Semihosting SYS_EXIT and ADP_Stopped_ApplicationExit.
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

static UART: Mutex<Pl011> = Mutex::new(uart());
static EXITING: AtomicBool = AtomicBool::new(false);

const fn uart() -> Pl011 {
    // SAFETY: QEMU virt has a PL011 at UART_BASE, identity-mapped as Device memory from the first
    // instruction that can reach here; only this module drives it (through UART, or a fresh
    // handle for a report while UART is held).
    unsafe { Pl011::new(NonNull::new_unchecked(UART_BASE as *mut u32)) }
}

pub fn console_write(bytes: &[u8]) {
    // A fault report may arrive while the UART is held by the code that faulted: write anyway
    // rather than deadlock (the device is stateless between bytes).
    match UART.try_lock() {
        Some(mut uart) => uart.write_bytes(bytes),
        None => uart().write_bytes(bytes),
    }
}

pub fn ticks() -> u64 {
    barrier::isb(barrier::SY); // no reading the counter ahead of earlier instructions
    CNTVCT_EL0.get()
}

pub fn ticks_per_second() -> u64 {
    CNTFRQ_EL0.get()
}

pub fn clock_source() -> &'static str {
    "CNTVCT_EL0 at CNTFRQ_EL0"
}

pub fn phys_to_virt(phys: u64) -> *mut u8 {
    phys as *mut u8
}

/// The physical address behind a kernel virtual address: identity, but for the secondary CPUs'
/// stacks, which have a region of their own (a table walk).
pub fn virt_to_phys(virt: u64) -> u64 {
    if stacks::in_ap_region(virt) {
        return paging::translate(virt).map_or(virt, |(phys, _)| phys);
    }
    virt
}

/// A kernel address for `size` bytes of device registers at `phys`, mapped Device-nGnRnE
/// (identity; pages beyond the first GiB's MMIO block are mapped on demand).
pub fn map_mmio(phys: u64, size: u64) -> *mut u8 {
    paging::ensure_device_mapped(phys, size);
    phys_to_virt(phys)
}

/// The PCIe host bridge the device tree describes (QEMU `virt`: ECAM, and a 32-bit MMIO
/// window for the BARs that no firmware assigned).
pub fn pci_host(_info: &BootInfo) -> drivers::pci::PciHost {
    match boot::platform().pci {
        Some((ecam, bar_window)) => drivers::pci::PciHost { ecam: Some(ecam), source: "device tree", bar_window },
        None => drivers::pci::PciHost {
            ecam: None,
            source: "no pci-host-ecam-generic in the device tree",
            bar_window: None,
        },
    }
}

/// Sleeps until the counter reaches `deadline`: `wfi` with the virtual timer armed for it.
pub fn sleep_until(deadline: u64) {
    while ticks() < deadline {
        wait_for_work(Some(deadline), || false);
    }
}

/// Halts this CPU until an interrupt (a [`wake`], or the timer at `deadline`), unless
/// `pending()` says there is work already. IRQs are masked while `pending` runs and until the
/// `wfi` (which wakes on a pending interrupt regardless), so a wake-up sent after `pending`
/// looked still ends the halt. A deadline armed here may fire later (the handler only counts).
/// Without a GIC (a device tree that names none) the timer cannot interrupt: the wait is then
/// `wfe` on the generic timer's event stream, every 2^10 counter ticks.
///
/// `waiting` goes up before `pending` looks (a full fence between), and [`wake_if_waiting`]
/// publishes its work before it looks at `waiting`: either the waker sees this CPU waiting and
/// interrupts it, or `pending` sees the work. The deadline may come earlier than asked when one
/// already armed comes first (`timer::arm_by`).
pub fn wait_for_work(deadline: Option<u64>, pending: impl FnOnce() -> bool) {
    use core::sync::atomic::fence;
    mask_irqs();
    let waiting = &percpu::current().waiting;
    waiting.store(true, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    if pending() || deadline.is_some_and(|d| ticks() >= d) {
        waiting.store(false, Ordering::Relaxed);
        return;
    }
    if gic::version() == 0 {
        aarch64_cpu::asm::wfe();
        waiting.store(false, Ordering::Relaxed);
        return;
    }
    if let Some(d) = deadline {
        timer::arm_by(d);
    }
    aarch64_cpu::asm::wfi();
    waiting.store(false, Ordering::Relaxed);
    take_pending_irqs();
}

/// Opens the IRQ mask for an instant: pending interrupts are taken (and handled) here.
fn take_pending_irqs() {
    // SAFETY: unmasks IRQs and masks them again; the handler saves and restores every register
    // it touches and returns here. `isb` makes the unmask take effect before the mask.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb", "msr daifset, #2", options(nostack)) };
}

fn mask_irqs() {
    // SAFETY: masks IRQs on this CPU; touches no memory.
    unsafe { core::arch::asm!("msr daifset, #2", options(nomem, nostack)) };
}

/// An IRQ (from the vectors): acknowledges and handles every pending interrupt. The timer's
/// records its firing and disarms; a wake-up SGI only counts (it ended a `wfi`, which was its
/// purpose).
fn handle_irq() {
    let this = percpu::current();
    let timer_intid = boot::platform().timer_intid;
    while let Some(raw) = gic::ack() {
        match gic::intid(raw) {
            id if id == timer_intid => timer::on_interrupt(this),
            gic::SGI_WAKE => {
                this.wakeups.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                this.other_irqs.fetch_add(1, Ordering::Relaxed);
            }
        }
        gic::eoi(raw);
    }
}

/// No sampler on aarch64 yet: `profile=` is refused with a log line.
pub fn start_sampling(_interval: u64) -> bool {
    false
}

/// Whether [`record_here`] records: not yet on aarch64 (no stack walk).
pub fn can_record_here() -> bool {
    false
}

/// Records nothing (see [`can_record_here`]).
pub fn record_here() {}

/// Runs `f`. The kernel runs with IRQs masked everywhere but at its waits, so there is nothing
/// to keep out.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Starts every other CPU the device tree lists (PSCI CPU_ON), at most `max` CPUs in all; each
/// runs `entry(index)` on its own stack with its per-CPU block, vectors, timer and GIC part set
/// up. Returns how many CPUs are online, the boot CPU (index 0) included.
pub fn start_cpus(info: &BootInfo, max: usize, entry: fn(usize) -> !) -> usize {
    smp::start_cpus(info, max, entry)
}

/// This CPU's index (0 = boot CPU), from its per-CPU block (TPIDR_EL1).
pub fn cpu_index() -> usize {
    percpu::current_index()
}

/// Frames holding sandboxes' translation tables below their level-0 tables.
pub fn user_table_frames() -> u64 {
    uspace::table_frames()
}

/// This CPU's index, or `None` before its per-CPU block is installed (the allocator asks).
pub fn cpu_index_if_ready() -> Option<usize> {
    percpu::loaded().then(percpu::current_index)
}

/// The MSI message a device would send to interrupt this CPU. None: the GIC's MSI frames
/// (GICv2m, or GICv3's ITS on `virt,gic-version=3`) are not set up, so the NIC stays polled and
/// a frame that finds the I/O core asleep waits for the sleep's end (`serve.rs`).
pub fn device_interrupt_message() -> Option<drivers::pci::MsiMessage> {
    None
}

/// CPUs online.
pub fn cpu_count() -> usize {
    smp::cpus_online()
}

/// Wakes CPU `index` if it is halted in `sleep_until`/`wait_for_work`: the wake-up SGI, whose
/// handler only counts it. A no-op for this CPU and for CPUs not online.
pub fn wake(index: usize) {
    if index != cpu_index() && percpu::of(index).is_some_and(|c| c.online.load(Ordering::Acquire)) {
        gic::send_sgi(index, gic::SGI_WAKE);
        crate::wall_events::count(crate::wall_events::Event::WakeIpi);
    }
}

/// Wakes CPU `index` for work the caller has just published, but only if it waits for work
/// ([`wait_for_work`]) or is about to: a running CPU finds the work on its own, without the SGI
/// and its acknowledgement.
pub fn wake_if_waiting(index: usize) {
    core::sync::atomic::fence(Ordering::SeqCst);
    if percpu::of(index).is_some_and(|c| c.waiting.load(Ordering::Relaxed)) {
        wake(index);
    }
}

/// The kernel's translation tables, the boot CPU's per-CPU block, the GIC and the timer's
/// interrupt; exception vectors are in place since the entry code.
pub fn init(_info: &BootInfo) {
    paging::init();
    let platform = boot::platform();
    percpu::install(0, MPIDR_EL1.get() & MPIDR_AFFINITY);
    usermode::init();
    // CNTKCTL_EL1: EVNTEN (bit 2), an event each time counter bit 10 flips (EVNTI, bits 7:4),
    // for waits without a GIC; EL0 counter access stays off.
    CNTKCTL_EL1.set((10 << 4) | (1 << 2));
    timer::disarm();
    match gic::init(platform.timer_intid) {
        Ok(()) => {
            let gic = platform.gic.expect("a GIC was set up");
            log::info!(
                "gic: GICv{} distributor at {:#x}, {} at {:#x}; timer INTID {} (CNTV), wake-up SGI {}",
                gic.version,
                gic.dist.0,
                if gic.version == 3 { "redistributors" } else { "CPU interface" },
                gic.cpu.0,
                platform.timer_intid,
                gic::SGI_WAKE
            );
        }
        Err(e) => log::warn!("gic: {e}; waits poll the timer's event stream (no interrupts)"),
    }
    log::info!(
        "cpu: MIDR {:#x} at EL{}, PARange {}, vectors at {:#x}, PSCI via {}, device tree at {:#x} ({} bytes)",
        MIDR_EL1.get(),
        CurrentEL.read(CurrentEL::EL),
        ID_AA64MMFR0_EL1.get() & 7,
        traps::vectors(),
        if platform.psci_smc { "smc" } else { "hvc" },
        platform.dtb.0,
        platform.dtb.1 - platform.dtb.0
    );
    match (morello::present(), morello::cvbar(), morello::ddc()) {
        (false, ..) => log::info!("morello: not a Morello CPU (ID_AA64PFR1_EL1.CE = 0); capabilities off"),
        (true, Some(cvbar), Some(ddc)) => log::info!(
            "morello: capabilities enabled (CPACR_EL1.CEN = 0b11), hybrid mode; CVBAR_EL1 {cvbar}; DDC {ddc}"
        ),
        (true, ..) => log::warn!("morello: a Morello CPU, but CPACR_EL1.CEN does not enable capabilities"),
    }
}

fn mask_interrupts() {
    // SAFETY: masks debug, SError, IRQ and FIQ on this CPU; touches no memory.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
}

/// Ends a test run: PSCI SYSTEM_OFF when it passed (QEMU exits 0), semihosting SYS_EXIT with
/// code 1 when it failed (QEMU needs `-semihosting`); if neither ends the machine, halt.
pub fn exit(passed: bool) -> ! {
    mask_interrupts();
    // Once only: without semihosting `hlt` is an undefined instruction, whose report calls here.
    if !EXITING.swap(true, Ordering::SeqCst) {
        if passed {
            psci_system_off();
        } else {
            semihosting_exit(1);
        }
    }
    halt_forever()
}

fn psci_system_off() {
    if boot::platform().psci_smc {
        // SAFETY: a PSCI call; SYSTEM_OFF does not return when it works, and SMCCC lets the
        // firmware clobber x0-x17 (declared) when it does not.
        unsafe { core::arch::asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, clobber_abi("C"), options(nostack)) };
    } else {
        // SAFETY: as above, through the hypervisor conduit.
        unsafe { core::arch::asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, clobber_abi("C"), options(nostack)) };
    }
}

fn semihosting_exit(code: u64) {
    let block = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: the semihosting call reads the two-word block at x1; it ends QEMU when
    // semihosting is enabled (otherwise `hlt` traps as an undefined instruction).
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") SYS_EXIT => _, in("x1") block.as_ptr(), options(nostack, readonly));
    }
}

fn halt_forever() -> ! {
    mask_interrupts();
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Waits for interrupts forever (wake-ups and stray deadlines are taken and counted).
pub fn idle() -> ! {
    loop {
        wait_for_work(None, || false);
    }
}
