//! Stochastic reconfiguration (Sorella, PRL 80, 4558 (1998); the natural gradient of Amari,
//! Neural Comput. 10, 251 (1998)): the step $\delta = (S + \lambda I)^{-1} g$ with the Fisher
//! matrix $S = Y^\top Y$ of the centred per-sample scores, $Y_{ik} = (O_{ik} - \bar O_k)/\sqrt n$
//! (a complex score $O = \partial_\theta\ln\psi$ contributes its real and imaginary parts as two
//! rows, so $S = \operatorname{Re}\langle\Delta O^\dagger\Delta O\rangle$, the quantum Fisher
//! matrix), and damping $\lambda > 0$.
//!
//! Solved in parameter space (Cholesky of the $P \times P$ matrix) when there are fewer
//! parameters than rows, else in sample space by the Woodbury identity (minSR: Chen & Heyl,
//! Nat. Phys. 20, 1476 (2024); Rende et al., Commun. Phys. 7, 260 (2024)),
//! $$ \delta = \lambda^{-1}\big[g - Y^\top(YY^\top + \lambda I)^{-1}Yg\big], $$
//! which costs $O(r^2P)$ for r rows instead of $O(P^3)$. The max-norm rule rescales the step so
//! that its length in the Fisher metric, $\sqrt{\delta^\top S\delta} = \|Y\delta\|$, is at most
//! `max_norm`.

use nalgebra::{DMatrix, DVector};
use thiserror::Error;

/// Settings of stochastic reconfiguration.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SrConfig {
    /// Diagonal shift $\lambda$ (> 0).
    pub damping: f64,
    /// Bound on $\|Y\delta\|$ of the step (> 0; infinity: no bound).
    pub max_norm: f64,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum SrError {
    #[error("stochastic reconfiguration: damping {0} is not a finite number > 0")]
    Damping(f64),
    #[error("stochastic reconfiguration: {rows} x {params} scores do not match a gradient of {grad} parameters")]
    Shape { rows: usize, params: usize, grad: usize },
    #[error("stochastic reconfiguration: the damped Fisher matrix is not positive definite (non-finite scores?)")]
    NotPositive,
}

/// Centred, scaled per-sample scores: the matrix Y (rows x params, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub rows: usize,
    pub params: usize,
    pub y: Vec<f64>,
}

impl Scores {
    /// From raw scores (`samples` rows of `params`; complex scores: pass the real parts as one
    /// block of rows and the imaginary parts as another, each centred on its own mean).
    /// `blocks` gives the row ranges centred separately; every row is divided by $\sqrt n$, n the
    /// rows of one block.
    pub fn centred(raw: &[f64], params: usize, blocks: usize) -> Self {
        let rows = if params == 0 { 0 } else { raw.len() / params };
        let per = rows / blocks.max(1);
        let mut y = raw.to_vec();
        let scale = 1.0 / (per.max(1) as f64).sqrt();
        for b in 0..blocks.max(1) {
            let r = b * per..(b + 1) * per;
            for k in 0..params {
                let mean = r.clone().map(|i| raw[i * params + k]).sum::<f64>() / per.max(1) as f64;
                for i in r.clone() {
                    y[i * params + k] = (raw[i * params + k] - mean) * scale;
                }
            }
        }
        Scores { rows, params, y }
    }
    fn matrix(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.rows, self.params, &self.y)
    }
    /// $\|Y\delta\|^2 = \delta^\top S\delta$.
    pub fn metric(&self, delta: &[f64]) -> f64 {
        (0..self.rows).map(|i| self.y[i * self.params..(i + 1) * self.params].iter().zip(delta).map(|(a, b)| a * b).sum::<f64>().powi(2)).sum()
    }
}

fn check(s: &Scores, grad: &[f64], damping: f64) -> Result<(), SrError> {
    if !(damping.is_finite() && damping > 0.0) {
        return Err(SrError::Damping(damping));
    }
    if grad.len() != s.params || s.y.len() != s.rows * s.params {
        return Err(SrError::Shape { rows: s.rows, params: s.params, grad: grad.len() });
    }
    Ok(())
}

/// $(Y^\top Y + \lambda I)^{-1} g$ by Cholesky in parameter space.
pub fn solve_dense(s: &Scores, grad: &[f64], damping: f64) -> Result<Vec<f64>, SrError> {
    check(s, grad, damping)?;
    let y = s.matrix();
    let m = y.transpose() * &y + DMatrix::identity(s.params, s.params) * damping;
    let chol = m.cholesky().ok_or(SrError::NotPositive)?;
    Ok(chol.solve(&DVector::from_column_slice(grad)).iter().cloned().collect())
}

/// The same by the Woodbury identity in sample space.
pub fn solve_woodbury(s: &Scores, grad: &[f64], damping: f64) -> Result<Vec<f64>, SrError> {
    check(s, grad, damping)?;
    let y = s.matrix();
    let g = DVector::from_column_slice(grad);
    let t = &y * &y.transpose() + DMatrix::identity(s.rows, s.rows) * damping;
    let chol = t.cholesky().ok_or(SrError::NotPositive)?;
    let inner = chol.solve(&(&y * &g));
    Ok(((g - y.transpose() * inner) / damping).iter().cloned().collect())
}

/// The damped natural-gradient direction, in whichever space is smaller.
pub fn natural_gradient(s: &Scores, grad: &[f64], damping: f64) -> Result<Vec<f64>, SrError> {
    if s.params <= s.rows { solve_dense(s, grad, damping) } else { solve_woodbury(s, grad, damping) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(rows: usize, params: usize, seed: u64) -> Vec<f64> {
        (0..rows * params).map(|k| ((k as f64 * 0.7137 + seed as f64).sin() * 43758.5453).fract() - 0.5).collect()
    }

    #[test]
    fn sample_space_step_equals_the_dense_solve() {
        // More parameters than samples (the Woodbury path) and fewer (the dense path).
        for (rows, params) in [(12usize, 40usize), (40, 12), (16, 16)] {
            let s = Scores::centred(&scores(rows, params, 3), params, 2);
            let g: Vec<f64> = (0..params).map(|k| (k as f64 * 0.37).cos()).collect();
            for damping in [1e-3, 0.1] {
                let (d, w) = (solve_dense(&s, &g, damping).unwrap(), solve_woodbury(&s, &g, damping).unwrap());
                let scale = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let err = d.iter().zip(&w).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-10 * scale, "{rows} x {params}, damping {damping}: {err:e} of {scale:e}");
                // (S + lambda) delta = g.
                let y = s.matrix();
                let back = y.transpose() * (&y * DVector::from_column_slice(&d)) + DVector::from_column_slice(&d) * damping;
                assert!(back.iter().zip(&g).all(|(a, b)| (a - b).abs() < 1e-9), "residual");
            }
        }
        // Centring: each block of rows has zero column sums.
        let s = Scores::centred(&scores(10, 3, 1), 3, 2);
        for b in 0..2 {
            for k in 0..3 {
                assert!((b * 5..(b + 1) * 5).map(|i| s.y[i * 3 + k]).sum::<f64>().abs() < 1e-14);
            }
        }
        assert!(matches!(natural_gradient(&s, &[1.0; 3], 0.0), Err(SrError::Damping(_))) && matches!(natural_gradient(&s, &[1.0; 2], 0.1), Err(SrError::Shape { .. })));
    }
}
