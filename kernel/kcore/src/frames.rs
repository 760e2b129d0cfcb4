//! The physical frame allocator: one bit per 4 KiB frame.
//!
//! A bitmap costs 32 KiB per GiB of RAM, answers "is this frame free?" exactly (so a double
//! free is caught, not silently corrupting a list), and finds contiguous runs for DMA rings
//! and huge pages. A rotating cursor keeps single-frame allocation O(1) amortised.

use core::fmt;

use crate::memmap::{MemoryMap, PAGE_SIZE};

/// Counters for `/metrics`, the boot log and the self-tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames the allocator manages (usable RAM at boot).
    pub total: u64,
    pub free: u64,
    /// Successful allocations and frees since boot, in frames.
    pub allocated: u64,
    pub freed: u64,
    /// Requests that found no memory.
    pub failed: u64,
}

impl FrameStats {
    pub fn used(&self) -> u64 {
        self.total - self.free
    }
}

/// Misuse of [`FrameAllocator::free`], reported instead of corrupting the bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    NotAligned(u64),
    OutOfRange(u64),
    AlreadyFree(u64),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAligned(a) => write!(f, "free of unaligned frame address {a:#x}"),
            Self::OutOfRange(a) => write!(f, "free of frame {a:#x} the allocator does not manage"),
            Self::AlreadyFree(a) => write!(f, "double free of frame {a:#x}"),
        }
    }
}

/// Bitmap allocator over physical frames `[0, frames)`; bit set = in use.
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    frames: u64,
    cursor: usize,
    stats: FrameStats,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameAllocator").field("frames", &self.frames).field("stats", &self.stats).finish()
    }
}

/// Bytes of bitmap needed to cover physical memory up to `highest` (exclusive).
pub fn bitmap_bytes(highest: u64) -> u64 {
    highest.div_ceil(PAGE_SIZE).div_ceil(64) * 8
}

impl<'a> FrameAllocator<'a> {
    /// An allocator whose free frames are exactly the usable ranges of `map`. `bits` must hold
    /// [`bitmap_bytes`]`(map.highest_usable())` bytes; its contents are overwritten.
    pub fn new(bits: &'a mut [u64], map: &MemoryMap) -> Self {
        let frames = map.highest_usable() / PAGE_SIZE;
        assert!(bits.len() as u64 * 64 >= frames, "frame bitmap too small");
        bits.fill(u64::MAX);
        let mut alloc = Self { bits, frames, cursor: 0, stats: FrameStats::default() };
        for r in map.usable() {
            alloc.mark_free(r.start / PAGE_SIZE, r.end / PAGE_SIZE);
            alloc.stats.total += r.len() / PAGE_SIZE;
        }
        alloc.stats.free = alloc.stats.total;
        alloc
    }

    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// One frame's physical address, or `None` when memory is exhausted.
    pub fn alloc(&mut self) -> Option<u64> {
        let words = self.bits.len();
        for step in 0..words {
            let w = (self.cursor + step) % words;
            if self.bits[w] != u64::MAX {
                let bit = (!self.bits[w]).trailing_zeros() as u64;
                let frame = w as u64 * 64 + bit;
                if frame >= self.frames {
                    continue;
                }
                self.set(frame, true);
                self.cursor = w;
                self.stats.free -= 1;
                self.stats.allocated += 1;
                return Some(frame * PAGE_SIZE);
            }
        }
        self.stats.failed += 1;
        None
    }

    /// `count` physically contiguous frames whose first address is a multiple of `align`
    /// bytes (a power of two, at least a page).
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 1 && align <= PAGE_SIZE {
            return self.alloc();
        }
        let step = (align.max(PAGE_SIZE) / PAGE_SIZE).max(1);
        // Start at the first word with a free frame: on Arm, RAM begins at 1 GiB, so the bitmap
        // opens with 262,144 frames that are never free.
        let first = self.bits.iter().position(|&w| w != u64::MAX).unwrap_or(self.bits.len()) as u64 * 64;
        let mut start = first.div_ceil(step) * step;
        while count > 0 && start + count <= self.frames {
            match (start..start + count).find(|&f| self.get(f)) {
                None => {
                    for f in start..start + count {
                        self.set(f, true);
                    }
                    self.stats.free -= count;
                    self.stats.allocated += count;
                    return Some(start * PAGE_SIZE);
                }
                // Skip past the used frame, keeping the alignment.
                Some(used) => start = (used + 1).div_ceil(step) * step,
            }
        }
        self.stats.failed += 1;
        None
    }

    pub fn free(&mut self, addr: u64) -> Result<(), FreeError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(FreeError::NotAligned(addr));
        }
        let frame = addr / PAGE_SIZE;
        if frame >= self.frames {
            return Err(FreeError::OutOfRange(addr));
        }
        if !self.get(frame) {
            return Err(FreeError::AlreadyFree(addr));
        }
        self.set(frame, false);
        self.stats.free += 1;
        self.stats.freed += 1;
        Ok(())
    }

    /// Frees `count` frames starting at `addr`, as returned by [`Self::alloc_contiguous`].
    pub fn free_contiguous(&mut self, addr: u64, count: u64) -> Result<(), FreeError> {
        (0..count).try_for_each(|i| self.free(addr + i * PAGE_SIZE))
    }

    pub fn is_free(&self, addr: u64) -> bool {
        let frame = addr / PAGE_SIZE;
        frame < self.frames && !self.get(frame)
    }

    fn get(&self, frame: u64) -> bool {
        self.bits[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    /// Clears the bits of frames `[start, end)`, a word at a time where whole words are
    /// covered (at boot: 512 MiB is 131,072 frames, a bit at a time a million instructions).
    fn mark_free(&mut self, start: u64, end: u64) {
        let mut frame = start;
        while frame < end {
            if frame.is_multiple_of(64) && end - frame >= 64 {
                self.bits[(frame / 64) as usize] = 0;
                frame += 64;
            } else {
                self.set(frame, false);
                frame += 1;
            }
        }
    }

    fn set(&mut self, frame: u64, used: bool) {
        let word = &mut self.bits[(frame / 64) as usize];
        if used {
            *word |= 1 << (frame % 64);
        } else {
            *word &= !(1 << (frame % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::{Region, RegionKind};
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    fn map(ranges: &[(u64, u64)]) -> MemoryMap {
        MemoryMap::from_firmware(ranges.iter().map(|&(start, end)| Region { start, end, kind: RegionKind::Usable }))
            .unwrap()
    }

    fn storage(m: &MemoryMap) -> Vec<u64> {
        vec![0; (bitmap_bytes(m.highest_usable()) / 8) as usize]
    }

    #[test]
    fn hands_out_only_usable_frames_until_exhausted() {
        let m = map(&[(0x1000, 0x5000), (0x100000, 0x102000)]);
        let mut bits = storage(&m);
        let mut a = FrameAllocator::new(&mut bits, &m);
        assert_eq!(a.stats().total, 6);
        let mut got = BTreeSet::new();
        while let Some(f) = a.alloc() {
            assert!(got.insert(f), "frame {f:#x} handed out twice");
        }
        let expected: BTreeSet<u64> = [0x1000, 0x2000, 0x3000, 0x4000, 0x100000, 0x101000].into();
        assert_eq!(got, expected);
        assert_eq!(a.stats().free, 0);
        assert_eq!(a.stats().failed, 1);
        for f in &got {
            a.free(*f).unwrap();
        }
        assert_eq!(a.stats().free, 6);
        assert_eq!(a.stats().freed, 6);
    }

    #[test]
    fn usable_ranges_are_free_exactly_whatever_their_alignment() {
        // Ranges starting and ending mid-word, spanning whole words, and a word's worth exactly.
        let ranges = [(0x3000, 0x5000), (0x41000, 0x200000), (0x240000, 0x280000), (0x2bf000, 0x2c5000)];
        let m = map(&ranges);
        let mut bits = storage(&m);
        let a = FrameAllocator::new(&mut bits, &m);
        let frames = m.highest_usable() / PAGE_SIZE;
        let usable = |f: u64| ranges.iter().any(|&(s, e)| f * PAGE_SIZE >= s && f * PAGE_SIZE < e);
        for f in 0..frames.next_multiple_of(64) {
            assert_eq!(!a.get(f), f < frames && usable(f), "frame {f}");
        }
        let total: u64 = ranges.iter().map(|(s, e)| (e - s) / PAGE_SIZE).sum();
        assert_eq!(a.stats().total, total);
    }

    #[test]
    fn free_misuse_is_reported() {
        let m = map(&[(0, 0x10000)]);
        let mut bits = storage(&m);
        let mut a = FrameAllocator::new(&mut bits, &m);
        let f = a.alloc().unwrap();
        assert_eq!(a.free(f + 1), Err(FreeError::NotAligned(f + 1)));
        assert_eq!(a.free(0x100000), Err(FreeError::OutOfRange(0x100000)));
        a.free(f).unwrap();
        assert_eq!(a.free(f), Err(FreeError::AlreadyFree(f)));
        assert_eq!(a.stats().free, a.stats().total);
    }

    #[test]
    fn contiguous_runs_respect_alignment_and_holes() {
        let m = map(&[(0x1000, 0x9000), (0xa000, 0x40000)]);
        let mut bits = storage(&m);
        let mut a = FrameAllocator::new(&mut bits, &m);
        let run = a.alloc_contiguous(4, 0x4000).unwrap();
        assert_eq!(run % 0x4000, 0);
        assert_eq!(run, 0x4000);
        // 0x9000 is a hole: a run of 4 aligned to 0x4000 must skip to 0xc000.
        let second = a.alloc_contiguous(4, 0x4000).unwrap();
        assert_eq!(second, 0xc000);
        assert_eq!(a.alloc_contiguous(1000, 0x1000), None);
        a.free_contiguous(run, 4).unwrap();
        a.free_contiguous(second, 4).unwrap();
        assert_eq!(a.stats().free, a.stats().total);
    }

    #[test]
    fn random_alloc_free_keeps_counts_consistent() {
        // A small deterministic xorshift drives a long random sequence.
        let m = map(&[(0, 0x200000)]);
        let mut bits = storage(&m);
        let mut a = FrameAllocator::new(&mut bits, &m);
        let mut held = Vec::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) {
                if let Some(f) = a.alloc() {
                    held.push(f);
                }
            } else if !held.is_empty() {
                let f = held.swap_remove((x as usize / 3) % held.len());
                a.free(f).unwrap();
            }
            assert_eq!(a.stats().used(), held.len() as u64);
        }
    }
}
