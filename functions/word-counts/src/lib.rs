//! The word → count table `wordcount` and `wordcount_merge` share: an open-addressing hash
//! table (linear probing, FNV-1a) over a vector of entries, sorted once at the end. A `BTreeMap`
//! did a search of string comparisons per word, which cost about 1000 fuel per word in the wasm
//! engine (9000 with 20 000 distinct words); this costs a hash and, almost always, one
//! comparison. A library of the functions workspace, not a function: it has no
//! `[package.metadata.pappus]` and is never registered.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Word → count, in order of first appearance until [`Counts::into_sorted`].
#[derive(Default)]
pub struct Counts {
    /// Distinct words and their counts, in order of first appearance.
    entries: Vec<(String, u64)>,
    /// `(hash, index into entries + 1)`, 0 for an empty slot; the length is 0 or a power of
    /// two, and at most three quarters are used, so a probe always ends.
    slots: Vec<(u32, u32)>,
}

impl Counts {
    /// Adds `n` to the count of `word` and returns the new count, or `None` (and changes
    /// nothing) when it would pass `u64::MAX`.
    pub fn add(&mut self, word: &str, n: u64) -> Option<u64> {
        if (self.entries.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let hash = fnv1a(word.as_bytes());
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        while let Some(&(h, index)) = self.slots.get(at).filter(|&&(_, index)| index != 0) {
            // `index` comes from `entries.len()` after a push, so `get_mut` always finds it.
            if h == hash
                && let Some((w, total)) = self.entries.get_mut(index as usize - 1)
                && w == word
            {
                *total = total.checked_add(n)?;
                return Some(*total);
            }
            at = (at + 1) & mask;
        }
        self.entries.push((String::from(word), n));
        // At most 3/4 of a table that fits in memory: the index fits in a u32.
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = (hash, self.entries.len() as u32);
        }
        Some(n)
    }

    /// Doubles the table (16 slots at first) and places every entry again by its stored hash.
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(16);
        let mask = len - 1;
        let mut slots = vec![(0u32, 0u32); len];
        for &(hash, index) in self.slots.iter().filter(|&&(_, index)| index != 0) {
            let mut at = hash as usize & mask;
            while slots.get(at).is_some_and(|&(_, i)| i != 0) {
                at = (at + 1) & mask;
            }
            if let Some(slot) = slots.get_mut(at) {
                *slot = (hash, index);
            }
        }
        self.slots = slots;
    }

    /// How many distinct words.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no word was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The words and counts, sorted by word.
    pub fn into_sorted(mut self) -> Vec<(String, u64)> {
        self.entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        self.entries
    }
}

/// The 32-bit FNV-1a hash: a tiny loop, and good enough for words (no adversary gains
/// anything by colliding them but a slower run of their own function).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn the_hash_table_agrees_with_a_btree_map() {
        use alloc::collections::BTreeMap;
        let (mut table, mut reference) = (Counts::default(), BTreeMap::new());
        let mut x = 12345u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let word = format!("w{}", (x >> 16) % 3000);
            let n = u64::from(x % 5);
            let total = reference.entry(word.clone()).and_modify(|t| *t += n).or_insert(n);
            assert_eq!(table.add(&word, n), Some(*total));
        }
        assert_eq!(table.len(), reference.len());
        assert_eq!(table.into_sorted(), reference.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_hash_table_refuses_to_overflow_and_keeps_the_count() {
        let mut table = Counts::default();
        assert_eq!(table.add("a", u64::MAX - 1), Some(u64::MAX - 1));
        assert_eq!(table.add("a", 2), None);
        assert_eq!(table.add("a", 1), Some(u64::MAX));
        assert_eq!(table.add("", 0), Some(0));
        assert_eq!(table.into_sorted(), vec![(String::new(), 0), ("a".to_string(), u64::MAX)]);
    }
}
