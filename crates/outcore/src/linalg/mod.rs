//! Linear algebra out of core, the top layer: each algorithm is a folder (`tsqr`, the exact
//! SVD; `rsvd`, the randomized SVD) of files that import downward only: `options` (what a
//! caller chooses), `layout` (the shape of the run: panels, trees, sketch widths and the bytes
//! each task holds), `ops` (its steps as data), `graph` (the task graph), `plan` (the layout that
//! fits the memory limit), `kernels` (what each step computes, on `dense` kernels) and `mod`
//! (running a plan, and the one-call entry point). An algorithm that is another one with a
//! different last step is a folder of `options` and `mod` on top of it: `qr` is TSQR whose
//! root keeps R, `lstsq` TSQR of `[A | B]` whose root solves ([`tsqr::Root`]). Shared below them: `dense` (sequential faer
//! kernels), `blockqr` (the block QR tree), `budget` (what a plan needs from the memory
//! limit), `input` (what an algorithm takes), `result` (what an SVD returns). `copy` is a small
//! algorithm in one file; `state` keeps a TSQR's factor between runs, to grow and merge.

pub(crate) mod blockqr;
pub(crate) mod budget;
pub(crate) mod copy;
pub(crate) mod dense;
pub(crate) mod input;
pub(crate) mod lstsq;
pub(crate) mod qr;
pub(crate) mod result;
pub(crate) mod rsvd;
pub(crate) mod state;
pub(crate) mod tsqr;
