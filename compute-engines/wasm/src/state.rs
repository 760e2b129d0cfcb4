//! What one run's store holds besides the instance: inputs, outputs so far, limits.

use alloc::string::String;
use alloc::vec::Vec;
use engine::Limits;
use model::Set;
use wasmi::errors::{MemoryError, TableError};
use wasmi::{Memory, ResourceLimiter};
use wasmi_core::LimiterError;

use crate::config::WasmConfig;

/// The host side of one run.
pub(crate) struct HostState {
    /// The input sets, in declaration order.
    pub inputs: Vec<Set>,
    /// The declared output sets, filled as the function pushes items.
    pub outputs: Vec<Set>,
    /// The instance's `memory` export, once instantiated.
    pub memory: Option<Memory>,
    /// Caps linear memory and tables; remembers what it refused.
    pub limiter: Limiter,
    /// Items pushed so far, over all output sets.
    pub output_items: usize,
    /// Payload bytes pushed so far, over all output sets.
    pub output_bytes: u64,
    /// The caps on the two counters above.
    pub max_output_items: usize,
    /// See `max_output_items`.
    pub max_output_bytes: u64,
    /// Budget not yet handed to the store as fuel (the rest of the budget is the store's fuel).
    /// Host functions charge from here first, so their cost counts against the same budget.
    pub fuel_reserve: u64,
}

impl HostState {
    pub fn new(inputs: Vec<Set>, output_names: &[String], limits: &Limits, config: &WasmConfig) -> Self {
        Self {
            inputs,
            outputs: output_names.iter().map(|name| Set::new(name.as_str())).collect(),
            memory: None,
            limiter: Limiter::new(limits.memory_bytes, config.max_table_elements),
            output_items: 0,
            output_bytes: 0,
            max_output_items: limits.max_output_items,
            max_output_bytes: limits.max_output_bytes,
            fuel_reserve: limits.time.instructions,
        }
    }
}

impl HostState {
    /// The state of a kept store between runs: no inputs, no outputs, no memory to grow into.
    pub fn idle() -> Self {
        Self {
            inputs: Vec::new(),
            outputs: Vec::new(),
            memory: None,
            limiter: Limiter::new(0, 0),
            output_items: 0,
            output_bytes: 0,
            max_output_items: 0,
            max_output_bytes: 0,
            fuel_reserve: 0,
        }
    }
}

/// A resource the limiter refused; a run that then fails ran out of memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Linear memory would have grown from `current` to `desired` bytes.
    Memory { current: usize, desired: usize },
    /// A table would have grown from `current` to `desired` elements.
    Table { current: usize, desired: usize },
    /// The host could not allocate the memory (it said so).
    Host(String),
}

/// Linear memory and table caps for one store.
///
/// A refused `memory.grow` returns -1 to the function, as the wasm spec says, so a function may
/// cope (use less, report an error). The refusal is remembered: if the run then fails, the
/// failure is reported as out of memory, with the trap or abort message attached.
pub(crate) struct Limiter {
    memory_bytes: usize,
    /// Table elements still allowed, over all tables.
    table_elements_left: usize,
    /// The first refusal, if any.
    pub refused: Option<Refusal>,
}

impl Limiter {
    fn new(memory_bytes: u64, table_elements: usize) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements_left: table_elements,
            refused: None,
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.refused.get_or_insert(refusal);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, LimiterError> {
        if desired > self.memory_bytes {
            self.refuse(Refusal::Memory { current, desired });
            return Ok(false);
        }
        // The module's own declared maximum: an ordinary -1, not the platform's limit.
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let more = desired.saturating_sub(current);
        if more > self.table_elements_left {
            self.refuse(Refusal::Table { current, desired });
            return Ok(false);
        }
        // Counted when allowed; a growth that then fails for other reasons is rare and only
        // makes the cap stricter.
        self.table_elements_left -= more;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: &MemoryError) -> Result<(), LimiterError> {
        if matches!(error, MemoryError::OutOfSystemMemory) {
            self.refuse(Refusal::Host(alloc::format!("{error}")));
        }
        Ok(())
    }

    fn table_grow_failed(&mut self, error: &TableError) -> Result<(), LimiterError> {
        if matches!(error, TableError::OutOfSystemMemory) {
            self.refuse(Refusal::Host(alloc::format!("{error}")));
        }
        Ok(())
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        // Their elements are capped in total above; the count only bounds per-table overhead.
        100
    }

    fn memories(&self) -> usize {
        1
    }
}
