//! Fan-out: how an application's input sets are cut into per-instance shares, and how the shares
//! of several inputs combine (cross product by default, keyed joins with `by`).
//!
//! Everything here works on item indices, never on payloads, and counts before it allocates so a
//! huge cross product is refused before it exists.
//!
//! Order (deterministic, so outputs concatenate the same way on every run):
//! - `each`: items in set order. `keyed`: key groups in ascending key order, the group of items
//!   without a key first; items inside a group keep set order.
//! - Without `by`, instances enumerate the cross product in declaration order of the inputs, the
//!   first declared input varying slowest (like nested loops).
//! - With `by`, the joined rows come first (varying slowest), then the other distributed inputs
//!   in declaration order.
//! - Join steps, left to right: `cross` yields, for each row, one row per right key group in key
//!   order, and the row's key becomes the right group's key (as in Dandelion, so a later join
//!   matches on it). `inner`, `left`, `right` and `outer` yield rows in ascending key order; rows
//!   with the same key keep their previous order.
//!
//! Adaptive distributions (Dandelion's `anyEach`, `anyKeyed`): the input is first cut as `each`
//! (items) or `keyed` (key groups), a `by` chain of `anyKeyed` inputs joined into rows; then
//! consecutive units (items, key groups, rows) are bundled into as many even parts as
//! [`partition_counts`] picks for the target (`PlanLimits::any_partitions`), the first parts one
//! unit larger when they do not divide evenly. Each part is one share, so one instance.

use alloc::vec;
use alloc::vec::Vec;

use dsl::ast::JoinKind;
use model::Set;

/// A `keyed` grouping key. Items without a key all share the key `None`, which sorts first and,
/// in joins, matches only other keyless groups (as if "no key" were one more key value).
pub(crate) type Key = Option<u64>;

/// Items sharing a key, by index into their set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyGroup {
    pub key: Key,
    pub items: Vec<usize>,
}

/// How one declared input is cut into shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Unbound, or an empty `optional` set: every instance gets an empty set; the input neither
    /// multiplies the instances nor takes part in joins.
    Empty,
    /// `all`: every instance gets the whole set.
    Whole,
    /// `each`: one share per item; the item count.
    Items(usize),
    /// `keyed`: one share per key group, in ascending key order (never empty).
    Keys(Vec<KeyGroup>),
    /// `anyEach`: the item count; shares are runs of consecutive items.
    AnyItems(usize),
    /// `anyKeyed`: the key groups as for `keyed`; shares are runs of consecutive key groups
    /// (or, in a `by` chain, the groups of a run of joined rows).
    AnyKeys(Vec<KeyGroup>),
}

/// What one instance gets from one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Share {
    Empty,
    Whole,
    Item(usize),
    /// A key group by index into [`Cut::Keys`] (or [`Cut::AnyKeys`] while joining).
    Group(usize),
    /// Units `start..end` of an adaptive cut: items of [`Cut::AnyItems`], key groups of
    /// [`Cut::AnyKeys`].
    Units(usize, usize),
    /// Key groups by index into [`Cut::AnyKeys`]: an `anyKeyed` input's part of a joined chain.
    Groups(Vec<usize>),
}

/// Cuts a non-empty set according to its distribution keyword.
pub(crate) fn cut(set: &Set, distribution: dsl::ast::Distribution) -> Cut {
    use dsl::ast::Distribution;
    match distribution {
        Distribution::All => Cut::Whole,
        Distribution::Each => Cut::Items(set.items.len()),
        Distribution::Keyed => Cut::Keys(key_groups(set)),
        Distribution::AnyEach => Cut::AnyItems(set.items.len()),
        Distribution::AnyKeyed => Cut::AnyKeys(key_groups(set)),
    }
}

/// The set's items grouped by key, groups in ascending key order.
fn key_groups(set: &Set) -> Vec<KeyGroup> {
    let mut order: Vec<usize> = (0..set.items.len()).collect();
    // Stable: items of one key keep their set order.
    order.sort_by_key(|&i| set.items.get(i).and_then(|item| item.key));
    let mut groups: Vec<KeyGroup> = Vec::new();
    for i in order {
        let key = set.items.get(i).and_then(|item| item.key);
        match groups.last_mut() {
            Some(g) if g.key == key => g.items.push(i),
            _ => groups.push(KeyGroup { key, items: vec![i] }),
        }
    }
    groups
}

/// How many parts each adaptive group is cut into, Dandelion's way (its `get_sharding`):
/// `fixed` instances come from the other distributions; `target` is the instances the platform
/// aims at (0: no aim, every group as many parts as it has units, Dandelion's "max sharding");
/// `maxes` are the units of each adaptive group (each at least one).
///
/// When the fixed instances already reach the target, every adaptive input goes whole (one
/// part). Otherwise the groups share the factor `target / fixed` greedily: a group whose units
/// divide evenly by what is left is taken first, else the one that divides most evenly; a group
/// with fewer units than what is left gets one part per unit and the rest goes on to the next
/// group; the group chosen last gets `min(left, units)` parts.
pub(crate) fn partition_counts(fixed: usize, target: usize, maxes: &[usize]) -> Vec<usize> {
    if target == 0 {
        return maxes.to_vec();
    }
    let mut parts = vec![1; maxes.len()];
    let fixed = fixed.max(1);
    if fixed >= target || maxes.is_empty() {
        return parts;
    }
    let mut left = target / fixed;
    let mut done = vec![false; maxes.len()];
    loop {
        // The unprocessed group with the smallest remainder relative to its size.
        let mut best: Option<(usize, usize, usize)> = None; // (index, remainder, units)
        for (i, &units) in maxes.iter().enumerate() {
            if done.get(i) == Some(&true) || units == 0 {
                continue;
            }
            let rem = units % left;
            let better = match best {
                None => true,
                // rem / units < best_rem / best_units, without floats.
                Some((_, b_rem, b_units)) => rem.saturating_mul(b_units) < b_rem.saturating_mul(units),
            };
            if better {
                best = Some((i, rem, units));
            }
            if rem == 0 {
                break;
            }
        }
        let Some((i, rem, units)) = best else { break };
        if rem >= units {
            // Fewer units than parts wanted: one part per unit, the rest for other groups.
            if let Some(p) = parts.get_mut(i) {
                *p = units;
            }
            left /= units;
            if let Some(d) = done.get_mut(i) {
                *d = true;
            }
            if left <= 1 {
                break;
            }
        } else {
            if let Some(p) = parts.get_mut(i) {
                *p = left.min(units);
            }
            break;
        }
    }
    parts
}

/// Units `start..end` of part `d` when `units` units are cut into `parts` even parts (the first
/// `units % parts` parts one unit larger).
pub(crate) fn part_range(units: usize, parts: usize, d: usize) -> (usize, usize) {
    let parts = parts.max(1);
    let base = units / parts;
    let rem = units % parts;
    let start = d.saturating_mul(base).saturating_add(d.min(rem));
    let len = base + usize::from(d < rem);
    (start, start.saturating_add(len).min(units))
}

/// A distributed input outside the `by` chain: its declared position, how many shares it has,
/// and what a share is.
#[derive(Debug)]
struct Dim {
    pos: usize,
    count: usize,
    kind: DimKind,
}

#[derive(Debug)]
enum DimKind {
    Item,
    Group,
    /// `units` units cut into `count` even parts.
    Parts {
        units: usize,
    },
}

/// The instances of one application: joined rows times the cross product of the other inputs.
#[derive(Debug)]
pub(crate) struct Combinations {
    /// Per declared input: the share every instance gets unless a join or a dim overrides it.
    base: Vec<Share>,
    /// Declared positions of the join-chain inputs, in chain order.
    join: Vec<usize>,
    /// Shares of the join-chain inputs, one entry per joined row (a single empty row without `by`).
    rows: Vec<Vec<Share>>,
    /// The other inputs that multiply, in declaration order.
    dims: Vec<Dim>,
    /// rows x product of dims.
    total: usize,
}

impl Combinations {
    /// Plans the combinations of `cuts` (one per declared input) under the `by` chain `join`
    /// (declared positions; the first kind is ignored). Fails with the (saturated) count when it
    /// would exceed `limit`.
    /// `any_target` is the instances adaptive inputs aim at (see [`partition_counts`]).
    pub(crate) fn new(
        cuts: &[Cut],
        join: &[(JoinKind, usize)],
        limit: usize,
        any_target: usize,
    ) -> Result<Self, usize> {
        let mut rows = join_rows(cuts, join, limit)?;
        let join: Vec<usize> = join.iter().map(|&(_, pos)| pos).collect();
        // The checker keeps `keyed` and `anyKeyed` out of one chain.
        let adaptive_chain = join.iter().any(|&pos| matches!(cuts.get(pos), Some(Cut::AnyKeys(_))));
        let mut base = Vec::with_capacity(cuts.len());
        let mut dims = Vec::new();
        let mut fixed = if adaptive_chain { 1 } else { rows.len() };
        let mut maxes = Vec::new();
        if adaptive_chain {
            maxes.push(rows.len());
        }
        for (pos, c) in cuts.iter().enumerate() {
            base.push(if matches!(c, Cut::Whole) { Share::Whole } else { Share::Empty });
            let (count, kind) = match c {
                _ if join.contains(&pos) => continue,
                Cut::Empty | Cut::Whole => continue,
                Cut::Items(n) => (*n, DimKind::Item),
                Cut::Keys(groups) => (groups.len(), DimKind::Group),
                Cut::AnyItems(n) => (*n, DimKind::Parts { units: *n }),
                Cut::AnyKeys(groups) => (groups.len(), DimKind::Parts { units: groups.len() }),
            };
            if matches!(kind, DimKind::Parts { .. }) {
                maxes.push(count);
            } else {
                fixed = fixed.saturating_mul(count);
            }
            dims.push(Dim { pos, count, kind });
        }
        let parts = partition_counts(fixed, any_target, &maxes);
        let mut parts = parts.into_iter();
        if adaptive_chain {
            let count = parts.next().unwrap_or(1);
            rows = bundle_rows(&rows, count);
        }
        for dim in &mut dims {
            if matches!(dim.kind, DimKind::Parts { .. }) {
                dim.count = parts.next().unwrap_or(1);
            }
        }
        let total = dims.iter().fold(rows.len(), |t, d| t.saturating_mul(d.count));
        if total > limit {
            return Err(total);
        }
        Ok(Self { base, join, rows, dims, total })
    }

    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// The rows the `by` chain joined (0 without `by`): work done whole when the application
    /// starts, like grouping its `keyed` inputs.
    pub(crate) fn join_rows(&self) -> usize {
        if self.join.is_empty() { 0 } else { self.rows.len() }
    }

    /// The shares of instance `k` (0-based, in instance order), one per declared input.
    pub(crate) fn shares(&self, k: usize) -> Vec<Share> {
        let mut rest = k;
        let mut shares = self.base.clone();
        // Mixed radix, the last declared input varying fastest.
        for dim in self.dims.iter().rev() {
            let digit = rest.checked_rem(dim.count).unwrap_or(0);
            rest = rest.checked_div(dim.count).unwrap_or(0);
            if let Some(s) = shares.get_mut(dim.pos) {
                *s = match dim.kind {
                    DimKind::Item => Share::Item(digit),
                    DimKind::Group => Share::Group(digit),
                    DimKind::Parts { units } => {
                        let (start, end) = part_range(units, dim.count, digit);
                        Share::Units(start, end)
                    }
                };
            }
        }
        if let Some(row) = self.rows.get(rest) {
            for (&pos, share) in self.join.iter().zip(row) {
                if let Some(s) = shares.get_mut(pos) {
                    *s = share.clone();
                }
            }
        }
        shares
    }
}

/// Bundles the joined rows of an `anyKeyed` chain into `count` even runs; in each, every chain
/// input gets the key groups its rows have (in row order), or nothing if none has one.
fn bundle_rows(rows: &[Vec<Share>], count: usize) -> Vec<Vec<Share>> {
    if rows.is_empty() {
        // An inner join that matched nothing starts no instance, as for `keyed`.
        return Vec::new();
    }
    let width = rows.first().map_or(0, Vec::len);
    (0..count.max(1))
        .map(|d| {
            let (start, end) = part_range(rows.len(), count, d);
            (0..width)
                .map(|j| {
                    let groups: Vec<usize> = rows
                        .get(start..end)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|row| match row.get(j) {
                            Some(Share::Group(g)) => Some(*g),
                            _ => None,
                        })
                        .collect();
                    if groups.is_empty() { Share::Empty } else { Share::Groups(groups) }
                })
                .collect()
        })
        .collect()
}

/// A joined row under construction: the key later joins match on, and one share per chain input.
#[derive(Clone)]
struct Row {
    key: Key,
    shares: Vec<Share>,
}

/// Runs the `by` chain left to right. Empty (optional) inputs drop out of the chain and get an
/// empty set in every row; if the whole chain is empty there is one row of empty sets, so the
/// application still runs once for it.
fn join_rows(cuts: &[Cut], join: &[(JoinKind, usize)], limit: usize) -> Result<Vec<Vec<Share>>, usize> {
    let width = join.len();
    let mut rows: Option<Vec<Row>> = None;
    for (j, &(kind, pos)) in join.iter().enumerate() {
        let Some(Cut::Keys(groups) | Cut::AnyKeys(groups)) = cuts.get(pos) else { continue };
        let next = match rows.take() {
            None => groups
                .iter()
                .enumerate()
                .map(|(g, kg)| Row { key: kg.key, shares: with(vec![Share::Empty; width], j, g) })
                .collect(),
            Some(prev) => step(prev, kind, j, groups, width, limit)?,
        };
        if next.len() > limit {
            return Err(next.len());
        }
        rows = Some(next);
    }
    Ok(match rows {
        Some(rows) => rows.into_iter().map(|r| r.shares).collect(),
        None => vec![vec![Share::Empty; width]],
    })
}

/// One join step: combines `prev` rows with the key groups of chain input `j`.
fn step(
    prev: Vec<Row>,
    kind: JoinKind,
    j: usize,
    groups: &[KeyGroup],
    width: usize,
    limit: usize,
) -> Result<Vec<Row>, usize> {
    let find = |key: Key| groups.binary_search_by(|g| g.key.cmp(&key)).ok();
    let mut out: Vec<Row> = Vec::new();
    match kind {
        JoinKind::Cross => {
            let count = prev.len().saturating_mul(groups.len());
            if count > limit {
                return Err(count);
            }
            out.reserve(count);
            for row in prev {
                for (g, kg) in groups.iter().enumerate() {
                    out.push(Row { key: kg.key, shares: with(row.shares.clone(), j, g) });
                }
            }
            return Ok(out);
        }
        JoinKind::Inner => {
            out.extend(
                prev.into_iter().filter_map(|r| find(r.key).map(|g| Row { key: r.key, shares: with(r.shares, j, g) })),
            );
        }
        JoinKind::Left => {
            out.extend(prev.into_iter().map(|r| match find(r.key) {
                Some(g) => Row { key: r.key, shares: with(r.shares, j, g) },
                None => r,
            }));
        }
        JoinKind::Right | JoinKind::Outer => {
            let mut matched = vec![false; groups.len()];
            for r in prev {
                match find(r.key) {
                    Some(g) => {
                        if let Some(m) = matched.get_mut(g) {
                            *m = true;
                        }
                        out.push(Row { key: r.key, shares: with(r.shares, j, g) });
                    }
                    None if kind == JoinKind::Outer => out.push(r),
                    None => {}
                }
            }
            for (g, kg) in groups.iter().enumerate() {
                if matched.get(g) == Some(&false) {
                    out.push(Row { key: kg.key, shares: with(vec![Share::Empty; width], j, g) });
                }
            }
        }
    }
    // Stable: rows with equal keys keep their previous order.
    out.sort_by_key(|r| r.key);
    Ok(out)
}

fn with(mut shares: Vec<Share>, j: usize, group: usize) -> Vec<Share> {
    if let Some(s) = shares.get_mut(j) {
        *s = Share::Group(group);
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Bytes, Item};

    fn keyed(keys: &[Option<u64>]) -> Set {
        Set {
            name: "s".into(),
            items: keys.iter().map(|&key| Item { name: Default::default(), key, data: Bytes::empty() }).collect(),
        }
    }

    fn keys_of(c: &Cut) -> Vec<Key> {
        match c {
            Cut::Keys(g) => g.iter().map(|g| g.key).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn keyed_groups_sort_by_key_with_keyless_first_and_keep_item_order() {
        let c = cut(&keyed(&[Some(3), None, Some(1), Some(3), None]), dsl::ast::Distribution::Keyed);
        assert_eq!(keys_of(&c), [None, Some(1), Some(3)]);
        let Cut::Keys(groups) = c else { panic!("not keyed") };
        assert_eq!(groups[0].items, [1, 4]);
        assert_eq!(groups[2].items, [0, 3]);
    }

    #[test]
    fn cross_product_enumerates_first_input_slowest() {
        let cuts = [Cut::Items(2), Cut::Whole, Cut::Items(3)];
        let c = Combinations::new(&cuts, &[], 100, 0).unwrap();
        assert_eq!(c.len(), 6);
        let got: Vec<_> = (0..6).map(|k| c.shares(k)).collect();
        assert_eq!(got[0], [Share::Item(0), Share::Whole, Share::Item(0)]);
        assert_eq!(got[1], [Share::Item(0), Share::Whole, Share::Item(1)]);
        assert_eq!(got[3], [Share::Item(1), Share::Whole, Share::Item(0)]);
    }

    #[test]
    fn limit_is_checked_before_allocating() {
        let cuts = [Cut::Items(1 << 40), Cut::Items(1 << 40)];
        assert_eq!(Combinations::new(&cuts, &[], 1000, 0).unwrap_err(), usize::MAX);
    }

    #[test]
    fn partition_counts_follow_dandelion() {
        // No target: every unit its own part.
        assert_eq!(partition_counts(1, 0, &[5, 3]), [5, 3]);
        // Fixed fan-out at or over the target: adaptive inputs go whole.
        assert_eq!(partition_counts(4, 4, &[10]), [1]);
        assert_eq!(partition_counts(8, 4, &[10, 3]), [1, 1]);
        // One group: min(target / fixed, units).
        assert_eq!(partition_counts(1, 4, &[10]), [4]);
        assert_eq!(partition_counts(2, 8, &[10]), [4]);
        assert_eq!(partition_counts(1, 16, &[5]), [5]);
        // Two groups: one that divides the target evenly is taken first, the other stays whole.
        assert_eq!(partition_counts(1, 4, &[6, 8]), [1, 4]);
        // A group smaller than the target takes one part per unit; the rest goes to the next.
        assert_eq!(partition_counts(1, 12, &[5, 3]), [5, 2]);
        assert_eq!(partition_counts(1, 12, &[2, 7]), [2, 6]);
    }

    #[test]
    fn part_ranges_are_even_and_cover_every_unit_once() {
        assert_eq!((0..2).map(|d| part_range(5, 2, d)).collect::<Vec<_>>(), [(0, 3), (3, 5)]);
        assert_eq!((0..3).map(|d| part_range(4, 3, d)).collect::<Vec<_>>(), [(0, 2), (2, 3), (3, 4)]);
        for units in 1..20 {
            for parts in 1..=units {
                let mut next = 0;
                for d in 0..parts {
                    let (start, end) = part_range(units, parts, d);
                    assert_eq!(start, next);
                    assert!(end > start);
                    next = end;
                }
                assert_eq!(next, units);
            }
        }
    }
}
