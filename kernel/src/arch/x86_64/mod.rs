//! x86_64: PVH boot, GDT/TSS/IDT, the kernel's page tables, local APIC and its timer, the
//! application processors.

mod apic;
mod boot;
mod cpu;
mod float;
mod mem;
mod paging;
mod percpu;
mod pit;
mod sampler;
mod selftests;
mod smp;
mod stacks;
mod timer;
mod traps;
pub mod usermode;
mod usermode_selftests;
pub mod uspace;

use core::sync::atomic::{AtomicU64, Ordering};

use drivers::serial::uart16550::{COM1, PortUart};
use spin::Mutex;
use x86_64::instructions::port::Port;

use crate::boot::BootInfo;

pub use selftests::selftests;
pub use traps::vector_name;

pub const NAME: &str = "x86_64";

/// Where all physical memory is mapped (the lower half's first PML4 slot above it).
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Virtual address of physical 0 in the kernel window (see linker.ld).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// QEMU's `isa-debug-exit` device: writing `v` ends QEMU with status `(v << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;
const EXIT_PASS: u32 = 0x10; // QEMU exits 33
const EXIT_FAIL: u32 = 0x11; // QEMU exits 35

static SERIAL: Mutex<Option<PortUart>> = Mutex::new(None);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static CLOCK_SOURCE: Mutex<&'static str> = Mutex::new("uncalibrated");

/// The first Rust code: the console, so that everything after can report.
fn early_init() {
    // SAFETY: COM1 is the PC's first serial port and only this module drives it.
    *SERIAL.lock() = unsafe { PortUart::new(COM1) };
}

pub fn console_write(bytes: &[u8]) {
    // A fault report may arrive while the port is held by the code that faulted: write anyway
    // rather than deadlock (the port itself is stateless between bytes).
    if let Some(mut guard) = SERIAL.try_lock() {
        if let Some(uart) = guard.as_mut() {
            uart.write_bytes(bytes);
        }
    } else {
        // SAFETY: see above; a fresh handle on the same port, used only for this report.
        if let Some(mut uart) = unsafe { PortUart::new(COM1) } {
            uart.write_bytes(bytes);
        }
    }
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged here and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn ticks() -> u64 {
    rdtsc()
}

pub fn ticks_per_second() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn clock_source() -> &'static str {
    *CLOCK_SOURCE.lock()
}

pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (phys + PHYS_OFFSET) as *mut u8
}

/// The physical address behind a kernel virtual address (direct map, kernel image, or any other
/// mapping), for handing buffers to devices.
pub fn virt_to_phys(virt: u64) -> u64 {
    if virt >= KERNEL_VMA {
        virt - KERNEL_VMA
    } else if (PHYS_OFFSET..PHYS_OFFSET + (1 << 46)).contains(&virt) {
        virt - PHYS_OFFSET
    } else {
        paging::translate(virt).map(|(phys, _)| phys).unwrap_or_else(|| panic!("{virt:#x} is not mapped"))
    }
}

/// A kernel address for `size` bytes of device registers at `phys`, mapped uncached. Below the
/// top of the direct map that is the direct map itself (uncached over holes); above it (64-bit
/// BARs), the pages are mapped on demand at the same offset.
pub fn map_mmio(phys: u64, size: u64) -> *mut u8 {
    paging::ensure_mmio_mapped(phys, size);
    phys_to_virt(phys)
}

/// The PCI host bridge: the ECAM window from ACPI's MCFG, when the firmware has one (q35 does;
/// microvm and older PCs do not, and use the configuration ports).
pub fn pci_host(info: &BootInfo) -> drivers::pci::PciHost {
    let none = |source| drivers::pci::PciHost { ecam: None, source, bar_window: None };
    let Some(rsdp) = info.rsdp else { return none("no ACPI RSDP") };
    // SAFETY: `map_mmio` maps any physical range (the direct map, or fresh uncached pages above
    // it), so every address the tables name is readable; firmware tables are not written.
    match unsafe { drivers::acpi::find_ecam(rsdp, |phys, len| map_mmio(phys, len as u64).cast_const()) } {
        Ok(Some(window)) => drivers::pci::PciHost { ecam: Some(window), source: "ACPI MCFG", bar_window: None },
        Ok(None) => none("no ACPI MCFG"),
        Err(e) => {
            log::warn!("acpi: {e}");
            none("unreadable ACPI tables")
        }
    }
}

/// GDT, TSS and IDT; the kernel's page tables; the local APIC and a calibrated clock and timer.
pub fn init(info: &BootInfo) {
    percpu::init_boot_cpu();
    traps::init();
    paging::init(info);
    pit::mask_legacy_pic();
    let id = apic::init();
    percpu::current().apic_id.set(id);
    let (tsc_hz, apic_hz) = timer::calibrate(calibrate_tsc);
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    log::info!(
        "cpu: {} APIC id {id}, timer {} kHz, SMEP {}, SMAP {}, PKU {}",
        apic::mode(),
        apic_hz / 1000,
        cpu::has_smep(),
        cpu::has_smap(),
        cpu::has_pku()
    );
    usermode::init();
    traps::enable_interrupts();
}

/// Finds the TSC frequency: the CPU's own report where it has one, else a measurement against
/// the PIT. The PIT window starts at a quarter of a millisecond and doubles until its edges are
/// known to 1/2000 of it (under `-icount` the first window is exact; a host that preempts the
/// vCPU mid-window makes one loose, and it is measured again), at most 16 ms; the tightest
/// window seen wins.
fn calibrate_tsc() -> u64 {
    if let Some((hz, source)) = cpu::reported_tsc_hz() {
        *CLOCK_SOURCE.lock() = source;
        // A millisecond for the APIC timer, which is measured over this call.
        let until = rdtsc() + hz / 1000;
        while rdtsc() < until {
            core::hint::spin_loop();
        }
        return hz;
    }
    let mut ticks = pit::HZ / 4000;
    let mut best: Option<pit::Window> = None;
    // Windows of 0.25 ms doubling to 16 ms, then more 16 ms windows: a host that preempts the
    // vCPU near an edge widens that window's brackets (a loaded CI machine did, and the clock
    // ran 2-7% fast); the first window whose edges are known to 1/2000 ends it, and at most
    // `MORE_LONG_WINDOWS` extra are tried (about 0.1 s) before the tightest is taken.
    const MORE_LONG_WINDOWS: u32 = 6;
    let mut long_windows = 0;
    loop {
        let w = pit::measure_tsc(ticks as u16);
        // Looseness as a fraction of the window, compared without division.
        let looser = |a: &pit::Window, b: &pit::Window| {
            u128::from(a.uncertainty) * u128::from(b.tsc_ticks) > u128::from(b.uncertainty) * u128::from(a.tsc_ticks)
        };
        if best.as_ref().is_none_or(|b| looser(b, &w)) {
            best = Some(w);
        }
        if w.uncertainty * 2000 <= w.tsc_ticks {
            break;
        }
        if ticks * 2 <= pit::HZ / 62 {
            ticks *= 2;
        } else if long_windows < MORE_LONG_WINDOWS {
            long_windows += 1;
        } else {
            if let Some(b) = &best {
                log::warn!(
                    "clock: TSC calibration only to {} ppm (a busy host)",
                    b.uncertainty * 1_000_000 / b.tsc_ticks.max(1)
                );
            }
            break;
        }
    }
    *CLOCK_SOURCE.lock() = "TSC measured against the PIT";
    best.map_or(0, |w| w.tsc_hz())
}

/// Starts every other CPU the firmware lists (ACPI MADT), at most `max` CPUs in all; each runs
/// `entry(index)` on its own stack with its per-CPU block, GDT/TSS/IDT, local APIC and timer set
/// up and interrupts enabled. Returns how many CPUs are online, the boot CPU (index 0)
/// included. Called once by the boot CPU after `init` and the heap.
pub fn start_cpus(info: &BootInfo, max: usize, entry: fn(usize) -> !) -> usize {
    smp::start_cpus(info, max, entry)
}

/// This CPU's index (0 = boot CPU), from its per-CPU block (valid after `init`).
pub fn cpu_index() -> usize {
    percpu::current_index()
}

/// Frames holding sandboxes' page tables (below their PML4s).
pub fn user_table_frames() -> u64 {
    uspace::table_frames()
}

/// This CPU's index, or `None` before the boot CPU's per-CPU block is loaded (the allocator
/// asks, and must not fault then). Application processors load theirs before they allocate.
pub fn cpu_index_if_ready() -> Option<usize> {
    percpu::loaded().then(percpu::current_index)
}

/// The MSI message a device sends to interrupt this CPU: the NIC's receive queue ending the
/// I/O core's [`wait_for_work`]. None where the CPU's APIC id does not fit a message.
pub fn device_interrupt_message() -> Option<drivers::pci::MsiMessage> {
    apic::msi_message(percpu::current().apic_id.get(), apic::DEVICE_VECTOR as u8)
}

/// CPUs online.
pub fn cpu_count() -> usize {
    smp::cpus_online()
}

/// Wakes CPU `index` if it is halted in `sleep_until`/`wait_for_work`: an IPI to a vector whose
/// handler only acknowledges it. A no-op for this CPU and for CPUs not online.
pub fn wake(index: usize) {
    smp::wake(index)
}

/// Ends a test run: the other CPUs stopped (an NMI halts them), then QEMU's debug-exit device
/// when present, else halt. Panics and fatal traps end here too.
pub fn exit(passed: bool) -> ! {
    x86_64::instructions::interrupts::disable();
    if !smp::stop_others() {
        halt_forever(); // another CPU is stopping the machine, and stops this one
    }
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: writing the debug-exit port ends QEMU; on hardware without the device the write
    // goes nowhere and we halt below.
    unsafe { port.write(if passed { EXIT_PASS } else { EXIT_FAIL }) };
    halt_forever()
}

fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// Sleeps until the counter reaches `deadline` (or an earlier interrupt).
pub fn sleep_until(deadline: u64) {
    // Interrupts off from arming to `sti; hlt`: a deadline that expires in between (a short
    // sleep on a slow or busy host) would otherwise be taken before the halt, and the halt would
    // then wait for an interrupt that never comes (the NIC runs without interrupts).
    x86_64::instructions::interrupts::disable();
    if rdtsc() >= deadline {
        x86_64::instructions::interrupts::enable();
        return;
    }
    timer::arm_deadline(deadline);
    traps::wait_for_interrupt();
}

/// Halts this CPU until an interrupt (a [`wake`], or the timer at `deadline`), unless
/// `pending()` says there is work already. `pending` runs with interrupts off, and the halt
/// re-enables them atomically (`sti; hlt`), so a `wake` sent after `pending` looked still ends
/// the halt: no lost wake-up. Returns with interrupts on; a deadline armed here may still fire
/// later (harmless: the handler only counts).
///
/// `waiting` goes up before `pending` looks (a full fence between), and [`wake_if_waiting`]
/// publishes its work before it looks at `waiting` (the same fence): either the waker sees this
/// CPU waiting and interrupts it, or this CPU's `pending` sees the work. The deadline may come
/// earlier than asked when one already armed comes first (`timer::arm_by`).
pub fn wait_for_work(deadline: Option<u64>, pending: impl FnOnce() -> bool) {
    use core::sync::atomic::fence;
    x86_64::instructions::interrupts::disable();
    let waiting = &percpu::current().waiting;
    waiting.store(true, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    if pending() || deadline.is_some_and(|d| rdtsc() >= d) {
        waiting.store(false, Ordering::Relaxed);
        x86_64::instructions::interrupts::enable();
        return;
    }
    if let Some(d) = deadline {
        timer::arm_by(d);
    }
    traps::wait_for_interrupt();
    waiting.store(false, Ordering::Relaxed);
}

/// Wakes CPU `index` for work the caller has just published, but only if it waits for work
/// ([`wait_for_work`]) or is about to: a CPU that is running (the I/O core in its spin window)
/// finds the work on its own, without the interrupt, its EOI and the sender's ICR write (three
/// device exits under QEMU's TCG).
pub fn wake_if_waiting(index: usize) {
    use core::sync::atomic::fence;
    fence(Ordering::SeqCst);
    if percpu::of(index).is_some_and(|c| c.waiting.load(Ordering::Relaxed)) {
        smp::wake(index);
    }
}

/// Starts the profiler's sampling on the local APIC timer (shared with deadlines), every
/// `interval` TSC ticks, on this CPU and on every CPU started later. True: x86_64 has a sampler.
pub fn start_sampling(interval: u64) -> bool {
    timer::start_sampling(interval);
    true
}

/// Whether [`record_here`] records (`profile=alloc`).
pub fn can_record_here() -> bool {
    true
}

/// Records the caller's stack as a profile sample on this CPU (`profile=alloc`).
pub fn record_here() {
    sampler::record_here();
}

/// Runs `f` with this CPU's interrupts off.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(f)
}

/// Waits for interrupts forever (timer deadlines, and soon the NIC).
pub fn idle() -> ! {
    loop {
        traps::wait_for_interrupt();
    }
}
