//! The randomized SVD's task graph.

use outcore_storage::ChunkIndex;

use super::layout::Sketch;
use super::ops::{RsvdOp, Side};
use super::options::RandomizedMethod;
use crate::error::Error;
use crate::error::Result;
use crate::linalg::blockqr::{self, BlockQrOp};
use crate::task::{Block, Folding, Key, TaskGraph, TaskId, Work, reduce_fold};

/// Where the results are.
pub(crate) struct Keys {
    pub(crate) s: Key,
    /// sigma_{k+1} of the projected matrix: a lower bound on the residual's spectral norm.
    pub(crate) next: Key,
    pub(crate) estimate: Key,
    /// Each chunk column's `[count; mean; M2]`, when gathered (to center, or asked).
    pub(crate) moments: Vec<Key>,
}

struct Builder<'a> {
    sketch: &'a Sketch,
    g: TaskGraph<RsvdOp>,
    rows: Vec<usize>,
    cols: Vec<usize>,
    /// Bytes of one chunk of A.
    chunk_bytes: u64,
    /// Chunks are read into worker scratch (streaming) rather than pinned (caching).
    streaming: bool,
    /// Transient bytes of reading one chunk.
    read_scratch: u64,
    /// Per chunk column, its merged moments (once pass 1 gathered them).
    moments: Vec<Key>,
}

const fn bytes(r: usize, c: usize) -> u64 {
    Block::bytes(r, c)
}

fn wrap(op: BlockQrOp) -> RsvdOp {
    RsvdOp::Qr(op)
}

impl Builder<'_> {
    fn sum(&mut self, keys: Vec<Key>, rows: usize, cols: usize) -> Result<Key> {
        if keys.len() == 1 {
            return Ok(keys[0]);
        }
        let ws = (keys.len() as u64 + 1) * bytes(rows, cols);
        Ok(self.g.add(RsvdOp::Sum, keys, 1, ws)?.out(0))
    }

    /// The sum of `n` blocks made by `part(j)`, reduced in the one tree ([`reduce_fold`]) with
    /// sums added as their parts are made: a sum runs as soon as its parts exist, so at most
    /// `fan_in - 1` parts wait per level and no task holds more than `fan_in + 1` blocks, however
    /// many chunks a row or column has. A node of one part is that part (no task).
    fn tree_sum(
        &mut self,
        n: usize,
        rows: usize,
        cols: usize,
        part: impl FnMut(&mut Self, usize) -> Result<Key>,
    ) -> Result<Key> {
        let fan = self.sketch.options.fan_in.max(2);
        reduce_fold(self, n, fan, part, |b, parts| b.sum(parts, rows, cols))
    }

    /// A task that reads one chunk of A: into worker scratch when streaming, pinned from its
    /// budget when caching.
    fn chunk_task(
        &mut self,
        op: RsvdOp,
        inputs: Vec<Key>,
        in_bytes: u64,
        out_bytes: u64,
        extra_reusable: u64,
    ) -> Result<Key> {
        Ok(self.chunk_task_with(op, inputs, 1, in_bytes, out_bytes, extra_reusable)?.out(0))
    }

    /// [`chunk_task`](Self::chunk_task) with `outputs` outputs.
    fn chunk_task_with(
        &mut self,
        op: RsvdOp,
        inputs: Vec<Key>,
        outputs: usize,
        in_bytes: u64,
        out_bytes: u64,
        extra_reusable: u64,
    ) -> Result<TaskId> {
        let reusable = extra_reusable + if self.streaming { self.chunk_bytes } else { 0 };
        let ws = self.chunk_bytes + extra_reusable + self.read_scratch + in_bytes + out_bytes;
        let work = match op {
            RsvdOp::Sketch { chunk, width } | RsvdOp::Times { chunk, width } | RsvdOp::TimesT { chunk, width } => {
                let (ri, cj) = (self.rows[chunk.row], self.cols[chunk.col]);
                Work::product(ri, cj, width, 8 * (ri * cj) as u64)
            }
            _ => Work::default(),
        };
        let id = self.g.add_reusing(op, inputs, outputs, ws, reusable)?;
        self.g.set_work(id, work);
        Ok(id)
    }

    /// `A X` for X given as blocks by chunk column: blocks by chunk row.
    fn times(&mut self, xs: &[Key], width: usize) -> Result<Vec<Key>> {
        let mut ys = Vec::new();
        for i in 0..self.rows.len() {
            let y = self.tree_sum(xs.len(), self.rows[i], width, |b, j| {
                let (ib, ob) = (bytes(b.cols[j], width), bytes(b.rows[i], width));
                b.chunk_task(RsvdOp::Times { chunk: ChunkIndex::new(i, j), width }, vec![xs[j]], ib, ob, 0)
            })?;
            ys.push(y);
        }
        if !self.sketch.options.center {
            return Ok(ys);
        }
        // (A - 1 mu^T) X = A X - 1 (mu^T X).
        let mean_x = self.tree_sum(xs.len(), 1, width, |b, j| {
            let ws = bytes(3, b.cols[j]) + bytes(b.cols[j], width) + bytes(1, width);
            Ok(b.g.add(RsvdOp::MeanTimes, vec![b.merged(j)?, xs[j]], 1, ws)?.out(0))
        })?;
        self.subtract_rows(&ys, mean_x, width)
    }

    /// `Y_i - 1 r^T` for each block.
    fn subtract_rows(&mut self, ys: &[Key], row: Key, width: usize) -> Result<Vec<Key>> {
        let mut out = Vec::new();
        for (i, y) in ys.iter().enumerate() {
            let ws = 2 * bytes(self.rows[i], width) + bytes(1, width);
            out.push(self.g.add(RsvdOp::SubtractRow, vec![*y, row], 1, ws)?.out(0));
        }
        Ok(out)
    }

    /// Chunk column `j`'s merged moments.
    fn merged(&self, j: usize) -> Result<Key> {
        self.moments
            .get(j)
            .copied()
            .ok_or_else(|| Error::Bug(format!("the moments of chunk column {j} are not merged")))
    }

    /// `A^T Y` for Y given as blocks by chunk row: blocks by chunk column.
    fn times_t(&mut self, ys: &[Key], width: usize) -> Result<Vec<Key>> {
        let mut zs = Vec::new();
        for j in 0..self.cols.len() {
            let z = self.tree_sum(ys.len(), self.cols[j], width, |b, i| {
                let (ib, ob) = (bytes(b.rows[i], width), bytes(b.cols[j], width));
                b.chunk_task(RsvdOp::TimesT { chunk: ChunkIndex::new(i, j), width }, vec![ys[i]], ib, ob, 0)
            })?;
            zs.push(z);
        }
        if !self.sketch.options.center {
            return Ok(zs);
        }
        // (A - 1 mu^T)^T Y = A^T Y - mu (1^T Y).
        let sums = self.tree_sum(ys.len(), 1, width, |b, i| {
            Ok(b.g.add(RsvdOp::ColumnSums, vec![ys[i]], 1, bytes(b.rows[i], width) + bytes(1, width))?.out(0))
        })?;
        let mut out = Vec::new();
        for (j, z) in zs.iter().enumerate() {
            let ws = 2 * bytes(self.cols[j], width) + bytes(3, self.cols[j]) + bytes(1, width);
            out.push(self.g.add(RsvdOp::SubtractOuter, vec![*z, self.merged(j)?, sums], 1, ws)?.out(0));
        }
        Ok(out)
    }

    fn orth(&mut self, blocks: &[Key], sizes: &[usize], width: usize) -> Result<Vec<Key>> {
        let blocks: Vec<(Key, usize)> = blocks.iter().copied().zip(sizes.iter().copied()).collect();
        Ok(blockqr::orthonormalize(&mut self.g, &wrap, &blocks, width, self.sketch.options.fan_in)?.0)
    }
}

/// Builds the graph of `sketch`, running at most `concurrency` tasks at once.
pub(crate) fn graph(sketch: &Sketch, concurrency: usize) -> Result<(TaskGraph<RsvdOp>, Keys)> {
    let grid = sketch.a.grid();
    let (gr, gc) = grid.grid_shape();
    let rows: Vec<usize> =
        (0..gr).map(|i| grid.extent(ChunkIndex::new(i, 0)).map(|e| e.rows)).collect::<std::result::Result<_, _>>()?;
    let cols: Vec<usize> =
        (0..gc).map(|j| grid.extent(ChunkIndex::new(0, j)).map(|e| e.cols)).collect::<std::result::Result<_, _>>()?;
    let (cr, cc) = grid.chunk_shape();
    let streaming = !sketch.cache_input;
    // Streaming, the worker's read buffer (a row block or a chunk); caching, the pinned chunk.
    let chunk_bytes =
        if streaming { bytes(sketch.a.buffer_len(false), 1) } else { bytes(cr.min(grid.rows()), cc.min(grid.cols())) };
    let read_scratch = sketch.a.store().read_scratch_bytes();
    let mut b = Builder {
        sketch,
        g: TaskGraph::new(),
        rows: rows.clone(),
        cols: cols.clone(),
        chunk_bytes,
        streaming,
        read_scratch,
        moments: Vec::new(),
    };
    let o = &sketch.options;
    let (l, r, k) = (sketch.l, o.probes, o.k);

    // Pass 1: A [Ω ω] (and, centering or asked, each chunk's column moments), split into the sketch Y
    // and A ω. Each chunk column's moments merge in the one tree as the chunk rows come, so a
    // merge runs (and frees its inputs) before the sketches of later rows.
    let mut folds: Vec<Folding<Key>> = cols.iter().map(|_| Folding::new(rows.len(), o.fan_in)).collect();
    let merge = |b: &mut Builder<'_>, keys: Vec<Key>, cj: usize| -> Result<Key> {
        if let [one] = keys[..] {
            return Ok(one);
        }
        let ws = (keys.len() as u64 + 1) * bytes(3, cj);
        Ok(b.g.add(RsvdOp::Moments, keys, 1, ws)?.out(0))
    };
    let mut both = Vec::new();
    for (i, &ri) in rows.iter().enumerate() {
        let mut moments = Vec::new();
        both.push(b.tree_sum(cols.len(), ri, l + r, |b, j| {
            let op = RsvdOp::Sketch { chunk: ChunkIndex::new(i, j), width: l + r };
            if !o.gathers_moments() {
                return b.chunk_task(op, vec![], 0, bytes(ri, l + r), bytes(b.cols[j], l + r));
            }
            let out = bytes(ri, l + r) + bytes(3, b.cols[j]);
            let task = b.chunk_task_with(op, vec![], 2, 0, out, bytes(b.cols[j], l + r))?;
            moments.push(task.out(1));
            Ok(task.out(0))
        })?);
        for ((j, key), fold) in moments.into_iter().enumerate().zip(&mut folds) {
            fold.push(&mut b, key, |b, keys| merge(b, keys, cols[j]))?;
        }
    }
    if o.gathers_moments() {
        b.moments = folds.into_iter().map(Folding::root).collect::<Result<_>>()?;
    }
    if o.center {
        // (A - 1 mu^T) [Ω ω] = A [Ω ω] - 1 (mu^T [Ω ω]).
        let mean_sketch = b.tree_sum(cols.len(), 1, l + r, |b, j| {
            let ws = bytes(3, b.cols[j]) + bytes(b.cols[j], l + r) + bytes(1, l + r);
            Ok(b.g.add(RsvdOp::MeanSketch { col: j, width: l + r }, vec![b.merged(j)?], 1, ws)?.out(0))
        })?;
        both = b.subtract_rows(&both, mean_sketch, l + r)?;
    }
    let mut ys = Vec::new();
    let mut aw = Vec::new();
    for (&block, &ri) in both.iter().zip(&rows) {
        let split = |b: &mut Builder, from, to| -> Result<Key> {
            Ok(b.g.add(RsvdOp::Columns { from, to }, vec![block], 1, bytes(ri, l + r) + bytes(ri, to - from))?.out(0))
        };
        ys.push(split(&mut b, 0, l)?);
        aw.push(split(&mut b, l, l + r)?);
    }
    let mut q = b.orth(&ys, &rows, l)?;
    let mut krylov = vec![q.clone()];
    for _ in 0..sketch.iterations() {
        let z = b.times_t(&q, l)?;
        let z = b.orth(&z, &cols, l)?;
        let y = b.times(&z, l)?;
        q = b.orth(&y, &rows, l)?;
        krylov.push(q.clone());
    }
    let width = sketch.basis_width();
    if o.method == RandomizedMethod::Krylov && krylov.len() > 1 {
        // The last block only as far as the space's width (min(m, n)) allows.
        let last = width - (krylov.len() - 1) * l;
        let mut wide = Vec::new();
        for (i, &ri) in rows.iter().enumerate() {
            let mut parts: Vec<Key> = krylov.iter().map(|blocks| blocks[i]).collect();
            if last < l
                && let Some(block) = parts.last_mut()
            {
                let ws = bytes(ri, l) + bytes(ri, last);
                *block = b.g.add(RsvdOp::Columns { from: 0, to: last }, vec![*block], 1, ws)?.out(0);
            }
            wide.push(b.g.add(RsvdOp::Concat, parts, 1, 2 * bytes(ri, width))?.out(0));
        }
        q = b.orth(&wide, &rows, width)?;
    }

    // Last pass: B^T = A^T Q, its block QR, and the small SVD.
    let bt = b.times_t(&q, width)?;
    let bt_blocks: Vec<(Key, usize)> = bt.iter().copied().zip(cols.iter().copied()).collect();
    let tree = blockqr::build_up(&mut b.g, &wrap, &bt_blocks, width, o.fan_in)?;
    let kb = tree.r_rows();
    let svd_ws = 8 * bytes(kb.max(width), kb.max(width));
    let svd = b.g.add(RsvdOp::SmallSvd { k }, vec![tree.r()], 4, svd_ws)?;
    let vs = blockqr::build_down(&mut b.g, &wrap, &tree, svd.out(1), k, &cols)?;
    let mut us = Vec::new();
    for (i, &ri) in rows.iter().enumerate() {
        us.push(b.g.add(RsvdOp::Multiply, vec![q[i], svd.out(2)], 1, bytes(ri, width) + 2 * bytes(ri, k))?.out(0));
    }

    // Signs from V's extremes.
    let mut extremes = Vec::new();
    let mut row0 = 0;
    for (j, &cj) in cols.iter().enumerate() {
        extremes.push(b.g.add(RsvdOp::Extremes { row0 }, vec![vs[j]], 1, bytes(cj, k) + bytes(2, k))?.out(0));
        row0 += cj;
    }
    let signs = b.g.add(RsvdOp::Signs, extremes.clone(), 1, bytes(2 * extremes.len() + 1, k))?.out(0);

    // Error estimate: the Gram of (A ω) - U diag(s) (V^T ω) on the probes.
    let vtw = b.tree_sum(cols.len(), k, r, |b, j| {
        let ws = bytes(b.cols[j], k) + 2 * bytes(b.cols[j], r) + bytes(k, r);
        Ok(b.g.add(RsvdOp::ProbeProject { col: j }, vec![vs[j]], 1, ws)?.out(0))
    })?;
    let mut residuals = Vec::new();
    for (i, &ri) in rows.iter().enumerate() {
        let ws = 3 * bytes(ri, r) + bytes(ri, k) + bytes(k, r) + bytes(r, r);
        residuals.push(b.g.add(RsvdOp::Residual, vec![aw[i], us[i], svd.out(0), vtw], 1, ws)?.out(0));
    }
    // The Grams' sum and its SVD.
    let ws = bytes(residuals.len() * r + 4 * r, r);
    let estimate = b.g.add(RsvdOp::Estimate, residuals.clone(), 1, ws)?.out(0);

    // U and V, signs applied, into their stores.
    for (i, &ri) in rows.iter().enumerate() {
        b.g.add(RsvdOp::Write { side: Side::U, block: i }, vec![us[i], signs], 0, 4 * bytes(ri, k))?;
    }
    for (j, &cj) in cols.iter().enumerate() {
        b.g.add(RsvdOp::Write { side: Side::V, block: j }, vec![vs[j], signs], 0, 4 * bytes(cj, k))?;
    }
    b.g.keep(svd.out(0));
    b.g.keep(svd.out(3));
    b.g.keep(estimate);
    let moments = if o.gathers_moments() {
        (0..cols.len()).map(|j| b.merged(j)).collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    moments.iter().for_each(|key| b.g.keep(*key));
    b.g.set_max_concurrency(concurrency);
    Ok((b.g, Keys { s: svd.out(0), next: svd.out(3), estimate, moments }))
}
