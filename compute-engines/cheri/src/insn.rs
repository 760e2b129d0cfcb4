//! Morello instruction words for `.inst`: stable Rust's assembler knows no Morello, so every
//! capability instruction the kernel executes is one of the named words below, built by the
//! encoders from the field layouts of the emulator's decoder (target/arm/cheri.decode in
//! CTSRD-CHERI/qemu, branch qemu-cheri). Each named word was run through that emulator with
//! `-d in_asm`, and its disassembly is [`Named::disasm`]; the QEMU suite `morello`
//! (`instruction_words_match_the_disassembler`) repeats that check on every run, families
//! included.
//!
//! Register choice: the kernel uses c9 (and x0..x5 for results) in its inline sequences, c2 in
//! the early per-CPU set-up (before Rust runs), and every register in the register-clearing
//! probe. Writing x<n> clears the tag of c<n>, so a plain `mov x<n>, xzr` clears a capability
//! register; that needs no special word.

/// A system register's operand fields (op0 = 2 or 3, op1, CRn, CRm, op2) as MRS/MSR encode them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysReg {
    pub name: &'static str,
    bits: u32,
}

const fn sysreg(name: &'static str, op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> SysReg {
    SysReg { name, bits: ((op0 & 1) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) }
}

/// The default data capability: what hybrid-mode loads and stores are checked against.
pub const DDC: SysReg = sysreg("DDC", 3, 3, 4, 1, 1);
/// The vector base, as a capability (the emulator prints it `S3_0_c12_c0_0`).
pub const CVBAR_EL1: SysReg = sysreg("CVBAR_EL1", 3, 0, 12, 0, 0);
/// The exception link register, as a capability (`S3_0_c4_c0_1`).
pub const CELR_EL1: SysReg = sysreg("CELR_EL1", 3, 0, 4, 0, 1);
/// Restricted-mode DDC at EL0 (what a sandbox without the Executive permission sees as DDC).
pub const RDDC_EL0: SysReg = sysreg("RDDC_EL0", 3, 3, 4, 3, 1);
/// RCSP_EL0 (the fork names it RSP_EL0): the stack pointer of EL0's Restricted bank.
pub const RSP_EL0: SysReg = sysreg("RSP_EL0", 3, 7, 4, 1, 3);

/// The capability fields `gc*` reads into an X register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Base = 0,
    Len = 1,
    Value = 2,
    Offset = 3,
    Tag = 4,
    Sealed = 5,
    Perm = 6,
    Type = 7,
}

const fn reg(n: u32) -> u32 {
    assert!(n < 32);
    n
}

/// `mrs c<ct>, <sysreg>`
pub const fn mrs(ct: u32, r: SysReg) -> u32 {
    0xc290_0000 | r.bits | reg(ct)
}
/// `msr <sysreg>, c<ct>`
pub const fn msr(r: SysReg, ct: u32) -> u32 {
    0xc280_0000 | r.bits | reg(ct)
}
/// `gc<field> x<rd>, c<cn>`
pub const fn gc(field: Field, rd: u32, cn: u32) -> u32 {
    0xc2c0_1000 | ((field as u32) << 13) | (reg(cn) << 5) | reg(rd)
}
/// `scvalue c<cd>, c<cn>, x<rm>`: the value (address) set; the tag clears if the new value
/// is outside the capability's representable range.
pub const fn scvalue(cd: u32, cn: u32, rm: u32) -> u32 {
    0xc2c0_4000 | (reg(rm) << 16) | (reg(cn) << 5) | reg(cd)
}
/// `scbnds c<cd>, c<cn>, x<rm>`: bounds from the value, x<rm> bytes long, rounded outwards
/// when not representable.
pub const fn scbnds(cd: u32, cn: u32, rm: u32) -> u32 {
    0xc2c0_0000 | (reg(rm) << 16) | (reg(cn) << 5) | reg(cd)
}
/// `scbndse c<cd>, c<cn>, x<rm>`: exact bounds, or the tag clears.
pub const fn scbndse(cd: u32, cn: u32, rm: u32) -> u32 {
    0xc2c0_2000 | (reg(rm) << 16) | (reg(cn) << 5) | reg(cd)
}
/// `clrperm c<cd>, c<cn>, x<rm>`: the permissions set in x<rm> cleared (never added).
pub const fn clrperm(cd: u32, cn: u32, rm: u32) -> u32 {
    0xc2c0_a000 | (reg(rm) << 16) | (reg(cn) << 5) | reg(cd)
}
/// `clrtag c<cd>, c<cn>`
pub const fn clrtag(cd: u32, cn: u32) -> u32 {
    0xc2c1_9000 | (reg(cn) << 5) | reg(cd)
}
/// `mov c<cd>, c<cn>` (the architecture's CPY)
pub const fn cpy(cd: u32, cn: u32) -> u32 {
    0xc2c1_d000 | (reg(cn) << 5) | reg(cd)
}
/// `seal c<cd>, c<cn>, rb`: sealed as a sentry (object type 1).
pub const fn seal_sentry(cd: u32, cn: u32) -> u32 {
    0xc2c3_3000 | (reg(cn) << 5) | reg(cd)
}
/// `ldrb w<rt>, [c<cn>]` (ALDRB: alternate base, checked against c<cn> in A64 state)
pub const fn ldrb_alt(rt: u32, cn: u32) -> u32 {
    0x8260_0400 | (reg(cn) << 5) | reg(rt)
}
/// `strb w<rt>, [c<cn>]` (ASTRB)
pub const fn strb_alt(rt: u32, cn: u32) -> u32 {
    0x8240_0400 | (reg(cn) << 5) | reg(rt)
}
/// `str c<ct>, [x<rn>]`: a capability store (checked against DDC in A64 state; the page must
/// allow capability stores).
pub const fn str_cap(ct: u32, rn: u32) -> u32 {
    0xc200_0000 | (reg(rn) << 5) | reg(ct)
}
/// `ldr c<ct>, [x<rn>]`
pub const fn ldr_cap(ct: u32, rn: u32) -> u32 {
    0xc240_0000 | (reg(rn) << 5) | reg(ct)
}

/// One named word, with the emulator's disassembly of it.
#[derive(Clone, Copy, Debug)]
pub struct Named {
    pub name: &'static str,
    pub word: u32,
    pub disasm: &'static str,
}

pub const MRS_C2_DDC: u32 = mrs(2, DDC);
pub const SCVALUE_C2_C2_X1: u32 = scvalue(2, 2, 1);
pub const MSR_CVBAR_EL1_C2: u32 = msr(CVBAR_EL1, 2);
pub const MRS_C2_CELR_EL1: u32 = mrs(2, CELR_EL1);
pub const MSR_CELR_EL1_C2: u32 = msr(CELR_EL1, 2);
pub const MRS_C9_DDC: u32 = mrs(9, DDC);
pub const MRS_C9_CVBAR_EL1: u32 = mrs(9, CVBAR_EL1);
pub const GCTAG_X0_C9: u32 = gc(Field::Tag, 0, 9);
pub const GCBASE_X1_C9: u32 = gc(Field::Base, 1, 9);
pub const GCLEN_X2_C9: u32 = gc(Field::Len, 2, 9);
pub const GCVALUE_X3_C9: u32 = gc(Field::Value, 3, 9);
pub const GCPERM_X4_C9: u32 = gc(Field::Perm, 4, 9);
pub const GCSEAL_X5_C9: u32 = gc(Field::Sealed, 5, 9);
pub const SCVALUE_C9_C9_X0: u32 = scvalue(9, 9, 0);
pub const SCBNDSE_C9_C9_X1: u32 = scbndse(9, 9, 1);
pub const CLRPERM_C9_C9_X2: u32 = clrperm(9, 9, 2);
pub const CLRTAG_C9_C9: u32 = clrtag(9, 9);
pub const SEAL_C9_C9_RB: u32 = seal_sentry(9, 9);
pub const LDRB_W0_C9: u32 = ldrb_alt(0, 9);
pub const STRB_W0_C9: u32 = strb_alt(0, 9);
pub const STR_C9_X3: u32 = str_cap(9, 3);
pub const LDR_C9_X3: u32 = ldr_cap(9, 3);
/// Families the register-clearing probe uses for every n (c2 is the source of the copies).
pub const CPY_C0_C2: u32 = cpy(0, 2);
pub const GCTAG_X1_C0: u32 = gc(Field::Tag, 1, 0);
// The `cheri` engine's EL0 entry (`morello_set_user_caps`): c2 derived from the root for the
// sandbox's PCC (base x3, length x4, permissions x5 cleared, value x6 = the entry point) and
// its DDC (installed in RDDC_EL0, the Restricted bank a PCC without Executive runs with).
pub const SCVALUE_C2_C2_X3: u32 = scvalue(2, 2, 3);
pub const SCBNDSE_C2_C2_X4: u32 = scbndse(2, 2, 4);
pub const CLRPERM_C2_C2_X5: u32 = clrperm(2, 2, 5);
pub const SCVALUE_C2_C2_X6: u32 = scvalue(2, 2, 6);
pub const MSR_RDDC_EL0_C2: u32 = msr(RDDC_EL0, 2);
pub const MRS_C2_RDDC_EL0: u32 = mrs(2, RDDC_EL0);
pub const MSR_RSP_EL0_C2: u32 = msr(RSP_EL0, 2);
// The `cheri` hostile cases (tests/native-hostile/hostile.rs, at EL0): widening bounds, a
// system register written from EL0, an integer used as a capability.
pub const MRS_C0_DDC: u32 = mrs(0, DDC);
pub const SCBNDS_C0_C0_X1: u32 = scbnds(0, 0, 1);
pub const LDRB_W2_C0: u32 = ldrb_alt(2, 0);
pub const LDRB_W2_C1: u32 = ldrb_alt(2, 1);
pub const MSR_CVBAR_EL1_C0: u32 = msr(CVBAR_EL1, 0);
// More hostile cases: DDC rewritten with an integer, a sealed (sentry) capability used for data.
pub const MSR_DDC_C1: u32 = msr(DDC, 1);
pub const SEAL_C0_C0_RB: u32 = seal_sentry(0, 0);

/// Every word the kernel executes, named, with what the emulator's disassembler prints.
pub const NAMED: &[Named] = &[
    Named { name: "MRS_C2_DDC", word: MRS_C2_DDC, disasm: "mrs c2, ddc" },
    Named { name: "SCVALUE_C2_C2_X1", word: SCVALUE_C2_C2_X1, disasm: "scvalue c2, c2, x1" },
    Named { name: "MSR_CVBAR_EL1_C2", word: MSR_CVBAR_EL1_C2, disasm: "msr S3_0_c12_c0_0, c2" },
    Named { name: "MRS_C2_CELR_EL1", word: MRS_C2_CELR_EL1, disasm: "mrs c2, S3_0_c4_c0_1" },
    Named { name: "MSR_CELR_EL1_C2", word: MSR_CELR_EL1_C2, disasm: "msr S3_0_c4_c0_1, c2" },
    Named { name: "MRS_C9_DDC", word: MRS_C9_DDC, disasm: "mrs c9, ddc" },
    Named { name: "MRS_C9_CVBAR_EL1", word: MRS_C9_CVBAR_EL1, disasm: "mrs c9, S3_0_c12_c0_0" },
    Named { name: "GCTAG_X0_C9", word: GCTAG_X0_C9, disasm: "gctag x0, c9" },
    Named { name: "GCBASE_X1_C9", word: GCBASE_X1_C9, disasm: "gcbase x1, c9" },
    Named { name: "GCLEN_X2_C9", word: GCLEN_X2_C9, disasm: "gclen x2, c9" },
    Named { name: "GCVALUE_X3_C9", word: GCVALUE_X3_C9, disasm: "gcvalue x3, c9" },
    Named { name: "GCPERM_X4_C9", word: GCPERM_X4_C9, disasm: "gcperm x4, c9" },
    Named { name: "GCSEAL_X5_C9", word: GCSEAL_X5_C9, disasm: "gcseal x5, c9" },
    Named { name: "SCVALUE_C9_C9_X0", word: SCVALUE_C9_C9_X0, disasm: "scvalue c9, c9, x0" },
    Named { name: "SCBNDSE_C9_C9_X1", word: SCBNDSE_C9_C9_X1, disasm: "scbndse c9, c9, x1" },
    Named { name: "CLRPERM_C9_C9_X2", word: CLRPERM_C9_C9_X2, disasm: "clrperm c9, c9, x2" },
    Named { name: "CLRTAG_C9_C9", word: CLRTAG_C9_C9, disasm: "clrtag c9, c9" },
    Named { name: "SEAL_C9_C9_RB", word: SEAL_C9_C9_RB, disasm: "seal c9, c9, rb" },
    Named { name: "LDRB_W0_C9", word: LDRB_W0_C9, disasm: "ldrb w0, [c9]" },
    Named { name: "STRB_W0_C9", word: STRB_W0_C9, disasm: "strb w0, [c9]" },
    Named { name: "STR_C9_X3", word: STR_C9_X3, disasm: "str c9, [x3]" },
    Named { name: "LDR_C9_X3", word: LDR_C9_X3, disasm: "ldr c9, [x3]" },
    Named { name: "CPY_C0_C2", word: CPY_C0_C2, disasm: "mov c0, c2" },
    Named { name: "GCTAG_X1_C0", word: GCTAG_X1_C0, disasm: "gctag x1, c0" },
    Named { name: "SCVALUE_C2_C2_X3", word: SCVALUE_C2_C2_X3, disasm: "scvalue c2, c2, x3" },
    Named { name: "SCBNDSE_C2_C2_X4", word: SCBNDSE_C2_C2_X4, disasm: "scbndse c2, c2, x4" },
    Named { name: "CLRPERM_C2_C2_X5", word: CLRPERM_C2_C2_X5, disasm: "clrperm c2, c2, x5" },
    Named { name: "SCVALUE_C2_C2_X6", word: SCVALUE_C2_C2_X6, disasm: "scvalue c2, c2, x6" },
    Named { name: "MSR_RDDC_EL0_C2", word: MSR_RDDC_EL0_C2, disasm: "msr rddc_el0, c2" },
    Named { name: "MRS_C2_RDDC_EL0", word: MRS_C2_RDDC_EL0, disasm: "mrs c2, rddc_el0" },
    Named { name: "MSR_RSP_EL0_C2", word: MSR_RSP_EL0_C2, disasm: "msr rcsp_el0, c2" },
    Named { name: "MRS_C0_DDC", word: MRS_C0_DDC, disasm: "mrs c0, ddc" },
    Named { name: "SCBNDS_C0_C0_X1", word: SCBNDS_C0_C0_X1, disasm: "scbnds c0, c0, x1" },
    Named { name: "LDRB_W2_C0", word: LDRB_W2_C0, disasm: "ldrb w2, [c0]" },
    Named { name: "MSR_DDC_C1", word: MSR_DDC_C1, disasm: "msr ddc, c1" },
    Named { name: "SEAL_C0_C0_RB", word: SEAL_C0_C0_RB, disasm: "seal c0, c0, rb" },
    Named { name: "LDRB_W2_C1", word: LDRB_W2_C1, disasm: "ldrb w2, [c1]" },
    Named { name: "MSR_CVBAR_EL1_C0", word: MSR_CVBAR_EL1_C0, disasm: "msr S3_0_c12_c0_0, c0" },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Words read off the emulator's `-d in_asm` (qemu-system-morello at 6fc0bf7754, see
    /// ../shared/tools/morello/README.md), some also in PLATFORM-NOTES.md: the encoders must
    /// keep producing them.
    #[test]
    fn encoders_give_the_words_the_disassembler_named() {
        let seen: &[(u32, u32)] = &[
            (mrs(20, DDC), 0xc29b_4134),
            (msr(DDC, 21), 0xc28b_4135),
            (gc(Field::Len, 5, 20), 0xc2c0_3285),
            (msr(CVBAR_EL1, 23), 0xc288_c017),
            (mrs(0, DDC), 0xc29b_4120),
            (gc(Field::Perm, 1, 0), 0xc2c0_d001),
            (gc(Field::Tag, 2, 0), 0xc2c0_9002),
            (gc(Field::Base, 1, 0), 0xc2c0_1001),
            (gc(Field::Value, 1, 0), 0xc2c0_5001),
            (gc(Field::Sealed, 1, 0), 0xc2c0_b001),
            (gc(Field::Type, 1, 0), 0xc2c0_f001),
            (gc(Field::Offset, 1, 0), 0xc2c0_7001),
            (scvalue(3, 0, 4), 0xc2c4_4003),
            (scbnds(3, 3, 5), 0xc2c5_0063),
            (scbndse(3, 3, 5), 0xc2c5_2063),
            (clrperm(3, 3, 6), 0xc2c6_a063),
            (clrtag(7, 3), 0xc2c1_9067),
            (cpy(8, 3), 0xc2c1_d068),
            (seal_sentry(9, 3), 0xc2c3_3069),
            (ldrb_alt(10, 3), 0x8260_046a),
            (strb_alt(10, 3), 0x8240_046a),
            (str_cap(3, 11), 0xc200_0163),
            (ldr_cap(12, 11), 0xc240_016c),
            (mrs(13, CVBAR_EL1), 0xc298_c00d),
            (msr(CELR_EL1, 3), 0xc288_4023),
            (mrs(14, CELR_EL1), 0xc298_402e),
            (msr(RDDC_EL0, 3), 0xc28b_4323),
            // The hostile cases' words (tests/native-hostile/hostile.rs spells them as numbers).
            (MRS_C0_DDC, 0xc29b_4120),
            (SCBNDS_C0_C0_X1, 0xc2c1_0000),
            (LDRB_W2_C0, 0x8260_0402),
            (LDRB_W2_C1, 0x8260_0422),
            (MSR_CVBAR_EL1_C0, 0xc288_c000),
            (MSR_DDC_C1, 0xc28b_4121),
            (SEAL_C0_C0_RB, 0xc2c3_3000),
        ];
        for (i, &(made, word)) in seen.iter().enumerate() {
            assert_eq!(made, word, "#{i}: made {made:#010x}, the disassembler named {word:#010x}");
        }
    }

    #[test]
    fn named_words_are_distinct_and_in_the_capability_space() {
        for (i, a) in NAMED.iter().enumerate() {
            for b in &NAMED[i + 1..] {
                assert_ne!(a.word, b.word, "{} and {}", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
            // Morello's capability instructions live in the 0xc2... (and alternate-base 0x82...)
            // space that base A64 leaves unallocated.
            assert!(a.word >> 24 == 0xc2 || a.word >> 24 == 0x82, "{}: {:#010x}", a.name, a.word);
        }
    }

    #[test]
    fn register_fields_land_where_the_decoder_reads_them() {
        for n in 0..31 {
            assert_eq!(cpy(n, 2) & 0x1f, n);
            assert_eq!((gc(Field::Tag, 1, n) >> 5) & 0x1f, n);
            assert_eq!(cpy(n, 2), CPY_C0_C2 | n);
            assert_eq!(gc(Field::Tag, 1, n), GCTAG_X1_C0 | (n << 5));
        }
    }
}
