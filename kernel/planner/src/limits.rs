//! Bounds on the work one execution may plan.
//!
//! A composition is tenant input: an `each` over a large set, a cross product of two, or a
//! composition that applies itself can ask for unbounded work. The planner counts before it
//! allocates and refuses with an error that names the application.

/// Limits checked while planning; exceeding one fails the execution with a [`crate::PlanError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// Most instances one application may start (each `each` item, key group or combination is one).
    pub max_instances_per_application: usize,
    /// Most instances the whole execution may plan, nested compositions included. Every
    /// application of a composition counts as one instance too, besides the instances inside it.
    pub max_total_instances: usize,
    /// Most compositions nested inside the started one (0: no composition may apply another).
    pub max_nesting_depth: usize,
    /// Planning work one step may do, in units (see [`crate::Execution::refuel`]): cutting one
    /// instance, moving one instance's result or one output item, applying one completion,
    /// opening or closing one composition. `usize::MAX`: no bound, every call plans as far as it
    /// can (the planner's behaviour before steps were bounded; the default).
    pub max_work_per_step: usize,
    /// How many instances an application with adaptive inputs (`anyEach`, `anyKeyed`) aims at,
    /// as Dandelion's platform picks it: the kernel sets its compute cores. 0: no aim, every
    /// item or key group gets its own instance (Dandelion's "max sharding"; the default).
    pub any_partitions: usize,
}

impl Default for PlanLimits {
    /// Generous enough for real fan-outs, small enough that a bad program cannot exhaust memory.
    fn default() -> Self {
        Self {
            max_instances_per_application: 65_536,
            max_total_instances: 1 << 20,
            max_nesting_depth: 16,
            max_work_per_step: usize::MAX,
            any_partitions: 0,
        }
    }
}
