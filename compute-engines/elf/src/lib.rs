//! Function images: checks and loading of static position-independent x86_64 ELF, and the scan
//! that refuses forbidden instructions at any byte offset. Runs and is tested on the host.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
