//! Randomized SVD out of core (Halko, Martinsson and Tropp 2011; Dask's `svd_compressed`).
//!
//! ```text
//!  pass 1      Y = A [Ω ω]          Ω: n x (k+p) sketch, ω: n x r probes (seeded, generated)
//!              Q = orth(Y[:, :k+p])  block Householder QR tree over chunk rows
//!  q times     Z = orth(A^T Q)       subspace iteration, re-orthonormalized after every
//!              Q = orth(A Z)         product (Dask's "QR" iterator); 2 passes each
//!  last pass   B^T = A^T Q           n x (k+p), as blocks by chunk column
//!              B^T = Q_b R_b,  R_b = U_r S V_r^T     (block QR tree, then a small SVD)
//!              U = Q V_r,  V = Q_b U_r,  s = S        (first k columns)
//!  estimate    ||A - U S V^T|| from E ω = A ω - U S V^T ω  (A ω came with pass 1: no extra pass)
//! ```
//!
//! Every pass streams A chunk by chunk (`A_ij X_j`, summed per chunk row in a fixed order), so A
//! is never resident whatever its size or chunk grid, and results are identical under any
//! scheduler. With `method = Krylov` (Musco and Musco 2015) the blocks `Q_0, ..., Q_q` of all
//! iterations are kept and orthonormalized together, so the same passes over A span a
//! `(q+1)(k+p)`-dimensional Krylov space instead of a `(k+p)`-dimensional one.
//!
//! **Error estimate** (HMT section 4.3): with `r` Gaussian probes `ω_i` drawn independently of
//! everything else, `||A - U S V^T||_2 <= 10 sqrt(2/π) max_i ||(A - U S V^T) ω_i||` with
//! probability at least `1 - 10^-r`; `sqrt(mean_i ||(A - U S V^T) ω_i||^2)` estimates the
//! Frobenius norm. `A ω` is computed in the first pass alongside `A Ω`.
//!
//! **Signs**: as in TSQR, the entry of largest magnitude in each column of V is positive.

mod build;
mod kernels;
mod plan;

pub use plan::{
    DEFAULT_POWER_ITERS, ErrorEstimate, MAX_POWER_ITERS, MAX_PROBES, RsvdMethod, RsvdOptions, RsvdPlan, RsvdResult,
};

use crate::Result;
use crate::engine::Engine;
use crate::matrix::ChunkedMatrix;
use crate::output::Destination;

/// Plans and runs a randomized SVD of `a`, returning U and V in RAM ([`Destination::Memory`]).
/// Use [`RsvdPlan`] to write them to Zarr arrays or into your own matrices instead.
pub fn rsvd(engine: &Engine, a: &ChunkedMatrix, options: &RsvdOptions) -> Result<RsvdResult> {
    RsvdPlan::new(a, options, engine)?.run(engine, Destination::Memory, Destination::Memory)
}
