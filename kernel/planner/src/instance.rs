//! What the planner hands to the caller to run.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use model::Set;

/// Names one instance of one execution; ids are handed out in planning order, from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One run of a declared function on its share of the input sets.
///
/// Items are shared with the composition sets through [`model::Bytes`]; no payload is copied.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: InstanceId,
    /// The function's name as declared in the program (the caller maps it to registered code).
    pub function: model::Name,
    /// One set per declared input, in declaration order (functions bind sets by position). Each
    /// set is named by the declaration's input name; an input the application does not bind is
    /// an empty set.
    pub inputs: Vec<Set>,
    /// How many output sets the completion must carry: the declaration's output count.
    pub output_count: usize,
    /// Where it comes from, for logs and errors, e.g. `top: app #2 'grep' instance 17` (apps
    /// counted from 1 in source order, instances from 0 in instance order; nested compositions
    /// are joined with ` > `).
    pub origin: String,
}
