//! Application processors: found in ACPI's MADT, started with INIT-SIPI-SIPI through a real-mode
//! trampoline, each with its own per-CPU block, GDT and TSS, stacks (with guard pages) and local
//! APIC timer; woken by an IPI; stopped by an NMI when the machine stops.
//!
//! Start-up, one AP at a time (the boot CPU waits for each to check in):
//!
//! 1. The trampoline (`ap_trampoline_start`, below) is copied to physical [`TRAMPOLINE`]
//!    (0x8000, in the first MiB that boot.rs keeps out of the frame allocator). The STARTUP IPI's
//!    vector is its page number, so the AP begins there in real mode at `0800:0000`.
//! 2. Real mode → 32-bit protected mode (the trampoline's own GDT) → long mode, on temporary
//!    page tables at [`TEMP_PML4`]: an identity map of the first 2 MiB, for the trampoline
//!    itself, plus the kernel's own upper half (its PML4 entries 256..511 copied), which holds
//!    the kernel image and the direct map. The kernel's tables cannot be used directly: they
//!    map nothing in the lower half, and their PML4 may lie above 4 GiB (CR3 is 32 bits until
//!    long mode is on).
//! 3. The trampoline jumps to `ap_long_entry` in the kernel image, which loads the kernel's CR3
//!    (the identity map is gone from then on), takes its stack, and calls [`ap_main`]: control
//!    registers as on the boot CPU, its per-CPU block (GDT, TSS with its IST stacks, GS base),
//!    the shared IDT, the local APIC and its timer; then it checks in and runs the entry.
//!
//! Each AP's stacks are mapped in its slot of `stacks::AP_STACKS_BASE` from fresh frames, with
//! unmapped guard pages between them.

use alloc::string::String;
use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use x86_64::registers::control::{Cr0, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Efer;
use x86_64::registers::xcontrol::XCr0;

use super::paging::{self, PageTableFlags as F};
use super::percpu::{self, MAX_CPUS, PerCpu};
use super::{apic, cpu, map_mmio, phys_to_virt, rdtsc, stacks, timer, traps};
use crate::boot::BootInfo;
use crate::mm;

/// Where the trampoline runs (physical; page-aligned, below 1 MiB).
const TRAMPOLINE: u64 = 0x8000;
/// The temporary page tables the trampoline enters long mode with (physical, below 4 GiB).
const TEMP_PML4: u64 = 0x9000;
const TEMP_PDPT: u64 = 0xa000;
const TEMP_PD: u64 = 0xb000;

/// The IPI vector [`wake`] sends; its handler only counts and acknowledges.
pub const WAKE_VECTOR: u64 = 0xf0;

/// How long an AP may take from its STARTUP IPI to checking in (generous: under TCG on a busy
/// host a virtual CPU's thread may wait for a host core).
const CHECK_IN_MICROS: u64 = 2_000_000;
/// How long `stop_others` waits for the other CPUs to say they stopped.
const STOP_MICROS: u64 = 100_000;
/// How long the boot CPU halts between looks while it waits for an AP.
const WAIT_STEP_MICROS: u64 = 20;

global_asm!(
    include_str!("smp.S"),
    tramp = const TRAMPOLINE,
    long_entry = sym ap_long_entry,
    options(att_syntax)
);

global_asm!(
    r#"
    .section .text.ap_long_entry, "ax"
    .global ap_long_entry
    /* From the trampoline, on its temporary tables: rax = the kernel's CR3, rsp = this AP's
       stack. Runs in the kernel window, which both sets of tables map alike. */
ap_long_entry:
    mov cr3, rax
    xor ebp, ebp
    call {main}
    ud2
    "#,
    main = sym ap_main,
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_tramp_stage: u8;
    static ap_tramp_cr3: u8;
    static ap_tramp_kernel_cr3: u8;
    static ap_tramp_stack: u8;
    fn ap_long_entry() -> !;
}

/// CPUs online (the boot CPU included); indices `0..ONLINE` are in use.
static ONLINE: AtomicUsize = AtomicUsize::new(1);
/// Local APIC id by CPU index (`NO_CPU` where there is none).
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(NO_CPU) }; MAX_CPUS];
const NO_CPU: u32 = u32::MAX;

/// What the AP being started reads (APs start one at a time).
struct Launch {
    index: AtomicUsize,
    block: AtomicPtr<PerCpu>,
    entry: AtomicUsize,
    cr0: AtomicU64,
    cr4: AtomicU64,
    efer: AtomicU64,
    xcr0: AtomicU64,
    /// Set by the AP once it is fully set up.
    alive: AtomicBool,
}

static LAUNCH: Launch = Launch {
    index: AtomicUsize::new(0),
    block: AtomicPtr::new(core::ptr::null_mut()),
    entry: AtomicUsize::new(0),
    cr0: AtomicU64::new(0),
    cr4: AtomicU64::new(0),
    efer: AtomicU64::new(0),
    xcr0: AtomicU64::new(0),
    alive: AtomicBool::new(false),
};

/// CPUs online, the boot CPU included.
pub fn cpus_online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// CPU `index`'s local APIC id, if it is online.
pub fn apic_id(index: usize) -> Option<u32> {
    let id = APIC_IDS.get(index)?.load(Ordering::Acquire);
    (id != NO_CPU && index < cpus_online()).then_some(id)
}

use crate::time::micros_to_ticks;

fn delay_micros(us: u64) {
    let until = rdtsc() + micros_to_ticks(us);
    while rdtsc() < until {
        core::hint::spin_loop();
    }
}

/// Spins until `done()` or `us` microseconds have passed; returns whether `done()` held. For
/// paths that run with interrupts off (stopping the machine).
fn spin_micros(us: u64, done: impl Fn() -> bool) -> bool {
    let until = rdtsc() + micros_to_ticks(us);
    loop {
        if done() {
            return true;
        }
        if rdtsc() >= until {
            return done();
        }
        core::hint::spin_loop();
    }
}

/// Waits until `done()` or `us` microseconds have passed, halting on the timer in steps of
/// `WAIT_STEP_MICROS` rather than spinning; returns whether `done()` held. Halting matters
/// under QEMU's `-icount` (one thread runs every virtual CPU in turn): a spinning CPU keeps the
/// AP it waits for from running until QEMU's 100 ms round-robin kick. Interrupts end up on.
fn wait_micros(us: u64, done: impl Fn() -> bool) -> bool {
    let until = rdtsc() + micros_to_ticks(us);
    let step = micros_to_ticks(WAIT_STEP_MICROS);
    loop {
        if done() {
            return true;
        }
        let now = rdtsc();
        if now >= until {
            return done();
        }
        super::sleep_until(until.min(now + step));
    }
}

/// The APIC ids of the processors the firmware lists, or why there are none to start.
fn firmware_cpus(info: &BootInfo) -> Result<Vec<u32>, String> {
    let rsdp = info.rsdp.ok_or("no ACPI RSDP from the boot loader")?;
    // SAFETY: `map_mmio` maps any physical range (the direct map, or fresh uncached pages above
    // it), so every address the tables name is readable; firmware tables are not written.
    let madt = unsafe { drivers::acpi::find_madt(rsdp, |phys, len| map_mmio(phys, len as u64).cast_const()) }
        .map_err(|e| alloc::format!("unreadable ACPI tables: {e}"))?
        .ok_or("no ACPI MADT")?;
    if madt.malformed > 0 {
        log::warn!("smp: {} malformed MADT entries skipped", madt.malformed);
    }
    Ok(madt.cpus.iter().map(|c| c.apic_id).collect())
}

/// Starts the other CPUs; see `arch::start_cpus`.
pub fn start_cpus(info: &BootInfo, max: usize, entry: fn(usize) -> !) -> usize {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::AcqRel) {
        log::warn!("smp: start_cpus called again; the CPUs already run their first entry");
        return cpus_online();
    }
    let me = percpu::current().apic_id.get();
    APIC_IDS[0].store(me, Ordering::Release);
    let max = max.clamp(1, MAX_CPUS);
    let listed = match firmware_cpus(info) {
        Ok(ids) => ids,
        Err(why) => {
            log::info!("smp: 1 CPU online ({why}; secondary CPUs not started)");
            return 1;
        }
    };
    let mut targets: Vec<u32> = listed.iter().copied().filter(|&id| id != me).collect();
    if !listed.contains(&me) {
        log::warn!("smp: the boot CPU's APIC id {me} is not in the MADT");
    }
    if targets.len() + 1 > max {
        log::info!("smp: {} CPUs listed, starting {max} (the most asked for)", targets.len() + 1);
        targets.truncate(max - 1);
    }
    if !apic::is_x2apic()
        && let Some(&id) = targets.iter().find(|&&id| id > 0xfe)
    {
        log::warn!("smp: APIC id {id} needs x2APIC mode, which this CPU lacks; such CPUs are skipped");
        targets.retain(|&id| id <= 0xfe);
    }
    if targets.is_empty() {
        log_online();
        return 1;
    }
    // The loader's configuration module is read after this; it must not be where the
    // trampoline and its tables go.
    if let Some(c) = info.config
        && c.start < TEMP_PD + 4096
        && c.start + c.len > TRAMPOLINE
    {
        log::warn!("smp: the boot configuration lies at {:#x}, over the AP trampoline; 1 CPU online", c.start);
        return 1;
    }

    prepare_trampoline();
    LAUNCH.entry.store(entry as usize, Ordering::Relaxed);
    LAUNCH.cr0.store(Cr0::read_raw(), Ordering::Relaxed);
    LAUNCH.cr4.store(Cr4::read_raw(), Ordering::Relaxed);
    LAUNCH.efer.store(Efer::read_raw(), Ordering::Relaxed);
    if Cr4::read().contains(Cr4Flags::OSXSAVE) {
        LAUNCH.xcr0.store(XCr0::read_raw(), Ordering::Relaxed);
    }

    // INIT every target first, so the wait some CPUs need after it is paid once.
    for &id in &targets {
        apic::send_ipi(id, apic::ICR_INIT | apic::ICR_ASSERT);
    }
    if cpu::init_ipi_needs_delay() {
        delay_micros(10_000);
    }

    let mut mapped = 0; // AP stack slots 1..=mapped are mapped
    for &id in &targets {
        let index = ONLINE.load(Ordering::Relaxed);
        if index > mapped {
            if let Err(e) = map_stacks(index) {
                log::error!("smp: no stacks for CPU {index} ({e}); not starting more CPUs");
                break;
            }
            mapped = index;
        }
        match start_one(index, id) {
            Ok(()) => ONLINE.store(index + 1, Ordering::Release),
            Err(stage) => {
                log::warn!("smp: the CPU with APIC id {id} never checked in (it reached: {stage}); left in INIT");
                // Back to waiting for STARTUP, so a late start cannot run on the next AP's stack.
                apic::send_ipi(id, apic::ICR_INIT | apic::ICR_ASSERT);
            }
        }
    }
    log_online()
}

fn log_online() -> usize {
    let n = cpus_online();
    let mut ids = String::new();
    for (index, id) in APIC_IDS.iter().enumerate().take(n) {
        let _ = write!(ids, "{}{}", if index == 0 { "" } else { " " }, id.load(Ordering::Relaxed));
    }
    log::info!("smp: {n} CPU{} online (APIC ids {ids})", if n == 1 { "" } else { "s" });
    n
}

/// The physical address of trampoline label `sym` in the copy at [`TRAMPOLINE`].
fn trampoline_symbol(sym: *const u8) -> u64 {
    TRAMPOLINE + (sym as u64 - &raw const ap_trampoline_start as u64)
}

/// A pointer through the direct map to the trampoline copy's field `sym`.
fn trampoline_field<T>(sym: *const u8) -> *mut T {
    phys_to_virt(trampoline_symbol(sym)).cast()
}

/// Copies the trampoline to its page and builds the temporary tables it enters long mode with.
fn prepare_trampoline() {
    let (start, end) = (&raw const ap_trampoline_start as u64, &raw const ap_trampoline_end as u64);
    let len = (end - start) as usize;
    assert!(len <= 4096, "the AP trampoline is {len} bytes, more than its page");
    // SAFETY: the first MiB is kept out of the frame allocator for this (boot.rs), so nothing
    // else uses these four pages; the direct map covers them writable. No AP runs yet.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, phys_to_virt(TRAMPOLINE), len);
        for page in [TEMP_PML4, TEMP_PDPT, TEMP_PD] {
            core::ptr::write_bytes(phys_to_virt(page), 0, 4096);
        }
    }
    let present_writable = (F::PRESENT | F::WRITABLE).bits();
    let pml4 = phys_to_virt(TEMP_PML4).cast::<u64>();
    let kernel_cr3 = read_cr3();
    let kernel_pml4 = phys_to_virt(kernel_cr3 & 0x000f_ffff_ffff_f000).cast::<u64>();
    // SAFETY: as above for the temporary tables; the kernel's PML4 is a frame the direct map
    // covers, only read here.
    unsafe {
        pml4.write(TEMP_PDPT | present_writable);
        phys_to_virt(TEMP_PDPT).cast::<u64>().write(TEMP_PD | present_writable);
        phys_to_virt(TEMP_PD).cast::<u64>().write(present_writable | F::HUGE_PAGE.bits()); // 0..2 MiB
        for slot in 256..512 {
            pml4.add(slot).write(kernel_pml4.add(slot).read());
        }
        // SAFETY (fields): each is a naturally aligned field of the trampoline copy.
        trampoline_field::<u32>(&raw const ap_tramp_cr3).write_volatile(TEMP_PML4 as u32);
        trampoline_field::<u64>(&raw const ap_tramp_kernel_cr3).write_volatile(kernel_cr3);
    }
}

fn read_cr3() -> u64 {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags)) };
    cr3
}

/// Maps CPU `index`'s stacks from fresh frames (guard pages stay unmapped).
fn map_stacks(index: usize) -> Result<(), String> {
    for (bottom, top) in stacks::ap_stacks(index) {
        for page in (bottom..top).step_by(4096) {
            let frame = mm::alloc_frame().ok_or("out of frames")?;
            paging::map_page(page, frame, F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL)
                .map_err(|e| alloc::format!("map {page:#x}: {e:?}"))?;
        }
    }
    Ok(())
}

/// Starts the AP with APIC id `id` as CPU `index` and waits for it to check in; on failure,
/// says how far it got.
fn start_one(index: usize, id: u32) -> Result<(), &'static str> {
    LAUNCH.index.store(index, Ordering::Release);
    // A fresh block per attempt: an AP that gave up half-way may have filled the last one's GDT.
    LAUNCH.block.store(percpu::new_ap_block(index), Ordering::Release);
    LAUNCH.alive.store(false, Ordering::Release);
    let stack_top = stacks::ap_stacks(index)[0].1;
    // SAFETY: naturally aligned fields of the trampoline copy; no AP runs it now (the last one
    // checked in, or was sent back to INIT).
    unsafe {
        trampoline_field::<u64>(&raw const ap_tramp_stack).write_volatile(stack_top);
        trampoline_field::<u32>(&raw const ap_tramp_stage).write_volatile(0);
    }
    // SAFETY: as above; read only.
    let stage = || unsafe { trampoline_field::<u32>(&raw const ap_tramp_stage).read_volatile() };
    // The IPI's write to the APIC is ordered after the stores above (x86 stores are not
    // reordered with one another, and the xAPIC page is uncached).
    let startup = apic::ICR_STARTUP | apic::ICR_ASSERT | (TRAMPOLINE >> 12) as u32;
    let sent = rdtsc();
    apic::send_ipi(id, startup);
    if !wait_micros(200, || stage() != 0) {
        apic::send_ipi(id, startup); // ignored by a CPU that took the first one
    }
    if wait_micros(CHECK_IN_MICROS, || LAUNCH.alive.load(Ordering::Acquire)) {
        log::debug!("smp: CPU {index} (APIC id {id}) checked in {} ticks after its STARTUP", rdtsc() - sent);
        return Ok(());
    }
    Err(match stage() {
        0 => "nothing: it never ran the trampoline",
        1 => "real mode",
        _ => "long mode, but not the check-in",
    })
}

/// The AP's first Rust code, on its own stack and the kernel's page tables, interrupts off.
extern "C" fn ap_main() -> ! {
    // Control registers as on the boot CPU: caching on (INIT left CR0.CD/NW set), SMEP, SMAP,
    // and whatever else the boot CPU runs with.
    // SAFETY: the boot CPU runs the kernel with exactly these values, and this CPU runs the
    // same code on the same tables; EFER's LMA bit is read-only and already set.
    unsafe {
        Cr0::write_raw(LAUNCH.cr0.load(Ordering::Relaxed));
        Cr4::write_raw(LAUNCH.cr4.load(Ordering::Relaxed));
        Efer::write_raw(LAUNCH.efer.load(Ordering::Relaxed));
        if Cr4::read().contains(Cr4Flags::OSXSAVE) {
            XCr0::write_raw(LAUNCH.xcr0.load(Ordering::Relaxed));
        }
    }
    // The boot CPU wrote LAUNCH before the STARTUP IPI that started this code.
    let index = LAUNCH.index.load(Ordering::Acquire);
    let [_, ist0, ist1, ist2, user_traps] = stacks::ap_stacks(index);
    // SAFETY: the boot CPU made this block for this AP alone and does not touch it again.
    let block = unsafe { &mut *LAUNCH.block.load(Ordering::Acquire) };
    percpu::load(block, [ist0.1, ist1.1, ist2.1], user_traps.1);
    traps::load();
    // Sandboxes may run here: ring 3's extended state, PKRU, the `syscall` exit (MSRs are per CPU).
    super::usermode::init();
    let id = apic::init();
    percpu::current().apic_id.set(id);
    timer::init_cpu();
    APIC_IDS[index].store(id, Ordering::Release);
    // SAFETY: `start_cpus` stored a `fn(usize) -> !` here.
    let entry: fn(usize) -> ! = unsafe { core::mem::transmute(LAUNCH.entry.load(Ordering::Relaxed)) };
    LAUNCH.alive.store(true, Ordering::Release);
    traps::enable_interrupts();
    entry(index)
}

/// Wakes CPU `index` out of a halt (see `arch::wake`).
pub fn wake(index: usize) {
    if index == percpu::current_index() {
        return;
    }
    if let Some(id) = apic_id(index) {
        apic::send_ipi(id, apic::ICR_FIXED | apic::ICR_ASSERT | WAKE_VECTOR as u32);
        crate::wall_events::count(crate::wall_events::Event::WakeIpi);
    }
}

/// The index of the CPU stopping the machine (`usize::MAX`: none).
static STOPPING: AtomicUsize = AtomicUsize::new(usize::MAX);
/// CPUs that stopped on its request.
static STOPPED: AtomicUsize = AtomicUsize::new(0);

/// Whether a CPU is stopping the machine (so an NMI means: stop here).
pub fn stop_requested() -> bool {
    let who = STOPPING.load(Ordering::Acquire);
    who != usize::MAX && (!percpu::ready() || who != percpu::current_index())
}

/// The NMI handler's end when the machine stops: this CPU halts for good.
pub fn stop_this_cpu() -> ! {
    STOPPED.fetch_add(1, Ordering::AcqRel);
    loop {
        // SAFETY: halting with interrupts off touches no memory; only an NMI (or a reset) ends a
        // halt, and the NMI handler brings us back here.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Stops every other online CPU (an NMI; each halts with interrupts off) and waits up to
/// `STOP_MICROS` for them. Returns false when another CPU is already stopping the machine: the
/// caller should halt and leave the exit to it.
pub fn stop_others() -> bool {
    let me = if percpu::ready() { percpu::current_index() } else { 0 };
    match STOPPING.compare_exchange(usize::MAX, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(who) if who == me => return true, // again, from inside the stop path
        Err(_) => return false,
    }
    let online = cpus_online();
    let mut sent = 0;
    for index in (0..online).filter(|&i| i != me) {
        if let Some(id) = apic_id(index) {
            apic::send_ipi(id, apic::ICR_NMI | apic::ICR_ASSERT);
            sent += 1;
        }
    }
    if sent > 0 && super::ticks_per_second() != 0 {
        spin_micros(STOP_MICROS, || STOPPED.load(Ordering::Acquire) >= sent);
    }
    true
}
