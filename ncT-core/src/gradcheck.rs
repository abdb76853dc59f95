//! Gradient checker: compares a layer's hand-written VJP with central finite differences and with
//! num-dual forward mode. Use it for every custom layer:
//!
//! ```
//! use nct_core::{check_gradients, AsBijector, GradCheckConfig, AffineCoupling, Activation, Const, Dyn, Parametrised};
//! // Compile-time dimension ...
//! let layer = AffineCoupling::new(Const::<4>, vec![0, 2], &[8], Activation::Tanh).unwrap();
//! let theta: Vec<f64> = (0..layer.n_params()).map(|k| 0.3 * (k as f64).sin()).collect();
//! let report = check_gradients(&AsBijector::new(&layer), &theta, &GradCheckConfig::default());
//! assert!(report.passed(1e-6, 1e-10), "{report}");
//! // ... or one known only at run time: the same code path.
//! let layer = AffineCoupling::new(Dyn(4), vec![0, 2], &[8], Activation::Tanh).unwrap();
//! let report = check_gradients(&AsBijector::new(&layer), &theta, &GradCheckConfig::default());
//! assert!(report.passed(1e-6, 1e-10), "{report}");
//! ```
//!
//! With $L = \bar y\cdot y + \bar\ell \ln|\det J|$ at random $x, \bar y, \bar\ell$ and a random
//! direction $v$, it reports the relative (infinity-norm) errors of
//! * $\nabla_\theta L$ (VJP) vs central differences in $\theta$;
//! * $\nabla_x L$ (VJP) vs forward mode (one `Dual64` pass per input) and vs central differences;
//! * the mixed term $\nabla_\theta (v\cdot\nabla_x L)$ (VJP run on `Dual64` inputs) vs central
//!   differences of $v \cdot \nabla_x L$ in $\theta$;
//! * the Hessian-vector product $\nabla_x(v\cdot\nabla_x L)$ (same pass) vs `HyperDual64` forward mode.
//!
//! Parameters are plain `f64` by design (weights are never dual numbers), so the
//! $\theta$-derivatives are checked by differences and the input derivatives, which are exact in
//! both modes, against forward mode.

use crate::layer::{Bijector, Layer, PhasePoint, SymplecticLayer};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};
use num_dual::{Dual64, HyperDual64};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::fmt;

/// A differentiable map seen as flat vectors: what the checker needs.
pub trait Checkable: Send + Sync {
    fn n_params(&self) -> usize;
    fn n_in(&self) -> usize;
    fn n_out(&self) -> usize;
    /// Output and log-det (zero where there is none).
    fn eval<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, D);
    /// Accumulates the parameter gradient into `g`, returns the input cotangent.
    fn eval_vjp<D: Scalar>(&self, theta: &[f64], x: &[D], ybar: &[D], ldbar: D, g: &mut [D]) -> Vec<D>;
}

/// View a [`Bijector`] as [`Checkable`].
pub struct AsBijector<'a, B, N: Size>(pub &'a B, pub std::marker::PhantomData<N>);
/// View a [`SymplecticLayer`] as [`Checkable`] (input and output are $(q, p)$ concatenated).
pub struct AsSymplectic<'a, L, N: Size>(pub &'a L, pub std::marker::PhantomData<N>);
/// View a [`Layer`] as [`Checkable`].
pub struct AsLayer<'a, L, I: Size, O: Size>(pub &'a L, pub std::marker::PhantomData<(I, O)>);

impl<'a, L, N: Size> AsBijector<'a, L, N> {
    pub fn new(l: &'a L) -> Self {
        Self(l, std::marker::PhantomData)
    }
}
impl<'a, L, N: Size> AsSymplectic<'a, L, N> {
    pub fn new(l: &'a L) -> Self {
        Self(l, std::marker::PhantomData)
    }
}
impl<'a, L, I: Size, O: Size> AsLayer<'a, L, I, O> {
    pub fn new(l: &'a L) -> Self {
        Self(l, std::marker::PhantomData)
    }
}

impl<B: Bijector<N>, N: Size> Checkable for AsBijector<'_, B, N> {
    fn n_params(&self) -> usize {
        self.0.n_params()
    }
    fn n_in(&self) -> usize {
        self.0.dim().value()
    }
    fn n_out(&self) -> usize {
        self.0.dim().value()
    }
    fn eval<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, D) {
        let (y, ld, _) = self.0.forward(theta, &Vector::from_fn(self.0.dim(), |i| x[i]));
        (y.as_slice().to_vec(), ld)
    }
    fn eval_vjp<D: Scalar>(&self, theta: &[f64], x: &[D], ybar: &[D], ldbar: D, g: &mut [D]) -> Vec<D> {
        let (_, _, c) = self.0.forward(theta, &Vector::from_fn(self.0.dim(), |i| x[i]));
        self.0.vjp(theta, &c, &Vector::from_fn(self.0.dim(), |i| ybar[i]), ldbar, g).as_slice().to_vec()
    }
}

impl<L: SymplecticLayer<N>, N: Size> Checkable for AsSymplectic<'_, L, N> {
    fn n_params(&self) -> usize {
        self.0.n_params()
    }
    fn n_in(&self) -> usize {
        2 * self.0.dim().value()
    }
    fn n_out(&self) -> usize {
        2 * self.0.dim().value()
    }
    fn eval<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, D) {
        let (y, _) = self.0.forward(theta, &PhasePoint::from_slice(self.0.dim(), x));
        (y.to_vec(), D::zero())
    }
    fn eval_vjp<D: Scalar>(&self, theta: &[f64], x: &[D], ybar: &[D], _ldbar: D, g: &mut [D]) -> Vec<D> {
        let (_, c) = self.0.forward(theta, &PhasePoint::from_slice(self.0.dim(), x));
        self.0.vjp(theta, &c, &PhasePoint::from_slice(self.0.dim(), ybar), g).to_vec()
    }
}

impl<L: Layer<I, O>, I: Size, O: Size> Checkable for AsLayer<'_, L, I, O> {
    fn n_params(&self) -> usize {
        self.0.n_params()
    }
    fn n_in(&self) -> usize {
        self.0.input_dim().value()
    }
    fn n_out(&self) -> usize {
        self.0.output_dim().value()
    }
    fn eval<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, D) {
        let (y, _) = self.0.forward(theta, &Vector::from_fn(self.0.input_dim(), |i| x[i]));
        (y.as_slice().to_vec(), D::zero())
    }
    fn eval_vjp<D: Scalar>(&self, theta: &[f64], x: &[D], ybar: &[D], _ldbar: D, g: &mut [D]) -> Vec<D> {
        let (_, c) = self.0.forward(theta, &Vector::from_fn(self.0.input_dim(), |i| x[i]));
        self.0.vjp(theta, &c, &Vector::from_fn(self.0.output_dim(), |i| ybar[i]), g).as_slice().to_vec()
    }
}

/// Settings of [`check_gradients`].
#[derive(Clone, Debug)]
pub struct GradCheckConfig {
    /// Seed of the random point, cotangents and direction.
    pub seed: u64,
    /// Standard deviation of the random input point.
    pub input_scale: f64,
    /// Central-difference step.
    pub step: f64,
    /// At most this many parameters are checked by differences (a random subset beyond that).
    pub max_params: usize,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        Self { seed: 7, input_scale: 1.0, step: 1e-5, max_params: 256 }
    }
}

/// Worst relative errors (infinity norm over the checked entries).
#[derive(Clone, Debug, Default)]
pub struct GradCheckReport {
    pub theta_vs_fd: f64,
    pub input_vs_forward: f64,
    pub input_vs_fd: f64,
    pub mixed_theta_vs_fd: f64,
    pub mixed_input_vs_forward: f64,
    /// Parameters checked by differences.
    pub params_checked: usize,
}

impl GradCheckReport {
    /// Errors against differences below `fd_tol` and against forward mode below `exact_tol`.
    pub fn passed(&self, fd_tol: f64, exact_tol: f64) -> bool {
        let fd = [self.theta_vs_fd, self.input_vs_fd, self.mixed_theta_vs_fd];
        let ex = [self.input_vs_forward, self.mixed_input_vs_forward];
        fd.iter().all(|e| e.is_finite() && *e < fd_tol) && ex.iter().all(|e| e.is_finite() && *e < exact_tol)
    }
    pub fn worst_fd(&self) -> f64 {
        self.theta_vs_fd.max(self.input_vs_fd).max(self.mixed_theta_vs_fd)
    }
    pub fn worst_exact(&self) -> f64 {
        self.input_vs_forward.max(self.mixed_input_vs_forward)
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradient check ({} params by differences): dtheta vs FD {:.2e}; dx vs forward {:.2e}, vs FD {:.2e}; mixed dtheta(v.dx) vs FD {:.2e}; Hv vs hyper-dual {:.2e}",
            self.params_checked, self.theta_vs_fd, self.input_vs_forward, self.input_vs_fd, self.mixed_theta_vs_fd, self.mixed_input_vs_forward
        )
    }
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = a.iter().chain(b).map(|v| v.abs()).fold(1e-10, f64::max);
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    diff / scale
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Check the VJP of `f` at parameters `theta` (see the module docs for what is compared).
pub fn check_gradients<C: Checkable>(f: &C, theta: &[f64], cfg: &GradCheckConfig) -> GradCheckReport {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut normal = |n: usize, s: f64| -> Vec<f64> {
        (0..n).map(|_| s * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)).collect()
    };
    let (ni, no, np) = (f.n_in(), f.n_out(), f.n_params());
    let x = normal(ni, cfg.input_scale);
    let ybar = normal(no, 1.0);
    let ldbar = normal(1, 1.0)[0];
    let v = normal(ni, 1.0);
    let loss = |th: &[f64], xx: &[f64]| -> f64 {
        let (y, ld) = f.eval(th, xx);
        dot(&y, &ybar) + ldbar * ld
    };

    let mut g = vec![0.0; np];
    let xbar = f.eval_vjp(theta, &x, &ybar, ldbar, &mut g);

    // Parameters checked by differences.
    let idx: Vec<usize> = if np <= cfg.max_params {
        (0..np).collect()
    } else {
        let mut s: Vec<usize> = (0..cfg.max_params).map(|_| rng.random_range(0..np)).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let h = cfg.step;
    let mut th = theta.to_vec();
    let mut fd_theta = Vec::with_capacity(idx.len());
    for &k in &idx {
        let t0 = th[k];
        th[k] = t0 + h;
        let lp = loss(&th, &x);
        th[k] = t0 - h;
        let lm = loss(&th, &x);
        th[k] = t0;
        fd_theta.push((lp - lm) / (2.0 * h));
    }
    let g_sub: Vec<f64> = idx.iter().map(|&k| g[k]).collect();

    // Input cotangent: forward mode and differences.
    let mut fwd_x = Vec::with_capacity(ni);
    let mut fd_x = Vec::with_capacity(ni);
    for i in 0..ni {
        let xd: Vec<Dual64> = (0..ni).map(|j| Dual64::new(x[j], if i == j { 1.0 } else { 0.0 })).collect();
        let (y, ld) = f.eval(theta, &xd);
        fwd_x.push(y.iter().zip(&ybar).map(|(a, b)| a.eps * b).sum::<f64>() + ldbar * ld.eps);
        let mut xp = x.clone();
        xp[i] += h;
        let lp = loss(theta, &xp);
        xp[i] -= 2.0 * h;
        let lm = loss(theta, &xp);
        fd_x.push((lp - lm) / (2.0 * h));
    }

    // Mixed terms from one forward-over-reverse pass.
    let xe: Vec<Dual64> = x.iter().zip(&v).map(|(&a, &b)| Dual64::new(a, b)).collect();
    let ybe: Vec<Dual64> = ybar.iter().map(|&b| Dual64::from(b)).collect();
    let mut ge = vec![Dual64::from(0.0); np];
    let xbar_e = f.eval_vjp(theta, &xe, &ybe, Dual64::from(ldbar), &mut ge);
    let mixed_theta: Vec<f64> = idx.iter().map(|&k| ge[k].eps).collect();
    let hv: Vec<f64> = xbar_e.iter().map(|d| d.eps).collect();
    let rev_x: Vec<f64> = xbar_e.iter().map(|d| d.re).collect();
    debug_assert!(rel_err(&rev_x, &xbar) < 1e-12);

    let vdx = |t: &[f64]| -> f64 {
        let mut gg = vec![0.0; np];
        dot(&f.eval_vjp(t, &x, &ybar, ldbar, &mut gg), &v)
    };
    let mut fd_mixed = Vec::with_capacity(idx.len());
    for &k in &idx {
        let t0 = th[k];
        th[k] = t0 + h;
        let lp = vdx(&th);
        th[k] = t0 - h;
        let lm = vdx(&th);
        th[k] = t0;
        fd_mixed.push((lp - lm) / (2.0 * h));
    }

    let mut hv_fwd = Vec::with_capacity(ni);
    for i in 0..ni {
        let xh: Vec<HyperDual64> = (0..ni).map(|j| HyperDual64::new(x[j], if i == j { 1.0 } else { 0.0 }, v[j], 0.0)).collect();
        let (y, ld) = f.eval(theta, &xh);
        hv_fwd.push(y.iter().zip(&ybar).map(|(a, b)| a.eps1eps2 * b).sum::<f64>() + ldbar * ld.eps1eps2);
    }

    GradCheckReport {
        theta_vs_fd: rel_err(&g_sub, &fd_theta),
        input_vs_forward: rel_err(&xbar, &fwd_x),
        input_vs_fd: rel_err(&xbar, &fd_x),
        mixed_theta_vs_fd: rel_err(&mixed_theta, &fd_mixed),
        mixed_input_vs_forward: rel_err(&hv, &hv_fwd),
        params_checked: idx.len(),
    }
}

/// [`check_gradients`] for a bijector.
pub fn check_bijector<B: Bijector<N>, N: Size>(b: &B, theta: &[f64], cfg: &GradCheckConfig) -> GradCheckReport {
    check_gradients(&AsBijector::<B, N>(b, std::marker::PhantomData), theta, cfg)
}

/// [`check_gradients`] for a symplectic layer.
pub fn check_symplectic<L: SymplecticLayer<N>, N: Size>(l: &L, theta: &[f64], cfg: &GradCheckConfig) -> GradCheckReport {
    check_gradients(&AsSymplectic::<L, N>(l, std::marker::PhantomData), theta, cfg)
}
