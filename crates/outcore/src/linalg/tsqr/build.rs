//! The TSQR task graph, built depth-first so each reduction node runs right after its
//! children and each panel's U right after its block of W.

use super::plan::{Centring, TsqrPlan};
use crate::Result;
use crate::graph::{Key, Operation, TaskGraph, TaskId};

/// One TSQR step; indices refer to the plan's panels and tree levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsqrOp {
    /// Read panel `panel`, QR it, output its R.
    PanelQr {
        /// Panel index.
        panel: usize,
    },
    /// Stack the children's R factors of node `node` of level `level`, QR, output R (and, with
    /// vectors, the Householder factors and coefficients).
    StackQr {
        /// Tree level (1 = just above the panels).
        level: usize,
        /// Node index within the level.
        node: usize,
    },
    /// SVD of the root R: singular values (and V, U_R with signs fixed).
    SvdR,
    /// Apply node `node`'s Q to its block of W, giving one block per child.
    ApplyQ {
        /// Tree level.
        level: usize,
        /// Node index within the level.
        node: usize,
    },
    /// Re-factor panel `panel` and write its rows of U = Q_i [W_i; 0].
    PanelU {
        /// Panel index.
        panel: usize,
    },
}

impl Operation for TsqrOp {
    fn stage(&self) -> &'static str {
        match self {
            Self::PanelQr { .. } => "panel QR",
            Self::StackQr { .. } => "R reduction",
            Self::SvdR => "SVD of R",
            Self::ApplyQ { .. } => "Q back-propagation",
            Self::PanelU { .. } => "U assembly",
        }
    }

    fn label(&self) -> String {
        match self {
            Self::PanelQr { panel } => format!("qr panel {panel}"),
            Self::StackQr { level, node } => format!("stack qr L{level}.{node}"),
            Self::SvdR => "svd of R".to_string(),
            Self::ApplyQ { level, node } => format!("apply Q L{level}.{node}"),
            Self::PanelU { panel } => format!("U panel {panel}"),
        }
    }

    fn row_block(&self) -> Option<usize> {
        match self {
            Self::PanelQr { panel } | Self::PanelU { panel } => Some(*panel),
            _ => None,
        }
    }
}

/// Where the results are: the singular values, the tall problem's V when vectors are on, and
/// the centring's means and scales (2 x cols blocks: the root's, or each panel's in order).
pub(crate) struct ResultKeys {
    pub(crate) s: Key,
    pub(crate) vectors: Option<Key>,
    pub(crate) stats: Vec<Key>,
}

/// Builds the graph of `plan` and says where its results are.
pub(crate) fn graph_with_keys(plan: &TsqrPlan) -> Result<(TaskGraph<TsqrOp>, ResultKeys)> {
    let mut g = TaskGraph::new();
    g.set_max_concurrency(plan.concurrent_tasks());
    let mut ids: Vec<Vec<Option<TaskId>>> = plan.levels.iter().map(|l| vec![None; l.len()]).collect();
    let root_level = plan.levels.len() - 1;
    let root = up(plan, &mut g, &mut ids, root_level, 0)?;
    let k_root = plan.levels[root_level][0].k;
    let with_v = plan.vectors || plan.small_v;
    let column_stats = plan.centring == Centring::Columns;
    let outputs = 1 + usize::from(with_v) + usize::from(plan.vectors) + usize::from(column_stats);
    let svd = g.add(TsqrOp::SvdR, vec![root.out(0)], outputs, plan.svd_bytes(k_root))?;
    g.keep(svd.out(0));
    let vectors = with_v.then(|| svd.out(1));
    let stats = match plan.centring {
        Centring::Columns => vec![svd.out(outputs - 1)],
        Centring::Rows => ids[0]
            .iter()
            .map(|id| id.map(|t| t.out(1)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| crate::Error::Bug("a panel was not built".into()))?,
        Centring::None => Vec::new(),
    };
    stats.iter().for_each(|k| g.keep(*k));
    if let Some(v) = vectors {
        g.keep(v);
    }
    if plan.vectors {
        down(plan, &mut g, &ids, root_level, 0, svd.out(2))?;
    }
    Ok((g, ResultKeys { s: svd.out(0), vectors, stats }))
}

/// Builds the graph of `plan`.
pub(crate) fn graph(plan: &TsqrPlan) -> Result<TaskGraph<TsqrOp>> {
    graph_with_keys(plan).map(|(g, _)| g)
}

fn up(
    plan: &TsqrPlan,
    g: &mut TaskGraph<TsqrOp>,
    ids: &mut [Vec<Option<TaskId>>],
    level: usize,
    node: usize,
) -> Result<TaskId> {
    let id = if level == 0 {
        let (total, reusable) = plan.panel_qr_bytes(node);
        let outputs = if plan.centring == Centring::Rows { 2 } else { 1 };
        g.add_reusing(TsqrOp::PanelQr { panel: node }, vec![], outputs, total, reusable)?
    } else {
        let spec = &plan.levels[level][node];
        let children = spec
            .children
            .clone()
            .map(|c| up(plan, g, ids, level - 1, c).map(|t| t.out(0)))
            .collect::<Result<Vec<_>>>()?;
        let outputs = if plan.vectors { 3 } else { 1 };
        g.add(TsqrOp::StackQr { level, node }, children, outputs, plan.stack_bytes(spec))?
    };
    ids[level][node] = Some(id);
    Ok(id)
}

fn down(
    plan: &TsqrPlan,
    g: &mut TaskGraph<TsqrOp>,
    ids: &[Vec<Option<TaskId>>],
    level: usize,
    node: usize,
    w: Key,
) -> Result<()> {
    let built =
        ids[level][node].ok_or_else(|| crate::Error::Bug(format!("tree node L{level}.{node} was not built")))?;
    if level == 0 {
        // The panel's R, kept from the first pass, for the U_panel = A_panel R^-1 W shortcut.
        let (total, reusable) = plan.panel_u_bytes(node);
        g.add_reusing(TsqrOp::PanelU { panel: node }, vec![w, built.out(0)], 0, total, reusable)?;
        return Ok(());
    }
    let spec = &plan.levels[level][node];
    let stack = built;
    let apply = g.add(
        TsqrOp::ApplyQ { level, node },
        vec![stack.out(1), stack.out(2), w],
        spec.children.len(),
        plan.apply_bytes(spec),
    )?;
    for (i, child) in spec.children.clone().enumerate() {
        down(plan, g, ids, level - 1, child, apply.out(i))?;
    }
    Ok(())
}
