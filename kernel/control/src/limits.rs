//! What one boot allows, so that no tenant and no request can take more than the operator gave.

use model::MemoryBudgets;
use model::wire::WireLimits;
use pappus_http::MemoryGate;
use planner::PlanLimits;

/// The control plane's limits. Each one says what exceeding it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlLimits {
    /// Functions one tenant may register; a new one past it is 409 `registry_full`
    /// (replacing an existing one is always allowed).
    pub max_functions_per_tenant: usize,
    /// Compositions one tenant may register; likewise 409 `registry_full`.
    pub max_compositions_per_tenant: usize,
    /// The largest function image, in bytes; larger uploads are 413.
    pub max_image_bytes: usize,
    /// The largest composition program, in bytes; larger uploads are 413. Never more than
    /// [`dsl::MAX_SOURCE_LEN`], which the parser enforces anyway.
    pub max_source_bytes: usize,
    /// Invocations held at once (running, waiting, or finished and not yet taken), over all
    /// tenants; one more is 503 with `Retry-After`.
    pub max_live_invocations: usize,
    /// The `Retry-After` seconds sent with that 503.
    pub retry_after_s: u32,
    /// Function instances one invocation runs per [`handle`](crate::ControlPlane::handle) or
    /// [`poll`](crate::ControlPlane::poll) call, so one large fan-out cannot keep the kernel
    /// from its network for long: past it the invocation stays pending and the next `poll`
    /// goes on.
    pub max_instances_per_step: usize,
    /// How long one invocation may take, start to answer, in milliseconds; past it the answer is
    /// 504 `timeout` and the runtime drops its queued and running instances.
    pub max_invocation_ms: u64,
    /// Bounds on decoding invoke bodies (413 when exceeded) and on what one function instance
    /// may return (502 `bad_output` when exceeded).
    pub wire: WireLimits,
    /// Bounds on the work one composition invocation may plan (422 `plan_limit`), and on the
    /// planning work (and answer items encoded) per step: `plan.max_work_per_step`.
    pub plan: PlanLimits,
    /// Each tenant's memory budgets (507 `memory_budget` beyond them; [`model::memory`]). The
    /// kernel sets them from the boot configuration or from its own memory; the default is
    /// unlimited, for hosts that do not account.
    pub memory: MemoryBudgets,
    /// Whether the node's heap can take this many more bytes now, asked before work that holds
    /// much memory for a while: encoding an answer (held until sent, charged to no tenant) and
    /// decoding a JSON request body (a second copy of its items). A kernel says no when the
    /// bytes would eat into its reserve, and the answer is 503 `out_of_memory` with
    /// `Retry-After`.
    pub heap_room: MemoryGate,
}

impl ControlLimits {
    /// 256 functions and 256 compositions per tenant, 32 MiB images, 1 MiB programs, 64 live
    /// invocations, 1024 instances per step, 600 s per invocation (above the longest function
    /// budget, 300 s), the wire defaults, and the planner's with 1024 units of planning work per
    /// step (so a 65,536-item fan-out is planned, collected and encoded in about 64 steps each).
    pub const DEFAULT: Self = Self {
        max_functions_per_tenant: 256,
        max_compositions_per_tenant: 256,
        max_image_bytes: 32 << 20,
        max_source_bytes: dsl::MAX_SOURCE_LEN,
        max_live_invocations: 64,
        retry_after_s: 1,
        max_instances_per_step: 1024,
        max_invocation_ms: 600_000,
        wire: WireLimits::DEFAULT,
        // `PlanLimits::default()`'s values (`Default` is not `const`), with steps bounded.
        plan: PlanLimits {
            max_instances_per_application: 65_536,
            max_total_instances: 1 << 20,
            max_nesting_depth: 16,
            max_work_per_step: 1024,
            any_partitions: 0,
        },
        memory: MemoryBudgets::UNLIMITED,
        heap_room: MemoryGate::ALWAYS,
    };

    /// The program size actually enforced: the configured one, capped by the parser's own limit.
    pub(crate) fn source_bytes(&self) -> usize {
        self.max_source_bytes.min(dsl::MAX_SOURCE_LEN)
    }
}

impl Default for ControlLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_crates_below() {
        let steps = ControlLimits::DEFAULT.plan.max_work_per_step;
        assert_eq!(ControlLimits::DEFAULT.plan, PlanLimits { max_work_per_step: steps, ..PlanLimits::default() });
        assert!(steps < usize::MAX, "the control plane bounds its steps");
        assert_eq!(ControlLimits::default().source_bytes(), dsl::MAX_SOURCE_LEN);
        let larger = ControlLimits { max_source_bytes: usize::MAX, ..ControlLimits::DEFAULT };
        assert_eq!(larger.source_bytes(), dsl::MAX_SOURCE_LEN, "the parser's limit caps the configured one");
    }
}
