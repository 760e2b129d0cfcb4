//! `memcpy`, `memmove` and `memset` for the kernel, in place of compiler-builtins' (which the
//! linker then does not pull in).
//!
//! compiler-builtins' x86_64 versions align with byte moves and then use `rep movsq`/`rep
//! movsb`; under `-icount` every iteration of a string instruction counts, and most of the
//! kernel's copies are short (names, headers, small structs moved): `cargo xtask profile
//! matmul3-native` put `memcpy` at ~1.5 K instructions a request, ~40 a call. `mem.S` copies up
//! to 32 bytes with no loop (overlapping 8-, 4- and 1-byte moves, every load before the first
//! store, which also makes them right for `memmove`) and longer ranges with `rep movsq` plus
//! one overlapping quadword. General-purpose registers only: they run in trap handlers too,
//! where a sandbox's vector registers may still be live.

use core::arch::global_asm;

global_asm!(include_str!("mem.S"));
