//! The kernel's compute engines: the wasm engine (wasmi) everywhere; on x86_64 the native
//! engines, `mpk` (protection keys, where the CPU has PKU) and `paging` (a page table per
//! sandbox), with `native` picking MPK where it exists and paging otherwise; on aarch64 `paging`,
//! and on an Arm Morello CPU `cheri` (capabilities in one shared address space), which
//! `native` picks there.
//!
//! One `Engines` serves every core. An image is validated and prepared once, when it is
//! registered; the prepared form lives with the registered function (`control::StoredFunction`)
//! and is charged to its tenant, so it goes when the function goes and is never shared between
//! tenants (registration time tells nothing about what other tenants uploaded). Every run still
//! gets a fresh instance: cores running the same function share nothing but the prepared image.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use control::{RunError, StoredFunction};
use engine::{Deadline, DynEngine, EngineError, Invocation, Limits, PreparedImage, TimeBudget};
use model::{EngineKind, FunctionSpec, Set, TenantId};
use wasm::{WasmConfig, WasmEngine};

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
const AVAILABLE: &str = "wasm, paging, cheri (on Arm Morello), native";
/// Why `cheri` is missing when it is.
const NO_CHERI: &str = "engine `cheri` needs an Arm Morello CPU (CHERI capabilities), which this node lacks";
/// Why `mpk` is missing when it is.
#[cfg(target_arch = "x86_64")]
const NO_MPK: &str =
    "engine `mpk` needs protection keys (CPUID PKU), which this CPU lacks (available: wasm, paging, native)";
#[cfg(not(target_arch = "x86_64"))]
const NO_MPK: &str =
    "engine `mpk` needs x86 protection keys; on aarch64 use `paging` or `native` (available: wasm, paging, native)";

/// MPK runs that waited for a free protection key (0 where there is no MPK engine).
pub fn mpk_key_waits() -> u64 {
    crate::native::key_waits()
}

/// Private frames of native images kept mapped between runs (0 where there is no native engine).
pub fn native_kept_image_frames() -> u64 {
    crate::native::kept_image_frames()
}

/// Input pages mapped into native sandboxes rather than copied (0 where there is no native engine).
pub fn native_input_pages_mapped() -> u64 {
    crate::native::input_pages_mapped()
}

/// MPK protection keys held by live sandboxes (0 where there is no MPK engine).
pub fn mpk_keys_live() -> u64 {
    crate::native::keys_live()
}

/// Native runs and the ticks of their phases: create, run, collect, destroy (zeros where there
/// are no native engines).
pub fn native_phase_stats() -> (u64, [u64; 4]) {
    crate::native::phase_stats()
}

pub struct Engines {
    wasm: WasmEngine,
    paging: crate::native::PagingEngine,
    /// `None` without protection keys (always on aarch64).
    mpk: Option<crate::native::MpkEngine>,
    /// `None` without CHERI capabilities (anything but an Arm Morello CPU).
    cheri: Option<crate::native::MpkEngine>,
}

impl Engines {
    pub fn new() -> Result<Self, EngineError> {
        Ok(Self {
            // A kept instance's memory is put back zeroed by the sandboxes' page zeroing (AVX or
            // SSE stores on x86_64, DC ZVA on aarch64; kernel context, outside every sandbox run).
            wasm: WasmEngine::new(WasmConfig { zero: crate::arch::usermode::zero, ..WasmConfig::default() })?,
            paging: crate::native::PagingEngine,
            mpk: crate::native::MpkEngine::new(),
            cheri: crate::native::MpkEngine::new_cheri(),
        })
    }

    fn engine(&self, kind: EngineKind) -> Result<&dyn DynEngine, RunError> {
        match kind {
            EngineKind::Wasm => Ok(&self.wasm),
            EngineKind::Paging => Ok(&self.paging),
            EngineKind::Cheri | EngineKind::Native if self.cheri.is_some() => {
                Ok(self.cheri.as_ref().map_or(&self.paging as &dyn DynEngine, |c| c as &dyn DynEngine))
            }
            EngineKind::Cheri => Err(RunError::new(400, "engine_unavailable", NO_CHERI)),
            EngineKind::Mpk | EngineKind::Native if self.mpk.is_some() => {
                Ok(self.mpk.as_ref().map_or(&self.paging as &dyn DynEngine, |m| m as &dyn DynEngine))
            }
            EngineKind::Native => Ok(&self.paging),
            EngineKind::Mpk => Err(RunError::new(400, "engine_unavailable", NO_MPK)),
            other => Err(RunError::new(
                400,
                "engine_unavailable",
                format!("engine `{}` is not available on this node (available: {AVAILABLE})", other.as_str()),
            )),
        }
    }

    /// Validates and prepares `image` for `spec`'s engine (compiles a wasm module, checks and
    /// loads an ELF).
    pub fn prepare(&self, spec: &FunctionSpec, image: &[u8]) -> Result<PreparedImage, RunError> {
        self.engine(spec.engine())?.prepare_image(image).map_err(host_error)
    }

    /// Where `spec` runs on a native engine and `prepared` is that engine's image: the engine,
    /// for the dispatcher's preemptible native runs (`compute::dispatcher`). `None` otherwise.
    pub fn native<'a>(&'a self, spec: &FunctionSpec, prepared: &'a PreparedImage) -> Option<crate::native::Native<'a>> {
        let image = prepared.downcast::<crate::native::NativeImage>()?;
        let engine = self.engine(spec.engine()).ok()?;
        if engine.name() != prepared.engine() {
            return None;
        }
        match engine.name() {
            "paging" => Some(crate::native::Native::Paging(&self.paging, image)),
            "mpk" => Some(crate::native::Native::Mpk(self.mpk.as_ref()?, image)),
            "cheri" => Some(crate::native::Native::Mpk(self.cheri.as_ref()?, image)),
            _ => None,
        }
    }

    /// Where `spec` runs on the wasm engine and `prepared` is its image: the engine and image,
    /// for the dispatcher's runs in turns (`compute::dispatcher`). `None` otherwise.
    pub fn wasm<'a>(
        &'a self,
        spec: &FunctionSpec,
        prepared: &'a PreparedImage,
    ) -> Option<(&'a WasmEngine, &'a wasm::WasmImage)> {
        if spec.engine() != EngineKind::Wasm || prepared.engine() != "wasm" {
            return None;
        }
        Some((&self.wasm, prepared.downcast::<wasm::WasmImage>()?))
    }

    /// Runs one instance to its end on this core, within its time budget; `cancel` ends it
    /// early (its invocation is gone) like a spent budget. (Native and wasm runs go in turns
    /// instead, through [`native`](Self::native) and [`wasm`](Self::wasm).)
    pub fn run(
        &self,
        tenant: TenantId,
        function: &StoredFunction,
        prepared: &PreparedImage,
        inputs: Vec<Set>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Set>, RunError> {
        let spec = function.spec();
        let outputs: Vec<String> = spec.outputs().to_vec();
        let limits = limits(spec);
        let end = time::ticks().saturating_add(time::millis_to_ticks(spec.timeout_ms()));
        let deadline = RunDeadline { end, cancel };
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

pub fn host_error(e: EngineError) -> RunError {
    RunError::new(e.http_status(), e.code(), format!("{e}"))
}

/// The wall-clock backstop of a run's time budget, on the kernel's tick counter, and the
/// dispatcher's cancellation flag.
struct RunDeadline<'a> {
    end: u64,
    cancel: &'a AtomicBool,
}

impl Deadline for RunDeadline<'_> {
    fn expired(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || time::ticks() >= self.end
    }
}
