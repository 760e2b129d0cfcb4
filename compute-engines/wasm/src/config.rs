//! Engine-wide settings: what every image and run shares.

/// Settings of a [`WasmEngine`](crate::WasmEngine).
#[derive(Clone, Debug)]
pub struct WasmConfig {
    /// The largest module accepted, in bytes. Compilation time and host memory grow with size.
    pub max_module_bytes: usize,
    /// The deepest wasm call stack, in frames; deeper recursion traps with `stack_overflow`.
    pub max_call_depth: usize,
    /// The largest wasm value stack (locals and operands of all frames), in bytes; this host
    /// memory is outside the function's memory limit, so it is bounded here.
    pub max_value_stack_bytes: usize,
    /// The most table elements an instance may have, over all its tables (tables are host
    /// memory outside the function's memory limit).
    pub max_table_elements: usize,
    /// With a wall-clock deadline, fuel is handed out in slices of this many instructions and
    /// the deadline is checked between slices. The total is still the run's instruction budget,
    /// so a run that completes computes the same result with or without slicing.
    pub fuel_slice: u64,
    /// Zeroes bytes: a kept store's memory is put back by zeroing it and copying the initial
    /// memory's non-zero blocks (the data segments) over it. The kernel passes its page zeroing
    /// (32 or 16 bytes a store); the default is `fill`.
    pub zero: fn(&mut [u8]),
}

impl Default for WasmConfig {
    fn default() -> Self {
        Self {
            max_module_bytes: 32 << 20,
            max_call_depth: 10_000,
            max_value_stack_bytes: 4 << 20,
            max_table_elements: 100_000,
            fuel_slice: 1_000_000,
            zero: fill_zero,
        }
    }
}

/// [`WasmConfig::zero`]'s default.
fn fill_zero(bytes: &mut [u8]) {
    bytes.fill(0);
}

impl WasmConfig {
    /// The wasmi configuration these settings imply.
    pub(crate) fn wasmi_config(&self) -> wasmi::Config {
        let mut config = wasmi::Config::default();
        config
            .consume_fuel(true)
            // Compile everything at registration: errors surface there, and no run pays for
            // (or is charged fuel for) lazy translation.
            .compilation_mode(wasmi::CompilationMode::Eager)
            // One entry point: `run`. A start function would be a second one, run at instantiation.
            .allow_start_fn(false)
            // One linear memory, the one the ABI's pointers point into.
            .wasm_multi_memory(false)
            .set_max_recursion_depth(self.max_call_depth.max(1))
            // wasmi panics when the minimum exceeds the maximum; its minimum is 1000 bytes.
            .set_max_stack_height(self.max_value_stack_bytes.max(1_000));
        config
    }
}
