//! Invertible linear map of configuration space, $y = L U x + b$, with $L$ unit lower triangular
//! and $U$ upper triangular with positive diagonal $e^{s_i}$; $\ln|\det| = \sum_i s_i$. Every
//! invertible matrix with positive determinant and a non-singular LU factorisation is reachable.
//! Starts at the identity. With it a flow represents coupled harmonic systems exactly (rotation
//! and rescaling of normal modes).

use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};

/// $y = L U x + b$ on $\mathbb R^N$. Parameters: strictly lower $L$ (row-major), strictly upper
/// $U$ (row-major), $s$ (log-diagonal of $U$), $b$.
#[derive(Clone, Debug)]
pub struct LinearBijector<N: Size> {
    dim: N,
}

impl<const K: usize> Default for LinearBijector<crate::dim::Const<K>> {
    fn default() -> Self {
        Self::new(crate::dim::Const)
    }
}

impl<N: Size> LinearBijector<N> {
    pub fn new(dim: N) -> Self {
        Self { dim }
    }
    fn n(&self) -> usize {
        self.dim.value()
    }
    fn tri(&self) -> usize {
        self.n() * (self.n().max(1) - 1) / 2
    }
    fn l_index(&self, i: usize, j: usize) -> usize {
        i * (i - 1) / 2 + j
    }
    fn u_index(&self, i: usize, j: usize) -> usize {
        self.tri() + i * self.n() - i * (i + 1) / 2 + (j - i - 1)
    }
    fn s_index(&self, i: usize) -> usize {
        2 * self.tri() + i
    }
    fn b_index(&self, i: usize) -> usize {
        2 * self.tri() + self.n() + i
    }
    /// The unit lower factor $L$ and the upper factor $U$ (diagonal $e^{s_i}$) as dense matrices.
    fn factors(&self, theta: &[f64]) -> (nalgebra::DMatrix<f64>, nalgebra::DMatrix<f64>) {
        let n = self.n();
        let lower = nalgebra::DMatrix::from_fn(n, n, |i, j| match i.cmp(&j) {
            std::cmp::Ordering::Equal => 1.0,
            std::cmp::Ordering::Greater => theta[self.l_index(i, j)],
            std::cmp::Ordering::Less => 0.0,
        });
        let upper = nalgebra::DMatrix::from_fn(n, n, |i, j| match i.cmp(&j) {
            std::cmp::Ordering::Equal => theta[self.s_index(i)].exp(),
            std::cmp::Ordering::Less => theta[self.u_index(i, j)],
            std::cmp::Ordering::Greater => 0.0,
        });
        (lower, upper)
    }
}

impl<N: Size> Parametrised for LinearBijector<N> {
    fn n_params(&self) -> usize {
        2 * self.tri() + 2 * self.n()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.fill(0.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let (t, n) = (self.tri(), self.n());
        vec![ParamGroup::new("L", 0..t), ParamGroup::new("U", t..2 * t), ParamGroup::new("log_diag", 2 * t..2 * t + n), ParamGroup::new("shift", 2 * t + n..2 * t + 2 * n)]
    }
}

impl<N: Size> Bijector<N> for LinearBijector<N> {
    /// Input $x$ and intermediate $u = U x$.
    type Cache<D: Scalar> = (Vector<D, N>, Vector<D, N>);
    fn dim(&self) -> N {
        self.dim
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, Self::Cache<D>) {
        let mut u = Vector::<D, N>::from_element(self.dim, D::zero());
        let mut ld = D::zero();
        for i in 0..self.n() {
            let si = theta[self.s_index(i)];
            let mut v = x[i] * si.exp();
            for j in i + 1..self.n() {
                v += x[j] * theta[self.u_index(i, j)];
            }
            u[i] = v;
            ld += D::from(si);
        }
        let mut y = u.clone();
        for i in 0..self.n() {
            let mut v = u[i] + theta[self.b_index(i)];
            for j in 0..i {
                v += u[j] * theta[self.l_index(i, j)];
            }
            y[i] = v;
        }
        (y, ld, (x.clone(), u))
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D) {
        let mut u = Vector::<D, N>::from_element(self.dim, D::zero());
        for i in 0..self.n() {
            let mut v = y[i] - theta[self.b_index(i)];
            for j in 0..i {
                v -= u[j] * theta[self.l_index(i, j)];
            }
            u[i] = v;
        }
        let mut x = u.clone();
        let mut ld = D::zero();
        for i in (0..self.n()).rev() {
            let si = theta[self.s_index(i)];
            let mut v = u[i];
            for j in i + 1..self.n() {
                v -= x[j] * theta[self.u_index(i, j)];
            }
            x[i] = v / si.exp();
            ld -= D::from(si);
        }
        (x, ld)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, N>, ldbar: D, g: &mut [D]) -> Vector<D, N> {
        let (x, u) = cache;
        let mut ubar = ybar.clone();
        for i in 0..self.n() {
            g[self.b_index(i)] += ybar[i];
            for j in 0..i {
                g[self.l_index(i, j)] += ybar[i] * u[j];
                ubar[j] += ybar[i] * theta[self.l_index(i, j)];
            }
        }
        let mut xbar = Vector::<D, N>::from_element(self.dim, D::zero());
        for i in 0..self.n() {
            let e = theta[self.s_index(i)].exp();
            g[self.s_index(i)] += ubar[i] * x[i] * e + ldbar;
            xbar[i] += ubar[i] * e;
            for j in i + 1..self.n() {
                g[self.u_index(i, j)] += ubar[i] * x[j];
                xbar[j] += ubar[i] * theta[self.u_index(i, j)];
            }
        }
        xbar
    }
    /// $y = L U x + b$ on jets: one dense $D \times D$ matrix $LU$ applied as GEMMs; the
    /// log-det $\sum_i s_i$ is constant.
    fn forward_jets(&self, theta: &[f64], x: &crate::jet_batch::JetBatch) -> Option<(crate::jet_batch::JetBatch, crate::jet_batch::JetBatch)> {
        let n = self.n();
        let (lower, upper) = self.factors(theta);
        let a = lower * upper;
        let bias: Vec<f64> = (0..n).map(|i| self.b_index(i)).map(|k| theta[k]).collect();
        let y = x.affine((&a).into(), Some(&bias));
        let ld: f64 = (0..n).map(|i| theta[self.s_index(i)]).sum();
        Some((y, crate::jet_batch::JetBatch::constant(nalgebra::DMatrix::from_element(1, x.walkers(), ld), x.vars())))
    }
    fn forward_tape(&self, theta: &[f64], x: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>, crate::layer::BatchTape)> {
        let (lower, upper) = self.factors(theta);
        let u = &upper * x;
        let mut y = &lower * &u;
        for i in 0..self.n() {
            y.row_mut(i).add_scalar_mut(theta[self.b_index(i)]);
        }
        let ld: f64 = (0..self.n()).map(|i| theta[self.s_index(i)]).sum();
        Some((y, vec![ld; x.ncols()], crate::layer::BatchTape::new((x.clone(), u))))
    }
    /// Column by column with the substitutions of [`Bijector::inverse`] (bitwise the same; $D^2$
    /// work per column, negligible next to the couplings).
    fn inverse_batch(&self, theta: &[f64], y: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>)> {
        let mut x = y.clone();
        let mut ld = vec![0.0; y.ncols()];
        for j in 0..y.ncols() {
            let (xj, lj) = self.inverse(theta, &Vector::<f64, N>::from_fn(self.dim, |i| y[(i, j)]));
            x.column_mut(j).iter_mut().zip(xj.iter()).for_each(|(a, b)| *a = *b);
            ld[j] = lj;
        }
        Some((x, ld))
    }
    fn vjp_tape(&self, theta: &[f64], tape: &crate::layer::BatchTape, ybar: &nalgebra::DMatrix<f64>, ldbar: &[f64], g: &mut [f64]) -> nalgebra::DMatrix<f64> {
        let (x, u): &(nalgebra::DMatrix<f64>, nalgebra::DMatrix<f64>) = tape.get();
        let n = self.n();
        let (lower, upper) = self.factors(theta);
        let gl = ybar * u.transpose();
        let ubar = lower.transpose() * ybar;
        let gu = &ubar * x.transpose();
        let ldsum: f64 = ldbar.iter().sum();
        for i in 0..n {
            g[self.b_index(i)] += ybar.row(i).sum();
            g[self.s_index(i)] += gu[(i, i)] * upper[(i, i)] + ldsum;
            for j in 0..i {
                g[self.l_index(i, j)] += gl[(i, j)];
            }
            for j in i + 1..n {
                g[self.u_index(i, j)] += gu[(i, j)];
            }
        }
        upper.transpose() * ubar
    }
}
