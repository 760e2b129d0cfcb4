//! Time slices and the time budget of a native run.
//!
//! A run gets the core for one slice at a time ([`SLICE_MICROS`]); the timer interrupts it
//! every [`CHECK_MICROS`] (and at the slice's or budget's end, whichever is first). At each
//! tick the run is ended (budget spent, or its invocation cancelled), preempted (slice used up:
//! the dispatcher queues it again behind other tenants' work), or resumed with the next tick
//! armed. Only time in slices counts against the budget; time parked in the queue does not.

/// A run's time slice.
pub const SLICE_MICROS: u64 = 10_000;
/// How often the timer checks a running sandbox's budget and cancellation.
pub const CHECK_MICROS: u64 = 2_000;

/// What a timer tick does with the running sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickAction {
    /// Let it run; arm the next tick at this time.
    Resume { next_tick: u64 },
    /// Save its context and hand it back to the dispatcher.
    Preempt,
    /// End it: its budget is spent or it was cancelled.
    End,
}

/// One slice's clock, in the platform's ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceClock {
    entered: u64,
    slice_end: u64,
    budget_end: u64,
    check: u64,
}

impl SliceClock {
    /// A slice entered at `entered` of a run with `budget_left` ticks of its budget, at
    /// `ticks_per_second`.
    pub fn new(entered: u64, budget_left: u64, ticks_per_second: u64) -> Self {
        let micros = |us: u64| (u128::from(us) * u128::from(ticks_per_second) / 1_000_000) as u64;
        Self {
            entered,
            slice_end: entered.saturating_add(micros(SLICE_MICROS)),
            budget_end: entered.saturating_add(budget_left),
            check: micros(CHECK_MICROS).max(1),
        }
    }

    /// When the first tick is due.
    pub fn first_tick(&self) -> u64 {
        self.next_after(self.entered)
    }

    fn next_after(&self, now: u64) -> u64 {
        now.saturating_add(self.check).min(self.slice_end).min(self.budget_end)
    }

    /// The decision at a tick at `now`.
    pub fn on_tick(&self, now: u64, cancelled: bool) -> TickAction {
        if cancelled || now >= self.budget_end {
            TickAction::End
        } else if now >= self.slice_end {
            TickAction::Preempt
        } else {
            TickAction::Resume { next_tick: self.next_after(now) }
        }
    }

    /// The budget left after the slice ended at `now`, of `budget_left` before it.
    pub fn budget_after(&self, now: u64, budget_left: u64) -> u64 {
        budget_left.saturating_sub(now.saturating_sub(self.entered))
    }
}

/// A time budget of `millis` in ticks at `ticks_per_second` (saturating).
pub fn budget_ticks(millis: u64, ticks_per_second: u64) -> u64 {
    u64::try_from(u128::from(millis) * u128::from(ticks_per_second) / 1000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000_000; // 1 tick per ns, as under icount shift=0

    #[test]
    fn ticks_every_check_then_preempt_at_the_slice_end() {
        let c = SliceClock::new(1000, budget_ticks(20_000, HZ), HZ);
        assert_eq!(c.first_tick(), 1000 + 2_000_000);
        assert_eq!(c.on_tick(1000 + 2_000_000, false), TickAction::Resume { next_tick: 1000 + 4_000_000 });
        // The last check before the slice end is capped at it.
        assert_eq!(c.on_tick(1000 + 9_000_000, false), TickAction::Resume { next_tick: 1000 + 10_000_000 });
        assert_eq!(c.on_tick(1000 + 10_000_000, false), TickAction::Preempt);
        assert_eq!(c.budget_after(1000 + 10_000_000, budget_ticks(20_000, HZ)), 19_990_000_000);
    }

    #[test]
    fn the_budget_ends_a_run_even_mid_slice_and_wins_over_the_slice() {
        let c = SliceClock::new(0, 3_000_000, HZ);
        assert_eq!(c.first_tick(), 2_000_000);
        assert_eq!(c.on_tick(2_000_000, false), TickAction::Resume { next_tick: 3_000_000 });
        assert_eq!(c.on_tick(3_000_000, false), TickAction::End);
        let exact = SliceClock::new(0, 10_000_000, HZ);
        assert_eq!(exact.on_tick(10_000_000, false), TickAction::End, "budget and slice end together: the end");
        assert_eq!(c.budget_after(5_000_000, 3_000_000), 0);
    }

    #[test]
    fn cancellation_ends_at_the_next_tick() {
        let c = SliceClock::new(0, u64::MAX, HZ);
        assert_eq!(c.on_tick(1, true), TickAction::End);
        assert_eq!(c.first_tick(), 2_000_000, "an unlimited budget does not overflow");
    }

    #[test]
    fn a_run_of_n_slices_is_preempted_n_minus_one_times() {
        // 95 ms of budget, 10 ms slices: 9 preemptions, then the end in the tenth slice.
        let mut left = budget_ticks(95, HZ);
        let (mut now, mut preempted) = (0u64, 0);
        loop {
            let c = SliceClock::new(now, left, HZ);
            let mut tick = c.first_tick();
            let action = loop {
                match c.on_tick(tick, false) {
                    TickAction::Resume { next_tick } => tick = next_tick,
                    other => break other,
                }
            };
            left = c.budget_after(tick, left);
            now = tick + 500; // parked in the queue: not counted
            if action == TickAction::End {
                break;
            }
            preempted += 1;
        }
        assert_eq!((preempted, left), (9, 0));
        assert_eq!(budget_ticks(u64::MAX, HZ), u64::MAX);
    }
}
