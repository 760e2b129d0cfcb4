//! Bounded, fair-share run queues.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

/// A tenant, as the control plane numbers them.
pub type TenantId = u32;

/// An invocation, by the control plane's number for it (`control::InvocationId`).
pub type InvocationId = u64;

/// The receipt for a queued item: who queued it, for which invocation, and its place in the
/// global arrival order (`seq` strictly increases with every accepted push).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Receipt {
    /// Global arrival number, strictly increasing per queue.
    pub seq: u64,
    /// The tenant the item was queued for.
    pub tenant: TenantId,
    /// The invocation the item belongs to.
    pub invocation: InvocationId,
}

/// The queue is at its global capacity: the item was not queued and is handed back. The front
/// door answers `503 Service Unavailable` with a `Retry-After` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Full<T> {
    /// The rejected item, returned to the caller.
    pub item: T,
    /// The queue's global capacity.
    pub capacity: usize,
}

impl<T> Full<T> {
    /// The rejected item.
    pub fn into_inner(self) -> T {
        self.item
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Full").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run queue full ({} items queued)", self.capacity)
    }
}

impl<T> core::error::Error for Full<T> {}

struct TenantQueue<T> {
    items: VecDeque<(Receipt, T)>,
    /// Items taken from this tenant in its current turn (reset when the turn ends).
    served: u32,
}

/// Items' room a tenant's emptied FIFO keeps for its next pushes: what its first push made
/// (a `VecDeque`'s first allocation), so that a burst leaves no more than one item did.
const KEPT_ROOM: usize = 4;

/// Bounded run queues of work items `T`.
///
/// # Policy
///
/// - **FIFO per tenant**: a tenant's items are popped in the order they were pushed.
/// - **Weighted round-robin across tenants**: tenants with queued work form a ring, in the order
///   they last became non-empty. [`pop`](Self::pop) takes the next item of the tenant at the
///   front of the ring. A tenant's turn lasts `weight` pops (default 1, see
///   [`set_weight`](Self::set_weight)); then it moves to the back of the ring. A tenant whose
///   queue runs empty leaves the ring (its turn ends) and joins at the back when it next gets
///   work. Work queued by others never overtakes a tenant already in the ring.
/// - **Bound**: while tenant `A` has queued work and weights are unchanged, at most `W - w(A)`
///   other items are popped between two consecutive pops of `A`'s items, where `W` is the sum of
///   the weights of the tenants with queued work just after `A`'s earlier pop (a tenant that gets
///   work later joins the ring behind `A`). With two tenants of weight 1 the
///   pops alternate strictly; however many items one tenant queued first, the other waits at
///   most one pop (the remainder of the current turn).
/// - **Capacity**: one global bound on queued items across all tenants. A push at capacity fails
///   with [`Full`] and changes nothing.
/// - **Cancellation**: [`cancel_invocation`](Self::cancel_invocation) removes every queued
///   item of an invocation; the remaining items keep their order and the ring keeps its order.
///
/// No operation panics; all are `O(log tenants)` except cancellation, which is linear in the
/// queued items.
pub struct RunQueue<T> {
    capacity: usize,
    len: usize,
    next_seq: u64,
    tenants: BTreeMap<TenantId, TenantQueue<T>>,
    /// Tenants with queued work, the front one is taking its turn.
    ring: VecDeque<TenantId>,
    weights: BTreeMap<TenantId, u32>,
}

impl<T> fmt::Debug for RunQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunQueue")
            .field("capacity", &self.capacity)
            .field("len", &self.len)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<T> RunQueue<T> {
    /// An empty queue that holds at most `capacity` items in all (0 rejects every push).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            len: 0,
            next_seq: 0,
            tenants: BTreeMap::new(),
            ring: VecDeque::new(),
            weights: BTreeMap::new(),
        }
    }

    /// The global capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items queued, all tenants together.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets a tenant's weight: the number of consecutive pops its turn lasts. `0` is taken as 1.
    /// Takes effect from the tenant's next pop.
    pub fn set_weight(&mut self, tenant: TenantId, weight: u32) {
        let weight = weight.max(1);
        if weight == 1 {
            self.weights.remove(&tenant);
        } else {
            self.weights.insert(tenant, weight);
        }
    }

    /// A tenant's weight (1 unless set).
    pub fn weight(&self, tenant: TenantId) -> u32 {
        self.weights.get(&tenant).copied().unwrap_or(1)
    }

    /// Queues `item` for `tenant` as part of `invocation`, or hands it back in [`Full`] when
    /// the queue is at capacity.
    pub fn push(&mut self, tenant: TenantId, invocation: InvocationId, item: T) -> Result<Receipt, Full<T>> {
        if self.len >= self.capacity {
            return Err(Full { item, capacity: self.capacity });
        }
        Ok(self.enqueue(tenant, invocation, item))
    }

    /// Queues again an item that was just popped and has more to do (a run preempted at the end
    /// of its time slice): at the back of its tenant's FIFO, so the tenant's other work and,
    /// through the ring, every other tenant's turn come before it. Never refused: the item held
    /// a place until its pop, so the queue exceeds its capacity by at most the number of items
    /// popped and not yet requeued (one per core); new pushes stay refused until it is back
    /// under capacity.
    pub fn requeue(&mut self, tenant: TenantId, invocation: InvocationId, item: T) -> Receipt {
        self.enqueue(tenant, invocation, item)
    }

    /// At the back of `tenant`'s FIFO, the tenant joining the ring if it had nothing queued.
    fn enqueue(&mut self, tenant: TenantId, invocation: InvocationId, item: T) -> Receipt {
        let receipt = Receipt { seq: self.next_seq, tenant, invocation };
        self.next_seq = self.next_seq.wrapping_add(1);
        let queue = self.tenants.entry(tenant).or_insert_with(|| TenantQueue { items: VecDeque::new(), served: 0 });
        if queue.items.is_empty() {
            queue.served = 0;
            self.ring.push_back(tenant);
        }
        queue.items.push_back((receipt, item));
        self.len += 1;
        receipt
    }

    /// Takes the next item by the policy (see the type's docs), for an idle core.
    pub fn pop(&mut self) -> Option<(Receipt, T)> {
        let weight = self.weight(*self.ring.front()?);
        let tenant = *self.ring.front()?;
        let queue = self.tenants.get_mut(&tenant)?;
        let entry = queue.items.pop_front()?;
        self.len = self.len.saturating_sub(1);
        queue.served = queue.served.saturating_add(1);
        if queue.items.is_empty() {
            // The tenant's queue stays, empty, for its next push (no map entry and FIFO made
            // and dropped around every item); tenants are the configuration's, so the entries
            // are bounded, and what a burst grew the FIFO to is given back (dropped, not
            // shrunk: a shrink reallocates, and this path may not fail).
            if queue.items.capacity() > KEPT_ROOM {
                queue.items = VecDeque::new();
            }
            self.ring.pop_front();
        } else if queue.served >= weight {
            queue.served = 0;
            self.ring.rotate_left(1);
        }
        Some(entry)
    }

    /// Removes every queued item of `invocation` (when one of its instances failed or its
    /// deadline passed) and returns them in arrival order. The rest keep their order.
    pub fn cancel_invocation(&mut self, invocation: InvocationId) -> Vec<(Receipt, T)> {
        let mut removed = Vec::new();
        for queue in self.tenants.values_mut() {
            if !queue.items.iter().any(|(t, _)| t.invocation == invocation) {
                continue;
            }
            let items = core::mem::take(&mut queue.items);
            for (receipt, item) in items {
                if receipt.invocation == invocation {
                    removed.push((receipt, item));
                } else {
                    queue.items.push_back((receipt, item));
                }
            }
        }
        if removed.is_empty() {
            return removed;
        }
        self.len = self.len.saturating_sub(removed.len());
        let tenants = &self.tenants;
        self.ring.retain(|t| tenants.get(t).is_some_and(|q| !q.items.is_empty()));
        removed.sort_by_key(|(t, _)| t.seq);
        removed
    }

    /// Items queued for `tenant`.
    pub fn depth(&self, tenant: TenantId) -> usize {
        self.tenants.get(&tenant).map_or(0, |q| q.items.len())
    }

    /// `(tenant, queued items)` for every tenant with queued work, by tenant id, for metrics.
    pub fn depths(&self) -> impl Iterator<Item = (TenantId, usize)> + '_ {
        self.tenants.iter().filter(|(_, q)| !q.items.is_empty()).map(|(t, q)| (*t, q.items.len()))
    }

    /// The receipts of every queued item in the order [`pop`](Self::pop) would take them if
    /// nothing else were pushed (for tests and debugging; allocates).
    pub fn pop_order(&self) -> Vec<Receipt> {
        let mut ring: VecDeque<(TenantId, u32, usize)> =
            self.ring.iter().map(|t| (*t, self.tenants.get(t).map_or(0, |q| q.served), 0)).collect();
        let mut out = Vec::with_capacity(self.len);
        while let Some((tenant, served, next)) = ring.pop_front() {
            let Some(queue) = self.tenants.get(&tenant) else { continue };
            let Some((receipt, _)) = queue.items.get(next) else { continue };
            out.push(*receipt);
            let served = served.saturating_add(1);
            if next + 1 >= queue.items.len() {
                continue;
            }
            if served >= self.weight(tenant) {
                ring.push_back((tenant, 0, next + 1));
            } else {
                ring.push_front((tenant, served, next + 1));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut RunQueue<u32>) -> Vec<(TenantId, u32)> {
        core::iter::from_fn(|| q.pop()).map(|(t, v)| (t.tenant, v)).collect()
    }

    #[test]
    fn fifo_within_a_tenant() {
        let mut q = RunQueue::new(10);
        for i in 0..5 {
            q.push(7, 1, i).unwrap();
        }
        assert_eq!(drain(&mut q), (0..5).map(|i| (7, i)).collect::<Vec<_>>());
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn two_tenants_alternate() {
        let mut q = RunQueue::new(2000);
        for i in 0..1000 {
            q.push(1, 1, i).unwrap();
        }
        for i in 0..3 {
            q.push(2, 2, 1000 + i).unwrap();
        }
        let order: Vec<_> = drain(&mut q).into_iter().map(|(t, _)| t).collect();
        // Tenant 1 was at the front; then strict alternation while both have work.
        assert_eq!(&order[..7], &[1, 2, 1, 2, 1, 2, 1]);
        assert!(order[7..].iter().all(|t| *t == 1));
    }

    #[test]
    fn weights_lengthen_turns() {
        let mut q = RunQueue::new(100);
        q.set_weight(1, 3);
        for i in 0..6 {
            q.push(1, 1, i).unwrap();
            q.push(2, 2, 10 + i).unwrap();
        }
        let expected = q.pop_order();
        let order: Vec<_> = drain(&mut q).into_iter().map(|(t, _)| t).collect();
        assert_eq!(order, [1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 2, 2]);
        assert_eq!(expected.iter().map(|t| t.tenant).collect::<Vec<_>>(), order);
        q.set_weight(1, 0);
        assert_eq!(q.weight(1), 1);
    }

    #[test]
    fn capacity_and_full() {
        let mut q = RunQueue::new(2);
        q.push(1, 1, 10).unwrap();
        q.push(2, 2, 20).unwrap();
        let full = q.push(3, 3, 30).unwrap_err();
        assert_eq!(full.capacity, 2);
        assert_eq!(full.into_inner(), 30);
        assert_eq!(q.len(), 2);
        assert_eq!(q.depth(3), 0);
        q.pop().unwrap();
        q.push(3, 3, 30).unwrap();
        assert!(RunQueue::new(0).push(1, 1, 1).is_err());
    }

    #[test]
    fn cancel_keeps_the_rest_in_order() {
        let mut q = RunQueue::new(100);
        q.push(1, 100, 0).unwrap();
        q.push(1, 200, 1).unwrap();
        q.push(2, 100, 2).unwrap();
        q.push(1, 100, 3).unwrap();
        q.push(2, 300, 4).unwrap();
        let removed: Vec<_> = q.cancel_invocation(100).into_iter().map(|(_, v)| v).collect();
        assert_eq!(removed, [0, 2, 3]);
        assert_eq!(q.len(), 2);
        assert!(q.cancel_invocation(100).is_empty());
        assert_eq!(drain(&mut q), [(1, 1), (2, 4)]);
    }

    #[test]
    fn cancel_empties_tenants_out_of_the_ring() {
        let mut q = RunQueue::new(100);
        q.push(1, 5, 0).unwrap();
        q.push(2, 6, 1).unwrap();
        q.cancel_invocation(5);
        assert_eq!(q.depths().collect::<Vec<_>>(), [(2, 1)]);
        assert_eq!(drain(&mut q), [(2, 1)]);
    }

    #[test]
    fn a_requeued_item_waits_for_every_other_tenant() {
        let mut q = RunQueue::new(3);
        q.push(1, 10, 0).unwrap();
        q.push(2, 20, 1).unwrap();
        q.push(3, 30, 2).unwrap();
        // Tenant 1's long run is taken, preempted, and queued again, twice over.
        let (t, v) = q.pop().unwrap();
        assert_eq!((t.tenant, v), (1, 0));
        q.push(2, 20, 3).unwrap(); // the place it left is taken meanwhile: the queue is full
        assert!(q.push(4, 40, 9).is_err());
        let again = q.requeue(1, 10, v);
        assert!(again.seq > t.seq);
        assert_eq!(q.len(), 4, "a requeue is never refused, even at capacity");
        assert!(q.push(4, 40, 9).is_err(), "new work waits until the queue is under capacity");
        assert_eq!(drain(&mut q), [(2, 1), (3, 2), (1, 0), (2, 3)]);
    }

    #[test]
    fn a_requeued_item_goes_behind_its_own_tenants_work() {
        let mut q = RunQueue::new(10);
        q.push(1, 10, 0).unwrap();
        q.push(1, 11, 1).unwrap();
        let (_, v) = q.pop().unwrap();
        q.requeue(1, 10, v);
        assert_eq!(drain(&mut q), [(1, 1), (1, 0)]);
        // Cancellation finds requeued items like any other.
        q.requeue(1, 10, 5);
        assert_eq!(q.cancel_invocation(10).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn depths_for_metrics() {
        let mut q = RunQueue::new(100);
        q.push(3, 1, 0).unwrap();
        q.push(1, 1, 0).unwrap();
        q.push(3, 1, 0).unwrap();
        assert_eq!(q.depths().collect::<Vec<_>>(), [(1, 1), (3, 2)]);
        assert_eq!(q.depth(3), 2);
        assert_eq!(q.depth(9), 0);
    }
}
