//! Capability fault syndromes: what ESR_ELx says when Morello refuses an access.
//!
//! A capability check that fails on a load, store or fetch is a data abort (EC 0x24 from a
//! lower EL, 0x25 from the same EL) or an instruction abort (0x20, 0x21) whose fault status
//! code (ISS bits 5:0) is one of Morello's: 0x28 tag, 0x29 seal, 0x2a bounds, 0x2b permission
//! (the capability's), 0x2c page permission (the translation tables refuse a capability load or
//! store: the page lacks the LC/SC attributes). A capability instruction executed while
//! CPACR_EL1.CEN disables them is EC 0x29; a capability system register access trapped is EC
//! 0x2a. The codes are the fork's (target/arm/internals.h, syndrome.h), which follow the Morello
//! architecture; the kernel's self-tests take each of the four capability faults on purpose.

use core::fmt;

/// What a capability check found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapFaultKind {
    /// The capability's tag is clear: it is not a valid capability (forged, or cleared).
    Tag,
    /// The capability is sealed: it cannot be used to access memory or be changed.
    Seal,
    /// The address (and size) lies outside the capability's bounds.
    Bounds,
    /// The capability lacks the permission the access needs (load, store, execute...).
    Permission,
    /// The page's translation attributes forbid loading or storing a capability.
    PagePermission,
}

impl CapFaultKind {
    /// The fault status code (ISS bits 5:0) of an abort with this cause.
    pub const fn status(self) -> u64 {
        match self {
            CapFaultKind::Tag => 0x28,
            CapFaultKind::Seal => 0x29,
            CapFaultKind::Bounds => 0x2a,
            CapFaultKind::Permission => 0x2b,
            CapFaultKind::PagePermission => 0x2c,
        }
    }

    pub const fn from_status(code: u64) -> Option<Self> {
        match code {
            0x28 => Some(CapFaultKind::Tag),
            0x29 => Some(CapFaultKind::Seal),
            0x2a => Some(CapFaultKind::Bounds),
            0x2b => Some(CapFaultKind::Permission),
            0x2c => Some(CapFaultKind::PagePermission),
            _ => None,
        }
    }

    /// A short name, for error codes and reports.
    pub const fn name(self) -> &'static str {
        match self {
            CapFaultKind::Tag => "capability tag fault",
            CapFaultKind::Seal => "capability seal fault",
            CapFaultKind::Bounds => "capability bounds fault",
            CapFaultKind::Permission => "capability permission fault",
            CapFaultKind::PagePermission => "capability page permission fault",
        }
    }
}

/// The access a capability fault stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Fetch,
    Read,
    Write,
}

/// A decoded capability exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapException {
    /// A capability check failed on a memory access or an instruction fetch.
    Fault { kind: CapFaultKind, access: Access, lower_el: bool },
    /// A capability instruction while CPACR_EL1.CEN (or CPTR_EL2) disables them (EC 0x29).
    InstructionTrapped,
    /// A capability system register access trapped (EC 0x2a).
    SystemRegisterTrapped,
}

/// EC values of ESR_ELx that concern capabilities.
pub const EC_INSTRUCTION_ABORT_LOWER: u64 = 0x20;
pub const EC_INSTRUCTION_ABORT_SAME: u64 = 0x21;
pub const EC_DATA_ABORT_LOWER: u64 = 0x24;
pub const EC_DATA_ABORT_SAME: u64 = 0x25;
pub const EC_CAPABILITY_ACCESS: u64 = 0x29;
pub const EC_CAPABILITY_SYSREG: u64 = 0x2a;

/// Decodes `esr` when it reports a capability exception; `None` for every other exception.
pub const fn decode(esr: u64) -> Option<CapException> {
    let ec = (esr >> 26) & 0x3f;
    let iss = esr & 0x01ff_ffff;
    match ec {
        EC_CAPABILITY_ACCESS => Some(CapException::InstructionTrapped),
        EC_CAPABILITY_SYSREG => Some(CapException::SystemRegisterTrapped),
        EC_INSTRUCTION_ABORT_LOWER | EC_INSTRUCTION_ABORT_SAME | EC_DATA_ABORT_LOWER | EC_DATA_ABORT_SAME => {
            let Some(kind) = CapFaultKind::from_status(iss & 0x3f) else { return None };
            let access = match ec {
                EC_INSTRUCTION_ABORT_LOWER | EC_INSTRUCTION_ABORT_SAME => Access::Fetch,
                _ if iss & (1 << 6) != 0 => Access::Write,
                _ => Access::Read,
            };
            let lower_el = ec == EC_INSTRUCTION_ABORT_LOWER || ec == EC_DATA_ABORT_LOWER;
            Some(CapException::Fault { kind, access, lower_el })
        }
        _ => None,
    }
}

impl fmt::Display for CapException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapException::Fault { kind, access, .. } => {
                let access = match access {
                    Access::Fetch => "an instruction fetch",
                    Access::Read => "a read",
                    Access::Write => "a write",
                };
                write!(f, "{} on {access}", kind.name())
            }
            CapException::InstructionTrapped => {
                f.write_str("capability instruction trapped (capabilities disabled by CPACR_EL1.CEN)")
            }
            CapException::SystemRegisterTrapped => f.write_str("capability system register access trapped"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    /// Syndromes the emulator reported (`-d int`) for deliberate faults: a one-byte load one
    /// past a 16-byte capability's bound (0x9600002a), a fetch through an untagged CVBAR
    /// (0x86000028).
    #[test]
    fn syndromes_seen_on_the_emulator() {
        assert_eq!(
            decode(0x9600_002a),
            Some(CapException::Fault { kind: CapFaultKind::Bounds, access: Access::Read, lower_el: false })
        );
        assert_eq!(
            decode(0x8600_0028),
            Some(CapException::Fault { kind: CapFaultKind::Tag, access: Access::Fetch, lower_el: false })
        );
        assert_eq!(decode(0x9600_002a).unwrap().to_string(), "capability bounds fault on a read");
    }

    #[test]
    fn every_kind_round_trips_from_either_el_and_access() {
        for kind in [
            CapFaultKind::Tag,
            CapFaultKind::Seal,
            CapFaultKind::Bounds,
            CapFaultKind::Permission,
            CapFaultKind::PagePermission,
        ] {
            assert_eq!(CapFaultKind::from_status(kind.status()), Some(kind));
            let data = (EC_DATA_ABORT_LOWER << 26) | (1 << 25) | (1 << 6) | kind.status();
            assert_eq!(decode(data), Some(CapException::Fault { kind, access: Access::Write, lower_el: true }));
            let fetch = (EC_INSTRUCTION_ABORT_SAME << 26) | (1 << 25) | kind.status();
            assert_eq!(decode(fetch), Some(CapException::Fault { kind, access: Access::Fetch, lower_el: false }));
        }
    }

    #[test]
    fn other_exceptions_are_not_capability_faults() {
        // A translation fault at level 3, a permission fault, an SVC, an undefined instruction.
        for esr in [0x9600_0007u64, 0x9600_004f, 0x5600_0000, 0x0200_0000, 0] {
            assert_eq!(decode(esr), None, "{esr:#x}");
        }
        assert_eq!(decode(EC_CAPABILITY_ACCESS << 26), Some(CapException::InstructionTrapped));
        assert_eq!(decode(EC_CAPABILITY_SYSREG << 26 | 0x1234), Some(CapException::SystemRegisterTrapped));
        // The status codes around Morello's are not capability faults.
        assert_eq!(CapFaultKind::from_status(0x27), None);
        assert_eq!(CapFaultKind::from_status(0x2d), None);
    }
}
