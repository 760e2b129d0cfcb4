//! aarch64: device-tree boot at EL1 (QEMU `virt`), translation tables, exception vectors,
//! the generic timer's counter, PSCI and semihosting for leaving QEMU.

mod boot;
mod paging;
mod selftests;
mod stacks;
mod traps;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTKCTL_EL1, CNTVCT_EL0, CurrentEL, ID_AA64MMFR0_EL1, MIDR_EL1, Readable, Writeable,
};
use drivers::serial::pl011::Pl011;
use spin::Mutex;

use crate::boot::BootInfo;

pub use selftests::selftests;

pub const NAME: &str = "aarch64";

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

/// The physical address behind a kernel virtual address (identity-mapped).
pub fn virt_to_phys(virt: u64) -> u64 {
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

/// Sleeps until the counter reaches `deadline`. No interrupt controller is set up yet, so
/// this waits for events: the generic timer's event stream (enabled in [`init`]) wakes `wfe`
/// every 2^10 counter ticks.
pub fn sleep_until(deadline: u64) {
    while ticks() < deadline {
        aarch64_cpu::asm::wfe();
    }
}

/// Halts until `deadline` unless `pending()` says there is work already (without a deadline:
/// until the next event of the generic timer's stream, every 2^10 counter ticks). With one CPU
/// and no interrupts yet nothing else can make `pending` true meanwhile, so nothing is missed.
pub fn wait_for_work(deadline: Option<u64>, pending: impl FnOnce() -> bool) {
    if pending() {
        return;
    }
    match deadline {
        Some(d) => sleep_until(d),
        None => aarch64_cpu::asm::wfe(),
    }
}

/// No sampler on aarch64 yet (no interrupt controller is set up to take the timer's
/// interrupt): `profile=` is refused with a log line.
pub fn start_sampling(_interval: u64) -> bool {
    false
}

/// Runs `f`; this kernel takes no interrupts on aarch64 yet, so there is nothing to keep out.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Secondary CPUs are not started on aarch64 yet (PSCI CPU_ON will): this logs so and returns 1.
pub fn start_cpus(_info: &BootInfo, _max: usize, _entry: fn(usize) -> !) -> usize {
    log::info!("smp: secondary CPUs not started on aarch64 yet; 1 CPU online");
    1
}

/// This CPU's index: the boot CPU's, 0, as long as it is the only one.
pub fn cpu_index() -> usize {
    0
}

/// Frames holding sandboxes' page tables: none, there are no native sandboxes here yet.
pub fn user_table_frames() -> u64 {
    0
}

/// This CPU's index (the allocator asks; one CPU here, so always known).
pub fn cpu_index_if_ready() -> Option<usize> {
    Some(0)
}

/// CPUs online.
pub fn cpu_count() -> usize {
    1
}

/// Wakes CPU `index` out of a halt: with one CPU there is no other to wake.
pub fn wake(_index: usize) {}

/// The kernel's translation tables; exception vectors are in place since the entry code.
pub fn init(_info: &BootInfo) {
    paging::init();
    // CNTKCTL_EL1: EVNTEN (bit 2), an event each time counter bit 10 flips (EVNTI, bits 7:4),
    // for `sleep_until`; EL0 counter access stays off.
    CNTKCTL_EL1.set((10 << 4) | (1 << 2));
    let platform = boot::platform();
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

/// Waits for interrupts forever (no interrupt sources are enabled yet).
pub fn idle() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}
