//! The forward-Laplacian jet of a whole chunk of walkers as matrices, so that dense layers run as
//! GEMMs: a [`JetBatch`] holds, for `rows` quantities $u_r$ of `B` walkers, the values
//! $u_r$, the gradients $\nabla u_r$ over `vars` seed directions and the Laplacians $\Delta u_r$.
//! A linear map $W u + b$ acts on the three parts by the same matrix (three GEMMs, the gradient
//! one $W \times$ (`rows` $\times$ `vars`$\cdot B$) carrying almost all the work); a pointwise
//! function applies $(f, f'\nabla u, f'\Delta u + f''|\nabla u|^2)$ in one fused pass.
//!
//! The per-walker scalar jet ([`crate::jet::Lap`]) computes the same numbers one walker at a time
//! and stays the reference: tests require both to agree to rounding.

use crate::gemm::{MatRef, gemm_into, matmul};
use nalgebra::DMatrix;

/// Jets of `rows` quantities for `B` walkers. Column `k * B + j` of `grad` is the derivative
/// along seed direction `k` of walker `j`.
#[derive(Clone, Debug, PartialEq)]
pub struct JetBatch {
    vars: usize,
    /// Values, `rows x B`.
    pub val: DMatrix<f64>,
    /// Gradients, `rows x (vars B)`.
    pub grad: DMatrix<f64>,
    /// Laplacians, `rows x B`.
    pub lap: DMatrix<f64>,
}

impl JetBatch {
    /// Jets of the coordinates themselves: column `j` of `x` (`D x B`) is walker `j`; coordinate
    /// `i` has gradient `scale[i]` along direction `i` and zero Laplacian (with
    /// `scale[i]` $= m_i^{-1/2}$ the Laplacian becomes the mass-weighted $\sum_i m_i^{-1}\partial_i^2$).
    pub fn seeds(x: &DMatrix<f64>, scale: &[f64]) -> Self {
        let (d, b) = x.shape();
        assert_eq!(scale.len(), d, "one seed scale per coordinate");
        let mut grad = DMatrix::zeros(d, d * b);
        for i in 0..d {
            for j in 0..b {
                grad[(i, i * b + j)] = scale[i];
            }
        }
        Self { vars: d, val: x.clone(), grad, lap: DMatrix::zeros(d, b) }
    }

    /// Jets of values that do not depend on the seeds.
    pub fn constant(val: DMatrix<f64>, vars: usize) -> Self {
        let (r, b) = val.shape();
        Self { vars, val, grad: DMatrix::zeros(r, vars * b), lap: DMatrix::zeros(r, b) }
    }

    pub fn rows(&self) -> usize {
        self.val.nrows()
    }
    pub fn walkers(&self) -> usize {
        self.val.ncols()
    }
    /// Number of seed directions of the gradients.
    pub fn vars(&self) -> usize {
        self.vars
    }

    /// Gradient of row `r` of walker `j` along direction `k`.
    #[inline]
    pub fn grad_at(&self, r: usize, k: usize, j: usize) -> f64 {
        self.grad[(r, k * self.walkers() + j)]
    }

    /// The jets of the rows `idx`, in that order.
    pub fn select_rows(&self, idx: &[usize]) -> Self {
        Self { vars: self.vars, val: self.val.select_rows(idx), grad: self.grad.select_rows(idx), lap: self.lap.select_rows(idx) }
    }

    /// Rows `start..start + n`.
    pub fn row_range(&self, start: usize, n: usize) -> Self {
        Self { vars: self.vars, val: self.val.rows(start, n).into_owned(), grad: self.grad.rows(start, n).into_owned(), lap: self.lap.rows(start, n).into_owned() }
    }

    /// Overwrite row `dst[k]` with row `k` of `src`.
    pub fn set_rows(&mut self, dst: &[usize], src: &JetBatch) {
        for (k, &i) in dst.iter().enumerate() {
            self.val.set_row(i, &src.val.row(k));
            self.grad.set_row(i, &src.grad.row(k));
            self.lap.set_row(i, &src.lap.row(k));
        }
    }

    /// $W u + b$ (`w`: `out x rows`; `bias` added to the values only).
    pub fn affine(&self, w: MatRef<'_>, bias: Option<&[f64]>) -> Self {
        let nout = w.rows();
        let mut val = match bias {
            Some(b) => DMatrix::from_fn(nout, self.walkers(), |i, _| b[i]),
            None => DMatrix::zeros(nout, self.walkers()),
        };
        gemm_into(&mut val, 1.0, w, (&self.val).into(), 1.0);
        let grad = matmul(w, (&self.grad).into());
        let lap = matmul(w, (&self.lap).into());
        Self { vars: self.vars, val, grad, lap }
    }

    /// $|\nabla u_r|^2$ for every row and walker (`rows x B`).
    pub fn grad_norm2(&self) -> DMatrix<f64> {
        let (r, b) = self.val.shape();
        let mut g2 = DMatrix::zeros(r, b);
        // Direction k's gradients are the contiguous block k of `grad`, laid out like `g2`.
        for block in self.grad.as_slice().chunks_exact((r * b).max(1)).take(self.vars) {
            for (d, &g) in g2.as_mut_slice().iter_mut().zip(block) {
                *d += g * g;
            }
        }
        g2
    }

    /// Pointwise $f$ by the chain rule: `f(value)` returns $(f, f', f'')$.
    pub fn map(&mut self, f: impl Fn(f64) -> (f64, f64, f64)) {
        self.chain_rule(|v| {
            let (f0, f1, f2) = f(*v);
            *v = f0;
            (f1, f2)
        });
    }

    /// [`JetBatch::map`] for an activation: the values in one (vectorised) pass, then $f'$ and
    /// $f''$ from the outputs.
    pub fn map_activation(&mut self, act: crate::activation::Activation) {
        act.apply_in_place(self.val.as_mut_slice());
        self.chain_rule(|y| (act.derivative_from_output(*y), act.second_derivative_from_output(*y)));
    }

    /// The chain rule of a pointwise function: `slot` gets each value (which it may overwrite
    /// with $f$) and returns $(f', f'')$; gradients are scaled by $f'$, Laplacians become
    /// $f'\Delta u + f''|\nabla u|^2$.
    fn chain_rule(&mut self, mut slot: impl FnMut(&mut f64) -> (f64, f64)) {
        let g2 = self.grad_norm2();
        let (r, b) = self.val.shape();
        let mut d1 = DMatrix::zeros(r, b);
        for (((v, l), &g2), d1) in self.val.as_mut_slice().iter_mut().zip(self.lap.as_mut_slice()).zip(g2.as_slice()).zip(d1.as_mut_slice()) {
            let (f1, f2) = slot(v);
            *l = f1 * *l + f2 * g2;
            *d1 = f1;
        }
        self.scale_grad(&d1);
    }

    /// Multiplies the gradient of row `i`, walker `j`, by `s[(i, j)]` along every direction.
    fn scale_grad(&mut self, s: &DMatrix<f64>) {
        let n = s.len().max(1);
        for block in self.grad.as_mut_slice().chunks_exact_mut(n).take(self.vars) {
            for (g, &sc) in block.iter_mut().zip(s.as_slice()) {
                *g *= sc;
            }
        }
    }

    /// Multiplies row `i` by the constant `c[i]`.
    pub fn scale_rows(&mut self, c: &[f64]) {
        for (i, &ci) in c.iter().enumerate() {
            self.val.row_mut(i).scale_mut(ci);
            self.grad.row_mut(i).scale_mut(ci);
            self.lap.row_mut(i).scale_mut(ci);
        }
    }

    /// The pointwise product $uv$:
    /// $(uv, u\nabla v + v\nabla u, u\Delta v + v\Delta u + 2\nabla u\cdot\nabla v)$.
    pub fn product(&self, other: &JetBatch) -> Self {
        assert_eq!(self.val.shape(), other.val.shape(), "product of jets of different shapes");
        let (r, b) = self.val.shape();
        let mut cross = DMatrix::<f64>::zeros(r, b);
        let mut grad = DMatrix::<f64>::zeros(r, self.grad.ncols());
        for k in 0..self.vars {
            for j in 0..b {
                let c = k * b + j;
                let (gu, gv) = (self.grad.column(c), other.grad.column(c));
                for i in 0..r {
                    let (u, v) = (self.val[(i, j)], other.val[(i, j)]);
                    grad[(i, c)] = u * gv[i] + v * gu[i];
                    cross[(i, j)] += gu[i] * gv[i];
                }
            }
        }
        let val = self.val.component_mul(&other.val);
        let lap = DMatrix::from_fn(r, b, |i, j| self.val[(i, j)] * other.lap[(i, j)] + other.val[(i, j)] * self.lap[(i, j)] + 2.0 * cross[(i, j)]);
        Self { vars: self.vars, val, grad, lap }
    }

    /// `self += other` (same shapes).
    pub fn add_assign(&mut self, other: &JetBatch) {
        self.val += &other.val;
        self.grad += &other.grad;
        self.lap += &other.lap;
    }

    /// The one-row jet $\sum_r u_r$.
    pub fn sum_rows(&self) -> Self {
        let row = |m: &DMatrix<f64>| DMatrix::from_fn(1, m.ncols(), |_, c| m.column(c).sum());
        Self { vars: self.vars, val: row(&self.val), grad: row(&self.grad), lap: row(&self.lap) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jet::Lap;
    use nalgebra::{Const, U1};
    use num_dual::{Derivative, DualNum};

    type J = Lap<f64, Const<3>>;

    /// The jets of walker `j`, row `r`, as the scalar jet.
    fn scalar(b: &JetBatch, r: usize, j: usize) -> (f64, [f64; 3], f64) {
        (b.val[(r, j)], [b.grad_at(r, 0, j), b.grad_at(r, 1, j), b.grad_at(r, 2, j)], b.lap[(r, j)])
    }

    fn close(a: (f64, [f64; 3], f64), x: &J) {
        let g = x.v1.0.map(|v| v.transpose()).unwrap_or_default();
        assert!((a.0 - x.re).abs() < 1e-13 * (1.0 + x.re.abs()), "value {} vs {}", a.0, x.re);
        for k in 0..3 {
            assert!((a.1[k] - g[k]).abs() < 1e-13 * (1.0 + g[k].abs()), "grad {k}: {} vs {}", a.1[k], g[k]);
        }
        assert!((a.2 - x.v2).abs() < 1e-12 * (1.0 + x.v2.abs()), "laplacian {} vs {}", a.2, x.v2);
    }

    /// A small program (affine map, tanh, exp, product, sum) on the batch equals the scalar jet of
    /// the same program, walker by walker.
    #[test]
    fn batch_operations_match_the_scalar_jet() {
        let x = DMatrix::from_fn(3, 4, |i, j| 0.3 * i as f64 - 0.2 * j as f64 + 0.1);
        let scale = [1.0, 0.7, 1.3];
        let w = DMatrix::from_fn(2, 3, |i, j| ((i * 3 + j) as f64 * 0.9).sin());
        let bias = [0.2, -0.4];
        let mut a = JetBatch::seeds(&x, &scale).affine((&w).into(), Some(&bias));
        a.map(|v| {
            let t = v.tanh();
            (t, 1.0 - t * t, -2.0 * t * (1.0 - t * t))
        });
        a.scale_rows(&[1.5, -0.5]);
        let mut e = a.clone();
        e.map(|v| (v.exp(), v.exp(), v.exp()));
        let y = JetBatch::seeds(&x, &scale).select_rows(&[2, 0]);
        let mut p = e.product(&y);
        p.add_assign(&a);
        let s = p.sum_rows();
        for j in 0..4 {
            let xs: Vec<J> = (0..3).map(|i| J::new(x[(i, j)], Derivative::derivative_generic(U1, Const::<3>, i) * scale[i], 0.0)).collect();
            let mut want = Vec::new();
            for r in 0..2 {
                let u = (0..3).fold(J::from(bias[r]), |acc, i| acc + xs[i] * w[(r, i)]);
                let t = u.tanh() * [1.5, -0.5][r];
                let q = t.exp() * xs[[2, 0][r]] + t;
                want.push(q);
            }
            close(scalar(&p, 0, j), &want[0]);
            close(scalar(&p, 1, j), &want[1]);
            close(scalar(&s, 0, j), &(want[0] + want[1]));
        }
    }
}
