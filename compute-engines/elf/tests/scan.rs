//! The forbidden-instruction scan on raw bytes: every pattern at every offset, every ModRM,
//! prefixes, overlaps, and what must stay allowed.

mod common;

use common::naive_forbidden;
use elf::{Forbidden, ForbiddenInstruction, scan_executable};

const WRPKRU: &[u8] = &[0x0f, 0x01, 0xef];
const XRSTOR: &[u8] = &[0x0f, 0xae, 0x2e]; // xrstor [rsi]
const XRSTOR_DISP8: &[u8] = &[0x0f, 0xae, 0x6d, 0x10]; // xrstor [rbp+0x10]
const XRSTOR_DISP32: &[u8] = &[0x0f, 0xae, 0xac, 0x24, 0, 1, 0, 0]; // xrstor [rsp+0x100]
const XRSTOR64: &[u8] = &[0x48, 0x0f, 0xae, 0x29]; // xrstor64 [rcx]
const XRSTORS: &[u8] = &[0x0f, 0xc7, 0x1f]; // xrstors [rdi]
const XRSTORS64: &[u8] = &[0x48, 0x0f, 0xc7, 0x5e, 0x08]; // xrstors64 [rsi+8]

fn found(offset: u64, what: ForbiddenInstruction) -> Result<(), Forbidden> {
    Err(Forbidden { offset, what })
}

/// Where the `0F` of a pattern is.
fn escape_at(pattern: &[u8]) -> usize {
    pattern.iter().position(|&b| b == 0x0f).unwrap()
}

#[test]
fn every_pattern_at_every_offset() {
    let cases = [
        (WRPKRU, ForbiddenInstruction::Wrpkru),
        (XRSTOR, ForbiddenInstruction::Xrstor),
        (XRSTOR_DISP8, ForbiddenInstruction::Xrstor),
        (XRSTOR_DISP32, ForbiddenInstruction::Xrstor),
        (XRSTOR64, ForbiddenInstruction::Xrstor),
        (XRSTORS, ForbiddenInstruction::Xrstors),
        (XRSTORS64, ForbiddenInstruction::Xrstors),
    ];
    for (pattern, what) in cases {
        for filler in [0x90u8, 0x00, 0xcc, 0x0f] {
            for len in pattern.len()..pattern.len() + 20 {
                for at in 0..=len - pattern.len() {
                    let mut bytes = vec![filler; len];
                    bytes[at..at + pattern.len()].copy_from_slice(pattern);
                    let at = at + escape_at(pattern);
                    let first = naive_forbidden(&bytes).unwrap();
                    if filler != 0x0f {
                        assert_eq!(first, at, "{bytes:02x?}");
                    }
                    // With a 0F filler the pattern's own bytes may form an earlier one; the
                    // naive scan is the judge of which comes first.
                    let error = scan_executable(&bytes).unwrap_err();
                    assert_eq!(error.offset, first as u64, "{bytes:02x?}");
                    if first == at {
                        assert_eq!(error.what, what, "{bytes:02x?}");
                    }
                }
            }
        }
    }
}

#[test]
fn pattern_cut_short_is_allowed() {
    for bytes in [&[0x0f][..], &[0x0f, 0x01], &[0x90, 0x0f, 0xae], &[0x0f, 0xc7], &[]] {
        assert_eq!(scan_executable(bytes), Ok(()));
    }
}

#[test]
fn every_modrm() {
    for modrm in 0..=255u8 {
        let (mode, reg) = (modrm >> 6, (modrm >> 3) & 7);
        let memory_operand = mode != 0b11;
        let xrstor = scan_executable(&[0x0f, 0xae, modrm]);
        if reg == 5 && memory_operand {
            assert_eq!(xrstor, found(0, ForbiddenInstruction::Xrstor), "0F AE {modrm:02X}");
        } else {
            // FXSAVE/FXRSTOR/LDMXCSR/STMXCSR/XSAVE/XSAVEOPT/CLFLUSH, the fences, RD/WRFSBASE…
            assert_eq!(xrstor, Ok(()), "0F AE {modrm:02X}");
        }
        let xrstors = scan_executable(&[0x0f, 0xc7, modrm]);
        if reg == 3 && memory_operand {
            assert_eq!(xrstors, found(0, ForbiddenInstruction::Xrstors), "0F C7 {modrm:02X}");
        } else {
            // CMPXCHG8B/16B, XSAVEC, XSAVES, RDRAND, RDSEED, RDPID, VMPTRLD…
            assert_eq!(xrstors, Ok(()), "0F C7 {modrm:02X}");
        }
        let group7 = scan_executable(&[0x0f, 0x01, modrm]);
        if modrm == 0xef {
            assert_eq!(group7, found(0, ForbiddenInstruction::Wrpkru));
        } else {
            // RDPKRU (0F 01 EE), XGETBV, XSETBV (privileged), SWAPGS, RDTSCP…
            assert_eq!(group7, Ok(()), "0F 01 {modrm:02X}");
        }
    }
}

#[test]
fn fences_are_allowed() {
    for modrm in 0xe8..=0xef {
        assert_eq!(scan_executable(&[0x0f, 0xae, modrm]), Ok(()), "LFENCE form 0F AE {modrm:02X}");
    }
    // MFENCE, SFENCE, and RDPKRU (reading PKRU is harmless).
    for bytes in [[0x0f, 0xae, 0xf0], [0x0f, 0xae, 0xf8], [0x0f, 0x01, 0xee]] {
        assert_eq!(scan_executable(&bytes), Ok(()));
    }
}

#[test]
fn prefixes_do_not_hide_a_pattern() {
    // Operand size, REP, REPNE, LOCK, segment overrides, REX: all come before 0F.
    for prefix in [0x66u8, 0xf3, 0xf2, 0xf0, 0x2e, 0x3e, 0x26, 0x64, 0x65, 0x36, 0x40, 0x48, 0x4f] {
        for pattern in [WRPKRU, XRSTOR, XRSTORS] {
            for count in 1..4 {
                let mut bytes = vec![0x90];
                bytes.extend(std::iter::repeat_n(prefix, count));
                bytes.extend_from_slice(pattern);
                let result = scan_executable(&bytes).unwrap_err();
                assert_eq!(result.offset, 1 + count as u64, "{bytes:02x?}");
            }
        }
    }
}

#[test]
fn overlapping_and_repeated_patterns() {
    // 0F 0F 01 EF: the pattern starts at 1.
    assert_eq!(scan_executable(&[0x0f, 0x0f, 0x01, 0xef]), found(1, ForbiddenInstruction::Wrpkru));
    // 0F 01 0F 01 EF: at 2.
    assert_eq!(scan_executable(&[0x0f, 0x01, 0x0f, 0x01, 0xef]), found(2, ForbiddenInstruction::Wrpkru));
    // The lowest offset is reported.
    let mut bytes = vec![0x90; 64];
    bytes[40..43].copy_from_slice(WRPKRU);
    bytes[10..13].copy_from_slice(XRSTORS);
    assert_eq!(scan_executable(&bytes), found(10, ForbiddenInstruction::Xrstors));
}

#[test]
fn hidden_inside_another_instruction() {
    // mov eax, 0xEF010F90: the immediate holds WRPKRU, reachable by a jump into the middle.
    let bytes = [0xb8, 0x90, 0x0f, 0x01, 0xef];
    assert_eq!(scan_executable(&bytes), found(2, ForbiddenInstruction::Wrpkru));
    // lea rax, [rip + 0x2EAE0F]: XRSTOR in a displacement.
    let bytes = [0x48, 0x8d, 0x05, 0x0f, 0xae, 0x2e, 0x00];
    assert_eq!(scan_executable(&bytes), found(3, ForbiddenInstruction::Xrstor));
}

#[test]
fn display() {
    let error = scan_executable(&[0x90, 0x0f, 0x01, 0xef]).unwrap_err();
    assert_eq!(error.to_string(), "WRPKRU (0F 01 EF) at 0x1");
}
