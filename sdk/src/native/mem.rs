//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`: the native target is a hosted one (Linux
//! ABI) whose `compiler_builtins` expects a C library to provide them; a function has none.
//! String instructions, so the compiler cannot turn these loops back into calls to themselves.

/// # Safety
/// The C contract: `n` bytes at `src` readable, at `dest` writable, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags))
    };
    dest
}

/// # Safety
/// The C contract: `n` bytes at `src` readable, at `dest` writable; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: forward copy is safe when dest is not inside (src, src + n).
        unsafe {
            core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags))
        };
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
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8, options(nostack, preserves_flags))
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
