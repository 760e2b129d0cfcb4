//! CPU feature detection (CPUID).

use core::arch::x86_64::{__cpuid, __cpuid_count, CpuidResult};

/// CPUID leaf `eax`, subleaf `ecx`: the kernel's one way to ask.
pub fn leaf(eax: u32, ecx: u32) -> CpuidResult {
    // SAFETY: CPUID exists on every x86_64 CPU and has no side effects.
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid_count(eax, ecx)
    }
}

fn max_leaf() -> u32 {
    // SAFETY: as above.
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid(0).eax
    }
}

fn leaf7_ebx(bit: u32) -> bool {
    max_leaf() >= 7 && leaf(7, 0).ebx & (1 << bit) != 0
}

pub fn has_smep() -> bool {
    leaf7_ebx(7)
}

pub fn has_smap() -> bool {
    leaf7_ebx(20)
}

pub fn has_pku() -> bool {
    max_leaf() >= 7 && leaf(7, 0).ecx & (1 << 3) != 0
}

/// User-mode instruction prevention (CR4.UMIP: SGDT/SIDT/SLDT/SMSW/STR fault in ring 3).
pub fn has_umip() -> bool {
    max_leaf() >= 7 && leaf(7, 0).ecx & (1 << 2) != 0
}

pub fn has_x2apic() -> bool {
    leaf(1, 0).ecx & (1 << 21) != 0
}

pub fn in_hypervisor() -> bool {
    leaf(1, 0).ecx & (1 << 31) != 0
}

/// The TSC frequency the CPU reports, if it does: leaf 0x15 (crystal ratio), leaf 0x16 (base
/// MHz), or the hypervisor's timing leaf 0x40000010 (KVM, VMware).
pub fn reported_tsc_hz() -> Option<(u64, &'static str)> {
    let max = max_leaf();
    if max >= 0x15 {
        let l = leaf(0x15, 0);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some((u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax), "CPUID 0x15"));
        }
    }
    if max >= 0x16 {
        let mhz = leaf(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            return Some((u64::from(mhz) * 1_000_000, "CPUID 0x16"));
        }
    }
    if in_hypervisor() && leaf(0x4000_0000, 0).eax >= 0x4000_0010 {
        let khz = leaf(0x4000_0010, 0).eax;
        if khz != 0 {
            return Some((u64::from(khz) * 1000, "hypervisor CPUID 0x40000010"));
        }
    }
    None
}

/// The CPU vendor string (CPUID 0: "GenuineIntel", "AuthenticAMD", …).
fn vendor() -> [u8; 12] {
    let l = leaf(0, 0);
    let mut v = [0; 12];
    v[..4].copy_from_slice(&l.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&l.edx.to_le_bytes());
    v[8..].copy_from_slice(&l.ecx.to_le_bytes());
    v
}

/// The display family (CPUID 1: base family, plus the extended family when the base is 0xf).
fn family() -> u32 {
    let eax = leaf(1, 0).eax;
    let base = (eax >> 8) & 0xf;
    if base == 0xf { base + ((eax >> 20) & 0xff) } else { base }
}

/// Whether starting an application processor must wait 10 ms between INIT and STARTUP, as the
/// MP specification asks of older CPUs. Like Linux (`smp_quirk_init_udelay`), modern Intel
/// (family 6 and up) and AMD/Hygon (family 0xf and up) CPUs, and virtual CPUs, do not need it.
pub fn init_ipi_needs_delay() -> bool {
    let modern = match &vendor() {
        b"GenuineIntel" => family() >= 6,
        b"AuthenticAMD" | b"HygonGenuine" => family() >= 0xf,
        _ => false,
    };
    !(modern || in_hypervisor())
}
