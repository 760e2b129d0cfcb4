//! Per-tenant memory accounting: what each tenant makes the node hold, against a budget the boot
//! configuration sets (DESIGN.md, "Tenants share a node, never its fate").
//!
//! A tenant has two [`MemoryAccount`]s ([`TenantMemory`]):
//! - **heap**: bytes of the kernel heap its requests hold — registered images and their prepared
//!   (compiled, loaded) forms, stored compositions, the data of its invocations in flight, and
//!   the linear memory of its wasm instances (wasmi keeps it on the heap);
//! - **frames**: page frames its native sandboxes may map (mapped on first touch, so the charge
//!   is the declared memory limit: an upper bound, never an undercount).
//!
//! Charging returns a [`MemoryCharge`] that gives the bytes back when dropped, so whatever holds
//! the memory (a stored function, an invocation, a running instance) holds its charge, and the
//! account cannot drift: deleting a function, cancelling an invocation or finishing an instance
//! releases exactly what it took, on whatever core the last reference goes away. Accounts are
//! atomic for that reason.
//!
//! Over budget, the charge is refused with [`OverBudget`], which names the pool, the request,
//! what is in use and the budget; the control plane answers 507 `memory_budget` with it. One
//! tenant's refusals never touch another's account.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::tenant::TenantId;

/// Which memory a charge takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pool {
    /// The kernel heap.
    Heap,
    /// Page frames for native sandboxes.
    Frames,
}

impl Pool {
    pub const ALL: [Self; 2] = [Self::Heap, Self::Frames];

    /// The label `/metrics` uses.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Heap => "heap",
            Self::Frames => "frames",
        }
    }
}

/// One tenant's usage of one pool, against its budget.
#[derive(Debug)]
pub struct MemoryAccount {
    pool: Pool,
    budget: u64,
    used: AtomicU64,
    /// The part of `used` charged for running sandboxes ([`MemoryAccount::charge_sandbox`]):
    /// memory that comes back by itself when runs end.
    sandboxes: AtomicU64,
    peak: AtomicU64,
    refused: AtomicU64,
}

/// A charge refused: taking `requested` more would pass the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverBudget {
    pub pool: Pool,
    pub requested: u64,
    pub used: u64,
    pub budget: u64,
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.pool {
            Pool::Heap => "memory",
            Pool::Frames => "sandbox memory",
        };
        write!(
            f,
            "this tenant's {what} budget is {} bytes, {} are in use, and {} more were needed; \
             delete functions or compositions, or wait for invocations to finish",
            self.budget, self.used, self.requested
        )
    }
}

/// A snapshot of one account, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountStats {
    pub used: u64,
    pub peak: u64,
    pub budget: u64,
    /// Charges refused since boot.
    pub refused: u64,
}

impl MemoryAccount {
    pub fn new(pool: Pool, budget: u64) -> Arc<Self> {
        Arc::new(Self {
            pool,
            budget,
            used: AtomicU64::new(0),
            sandboxes: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn pool(&self) -> Pool {
        self.pool
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> AccountStats {
        AccountStats {
            used: self.used(),
            peak: self.peak.load(Ordering::Relaxed),
            budget: self.budget,
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Whether `bytes` more would fit now (nothing is taken).
    pub fn fits(&self, bytes: u64) -> bool {
        self.used().checked_add(bytes).is_some_and(|total| total <= self.budget)
    }

    /// Takes `bytes`, or refuses without taking anything.
    pub fn charge(self: &Arc<Self>, bytes: u64) -> Result<MemoryCharge, OverBudget> {
        self.take(bytes)?;
        Ok(MemoryCharge { account: Some(Arc::clone(self)), bytes, sandbox: false })
    }

    /// Takes `bytes` for a sandbox about to run (its memory limit), or refuses. A refused
    /// sandbox that [`could fit later`](Self::fits_without_sandboxes) may wait for others to end.
    pub fn charge_sandbox(self: &Arc<Self>, bytes: u64) -> Result<MemoryCharge, OverBudget> {
        self.take(bytes)?;
        self.sandboxes.fetch_add(bytes, Ordering::AcqRel);
        Ok(MemoryCharge { account: Some(Arc::clone(self)), bytes, sandbox: true })
    }

    /// Whether `bytes` would fit once every running sandbox has ended: if not, waiting is no use.
    pub fn fits_without_sandboxes(&self, bytes: u64) -> bool {
        let held = self.used().saturating_sub(self.sandboxes.load(Ordering::Acquire));
        held.checked_add(bytes).is_some_and(|total| total <= self.budget)
    }

    fn take(&self, bytes: u64) -> Result<(), OverBudget> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let total = match used.checked_add(bytes) {
                Some(total) if total <= self.budget => total,
                _ => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return Err(OverBudget { pool: self.pool, requested: bytes, used, budget: self.budget });
                }
            };
            match self.used.compare_exchange_weak(used, total, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    self.peak.fetch_max(total, Ordering::Relaxed);
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: u64) {
        // Never below zero: a charge only gives back what it took.
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| Some(used.saturating_sub(bytes)));
    }
}

/// Bytes taken from an account, given back when dropped (or [`release`](Self::release)d).
#[derive(Debug, Default)]
pub struct MemoryCharge {
    account: Option<Arc<MemoryAccount>>,
    bytes: u64,
    /// Taken by [`MemoryAccount::charge_sandbox`].
    sandbox: bool,
}

impl MemoryCharge {
    /// A charge of nothing (for what no tenant pays: builtins, tests).
    pub const fn none() -> Self {
        Self { account: None, bytes: 0, sandbox: false }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Takes `bytes` more from the same account, or refuses and leaves the charge as it was.
    /// A charge of nothing has no account and grows without limit (it is not counted).
    pub fn grow(&mut self, bytes: u64) -> Result<(), OverBudget> {
        if let Some(account) = &self.account {
            account.take(bytes)?;
            if self.sandbox {
                account.sandboxes.fetch_add(bytes, Ordering::AcqRel);
            }
        }
        self.bytes = self.bytes.saturating_add(bytes);
        Ok(())
    }

    /// Gives back `bytes` of this charge (at most what it holds).
    pub fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        if let Some(account) = &self.account {
            if self.sandbox {
                let _ = account
                    .sandboxes
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| Some(n.saturating_sub(bytes)));
            }
            account.give_back(bytes);
        }
        self.bytes -= bytes;
    }

    /// Moves `other`'s bytes into this charge (both must be of the same account and kind, or
    /// `other` of none); `other` is left empty.
    pub fn absorb(&mut self, mut other: MemoryCharge) {
        let same = match (&self.account, &other.account) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) && self.sandbox == other.sandbox,
            (_, None) => true,
            (None, Some(_)) => false,
        };
        if same {
            self.bytes = self.bytes.saturating_add(core::mem::take(&mut other.bytes));
        }
        // Otherwise `other` gives its bytes back to its own account when dropped.
    }

    /// Gives everything back now.
    pub fn release(mut self) {
        self.shrink(self.bytes);
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.shrink(self.bytes);
    }
}

/// Budgets for every tenant: the same for each, from the boot configuration or the kernel's
/// share of its memory (docs/configuration.md, `limit tenant_memory`, `limit tenant_sandbox_memory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudgets {
    pub heap: u64,
    pub frames: u64,
}

impl MemoryBudgets {
    /// No limit: for tests and hosts that do not account.
    pub const UNLIMITED: Self = Self { heap: u64::MAX, frames: u64::MAX };
}

/// Every tenant's accounts, indexed by [`TenantId`].
#[derive(Debug)]
pub struct TenantMemory {
    heap: Vec<Arc<MemoryAccount>>,
    frames: Vec<Arc<MemoryAccount>>,
}

impl TenantMemory {
    pub fn new(tenants: usize, budgets: MemoryBudgets) -> Self {
        Self {
            heap: (0..tenants).map(|_| MemoryAccount::new(Pool::Heap, budgets.heap)).collect(),
            frames: (0..tenants).map(|_| MemoryAccount::new(Pool::Frames, budgets.frames)).collect(),
        }
    }

    /// `tenant`'s account for `pool`; a tenant outside the table (never handed out by the token
    /// table) gets an account with a budget of nothing.
    pub fn account(&self, tenant: TenantId, pool: Pool) -> Arc<MemoryAccount> {
        let accounts = match pool {
            Pool::Heap => &self.heap,
            Pool::Frames => &self.frames,
        };
        accounts.get(tenant.index() as usize).cloned().unwrap_or_else(|| MemoryAccount::new(pool, 0))
    }

    /// Takes `bytes` of `tenant`'s `pool`.
    pub fn charge(&self, tenant: TenantId, pool: Pool, bytes: u64) -> Result<MemoryCharge, OverBudget> {
        self.account(tenant, pool).charge(bytes)
    }

    /// Every tenant's snapshot of `pool`, in tenant order.
    pub fn stats(&self, pool: Pool) -> impl Iterator<Item = (TenantId, AccountStats)> + '_ {
        let accounts = match pool {
            Pool::Heap => &self.heap,
            Pool::Frames => &self.frames,
        };
        accounts.iter().enumerate().map(|(i, a)| (TenantId::new(i as u32), a.stats()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back_when_dropped() {
        let account = MemoryAccount::new(Pool::Heap, 100);
        let a = account.charge(60).unwrap();
        assert_eq!(account.used(), 60);
        let refused = account.charge(41).unwrap_err();
        assert_eq!(refused, OverBudget { pool: Pool::Heap, requested: 41, used: 60, budget: 100 });
        assert_eq!(account.used(), 60, "a refused charge takes nothing");
        let b = account.charge(40).unwrap();
        assert_eq!(account.used(), 100);
        drop(a);
        assert_eq!(account.used(), 40);
        b.release();
        assert_eq!(account.used(), 0);
        let stats = account.stats();
        assert_eq!((stats.peak, stats.refused, stats.budget), (100, 1, 100));
    }

    #[test]
    fn grow_and_shrink_keep_the_account_exact() {
        let account = MemoryAccount::new(Pool::Frames, 10);
        let mut c = account.charge(2).unwrap();
        c.grow(8).unwrap();
        assert!(c.grow(1).is_err());
        assert_eq!((c.bytes(), account.used()), (10, 10));
        c.shrink(4);
        c.shrink(100);
        assert_eq!((c.bytes(), account.used()), (0, 0));
        let mut d = account.charge(3).unwrap();
        d.absorb(account.charge(4).unwrap());
        assert_eq!((d.bytes(), account.used()), (7, 7));
        drop(d);
        assert_eq!(account.used(), 0);
    }

    #[test]
    fn absorbing_another_accounts_charge_leaves_it_with_its_account() {
        let one = MemoryAccount::new(Pool::Heap, 10);
        let two = MemoryAccount::new(Pool::Heap, 10);
        let mut a = one.charge(1).unwrap();
        a.absorb(two.charge(5).unwrap());
        assert_eq!((one.used(), two.used()), (1, 0), "the foreign charge went back to its own account");
        let mut none = MemoryCharge::none();
        none.grow(u64::MAX).unwrap();
        drop(none);
        assert_eq!(one.used(), 1);
    }

    #[test]
    fn sandboxes_may_wait_only_for_what_comes_back() {
        let account = MemoryAccount::new(Pool::Heap, 100);
        let held = account.charge(50).unwrap();
        let running = account.charge_sandbox(40).unwrap();
        assert!(account.charge_sandbox(20).is_err());
        assert!(account.fits_without_sandboxes(20), "fits once the running sandbox ends");
        assert!(!account.fits_without_sandboxes(51), "can never fit while the held bytes stay");
        drop(running);
        let again = account.charge_sandbox(20).unwrap();
        assert!(account.fits_without_sandboxes(30));
        drop((held, again));
        assert_eq!(account.used(), 0);
        assert!(account.fits_without_sandboxes(100));
    }

    #[test]
    fn tenants_are_separate() {
        let memory = TenantMemory::new(2, MemoryBudgets { heap: 10, frames: 20 });
        let a = memory.charge(TenantId::new(0), Pool::Heap, 10).unwrap();
        assert!(memory.charge(TenantId::new(0), Pool::Heap, 1).is_err());
        assert!(memory.charge(TenantId::new(1), Pool::Heap, 10).is_ok(), "the other tenant is untouched");
        assert!(memory.charge(TenantId::new(0), Pool::Frames, 20).is_ok(), "pools are separate");
        assert!(memory.charge(TenantId::new(7), Pool::Heap, 1).is_err(), "an unknown tenant has no budget");
        drop(a);
        let used: Vec<u64> = memory.stats(Pool::Heap).map(|(_, s)| s.used).collect();
        assert_eq!(used, [0, 0]);
    }

    #[test]
    fn overflowing_requests_are_refused_not_wrapped() {
        let account = MemoryAccount::new(Pool::Heap, u64::MAX);
        let _a = account.charge(u64::MAX - 1).unwrap();
        assert!(account.charge(2).is_err());
        assert!(!account.fits(2));
    }
}
