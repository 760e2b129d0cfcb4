//! Registration: refuse what cannot run, compile what can.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use engine::{EngineError, ImageError};
use wasmi::{ExternType, Module};

use crate::abi;
use crate::config::WasmConfig;
use crate::reuse::{self, Reuse};

/// A validated, compiled module, ready to instantiate, with the wasmi engine that holds its code
/// and its imports resolved against the ABI. Cloning shares them; the last clone dropped frees
/// them.
#[derive(Clone)]
pub struct WasmImage {
    pub(crate) module: Module,
    pub(crate) wasmi: wasmi::Engine,
    /// The ABI function each import of the module is, in the module's import order: each run
    /// makes exactly these host functions, without looking anything up by name.
    pub(crate) imports: Arc<[&'static str]>,
    /// The kept store and initial state, where runs can reuse their store (`reuse.rs`).
    pub(crate) reuse: Option<Arc<Reuse>>,
}

impl WasmImage {
    /// Whether runs of this image reuse a kept store (`None`: every run instantiates afresh),
    /// and how many runs have taken it so far. For tests and diagnostics.
    pub fn kept_store_runs(&self) -> Option<u64> {
        self.reuse.as_ref().map(|reuse| reuse.taken.load(core::sync::atomic::Ordering::Relaxed))
    }
}

impl core::fmt::Debug for WasmImage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WasmImage").finish_non_exhaustive()
    }
}

/// Checks and compiles `bytes`: size first (before any parsing work), then validation and eager
/// compilation, then the imports and exports against the ABI.
pub(crate) fn prepare(config: &WasmConfig, bytes: &[u8]) -> Result<WasmImage, EngineError> {
    if bytes.len() > config.max_module_bytes {
        return Err(ImageError::TooLarge { size: bytes.len(), limit: config.max_module_bytes }.into());
    }
    let wasmi = wasmi::Engine::new(&config.wasmi_config());
    let module = Module::new(&wasmi, bytes).map_err(|e| ImageError::Malformed { reason: e.to_string() })?;
    let (imports, uses_memory) = check_imports(&module)?;
    check_exports(&module, uses_memory)?;
    let imports: Arc<[&'static str]> = imports.into();
    let reuse = reuse::plan(bytes).and_then(|plan| Reuse::new(plan, &wasmi, &module, &imports, config)).map(Arc::new);
    Ok(WasmImage { module, wasmi, imports, reuse })
}

/// Every import must be an ABI function with the ABI's signature. Returns the ABI function of
/// each import, in order, and whether any import takes pointers into linear memory.
fn check_imports(module: &Module) -> Result<(Vec<&'static str>, bool), ImageError> {
    let mut uses_memory = false;
    let mut imports = Vec::new();
    for import in module.imports() {
        let refuse = |reason: String| ImageError::ForbiddenImport {
            module: import.module().into(),
            name: import.name().into(),
            reason,
        };
        if import.module() != abi::NAMESPACE {
            return Err(refuse(format!("functions may import only from `{}`", abi::NAMESPACE)));
        }
        let Some(expected) = abi::import(import.name()) else {
            return Err(refuse(format!("`{}` provides no such function", abi::NAMESPACE)));
        };
        let ExternType::Func(ty) = import.ty() else {
            return Err(refuse("it must be imported as a function".into()));
        };
        if ty.params() != expected.params || ty.results() != expected.results {
            return Err(refuse(format!(
                "its signature is {}, the ABI's is {}",
                abi::signature(ty.params(), ty.results()),
                abi::signature(expected.params, expected.results)
            )));
        }
        uses_memory |= expected.uses_memory;
        imports.push(expected.name);
    }
    Ok((imports, uses_memory))
}

/// The entry export must exist with type `[] -> []`; `memory` must be a memory where present,
/// and present when the module imports functions that take pointers.
fn check_exports(module: &Module, uses_memory: bool) -> Result<(), ImageError> {
    match module.get_export(abi::ENTRY) {
        Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty() => {}
        Some(ExternType::Func(ty)) => {
            return Err(ImageError::BadEntry {
                reason: format!(
                    "export `{}` has type {}, it must be [] -> []",
                    abi::ENTRY,
                    abi::signature(ty.params(), ty.results())
                ),
            });
        }
        Some(_) => return Err(ImageError::BadEntry { reason: format!("export `{}` is not a function", abi::ENTRY) }),
        None => {
            return Err(ImageError::BadEntry { reason: format!("the module exports no function `{}`", abi::ENTRY) });
        }
    }
    match module.get_export(abi::MEMORY) {
        Some(ExternType::Memory(_)) => Ok(()),
        Some(_) => Err(ImageError::BadEntry { reason: format!("export `{}` is not a linear memory", abi::MEMORY) }),
        None if uses_memory => Err(ImageError::BadEntry {
            reason: format!("the module imports ABI functions that take pointers but exports no `{}`", abi::MEMORY),
        }),
        None => Ok(()),
    }
}
