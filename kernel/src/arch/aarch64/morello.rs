//! Arm Morello (CHERI) at EL1, in hybrid mode: the kernel stays ordinary A64 code, and
//! capabilities come in where they confine. This module is the one place that executes
//! Morello's capability instructions; each is a named `.inst` word of `cheri::insn`, whose
//! encodings were checked against the emulator's disassembler (and are again by the QEMU suite
//! `morello`).
//!
//! - Detection: ID_AA64PFR1_EL1.CE (bits 23:20) is non-zero on a Morello CPU; anything else
//!   (`-cpu max`, real Armv8/9 parts) leaves every capability path off, and the same kernel
//!   runs as plain aarch64.
//! - Per CPU, before Rust code runs ([`morello_cpu_init`], called by the boot CPU's entry and by
//!   each secondary's): CPACR_EL1.CEN = 0b11 (capability instructions and registers usable at
//!   EL1 and EL0), then CVBAR_EL1 = the root capability (DDC as reset leaves it) with the vector
//!   table's address. Once CEN is on, exceptions are entered through CVBAR as a capability; a
//!   64-bit VBAR_EL1 alone would leave an untagged PCC (a tag fault on the first vector fetch,
//!   and the next, forever). Exception return restores PCC from CELR_EL1, which exception entry
//!   filled with the whole PCC. A 64-bit `msr elr_el1` would make CELR_EL1 untagged (the
//!   emulator nulls the rest of a capability register written through its X view), so the
//!   trap return path sets the return address through `morello_set_elr`, which keeps the
//!   saved capability and changes its value.
//! - Capability faults are decoded by `cheri::fault` in the trap report (`traps::report`).
//! - Helpers the `cheri` engine will use, tested here at EL1 by the self-tests: deriving a
//!   bounded capability with fewer permissions from the root ([`derive`]), and clearing every
//!   capability register (the `.irp` of `mov xN, xzr` in morello.S, proved by [`clear_probe`]).

use core::arch::{asm, global_asm};

use aarch64_cpu::registers::{CPACR_EL1, ID_AA64PFR1_EL1, Readable};
use cheri::insn::*;

/// Whether this CPU implements Morello's capabilities.
pub fn present() -> bool {
    (ID_AA64PFR1_EL1.get() >> 20) & 0xf != 0
}

/// Whether CPACR_EL1.CEN lets EL1 and EL0 use capabilities (set by [`morello_cpu_init`]).
pub fn enabled() -> bool {
    (CPACR_EL1.get() >> 18) & 3 == 3
}

global_asm!(
    include_str!("morello.S"),
    mrs_c2_ddc = const MRS_C2_DDC,
    scvalue_c2_c2_x1 = const SCVALUE_C2_C2_X1,
    msr_cvbar_el1_c2 = const MSR_CVBAR_EL1_C2,
    mrs_c9_ddc = const MRS_C9_DDC,
    mrs_c2_celr_el1 = const MRS_C2_CELR_EL1,
    msr_celr_el1_c2 = const MSR_CELR_EL1_C2,
    scvalue_c9_c9_x0 = const SCVALUE_C9_C9_X0,
    scbndse_c9_c9_x1 = const SCBNDSE_C9_C9_X1,
    clrperm_c9_c9_x2 = const CLRPERM_C9_C9_X2,
    clrtag_c9_c9 = const CLRTAG_C9_C9,
    seal_c9_c9_rb = const SEAL_C9_C9_RB,
    ldrb_w0_c9 = const LDRB_W0_C9,
    strb_w0_c9 = const STRB_W0_C9,
    cpy_c0_c2 = const CPY_C0_C2,
    gctag_x1_c0 = const GCTAG_X1_C0,
    scvalue_c2_c2_x3 = const SCVALUE_C2_C2_X3,
    scbndse_c2_c2_x4 = const SCBNDSE_C2_C2_X4,
    clrperm_c2_c2_x5 = const CLRPERM_C2_C2_X5,
    scvalue_c2_c2_x6 = const SCVALUE_C2_C2_X6,
    msr_rddc_el0_c2 = const MSR_RDDC_EL0_C2,
    msr_rsp_el0_c2 = const MSR_RSP_EL0_C2,
    cheri = const super::usermode::REGS_CHERI,
    sp_off = const super::usermode::REGS_SP,
    tpidr = const super::usermode::REGS_TPIDR,
    code_clear_lo = const CODE_CLEAR & 0xffff,
    code_clear_hi = const CODE_CLEAR >> 16,
    data_clear_lo = const DATA_CLEAR & 0xffff,
    data_clear_hi = const DATA_CLEAR >> 16,
);

/// The permissions the entry clears from a `cheri` sandbox's PCC and DDC (`cheri::perms`).
const CODE_CLEAR: u64 = cheri::perms::ALL & !cheri::perms::SANDBOX_CODE;
const DATA_CLEAR: u64 = cheri::perms::ALL & !cheri::perms::SANDBOX_DATA;
const _: () = assert!(CODE_CLEAR >> 32 == 0 && DATA_CLEAR >> 32 == 0);

unsafe extern "C" {
    // `morello_cpu_init` is called from the entry code only (boot.rs, smp.rs).
    pub fn morello_probe_load(base: u64, len: u64, clear_perms: u64, offset: u64, mode: u64) -> u64;
    pub fn morello_probe_store(base: u64, len: u64, clear_perms: u64, offset: u64, mode: u64) -> u64;
    pub fn morello_probe_mrs();
    pub fn morello_clear_probe(clear: u64) -> u64;
    pub static morello_probe_load_insn: u8;
    pub static morello_probe_load_resume: u8;
    pub static morello_probe_store_insn: u8;
    pub static morello_probe_store_resume: u8;
    pub static morello_probe_mrs_insn: u8;
    pub static morello_probe_mrs_resume: u8;
}

/// Probe modes ([`morello_probe_load`]'s x4).
pub const PROBE_CLEAR_TAG: u64 = 1;
pub const PROBE_SEAL: u64 = 2;

/// A capability's fields as the `gc*` instructions read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapInfo {
    pub tag: bool,
    pub base: u64,
    pub len: u64,
    pub value: u64,
    pub perms: u64,
    pub sealed: bool,
}

impl core::fmt::Display for CapInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} {}[{:#x}, +{:#x}) value {:#x} perms {:#x}",
            if self.tag { "tagged" } else { "UNTAGGED" },
            if self.sealed { "sealed " } else { "" },
            self.base,
            self.len,
            self.value,
            self.perms
        )
    }
}

/// Why [`derive`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeriveError {
    /// Capabilities are not enabled on this CPU (not a Morello CPU).
    NotMorello,
    /// The bounds are not exactly representable (Morello compresses bounds: a long region needs
    /// an aligned base and length), so `scbndse` cleared the tag.
    NotRepresentable,
    /// The result came out sealed (never from an unsealed root; checked all the same).
    Sealed,
}

/// Reads c9's fields (the inline sequences below end with it).
macro_rules! describe_c9 {
    () => {
        ".inst {gctag}\n.inst {gcbase}\n.inst {gclen}\n.inst {gcvalue}\n.inst {gcperm}\n.inst {gcseal}\nmov x9, xzr"
    };
}

/// DDC as this CPU holds it (the root capability, as reset leaves it).
pub fn ddc() -> Option<CapInfo> {
    if !enabled() {
        return None;
    }
    let (tag, base, len, value, perms, sealed): (u64, u64, u64, u64, u64, u64);
    // SAFETY: capabilities are enabled (CEN), so the words execute; they read DDC into c9 and
    // its fields into x0..x5, then clear x9 (and so c9's tag). No memory is touched.
    unsafe {
        asm!(
            ".inst {mrs}", describe_c9!(),
            mrs = const MRS_C9_DDC,
            gctag = const GCTAG_X0_C9, gcbase = const GCBASE_X1_C9, gclen = const GCLEN_X2_C9,
            gcvalue = const GCVALUE_X3_C9, gcperm = const GCPERM_X4_C9, gcseal = const GCSEAL_X5_C9,
            out("x0") tag, out("x1") base, out("x2") len, out("x3") value, out("x4") perms, out("x5") sealed,
            out("x9") _, options(nomem, nostack, preserves_flags)
        );
    }
    Some(CapInfo { tag: tag != 0, base, len, value, perms, sealed: sealed != 0 })
}

/// CVBAR_EL1 as installed by [`morello_cpu_init`].
pub fn cvbar() -> Option<CapInfo> {
    if !enabled() {
        return None;
    }
    let (tag, base, len, value, perms, sealed): (u64, u64, u64, u64, u64, u64);
    // SAFETY: as in [`ddc`], reading CVBAR_EL1 (an EL1 register; the kernel runs at EL1).
    unsafe {
        asm!(
            ".inst {mrs}", describe_c9!(),
            mrs = const MRS_C9_CVBAR_EL1,
            gctag = const GCTAG_X0_C9, gcbase = const GCBASE_X1_C9, gclen = const GCLEN_X2_C9,
            gcvalue = const GCVALUE_X3_C9, gcperm = const GCPERM_X4_C9, gcseal = const GCSEAL_X5_C9,
            out("x0") tag, out("x1") base, out("x2") len, out("x3") value, out("x4") perms, out("x5") sealed,
            out("x9") _, options(nomem, nostack, preserves_flags)
        );
    }
    Some(CapInfo { tag: tag != 0, base, len, value, perms, sealed: sealed != 0 })
}

/// Derives from the root (DDC) a capability for `[base, base + len)` without the permissions
/// in `clear_perms` (`cheri::perms`), exact bounds, and checks it: tagged (else the bounds were
/// not representable) and unsealed. What the `cheri` engine will do for a sandbox's PCC, DDC
/// and read-only block; here it returns the fields (the capability itself is cleared before
/// returning: the kernel keeps none lying in registers).
pub fn derive(base: u64, len: u64, clear_perms: u64) -> Result<CapInfo, DeriveError> {
    if !enabled() {
        return Err(DeriveError::NotMorello);
    }
    let (tag, cbase, clen, value, perms, sealed): (u64, u64, u64, u64, u64, u64);
    // SAFETY: capabilities are enabled; the words derive c9 from DDC and read its fields into
    // x0..x5 (each input is read before its register is written), then clear x9. No memory.
    unsafe {
        asm!(
            ".inst {mrs}", ".inst {scvalue}", ".inst {scbndse}", ".inst {clrperm}", describe_c9!(),
            mrs = const MRS_C9_DDC, scvalue = const SCVALUE_C9_C9_X0, scbndse = const SCBNDSE_C9_C9_X1,
            clrperm = const CLRPERM_C9_C9_X2,
            gctag = const GCTAG_X0_C9, gcbase = const GCBASE_X1_C9, gclen = const GCLEN_X2_C9,
            gcvalue = const GCVALUE_X3_C9, gcperm = const GCPERM_X4_C9, gcseal = const GCSEAL_X5_C9,
            inout("x0") base => tag, inout("x1") len => cbase, inout("x2") clear_perms => clen,
            out("x3") value, out("x4") perms, out("x5") sealed,
            out("x9") _, options(nomem, nostack, preserves_flags)
        );
    }
    let info = CapInfo { tag: tag != 0, base: cbase, len: clen, value, perms, sealed: sealed != 0 };
    if !info.tag {
        return Err(DeriveError::NotRepresentable);
    }
    if info.sealed {
        return Err(DeriveError::Sealed);
    }
    Ok(info)
}

/// Runs [`morello_clear_probe`]: the mask of c2..c30 still tagged, after filling them with
/// tagged capabilities and (when `clear`) clearing every capability register.
pub fn clear_probe(clear: bool) -> Option<u64> {
    if !enabled() {
        return None;
    }
    // SAFETY: capabilities are enabled; the probe saves and restores every callee-saved
    // register it overwrites and leaves x0..x18 as a call may, touching only its stack frame.
    Some(unsafe { morello_clear_probe(clear as u64) })
}

/// Clears every capability tag in `[base, base + len)` (16-byte aligned) by writing zeros with
/// ordinary stores: any data store to a 16-byte granule clears its tag. What the engine does to
/// each frame before a sandbox may reach it, so that no capability the kernel did not place
/// there survives from an earlier user of the frame.
///
/// # Safety
/// The range must be mapped, writable kernel memory that nothing else uses meanwhile.
pub unsafe fn clear_tags(base: u64, len: u64) {
    assert!(base.is_multiple_of(16) && len.is_multiple_of(16), "clear_tags: unaligned range");
    // SAFETY: the caller owns the writable range; the loop writes only inside it, 16 bytes a
    // step, and touches no other memory or register than its operands.
    unsafe {
        asm!(
            "2: cbz {len}, 3f",
            "stp xzr, xzr, [{p}], #16",
            "sub {len}, {len}, #16",
            "b 2b",
            "3:",
            p = inout(reg) base => _,
            len = inout(reg) len => _,
            options(nostack)
        );
    }
}

/// How many 16-byte granules of `[base, base + len)` hold a tagged capability (loading each as
/// a capability through DDC; the pages must allow capability loads, as kernel data does on
/// Morello). `None` where capabilities are off.
pub fn tags_in(base: u64, len: u64) -> Option<u64> {
    if !enabled() {
        return None;
    }
    let mut count = 0;
    let mut at = base;
    while at + 16 <= base + len {
        let tag: u64;
        // SAFETY: capabilities are enabled; the word loads the 16-byte granule at `at` (mapped
        // kernel memory, per the caller) into c9, reads its tag and clears x9. No store.
        unsafe {
            asm!(
                ".inst {ldr}", ".inst {gctag}", "mov x9, xzr",
                ldr = const LDR_C9_X3, gctag = const GCTAG_X0_C9,
                in("x3") at, out("x0") tag, out("x9") _, options(readonly, nostack, preserves_flags)
            );
        }
        count += tag;
        at += 16;
    }
    Some(count)
}

/// Stores at `at` (16-byte aligned, mapped kernel data) a tagged capability derived from the
/// root and bounded to its own 16 bytes: test data for [`clear_tags`] and [`tags_in`].
///
/// # Safety
/// `at` must be 16 writable bytes that nothing else uses meanwhile.
pub unsafe fn store_capability(at: u64) -> Result<(), DeriveError> {
    if !enabled() {
        return Err(DeriveError::NotMorello);
    }
    // SAFETY: capabilities are enabled; the words derive c9 (value and bounds [at, at + 16))
    // from DDC and store it at `at`, which the caller owns; x9 is cleared after.
    unsafe {
        asm!(
            ".inst {mrs}", ".inst {scvalue}", ".inst {scbndse}", ".inst {str}", "mov x9, xzr",
            mrs = const MRS_C9_DDC, scvalue = const SCVALUE_C9_C9_X0, scbndse = const SCBNDSE_C9_C9_X1,
            str = const STR_C9_X3,
            in("x0") at, in("x1") 16u64, in("x3") at, out("x9") _, options(nostack, preserves_flags)
        );
    }
    Ok(())
}
