//! Bounds-checked views of linear memory for the host functions.
//!
//! Every pointer and length a function hands to the ABI is checked here before any byte is
//! read or written; a bad one ends the run with a trap naming the call and the argument.

use core::ops::Range;

use crate::fault::HostFault;

/// Where an ABI call's argument lies, for the fault message.
#[derive(Clone, Copy)]
pub(crate) struct Arg {
    pub call: &'static str,
    pub what: &'static str,
}

/// The byte range `ptr .. ptr + len` of a memory of `size` bytes, if it lies inside.
///
/// `ptr` is a wasm `i32` read as unsigned (wasm32 addresses), so no negative offsets exist.
pub(crate) fn range(size: usize, ptr: i32, len: u64, arg: Arg) -> Result<Range<usize>, HostFault> {
    let ptr = ptr.cast_unsigned();
    let fault = || HostFault::BadPointer { call: arg.call, what: arg.what, ptr, len, memory: size };
    let start = usize::try_from(ptr).map_err(|_| fault())?;
    let len = usize::try_from(len).map_err(|_| fault())?;
    let end = start.checked_add(len).ok_or_else(fault)?;
    if end > size {
        return Err(fault());
    }
    Ok(start..end)
}

/// Reads `len` bytes at `ptr`.
pub(crate) fn read(memory: &[u8], ptr: i32, len: i32, arg: Arg) -> Result<&[u8], HostFault> {
    let len = u64::from(len.cast_unsigned());
    let range = range(memory.len(), ptr, len, arg)?;
    memory.get(range).ok_or(HostFault::BadPointer {
        call: arg.call,
        what: arg.what,
        ptr: ptr.cast_unsigned(),
        len,
        memory: memory.len(),
    })
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(memory: &mut [u8], ptr: i32, bytes: &[u8], arg: Arg) -> Result<(), HostFault> {
    let size = memory.len();
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let range = range(size, ptr, len, arg)?;
    let fault = HostFault::BadPointer { call: arg.call, what: arg.what, ptr: ptr.cast_unsigned(), len, memory: size };
    memory.get_mut(range).ok_or(fault)?.copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARG: Arg = Arg { call: "test", what: "buffer" };

    #[test]
    fn ranges_inside_memory_pass() {
        assert_eq!(range(100, 0, 100, ARG).unwrap(), 0..100);
        assert_eq!(range(100, 100, 0, ARG).unwrap(), 100..100);
        assert_eq!(range(100, 40, 10, ARG).unwrap(), 40..50);
    }

    #[test]
    fn ranges_outside_memory_fault() {
        assert!(range(100, 0, 101, ARG).is_err());
        assert!(range(100, 101, 0, ARG).is_err());
        assert!(range(100, -1, 1, ARG).is_err(), "i32 -1 is address 0xffff_ffff");
        assert!(range(usize::MAX, i32::MAX, u64::MAX, ARG).is_err(), "overflow is a fault");
        assert!(read(&[0; 4], 2, -1, ARG).is_err(), "i32 -1 as a length is 4 GiB");
    }

    #[test]
    fn write_copies_exactly() {
        let mut memory = [0u8; 8];
        write(&mut memory, 2, b"abc", ARG).unwrap();
        assert_eq!(&memory, b"\0\0abc\0\0\0");
        assert!(write(&mut memory, 6, b"abc", ARG).is_err());
        assert_eq!(read(&memory, 2, 3, ARG).unwrap(), b"abc");
    }
}
