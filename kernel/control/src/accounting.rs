//! What one invocation holds in its tenant's memory accounts ([`model::memory`]): the data of its
//! sets (inputs as decoded, then every instance's outputs as they come back) and, while they
//! run, the memory limit of each function instance (wasm instances on the heap, native sandboxes
//! in frames). Everything is given back when the instance ends or the invocation is dropped.
//!
//! Set data is charged as it enters and kept until the invocation ends (sets freed earlier by the
//! planner stay charged): an upper bound, never an undercount.

use alloc::sync::Arc;
use kcore::small_map::SmallMap;

use model::{EngineKind, MemoryAccount, MemoryCharge, OverBudget, Pool, Set, TenantId, TenantMemory};

/// Bytes charged per item besides its data and name: the item's own record.
const ITEM_OVERHEAD: u64 = 64;

/// The bytes `sets` hold, as charged.
pub(crate) fn set_bytes(sets: &[Set]) -> u64 {
    sets.iter()
        .flat_map(|s| &s.items)
        .map(|i| (i.data.len() + i.name.len()) as u64 + ITEM_OVERHEAD)
        .fold(0, u64::saturating_add)
}

/// Which pool an engine's instances take their memory from.
pub(crate) fn sandbox_pool(engine: EngineKind) -> Pool {
    match engine {
        EngineKind::Wasm => Pool::Heap,
        _ => Pool::Frames,
    }
}

/// Whether an instance may start now.
#[derive(Debug)]
pub(crate) enum Admission {
    Granted,
    /// Over budget now, but it fits once the tenant's running instances end: try again later.
    Wait,
    /// It can never fit while the tenant holds what it holds.
    Refused(OverBudget),
}

#[derive(Debug)]
pub(crate) struct InvocationMemory {
    heap: Arc<MemoryAccount>,
    frames: Arc<MemoryAccount>,
    data: MemoryCharge,
    /// Running instances (planner instance id) and their memory limit's charge.
    sandboxes: SmallMap<u64, MemoryCharge>,
}

impl InvocationMemory {
    /// Charges `inputs` to `tenant`'s heap account.
    pub fn new(memory: &TenantMemory, tenant: TenantId, inputs: &[Set]) -> Result<Self, OverBudget> {
        let heap = memory.account(tenant, Pool::Heap);
        let data = heap.charge(set_bytes(inputs))?;
        Ok(Self { frames: memory.account(tenant, Pool::Frames), heap, data, sandboxes: SmallMap::new() })
    }

    /// Charges what an instance returned.
    pub fn charge_outputs(&mut self, outputs: &[Set]) -> Result<(), OverBudget> {
        self.data.grow(set_bytes(outputs))
    }

    /// Charges `bytes` of `engine`'s pool for instance `instance` until [`end`](Self::end).
    pub fn admit(&mut self, instance: u64, engine: EngineKind, bytes: u64) -> Admission {
        let account = match sandbox_pool(engine) {
            Pool::Heap => &self.heap,
            Pool::Frames => &self.frames,
        };
        match account.charge_sandbox(bytes) {
            Ok(charge) => {
                self.sandboxes.insert(instance, charge);
                Admission::Granted
            }
            Err(_) if account.fits_without_sandboxes(bytes) => Admission::Wait,
            Err(e) => Admission::Refused(e),
        }
    }

    /// Instance `instance` ended: its sandbox memory comes back.
    pub fn end(&mut self, instance: u64) {
        self.sandboxes.remove(&instance);
    }

    /// Heap bytes charged for the data now.
    #[cfg(test)]
    pub fn data_bytes(&self) -> u64 {
        self.data.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use model::{Bytes, Item, MemoryBudgets};

    fn set(bytes: usize) -> Set {
        Set { name: "s".into(), items: vec![Item { name: "".into(), key: None, data: Bytes::from(vec![0u8; bytes]) }] }
    }

    #[test]
    fn inputs_outputs_and_sandboxes_are_charged_and_given_back() {
        let memory = TenantMemory::new(2, MemoryBudgets { heap: 10_000, frames: 100 });
        let tenant = TenantId::new(0);
        let mut inv = InvocationMemory::new(&memory, tenant, &[set(1000)]).unwrap();
        assert_eq!(inv.data_bytes(), 1000 + ITEM_OVERHEAD);
        inv.charge_outputs(&[set(2000)]).unwrap();
        assert!(inv.charge_outputs(&[set(9000)]).is_err(), "over the heap budget");
        assert!(matches!(inv.admit(1, EngineKind::Mpk, 60), Admission::Granted));
        assert!(matches!(inv.admit(2, EngineKind::Paging, 60), Admission::Wait), "fits once instance 1 ends");
        assert!(matches!(inv.admit(3, EngineKind::Native, 101), Admission::Refused(_)), "can never fit");
        inv.end(1);
        assert!(matches!(inv.admit(2, EngineKind::Paging, 60), Admission::Granted));
        assert!(matches!(inv.admit(4, EngineKind::Wasm, 5000), Admission::Granted), "wasm memory is heap");
        assert_eq!(memory.account(TenantId::new(1), Pool::Heap).used(), 0, "the other tenant pays nothing");
        drop(inv);
        assert_eq!(memory.account(tenant, Pool::Heap).used(), 0);
        assert_eq!(memory.account(tenant, Pool::Frames).used(), 0);
    }

    #[test]
    fn inputs_over_budget_are_refused() {
        let memory = TenantMemory::new(1, MemoryBudgets { heap: 100, frames: 100 });
        let e = InvocationMemory::new(&memory, TenantId::new(0), &[set(100)]).unwrap_err();
        assert_eq!(e.requested, 100 + ITEM_OVERHEAD);
        assert_eq!(memory.account(TenantId::new(0), Pool::Heap).used(), 0);
    }
}
