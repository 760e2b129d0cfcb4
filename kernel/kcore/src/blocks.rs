//! Small blocks kept after a free, per CPU, to be handed out again by the next allocation of
//! their size class without a trip through the general allocator.
//!
//! The kernel heap (`kernel/src/mm/heap.rs`) puts one [`Cache`] per CPU in front of `talc`.
//! A request on the I/O path allocates and frees a handful of small blocks (a request's path
//! and header fields, a response's header list, its encoded head); through `talc` and its lock
//! each allocation and free cost about 270 guest instructions together, through a cache hit a
//! few dozen. Requests up to [`MAX_SMALL`] bytes (alignment up to [`SMALL_ALIGN`]) are rounded
//! up to their class's size, so any block of a class can serve any request of it; larger ones
//! go to `talc` directly.
//!
//! A cache holds addresses, not pointers: it never touches the memory it keeps (no `unsafe`
//! here), and what it keeps is bounded ([`DEPTH`] blocks per class, [`MAX_CACHED_BYTES`] in all).

/// The largest request a cache serves, in bytes.
pub const MAX_SMALL: usize = 1024;

/// The largest alignment a cache serves (every class size is a multiple of it).
pub const SMALL_ALIGN: usize = 16;

/// The size of each class's blocks, in bytes.
pub const CLASS_SIZES: [usize; CLASSES] = [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024];

/// Number of size classes.
pub const CLASSES: usize = 12;

/// Blocks kept per class; a free beyond that goes back to the general allocator.
pub const DEPTH: usize = 32;

/// The most one cache can hold, in bytes.
pub const MAX_CACHED_BYTES: usize = {
    let mut sum = 0;
    let mut i = 0;
    while i < CLASSES {
        sum += CLASS_SIZES[i] * DEPTH;
        i += 1;
    }
    sum
};

/// Class index by `ceil(size / 16)`, for sizes 0..=1024.
const CLASS_BY_SIXTEENTHS: [u8; MAX_SMALL / 16 + 1] = {
    let mut table = [0u8; MAX_SMALL / 16 + 1];
    let mut sixteenths = 0;
    while sixteenths < table.len() {
        let size = sixteenths * 16;
        let mut class = 0;
        while CLASS_SIZES[class] < size {
            class += 1;
        }
        table[sixteenths] = class as u8;
        sixteenths += 1;
    }
    table
};

/// The class that serves a request of `size` bytes aligned to `align`, or `None` when the
/// general allocator must.
#[inline]
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL || align > SMALL_ALIGN {
        return None;
    }
    Some(CLASS_BY_SIXTEENTHS[size.div_ceil(16)] as usize)
}

/// One CPU's kept blocks: a stack of addresses per class.
pub struct Cache {
    stacks: [[usize; DEPTH]; CLASSES],
    lens: [u8; CLASSES],
    bytes: usize,
}

impl Cache {
    pub const fn new() -> Self {
        Self { stacks: [[0; DEPTH]; CLASSES], lens: [0; CLASSES], bytes: 0 }
    }

    /// A kept block of `class`, most recently freed first (the one likeliest to be in cache).
    #[inline]
    pub fn take(&mut self, class: usize) -> Option<usize> {
        let len = self.lens[class] as usize;
        if len == 0 {
            return None;
        }
        self.lens[class] = (len - 1) as u8;
        self.bytes -= CLASS_SIZES[class];
        Some(self.stacks[class][len - 1])
    }

    /// Keeps a freed block of `class`; false when the class is full (the caller frees it).
    #[inline]
    pub fn keep(&mut self, class: usize, addr: usize) -> bool {
        let len = self.lens[class] as usize;
        if len == DEPTH {
            return false;
        }
        self.stacks[class][len] = addr;
        self.lens[class] = (len + 1) as u8;
        self.bytes += CLASS_SIZES[class];
        true
    }

    /// Hands every kept block to `free` (class, address) and keeps none.
    pub fn drain(&mut self, mut free: impl FnMut(usize, usize)) {
        for class in 0..CLASSES {
            for &addr in &self.stacks[class][..self.lens[class] as usize] {
                free(class, addr);
            }
            self.lens[class] = 0;
        }
        self.bytes = 0;
    }

    /// Bytes of blocks kept (class sizes).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    #[test]
    fn every_small_request_gets_the_smallest_class_that_holds_it() {
        for size in 0..=MAX_SMALL {
            for align in [1, 2, 4, 8, 16] {
                let class = class_of(size, align).unwrap();
                assert!(CLASS_SIZES[class] >= size, "size {size} in class {class}");
                assert!(class == 0 || CLASS_SIZES[class - 1] < size, "size {size}: a smaller class holds it");
                assert_eq!(CLASS_SIZES[class] % align, 0);
            }
        }
        assert_eq!(class_of(MAX_SMALL + 1, 8), None);
        assert_eq!(class_of(64, 32), None);
        assert_eq!(class_of(usize::MAX, 8), None);
    }

    #[test]
    fn a_class_hands_back_what_it_kept_and_no_more_than_depth() {
        let mut cache = Cache::new();
        assert_eq!(cache.take(3), None);
        for i in 0..DEPTH {
            assert!(cache.keep(3, 0x1000 + i * 64));
        }
        assert!(!cache.keep(3, 0xdead0), "a full class refuses");
        assert_eq!(cache.bytes(), DEPTH * CLASS_SIZES[3]);
        assert_eq!(cache.take(3), Some(0x1000 + (DEPTH - 1) * 64), "last freed first");
        assert_eq!(cache.take(2), None, "classes are separate");
        let mut drained = Vec::new();
        cache.drain(|class, addr| drained.push((class, addr)));
        assert_eq!(drained.len(), DEPTH - 1);
        assert!(drained.iter().all(|&(class, _)| class == 3));
        assert_eq!(cache.bytes(), 0);
        assert_eq!(cache.take(3), None);
    }

    #[test]
    fn the_bound_is_what_a_full_cache_holds() {
        let mut cache = Cache::new();
        let mut addr = 0;
        for class in 0..CLASSES {
            while cache.keep(class, addr) {
                addr += 1;
            }
        }
        assert_eq!(cache.bytes(), MAX_CACHED_BYTES);
    }

    proptest::proptest! {
        /// Any sequence of keeps and takes: every address comes out at most once, only from
        /// the class it went into, and the byte count matches what is held.
        #[test]
        fn keeps_and_takes_never_duplicate_or_mix_classes(ops in proptest::collection::vec((0..CLASSES, proptest::bool::ANY), 0..400)) {
            let mut cache = Cache::new();
            let mut held: Vec<BTreeSet<usize>> = (0..CLASSES).map(|_| BTreeSet::new()).collect();
            let mut next = 1;
            for (class, keep) in ops {
                if keep {
                    if cache.keep(class, next) {
                        held[class].insert(next);
                    } else {
                        proptest::prop_assert_eq!(held[class].len(), DEPTH);
                    }
                    next += 1;
                } else {
                    match cache.take(class) {
                        Some(addr) => proptest::prop_assert!(held[class].remove(&addr)),
                        None => proptest::prop_assert!(held[class].is_empty()),
                    }
                }
                let bytes: usize = held.iter().zip(CLASS_SIZES).map(|(h, size)| h.len() * size).sum();
                proptest::prop_assert_eq!(cache.bytes(), bytes);
            }
        }
    }
}
