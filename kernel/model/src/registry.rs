//! A store of named entries, namespaced by tenant. The kernel keeps functions in one and
//! compositions in another. Every operation takes the [`TenantId`], and entries live in one map
//! per tenant, so no call can reach another tenant's entries: isolation is a property of the
//! API, not a filter each caller has to remember.
//!
//! Names are not checked here: the front door validates them ([`crate::validate_function_name`])
//! before they reach a registry.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt;

use crate::tenant::TenantId;

/// Why an entry was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// The tenant already has `limit` entries; delete one first (HTTP 409 or 429).
    Full { limit: usize },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { limit } => write!(f, "this tenant already has the maximum of {limit} entries"),
        }
    }
}

/// Entries of type `T` by (tenant, name); names are listed in byte order.
#[derive(Clone, Debug)]
pub struct Registry<T> {
    tenants: BTreeMap<TenantId, BTreeMap<String, T>>,
    limit_per_tenant: Option<usize>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Registry<T> {
    /// A registry without a per-tenant limit.
    pub const fn new() -> Self {
        Self { tenants: BTreeMap::new(), limit_per_tenant: None }
    }

    /// A registry in which each tenant holds at most `limit` entries, so that one tenant cannot
    /// exhaust the kernel's memory for the others.
    pub const fn with_limit(limit: usize) -> Self {
        Self { tenants: BTreeMap::new(), limit_per_tenant: Some(limit) }
    }

    pub fn limit_per_tenant(&self) -> Option<usize> {
        self.limit_per_tenant
    }

    /// Stores `value` under `name` for `tenant`. Returns the value it replaced, if any (`Some`
    /// means "updated", `None` means "created"). Replacing never counts against the limit.
    pub fn put(&mut self, tenant: TenantId, name: &str, value: T) -> Result<Option<T>, RegistryError> {
        let entries = self.tenants.entry(tenant).or_default();
        if let Some(slot) = entries.get_mut(name) {
            return Ok(Some(core::mem::replace(slot, value)));
        }
        if let Some(limit) = self.limit_per_tenant.filter(|&limit| entries.len() >= limit) {
            if entries.is_empty() {
                self.tenants.remove(&tenant);
            }
            return Err(RegistryError::Full { limit });
        }
        entries.insert(name.to_owned(), value);
        Ok(None)
    }

    /// The entry `name` of `tenant`.
    pub fn get(&self, tenant: TenantId, name: &str) -> Option<&T> {
        self.tenants.get(&tenant)?.get(name)
    }

    /// The entry `name` of `tenant`, to change in place.
    pub fn get_mut(&mut self, tenant: TenantId, name: &str) -> Option<&mut T> {
        self.tenants.get_mut(&tenant)?.get_mut(name)
    }

    /// Removes and returns the entry `name` of `tenant`.
    pub fn delete(&mut self, tenant: TenantId, name: &str) -> Option<T> {
        let entries = self.tenants.get_mut(&tenant)?;
        let removed = entries.remove(name);
        if entries.is_empty() {
            self.tenants.remove(&tenant);
        }
        removed
    }

    /// The entries of `tenant`, sorted by name (byte order).
    pub fn list(&self, tenant: TenantId) -> impl Iterator<Item = (&str, &T)> {
        self.tenants.get(&tenant).into_iter().flat_map(|entries| entries.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// How many entries `tenant` has.
    pub fn count(&self, tenant: TenantId) -> usize {
        self.tenants.get(&tenant).map_or(0, BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const ALICE: TenantId = TenantId::new(0);
    const BOB: TenantId = TenantId::new(1);

    #[test]
    fn put_get_replace_delete() {
        let mut reg = Registry::new();
        assert_eq!(reg.put(ALICE, "f", 1), Ok(None));
        assert_eq!(reg.get(ALICE, "f"), Some(&1));
        assert_eq!(reg.put(ALICE, "f", 2), Ok(Some(1)));
        assert_eq!(reg.get(ALICE, "f"), Some(&2));
        if let Some(v) = reg.get_mut(ALICE, "f") {
            *v = 3;
        }
        assert_eq!(reg.delete(ALICE, "f"), Some(3));
        assert_eq!(reg.delete(ALICE, "f"), None);
        assert_eq!(reg.get(ALICE, "f"), None);
        assert_eq!(reg.count(ALICE), 0);
    }

    #[test]
    fn list_is_sorted_by_name() {
        let mut reg = Registry::new();
        for name in ["zeta", "alpha", "Mid", "beta"] {
            assert_eq!(reg.put(ALICE, name, name.len()), Ok(None));
        }
        let names: Vec<&str> = reg.list(ALICE).map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Mid", "alpha", "beta", "zeta"]);
        assert_eq!(reg.count(ALICE), 4);
    }

    #[test]
    fn tenants_are_isolated() {
        let mut reg = Registry::new();
        assert_eq!(reg.put(ALICE, "shared-name", "alice's"), Ok(None));
        assert_eq!(reg.put(ALICE, "only-alice", "alice's"), Ok(None));
        // The same name for another tenant is another entry: creating it replaces nothing.
        assert_eq!(reg.put(BOB, "shared-name", "bob's"), Ok(None));
        assert_eq!(reg.get(ALICE, "shared-name"), Some(&"alice's"));
        assert_eq!(reg.get(BOB, "shared-name"), Some(&"bob's"));
        // Bob can neither see, list, change nor delete Alice's entries.
        assert_eq!(reg.get(BOB, "only-alice"), None);
        assert_eq!(reg.get_mut(BOB, "only-alice"), None);
        assert_eq!(reg.delete(BOB, "only-alice"), None);
        assert_eq!(reg.list(BOB).collect::<Vec<_>>(), vec![("shared-name", &"bob's")]);
        assert_eq!(reg.count(BOB), 1);
        assert_eq!(reg.count(ALICE), 2);
        assert_eq!(reg.delete(BOB, "shared-name"), Some("bob's"));
        assert_eq!(reg.get(ALICE, "shared-name"), Some(&"alice's"));
        // A tenant that never stored anything sees an empty registry.
        assert_eq!(reg.list(TenantId::new(7)).count(), 0);
    }

    #[test]
    fn limit_is_per_tenant_and_replacing_is_free() {
        let mut reg = Registry::with_limit(2);
        assert_eq!(reg.limit_per_tenant(), Some(2));
        assert_eq!(reg.put(ALICE, "a", 1), Ok(None));
        assert_eq!(reg.put(ALICE, "b", 2), Ok(None));
        assert_eq!(reg.put(ALICE, "c", 3), Err(RegistryError::Full { limit: 2 }));
        assert_eq!(reg.put(ALICE, "b", 20), Ok(Some(2)));
        // Another tenant has its own room.
        assert_eq!(reg.put(BOB, "c", 3), Ok(None));
        assert_eq!(reg.delete(ALICE, "a"), Some(1));
        assert_eq!(reg.put(ALICE, "c", 3), Ok(None));
        assert_eq!(
            RegistryError::Full { limit: 2 }.to_string_for_test(),
            "this tenant already has the maximum of 2 entries"
        );
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let mut reg = Registry::with_limit(0);
        assert_eq!(reg.put(ALICE, "a", ()), Err(RegistryError::Full { limit: 0 }));
        assert_eq!(reg.count(ALICE), 0);
        assert_eq!(reg.list(ALICE).count(), 0);
    }

    impl RegistryError {
        fn to_string_for_test(self) -> String {
            alloc::string::ToString::to_string(&self)
        }
    }
}
