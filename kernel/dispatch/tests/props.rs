//! Property tests of the run queue and the accounting: a reference model, the fairness bound,
//! cancellation, and no panics on arbitrary operation sequences.

use dispatch::{CoreStats, Histogram, Receipt, RunQueue};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Op {
    Push { tenant: u32, invocation: u64 },
    Pop,
    Cancel(u64),
    Weight { tenant: u32, weight: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..4, 0u64..5).prop_map(|(tenant, invocation)| Op::Push { tenant, invocation }),
        3 => Just(Op::Pop),
        1 => (0u64..5).prop_map(Op::Cancel),
        1 => (0u32..4, 0u32..4).prop_map(|(tenant, weight)| Op::Weight { tenant, weight }),
    ]
}

proptest! {
    /// Arbitrary operations never panic, keep `len` and the depths consistent, respect the
    /// capacity, keep FIFO per tenant, and `pop_order` predicts the actual pops.
    #[test]
    fn model_invariants(capacity in 0usize..12, ops in proptest::collection::vec(op(), 0..200)) {
        let mut q = RunQueue::new(capacity);
        // Reference: per tenant, the queued (seq, invocation) in FIFO order.
        let mut model: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push { tenant, invocation } => {
                    let len = q.len();
                    match q.push(tenant, invocation, next) {
                        Ok(t) => {
                            prop_assert!(len < capacity);
                            prop_assert_eq!((t.tenant, t.invocation), (tenant, invocation));
                            model.entry(tenant).or_default().push((t.seq, invocation));
                        }
                        Err(full) => {
                            prop_assert_eq!(len, capacity);
                            prop_assert_eq!(full.into_inner(), next);
                        }
                    }
                    next += 1;
                }
                Op::Pop => {
                    let predicted = q.pop_order().first().copied();
                    match q.pop() {
                        Some((t, _)) => {
                            prop_assert_eq!(Some(t), predicted);
                            let fifo = model.get_mut(&t.tenant).expect("popped tenant has work");
                            let (seq, comp) = fifo.remove(0);
                            prop_assert_eq!((seq, comp), (t.seq, t.invocation));
                        }
                        None => {
                            prop_assert!(model.values().all(Vec::is_empty));
                            prop_assert_eq!(predicted, None);
                        }
                    }
                }
                Op::Cancel(c) => {
                    let removed = q.cancel_invocation(c);
                    let mut expected: Vec<u64> = model
                        .values()
                        .flatten()
                        .filter(|(_, comp)| *comp == c)
                        .map(|(s, _)| *s)
                        .collect();
                    expected.sort_unstable();
                    let got: Vec<u64> = removed.iter().map(|(t, _)| t.seq).collect();
                    prop_assert_eq!(got, expected);
                    for fifo in model.values_mut() {
                        fifo.retain(|(_, comp)| *comp != c);
                    }
                }
                Op::Weight { tenant, weight } => q.set_weight(tenant, weight),
            }
            model.retain(|_, v| !v.is_empty());
            let total: usize = model.values().map(Vec::len).sum();
            prop_assert_eq!(q.len(), total);
            prop_assert!(q.len() <= capacity);
            let depths: Vec<(u32, usize)> = model.iter().map(|(t, v)| (*t, v.len())).collect();
            prop_assert_eq!(q.depths().collect::<Vec<_>>(), depths);
            let order = q.pop_order();
            prop_assert_eq!(order.len(), total);
        }
        // Draining gives FIFO per tenant.
        let drained: Vec<Receipt> = std::iter::from_fn(|| q.pop()).map(|(t, _)| t).collect();
        let mut per: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for t in &drained {
            per.entry(t.tenant).or_default().push(t.seq);
        }
        let want: BTreeMap<u32, Vec<u64>> =
            model.iter().map(|(t, v)| (*t, v.iter().map(|(s, _)| *s).collect())).collect();
        prop_assert_eq!(per, want);
    }

    /// The fairness bound: tenant A queues `backlog` items first, then B queues `b` items, with
    /// weights `wa`, `wb`. While B has work, at most `wa` of A's items are popped between two
    /// of B's (and before B's first), and B's items come out FIFO.
    #[test]
    fn fair_share_bound(backlog in 1usize..1000, b in 1usize..50, wa in 1u32..5, wb in 1u32..5) {
        let mut q = RunQueue::new(backlog + b);
        q.set_weight(1, wa);
        q.set_weight(2, wb);
        for i in 0..backlog {
            q.push(1, 1, i).unwrap();
        }
        for i in 0..b {
            q.push(2, 2, i).unwrap();
        }
        let mut run_of_a = 0u32;
        let mut next_b = 0;
        while let Some((t, v)) = q.pop() {
            if t.tenant == 1 {
                if next_b < b {
                    run_of_a += 1;
                    prop_assert!(run_of_a <= wa, "B waited behind {} of A's items", run_of_a);
                }
            } else {
                prop_assert_eq!(v, next_b);
                next_b += 1;
                run_of_a = 0;
            }
        }
        prop_assert_eq!(next_b, b);
    }

    /// CoreStats accounts every tick between `new` and the latest call exactly once, whatever
    /// the call sequence, with a monotonic clock.
    #[test]
    fn core_stats_partition_time(start in 0u64..1000, steps in proptest::collection::vec((0u64..100, any::<bool>()), 0..100)) {
        let mut c = CoreStats::new(start);
        let mut now = start;
        let mut runs = 0;
        for (dt, begin) in steps {
            now += dt;
            if begin { c.begin(now); } else if c.end(now).is_some() { runs += 1; }
            prop_assert_eq!(c.busy_ticks_at(now) + c.idle_ticks_at(now), now - start);
        }
        prop_assert_eq!(c.runs(), runs);
        prop_assert_eq!(c.run_ticks().count(), runs);
        prop_assert_eq!(c.run_ticks().sum(), c.busy_ticks());
    }

    /// Arbitrary clocks (even backwards) never panic.
    #[test]
    fn core_stats_never_panic(calls in proptest::collection::vec((any::<u64>(), any::<bool>()), 0..50)) {
        let mut c = CoreStats::new(0);
        for (now, begin) in calls {
            if begin { c.begin(now); } else { c.end(now); }
            let _ = (c.busy_ticks_at(now), c.idle_ticks_at(now));
        }
    }

    /// Every value lands in the bucket whose bound is the least power of two >= it, and the
    /// rendering is cumulative and ends with `+Inf` = `_count`.
    #[test]
    fn histogram_buckets(values in proptest::collection::vec(any::<u64>(), 0..50)) {
        let mut h = Histogram::new();
        for v in &values {
            h.record(*v);
            match Histogram::bucket_of(*v) {
                Some(i) => {
                    let bound = Histogram::bound(i).unwrap();
                    prop_assert!(*v <= bound);
                    prop_assert!(i == 0 || *v > bound / 2);
                }
                None => prop_assert!(*v > 1 << 31),
            }
        }
        let mut out = String::new();
        h.render("m", "", &mut out).unwrap();
        let counts: Vec<u64> = out
            .lines()
            .filter(|l| l.starts_with("m_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        prop_assert_eq!(counts.len(), dispatch::BUCKETS + 1);
        prop_assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        prop_assert_eq!(*counts.last().unwrap(), values.len() as u64);
        let count_line = format!("m_count {}", values.len());
        prop_assert!(out.contains(&count_line));
    }
}

proptest! {
    /// The documented bound with any number of weighted tenants and pushes interleaved with
    /// pops: between two consecutive pops of tenant A (with A still holding work), at most
    /// `W - w(A)` other items are popped, `W` being the weight of the tenants with work just
    /// after A's earlier pop.
    #[test]
    fn weighted_round_robin_bound(
        weights in proptest::collection::vec(1u32..4, 2..5),
        ops in proptest::collection::vec(prop_oneof![(0usize..4).prop_map(Some), Just(None)], 0..300),
    ) {
        let n = weights.len();
        let mut q = RunQueue::new(usize::MAX);
        for (t, w) in weights.iter().enumerate() {
            q.set_weight(t as u32, *w);
        }
        // Per tenant: (allowance, others popped since) while waiting for its next pop.
        let mut waiting: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for op in ops {
            match op {
                Some(t) => { q.push((t % n) as u32, 0, ()).unwrap(); }
                None => {
                    let Some((receipt, ())) = q.pop() else { continue };
                    let a = receipt.tenant;
                    for (t, (allow, seen)) in waiting.iter_mut() {
                        if *t != a {
                            *seen += 1;
                            prop_assert!(*seen <= *allow, "tenant {} waited {} > {}", t, seen, allow);
                        }
                    }
                    waiting.remove(&a);
                    if q.depth(a) > 0 {
                        let total: u64 = q.depths().map(|(t, _)| u64::from(q.weight(t))).sum();
                        waiting.insert(a, (total - u64::from(q.weight(a)), 0));
                    }
                }
            }
        }
    }
}
