//! The boot memory map, normalised.
//!
//! Boot protocols hand over an e820-style list of ranges that may be unsorted, overlapping,
//! unaligned, and that knows nothing of the kernel image or boot data living in "usable" RAM.
//! [`MemoryMap`] turns that into sorted, page-aligned, non-overlapping usable ranges with the
//! kernel's own reservations carved out, in a fixed-size table (it is built before the heap).

use core::fmt;

pub const PAGE_SIZE: u64 = 4096;

/// What a range of physical memory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
}

impl RegionKind {
    /// The e820 type codes, which PVH's memory map uses too.
    pub fn from_e820(code: u32) -> Self {
        match code {
            1 => Self::Usable,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            _ => Self::Reserved,
        }
    }
}

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: RegionKind,
}

impl Region {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Why a memory map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemMapError {
    /// More distinct ranges than the fixed table holds.
    TooManyRegions,
    /// No usable memory at all.
    NoUsableMemory,
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRegions => write!(f, "memory map has more than {MAX_REGIONS} usable ranges"),
            Self::NoUsableMemory => write!(f, "memory map has no usable RAM"),
        }
    }
}

pub const MAX_REGIONS: usize = 128;

/// Sorted, disjoint, page-aligned usable ranges.
#[derive(Clone)]
pub struct MemoryMap {
    usable: [Region; MAX_REGIONS],
    count: usize,
    /// Bytes the firmware reported, of any kind, for the boot log.
    pub reported_usable_bytes: u64,
}

impl fmt::Debug for MemoryMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.usable()).finish()
    }
}

const EMPTY: Region = Region { start: 0, end: 0, kind: RegionKind::Usable };

impl MemoryMap {
    /// Builds the usable map from raw firmware ranges. Non-usable ranges win over usable ones
    /// where they overlap (a range both "usable" and "reserved" is reserved).
    pub fn from_firmware(raw: impl Iterator<Item = Region> + Clone) -> Result<Self, MemMapError> {
        let mut map = MemoryMap { usable: [EMPTY; MAX_REGIONS], count: 0, reported_usable_bytes: 0 };
        for r in raw.clone().filter(|r| r.kind == RegionKind::Usable && !r.is_empty()) {
            map.reported_usable_bytes += r.len();
            map.add_usable(r.start, r.end)?;
        }
        for r in raw.filter(|r| r.kind != RegionKind::Usable && !r.is_empty()) {
            map.reserve(r.start, r.end)?;
        }
        if map.count == 0 {
            return Err(MemMapError::NoUsableMemory);
        }
        Ok(map)
    }

    pub fn usable(&self) -> &[Region] {
        &self.usable[..self.count]
    }

    pub fn usable_bytes(&self) -> u64 {
        self.usable().iter().map(Region::len).sum()
    }

    /// The end of the highest usable byte (exclusive), 0 when empty.
    pub fn highest_usable(&self) -> u64 {
        self.usable().last().map_or(0, |r| r.end)
    }

    /// Adds `[start, end)` shrunk inward to whole pages, merging with neighbours.
    fn add_usable(&mut self, start: u64, end: u64) -> Result<(), MemMapError> {
        let start = align_up(start, PAGE_SIZE);
        let end = end & !(PAGE_SIZE - 1);
        if end <= start {
            return Ok(());
        }
        // Insert in order, then merge overlapping or touching neighbours.
        let at = self.usable().partition_point(|r| r.start < start);
        self.insert(at, Region { start, end, kind: RegionKind::Usable })?;
        let mut i = 0;
        while i + 1 < self.count {
            if self.usable[i].end >= self.usable[i + 1].start {
                self.usable[i].end = self.usable[i].end.max(self.usable[i + 1].end);
                self.remove(i + 1);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Removes `[start, end)` (widened outward to whole pages) from the usable ranges.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), MemMapError> {
        let start = start & !(PAGE_SIZE - 1);
        let end = align_up(end, PAGE_SIZE);
        let mut i = 0;
        while i < self.count {
            let r = self.usable[i];
            if r.end <= start || r.start >= end {
                i += 1;
                continue;
            }
            match (r.start < start, r.end > end) {
                (false, false) => self.remove(i),
                (true, false) => {
                    self.usable[i].end = start;
                    i += 1;
                }
                (false, true) => {
                    self.usable[i].start = end;
                    i += 1;
                }
                (true, true) => {
                    self.usable[i].end = start;
                    self.insert(i + 1, Region { start: end, end: r.end, kind: RegionKind::Usable })?;
                    i += 2;
                }
            }
        }
        Ok(())
    }

    /// Takes `bytes` (page-rounded) from the lowest usable range that fits at or above `min`,
    /// reserving them. Used to place the frame allocator's bitmap before any allocator exists.
    pub fn take(&mut self, bytes: u64, min: u64) -> Option<u64> {
        let bytes = align_up(bytes, PAGE_SIZE);
        let found = self.usable().iter().find_map(|r| {
            let start = r.start.max(align_up(min, PAGE_SIZE));
            (start < r.end && r.end - start >= bytes).then_some(start)
        })?;
        self.reserve(found, found + bytes).ok()?;
        Some(found)
    }

    fn insert(&mut self, at: usize, region: Region) -> Result<(), MemMapError> {
        if self.count == MAX_REGIONS {
            return Err(MemMapError::TooManyRegions);
        }
        self.usable.copy_within(at..self.count, at + 1);
        self.usable[at] = region;
        self.count += 1;
        Ok(())
    }

    fn remove(&mut self, at: usize) {
        self.usable.copy_within(at + 1..self.count, at);
        self.count -= 1;
    }
}

pub fn align_up(value: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    value.saturating_add(align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn r(start: u64, end: u64, kind: RegionKind) -> Region {
        Region { start, end, kind }
    }

    fn spans(map: &MemoryMap) -> Vec<(u64, u64)> {
        map.usable().iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn typical_qemu_map() {
        let raw = [
            r(0, 0x9fc00, RegionKind::Usable),
            r(0x9fc00, 0xa0000, RegionKind::Reserved),
            r(0xf0000, 0x100000, RegionKind::Reserved),
            r(0x100000, 0x7fe0000, RegionKind::Usable),
            r(0x7fe0000, 0x8000000, RegionKind::Reserved),
            r(0xfffc0000, 0x1_0000_0000, RegionKind::Reserved),
        ];
        let map = MemoryMap::from_firmware(raw.iter().copied()).unwrap();
        assert_eq!(spans(&map), [(0, 0x9f000), (0x100000, 0x7fe0000)]);
        assert_eq!(map.highest_usable(), 0x7fe0000);
    }

    #[test]
    fn unsorted_overlapping_and_unaligned_ranges_are_normalised() {
        let raw = [
            r(0x5000, 0x9123, RegionKind::Usable),
            r(0x1001, 0x6000, RegionKind::Usable),
            r(0x9000, 0xc000, RegionKind::Usable),
        ];
        let map = MemoryMap::from_firmware(raw.iter().copied()).unwrap();
        assert_eq!(spans(&map), [(0x2000, 0xc000)]);
    }

    #[test]
    fn reserved_wins_over_usable() {
        let raw = [r(0x10000, 0x20000, RegionKind::Usable), r(0x14000, 0x15800, RegionKind::AcpiNvs)];
        let map = MemoryMap::from_firmware(raw.iter().copied()).unwrap();
        assert_eq!(spans(&map), [(0x10000, 0x14000), (0x16000, 0x20000)]);
    }

    #[test]
    fn reserve_cuts_every_shape() {
        let raw = [r(0, 0x10000, RegionKind::Usable), r(0x20000, 0x30000, RegionKind::Usable)];
        let mut map = MemoryMap::from_firmware(raw.iter().copied()).unwrap();
        map.reserve(0x8000, 0x24000).unwrap();
        assert_eq!(spans(&map), [(0, 0x8000), (0x24000, 0x30000)]);
        map.reserve(0, 0x8000).unwrap();
        assert_eq!(spans(&map), [(0x24000, 0x30000)]);
        map.reserve(0x25000, 0x26000).unwrap();
        assert_eq!(spans(&map), [(0x24000, 0x25000), (0x26000, 0x30000)]);
    }

    #[test]
    fn take_finds_room_above_minimum() {
        let raw = [r(0, 0x3000, RegionKind::Usable), r(0x100000, 0x200000, RegionKind::Usable)];
        let mut map = MemoryMap::from_firmware(raw.iter().copied()).unwrap();
        assert_eq!(map.take(0x2001, 0x1000), Some(0x100000));
        assert_eq!(spans(&map), [(0, 0x3000), (0x103000, 0x200000)]);
        assert_eq!(map.take(0x1_0000_0000, 0), None);
    }

    #[test]
    fn no_usable_memory_is_an_error() {
        let raw = [r(0, 0x1000, RegionKind::Reserved), r(0x1000, 0x1800, RegionKind::Usable)];
        assert_eq!(MemoryMap::from_firmware(raw.iter().copied()).unwrap_err(), MemMapError::NoUsableMemory);
    }

    #[test]
    fn too_many_fragments_is_an_error_not_a_panic() {
        let raw: Vec<Region> =
            (0..MAX_REGIONS as u64 + 1).map(|i| r(i * 0x2000, i * 0x2000 + 0x1000, RegionKind::Usable)).collect();
        assert_eq!(MemoryMap::from_firmware(raw.iter().copied()).unwrap_err(), MemMapError::TooManyRegions);
    }
}
