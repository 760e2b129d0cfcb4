//! An object-safe view of [`Engine`], for the kernel's table of engines.
//!
//! [`Engine`] has an associated image type, so `dyn Engine` does not exist; the registry wants
//! one `Box<dyn DynEngine>` per `engine=` name and one image type for all functions.
//! [`PreparedImage`] erases the type and remembers which engine made it, so an image handed to
//! the wrong engine is an error, not a confusion.

use alloc::sync::Arc;
use core::any::Any;
use core::fmt;

use crate::error::{EngineError, ImageError};
use crate::traits::{Completion, Engine, Invocation};

/// A prepared image of any engine: cheap to clone, shareable across cores.
#[derive(Clone)]
pub struct PreparedImage {
    engine: &'static str,
    size: usize,
    inner: Arc<dyn Any + Send + Sync>,
}

impl PreparedImage {
    /// The name of the engine that prepared it.
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// The engine's own prepared form, if it is a `T` (for the platform's engine-specific
    /// paths, such as native runs that come back preempted).
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        self.inner.downcast_ref::<T>()
    }

    /// The size in bytes of the image it was prepared from (for listings and metrics).
    pub fn image_size(&self) -> usize {
        self.size
    }
}

impl fmt::Debug for PreparedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedImage").field("engine", &self.engine).field("size", &self.size).finish()
    }
}

/// [`Engine`] without its associated type; implemented for every engine.
pub trait DynEngine {
    /// See [`Engine::name`].
    fn name(&self) -> &'static str;
    /// See [`Engine::prepare`].
    fn prepare_image(&self, image: &[u8]) -> Result<PreparedImage, EngineError>;
    /// See [`Engine::run`]; an image from another engine is refused with [`ImageError::WrongEngine`].
    fn run_image(&self, image: &PreparedImage, invocation: Invocation<'_>) -> Result<Completion, EngineError>;
}

impl<E: Engine> DynEngine for E {
    fn name(&self) -> &'static str {
        Engine::name(self)
    }

    fn prepare_image(&self, image: &[u8]) -> Result<PreparedImage, EngineError> {
        let prepared = self.prepare(image)?;
        Ok(PreparedImage { engine: Engine::name(self), size: image.len(), inner: Arc::new(prepared) })
    }

    fn run_image(&self, image: &PreparedImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let wrong = || ImageError::WrongEngine { expected: Engine::name(self), found: image.engine };
        if image.engine != Engine::name(self) {
            return Err(wrong().into());
        }
        let prepared = image.inner.downcast_ref::<E::Image>().ok_or_else(wrong)?;
        self.run(prepared, invocation)
    }
}
