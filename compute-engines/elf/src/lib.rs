//! Function images: checks and loading of static position-independent x86_64 and aarch64 ELF
//! ([`Machine`]), and the scan that refuses forbidden x86_64 instructions at any byte offset. Runs and is tested on the host.
//!
//! A native function is untrusted code that the kernel maps into a sandbox at a base address of
//! its choosing (one address space for all sandboxes, so every image must be position
//! independent: `ET_DYN`, relocated by `R_X86_64_RELATIVE` or `R_AARCH64_RELATIVE` only). Registration calls
//! [`Image::parse`]; the result says which pages to map with which rights, where to enter, and
//! how to fill the sandbox's image area ([`Image::load_into`]). Anything the loader does not
//! fully understand is refused with an [`ElfError`] that names the place and the values found,
//! because an ignored field is a field whose meaning the function's author and the platform may
//! disagree on.
//!
//! What the engine does with an [`Image`]: give the sandbox an image area of [`Image::span`]
//! bytes at a base aligned to [`Image::align`], fill it with [`Image::load_into`], then map each
//! [`Segment::pages`] with its [`Perms`] (never writable and executable; [`Image::relro`] may be
//! made read-only too) and enter at [`Image::entry`]. The scan checked the executable pages as
//! `load_into` leaves them (segment bytes, zero around them); an engine that mapped file pages
//! directly, as an mmap-based loader would, would expose other bytes as code and break that.
//!
//! Not looked at, because loading does not depend on them: section headers, symbol and string
//! tables, notes, `p_paddr`, and the range of relocation addends (a wild pointer faults when
//! used; it cannot write anything at load).
//!
//! The parser is written by hand over bounds-checked reads (`read.rs`) rather than with the
//! `object` crate: the checks that matter here (W^X, one permission set per page, relocation
//! targets, a tag allow-list, the scan in memory layout) are not in `object` anyway, its errors
//! are static strings that cannot say which header or relocation is at fault, and the few
//! fixed-offset fields of `Elf64_Ehdr`/`Phdr`/`Dyn`/`Rela` are less code than the adapters.
//! It also keeps a dependency out of the isolation boundary; the lints below make
//! "no indexing, no unchecked arithmetic, no panics" a compile-time property of this crate.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
#![warn(missing_docs)]

extern crate alloc;

mod abi;
mod dynamic;
mod error;
mod header;
mod image;
mod read;
mod relocate;
mod scan;
mod segments;

pub use abi::{PAGE_SIZE, R_AARCH64_RELATIVE, R_X86_64_RELATIVE};
pub use error::{ElfError, Place, Problem};
pub use image::{Image, Perms, Segment};
pub use relocate::Relocation;
pub use scan::{Forbidden, ForbiddenInstruction, scan_executable};

/// The instruction set an image must be for: its `e_machine`, its relocation type, and
/// whether its code is scanned for forbidden instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// `EM_X86_64`, `R_X86_64_RELATIVE`; executable bytes scanned for WRPKRU and XRSTOR(S).
    X86_64,
    /// `EM_AARCH64`, `R_AARCH64_RELATIVE`; no scan: no instruction reachable at EL0 can change
    /// what the sandbox may touch (system registers, cache and TLB maintenance trap or are
    /// undefined there).
    Aarch64,
}

impl Machine {
    /// The machine the crate is built for (the kernel's): aarch64 there, x86_64 everywhere
    /// else (host tests included).
    pub const NATIVE: Machine = if cfg!(target_arch = "aarch64") { Machine::Aarch64 } else { Machine::X86_64 };

    /// The architecture's name as `/healthz` gives it.
    pub const fn name(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64",
            Machine::Aarch64 => "aarch64",
        }
    }
}

/// Bounds an image must stay within, set by the engine from the sandbox's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The instruction set the image must be for.
    pub machine: Machine,
    /// Largest [`Image::span`] accepted: every loadable segment must end (rounded up to a page)
    /// at or below this offset from the base.
    pub max_span: u64,
    /// Largest `p_align` accepted for a loadable segment; the base must be aligned to it.
    pub max_align: u64,
}

impl Default for Limits {
    /// The kernel's machine, 256 MiB of image, 2 MiB alignment (a large page; linkers default
    /// to 4 KiB).
    fn default() -> Self {
        Self { machine: Machine::NATIVE, max_span: 256 << 20, max_align: 2 << 20 }
    }
}
