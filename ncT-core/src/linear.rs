//! Exactly symplectic linear layers.
//!
//! [`LinearSymplectic`] is a product of unit-triangular symplectic shears
//! $$ \begin{pmatrix} I & 0 \\ S_1 & I \end{pmatrix}, \quad
//!    \begin{pmatrix} I & S_2 \\ 0 & I \end{pmatrix}, \dots \qquad S_k = S_k^T, $$
//! alternating lower and upper. Each factor is symplectic in exact arithmetic and invertible by a
//! subtraction, so the product is symplectic to rounding. Every symplectic matrix is a product of at
//! most five such factors (Jin, Tang, Xiao, Zhang, "Unit triangular factorization of the matrix
//! symplectic group", SIAM J. Matrix Anal. Appl. 41 (2020)), so five shears (the default) span all
//! of $Sp(2N)$ near the identity and beyond.
//!
//! [`SymplecticScaling`] maps $q_k \to e^{a_k} q_k$, $p_k \to e^{-a_k} p_k$.

use crate::layer::{PhasePoint, SymplecticLayer};
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};
use rand_distr::{Distribution, StandardNormal};

/// Product of symmetric shears, alternately acting on $p$ (lower) and on $q$ (upper).
#[derive(Clone, Debug)]
pub struct LinearSymplectic<N: Size> {
    dim: N,
    shears: usize,
    init_scale: f64,
    pairs: Vec<(usize, usize)>,
}

impl<N: Size> LinearSymplectic<N> {
    /// Five shears, initialised at the identity.
    pub fn new(dim: N) -> Self {
        Self::with_shears(dim, 5)
    }
    pub fn with_shears(dim: N, shears: usize) -> Self {
        let n = dim.value();
        let pairs = (0..n).flat_map(|i| (i..n).map(move |j| (i, j))).collect();
        Self { dim, shears, init_scale: 0.0, pairs }
    }
    /// Initialise the shear entries as `scale * N(0,1)` instead of zero.
    pub fn with_init_scale(mut self, scale: f64) -> Self {
        self.init_scale = scale;
        self
    }
    pub fn shears(&self) -> usize {
        self.shears
    }
    fn per_shear(&self) -> usize {
        self.pairs.len()
    }
    /// $y = S x$ for the packed symmetric matrix $S$.
    fn sym_mul<D: Scalar>(&self, s: &[f64], x: &Vector<D, N>) -> Vector<D, N> {
        let mut y = Vector::<D, N>::from_element(self.dim, D::zero());
        for (&(i, j), &v) in self.pairs.iter().zip(s) {
            y[i] += x[j] * v;
            if i != j {
                y[j] += x[i] * v;
            }
        }
        y
    }
    /// $\partial_S (a \cdot S b)$ accumulated into packed `g`.
    fn sym_grad<D: Scalar>(&self, a: &Vector<D, N>, b: &Vector<D, N>, g: &mut [D]) {
        for (&(i, j), gk) in self.pairs.iter().zip(g.iter_mut()) {
            if i == j {
                *gk += a[i] * b[i];
            } else {
                *gk += a[i] * b[j] + a[j] * b[i];
            }
        }
    }
    fn shear<'a>(&self, theta: &'a [f64], k: usize) -> &'a [f64] {
        &theta[k * self.per_shear()..(k + 1) * self.per_shear()]
    }
}

impl<const K: usize> Default for LinearSymplectic<crate::dim::Const<K>> {
    fn default() -> Self {
        Self::new(crate::dim::Const)
    }
}

impl<N: Size> Parametrised for LinearSymplectic<N> {
    fn n_params(&self) -> usize {
        self.shears * self.per_shear()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        for v in theta.iter_mut() {
            let z: f64 = StandardNormal.sample(rng);
            *v = self.init_scale * z;
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        (0..self.shears).map(|k| ParamGroup::new(format!("S{k}"), k * self.per_shear()..(k + 1) * self.per_shear())).collect()
    }
}

impl<N: Size> SymplecticLayer<N> for LinearSymplectic<N> {
    /// Input of every shear.
    type Cache<D: Scalar> = Vec<PhasePoint<D, N>>;
    fn dim(&self) -> N {
        self.dim
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::Cache<D>) {
        let mut y = x.clone();
        let mut cache = Vec::with_capacity(self.shears);
        for k in 0..self.shears {
            cache.push(y.clone());
            let s = self.shear(theta, k);
            if k % 2 == 0 {
                y.p += self.sym_mul(s, &y.q);
            } else {
                y.q += self.sym_mul(s, &y.p);
            }
        }
        (y, cache)
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let mut x = y.clone();
        for k in (0..self.shears).rev() {
            let s = self.shear(theta, k);
            if k % 2 == 0 {
                x.p -= self.sym_mul(s, &x.q);
            } else {
                x.q -= self.sym_mul(s, &x.p);
            }
        }
        x
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let mut bar = ybar.clone();
        let m = self.per_shear();
        for k in (0..self.shears).rev() {
            let s = self.shear(theta, k);
            let x = &cache[k];
            let gk = &mut g[k * m..(k + 1) * m];
            if k % 2 == 0 {
                // p' = p + S q
                self.sym_grad(&bar.p, &x.q, gk);
                bar.q += self.sym_mul(s, &bar.p);
            } else {
                // q' = q + S p
                self.sym_grad(&bar.q, &x.p, gk);
                bar.p += self.sym_mul(s, &bar.q);
            }
        }
        bar
    }
}

/// Canonical scaling $q_k \to e^{a_k} q_k$, $p_k \to e^{-a_k} p_k$ (parameters $a_k$, zero at
/// initialisation).
#[derive(Clone, Debug)]
pub struct SymplecticScaling<N: Size> {
    dim: N,
}

impl<N: Size> SymplecticScaling<N> {
    pub fn new(dim: N) -> Self {
        Self { dim }
    }
}

impl<const K: usize> Default for SymplecticScaling<crate::dim::Const<K>> {
    fn default() -> Self {
        Self::new(crate::dim::Const)
    }
}

impl<N: Size> Parametrised for SymplecticScaling<N> {
    fn n_params(&self) -> usize {
        self.dim.value()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.fill(0.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("log_scale", 0..self.dim.value())]
    }
}

impl<N: Size> SymplecticLayer<N> for SymplecticScaling<N> {
    type Cache<D: Scalar> = PhasePoint<D, N>;
    fn dim(&self) -> N {
        self.dim
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::Cache<D>) {
        let mut y = x.clone();
        for k in 0..self.dim.value() {
            let e = theta[k].exp();
            y.q[k] = x.q[k] * e;
            y.p[k] = x.p[k] / e;
        }
        (y.clone(), y)
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        let mut x = y.clone();
        for k in 0..self.dim.value() {
            let e = theta[k].exp();
            x.q[k] = y.q[k] / e;
            x.p[k] = y.p[k] * e;
        }
        x
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], out: &Self::Cache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        let mut bar = ybar.clone();
        for k in 0..self.dim.value() {
            let e = theta[k].exp();
            g[k] += ybar.q[k] * out.q[k] - ybar.p[k] * out.p[k];
            bar.q[k] = ybar.q[k] * e;
            bar.p[k] = ybar.p[k] / e;
        }
        bar
    }
}
