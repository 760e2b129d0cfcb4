//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`: the native target is a hosted one (Linux
//! ABI) whose `compiler_builtins` expects a C library to provide them; a function has none.
//! String instructions, so the compiler cannot turn these loops back into calls to themselves:
//! eight bytes a step where the length allows (`rep movsq`, `rep stosq`), the last 0..=7 a byte
//! a step. Why not `rep movsb` alone: under TCG with `-icount` every repetition is an
//! instruction, so a byte at a time made an 80-byte copy cost 80 (`bench e2e`'s matmul copies
//! its operands and product several times).

/// # Safety
/// The C contract: `n` bytes at `src` readable, at `dest` writable, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the words then the bytes cover exactly `n` bytes forward.
    unsafe { copy_forward(dest, src, n) };
    dest
}

/// `n` bytes from `src` to `dest`, first to last: words, then the rest.
///
/// # Safety
/// `n` bytes at `src` readable, at `dest` writable; `dest` not inside `(src, src + n)`.
unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract; `rep movsq` leaves RDI and RSI just past the words.
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov ecx, {tail:e}",
            "rep movsb",
            tail = in(reg) n % 8,
            inout("rcx") n / 8 => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        )
    };
}

/// # Safety
/// The C contract: `n` bytes at `src` readable, at `dest` writable; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: forward copy is safe when dest is not inside (src, src + n).
        unsafe { copy_forward(dest, src, n) };
    } else {
        // SAFETY: backwards from the last byte, direction flag restored after.
        unsafe {
            core::arch::asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _, options(nostack))
        };
    }
    dest
}

/// # Safety
/// The C contract: `n` bytes at `dest` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // The byte in every byte of a word.
    let word = u64::from(c as u8) * 0x0101_0101_0101_0101;
    // SAFETY: the caller's contract; `rep stosq` leaves RDI just past the words, and AL (the
    // low byte of the word) is the byte for the rest.
    unsafe {
        core::arch::asm!(
            "rep stosq",
            "mov ecx, {tail:e}",
            "rep stosb",
            tail = in(reg) n % 8,
            inout("rcx") n / 8 => _,
            inout("rdi") dest => _,
            in("rax") word,
            options(nostack, preserves_flags)
        )
    };
    dest
}

/// # Safety
/// The C contract: `n` bytes readable at both.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n`.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// As `memcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { memcmp(a, b, n) }
}

/// The precompiled `alloc` of a hosted target refers to the unwinder; functions abort on panic
/// (`panic = "abort"`), so no unwinding ever starts and these are never called.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    super::sys::exit_abort(b"pappus-sdk: unwinding is not supported (build with panic = \"abort\")")
}

/// See [`_Unwind_Resume`].
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
