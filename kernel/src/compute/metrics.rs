//! `/metrics` lines for the compute side: per-core busy and idle time, runs and their duration,
//! and the run queue.

use alloc::string::String;
use core::fmt::Write;

use dispatch::Histogram;

use super::dispatcher::Dispatcher;
use crate::metrics::{Export, Exposition};
use crate::time;

impl Export for Dispatcher {
    fn export(&self, out: &mut Exposition) {
        render(self, out.text());
    }
}

fn render(d: &Dispatcher, out: &mut String) {
    let now = time::ticks();
    let role = if d.is_inline() { "io+compute" } else { "compute" };
    // With compute cores, the I/O core too: the work it took when they were all busy.
    let cores = || d.cores().iter().map(|c| (c, role)).chain(d.helper().map(|h| (h, "io")));
    let mut all_runs = Histogram::new();
    let _ = writeln!(out, "# HELP pappus_core_busy_ticks_total TSC ticks a core spent running function instances.");
    let _ = writeln!(out, "# TYPE pappus_core_busy_ticks_total counter");
    for (core, role) in cores() {
        let stats = core.stats.lock();
        let _ = writeln!(
            out,
            "pappus_core_busy_ticks_total{{cpu=\"{}\",role=\"{role}\"}} {}",
            core.cpu,
            stats.busy_ticks_at(now)
        );
        all_runs.merge(stats.run_ticks());
    }
    let _ = writeln!(out, "# HELP pappus_core_idle_ticks_total TSC ticks a core spent without an instance to run.");
    let _ = writeln!(out, "# TYPE pappus_core_idle_ticks_total counter");
    for (core, role) in cores() {
        let idle = core.stats.lock().idle_ticks_at(now);
        let _ = writeln!(out, "pappus_core_idle_ticks_total{{cpu=\"{}\",role=\"{role}\"}} {idle}", core.cpu);
    }
    let _ = writeln!(out, "# HELP pappus_core_runs_total Function instances a core ran.");
    let _ = writeln!(out, "# TYPE pappus_core_runs_total counter");
    for (core, role) in cores() {
        let runs = core.stats.lock().runs();
        let _ = writeln!(out, "pappus_core_runs_total{{cpu=\"{}\",role=\"{role}\"}} {runs}", core.cpu);
    }
    let _ =
        Histogram::render_header("pappus_instance_run_ticks", "TSC ticks per function instance run, all cores.", out);
    let _ = all_runs.render("pappus_instance_run_ticks", "", out);
    let _ = writeln!(out, "# HELP pappus_run_queue_depth Instances queued for a compute core, by tenant.");
    let _ = writeln!(out, "# TYPE pappus_run_queue_depth gauge");
    for (tenant, depth) in d.queue_depths() {
        let _ = writeln!(out, "pappus_run_queue_depth{{tenant=\"{tenant}\"}} {depth}");
    }
    let preemptions = super::dispatcher::preemptions();
    let _ = writeln!(
        out,
        "# HELP pappus_preemptions_total Runs (native and wasm) whose turn ended and that were queued again."
    );
    let _ = writeln!(out, "# TYPE pappus_preemptions_total counter");
    let _ = writeln!(out, "pappus_preemptions_total {preemptions}");
    let _ = writeln!(
        out,
        "# HELP pappus_run_queue_stalls_total Times an idle compute core found queued work at its backstop: work queued without a wake-up (none expected)."
    );
    let _ = writeln!(out, "# TYPE pappus_run_queue_stalls_total counter");
    let _ = writeln!(out, "pappus_run_queue_stalls_total {}", super::dispatcher::stalls());
    let _ = writeln!(out, "# HELP pappus_run_queue_capacity Instances the run queue holds at most.");
    let _ = writeln!(out, "# TYPE pappus_run_queue_capacity gauge");
    let _ = writeln!(out, "pappus_run_queue_capacity {}", super::RUN_QUEUE_CAPACITY);
}
