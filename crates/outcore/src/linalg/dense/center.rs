//! Centering for PCA: a panel's columns on their means (the means kept as one more row), a
//! panel's rows on theirs, and the scales of standardized columns; for a weighted least-squares
//! problem, a panel's rows weighted (and its columns centered on their weighted means).

use faer::MatMut;
use faer::reborrow::{Reborrow, ReborrowMut};

use crate::task::Block;

/// Subtracts each column's mean from it; returns the means as a `1 x n` block.
pub(crate) fn center_columns(mut a: MatMut<'_, f64>) -> Block {
    let (h, n) = a.shape();
    let mut means = Vec::with_capacity(n);
    for j in 0..n {
        let col = a.rb_mut().col_mut(j);
        let mean = col.rb().iter().sum::<f64>() / h as f64;
        col.iter_mut().for_each(|x| *x -= mean);
        means.push(mean);
    }
    Block { data: means, rows: 1, cols: n }
}

/// Weights a panel's rows for weighted least squares: row `i` scaled by `sqrt(w[i])`, after
/// each column is centered on its weighted mean when `center`. Returns, when centering,
/// `[means; [sum of w, 0, ...]]` as a `2 x n` block (the means 0 where the weights are).
/// `w` must be finite and non-negative.
pub(crate) fn weigh_rows(mut a: MatMut<'_, f64>, w: &[f64], center: bool) -> Option<Block> {
    let n = a.ncols();
    let total: f64 = w.iter().sum();
    let mut stats = None;
    if center {
        let mut means = Vec::with_capacity(2 * n);
        for j in 0..n {
            let col = a.rb_mut().col_mut(j);
            let sum = col.rb().iter().zip(w).map(|(x, w)| w * x).sum::<f64>();
            let mean = if total > 0.0 { sum / total } else { 0.0 };
            col.iter_mut().for_each(|x| *x -= mean);
            means.push(mean);
        }
        means.push(total);
        means.resize(2 * n, 0.0);
        stats = Some(Block { data: means, rows: 2, cols: n });
    }
    let roots: Vec<f64> = w.iter().map(|w| w.sqrt()).collect();
    for j in 0..n {
        a.rb_mut().col_mut(j).iter_mut().zip(&roots).for_each(|(x, r)| *x *= r);
    }
    stats
}

/// Subtracts each row's mean from it and, when `standardize`, divides it by its standard
/// deviation (`ddof = 1`; 1 for a constant row, see [`deviation`]); returns `[means; scales]`
/// as a `2 x h` block.
pub(crate) fn center_rows(mut a: MatMut<'_, f64>, standardize: bool) -> Block {
    let (h, n) = a.shape();
    let mut means = vec![0.0; h];
    for j in 0..n {
        means.iter_mut().zip(a.rb().col(j).iter()).for_each(|(m, x)| *m += x);
    }
    means.iter_mut().for_each(|m| *m /= n as f64);
    let mut squares = vec![0.0; h];
    for j in 0..n {
        let col = a.rb_mut().col_mut(j);
        for ((x, m), q) in col.iter_mut().zip(&means).zip(&mut squares) {
            *x -= m;
            *q += *x * *x;
        }
    }
    let scales: Vec<f64> = if standardize {
        squares.iter().zip(&means).map(|(q, m)| deviation(*q, *m, n as f64)).collect()
    } else {
        vec![1.0; h]
    };
    if standardize {
        for j in 0..n {
            a.rb_mut().col_mut(j).iter_mut().zip(&scales).for_each(|(x, s)| *x /= s);
        }
    }
    Block { data: [means, scales].concat(), rows: 2, cols: h }
}

/// The mean of parts of `counts[j]` rows and column means `means[j]` (`n` columns): their
/// means weighted by their counts (zeros when there are no rows).
pub(crate) fn pooled_mean<'m>(parts: impl IntoIterator<Item = (f64, &'m [f64])>, n: usize) -> Vec<f64> {
    let mut mean = vec![0.0; n];
    let mut total = 0.0;
    for (count, mu) in parts {
        mean.iter_mut().zip(mu).for_each(|(m, x)| *m += count * x);
        total += count;
    }
    if total > 0.0 {
        mean.iter_mut().for_each(|m| *m /= total);
    }
    mean
}

/// Divides each column of a centered matrix's R (whose column norms are the centered columns')
/// by its standard deviation over `samples` rows (`ddof = 1`; 1 for a constant column, see
/// [`deviation`]); `means` are the columns' means. Returns the scales.
pub(crate) fn column_scales(mut r: MatMut<'_, f64>, means: &[f64], samples: f64) -> Vec<f64> {
    (0..r.ncols())
        .map(|j| {
            let col = r.rb_mut().col_mut(j);
            let scale = deviation(col.rb().iter().map(|x| x * x).sum(), means[j], samples);
            col.iter_mut().for_each(|x| *x /= scale);
            scale
        })
        .collect()
}

/// The standard deviation (`ddof = 1`) from a sum of squared deviations over `samples` values
/// of mean `mean`; 1 for a constant column: one whose variance is within the rounding that
/// centering leaves (`m eps var + (m eps mean)^2`, scikit-learn's `_is_constant_feature`), so
/// a column of 0.1s is not scaled up into unit-variance noise.
fn deviation(squares: f64, mean: f64, samples: f64) -> f64 {
    let variance = squares / samples;
    let bound = samples * f64::EPSILON * variance + (samples * mean * f64::EPSILON).powi(2);
    if variance <= bound { 1.0 } else { (squares / (samples - 1.0)).sqrt() }
}
