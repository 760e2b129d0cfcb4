//! [`SmallDeque`]: a FIFO whose front element lives inline, for the planner's ready
//! instances. Why: a request that invokes one function makes one ready instance, and a
//! `VecDeque` allocated room for it (~250 guest instructions with its free in `cargo xtask
//! profile matmul3-native`); more elements (a composition's fan-out) go to a `VecDeque`.

use alloc::collections::VecDeque;

/// A FIFO: the oldest element inline, the others in a `VecDeque`. While `front` is empty the
/// `VecDeque` is too (a pop moves the next one in), so one element allocates nothing.
#[derive(Clone, Debug)]
pub struct SmallDeque<T> {
    front: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for SmallDeque<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SmallDeque<T> {
    pub const fn new() -> Self {
        Self { front: None, rest: VecDeque::new() }
    }

    pub fn len(&self) -> usize {
        usize::from(self.front.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.front.is_none()
    }

    pub fn push_back(&mut self, value: T) {
        if self.front.is_none() {
            self.front = Some(value);
        } else {
            self.rest.push_back(value);
        }
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let value = self.front.take()?;
        self.front = self.rest.pop_front();
        Some(value)
    }

    pub fn clear(&mut self) {
        self.front = None;
        self.rest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any pushes, pops and clears: the same answers as a `VecDeque`.
        #[test]
        fn behaves_as_a_vec_deque(ops in prop::collection::vec(prop::option::of(prop::option::of(any::<u16>())), 0..64)) {
            let (mut small, mut model) = (SmallDeque::new(), VecDeque::new());
            for op in ops {
                match op {
                    Some(Some(v)) => {
                        small.push_back(v);
                        model.push_back(v);
                    }
                    Some(None) => prop_assert_eq!(small.pop_front(), model.pop_front()),
                    None => {
                        small.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(small.len(), model.len());
                prop_assert_eq!(small.is_empty(), model.is_empty());
                prop_assert!(small.front.is_some() || small.rest.is_empty());
            }
        }
    }
}
