//! Arm Morello (CHERI) for the kernel, the parts that need no hardware: the capability
//! instruction words stable Rust cannot emit ([`insn`]), the capability fault syndromes
//! ([`fault`]) and the permission bits ([`perms`]). `no_std`, tested on the host; the kernel's
//! `arch::aarch64::morello` module is the one place that executes the words.
//!
//! Morello in brief (what the kernel relies on): every general register x<n> has a 129-bit
//! capability view c<n> (a tag bit, bounds, permissions, an object type when sealed, and the
//! 64-bit value); writing x<n> clears c<n>'s tag. In hybrid mode (A64 instruction set, as the
//! kernel runs) ordinary loads and stores are checked against DDC, the default data capability,
//! and instruction fetches against PCC; an "alternate base" load or store (`ldrb w0, [c9]`)
//! is checked against the capability register named. A check that fails is a capability fault:
//! a data or instruction abort whose fault status code says tag, seal, bounds or permission.
//! Capability instructions trap (EC 0x29) until CPACR_EL1.CEN enables them, and once they are
//! enabled the exception vectors are entered through CVBAR_EL1 as a capability.

#![no_std]
#![forbid(unsafe_code)]

pub mod fault;
pub mod insn;
pub mod perms;
