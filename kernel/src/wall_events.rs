//! What costs wall-clock time under TCG (and on hardware) but does not show in instruction
//! counts: address-space switches (CR3 writes), single-page TLB invalidations (INVLPG; `tlbi`
//! by address on aarch64), PKRU writes, and page faults taken, by ring. QEMU's TCG flushes its
//! software TLB on each of the first three, and every first touch of a page is a guest fault.
//! Beside them the device exits a request's hand-offs cost: writes of the timer (the APIC
//! timer's count, CNTV on aarch64: each leaves translated code, takes QEMU's big lock and moves
//! a QEMU timer, ~12 µs measured), wake-up interrupts sent to another CPU, and device interrupts
//! taken (the NIC's receive queue ending the I/O core's sleep).
//!
//! Counted where they happen (the arch's paging and trap code, the native engines' entry and
//! exit), each a relaxed increment of this CPU's own counter; `/metrics` shows them per CPU and
//! `cargo xtask bench e2e` per request.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{Export, Exposition, Kind};
use crate::smp::MAX_CPUS;

/// One kind of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Cr3Write = 0,
    TlbInvalidation = 1,
    PkruWrite = 2,
    UserPageFault = 3,
    KernelPageFault = 4,
    TimerWrite = 5,
    WakeIpi = 6,
    DeviceInterrupt = 7,
}

const EVENTS: usize = 8;

/// One CPU's counters, on a cache line of their own (no CPU writes another's).
#[repr(align(64))]
struct PerCpu([AtomicU64; EVENTS]);

static COUNTS: [PerCpu; MAX_CPUS] = [const { PerCpu([const { AtomicU64::new(0) }; EVENTS]) }; MAX_CPUS];

/// Counts one `event` on this CPU. Before the boot CPU's per-CPU block is loaded only the boot
/// CPU runs, so its events go to CPU 0.
#[inline]
pub fn count(event: Event) {
    let cpu = crate::arch::cpu_index_if_ready().unwrap_or(0);
    if let Some(counters) = COUNTS.get(cpu) {
        counters.0[event as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU `cpu`'s count of `event` so far.
pub fn get(cpu: usize, event: Event) -> u64 {
    COUNTS.get(cpu).map_or(0, |c| c.0[event as usize].load(Ordering::Relaxed))
}

/// The `/metrics` families, one sample per online CPU.
pub struct WallEvents;

impl Export for WallEvents {
    fn export(&self, out: &mut Exposition) {
        let cpus = crate::arch::cpu_count().clamp(1, MAX_CPUS);
        for (name, help, event) in [
            (
                "pappus_cr3_writes_total",
                "Address-space switches (CR3 writes; none on aarch64), by CPU. Each flushes QEMU's software TLB under TCG.",
                Event::Cr3Write,
            ),
            (
                "pappus_tlb_invalidations_total",
                "Single-page TLB invalidations (INVLPG, or TLBI by address on aarch64), by CPU.",
                Event::TlbInvalidation,
            ),
            ("pappus_pkru_writes_total", "PKRU writes (WRPKRU; none on aarch64), by CPU.", Event::PkruWrite),
            (
                "pappus_timer_writes_total",
                "Writes that arm or stop the CPU's timer (APIC timer count, CNTV on aarch64), by CPU.",
                Event::TimerWrite,
            ),
            ("pappus_wake_ipis_total", "Wake-up interrupts sent to another CPU (IPI, SGI), by sender.", Event::WakeIpi),
            (
                "pappus_device_interrupts_total",
                "Device interrupts taken (the NIC's receive queue ending the I/O core's sleep), by CPU.",
                Event::DeviceInterrupt,
            ),
        ] {
            out.family(name, help, Kind::Counter);
            for cpu in 0..cpus {
                out.sample(name, &label(cpu, None), get(cpu, event));
            }
        }
        let name = "pappus_page_faults_total";
        out.family(name, "Page faults taken (x86_64 #PF), by CPU and by the ring that faulted.", Kind::Counter);
        for cpu in 0..cpus {
            out.sample(name, &label(cpu, Some("user")), get(cpu, Event::UserPageFault));
            out.sample(name, &label(cpu, Some("kernel")), get(cpu, Event::KernelPageFault));
        }
    }
}

/// `cpu="N"` or `cpu="N",ring="R"`, without allocating more than the one string.
fn label(cpu: usize, ring: Option<&str>) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    let _ = write!(s, "cpu=\"{cpu}\"");
    if let Some(ring) = ring {
        let _ = write!(s, ",ring=\"{ring}\"");
    }
    s
}
