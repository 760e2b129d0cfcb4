//! Floating-point arithmetic for the soft-float kernel, done by the FPU it does not otherwise use.
//!
//! The kernel target is soft-float: an `f64` addition compiles to a call of compiler-builtins'
//! `__adddf3`, about 65 instructions of integer code. The only kernel code that does float
//! arithmetic is the wasm interpreter running a function's `f32`/`f64` instructions (a 3×3
//! matmul: 54 of them, ~3.5 K instructions a request, `cargo xtask profile matmul3-wasm`).
//! `float.S` defines the four binary operations of both widths with SSE2 instead, and the linker
//! takes them in place of compiler-builtins' (whose object files it then never pulls in).
//!
//! Why the vector registers are free here: the kernel runs a wasm function outside every ring-3
//! run, and the extended state is loaded on each entry to ring 3 (the sandbox's saved state, or
//! the initial one) and scrubbed on each exit (`usermode::enter_user`), so what these leave in
//! XMM0/XMM1 reaches no sandbox, and MXCSR is the initial one (round to nearest, exceptions
//! masked, no flush-to-zero) whenever the kernel computes. No trap or interrupt handler does
//! float arithmetic, so none of this runs while a sandbox's registers are live. SSE is on from
//! `usermode::init` on every CPU, before any function can run. Results are IEEE-754's, as the
//! software routines give (correct rounding); a NaN result may carry another payload, which wasm
//! leaves open.

use core::arch::global_asm;

global_asm!(include_str!("float.S"));
