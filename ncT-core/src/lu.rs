//! Invertible linear map of configuration space, $y = L U x + b$, with $L$ unit lower triangular
//! and $U$ upper triangular with positive diagonal $e^{s_i}$; $\ln|\det| = \sum_i s_i$. Every
//! invertible matrix with positive determinant and a non-singular LU factorisation is reachable.
//! Starts at the identity. With it a flow represents coupled harmonic systems exactly (rotation
//! and rescaling of normal modes).

use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use nalgebra::SVector;

/// $y = L U x + b$ on $\mathbb R^N$. Parameters: strictly lower $L$ (row-major), strictly upper
/// $U$ (row-major), $s$ (log-diagonal of $U$), $b$.
#[derive(Clone, Debug, Default)]
pub struct LinearBijector<const N: usize>;

impl<const N: usize> LinearBijector<N> {
    pub fn new() -> Self {
        Self
    }
    const TRI: usize = N * (N - 1) / 2;
    fn l_index(i: usize, j: usize) -> usize {
        i * (i - 1) / 2 + j
    }
    fn u_index(i: usize, j: usize) -> usize {
        Self::TRI + i * N - i * (i + 1) / 2 + (j - i - 1)
    }
    fn s_index(i: usize) -> usize {
        2 * Self::TRI + i
    }
    fn b_index(i: usize) -> usize {
        2 * Self::TRI + N + i
    }
}

impl<const N: usize> Parametrised for LinearBijector<N> {
    fn n_params(&self) -> usize {
        N * (N - 1) + 2 * N
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.fill(0.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let t = Self::TRI;
        vec![ParamGroup::new("L", 0..t), ParamGroup::new("U", t..2 * t), ParamGroup::new("log_diag", 2 * t..2 * t + N), ParamGroup::new("shift", 2 * t + N..2 * t + 2 * N)]
    }
}

impl<const N: usize> Bijector<N> for LinearBijector<N> {
    /// Input $x$ and intermediate $u = U x$.
    type Cache<D: Scalar> = (SVector<D, N>, SVector<D, N>);
    fn forward<D: Scalar>(&self, theta: &[f64], x: &SVector<D, N>) -> (SVector<D, N>, D, Self::Cache<D>) {
        let mut u = SVector::<D, N>::from_element(D::zero());
        let mut ld = D::zero();
        for i in 0..N {
            let si = theta[Self::s_index(i)];
            let mut v = x[i] * si.exp();
            for j in i + 1..N {
                v += x[j] * theta[Self::u_index(i, j)];
            }
            u[i] = v;
            ld += D::from(si);
        }
        let mut y = u;
        for i in 0..N {
            let mut v = u[i] + theta[Self::b_index(i)];
            for j in 0..i {
                v += u[j] * theta[Self::l_index(i, j)];
            }
            y[i] = v;
        }
        (y, ld, (*x, u))
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &SVector<D, N>) -> (SVector<D, N>, D) {
        let mut u = SVector::<D, N>::from_element(D::zero());
        for i in 0..N {
            let mut v = y[i] - theta[Self::b_index(i)];
            for j in 0..i {
                v -= u[j] * theta[Self::l_index(i, j)];
            }
            u[i] = v;
        }
        let mut x = u;
        let mut ld = D::zero();
        for i in (0..N).rev() {
            let si = theta[Self::s_index(i)];
            let mut v = u[i];
            for j in i + 1..N {
                v -= x[j] * theta[Self::u_index(i, j)];
            }
            x[i] = v / si.exp();
            ld -= D::from(si);
        }
        (x, ld)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &SVector<D, N>, ldbar: D, g: &mut [D]) -> SVector<D, N> {
        let (x, u) = cache;
        let mut ubar = *ybar;
        for i in 0..N {
            g[Self::b_index(i)] += ybar[i];
            for j in 0..i {
                g[Self::l_index(i, j)] += ybar[i] * u[j];
                ubar[j] += ybar[i] * theta[Self::l_index(i, j)];
            }
        }
        let mut xbar = SVector::<D, N>::from_element(D::zero());
        for i in 0..N {
            let e = theta[Self::s_index(i)].exp();
            g[Self::s_index(i)] += ubar[i] * x[i] * e + ldbar;
            xbar[i] += ubar[i] * e;
            for j in i + 1..N {
                g[Self::u_index(i, j)] += ubar[i] * x[j];
                xbar[j] += ubar[i] * theta[Self::u_index(i, j)];
            }
        }
        xbar
    }
}
