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
}

/// What one instance gets from one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Share {
    Empty,
    Whole,
    Item(usize),
    /// A key group by index into [`Cut::Keys`].
    Group(usize),
}

/// Cuts a non-empty set according to its distribution keyword.
pub(crate) fn cut(set: &Set, distribution: dsl::ast::Distribution) -> Cut {
    use dsl::ast::Distribution;
    match distribution {
        Distribution::All => Cut::Whole,
        Distribution::Each => Cut::Items(set.items.len()),
        Distribution::Keyed => {
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
            Cut::Keys(groups)
        }
    }
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
    /// The other inputs that multiply: (declared position, share count, keyed), in declaration order.
    dims: Vec<(usize, usize, bool)>,
    /// rows x product of dims.
    total: usize,
}

impl Combinations {
    /// Plans the combinations of `cuts` (one per declared input) under the `by` chain `join`
    /// (declared positions; the first kind is ignored). Fails with the (saturated) count when it
    /// would exceed `limit`.
    pub(crate) fn new(cuts: &[Cut], join: &[(JoinKind, usize)], limit: usize) -> Result<Self, usize> {
        let rows = join_rows(cuts, join, limit)?;
        let join: Vec<usize> = join.iter().map(|&(_, pos)| pos).collect();
        let mut base = Vec::with_capacity(cuts.len());
        let mut dims = Vec::new();
        let mut total = rows.len();
        for (pos, c) in cuts.iter().enumerate() {
            base.push(if matches!(c, Cut::Whole) { Share::Whole } else { Share::Empty });
            let (count, keyed) = match c {
                _ if join.contains(&pos) => continue,
                Cut::Empty | Cut::Whole => continue,
                Cut::Items(n) => (*n, false),
                Cut::Keys(groups) => (groups.len(), true),
            };
            dims.push((pos, count, keyed));
            total = total.saturating_mul(count);
        }
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
        for &(pos, count, keyed) in self.dims.iter().rev() {
            let digit = rest.checked_rem(count).unwrap_or(0);
            rest = rest.checked_div(count).unwrap_or(0);
            if let Some(s) = shares.get_mut(pos) {
                *s = if keyed { Share::Group(digit) } else { Share::Item(digit) };
            }
        }
        if let Some(row) = self.rows.get(rest) {
            for (&pos, &share) in self.join.iter().zip(row) {
                if let Some(s) = shares.get_mut(pos) {
                    *s = share;
                }
            }
        }
        shares
    }
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
        let Some(Cut::Keys(groups)) = cuts.get(pos) else { continue };
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
    use alloc::string::String;
    use model::{Bytes, Item};

    fn keyed(keys: &[Option<u64>]) -> Set {
        Set {
            name: "s".into(),
            items: keys.iter().map(|&key| Item { name: String::new(), key, data: Bytes::empty() }).collect(),
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
        let c = Combinations::new(&cuts, &[], 100).unwrap();
        assert_eq!(c.len(), 6);
        let got: Vec<_> = (0..6).map(|k| c.shares(k)).collect();
        assert_eq!(got[0], [Share::Item(0), Share::Whole, Share::Item(0)]);
        assert_eq!(got[1], [Share::Item(0), Share::Whole, Share::Item(1)]);
        assert_eq!(got[3], [Share::Item(1), Share::Whole, Share::Item(0)]);
    }

    #[test]
    fn limit_is_checked_before_allocating() {
        let cuts = [Cut::Items(1 << 40), Cut::Items(1 << 40)];
        assert_eq!(Combinations::new(&cuts, &[], 1000).unwrap_err(), usize::MAX);
    }
}
