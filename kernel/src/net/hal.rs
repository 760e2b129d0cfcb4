//! The DMA and MMIO services `virtio-drivers` needs, on the kernel's frame allocator and
//! direct map.

use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::{arch, mm};

pub struct KernelHal;

// SAFETY: `dma_alloc` returns zeroed, physically contiguous, page-aligned frames that nothing
// else uses, mapped at the returned address; `share` returns the physical address of memory that
// is physically contiguous (the heap is one contiguous run; statics are in the kernel image).
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let phys = mm::alloc_contiguous(pages as u64, 4096)
            .unwrap_or_else(|| panic!("no {pages} contiguous frames for a virtio queue"));
        let virt = arch::phys_to_virt(phys);
        // SAFETY: the frames were just allocated and are mapped at `virt` by the direct map.
        unsafe { core::ptr::write_bytes(virt, 0, pages * 4096) };
        (phys, NonNull::new(virt).expect("direct map address is never null"))
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        match mm::free_contiguous(paddr, pages as u64) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        NonNull::new(arch::map_mmio(paddr, size as u64)).expect("MMIO mapping is never null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        arch::virt_to_phys(buffer.as_ptr().cast::<u8>() as u64)
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Shared buffers are the driver's own memory, seen in place: nothing to copy back.
    }
}
