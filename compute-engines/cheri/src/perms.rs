//! Morello capability permissions, as `gcperm` reads them and `clrperm` takes them on
//! CTSRD-CHERI's emulator (target/arm/translate-cheri.inc.c: the permission field unshifted,
//! bit `p` of the capability's 18-bit field is bit `p` of the register; the kernel's self-test
//! `morello.root_capabilities` checks that the root DDC's `gcperm` holds [`ALL`]).

/// Where the permission field starts in a `gcperm`/`clrperm` register.
pub const SHIFT: u32 = 0;

const fn bit(p: u32) -> u64 {
    1 << (SHIFT + p)
}

pub const GLOBAL: u64 = bit(0);
pub const EXECUTIVE: u64 = bit(1);
/// The four user-defined permissions (bits 2..5), which the root holds too.
pub const USER: u64 = bit(2) | bit(3) | bit(4) | bit(5);
pub const MUTABLE_LOAD: u64 = bit(6);
pub const SET_CID: u64 = bit(7);
pub const BRANCH_SEALED_PAIR: u64 = bit(8);
pub const SYSTEM: u64 = bit(9);
pub const UNSEAL: u64 = bit(10);
pub const SEAL: u64 = bit(11);
pub const STORE_LOCAL: u64 = bit(12);
pub const STORE_CAP: u64 = bit(13);
pub const LOAD_CAP: u64 = bit(14);
pub const EXECUTE: u64 = bit(15);
pub const STORE: u64 = bit(16);
pub const LOAD: u64 = bit(17);

/// Every permission the root capability holds: all 18 bits (the emulator's root DDC reads
/// 0x3ffff, user permissions included).
pub const ALL: u64 = GLOBAL
    | EXECUTIVE
    | USER
    | MUTABLE_LOAD
    | SET_CID
    | BRANCH_SEALED_PAIR
    | SYSTEM
    | UNSEAL
    | SEAL
    | STORE_LOCAL
    | STORE_CAP
    | LOAD_CAP
    | EXECUTE
    | STORE
    | LOAD;

/// The permissions a sandbox's data capability (DDC) keeps: load and store data, nothing else
/// (no capability loads or stores, no execute, no system registers, no sealing).
pub const SANDBOX_DATA: u64 = LOAD | STORE | GLOBAL;
/// The permissions a sandbox's code capability (PCC) keeps: load and execute; no store, no
/// Executive (so the sandbox runs in Restricted mode), no System.
pub const SANDBOX_CODE: u64 = LOAD | EXECUTE | GLOBAL;
/// The system data block's capability: load only.
pub const SANDBOX_READ_ONLY: u64 = LOAD | GLOBAL;

/// The permission names set in `perms`, for reports.
pub fn names(perms: u64) -> impl Iterator<Item = &'static str> {
    const NAMES: [(u64, &str); 14] = [
        (LOAD, "load"),
        (STORE, "store"),
        (EXECUTE, "execute"),
        (LOAD_CAP, "load-cap"),
        (STORE_CAP, "store-cap"),
        (STORE_LOCAL, "store-local"),
        (SEAL, "seal"),
        (UNSEAL, "unseal"),
        (SYSTEM, "system"),
        (BRANCH_SEALED_PAIR, "branch-sealed-pair"),
        (SET_CID, "set-cid"),
        (MUTABLE_LOAD, "mutable-load"),
        (EXECUTIVE, "executive"),
        (GLOBAL, "global"),
    ];
    NAMES.into_iter().filter(move |(bit, _)| perms & bit != 0).map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn all_is_the_roots_permission_field() {
        // The whole 18-bit field, as the root DDC's `gcperm` read on the emulator.
        assert_eq!(ALL, 0x3_ffff << SHIFT);
        assert_eq!(names(ALL).count(), 14);
    }

    #[test]
    fn sandbox_capabilities_are_narrow() {
        for (perms, forbidden) in [
            (SANDBOX_DATA, EXECUTE | LOAD_CAP | STORE_CAP | SYSTEM | EXECUTIVE | SEAL | UNSEAL | USER),
            (SANDBOX_CODE, STORE | LOAD_CAP | STORE_CAP | SYSTEM | EXECUTIVE | SEAL | UNSEAL | USER),
            (SANDBOX_READ_ONLY, STORE | EXECUTE | LOAD_CAP | STORE_CAP | SYSTEM | EXECUTIVE | USER),
        ] {
            assert_eq!(perms & forbidden, 0, "{:?}", names(perms & forbidden).collect::<Vec<_>>());
            assert_eq!(perms & !ALL, 0);
        }
        assert_eq!(names(SANDBOX_CODE).collect::<Vec<_>>(), ["load", "execute", "global"]);
    }
}
