//! Cycle finding for the checker: among the applications of a composition (dataflow) and among
//! compositions (recursion).
//!
//! Iterative depth-first search, so a long chain cannot overflow the kernel's stack; each edge is
//! looked at once, and only the first few cycles are spelled out, so the work stays linear.

use alloc::vec;
use alloc::vec::Vec;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Color {
    /// Not reached yet.
    White,
    /// On the current search path.
    Gray,
    /// Finished: every node reachable from it has been searched.
    Black,
}

/// Finds up to `max` cycles in a graph given as adjacency lists of `(target, label)` edges.
/// Each cycle comes back as its edges in order, `(from, label)`, the last edge leading back to
/// the first edge's `from`. Every graph with a cycle yields at least one (when `max > 0`).
/// Edges to targets outside the graph are ignored.
pub(crate) fn find_cycles<L: Copy>(adj: &[Vec<(usize, L)>], max: usize) -> Vec<Vec<(usize, L)>> {
    let n = adj.len();
    let mut cycles = Vec::new();
    if max == 0 {
        return cycles;
    }
    let mut color = vec![Color::White; n];
    // Where a gray node sits on `path`.
    let mut depth = vec![0usize; n];
    // The search path: a node and the index of its next edge to follow.
    let mut path: Vec<(usize, usize)> = Vec::new();
    // `labels[k]` labels the edge from `path[k]` to `path[k + 1]`.
    let mut labels: Vec<L> = Vec::new();
    for root in 0..n {
        if color[root] != Color::White {
            continue;
        }
        color[root] = Color::Gray;
        depth[root] = 0;
        path.push((root, 0));
        while let Some(top) = path.last_mut() {
            let (u, next) = *top;
            let Some(&(v, label)) = adj[u].get(next) else {
                color[u] = Color::Black;
                path.pop();
                labels.pop();
                continue;
            };
            top.1 += 1;
            match color.get(v) {
                Some(Color::White) => {
                    color[v] = Color::Gray;
                    depth[v] = path.len();
                    path.push((v, 0));
                    labels.push(label);
                }
                Some(Color::Gray) => {
                    let from = depth[v];
                    let mut cycle: Vec<(usize, L)> = (from..path.len() - 1).map(|k| (path[k].0, labels[k])).collect();
                    cycle.push((u, label));
                    cycles.push(cycle);
                    if cycles.len() >= max {
                        return cycles;
                    }
                }
                Some(Color::Black) | None => {}
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acyclic_graph_has_no_cycles() {
        let adj = vec![vec![(1, 'a'), (2, 'b')], vec![(2, 'c')], vec![]];
        assert!(find_cycles(&adj, 8).is_empty());
    }

    #[test]
    fn finds_self_loop_and_longer_cycle() {
        let adj = vec![vec![(0, 's')], vec![(2, 'x')], vec![(3, 'y')], vec![(1, 'z')]];
        let cycles = find_cycles(&adj, 8);
        assert_eq!(cycles, vec![vec![(0, 's')], vec![(1, 'x'), (2, 'y'), (3, 'z')]]);
    }

    #[test]
    fn stops_after_max() {
        let adj = vec![vec![(0, ())], vec![(1, ())], vec![(2, ())]];
        assert_eq!(find_cycles(&adj, 2).len(), 2);
    }

    #[test]
    fn long_chain_does_not_recurse() {
        let n = 200_000;
        let mut adj: Vec<Vec<(usize, ())>> = (0..n).map(|i| vec![(i + 1, ())]).collect();
        adj[n - 1] = vec![(0, ())];
        let cycles = find_cycles(&adj, 1);
        assert_eq!(cycles[0].len(), n);
    }
}
