//! `/metrics`: one registry that each part of the node contributes to.
//!
//! Every part that has figures implements [`Export`] and writes its own families into an
//! [`Exposition`] (Prometheus text format 0.0.4): the front door its HTTP counters, the network
//! its NIC and sockets, the control plane its invocations and tenants' memory
//! (`node::ControlFigures`), the dispatcher its cores and queue, the engines their runs, memory
//! its heap and frames, the I/O loop its work. [`crate::node::Node`] lists the parts once; no
//! part reads another's state to render it.

use alloc::string::String;
use core::fmt::{Display, Write};

use crate::mm;

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// The text being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `# HELP` and `# TYPE` lines of family `name`.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample of family `name`: `labels` is empty or `a="x",b="y"` (label values here are
    /// names under the API's name rule, `[A-Za-z0-9_.-]`: nothing to escape).
    pub fn sample(&mut self, name: &str, labels: &str, value: impl Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl Display) {
        self.family(name, help, kind);
        self.sample(name, "", value);
    }

    /// The text so far, for writers of their own (histograms).
    pub fn text(&mut self) -> &mut String {
        &mut self.out
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A part of the node with figures for `/metrics`.
pub trait Export {
    fn export(&self, out: &mut Exposition);
}

/// Frames and the kernel heap.
pub struct Memory;

impl Export for Memory {
    fn export(&self, out: &mut Exposition) {
        let frames = mm::frame_stats();
        let heap = mm::heap_stats();
        out.single("pappus_frames_total", "Physical 4 KiB frames managed.", Kind::Gauge, frames.total);
        out.single("pappus_frames_free", "Physical 4 KiB frames free.", Kind::Gauge, frames.free);
        out.single("pappus_heap_bytes_total", "Kernel heap size.", Kind::Gauge, heap.total);
        out.single("pappus_heap_bytes_used", "Kernel heap in use.", Kind::Gauge, heap.used);
        out.single("pappus_heap_alloc_failures_total", "Heap allocations refused.", Kind::Counter, heap.failures);
        let help = "Heap allocations and reallocations served.";
        out.single("pappus_heap_allocations_total", help, Kind::Counter, heap.allocations);
        let help = "Kernel heap kept from tenants and request bodies.";
        out.single("pappus_heap_reserve_bytes", help, Kind::Gauge, mm::heap_reserve());
        let help = "Frames holding sandboxes' page tables (MPK slots keep theirs: a bounded high-water mark).";
        out.single("pappus_user_table_frames", help, Kind::Gauge, crate::arch::user_table_frames());
        let help = "Frames of native images kept mapped between runs of the same function (MPK slots, pooled spaces).";
        out.single("pappus_native_kept_image_frames", help, Kind::Gauge, crate::engines::native_kept_image_frames());
        let help = "Pages of input items mapped read-only into native sandboxes instead of copied.";
        let mapped = crate::engines::native_input_pages_mapped();
        out.single("pappus_native_input_pages_mapped_total", help, Kind::Counter, mapped);
    }
}

/// The compute engines' runs (all cores).
pub struct Engines;

impl Export for Engines {
    fn export(&self, out: &mut Exposition) {
        let (runs, ticks) = crate::engines::run_stats();
        let (native_runs, phases) = crate::engines::native_phase_stats();
        out.single("pappus_engine_runs_total", "Function runs in a compute engine.", Kind::Counter, runs);
        let help = "TSC ticks inside engine runs (instructions under icount).";
        out.single("pappus_engine_run_ticks_total", help, Kind::Counter, ticks);
        out.single("pappus_native_runs_total", "Native sandbox runs (mpk and paging).", Kind::Counter, native_runs);
        for (name, help, value) in [
            (
                "pappus_native_create_ticks_total",
                "TSC ticks creating native sandboxes: space or slot, image, system data block.",
                phases[0],
            ),
            (
                "pappus_native_run_ticks_total",
                "TSC ticks from sandbox entry to exit: the function, its page faults and timer ticks.",
                phases[1],
            ),
            ("pappus_native_collect_ticks_total", "TSC ticks reading native sandboxes' outputs.", phases[2]),
            ("pappus_native_destroy_ticks_total", "TSC ticks unmapping and freeing native sandboxes.", phases[3]),
        ] {
            out.single(name, help, Kind::Counter, value);
        }
        let help = "MPK runs that found all 15 protection keys taken and waited for one.";
        out.single("pappus_mpk_key_waits_total", help, Kind::Counter, crate::engines::mpk_key_waits());
        let help = "MPK protection keys held by live sandboxes (of 15).";
        out.single("pappus_mpk_keys_live", help, Kind::Gauge, crate::engines::mpk_keys_live());
    }
}
