//! The kernel's compute engines behind the control plane's [`FunctionHost`]: today the wasm
//! engine (wasmi); the native MPK and paging engines join this table when they land.
//!
//! Prepared images are cached by image digest, so a module registered once (by any tenant) is
//! validated and compiled once; every run still gets a fresh instance, so tenants that upload
//! the same bytes share code, never state.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use alloc::sync::Arc;

use control::{FunctionHost, HostError, Started, StoredFunction, Ticket};
use engine::{Deadline, DynEngine, EngineError, Invocation, Limits, PreparedImage, TimeBudget};
use model::{Bytes, EngineKind, FunctionSpec, ImageDigest, Set, TenantId};
use wasm_engine::{WasmConfig, WasmEngine};

use crate::time;

/// Function runs, and TSC ticks inside the engine's run (instantiate, run, collect outputs, tear
/// down), for `/metrics`; under `-icount shift=0` the ticks are guest instructions, which is how
/// `cargo xtask bench wasm` measures the engine alone.
static RUNS: AtomicU64 = AtomicU64::new(0);
static RUN_TICKS: AtomicU64 = AtomicU64::new(0);

/// (runs, ticks in runs) so far.
pub fn run_stats() -> (u64, u64) {
    (RUNS.load(Ordering::Relaxed), RUN_TICKS.load(Ordering::Relaxed))
}

/// Prepared images kept at most; the oldest digest goes first (a miss only costs a re-prepare).
const MAX_CACHED_IMAGES: usize = 256;

pub struct Engines {
    wasm: WasmEngine,
    prepared: BTreeMap<ImageDigest, PreparedImage>,
}

impl Engines {
    pub fn new() -> Result<Self, EngineError> {
        Ok(Self { wasm: WasmEngine::new(WasmConfig::default())?, prepared: BTreeMap::new() })
    }

    fn engine(&self, kind: EngineKind) -> Result<&dyn DynEngine, HostError> {
        match kind {
            EngineKind::Wasm => Ok(&self.wasm),
            other => Err(HostError::new(
                400,
                "engine_unavailable",
                format!("engine `{}` is not available on this node (available: wasm)", other.as_str()),
            )),
        }
    }

    fn prepared(
        &mut self,
        spec: &FunctionSpec,
        digest: &ImageDigest,
        image: &[u8],
    ) -> Result<PreparedImage, HostError> {
        if let Some(p) = self.prepared.get(digest) {
            return Ok(p.clone());
        }
        let prepared = self.engine(spec.engine())?.prepare_image(image).map_err(host_error)?;
        if self.prepared.len() >= MAX_CACHED_IMAGES {
            self.prepared.pop_first();
        }
        self.prepared.insert(*digest, prepared.clone());
        Ok(prepared)
    }
}

fn host_error(e: EngineError) -> HostError {
    HostError::new(e.http_status(), e.code(), format!("{e}"))
}

/// The wall-clock backstop of a run's time budget, on the kernel's tick counter.
struct TickDeadline(u64);

impl Deadline for TickDeadline {
    fn expired(&self) -> bool {
        time::ticks() >= self.0
    }
}

impl FunctionHost for Engines {
    fn prepare(&mut self, spec: &FunctionSpec, image: &Bytes) -> Result<(), HostError> {
        let digest = ImageDigest::of(image);
        self.prepared(spec, &digest, image).map(|_| ())
    }

    fn start(
        &mut self,
        _ticket: Ticket,
        tenant: TenantId,
        function: &Arc<StoredFunction>,
        inputs: Vec<Set>,
    ) -> Started {
        Started::Done(self.run(tenant, function, inputs))
    }
}

impl Engines {
    /// Runs one instance to its end, on this core.
    fn run(&mut self, tenant: TenantId, function: &StoredFunction, inputs: Vec<Set>) -> Result<Vec<Set>, HostError> {
        let spec = function.spec();
        let prepared = self.prepared(spec, function.digest(), function.image())?;
        let outputs: Vec<String> = spec.outputs().to_vec();
        let limits = Limits::new(spec.memory_bytes(), TimeBudget::from_millis(spec.timeout_ms()));
        let budget_ticks = u128::from(spec.timeout_ms()) * u128::from(time::ticks_per_second()) / 1000;
        let deadline = TickDeadline(time::ticks().saturating_add(budget_ticks as u64));
        let invocation = Invocation { inputs, outputs: &outputs, limits, deadline: Some(&deadline) };
        let engine = self.engine(spec.engine())?;
        let start = time::ticks();
        let result = engine.run_image(&prepared, invocation);
        RUN_TICKS.fetch_add(time::ticks() - start, Ordering::Relaxed);
        RUNS.fetch_add(1, Ordering::Relaxed);
        let completion = result.map_err(host_error)?;
        log::debug!(
            "engines: tenant {} ran {} ({:?} instructions)",
            tenant.index(),
            spec.name(),
            completion.instructions
        );
        Ok(completion.outputs)
    }
}
