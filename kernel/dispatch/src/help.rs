//! When the I/O core runs queued work itself although the node has compute cores.
//!
//! A node with compute cores keeps its I/O core for the network, the control plane and the
//! `http` function. But a burst of work larger than the compute cores can take leaves instances
//! waiting in the queue while the I/O core spins or sleeps with nothing to move: then it helps,
//! one turn (about 10 ms at most) between two network passes, exactly as it runs work in
//! single-core mode. It helps only when
//!
//! - its own pass moved nothing (a request arriving, a response leaving, a result collected
//!   comes first: the network is never behind a run it chose to take), and
//! - more instances are queued than compute cores are idle (an idle compute core was woken by
//!   the submit that queued the work and takes it; the I/O core takes only what would wait).
//!
//! A turn that ends early (a run finished) returns to the loop at once, whose next pass serves
//! whatever arrived meanwhile; a long run is parked at its turn's end and any core resumes it.

/// Whether the I/O core takes one turn of queued work now: its last pass moved nothing
/// (`pass_moved` false) and `queued` instances wait with only `idle_compute` compute cores
/// idle to take them.
pub fn io_core_helps(pass_moved: bool, queued: usize, idle_compute: usize) -> bool {
    !pass_moved && queued > idle_compute
}

#[cfg(test)]
mod tests {
    use super::io_core_helps;

    #[test]
    fn helps_only_with_work_no_idle_core_will_take() {
        assert!(!io_core_helps(false, 0, 0), "nothing queued");
        assert!(io_core_helps(false, 1, 0), "every compute core busy, one waits");
        assert!(!io_core_helps(false, 1, 1), "an idle compute core takes it");
        assert!(io_core_helps(false, 3, 2), "more queued than idle cores");
        assert!(!io_core_helps(false, 2, 3));
    }

    #[test]
    fn network_work_comes_first() {
        assert!(!io_core_helps(true, 100, 0), "a pass that moved something is followed by another pass");
    }
}
