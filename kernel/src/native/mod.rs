//! The native engines' hardware half: x86_64 static-PIE functions run at CPL 3
//! (docs/function-abi.md, "The native transport"). The policy — layout, keys, image loading,
//! what a fault means, time slices, the exit call — is the host-tested `native` crate
//! (`compute-engines/native`); this module gives it page tables ([`SandboxSpace`] on
//! [`AddressSpace`]), ring 3 and the timer.
//!
//! Every sandbox sees its image (W^X), the read-only system data block with its inputs, a heap
//! and a stack mapped on first touch but for their first page, mapped before the run (counted
//! with the image against the memory limit, zero until written), and guard gaps between them
//! ([`Layout`]). A slot or pooled space keeps those two and the system data page mapped from
//! run to run, scrubbed between runs ([`Kept`]).
//! - `paging` ([`PagingEngine`]): every run gets its own address space (one PML4 sharing the
//!   kernel's upper half), emptied after it and pooled for the next run.
//! - `mpk` ([`MpkEngine`]): one shared user address space, a 32 GiB slot and a protection key
//!   (1..15) per live sandbox, PKRU granting that key alone while it runs.
//!
//! A run goes one time slice at a time ([`Sandbox::resume`], [`SliceClock`]): the timer
//! interrupts it every 2 ms to check its budget and cancellation, and at the slice's end it is
//! preempted with its whole user context saved and handed back as [`Step::Preempted`], for the
//! dispatcher to queue again. The one exit is `syscall` with the exit number; any other trap
//! ends the run with an error naming the vector, the address and the instruction pointer (kernel
//! addresses redacted). Teardown unmaps what the sandbox mapped and frees its own frames (zeroed
//! when allocated again) but the kept pages (zeroed if written) and the image, which stays
//! mapped for the slot's next run of the same function (its written pages filled again:
//! [`KeptImage`]); the image's read-only and executable pages are shared frames, filled once
//! when the function is prepared ([`NativeImage`]).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use engine::{Completion, Engine, EngineError, Invocation};
use model::Set;
use native::fault::{Fault, FaultAction, no_frame};
use native::layout::pages;
use native::slice::budget_ticks;
use native::{
    Access, ExitMemory, Footprint, KeyPool, Layout, MapError, Paged, SandboxSpace, SliceClock, TickAction,
    exit_outcome, load_image, system_block_len, write_system_block,
};
use spin::Mutex;

use crate::arch::usermode::{self, Exit, ExtendedState, Session, Tick, UserRegs};
use crate::arch::uspace::{self, AddressSpace, Leaf};
use crate::{arch, time};

/// A prepared native function: its checked image and plan ([`native::NativeImage`]) and the
/// frames of its shared pages, filled once here and mapped read-only (or executable) into
/// every run, so code pages are never rewritten between runs (nor re-translated by an
/// emulator that caches translations by physical page). Only writable pages are fresh per run.
#[derive(Clone)]
pub struct NativeImage {
    image: native::NativeImage,
    frames: Arc<SharedFrames>,
    /// Shared by the function's copies of the image (not by runs or kept images): its drop,
    /// when the function is gone, unmaps the image wherever a slot or pooled space still keeps
    /// it ([`forget_kept`]).
    _owner: Arc<ImageOwner>,
}

/// The function's hold on its image ([`NativeImage`]): who the image is (its frames).
struct ImageOwner(alloc::sync::Weak<SharedFrames>);

impl Drop for ImageOwner {
    fn drop(&mut self) {
        forget_kept(self.0.as_ptr());
    }
}

/// The MPK (and `cheri`) engines' shared state, for [`forget_kept`] (at most two engines).
static SHARED_SPACES: Mutex<[Option<alloc::sync::Weak<MpkShared>>; 2]> = Mutex::new([const { None }; 2]);

/// Unmaps the image whose shared frames are `frames` from every slot and pooled space that
/// keeps it ([`KeptImage`]), when its function is gone: no run of it will come, and its frames
/// and template should not outlive it. A slot in use is not among them (its record is with
/// its sandbox, which holds the function until its end: `Names::Shared`). Lock order as
/// `acquire_key_for` (keys, then kept) and then the space, so that no key is taken, and no
/// slot loaded, while its record goes.
fn forget_kept(frames: *const SharedFrames) {
    let matches = |kept: &Kept| kept.image.as_deref().is_some_and(|[k]| Arc::as_ptr(&k.frames) == frames);
    let engines: [Option<Arc<MpkShared>>; 2] = {
        let registered = SHARED_SPACES.lock();
        core::array::from_fn(|i| registered[i].as_ref().and_then(alloc::sync::Weak::upgrade))
    };
    for shared in engines.iter().flatten() {
        let _keys = shared.keys.lock();
        let mut kept = shared.kept.lock();
        if !kept.iter().any(matches) {
            continue;
        }
        let mut space = shared.space.lock();
        for slot in kept.iter_mut().filter(|k| matches(k)) {
            if let Some(record) = slot.image.take() {
                let [record] = *record;
                record.unmap(&mut space);
            }
        }
    }
    for (space, kept) in SPACES.lock().iter_mut().filter(|(_, k)| matches(k)) {
        if let Some(record) = kept.image.take() {
            let [record] = *record;
            record.unmap(space);
        }
    }
}

/// Frames of an image's shared pages; freed when the image and every run mapping them are gone
/// (a run holds a reference until its memory is emptied).
struct SharedFrames(Vec<u64>);

impl Drop for SharedFrames {
    fn drop(&mut self) {
        for &frame in &self.0 {
            if let Err(e) = crate::mm::free_frame(frame) {
                log::error!("native: freeing an image frame {frame:#x}: {e:?}");
            }
        }
    }
}

/// Checks `file` and fills the frames of its shared pages.
fn prepare(file: &[u8]) -> Result<NativeImage, EngineError> {
    let image = native::prepare(file)?;
    let mut frames = SharedFrames(Vec::new());
    frames.0.try_reserve_exact(image.shared_count()).map_err(|_| internal("no memory for the image's frames"))?;
    for bytes in image.shared_pages() {
        let frame = crate::mm::alloc_frame().ok_or_else(|| internal("no frame for the image"))?;
        frames.0.push(frame);
        // SAFETY: a fresh frame of ours in the direct map; `bytes` is at most a page. Nothing
        // maps it yet, and once mapped it is never writable.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), arch::phys_to_virt(frame), bytes.len()) };
        uspace::sync_code(frame, bytes.len());
    }
    let frames = Arc::new(frames);
    let _owner = Arc::new(ImageOwner(Arc::downgrade(&frames)));
    Ok(NativeImage { image, frames, _owner })
}

/// The arch's page tables are what the policy crate maps sandboxes through.
impl SandboxSpace for AddressSpace {
    fn map_bytes(&mut self, virt: u64, bytes: &[u8], pages: u64, access: Access, key: u8) -> Result<(), MapError> {
        AddressSpace::map_bytes(self, virt, bytes, pages, arch_access(access), key).map_err(|()| MapError)
    }

    fn map_filled(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MapError> {
        AddressSpace::map_filled(self, virt, arch_access(access), key, fill).map_err(|()| MapError)
    }

    fn map_overwritten(
        &mut self,
        virt: u64,
        access: Access,
        key: u8,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), MapError> {
        AddressSpace::map_overwritten(self, virt, arch_access(access), key, fill).map_err(|()| MapError)
    }

    fn map_shared(&mut self, virt: u64, frame: u64, access: Access, key: u8) -> Result<(), MapError> {
        AddressSpace::map_shared(self, virt, frame, arch_access(access), key).map_err(|()| MapError)
    }
}

fn arch_access(access: Access) -> uspace::Access {
    match access {
        Access::ReadOnly => uspace::Access::ReadOnly,
        Access::Writable => uspace::Access::Writable,
        Access::Executable => uspace::Access::Executable,
    }
}

/// How far one turn of a native run got ([`PagingEngine::start`], [`MpkEngine::start`],
/// [`Sandbox::resume`]).
// A preempted sandbox travels by value (its registers are already boxed): boxing it too would
// allocate at every preemption, on the path that must not fail for want of heap.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// The run ended: its outputs, or why it failed.
    Done(Result<Completion, EngineError>),
    /// Its slice ran out: the sandbox, with its whole user context and its memory (address
    /// space, or slot and key), waits to be resumed, on this core or another. Dropping it
    /// frees everything it holds (a cancelled run).
    Preempted(Sandbox),
    /// MPK only: every protection key is held (some by parked sandboxes); the run did not
    /// start and its inputs come back, to be queued again.
    NoKey(Vec<Set>),
}

/// A native engine and an image of its own, ready to start runs that the dispatcher may
/// preempt and requeue (`Engines::native`).
pub enum Native<'a> {
    Paging(&'a PagingEngine, &'a NativeImage),
    Mpk(&'a MpkEngine, &'a NativeImage),
}

impl Native<'_> {
    /// Starts a run and runs its first slice. `names` are the invocation's output set names
    /// (`invocation.outputs`), kept by the sandbox until its exit.
    pub fn start(&self, invocation: Invocation<'_>, names: Names) -> Step {
        match self {
            Native::Paging(engine, image) => engine.start(image, invocation, names),
            Native::Mpk(engine, image) => engine.start(image, invocation, names),
        }
    }
}

/// What owns a function's output set names, so that a sandbox can share them for its whole
/// run (it may be parked and resumed on another core) instead of copying them.
pub trait OutputNames: Send + Sync {
    fn output_names(&self) -> &[String];
}

impl OutputNames for control::StoredFunction {
    fn output_names(&self) -> &[String] {
        self.spec().outputs()
    }
}

/// A sandbox's output set names: shared with their owner (the stored function), or a copy
/// (callers of [`Engine::run`], which has only a borrowed list).
pub enum Names {
    Shared(Arc<dyn OutputNames>),
    Own(Vec<String>),
}

impl Names {
    fn get(&self) -> &[String] {
        match self {
            Names::Shared(owner) => owner.output_names(),
            Names::Own(names) => names,
        }
    }

    /// A copy of `names`, or `None` when the heap has no room (it must fail cleanly).
    fn copied(names: &[String]) -> Option<Self> {
        let mut own = Vec::new();
        own.try_reserve_exact(names.len()).ok()?;
        own.extend(names.iter().cloned());
        Some(Names::Own(own))
    }
}

/// The page-table engine.
pub struct PagingEngine;

impl PagingEngine {
    /// Starts a run in a fresh address space and runs its first slice.
    pub fn start(&self, image: &NativeImage, invocation: Invocation<'_>, names: Names) -> Step {
        let start = time::ticks();
        let pooled = SPACES.lock().pop();
        let Some((space, kept)) = pooled.or_else(|| Some((AddressSpace::new()?, Kept::default()))) else {
            return Step::Done(Err(internal("no frame for a page table")));
        };
        let layout = Layout::own();
        start_in(Memory::Own(Some(space), Footprint::new(layout), kept), layout, image, invocation, names, start)
    }
}

impl Engine for PagingEngine {
    type Image = NativeImage;

    fn name(&self) -> &'static str {
        "paging"
    }

    fn prepare(&self, file: &[u8]) -> Result<NativeImage, EngineError> {
        prepare(file)
    }

    fn run(&self, image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let deadline = invocation.deadline;
        let Some(names) = Names::copied(invocation.outputs) else {
            return Err(internal("no memory for the sandbox's state"));
        };
        to_end(self.start(image, invocation, names), deadline)
    }
}

/// Resumes a preempted sandbox until it ends (for callers that do not requeue).
fn to_end(mut step: Step, deadline: Option<&dyn engine::Deadline>) -> Result<Completion, EngineError> {
    loop {
        match step {
            Step::Done(result) => return result,
            Step::Preempted(sandbox) => step = sandbox.resume(deadline),
            Step::NoKey(_) => return Err(internal("no protection key")),
        }
    }
}

/// The MPK engine: one user address space shared by every live sandbox, each in its own slot
/// of [`SLOT_SIZE`] whose pages carry the sandbox's protection key (1..15); PKRU grants the
/// running sandbox its key alone. More live sandboxes than keys wait for a key.
pub struct MpkEngine {
    shared: Arc<MpkShared>,
}

/// What every MPK sandbox shares: the address space and the key pool. Parked sandboxes hold a
/// reference, so that dropping one (a cancelled run) can empty its slot and free its key.
struct MpkShared {
    /// The `cheri` engine (slots confined by capabilities, pages with key 0) rather than MPK.
    cheri: bool,
    space: Mutex<AddressSpace>,
    keys: Mutex<KeyPool>,
    /// What each key's slot keeps mapped between its runs (index: the key).
    kept: Mutex<[Kept; 16]>,
}

/// TSC ticks (instructions under icount) spent in each phase of native runs, all engines and
/// cores: create (address space or slot, image, system data block), run (entry, the function,
/// its page faults and timer ticks, exit; every slice), collect (outputs out of the sandbox),
/// destroy (unmap and free); and the number of runs.
static PHASE_TICKS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static RUNS: AtomicU64 = AtomicU64::new(0);
const CREATE: usize = 0;
const RUN: usize = 1;
const COLLECT: usize = 2;
const DESTROY: usize = 3;

fn add_ticks(phase: usize, since: u64) -> u64 {
    let now = time::ticks();
    PHASE_TICKS[phase].fetch_add(now.saturating_sub(since), Ordering::Relaxed);
    now
}

/// (runs, [create, run, collect, destroy] ticks) of native runs so far.
pub fn phase_stats() -> (u64, [u64; 4]) {
    (RUNS.load(Ordering::Relaxed), core::array::from_fn(|i| PHASE_TICKS[i].load(Ordering::Relaxed)))
}

/// MPK runs that found every key taken and waited for one (all cores).
static KEY_WAITS: AtomicU64 = AtomicU64::new(0);

/// MPK runs that had to wait for a key so far.
pub fn key_waits() -> u64 {
    KEY_WAITS.load(Ordering::Relaxed)
}

/// Counts one run that found every key taken (once per run: the dispatcher says whether this
/// run was counted before).
pub fn count_key_wait() {
    KEY_WAITS.fetch_add(1, Ordering::Relaxed);
}

/// Protection keys held by live MPK sandboxes (all cores; parked ones included).
static KEYS_LIVE: AtomicU64 = AtomicU64::new(0);

/// Protection keys in use now (0 when no MPK sandbox is live): the soak checks it comes back.
pub fn keys_live() -> u64 {
    KEYS_LIVE.load(Ordering::Relaxed)
}

impl MpkShared {
    /// A free key, counted live until [`release_key`](Self::release_key).
    fn acquire_key(&self) -> Option<u8> {
        let key = self.keys.lock().try_acquire()?;
        KEYS_LIVE.fetch_add(1, Ordering::Relaxed);
        Some(key)
    }

    /// A free key whose slot still holds `image` from an earlier run if there is one (its run
    /// then maps nothing of the image: [`KeptImage`]), else any free key.
    fn acquire_key_for(&self, image: &NativeImage) -> Option<u8> {
        let mut keys = self.keys.lock();
        let holding = {
            let kept = self.kept.lock();
            (1..16u16)
                .filter(|&k| kept[usize::from(k)].image.as_deref().is_some_and(|[i]| i.is(image)))
                .fold(0u16, |mask, k| mask | 1 << k)
        };
        let key = keys.try_acquire_preferring(holding)?;
        KEYS_LIVE.fetch_add(1, Ordering::Relaxed);
        Some(key)
    }

    fn release_key(&self, key: u8) {
        self.keys.lock().release(key);
        KEYS_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MpkEngine {
    /// The engine, if the CPU has protection keys (CR4.PKE on).
    pub fn new() -> Option<Self> {
        if !usermode::pku_enabled() {
            return None;
        }
        let space = AddressSpace::new()?;
        // The shared space lives as long as the kernel (the engine is made once, at boot).
        space.make_resident();
        let kept = Mutex::new(core::array::from_fn(|_| Kept::default()));
        Some(Self::registered(MpkShared {
            cheri: false,
            space: Mutex::new(space),
            keys: Mutex::new(KeyPool::new()),
            kept,
        }))
    }

    /// The `cheri` engine, on an Arm Morello CPU with capabilities on: the same shared space
    /// and slots (one translation table and ASID for every sandbox), each sandbox confined to
    /// its slot by its DDC and to its image by its PCC instead of by a protection key.
    pub fn new_cheri() -> Option<Self> {
        if !usermode::cheri_available() {
            return None;
        }
        let space = AddressSpace::new()?;
        let kept = Mutex::new(core::array::from_fn(|_| Kept::default()));
        Some(Self::registered(MpkShared {
            cheri: true,
            space: Mutex::new(space),
            keys: Mutex::new(KeyPool::new()),
            kept,
        }))
    }

    /// The engine over `shared`, known to [`forget_kept`] (a third engine would not be: its
    /// slots then keep a gone function's image until they run another).
    fn registered(shared: MpkShared) -> Self {
        let shared = Arc::new(shared);
        if let Some(free) = SHARED_SPACES.lock().iter_mut().find(|s| s.is_none()) {
            *free = Some(Arc::downgrade(&shared));
        }
        Self { shared }
    }

    /// Starts a run in a free key's slot and runs its first slice; [`Step::NoKey`] when every
    /// key is held.
    pub fn start(&self, image: &NativeImage, invocation: Invocation<'_>, names: Names) -> Step {
        let Some(key) = self.shared.acquire_key_for(image) else { return Step::NoKey(invocation.inputs) };
        self.start_with(key, image, invocation, names)
    }

    fn start_with(&self, key: u8, image: &NativeImage, invocation: Invocation<'_>, names: Names) -> Step {
        let start = time::ticks();
        let layout = if self.shared.cheri { Layout::cheri_slot(key) } else { Layout::slot(key) };
        let kept = core::mem::take(&mut self.shared.kept.lock()[usize::from(key)]);
        let memory = Memory::Shared { shared: Arc::clone(&self.shared), key, footprint: Footprint::new(layout), kept };
        start_in(memory, layout, image, invocation, names, start)
    }
}

impl Engine for MpkEngine {
    type Image = NativeImage;

    fn name(&self) -> &'static str {
        if self.shared.cheri { "cheri" } else { "mpk" }
    }

    fn prepare(&self, file: &[u8]) -> Result<NativeImage, EngineError> {
        prepare(file)
    }

    /// Runs to the end on this core, waiting (spinning) for a key when all are held.
    fn run(&self, image: &NativeImage, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let Some(names) = Names::copied(invocation.outputs) else {
            return Err(internal("no memory for the sandbox's state"));
        };
        let mut waited = false;
        let key = loop {
            if let Some(key) = self.shared.acquire_key() {
                break key;
            }
            if !waited {
                waited = true;
                count_key_wait();
            }
            core::hint::spin_loop();
        };
        let deadline = invocation.deadline;
        to_end(self.start_with(key, image, invocation, names), deadline)
    }
}

/// A sandbox's memory: its own address space (paging), or its key's slot in the shared one
/// (MPK), with what it has mapped there ([`Footprint`]). Dropping it empties exactly that
/// (its own frames freed, zeroed when next allocated; shared image frames left to the image),
/// keeping the page tables: the paging engine's space goes back to [`SPACES`], the MPK slot's
/// key is free again.
enum Memory {
    /// (Always `Some` until the drop.)
    Own(Option<AddressSpace>, Footprint, Kept),
    Shared {
        shared: Arc<MpkShared>,
        key: u8,
        footprint: Footprint,
        kept: Kept,
    },
}

/// The pages a slot (MPK) or pooled space (paging) keeps mapped from one run to the next, so
/// that a run does not allocate, zero, map and unmap them afresh. Both hold nothing of an
/// earlier run when the next one starts:
/// - the system data block's first page, read-only to the sandbox, so only the kernel writes
///   it: each run's block is written over the last one's after the bytes that one used are
///   zeroed;
/// - the stack's top page and the heap's first page, mapped zeroed before a first run (which
///   saves every run the page faults of their first touch: every function's entry pushes onto
///   the stack, and the SDK's allocator starts at the heap). After a run each one's dirty bit
///   says whether a run wrote it since it was mapped: if so it is zeroed before the slot is
///   free again (the bit stays set: clearing it would leave other CPUs' TLB entries stale, so
///   each would have to write CR3 before its next run).
///
/// Each is held by its page-table entry in the slot's or space's tables (which live as long as
/// the space), so that reaching it again takes no walk.
#[derive(Default)]
struct Kept {
    /// The kept system data page and the bytes the last run's block used in it.
    sys: Option<(Leaf, usize)>,
    /// The stack's top page (all zero between runs).
    stack: Option<Leaf>,
    /// The heap's first page (all zero between runs).
    heap: Option<Leaf>,
    /// The image the last run mapped, still mapped as loaded ([`KeptImage`]; on the heap, so
    /// that a parked sandbox, which holds its slot's record, stays small).
    image: Option<Box<[KeptImage; 1]>>,
}

/// Context areas of ended runs, for the next runs to reuse instead of allocating one (each
/// ~1.2 KiB; its registers are all written at the start, its extended state marked unsaved, so
/// nothing of the last run is read). At most [`POOLED_CONTEXTS`], so that the heap they hold
/// stays within a few KiB whatever the concurrency was.
static CONTEXTS: Mutex<[Option<Box<[Context; 1]>>; POOLED_CONTEXTS]> = Mutex::new([const { None }; POOLED_CONTEXTS]);
const POOLED_CONTEXTS: usize = 2;

/// A context area for a run starting with `regs`: a pooled one, or a new one (`None` when the
/// heap has no room: a request's allocation must fail cleanly).
fn context_for(regs: UserRegs) -> Option<Box<[Context; 1]>> {
    let pooled = CONTEXTS.lock().iter_mut().find_map(Option::take);
    match pooled {
        Some(mut context) => {
            context[0].regs = regs;
            context[0].extended.reset();
            Some(context)
        }
        None => boxed_context(regs),
    }
}

/// An image a slot or pooled space keeps mapped after a run, as a fresh load leaves it, so that
/// the next run of the same function there maps nothing of it (no allocation, no fill, no
/// relocation, no unmapping at its end): its shared pages (read-only and executable, the
/// image's own frames, which this keeps alive) and its private pages (the space's frames:
/// each one a run wrote, by its dirty bit, is filled again from the template and relocated,
/// before the slot is free again: [`scrub_image`]). A run of another image unmaps it first
/// (its private frames freed, zeroed when allocated again), as a run's own image was unmapped
/// before.
struct KeptImage {
    /// The image's shared frames: who it is ([`KeptImage::is`]) and what keeps them alive while
    /// mapped here.
    frames: Arc<SharedFrames>,
    image: native::NativeImage,
    /// Where it is mapped (the layout's image address) and its span.
    base: u64,
    span: u64,
    /// Its private pages: offset from `base`, leaf entry.
    private: Vec<(u64, Leaf)>,
}

/// The most private pages (writable segments, `.bss` included) an image may have to be kept
/// between runs: a larger one is unmapped after each run as before, so that idle slots and
/// pooled spaces hold at most (15 + 8) × 16 frames of images (and little heap for their
/// records), whatever the functions' data sizes.
const MAX_KEPT_PRIVATE_PAGES: usize = 16;

/// Private frames that slots and pooled spaces keep mapped with their [`KeptImage`]s: frames
/// that a fresh load would have freed after each run (`/metrics`
/// `pappus_native_kept_image_frames`, so that a count of free frames can be read against it).
static KEPT_IMAGE_FRAMES: AtomicU64 = AtomicU64::new(0);

/// Frames held now by images kept mapped between runs ([`KEPT_IMAGE_FRAMES`]).
pub fn kept_image_frames() -> u64 {
    KEPT_IMAGE_FRAMES.load(Ordering::Relaxed)
}

impl KeptImage {
    /// Records `image`, just loaded at `layout` in `space`; `None` when the heap has no room for
    /// the record or a page is missing (the run then unmaps the image at its end, as before).
    fn record(space: &mut AddressSpace, layout: Layout, image: &NativeImage) -> Option<Box<[Self; 1]>> {
        let base = layout.image();
        let count = image.image.private_pages().count();
        if count > MAX_KEPT_PRIVATE_PAGES {
            return None;
        }
        let mut record = Vec::new();
        record.try_reserve_exact(1).ok()?;
        let mut private = Vec::new();
        private.try_reserve_exact(count).ok()?;
        for offset in image.image.private_pages() {
            private.push((offset, space.leaf(base + offset)?));
        }
        // Counted from here; the drop takes them off.
        KEPT_IMAGE_FRAMES.fetch_add(private.len() as u64, Ordering::Relaxed);
        record.push(Self {
            frames: Arc::clone(&image.frames),
            image: image.image.clone(),
            base,
            span: image.image.span(),
            private,
        });
        record.into_boxed_slice().try_into().ok()
    }

    /// Whether this is `image` (the same prepared function: its frames).
    fn is(&self, image: &NativeImage) -> bool {
        Arc::ptr_eq(&self.frames, &image.frames)
    }

    /// Unmaps it from `space` (its private frames freed).
    fn unmap(self, space: &mut AddressSpace) {
        space.clear_range(self.base, self.base + self.span);
    }
}

impl Drop for KeptImage {
    fn drop(&mut self) {
        KEPT_IMAGE_FRAMES.fetch_sub(self.private.len() as u64, Ordering::Relaxed);
    }
}

/// After a run (its sandbox no longer running on any CPU): puts back, as loaded, every private
/// page of the kept image that a run wrote (its dirty bit, never cleared: once written, the
/// page is filled again after every run, and its entry never changes); a page found missing
/// unmaps the whole image instead (the next run loads it afresh).
fn scrub_image(space: &mut AddressSpace, kept: &mut Option<Box<[KeptImage; 1]>>) {
    let Some([image]) = kept.as_deref() else { return };
    for &(offset, leaf) in &image.private {
        // SAFETY: `leaf` came from this space (the record is this space's or slot's).
        let restored = match unsafe { space.written(leaf) } {
            Some(false) => true,
            // SAFETY: as above.
            Some(true) => unsafe {
                space
                    .with_page(leaf, |bytes| image.image.fill_private_with(offset, image.base, bytes, usermode::zero))
                    .is_some()
            },
            None => false,
        };
        if !restored {
            if let Some(image) = kept.take() {
                let [image] = *image;
                image.unmap(space);
            }
            return;
        }
    }
}

/// Maps zeroed pages after the system data block's first page (`sys`, already mapped and
/// zero), `count` pages in all, and writes the block through their entries ([`Paged`]): no copy
/// of the block on the heap, whatever its size. Fails when a page cannot be had (no frame, or
/// no heap for the list of the pages' entries).
fn write_block_over_pages(
    space: &mut AddressSpace,
    key: u8,
    sys: u64,
    count: u64,
    inputs: &[Set],
    outputs: &[String],
    (heap, heap_len): (u64, u64),
) -> Result<(), EngineError> {
    let mut leaves = Vec::new();
    leaves.try_reserve_exact(count as usize).map_err(|_| internal("no memory for the system data block's pages"))?;
    for i in 0..count {
        let page = sys + i * 4096;
        if i > 0 {
            space
                .map_zeroed(page, uspace::Access::ReadOnly, key)
                .map_err(|()| internal("mapping the system data block"))?;
        }
        leaves.push(space.leaf(page).ok_or_else(|| internal("a system data page is gone"))?);
    }
    let mut block = Paged::new(|page: usize, offset: usize, bytes: &[u8]| {
        let write = |p: &mut [u8]| p.get_mut(offset..offset + bytes.len()).map(|d| d.copy_from_slice(bytes)).is_some();
        leaves.get(page).is_some_and(|&leaf| {
            // SAFETY: `leaf` was just read from this space, whose sandbox does not run now.
            let written = unsafe { space.with_page(leaf, write) };
            written == Some(true)
        })
    });
    write_system_block(&mut block, sys, inputs, outputs, heap, heap_len);
    if block.complete { Ok(()) } else { Err(internal("writing the system data block")) }
}

/// Input pages mapped into sandboxes rather than copied ([`native::mapped`]), since boot.
static INPUT_PAGES_MAPPED: AtomicU64 = AtomicU64::new(0);

/// Pages of input items mapped read-only into native sandboxes instead of copied (`/metrics`
/// `pappus_native_input_pages_mapped_total`).
pub fn input_pages_mapped() -> u64 {
    INPUT_PAGES_MAPPED.load(Ordering::Relaxed)
}

/// Maps the pages of every input item that is not copied into the system data block
/// ([`native::mapped`]) read-only, with the sandbox's key, from the page after the block
/// (`block_pages` from `sys`) on, in the order of their descriptors (where
/// [`write_system_block`] pointed them). The pages stay the items' (a shared mapping:
/// unmapping frees nothing); the footprint holds each item until the region is emptied.
fn map_inputs(
    space: &mut AddressSpace,
    key: u8,
    sys: u64,
    block_pages: u64,
    inputs: &[Set],
    footprint: &mut Footprint,
) -> Result<(), EngineError> {
    let region = native::layout::HEAP_OFFSET - native::layout::SYS_OFFSET;
    let mut at = sys + block_pages * 4096;
    for item in inputs.iter().flat_map(|s| s.items.iter()) {
        let Some(item_pages) = native::mapped(item) else { continue };
        let sys_bytes = at - sys + (item_pages.len() * 4096) as u64;
        if sys_bytes > region {
            return Err(internal("the inputs do not fit the system data region"));
        }
        footprint.map_input(&item.data, sys_bytes).map_err(|_| internal("no memory to map an input"))?;
        for page in item_pages {
            let phys = arch::virt_to_phys(page.0.as_ptr() as u64);
            space
                .map_shared(at, phys, uspace::Access::ReadOnly, key)
                .map_err(|()| internal("mapping an input item"))?;
            at += 4096;
        }
        INPUT_PAGES_MAPPED.fetch_add(item_pages.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Maps the zeroed page `page` if `wanted` and `kept` says it is not there yet, or unmaps it if
/// it is there but not `wanted` (the run's memory limit leaves no page for it).
fn keep_page(
    space: &mut AddressSpace,
    key: u8,
    page: u64,
    wanted: bool,
    kept: &mut Option<Leaf>,
) -> Result<(), EngineError> {
    match (wanted, *kept) {
        (true, None) => {
            space.map_zeroed(page, uspace::Access::Writable, key).map_err(|()| internal("mapping a kept page"))?;
            *kept = space.leaf(page);
        }
        (false, Some(_)) => {
            space.clear_range(page, page + 4096);
            *kept = None;
        }
        _ => {}
    }
    Ok(())
}

/// After a run (its sandbox no longer running on any CPU): zeroes the kept page `page` if a
/// run wrote it (its dirty bit, never cleared: once written, the page is zeroed after every run,
/// and its entry never changes, so no CPU needs its TLB flushed for it).
fn scrub_page(space: &mut AddressSpace, page: u64, kept: &mut Option<Leaf>) {
    let Some(leaf) = *kept else { return };
    // SAFETY: `kept` is this space's (or slot's) record, so `leaf` came from this space; the
    // sandbox has stopped (the kernel is the page's only writer now).
    match unsafe { space.written(leaf) } {
        Some(false) => {}
        // SAFETY: as above.
        Some(true) if unsafe { space.with_page(leaf, usermode::zero) }.is_some() => {}
        _ => {
            space.clear_range(page, page + 4096);
            *kept = None;
        }
    }
}

/// Emptied paging address spaces (page tables kept, no user page mapped but their [`Kept`]
/// ones), for the next runs; at most [`POOLED_SPACES`].
static SPACES: Mutex<Vec<(AddressSpace, Kept)>> = Mutex::new(Vec::new());
const POOLED_SPACES: usize = 8;

impl Memory {
    fn with<R>(&mut self, f: impl FnOnce(&mut AddressSpace, u8, &mut Footprint, &mut Kept) -> R) -> R {
        match self {
            Memory::Own(Some(space), footprint, kept) => f(space, 0, footprint, kept),
            Memory::Own(None, ..) => unreachable!("a paging sandbox's space is only taken by its drop"),
            Memory::Shared { shared, key, footprint, kept } => {
                // `cheri` slots carry no protection key (aarch64 has none): capabilities confine.
                let page_key = if shared.cheri { 0 } else { *key };
                f(&mut shared.space.lock(), page_key, footprint, kept)
            }
        }
    }
}

/// Unmaps what the sandbox mapped but the kept pages, and zeroes the kept stack page if the
/// sandbox wrote it.
fn empty(space: &mut AddressSpace, footprint: &Footprint, kept: &mut Kept) {
    let [image, sys, heap, stack] = footprint.ranges();
    // Empty when the run found its image kept (it loaded nothing), or kept what it loaded.
    space.clear_range(image.start, image.end);
    scrub_image(space, &mut kept.image);
    // The block's pages past the first (the kept one, when there is one).
    let sys_start = if kept.sys.is_some() { sys.start + 4096 } else { sys.start };
    space.clear_range(sys_start, sys.end);
    // The heap's first page and the stack's top page, when kept, are scrubbed instead.
    let heap_start = if kept.heap.is_some() { heap.start + 4096 } else { heap.start };
    space.clear_range(heap_start, heap.end);
    let stack_end = if kept.stack.is_some() { stack.end - 4096 } else { stack.end };
    space.clear_range(stack.start, stack_end);
    scrub_page(space, heap.start, &mut kept.heap);
    scrub_page(space, stack.end - 4096, &mut kept.stack);
}

impl Drop for Memory {
    fn drop(&mut self) {
        let start = time::ticks();
        match self {
            Memory::Own(space, footprint, kept) => {
                if let Some(mut space) = space.take() {
                    empty(&mut space, footprint, kept);
                    let mut pool = SPACES.lock();
                    if pool.len() < POOLED_SPACES && pool.try_reserve(1).is_ok() {
                        pool.push((space, core::mem::take(kept)));
                    }
                }
            }
            Memory::Shared { shared, key, footprint, kept } => {
                // The slot is emptied (and what it keeps recorded) before its key is free.
                empty(&mut shared.space.lock(), footprint, kept);
                shared.kept.lock()[usize::from(*key)] = core::mem::take(kept);
                shared.release_key(*key);
            }
        }
        add_ticks(DESTROY, start);
    }
}

fn internal(what: &str) -> EngineError {
    EngineError::internal(format!("native engine: {what}"))
}

/// A sandbox's memory and where its regions are: what the fault handler needs.
struct Space {
    memory: Memory,
    /// The image's shared frames, mapped in `memory`: dropped after it (field order).
    _frames: Arc<SharedFrames>,
    layout: Layout,
    heap_end: u64,
    /// Pages the heap and stack may still take.
    pages_left: u64,
    memory_limit: u64,
}

/// A native run between its slices: its memory, its whole user context (general registers,
/// RIP/RFLAGS/RSP, data segments and FS/GS bases, x87/SSE/AVX), and what is left of its time
/// budget. Only [`Sandbox::resume`] runs it again; dropping it frees its memory and key.
pub struct Sandbox {
    space: Space,
    /// Its registers (on the heap: a parked sandbox waits in the run queue, whose entries stay
    /// small). Always `Some` until its drop, which hands the area to the next run
    /// ([`CONTEXTS`]).
    context: Option<Box<[Context; 1]>>,
    outputs: Names,
    limits: engine::Limits,
    /// PKRU while it runs (None: CR4.PKE off).
    pkru: Option<u32>,
    /// Ticks of its time budget not yet used (time spent parked does not count).
    budget_left: u64,
}

/// A sandbox's whole user context.
struct Context {
    regs: UserRegs,
    extended: ExtendedState,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Its context area goes to the pool (or is freed when the pool is full).
        if let Some(context) = self.context.take()
            && let Some(free) = CONTEXTS.lock().iter_mut().find(|c| c.is_none())
        {
            *free = Some(context);
        }
    }
}

/// The state of one slice that the trap handlers see.
struct SliceSession<'a> {
    space: &'a mut Space,
    deadline: Option<&'a dyn engine::Deadline>,
    clock: SliceClock,
    timed_out: bool,
    error: Option<EngineError>,
}

impl Session for SliceSession<'_> {
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()> {
        let space = &mut *self.space;
        let fault = Fault { vector, error_code, rip, cr2 };
        let action =
            usermode::classify_fault(space.layout, space.heap_end, space.pages_left, space.memory_limit, fault);
        let error = match action {
            FaultAction::MapPage(page) => {
                let mapped = space.memory.with(|s, key, footprint, _| {
                    footprint.lazy(page);
                    s.map_zeroed(page, uspace::Access::Writable, key)
                });
                if mapped.is_ok() {
                    space.pages_left -= 1;
                    return Some(());
                }
                no_frame(space.memory_limit, cr2)
            }
            FaultAction::End(error) => error,
        };
        self.error = Some(error);
        None
    }

    fn on_tick(&mut self) -> Tick {
        let cancelled = self.deadline.is_some_and(|d| d.expired());
        match self.clock.on_tick(time::ticks(), cancelled) {
            TickAction::Resume { next_tick } => {
                usermode::arm_tick(next_tick);
                Tick::Resume
            }
            TickAction::Preempt => Tick::Preempt,
            TickAction::End => {
                self.timed_out = true;
                Tick::End
            }
        }
    }
}

/// Sets up a sandbox in `memory` at `layout` (image, system data block, registers) and runs
/// its first slice. On any failure `memory` is dropped, which frees it.
fn start_in(
    mut memory: Memory,
    layout: Layout,
    image: &NativeImage,
    invocation: Invocation<'_>,
    names: Names,
    start: u64,
) -> Step {
    RUNS.fetch_add(1, Ordering::Relaxed);
    let Invocation { inputs, outputs, limits, deadline } = invocation;
    // The image's pages count against the memory limit, as a wasm module's data does.
    let image_pages = image.image.pages();
    if image_pages.saturating_mul(4096) > limits.memory_bytes {
        let detail = format!("the image needs {} bytes of pages before the function starts", image_pages * 4096);
        return Step::Done(Err(EngineError::OutOfMemory { limit_bytes: limits.memory_bytes, detail }));
    }
    let heap_len = layout.heap_len(limits.memory_bytes - image_pages * 4096);
    let Some(block_len) = system_block_len(&inputs, outputs) else {
        return Step::Done(Err(internal("no memory for the system data block")));
    };
    // The block is written straight into the sandbox's pages (never gathered on the heap).
    let block_pages = pages(block_len as u64);
    // The stack's top page, then the heap's first page, are mapped before the run (and kept by
    // the slot or space) when the memory limit leaves a page for each.
    let stack_page = pages(limits.memory_bytes) > image_pages;
    let heap_page = pages(limits.memory_bytes) > image_pages + 1 && heap_len >= 4096;
    let loaded = memory.with(|space, key, footprint, kept| {
        // The image as loaded is still there when this slot's (or space's) last run was of the
        // same function; else the last one's goes and this one is loaded (and kept after the
        // run, or unmapped then when there is no room to record it).
        if !kept.image.as_deref().is_some_and(|[k]| k.is(image) && k.base == layout.image()) {
            if let Some(old) = kept.image.take() {
                let [old] = *old;
                old.unmap(space);
            }
            footprint.image(image.image.span());
            load_image(space, key, layout, &image.image, &image.frames.0)?;
            kept.image = KeptImage::record(space, layout, image);
            if kept.image.is_some() {
                // Kept: not unmapped at the run's end (`empty`), scrubbed instead.
                footprint.keep_image();
            }
        }
        let (sys, heap) = (layout.sys(), layout.heap());
        let mapping = |_| internal("mapping the system data block");
        let one_page = block_pages == 1;
        // The block's first page: the kept one (the last block's bytes zeroed first), or a
        // fresh one; a block of one page is written into it here.
        let mut first = |page: &mut [u8]| {
            if one_page {
                write_system_block(page, sys, &inputs, outputs, heap, heap_len);
            }
        };
        let leaf = match kept.sys.take() {
            Some((leaf, last)) => {
                // SAFETY: `kept` is this space's (or slot's) record; no sandbox runs in it now.
                unsafe {
                    space.with_page(leaf, |page| {
                        page[..last].fill(0);
                        first(page)
                    })
                }
                .ok_or_else(|| internal("the kept system data page is gone"))?;
                leaf
            }
            None => {
                SandboxSpace::map_filled(space, sys, Access::ReadOnly, key, &mut first).map_err(mapping)?;
                space.leaf(sys).ok_or_else(|| internal("the system data page is gone"))?
            }
        };
        kept.sys = Some((leaf, block_len.min(4096)));
        if !one_page {
            // Further pages are fresh (zeroed), unmapped after the run; the block is written
            // through every page's entry, the inputs copied once, from their sets.
            footprint.sys(block_len as u64);
            write_block_over_pages(space, key, sys, block_pages, &inputs, outputs, (heap, heap_len))?;
        }
        map_inputs(space, key, sys, block_pages, &inputs, footprint)?;
        keep_page(space, key, layout.stack_top() - 4096, stack_page, &mut kept.stack)?;
        keep_page(space, key, layout.heap(), heap_page, &mut kept.heap)
    });
    drop(inputs);
    if let Err(e) = loaded {
        return Step::Done(Err(e));
    }
    // With CR4.PKE on, PKRU applies to every user page: the paging engine's pages carry key 0.
    let pkru = match &memory {
        Memory::Own(..) => usermode::pku_enabled().then(|| usermode::pkru_grant_only(0)),
        Memory::Shared { shared, .. } if shared.cheri => None,
        Memory::Shared { key, .. } => Some(usermode::pkru_grant_only(*key)),
    };
    let mut regs = UserRegs::start(layout.image() + image.image.entry(), layout.stack_top(), layout.sys());
    // The thread pointer holds the system data block too (docs/function-abi.md, "Entry"): the
    // SDK's allocator finds its state at the heap's start through it, not in a static, whose
    // `.bss` page every run would then write and the slot put back after it. (On Morello
    // TPIDRRO_EL0 is not banked: a `cheri` sandbox in Restricted mode reads the same value.)
    regs.set_thread_pointer(layout.sys());
    if matches!(&memory, Memory::Shared { shared, .. } if shared.cheri) {
        // PCC: the image (its span rounded up to a power of two, which Morello represents
        // exactly at the image's 4 MiB-aligned base; nothing else is mapped up to the system
        // block, and its writable pages are never executable); DDC: the slot.
        let pcc = (layout.image(), image.image.span().next_power_of_two());
        if let Err(why) = usermode::confine(&mut regs, pcc, (layout.base(), native::layout::SLOT_SIZE)) {
            return Step::Done(Err(internal(why)));
        }
    }
    let Some(context) = context_for(regs) else {
        return Step::Done(Err(internal("no memory for the sandbox's state")));
    };

    let sandbox = Sandbox {
        space: Space {
            memory,
            _frames: Arc::clone(&image.frames),
            layout,
            heap_end: layout.heap() + heap_len,
            pages_left: pages(limits.memory_bytes) - image_pages - u64::from(stack_page) - u64::from(heap_page),
            memory_limit: limits.memory_bytes,
        },
        context: Some(context),
        outputs: names,
        limits,
        pkru,
        budget_left: budget_ticks(limits.time.millis, time::ticks_per_second()),
    };
    add_ticks(CREATE, start);
    sandbox.resume(deadline)
}

/// A sandbox's first context on the heap (`regs`, the initial extended state), or `None` when
/// the heap has no room (a request's allocation: it must fail cleanly, not panic).
fn boxed_context(regs: UserRegs) -> Option<Box<[Context; 1]>> {
    let mut area = Vec::new();
    area.try_reserve_exact(1).ok()?;
    area.push(Context { regs, extended: ExtendedState::new() });
    area.into_boxed_slice().try_into().ok()
}

impl Sandbox {
    /// Runs the sandbox for one slice (at most `native::SLICE_MICROS`, less when its budget ends
    /// first) on this core: it ends (exit call, trap, budget, `deadline` expired: cancelled),
    /// or comes back preempted with its context saved.
    pub fn resume(mut self, deadline: Option<&dyn engine::Deadline>) -> Step {
        let entered = time::ticks();
        let clock = SliceClock::new(entered, self.budget_left, time::ticks_per_second());
        let kernel_root = uspace::kernel_root();
        let mut session = SliceSession { space: &mut self.space, deadline, clock, timed_out: false, error: None };
        let previous = session.space.memory.with(|space, _, _, _| {
            space.refresh_kernel_half(kernel_root);
            space.activate()
        });
        // Written only when it differs (each write flushes TCG's TLB). It is left as it is after
        // the run: PKRU only governs user pages, which outside ring 3 nothing touches (SMAP), and
        // ring 3 is entered only here, after this.
        if let Some(pkru) = self.pkru {
            usermode::set_pkru(pkru);
        }
        let Some(context) = self.context.as_deref_mut() else {
            return Step::Done(Err(internal("the sandbox's state is gone")));
        };
        let Context { regs, extended } = &mut context[0];
        let exit = usermode::enter_user(regs, extended, &mut session, Some(clock.first_tick()));
        // Back to the kernel's tables, but from the MPK engine's shared space, which CPUs keep
        // loaded between runs ([`AddressSpace::make_resident`]): the next run's `activate`
        // writes CR3 again, dropping every user page's TLB entry before ring 3 runs.
        session.space.memory.with(|space, _, _, _| space.leave(previous));
        let (timed_out, error) = (session.timed_out, session.error.take());
        let ran = add_ticks(RUN, entered);
        self.budget_left = clock.budget_after(ran, self.budget_left);
        let result = match exit {
            Exit::Preempted if self.budget_left > 0 => return Step::Preempted(self),
            Exit::Preempted => Err(EngineError::Timeout { budget: self.limits.time, wall_clock: true }),
            Exit::Ended if timed_out => Err(EngineError::Timeout { budget: self.limits.time, wall_clock: true }),
            Exit::Ended => Err(error.unwrap_or_else(|| internal("sandbox ended without a cause"))),
            Exit::Syscall => {
                let Space { layout, heap_end, .. } = self.space;
                let Some(context) = self.context.as_deref() else {
                    return Step::Done(Err(internal("the sandbox's state is gone")));
                };
                let (regs, outputs, limits) = (&context[0].regs, self.outputs.get(), &self.limits);
                self.space.memory.with(|space, _, _, _| finish(space, layout, heap_end, regs, outputs, limits))
            }
        };
        add_ticks(COLLECT, ran);
        Step::Done(result)
    }
}

/// The exit call: outputs (validated and copied out through the sandbox's page tables) or the
/// failure it reports (`engine::native::exit_outcome`).
fn finish(
    space: &mut AddressSpace,
    layout: Layout,
    heap_end: u64,
    regs: &UserRegs,
    output_names: &[String],
    limits: &engine::Limits,
) -> Result<Completion, EngineError> {
    let exit = regs.exit_call();
    exit_outcome(&exit, output_names, limits, heap_end - layout.heap(), SlotMemory { space, layout, heap_end })
}

/// A sandbox's memory as its exit call is read: only its own slot. In a shared space (`mpk`,
/// `cheri`) the tables also map the other live sandboxes' slots, which the kernel must not read
/// on this one's behalf. Pages of its heap or stack not mapped yet read as zero.
struct SlotMemory<'a> {
    space: &'a mut AddressSpace,
    layout: Layout,
    heap_end: u64,
}

impl ExitMemory for SlotMemory<'_> {
    fn read_with<R>(&mut self, addr: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let slot = self.layout.base()..self.layout.base() + native::layout::SLOT_SIZE;
        let inside = addr >= slot.start && addr.checked_add(len).is_some_and(|end| end <= slot.end);
        if !inside && len > 0 {
            return None;
        }
        let (layout, heap_end) = (self.layout, self.heap_end);
        self.space.read_with(addr, len, move |page| layout.lazy(heap_end, page), f)
    }
}
