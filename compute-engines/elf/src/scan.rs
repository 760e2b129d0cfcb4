//! The forbidden-instruction scan. Under MPK a sandbox is held in by the PKRU register, and
//! user code can rewrite PKRU with two instructions: `WRPKRU`, and `XRSTOR` when XCR0 enables
//! the PKRU state component. A native function image is refused at registration if any of its
//! executable bytes could decode as one of them.
//!
//! "Could decode" means at *any byte offset*, not just at the instruction boundaries a
//! disassembler would find: x86 code can jump into the middle of an instruction, so bytes that
//! are an immediate or a displacement for one decoding are an instruction for another. The scan
//! therefore looks for byte patterns, without decoding:
//!
//! | pattern | instruction | why refused |
//! |---|---|---|
//! | `0F 01 EF` | `WRPKRU` | writes PKRU from EAX at CPL3: direct escape from the key |
//! | `0F AE /5`, ModRM.mod != 11 | `XRSTOR` (`XRSTOR64` with REX.W) | loads PKRU from memory when XCR0.PKRU is set |
//! | `0F C7 /3`, ModRM.mod != 11 | `XRSTORS` (`XRSTORS64` with REX.W) | see below |
//!
//! Prefixes (operand size, REX, REP, LOCK, segment) come *before* the `0F` escape, never
//! between the opcode bytes, so every encoding of these instructions contains the three bytes
//! contiguously and a prefix cannot hide one. The pattern match is indifferent to what comes
//! before the `0F`.
//!
//! **LFENCE is allowed.** `0F AE E8`..`0F AE EF` has ModRM.reg = 5 like XRSTOR but mod = 11
//! (a register operand). XRSTOR needs a memory operand to restore from; with mod = 11 the
//! encoding is not XRSTOR at all but `LFENCE` (Intel documents E8, and decodes E9..EF the same),
//! which restores nothing. Compilers emit LFENCE as a speculation barrier, so refusing it would
//! refuse ordinary code for no gain. The same holds for `0F C7 /3` with mod = 11, which is not
//! XRSTORS (it is undefined and raises #UD).
//!
//! **XRSTORS is refused too.** It is privileged (it raises #GP at CPL3, where functions run),
//! so today it cannot touch PKRU from a sandbox. It is refused anyway so that the key guarantee
//! does not also lean on "functions never run at CPL0" and on the XSS/XCR0 settings; legitimate
//! function code never contains it, and a stray `0F C7 18..1F/58..5F/98..9F` in data-in-code is
//! as rare as the XRSTOR pattern the design already refuses.
//!
//! The remaining false positives (the patterns inside an immediate or a displacement) are the
//! price of scanning at every offset; a function author who hits one can change the constant.

use core::fmt;

/// An instruction the scan refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForbiddenInstruction {
    /// `0F 01 EF`: writes PKRU.
    Wrpkru,
    /// `0F AE /5` with a memory operand: restores XSAVE state, PKRU included when XCR0 enables it.
    Xrstor,
    /// `0F C7 /3` with a memory operand: restores supervisor and user XSAVE state (privileged).
    Xrstors,
}

impl fmt::Display for ForbiddenInstruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForbiddenInstruction::Wrpkru => "WRPKRU (0F 01 EF)",
            ForbiddenInstruction::Xrstor => "XRSTOR (0F AE /5 with a memory operand)",
            ForbiddenInstruction::Xrstors => "XRSTORS (0F C7 /3 with a memory operand)",
        })
    }
}

/// A forbidden instruction found by the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forbidden {
    /// Offset of its first byte (the `0F`): into the slice for [`scan_executable`], from the
    /// image base for an image.
    pub offset: u64,
    /// Which instruction.
    pub what: ForbiddenInstruction,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {:#x}", self.what, self.offset)
    }
}

/// The instruction that `0F second modrm` would be, if it is a forbidden one.
const fn classify(second: u8, modrm: u8) -> Option<ForbiddenInstruction> {
    let register_operand = modrm >> 6 == 0b11;
    let reg = (modrm >> 3) & 0b111;
    match second {
        0x01 if modrm == 0xEF => Some(ForbiddenInstruction::Wrpkru),
        0xAE if reg == 5 && !register_operand => Some(ForbiddenInstruction::Xrstor),
        0xC7 if reg == 3 && !register_operand => Some(ForbiddenInstruction::Xrstors),
        _ => None,
    }
}

/// Refuses `bytes` if a forbidden instruction starts at any offset in it. The first one found
/// (lowest offset) is reported. `bytes` should be exactly what will be mapped executable.
pub fn scan_executable(bytes: &[u8]) -> Result<(), Forbidden> {
    let mut scanner = Scanner::new(0);
    scanner.feed(bytes)
}

/// A scan over a byte stream fed in pieces, so that an executable region made of file bytes and
/// zero fill, or of two adjacent segments, is scanned as the one run of bytes it is in memory,
/// including patterns that straddle two pieces.
#[derive(Clone, Debug)]
pub(crate) struct Scanner {
    /// The two bytes before `position`, oldest first, where the stream has them.
    before: [Option<u8>; 2],
    /// Offset of the next byte fed.
    position: u64,
}

impl Scanner {
    /// A scanner whose first byte sits at `position`.
    pub(crate) const fn new(position: u64) -> Self {
        Self { before: [None, None], position }
    }

    /// Continues the stream with `bytes`.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), Forbidden> {
        for &byte in bytes {
            self.step(byte)?;
        }
        Ok(())
    }

    /// Continues the stream with `count` zero bytes. Zero can neither be the second byte of a
    /// pattern nor its ModRM (ModRM 0 has reg 0), so only the first two need looking at.
    pub(crate) fn feed_zeros(&mut self, count: u64) -> Result<(), Forbidden> {
        let looked = count.min(2);
        for _ in 0..looked {
            self.step(0)?;
        }
        self.position = self.position.saturating_add(count.saturating_sub(looked));
        Ok(())
    }

    fn step(&mut self, byte: u8) -> Result<(), Forbidden> {
        if let [Some(0x0F), Some(second)] = self.before
            && let Some(what) = classify(second, byte)
        {
            return Err(Forbidden { offset: self.position.saturating_sub(2), what });
        }
        let [_, last] = self.before;
        self.before = [last, Some(byte)];
        self.position = self.position.saturating_add(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Feeds `pieces` (bytes, or a run of zeros) to one scanner.
    fn feed_pieces(start: u64, pieces: &[(Vec<u8>, u64)]) -> Result<(), Forbidden> {
        let mut scanner = Scanner::new(start);
        for (bytes, zeros) in pieces {
            scanner.feed(bytes)?;
            scanner.feed_zeros(*zeros)?;
        }
        Ok(())
    }

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), Just(0x0f), Just(0x01), Just(0xef), Just(0xae), Just(0xc7), Just(0x28), Just(0x18)]
    }

    proptest! {
        /// Pieces scan exactly like the bytes they make up, joined: patterns straddling a
        /// piece boundary or a run of zeros are found, at the right offset.
        #[test]
        fn pieces_scan_like_the_whole(
            start in 0u64..0x10000,
            pieces in prop::collection::vec((prop::collection::vec(byte(), 0..8), 0u64..4), 0..12),
        ) {
            let mut whole = Vec::new();
            for (bytes, zeros) in &pieces {
                whole.extend_from_slice(bytes);
                whole.resize(whole.len() + *zeros as usize, 0);
            }
            let expected = scan_executable(&whole).map_err(|f| Forbidden { offset: f.offset + start, ..f });
            prop_assert_eq!(feed_pieces(start, &pieces), expected);
        }
    }

    #[test]
    fn straddling_pieces() {
        let pieces = [(alloc::vec![0x90, 0x0f], 0), (alloc::vec![0x01], 0), (alloc::vec![0xef], 0)];
        assert_eq!(feed_pieces(0x1000, &pieces), Err(Forbidden { offset: 0x1001, what: ForbiddenInstruction::Wrpkru }));
        // Zeros between 0F and the rest break the pattern.
        let pieces = [(alloc::vec![0x0f], 1), (alloc::vec![0x01, 0xef], 0)];
        assert_eq!(feed_pieces(0, &pieces), Ok(()));
        // A long zero run keeps positions right.
        let pieces = [(alloc::vec![], 1 << 40), (alloc::vec![0x0f, 0xae, 0x28], 0)];
        assert_eq!(feed_pieces(0, &pieces), Err(Forbidden { offset: 1 << 40, what: ForbiddenInstruction::Xrstor }));
    }
}
