//! The MPK engine's protection keys.

/// The MPK engine's protection keys: 1..=15 (key 0 is never a user page's), one per live
/// sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyPool {
    used: u16,
}

/// The keys a sandbox may get.
const SANDBOX_KEYS: u16 = 0xfffe;

impl KeyPool {
    /// A pool with every key free.
    pub const fn new() -> Self {
        Self { used: 0 }
    }

    /// The lowest free key, now taken; `None` when all 15 are live (the caller waits).
    pub fn try_acquire(&mut self) -> Option<u8> {
        let free = SANDBOX_KEYS & !self.used;
        if free == 0 {
            return None;
        }
        let key = free.trailing_zeros() as u8;
        self.used |= 1 << key;
        Some(key)
    }

    /// The lowest free key among `preferred` (a mask of keys: bit `k` for key `k`), else the
    /// lowest free key, now taken; `None` when all 15 are live. (The kernel prefers the slots
    /// that still hold the function's image from an earlier run.)
    pub fn try_acquire_preferring(&mut self, preferred: u16) -> Option<u8> {
        let free = SANDBOX_KEYS & !self.used;
        if free & preferred != 0 {
            let key = (free & preferred).trailing_zeros() as u8;
            self.used |= 1 << key;
            return Some(key);
        }
        self.try_acquire()
    }

    /// Gives `key` back (after its sandbox's pages are gone).
    pub fn release(&mut self, key: u8) {
        if (1..16).contains(&key) {
            self.used &= !(1 << key);
        }
    }

    /// Keys taken now.
    pub fn live(&self) -> u32 {
        self.used.count_ones()
    }
}

#[cfg(test)]
mod key_tests {
    use super::KeyPool;

    #[test]
    fn fifteen_keys_then_none_then_reuse() {
        let mut pool = KeyPool::new();
        let keys: alloc::vec::Vec<u8> = (0..15).map(|_| pool.try_acquire().unwrap()).collect();
        assert_eq!(keys, (1..=15).collect::<alloc::vec::Vec<u8>>(), "keys 1..15, never 0");
        assert_eq!(pool.try_acquire(), None);
        assert_eq!(pool.live(), 15);
        pool.release(7);
        assert_eq!(pool.try_acquire(), Some(7));
        pool.release(9);
        pool.release(12);
        assert_eq!(pool.try_acquire_preferring(1 << 12 | 1 << 3), Some(12), "a preferred free key first");
        assert_eq!(pool.try_acquire_preferring(1 << 12 | 1 << 3), Some(9), "else the lowest free one");
        assert_eq!(pool.try_acquire_preferring(0xffff), None);
        pool.release(0);
        pool.release(200);
        assert_eq!(pool.live(), 15, "foreign keys are ignored");
    }
}
