//! What the caller can observe about an execution.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use model::Set;

use crate::error::PlanError;
use crate::instance::InstanceId;

/// Where an execution stands.
#[derive(Debug)]
pub enum Status<'a> {
    /// `ready`: planned instances not yet taken by `next_ready`; `running`: taken, not completed.
    Running { ready: usize, running: usize },
    /// Every instance completed: the composition's outputs, in declaration order, named by the
    /// composition's output names. Empty after [`crate::Execution::take_outputs`].
    Done(&'a [Set]),
    /// An instance failed or planning could not go on; nothing more will be planned.
    Failed(&'a Failure),
}

/// Why an execution failed, and what the caller must clean up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub cause: FailureCause,
    /// Instances handed out by `next_ready` and not completed when the execution failed: the
    /// caller should cancel them. Their later completions are accepted and ignored.
    pub cancel: Vec<InstanceId>,
}

/// The first thing that went wrong (later failures are ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// An instance reported an error, or returned the wrong number of output sets.
    Instance { id: InstanceId, function: String, origin: String, cause: String },
    /// Planning the next step failed (a limit, most likely).
    Plan(PlanError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            FailureCause::Instance { id, function, origin, cause } => {
                write!(f, "function '{function}' failed ({origin}, instance {id}): {cause}")?
            }
            FailureCause::Plan(e) => write!(f, "{e}")?,
        }
        if !self.cancel.is_empty() {
            write!(f, "; {} running instance(s) to cancel", self.cancel.len())?;
        }
        Ok(())
    }
}

/// What [`crate::Execution::complete`] did with a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Recorded: outputs kept, or (for an error or a wrong output count) the execution failed.
    Recorded,
    /// The execution had already failed; the instance was one to cancel and its result is dropped.
    Ignored,
}
