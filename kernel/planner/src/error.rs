//! Errors the planner returns instead of panicking.
//!
//! The checker in `dsl` should reject inconsistent programs before they reach the planner, but the
//! planner never trusts that: every inconsistency it can meet becomes a [`PlanError`] value that
//! names where it was found, so a kernel serving many tenants never goes down on one bad program.

use alloc::string::String;
use core::fmt;

use crate::instance::InstanceId;

/// Why a plan could not be made or continued, or why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No composition of that name in the program.
    UnknownComposition(String),
    /// The caller gave a different number of input sets than the composition declares.
    InputCount { composition: String, expected: usize, got: usize },
    /// The program is inconsistent (the checker should have said so): `at` names the composition
    /// and application, `reason` says what is wrong.
    InvalidProgram { at: String, reason: String },
    /// One application would start more instances than [`crate::PlanLimits`] allow.
    /// `count` saturates at `usize::MAX`.
    TooManyInstances { application: String, count: usize, limit: usize },
    /// The execution as a whole would plan more instances than allowed.
    TotalInstancesExceeded { application: String, limit: usize },
    /// Applying a composition would nest compositions deeper than allowed (recursion ends here).
    NestingTooDeep { application: String, limit: usize },
    /// An instance id this execution never handed out.
    UnknownInstance(InstanceId),
    /// An id that is not running: not yet handed out by `next_ready`, or already completed.
    NotRunning(InstanceId),
    /// The planner's own bookkeeping disagreed with itself; a bug, reported rather than panicking.
    Internal(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownComposition(name) => write!(f, "no composition named '{name}'"),
            Self::InputCount { composition, expected, got } => {
                write!(f, "composition '{composition}' takes {expected} input set(s), got {got}")
            }
            Self::InvalidProgram { at, reason } => write!(f, "{at}: {reason}"),
            Self::TooManyInstances { application, count, limit } => {
                write!(f, "{application}: would start {count} instances, the limit is {limit}")
            }
            Self::TotalInstancesExceeded { application, limit } => {
                write!(f, "{application}: the execution would exceed its limit of {limit} instances")
            }
            Self::NestingTooDeep { application, limit } => {
                write!(f, "{application}: compositions nested deeper than the limit of {limit}")
            }
            Self::UnknownInstance(id) => write!(f, "unknown instance {id}"),
            Self::NotRunning(id) => write!(f, "instance {id} is not running"),
            Self::Internal(what) => write!(f, "planner bug: {what}"),
        }
    }
}

impl core::error::Error for PlanError {}
