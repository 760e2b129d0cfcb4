//! [`SmallMap`]: an ordered map whose first entry lives inline, for the per-invocation maps of
//! the control plane and the planner (instances running, pending, charged for a sandbox).
//!
//! Why: a request that invokes one function puts one entry in each of those maps and drops the
//! map when the invocation ends; a `BTreeMap` allocates a 500-byte leaf node for that entry and
//! walks its node code on every insert and remove. `cargo xtask profile matmul3-native` put
//! those maps at ~250 guest instructions each per request. A map with more entries (a
//! composition's fan-out) keeps the rest in a `BTreeMap`, so it stays O(log n).

use alloc::collections::BTreeMap;
use core::ops::Bound;

/// An ordered map: the first entry inline, any others in a `BTreeMap`. While `first` is empty
/// the `BTreeMap` is too (a removal of the inline entry moves the smallest other one in), so
/// an empty map allocates nothing and a map of one entry allocates nothing either.
#[derive(Clone, Debug)]
pub struct SmallMap<K, V> {
    first: Option<(K, V)>,
    rest: BTreeMap<K, V>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> SmallMap<K, V> {
    pub const fn new() -> Self {
        Self { first: None, rest: BTreeMap::new() }
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// Inserts `value` at `key`, returning the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match &mut self.first {
            None => {
                self.first = Some((key, value));
                None
            }
            Some((k, v)) if *k == key => Some(core::mem::replace(v, value)),
            Some(_) => self.rest.insert(key, value),
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        match &self.first {
            Some((k, v)) if k == key => Some(v),
            Some(_) => self.rest.get(key),
            None => None,
        }
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match &mut self.first {
            Some((k, v)) if k == key => Some(v),
            Some(_) => self.rest.get_mut(key),
            None => None,
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Removes the entry at `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        match &self.first {
            Some((k, _)) if k == key => {
                let (_, value) = core::mem::replace(&mut self.first, self.rest.pop_first())?;
                Some(value)
            }
            Some(_) => self.rest.remove(key),
            None => None,
        }
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        // The tree below the inline key, the inline entry, the tree above it. Without an inline
        // entry the tree is empty too, so both ranges are.
        let (below, above) = match &self.first {
            Some((k, _)) => (
                self.rest.range((Bound::Unbounded, Bound::Excluded(k))),
                self.rest.range((Bound::Excluded(k), Bound::Unbounded)),
            ),
            None => (self.rest.range(..), self.rest.range(..)),
        };
        below.chain(self.first.as_ref().map(|(k, v)| (k, v))).chain(above)
    }

    /// Every value in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Every entry in key order, values mutable: the tree's entries, the inline one merged in
    /// where its key falls.
    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        IterMut { first: self.first.as_mut().map(|(k, v)| (&*k, v)), rest: self.rest.iter_mut().peekable() }
    }
}

/// [`SmallMap::iter_mut`].
pub struct IterMut<'a, K, V> {
    first: Option<(&'a K, &'a mut V)>,
    rest: core::iter::Peekable<alloc::collections::btree_map::IterMut<'a, K, V>>,
}

impl<'a, K: Ord, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    fn next(&mut self) -> Option<Self::Item> {
        let first_next = match (&self.first, self.rest.peek()) {
            (Some((k, _)), Some((r, _))) => k < r,
            (first, _) => first.is_some(),
        };
        if first_next { self.first.take() } else { self.rest.next() }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a mut SmallMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = IterMut<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => (0u8..16).prop_map(Op::Remove),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Whatever is done to it, it answers as a `BTreeMap` given the same operations does.
        #[test]
        fn behaves_as_a_btree_map(ops in prop::collection::vec(op(), 0..64)) {
            let (mut small, mut model) = (SmallMap::new(), BTreeMap::new());
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(small.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(small.remove(&k), model.remove(&k)),
                    Op::Clear => {
                        small.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(small.len(), model.len());
                prop_assert_eq!(small.is_empty(), model.is_empty());
                prop_assert_eq!(small.iter().collect::<Vec<_>>(), model.iter().collect::<Vec<_>>());
                prop_assert_eq!(small.values().collect::<Vec<_>>(), model.values().collect::<Vec<_>>());
                prop_assert_eq!(small.iter_mut().collect::<Vec<_>>(), model.iter_mut().collect::<Vec<_>>());
                // Values changed through iter_mut are changed in the map.
                for (k, v) in &mut small {
                    *v = v.wrapping_add(u32::from(*k));
                }
                for (k, v) in model.iter_mut() {
                    *v = v.wrapping_add(u32::from(*k));
                }
                prop_assert_eq!(small.iter().collect::<Vec<_>>(), model.iter().collect::<Vec<_>>());
                for k in 0..16 {
                    prop_assert_eq!(small.get(&k), model.get(&k));
                    prop_assert_eq!(small.contains_key(&k), model.contains_key(&k));
                    prop_assert_eq!(small.get_mut(&k).copied(), model.get_mut(&k).copied());
                }
                // The inline entry is taken first: the tree is empty whenever the map is.
                prop_assert!(small.first.is_some() || small.rest.is_empty());
            }
        }
    }

    #[test]
    fn one_entry_allocates_no_node() {
        let mut map = SmallMap::new();
        map.insert(7u64, "seven");
        assert!(map.rest.is_empty() && map.len() == 1);
        assert_eq!(map.remove(&7), Some("seven"));
        assert!(map.is_empty());
    }
}
