//! The local APIC, in x2APIC mode (MSRs) where the CPU has it, else xAPIC (MMIO through the
//! uncached direct map).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::{cpu, phys_to_virt};

pub const SPURIOUS_VECTOR: u64 = 0xff;
/// The vector device interrupts arrive on (the NIC's receive queue, which ends the I/O core's
/// sleep): its handler only counts and acknowledges; the wake-up is the point.
pub const DEVICE_VECTOR: u64 = 0x30;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;

pub const REG_ID: u32 = 0x20;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
pub const REG_LVT_TIMER: u32 = 0x320;
pub const REG_TIMER_INITIAL: u32 = 0x380;
pub const REG_TIMER_CURRENT: u32 = 0x390;
pub const REG_TIMER_DIVIDE: u32 = 0x3e0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
/// x2APIC: the whole ICR is one 64-bit MSR, destination in the upper half.
const MSR_X2APIC_ICR: u32 = 0x830;

/// Interrupt command (ICR low word) parts: delivery modes, level assert, delivery status.
pub const ICR_FIXED: u32 = 0b000 << 8;
pub const ICR_NMI: u32 = 0b100 << 8;
pub const ICR_INIT: u32 = 0b101 << 8;
pub const ICR_STARTUP: u32 = 0b110 << 8;
pub const ICR_ASSERT: u32 = 1 << 14;
const ICR_PENDING: u32 = 1 << 12;

static X2APIC: AtomicBool = AtomicBool::new(false);
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);

pub fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC registers are MSRs 0x800 + reg/16; reading them has no side effects
        // for the registers this module reads.
        unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 }
    } else {
        let base = MMIO_BASE.load(Ordering::Relaxed);
        // SAFETY: the xAPIC page is mapped uncached by the direct map; `reg` is a register offset.
        unsafe { ((base + u64::from(reg)) as *const u32).read_volatile() }
    }
}

pub fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `read`; the callers write documented values to documented registers.
        unsafe { Msr::new(0x800 + (reg >> 4)).write(u64::from(value)) }
    } else {
        let base = MMIO_BASE.load(Ordering::Relaxed);
        // SAFETY: as in `read`.
        unsafe { ((base + u64::from(reg)) as *mut u32).write_volatile(value) }
    }
}

/// Enables this CPU's local APIC with the spurious vector set; returns its APIC id.
pub fn init() -> u32 {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; we only set its enable bits.
    let base = unsafe { base_msr.read() };
    let x2 = cpu::has_x2apic();
    let enable = APIC_ENABLE | if x2 { X2APIC_ENABLE } else { 0 };
    // SAFETY: as above.
    unsafe { base_msr.write(base | enable) };
    X2APIC.store(x2, Ordering::Relaxed);
    MMIO_BASE.store(phys_to_virt(base & 0xf_ffff_f000) as u64, Ordering::Relaxed);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    let id = if x2 { read(REG_ID) } else { read(REG_ID) >> 24 };
    log::debug!("apic: {} mode, id {id}", if x2 { "x2APIC" } else { "xAPIC" });
    id
}

pub fn mode() -> &'static str {
    if is_x2apic() { "x2APIC" } else { "xAPIC" }
}

pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Sends an inter-processor interrupt to the CPU with local APIC id `dest` (physical
/// destination); `command` is the ICR low word (delivery mode, level, vector).
pub fn send_ipi(dest: u32, command: u32) {
    // Interrupts off: a handler on this CPU that sends an IPI between the two xAPIC writes
    // would change the destination under us.
    x86_64::instructions::interrupts::without_interrupts(|| {
        if X2APIC.load(Ordering::Relaxed) {
            // SAFETY: the x2APIC ICR; one write sends the IPI the caller asked for.
            unsafe { Msr::new(MSR_X2APIC_ICR).write((u64::from(dest) << 32) | u64::from(command)) };
        } else {
            wait_for_delivery();
            write(REG_ICR_HIGH, dest << 24);
            write(REG_ICR_LOW, command);
            wait_for_delivery();
        }
    });
}

/// Waits (boundedly) until the xAPIC has sent the last IPI: older APICs lose a command written
/// while the previous one is pending.
fn wait_for_delivery() {
    for _ in 0..1_000_000 {
        if read(REG_ICR_LOW) & ICR_PENDING == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// The MSI message that raises `vector` on the CPU whose local APIC id is `id` (fixed delivery,
/// edge, physical destination: Intel SDM vol. 3, 11.11). None for ids above 255, which the
/// message's 8-bit destination field cannot name (they need interrupt remapping).
pub fn msi_message(id: u32, vector: u8) -> Option<drivers::pci::MsiMessage> {
    let id = u8::try_from(id).ok()?;
    Some(drivers::pci::MsiMessage { address: 0xfee0_0000 | (u64::from(id) << 12), data: u32::from(vector) })
}
