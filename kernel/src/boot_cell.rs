//! Statics that are written once during single-threaded boot and read afterwards.

use core::cell::UnsafeCell;

/// A static whose contents boot code fills in before any other CPU or interrupt can see it
/// (descriptor tables, the command-line copy, the boot CPU's block). Access goes through a raw
/// pointer, and every user states in its `SAFETY:` comment why no one else is looking.
pub struct BootCell<T>(UnsafeCell<T>);

// SAFETY: the type hands out only raw pointers; each dereference is justified at its use site.
#[allow(unsafe_code)]
unsafe impl<T> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
