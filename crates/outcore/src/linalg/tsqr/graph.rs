//! The TSQR task graph, built depth-first so each reduction node runs right after its
//! children and each panel's U right after its block of W.

use super::layout::{Centering, Layout, Root};
use super::ops::TsqrOp;
use crate::error::{Error, Result};
use crate::task::{Key, TaskGraph, TaskId, Work};

/// Where the results are: the root's first output (the singular values, or R), the tall
/// problem's V when an SVD's vectors are on, a QR's `Q^T B` when it has right-hand sides, and
/// the centering's means and scales (2 x cols blocks: the root's, or each panel's in order).
pub(crate) struct ResultKeys {
    pub(crate) root: Key,
    pub(crate) vectors: Option<Key>,
    pub(crate) qt_b: Option<Key>,
    pub(crate) stats: Vec<Key>,
}

/// Outputs of the least-squares root: X, s, rss, rank, tss, intercepts, standard errors of X
/// and of the intercepts, `(A^T A)^-1`, scales.
const LSTSQ_OUTPUTS: usize = 10;

/// Builds the graph of `layout`, running at most `concurrency` tasks at once, and says where
/// its results are.
pub(crate) fn graph_with_keys(layout: &Layout, concurrency: usize) -> Result<(TaskGraph<TsqrOp>, ResultKeys)> {
    let mut g = TaskGraph::new();
    g.set_max_concurrency(concurrency);
    let mut ids: Vec<Vec<Option<TaskId>>> = layout.levels.iter().map(|l| vec![None; l.len()]).collect();
    let root_level = layout.levels.len() - 1;
    let root = up(layout, &mut g, &mut ids, root_level, 0)?;
    let k_root = layout.levels[root_level][0].k;
    let bytes = layout.root_bytes(k_root);
    // The root's outputs: [s, V, U_R, stats] for an SVD (V with vectors or a centered V,
    // U_R with vectors, stats when columns are centered), [R, W, Q^T B] for a QR (W with Q,
    // Q^T B with right-hand sides).
    let mut qt_b = None;
    let (top, vectors, w, column_stats) = match layout.root {
        Root::Svd => {
            let with_v = layout.vectors || layout.small_v;
            let column_stats = layout.centering == Centering::Columns;
            let outputs = 1 + usize::from(with_v) + usize::from(layout.vectors) + usize::from(column_stats);
            let svd = g.add(TsqrOp::SvdR, vec![root.out(0)], outputs, bytes)?;
            (svd, with_v.then(|| svd.out(1)), svd.out(2), svd.out(outputs - 1))
        }
        Root::Qr => {
            let outputs = 1 + usize::from(layout.vectors) + usize::from(layout.rhs.is_some());
            let r = g.add(TsqrOp::SignR, vec![root.out(0)], outputs, bytes)?;
            qt_b = layout.rhs.is_some().then(|| r.out(outputs - 1));
            (r, None, r.out(1), r.out(0))
        }
        Root::Lstsq(_) => {
            let solve = g.add(TsqrOp::Solve, vec![root.out(0)], LSTSQ_OUTPUTS, bytes)?;
            (1..LSTSQ_OUTPUTS).for_each(|slot| g.keep(solve.out(slot)));
            (solve, None, solve.out(0), solve.out(0))
        }
    };
    g.keep(top.out(0));
    let stats = match layout.centering {
        Centering::Columns => vec![column_stats],
        Centering::Rows => ids[0]
            .iter()
            .map(|id| id.map(|t| t.out(1)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Bug("a panel was not built".into()))?,
        Centering::None => Vec::new(),
    };
    stats.iter().for_each(|k| g.keep(*k));
    vectors.iter().chain(&qt_b).for_each(|k| g.keep(*k));
    if layout.vectors {
        down(layout, &mut g, &ids, root_level, 0, w)?;
    }
    Ok((g, ResultKeys { root: top.out(0), vectors, qt_b, stats }))
}

fn up(
    layout: &Layout,
    g: &mut TaskGraph<TsqrOp>,
    ids: &mut [Vec<Option<TaskId>>],
    level: usize,
    node: usize,
) -> Result<TaskId> {
    let id = if level == 0 {
        let (total, reusable) = layout.panel_qr_bytes(node);
        let outputs = if layout.centering == Centering::Rows { 2 } else { 1 };
        let id = g.add_reusing(TsqrOp::PanelQr { panel: node }, vec![], outputs, total, reusable)?;
        g.set_work(id, panel_work(layout, node));
        id
    } else {
        let spec = &layout.levels[level][node];
        let children = spec
            .children
            .clone()
            .map(|c| up(layout, g, ids, level - 1, c).map(|t| t.out(0)))
            .collect::<Result<Vec<_>>>()?;
        let outputs = if layout.vectors { 3 } else { 1 };
        let id = g.add(TsqrOp::StackQr { level, node }, children, outputs, layout.stack_bytes(spec))?;
        g.set_work(id, Work::qr(spec.rows, layout.n, 0));
        id
    };
    ids[level][node] = Some(id);
    Ok(id)
}

fn down(
    layout: &Layout,
    g: &mut TaskGraph<TsqrOp>,
    ids: &[Vec<Option<TaskId>>],
    level: usize,
    node: usize,
    w: Key,
) -> Result<()> {
    let built = ids[level][node].ok_or_else(|| Error::Bug(format!("tree node L{level}.{node} was not built")))?;
    if level == 0 {
        // The panel's R, kept from the first pass, for the U_panel = A_panel R^-1 W shortcut.
        let (total, reusable) = layout.panel_u_bytes(node);
        let id = g.add_reusing(TsqrOp::PanelU { panel: node }, vec![w, built.out(0)], 0, total, reusable)?;
        // Textbook: the panel factored again, its Q applied to its block of W.
        let rows = layout.panels[node].len();
        g.set_work(id, panel_work(layout, node).and(Work::product(rows, layout.n, 2 * layout.n, 0)));
        return Ok(());
    }
    let spec = &layout.levels[level][node];
    let stack = built;
    let apply = g.add(
        TsqrOp::ApplyQ { level, node },
        vec![stack.out(1), stack.out(2), w],
        spec.children.len(),
        layout.apply_bytes(spec),
    )?;
    // Applying the Q of a Householder QR of rows x n to n columns: 4 rows n^2 flops.
    g.set_work(apply, Work::product(spec.rows, layout.n, 2 * layout.n, 0));
    for (i, child) in spec.children.clone().enumerate() {
        down(layout, g, ids, level - 1, child, apply.out(i))?;
    }
    Ok(())
}

/// A panel's QR, reading the panel (with what is read beside it).
fn panel_work(layout: &Layout, panel: usize) -> Work {
    let rows = layout.panels[panel].len();
    Work::qr(rows, layout.n, 8 * (rows * layout.n) as u64)
}
