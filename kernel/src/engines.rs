//! The kernel's compute engines: the wasm engine (wasmi) everywhere; on x86_64 the native
//! engines, `mpk` (protection keys, where the CPU has PKU) and `paging` (a page table per
//! sandbox), with `native` picking MPK where it exists and paging otherwise.
//!
//! One `Engines` serves every core: prepared images are cached by image digest behind a lock, so
//! a module registered once (by any tenant) is validated and compiled once; every run still gets
//! a fresh instance, so tenants that upload the same bytes share code, never state, and cores
//! running the same function share nothing but the prepared image.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use control::{HostError, StoredFunction};
use engine::{Deadline, DynEngine, EngineError, Invocation, Limits, PreparedImage, TimeBudget};
use model::{EngineKind, FunctionSpec, ImageDigest, Set, TenantId};
use spin::Mutex;
use wasm_engine::{WasmConfig, WasmEngine};

use crate::time;

/// Function runs, and TSC ticks inside the engine's run (instantiate, run, collect outputs, tear
/// down), for `/metrics`; under `-icount shift=0` the ticks are guest instructions, which is how
/// `cargo xtask bench wasm` measures the engine alone.
static RUNS: AtomicU64 = AtomicU64::new(0);
static RUN_TICKS: AtomicU64 = AtomicU64::new(0);

/// (runs, ticks in runs) so far, over all cores.
pub fn run_stats() -> (u64, u64) {
    (RUNS.load(Ordering::Relaxed), RUN_TICKS.load(Ordering::Relaxed))
}

#[cfg(target_arch = "x86_64")]
const AVAILABLE: &str = "wasm, mpk (with PKU), paging, native";
#[cfg(not(target_arch = "x86_64"))]
const AVAILABLE: &str = "wasm";

/// MPK runs that waited for a free protection key (0 where there is no MPK engine).
pub fn mpk_key_waits() -> u64 {
    #[cfg(target_arch = "x86_64")]
    return crate::native::key_waits();
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Native runs and the ticks of their phases: create, run, collect, destroy (zeros where there
/// are no native engines).
pub fn native_phase_stats() -> (u64, [u64; 4]) {
    #[cfg(target_arch = "x86_64")]
    return crate::native::phase_stats();
    #[cfg(not(target_arch = "x86_64"))]
    (0, [0; 4])
}

/// Prepared images kept at most; the oldest digest goes first (a miss only costs a re-prepare).
const MAX_CACHED_IMAGES: usize = 256;

pub struct Engines {
    wasm: WasmEngine,
    #[cfg(target_arch = "x86_64")]
    paging: crate::native::PagingEngine,
    #[cfg(target_arch = "x86_64")]
    mpk: Option<crate::native::MpkEngine>,
    prepared: Mutex<BTreeMap<ImageDigest, PreparedImage>>,
}

impl Engines {
    pub fn new() -> Result<Self, EngineError> {
        Ok(Self {
            wasm: WasmEngine::new(WasmConfig::default())?,
            #[cfg(target_arch = "x86_64")]
            paging: crate::native::PagingEngine,
            #[cfg(target_arch = "x86_64")]
            mpk: crate::native::MpkEngine::new(),
            prepared: Mutex::new(BTreeMap::new()),
        })
    }

    fn engine(&self, kind: EngineKind) -> Result<&dyn DynEngine, HostError> {
        match kind {
            EngineKind::Wasm => Ok(&self.wasm),
            #[cfg(target_arch = "x86_64")]
            EngineKind::Paging => Ok(&self.paging),
            #[cfg(target_arch = "x86_64")]
            EngineKind::Mpk | EngineKind::Native if self.mpk.is_some() => {
                Ok(self.mpk.as_ref().map_or(&self.paging as &dyn DynEngine, |m| m as &dyn DynEngine))
            }
            #[cfg(target_arch = "x86_64")]
            EngineKind::Native => Ok(&self.paging),
            #[cfg(target_arch = "x86_64")]
            EngineKind::Mpk => Err(HostError::new(
                400,
                "engine_unavailable",
                "engine `mpk` needs protection keys (CPUID PKU), which this CPU lacks (available: wasm, paging, native)",
            )),
            other => Err(HostError::new(
                400,
                "engine_unavailable",
                format!("engine `{}` is not available on this node (available: {AVAILABLE})", other.as_str()),
            )),
        }
    }

    /// The prepared form of `image`, from the cache or made now (validated and compiled).
    pub fn prepare(&self, spec: &FunctionSpec, digest: &ImageDigest, image: &[u8]) -> Result<PreparedImage, HostError> {
        let engine = self.engine(spec.engine())?;
        // The same bytes may be registered for another engine (an ELF as wasm): a cached image
        // counts only for the engine that prepared it.
        if let Some(p) = self.prepared.lock().get(digest)
            && p.engine() == engine.name()
        {
            return Ok(p.clone());
        }
        // Prepared outside the lock: compiling a large module must not stall other cores' lookups.
        let prepared = engine.prepare_image(image).map_err(host_error)?;
        let mut cache = self.prepared.lock();
        if cache.len() >= MAX_CACHED_IMAGES {
            cache.pop_first();
        }
        cache.insert(*digest, prepared.clone());
        Ok(prepared)
    }

    /// Where `spec` runs on a native engine and `prepared` is that engine's image: the engine,
    /// for the dispatcher's preemptible native runs (`compute::dispatcher`). `None` otherwise.
    #[cfg(target_arch = "x86_64")]
    pub fn native<'a>(&'a self, spec: &FunctionSpec, prepared: &'a PreparedImage) -> Option<crate::native::Native<'a>> {
        let image = prepared.downcast::<crate::native::NativeImage>()?;
        let engine = self.engine(spec.engine()).ok()?;
        if engine.name() != prepared.engine() {
            return None;
        }
        match engine.name() {
            "paging" => Some(crate::native::Native::Paging(&self.paging, image)),
            "mpk" => Some(crate::native::Native::Mpk(self.mpk.as_ref()?, image)),
            _ => None,
        }
    }

    /// Where `spec` runs on the wasm engine and `prepared` is its image: the engine and image,
    /// for the dispatcher's runs in turns (`compute::dispatcher`). `None` otherwise.
    pub fn wasm<'a>(
        &'a self,
        spec: &FunctionSpec,
        prepared: &'a PreparedImage,
    ) -> Option<(&'a WasmEngine, &'a wasm_engine::WasmImage)> {
        if spec.engine() != EngineKind::Wasm || prepared.engine() != "wasm" {
            return None;
        }
        Some((&self.wasm, prepared.downcast::<wasm_engine::WasmImage>()?))
    }

    /// Runs one instance to its end on this core, within its time budget; `cancel` ends it
    /// early (its invocation is gone) like a spent budget. `between_slices` runs each time the
    /// engine checks its deadline (every fuel slice): single-core mode serves the network there.
    pub fn run(
        &self,
        tenant: TenantId,
        function: &StoredFunction,
        prepared: &PreparedImage,
        inputs: Vec<Set>,
        cancel: &AtomicBool,
        between_slices: Option<&mut dyn FnMut()>,
    ) -> Result<Vec<Set>, HostError> {
        let spec = function.spec();
        let outputs: Vec<String> = spec.outputs().to_vec();
        let limits = limits(spec);
        let budget_ticks = u128::from(spec.timeout_ms()) * u128::from(time::ticks_per_second()) / 1000;
        let end = time::ticks().saturating_add(budget_ticks as u64);
        let deadline = RunDeadline { end, cancel, between_slices: between_slices.map(RefCell::new) };
        let invocation = Invocation { inputs, outputs: &outputs, limits, deadline: Some(&deadline) };
        let engine = self.engine(spec.engine())?;
        let start = time::ticks();
        let result = engine.run_image(prepared, invocation);
        count_run(time::ticks() - start);
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

/// A function's limits as its registration sets them.
pub fn limits(spec: &FunctionSpec) -> Limits {
    Limits::new(spec.memory_bytes(), TimeBudget::from_millis(spec.timeout_ms()))
}

/// Counts one run that took `ticks` inside its engine (all its slices), for [`run_stats`].
pub fn count_run(ticks: u64) {
    RUN_TICKS.fetch_add(ticks, Ordering::Relaxed);
    RUNS.fetch_add(1, Ordering::Relaxed);
}

pub fn host_error(e: EngineError) -> HostError {
    HostError::new(e.http_status(), e.code(), format!("{e}"))
}

/// The wall-clock backstop of a run's time budget, on the kernel's tick counter; the
/// dispatcher's cancellation flag; and what to do between fuel slices.
struct RunDeadline<'a, 'h> {
    end: u64,
    cancel: &'a AtomicBool,
    between_slices: Option<RefCell<&'h mut (dyn FnMut() + 'h)>>,
}

impl Deadline for RunDeadline<'_, '_> {
    fn expired(&self) -> bool {
        // The engine checks between fuel slices, never re-entrantly: the borrow cannot fail.
        if let Some(hook) = &self.between_slices
            && let Ok(mut hook) = hook.try_borrow_mut()
        {
            hook();
        }
        self.cancel.load(Ordering::Relaxed) || time::ticks() >= self.end
    }
}
