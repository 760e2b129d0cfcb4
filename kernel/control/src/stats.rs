//! Invocations by target and outcome, and how long they took: what `/metrics` shows an operator
//! about the work itself.

use alloc::collections::BTreeMap;
use alloc::string::String;

use dispatch::Histogram;
use model::TenantId;

/// Targets counted one by one at most; later ones share the name [`OTHER`], so a tenant that
/// keeps registering new names cannot grow the table without bound.
pub const MAX_TARGETS: usize = 4096;
/// The name the targets past [`MAX_TARGETS`] are counted under.
pub const OTHER: &str = "(other)";

/// How an invocation ended, by its response status: 2xx `ok`; 4xx and 503 `rejected`; 504
/// `timed_out`; other 5xx `failed`; or `cancelled` by its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Rejected,
    Failed,
    TimedOut,
    Cancelled,
}

impl Outcome {
    pub const ALL: [Self; 5] = [Self::Ok, Self::Rejected, Self::Failed, Self::TimedOut, Self::Cancelled];

    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Ok,
            504 => Self::TimedOut,
            400..=499 | 503 => Self::Rejected,
            _ => Self::Failed,
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Invocations that started (their target resolved), by tenant, target and outcome, and the
/// latency of those answered (start to answer, in milliseconds).
#[derive(Clone, Debug, Default)]
pub struct InvocationStats {
    /// By tenant, then target name (looked up by `&str`: counting a known target allocates
    /// nothing).
    by_target: BTreeMap<TenantId, BTreeMap<String, [u64; Outcome::ALL.len()]>>,
    /// Entries in `by_target`, all tenants together.
    targets: usize,
    latency_ms: Histogram,
}

impl InvocationStats {
    pub(crate) fn record(&mut self, tenant: TenantId, target: &str, outcome: Outcome, latency_ms: Option<u64>) {
        if let Some(ms) = latency_ms {
            self.latency_ms.record(ms);
        }
        let names = self.by_target.entry(tenant).or_default();
        let counts = match names.get_mut(target) {
            Some(counts) => counts,
            None => {
                let name = if self.targets < MAX_TARGETS { target } else { OTHER };
                if !names.contains_key(name) {
                    self.targets += 1;
                }
                names.entry(String::from(name)).or_default()
            }
        };
        let slot = &mut counts[outcome as usize];
        *slot = slot.saturating_add(1);
    }

    /// `(tenant, target, outcome, count)` for every non-zero count, in tenant and name order.
    pub fn counts(&self) -> impl Iterator<Item = (TenantId, &str, Outcome, u64)> + '_ {
        self.by_target.iter().flat_map(|(tenant, names)| {
            names.iter().flat_map(move |(name, counts)| {
                Outcome::ALL
                    .into_iter()
                    .zip(counts.iter())
                    .filter(|(_, n)| **n > 0)
                    .map(move |(outcome, n)| (*tenant, name.as_str(), outcome, *n))
            })
        })
    }

    /// Start-to-answer latency of the invocations answered, in milliseconds.
    pub fn latency_ms(&self) -> &Histogram {
        &self.latency_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn counts_by_target_and_outcome() {
        let mut s = InvocationStats::default();
        let (a, b) = (TenantId::new(0), TenantId::new(1));
        s.record(a, "wc", Outcome::Ok, Some(3));
        s.record(a, "wc", Outcome::Ok, Some(5));
        s.record(a, "wc", Outcome::Failed, Some(1));
        s.record(b, "wc", Outcome::Cancelled, None);
        let counts: Vec<_> = s.counts().collect();
        assert_eq!(
            counts,
            [(a, "wc", Outcome::Ok, 2), (a, "wc", Outcome::Failed, 1), (b, "wc", Outcome::Cancelled, 1)]
        );
        assert_eq!((s.latency_ms().count(), s.latency_ms().sum()), (3, 9));
        assert_eq!(Outcome::of_status(503), Outcome::Rejected);
        assert_eq!(Outcome::of_status(504), Outcome::TimedOut);
        assert_eq!(Outcome::of_status(502), Outcome::Failed);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut s = InvocationStats::default();
        let t = TenantId::new(0);
        for i in 0..MAX_TARGETS + 10 {
            s.record(t, &alloc::format!("f{i}"), Outcome::Ok, None);
        }
        s.record(t, "f0", Outcome::Ok, None);
        assert_eq!(s.targets, MAX_TARGETS + 1);
        assert_eq!(s.by_target[&t].len(), MAX_TARGETS + 1);
        assert_eq!(s.counts().find(|(_, n, ..)| *n == OTHER).map(|c| c.3), Some(10));
        assert_eq!(s.counts().find(|(_, n, ..)| *n == "f0").map(|c| c.3), Some(2));
    }
}
