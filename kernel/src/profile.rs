//! The sampling profiler: off unless the command line says `profile=N` (or `wall:N`, `alloc`).
//!
//! Every N counter ticks (under `-icount shift=0` on x86_64, every N guest instructions) the
//! architecture's timer interrupt records the interrupted instruction pointer and its
//! frame-pointer chain into this CPU's ring ([`record`]); the trap records and returns, it
//! never allocates, locks or formats. A sample taken while a sandbox runs records the kernel
//! frames under its entry (the sandbox itself is one frame, never walked). The I/O loop marks
//! its turns ([`pass_begin`] once, [`pass_end`] after each): samples of a turn that found no
//! work (the poll spin after a request) are dropped, so a profile shows work the way
//! `pappus_io_work_ticks_total` counts it. A sample that finds the CPU halted only counts.
//!
//! The operator's `GET /v1/profile` drains the rings as text ([`drain`]); `DELETE /v1/profile`
//! empties them ([`reset`]). Memory is bounded: [`RING_WORDS`] words per CPU, allocated at boot
//! for the boot CPU and when the others start ([`add_cpus`]); a full ring drops new samples
//! and counts them. `cargo xtask profile` symbolizes the dump and draws the flame graph.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::arch;
use crate::smp::MAX_CPUS;
use kcore::cmdline::Profile;

/// Frames a sample keeps beyond the interrupted instruction.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // aarch64 has no sampler yet
pub const MAX_DEPTH: usize = 48;
/// Each CPU's ring, in 64-bit words (2 MiB): about 12,000 samples of 20 frames.
const RING_WORDS: usize = 1 << 18;
/// A drain's reply stops after about this many bytes of samples; the client asks again.
const DRAIN_BYTES: usize = 256 * 1024;

/// What a sample interrupted.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // aarch64 has no sampler yet
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u64)]
pub enum Kind {
    /// Kernel code: the addresses are the instruction pointer, then return addresses.
    Kernel = 0,
    /// A sandbox (ring 3): the addresses are the kernel's return addresses under its entry.
    Sandbox = 1,
}

/// One CPU's samples: a single-producer (this CPU's timer interrupt), single-consumer (the
/// I/O loop, on any CPU) ring of words. A sample is a header word (`kind << 8 | count`) and
/// `count` addresses. `write` is the producer's position; `committed` what the consumer may
/// read (behind `write` while a pass is staged); `read` the consumer's position. Positions
/// grow forever and are taken modulo the ring's length.
struct Ring {
    words: Box<[AtomicU64]>,
    write: AtomicUsize,
    committed: AtomicUsize,
    read: AtomicUsize,
    /// The I/O loop stages its turns: their samples wait for [`pass_end`].
    staging: AtomicBool,
    staged: AtomicU64,
    stats: Stats,
}

/// Samples taken on one CPU since the last reset: `kernel` and `sandbox` count every sample
/// recorded (the discarded ones of idle passes included), `idle` the halted ones (not
/// recorded), `dropped` those a full ring refused.
#[derive(Default)]
struct Stats {
    kernel: AtomicU64,
    sandbox: AtomicU64,
    idle: AtomicU64,
    dropped: AtomicU64,
    discarded: AtomicU64,
}

static INTERVAL: AtomicU64 = AtomicU64::new(0);
/// `profile=wall:N`: the I/O loop's turns that found no work keep their samples too.
static KEEP_IDLE_TURNS: AtomicBool = AtomicBool::new(false);
/// `profile=alloc`: each heap allocation is a sample ([`allocation`]).
static ALLOCATIONS: AtomicBool = AtomicBool::new(false);
static RINGS: [AtomicPtr<Ring>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// Samples on a CPU whose ring is not allocated yet (an application processor before
/// [`add_cpus`]).
static NO_RING: AtomicU64 = AtomicU64::new(0);
/// A drain is under way (from the reply that leaves samples behind to the one that empties the
/// rings, or a reset): no new samples meanwhile. At a short interval the dump's own work would
/// otherwise refill the rings faster than the client empties them.
static DRAINING: AtomicBool = AtomicBool::new(false);

#[allow(unsafe_code)]
fn ring(cpu: usize) -> Option<&'static Ring> {
    let ptr = RINGS.get(cpu)?.load(Ordering::Acquire);
    // SAFETY: only `allocate` stores here, a leaked (never freed) ring.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

fn allocate(cpu: usize) {
    if cpu >= MAX_CPUS || ring(cpu).is_some() {
        return;
    }
    let words = (0..RING_WORDS).map(|_| AtomicU64::new(0)).collect();
    let ring = Box::new(Ring {
        words,
        write: AtomicUsize::new(0),
        committed: AtomicUsize::new(0),
        read: AtomicUsize::new(0),
        staging: AtomicBool::new(false),
        staged: AtomicU64::new(0),
        stats: Stats::default(),
    });
    RINGS[cpu].store(Box::leak(ring), Ordering::Release);
}

/// Starts the profiler when the command line asks: `profile=N`, this CPU's ring, then the
/// architecture's sampling timer; `profile=alloc`, the rings, and every heap allocation records
/// its stack ([`allocation`]) instead of a timer sampling. Called once on the boot CPU, after
/// the heap.
pub fn init(mode: Option<Profile>) {
    let Some(mode) = mode else { return };
    allocate(arch::cpu_index());
    match mode {
        Profile::Every(interval) | Profile::Wall(interval) => {
            KEEP_IDLE_TURNS.store(matches!(mode, Profile::Wall(_)), Ordering::Relaxed);
            INTERVAL.store(interval, Ordering::Release);
            if arch::start_sampling(interval) {
                log::info!(
                    "profile: sampling every {interval} ticks into {} KiB per CPU (GET /v1/profile)",
                    RING_WORDS * 8 / 1024
                );
            } else {
                INTERVAL.store(0, Ordering::Release);
                log::warn!("profile: no sampler on {}; profile= ignored", arch::NAME);
            }
        }
        Profile::Allocations if arch::can_record_here() => {
            ALLOCATIONS.store(true, Ordering::Release);
            log::info!("profile: the stack of every heap allocation (GET /v1/profile)");
        }
        Profile::Allocations => log::warn!("profile: no stack walk on {}; profile=alloc ignored", arch::NAME),
    }
}

/// Whether the profiler runs.
pub fn enabled() -> bool {
    INTERVAL.load(Ordering::Relaxed) != 0 || ALLOCATIONS.load(Ordering::Relaxed)
}

/// A heap allocation or reallocation on this CPU (`mm::heap`): with `profile=alloc`, its stack
/// is a sample. Never allocates (the ring is fixed); the heap calls it before its own lock.
#[inline]
pub fn allocation() {
    if ALLOCATIONS.load(Ordering::Relaxed) {
        arch::record_here();
    }
}

/// Rings for CPUs `0..cpus` (the others have started); their samples before this were counted
/// as dropped.
pub fn add_cpus(cpus: usize) {
    if enabled() {
        (0..cpus).for_each(allocate);
    }
}

/// Records one sample on CPU `cpu` (interrupt context, that CPU): `addrs` is the interrupted
/// instruction pointer and its return addresses (kernel), or the return addresses under a
/// sandbox's entry. No allocation, no lock, no formatting; a full ring counts a drop.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // aarch64 has no sampler yet
pub fn record(cpu: usize, kind: Kind, addrs: &[u64]) {
    if DRAINING.load(Ordering::Relaxed) {
        return;
    }
    let Some(ring) = ring(cpu) else {
        NO_RING.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let n = addrs.len().min(MAX_DEPTH + 1);
    let write = ring.write.load(Ordering::Relaxed);
    if write + 1 + n - ring.read.load(Ordering::Acquire) > RING_WORDS {
        ring.stats.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let len = ring.words.len();
    ring.words[write % len].store((kind as u64) << 8 | n as u64, Ordering::Relaxed);
    for (i, &a) in addrs[..n].iter().enumerate() {
        ring.words[(write + 1 + i) % len].store(a, Ordering::Relaxed);
    }
    ring.write.store(write + 1 + n, Ordering::Relaxed);
    let counter = if kind == Kind::Kernel { &ring.stats.kernel } else { &ring.stats.sandbox };
    counter.fetch_add(1, Ordering::Relaxed);
    if ring.staging.load(Ordering::Relaxed) {
        ring.staged.fetch_add(1, Ordering::Relaxed);
    } else {
        ring.committed.store(write + 1 + n, Ordering::Release);
    }
}

/// Counts a sample that found CPU `cpu` halted (interrupt context).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // aarch64 has no sampler yet
pub fn record_idle(cpu: usize) {
    if let Some(ring) = ring(cpu) {
        ring.stats.idle.fetch_add(1, Ordering::Relaxed);
    }
}

/// The I/O loop starts staging this CPU's samples: from here on each of its turns' samples
/// wait for [`pass_end`].
pub fn pass_begin() {
    if enabled()
        && let Some(ring) = ring(arch::cpu_index())
    {
        ring.staging.store(true, Ordering::Relaxed);
    }
}

/// A turn of the I/O loop ended: its samples are kept if it did work (or `profile=wall:N`
/// keeps every turn), else dropped (and counted); staging goes on for the next turn. (Ending staging here and starting it again at
/// the next turn's top let the samples between the two through: the idle loop's clock reads,
/// and every sample that came due while interrupts were off below, taken at the `sti`.)
pub fn pass_end(work: bool) {
    if !enabled() {
        return;
    }
    let Some(ring) = ring(arch::cpu_index()) else { return };
    // The timer interrupt writes the same fields on this CPU: keep it out meanwhile.
    arch::without_interrupts(|| {
        let staged = ring.staged.swap(0, Ordering::Relaxed);
        if work || KEEP_IDLE_TURNS.load(Ordering::Relaxed) {
            ring.committed.store(ring.write.load(Ordering::Relaxed), Ordering::Release);
        } else {
            ring.write.store(ring.committed.load(Ordering::Relaxed), Ordering::Relaxed);
            ring.stats.discarded.fetch_add(staged, Ordering::Relaxed);
        }
    });
}

/// Takes samples out of the rings as text (format in docs/ARCHITECTURE.md, "Profiling"),
/// about [`DRAIN_BYTES`] at a time; the last line says whether more remain. No samples are
/// taken from the first reply until one that empties the rings (or a [`reset`]). `None` when
/// the profiler is off.
pub fn drain() -> Option<String> {
    if !enabled() {
        return None;
    }
    // 0 in the allocation profile (its samples are allocations, not a tick interval apart).
    let interval = INTERVAL.load(Ordering::Acquire);
    DRAINING.store(true, Ordering::Relaxed);
    let (out, more) = drain_text(interval);
    // Sampling stays paused until the rings are empty: sending a reply of 256 KiB costs more
    // samples than it carries at short intervals, and the drain would never end.
    DRAINING.store(more, Ordering::Relaxed);
    Some(out)
}

fn drain_text(interval: u64) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pappus-profile 1 arch={} interval={interval} no_ring={}",
        arch::NAME,
        NO_RING.load(Ordering::Relaxed)
    );
    let mut more = false;
    for cpu in 0..MAX_CPUS {
        let Some(ring) = ring(cpu) else { continue };
        let s = &ring.stats;
        let _ = writeln!(
            out,
            "cpu {cpu} kernel={} sandbox={} idle={} dropped={} discarded={}",
            s.kernel.load(Ordering::Relaxed),
            s.sandbox.load(Ordering::Relaxed),
            s.idle.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
            s.discarded.load(Ordering::Relaxed)
        );
        let len = ring.words.len();
        let end = ring.committed.load(Ordering::Acquire);
        let mut at = ring.read.load(Ordering::Relaxed);
        while at < end {
            if out.len() >= DRAIN_BYTES {
                more = true;
                break;
            }
            let header = ring.words[at % len].load(Ordering::Relaxed);
            let n = (header & 0xff) as usize;
            out.push_str(if header >> 8 == Kind::Sandbox as u64 { "s " } else { "k " });
            let _ = write!(out, "{cpu}");
            for i in 0..n {
                let _ = write!(out, " {:x}", ring.words[(at + 1 + i) % len].load(Ordering::Relaxed));
            }
            out.push('\n');
            at += 1 + n;
        }
        ring.read.store(at, Ordering::Release);
    }
    let _ = writeln!(out, "end more={}", u8::from(more));
    (out, more)
}

/// Empties every ring and zeroes the counters. False when the profiler is off.
pub fn reset() -> bool {
    if !enabled() {
        return false;
    }
    NO_RING.store(0, Ordering::Relaxed);
    DRAINING.store(false, Ordering::Relaxed);
    for cpu in 0..MAX_CPUS {
        let Some(ring) = ring(cpu) else { continue };
        ring.read.store(ring.committed.load(Ordering::Acquire), Ordering::Release);
        let s = &ring.stats;
        for counter in [&s.kernel, &s.sandbox, &s.idle, &s.dropped, &s.discarded] {
            counter.store(0, Ordering::Relaxed);
        }
    }
    true
}
