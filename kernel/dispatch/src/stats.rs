//! Per-core busy/idle accounting.

use crate::Histogram;

/// One core's time accounting, in ticks of the caller's clock.
///
/// A core is idle from [`new`](Self::new) until [`begin`](Self::begin), busy until
/// [`end`](Self::end), idle again until the next `begin`, and so on. Every tick between `new`
/// and the latest call is counted exactly once, as busy or idle. A clock that goes backwards
/// counts as zero elapsed ticks (never a panic or wrap); counters saturate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreStats {
    /// Start of the current busy or idle interval.
    since: u64,
    busy: bool,
    busy_ticks: u64,
    idle_ticks: u64,
    runs: u64,
    run_ticks: Histogram,
}

impl CoreStats {
    /// A core that is idle from `now`.
    pub const fn new(now: u64) -> Self {
        Self { since: now, busy: false, busy_ticks: 0, idle_ticks: 0, runs: 0, run_ticks: Histogram::new() }
    }

    /// The core starts running something at `now`. Returns `false` (and changes nothing) if it
    /// was already busy.
    pub fn begin(&mut self, now: u64) -> bool {
        if self.busy {
            return false;
        }
        self.idle_ticks = self.idle_ticks.saturating_add(now.saturating_sub(self.since));
        self.since = self.since.max(now);
        self.busy = true;
        true
    }

    /// The core finished its run at `now`: returns the run's ticks (also recorded in
    /// [`run_ticks`](Self::run_ticks)), or `None` (and changes nothing) if it was idle.
    pub fn end(&mut self, now: u64) -> Option<u64> {
        let ran = self.pause(now)?;
        self.runs = self.runs.saturating_add(1);
        self.run_ticks.record(ran);
        Some(ran)
    }

    /// The core stops a run that is not finished (preempted at the end of its slice) at `now`:
    /// the ticks count as busy, but no run is counted. Returns the slice's ticks (to pass to
    /// [`end_resumed`](Self::end_resumed) when the run finishes), or `None` if it was idle.
    pub fn pause(&mut self, now: u64) -> Option<u64> {
        if !self.busy {
            return None;
        }
        let ran = now.saturating_sub(self.since);
        self.busy_ticks = self.busy_ticks.saturating_add(ran);
        self.since = self.since.max(now);
        self.busy = false;
        Some(ran)
    }

    /// Like [`end`](Self::end) for a run whose earlier slices took `earlier` ticks (on this
    /// or other cores): the run's histogram entry is the whole run's ticks.
    pub fn end_resumed(&mut self, now: u64, earlier: u64) -> Option<u64> {
        let ran = self.pause(now)?;
        self.runs = self.runs.saturating_add(1);
        let total = ran.saturating_add(earlier);
        self.run_ticks.record(total);
        Some(total)
    }

    /// Whether a run is in progress.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// Busy ticks of the finished runs.
    pub fn busy_ticks(&self) -> u64 {
        self.busy_ticks
    }

    /// Idle ticks up to the latest `begin`.
    pub fn idle_ticks(&self) -> u64 {
        self.idle_ticks
    }

    /// Busy ticks up to `now`, counting a run in progress.
    pub fn busy_ticks_at(&self, now: u64) -> u64 {
        let open = if self.busy { now.saturating_sub(self.since) } else { 0 };
        self.busy_ticks.saturating_add(open)
    }

    /// Idle ticks up to `now`, counting the current idle stretch.
    pub fn idle_ticks_at(&self, now: u64) -> u64 {
        let open = if self.busy { 0 } else { now.saturating_sub(self.since) };
        self.idle_ticks.saturating_add(open)
    }

    /// Finished runs.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// The durations of the finished runs.
    pub fn run_ticks(&self) -> &Histogram {
        &self.run_ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_busy_and_idle() {
        let mut c = CoreStats::new(100);
        assert!(c.end(105).is_none());
        assert!(c.begin(110));
        assert!(!c.begin(111));
        assert_eq!(c.busy_ticks_at(115), 5);
        assert_eq!(c.end(130), Some(20));
        assert!(c.begin(130));
        assert_eq!(c.end(131), Some(1));
        assert_eq!((c.busy_ticks(), c.idle_ticks(), c.runs()), (21, 10, 2));
        assert_eq!(c.idle_ticks_at(140), 19);
        assert_eq!(c.busy_ticks_at(140) + c.idle_ticks_at(140), 40);
        assert_eq!(c.run_ticks().count(), 2);
        assert_eq!(c.run_ticks().sum(), 21);
    }

    #[test]
    fn a_preempted_run_counts_once_with_all_its_slices() {
        let mut c = CoreStats::new(0);
        assert!(c.pause(5).is_none(), "idle: nothing to pause");
        c.begin(10);
        assert_eq!(c.pause(20), Some(10));
        assert_eq!(c.runs(), 0);
        c.begin(25); // another tenant's run
        c.end(30);
        c.begin(30); // the preempted run again
        assert_eq!(c.end_resumed(34, 10), Some(14));
        assert_eq!((c.busy_ticks(), c.idle_ticks(), c.runs()), (19, 15, 2));
        assert_eq!(c.run_ticks().sum(), 5 + 14);
        assert!(c.end_resumed(40, 1).is_none());
    }

    #[test]
    fn backwards_clock_counts_nothing() {
        let mut c = CoreStats::new(50);
        assert!(c.begin(40));
        assert_eq!(c.end(30), Some(0));
        assert_eq!((c.busy_ticks(), c.idle_ticks()), (0, 0));
        assert!(c.begin(60));
        assert_eq!(c.idle_ticks(), 10);
    }
}
