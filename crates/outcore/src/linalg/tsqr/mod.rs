//! TSQR SVD: the SVD of a tall-and-skinny matrix in one pass over it (two with vectors).
//!
//! ```text
//!  A = [A_0; A_1; ...; A_P]          row panels, each read once, QR'd in place
//!        │    │          │
//!       R_0  R_1   ...  R_P          n x n each           (stage "panel QR")
//!         \   |   /  ...  /
//!          stack f, QR → R           fan-in f tree         (stage "R reduction")
//!                 │
//!           R = U_R S V^T            dense SVD of n x n    (stage "SVD of R")
//! ```
//!
//! Values only: nothing but the R factors is kept, and memory is bounded by a few panels plus
//! a tree's worth of n x n factors, whatever the number of rows.
//!
//! With vectors, `U = Q U_R` is assembled panel by panel in a second pass (Benson, Gleich and
//! Demmel's direct TSQR): each tree node keeps its small Householder factors; walking the tree
//! top-down turns `U_R` into an `n x k` block `W_i` per panel (stage "Q back-propagation"); then
//! each panel is read again and `U_i = Q_i [W_i; 0]` is written out (stage "U assembly"). Q_i is
//! never stored (that would mean writing and reading back a matrix as large as A). Where the
//! panel's R_i, kept from the first pass, is well conditioned, `U_i = A_i (R_i^-1 W_i)`: one
//! matrix product. Otherwise the panel is **re-factored**, bitwise identical to the first pass
//! (the kernel is sequential and deterministic), and its Householder Q_i applied to `W_i`.
//!
//! Wide matrices are factored through their transpose: `A^T = U' S V'^T` gives `U = V'`,
//! `V = U'`. Matrices chunked in both dimensions are regrouped into row panels spanning all
//! chunk columns.
//!
//! **Signs.** Each singular vector pair is made deterministic with Dask's `svd_flip` rule applied
//! to the `n x k` factor of the tall problem: in each column of V' (V for tall input, U for wide
//! input) the entry of largest magnitude is positive.

mod build;
mod kernels;
mod plan;

pub(crate) use plan::speed_panel_rows;
pub use plan::{TsqrOptions, TsqrPlan};

use crate::Result;
use crate::engine::Engine;
use crate::linalg::SvdResult;
use crate::matrix::ChunkedMatrix;
use crate::output::Destination;

/// Plans and runs a TSQR SVD of `a`, returning U and V in RAM ([`Destination::Memory`]).
/// Use [`TsqrPlan`] directly to write the large factor to a Zarr array instead.
pub fn tsqr_svd(engine: &Engine, a: &ChunkedMatrix, options: &TsqrOptions) -> Result<SvdResult> {
    TsqrPlan::new(a, options, engine)?.run(engine, Destination::Memory)
}
