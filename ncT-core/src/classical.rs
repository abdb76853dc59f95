//! The classical neural canonical transformation (Li, Dong, Zhang & Wang, "Neural Canonical
//! Transformation with Symplectic Flows", Phys. Rev. X 10, 021020 (2020)).
//!
//! A symplectic flow $x = T_\theta(z)$ maps latent phase space, where the model density is that of
//! independent integrable modes (a [`Latent`]: harmonic [`LatentOscillators`] by default, or
//! [`AnharmonicOscillators`](crate::latent::AnharmonicOscillators)), to physical phase space. Because $T$ is symplectic,
//! $\ln q(x) = \ln p(T^{-1}(x))$ with no Jacobian term.
//!
//! * Variational (reverse KL): $F_{var} = \mathbb E_z[H(T(z)) + \beta^{-1}\ln p(z)] \ge F$,
//!   reparameterised gradients: $\nabla_x H$ from num-dual is the cotangent of the flow's VJP.
//! * Maximum likelihood: $-\mathbb E_{x\sim data}\ln q(x)$, through the inverse map; its VJP is
//!   exact for a symplectic map from one forward-mode pass, since $J^{-T} = \Omega J \Omega^T$.

use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::batched::{BatchedSymplectic, PhaseBatch};
use crate::hamiltonian::Hamiltonian;
use crate::latent::{Latent, LatentOscillators};
use crate::layer::{PhasePoint, SymplecticLayer};
use crate::params::{ParamGroup, Parametrised, nest_groups};
use crate::dim::{Size, Vector};
use nalgebra::DMatrix;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use num_dual::Dual64;

/// $\Omega (a, b) = (b, -a)$.
fn omega_apply<N: Size>(x: &PhasePoint<f64, N>) -> PhasePoint<f64, N> {
    PhasePoint::new(x.p.clone(), -&x.q)
}
/// $\Omega^T (a, b) = (-b, a)$.
fn omega_t_apply<N: Size>(x: &PhasePoint<f64, N>) -> PhasePoint<f64, N> {
    PhasePoint::new(-&x.p, x.q.clone())
}

/// Jacobian-vector product $J(z) v$ of a symplectic layer (one `Dual64` pass).
pub fn symplectic_jvp<L: SymplecticLayer<N>, N: Size>(l: &L, theta: &[f64], z: &PhasePoint<f64, N>, v: &PhasePoint<f64, N>) -> (PhasePoint<f64, N>, PhasePoint<f64, N>) {
    let zd = PhasePoint { q: z.q.zip_map(&v.q, Dual64::new), p: z.p.zip_map(&v.p, Dual64::new) };
    let (y, _) = l.forward(theta, &zd);
    (y.map(|d| d.re), y.map(|d| d.eps))
}

/// Reverse pass through the *inverse* of a symplectic layer. With $z = T^{-1}(x)$ and a cotangent
/// $\bar z$, returns $\bar x = J^{-T}\bar z = \Omega J \Omega^T \bar z$ and accumulates
/// $\partial_\theta (\bar z \cdot T^{-1}(x)) = -(\partial_\theta T)^T \bar x$ into `g`.
pub fn symplectic_inverse_vjp<L: SymplecticLayer<N>, N: Size>(l: &L, theta: &[f64], z: &PhasePoint<f64, N>, zbar: &PhasePoint<f64, N>, g: &mut [f64]) -> PhasePoint<f64, N> {
    let (_, jw) = symplectic_jvp(l, theta, z, &omega_t_apply(zbar));
    let xbar = omega_apply(&jw);
    let (_, cache) = l.forward(theta, z);
    let neg = xbar.map(|v| -v);
    l.vjp(theta, &cache, &neg, g);
    xbar
}

/// Free-energy estimates from independent samples of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct FreeEnergy {
    /// Variational free energy $\mathbb E_q[H + \beta^{-1}\ln q]$ (an upper bound of $F$).
    pub f_var: f64,
    /// Its standard error.
    pub f_var_err: f64,
    /// Importance-sampled $F_{IS} = -\beta^{-1}\ln \overline{e^{-\beta H - \ln q}}$.
    pub f_is: f64,
    /// Effective sample size $(\sum w)^2 / \sum w^2$ of the importance weights.
    pub ess: f64,
    pub samples: usize,
}

/// Per-sample output of a variational step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VariationalSample {
    /// $H(x) + \beta^{-1}\ln q(x)$.
    pub loss: f64,
    pub energy: f64,
    pub log_q: f64,
}

/// A symplectic flow on top of a latent distribution of integrable modes (harmonic oscillators
/// unless `B` says otherwise). Parameters: the flow's, then the latent's ($\ln\omega$ first).
#[derive(Clone, Debug)]
pub struct ClassicalNct<F, N: Size, B = LatentOscillators<N>> {
    pub flow: F,
    pub base: B,
    /// Gradient estimator of [`ClassicalNct::variational_batch`]: `false` (default) the
    /// reparameterised gradient of $H(T(z)) + \beta^{-1}\ln p(z)$; `true` the path derivative
    /// ("sticking the landing", Roeder, Wu & Duvenaud, NeurIPS 2017), whose cotangent
    /// $\nabla_x H + \beta^{-1}\nabla_x \ln q$ vanishes per sample as the model becomes exact.
    pub path_gradient: bool,
    _dim: std::marker::PhantomData<N>,
}

impl<F: SymplecticLayer<N>, N: Size, B: Latent<N>> ClassicalNct<F, N, B> {
    /// Binds `flow` to `base`. Compile-time dimensions are checked by the compiler; runtime ones
    /// here.
    ///
    /// # Panics
    /// If the flow and the latent distribution have different runtime dimensions (use
    /// [`ClassicalNct::try_new`] to get an error instead).
    pub fn new(flow: F, base: B) -> Self {
        Self::try_new(flow, base).unwrap_or_else(|e| panic!("{e}"))
    }
    /// [`ClassicalNct::new`] with an error for mismatched runtime dimensions.
    pub fn try_new(flow: F, base: B) -> Result<Self, crate::error::ConfigError> {
        if flow.dim() != base.dim() {
            return Err(crate::error::ConfigError::Value { what: "latent dimension", value: format!("{} (flow has {})", base.dim().value(), flow.dim().value()), allowed: "the flow's number of degrees of freedom" });
        }
        Ok(Self { flow, base, path_gradient: false, _dim: std::marker::PhantomData })
    }
    /// Use the path-derivative gradient (see [`ClassicalNct::path_gradient`]): unbiased, with a
    /// variance that vanishes at the exact model, for one extra forward-mode pass of the flow per
    /// sample.
    pub fn with_path_gradient(mut self, on: bool) -> Self {
        self.path_gradient = on;
        self
    }
    /// $\beta^{-1}\nabla_x \ln q(x) = \beta^{-1} J^{-T}\nabla_z \ln p(z)$ at $x = T(z)$, with
    /// $J^{-T} = \Omega J \Omega^T$ (one forward-mode pass).
    fn entropy_cotangent(&self, t: &B::Table, theta: &[f64], z: &PhasePoint<f64, N>) -> PhasePoint<f64, N> {
        let (tf, tw) = self.split(theta);
        let mut scratch = vec![0.0; tw.len()];
        let (_, dz) = self.base.log_prob_grad(t, tw, z, 0.0, &mut scratch);
        let (_, jw) = symplectic_jvp(&self.flow, tf, z, &omega_t_apply(&dz));
        omega_apply(&jw).map(|v| v / self.beta())
    }
    /// Number of degrees of freedom.
    pub fn dim(&self) -> N {
        self.base.dim()
    }
    pub fn beta(&self) -> f64 {
        self.base.beta()
    }
    /// Split the parameter vector into (flow, latent).
    pub fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.flow.n_params())
    }
    /// Learned (thermal mean) frequencies, slowest first.
    pub fn frequencies(&self, theta: &[f64]) -> Vec<f64> {
        let tw = self.split(theta).1;
        let t = self.base.table(tw);
        let w = self.base.frequencies(&t, tw);
        self.base.order(&t, tw).into_iter().map(|k| w[k]).collect()
    }
    /// Angular frequency of every latent mode at the physical point `x` (on the orbit through `x`),
    /// in parameter order.
    pub fn latent_frequency_at(&self, theta: &[f64], x: &PhasePoint<f64, N>) -> Vec<f64> {
        let (tf, tw) = self.split(theta);
        self.base.frequency_at(&self.base.table(tw), tw, &self.flow.inverse(tf, x))
    }
    /// Latent mode indices, slowest first.
    pub fn mode_order(&self, theta: &[f64]) -> Vec<usize> {
        let tw = self.split(theta).1;
        self.base.order(&self.base.table(tw), tw)
    }
    /// An exact latent sample $z$ (before the flow).
    pub fn latent_sample<R: rand::Rng + ?Sized>(&self, theta: &[f64], rng: &mut R) -> PhasePoint<f64, N> {
        let tw = self.split(theta).1;
        self.base.sample(&self.base.table(tw), tw, rng)
    }
    /// Exact latent free energy $F_K$ (what $F_{var}$ would be for $H = K \circ T^{-1}$).
    pub fn latent_free_energy(&self, theta: &[f64]) -> f64 {
        let tw = self.split(theta).1;
        self.base.free_energy(&self.base.table(tw), tw)
    }

    /// Exact sample $x = T(z)$ with its $\ln q(x)$.
    pub fn sample<R: rand::Rng + ?Sized>(&self, theta: &[f64], rng: &mut R) -> (PhasePoint<f64, N>, f64) {
        self.sample_with(&self.base.table(self.split(theta).1), theta, rng)
    }
    fn sample_with<R: rand::Rng + ?Sized>(&self, t: &B::Table, theta: &[f64], rng: &mut R) -> (PhasePoint<f64, N>, f64) {
        let (tf, tw) = self.split(theta);
        let z = self.base.sample(t, tw, rng);
        let (x, _) = self.flow.forward(tf, &z);
        (x, self.base.log_prob(t, tw, &z))
    }

    /// $\ln q(x) = \ln p(T^{-1}(x))$.
    pub fn log_q(&self, theta: &[f64], x: &PhasePoint<f64, N>) -> f64 {
        let (tf, tw) = self.split(theta);
        self.base.log_prob(&self.base.table(tw), tw, &self.flow.inverse(tf, x))
    }

    /// One reparameterised sample of $H(T(z)) + \beta^{-1}\ln p(z)$; its gradient is added to `g`.
    pub fn variational_sample<H: Hamiltonian<N>, R: rand::Rng + ?Sized>(&self, theta: &[f64], h: &H, rng: &mut R, g: &mut [f64]) -> VariationalSample {
        self.variational_sample_with(&self.base.table(self.split(theta).1), theta, h, rng, g)
    }
    /// [`ClassicalNct::variational_sample`] with the latent's table of `theta` already built
    /// (once per batch).
    pub fn variational_sample_with<H: Hamiltonian<N>, R: rand::Rng + ?Sized>(&self, t: &B::Table, theta: &[f64], h: &H, rng: &mut R, g: &mut [f64]) -> VariationalSample {
        let nf = self.flow.n_params();
        let (tf, tw) = self.split(theta);
        let (gf, gw) = g.split_at_mut(nf);
        let z = self.base.sample(t, tw, rng);
        let (x, cache) = self.flow.forward(tf, &z);
        let energy = h.energy(&x.q, &x.p);
        let (dq, dp) = h.gradient(&x.q, &x.p);
        let mut xbar = PhasePoint::new(dq, dp);
        let beta = self.beta();
        let c = if self.path_gradient {
            let e = self.entropy_cotangent(t, theta, &z);
            xbar = PhasePoint::new(&xbar.q + &e.q, &xbar.p + &e.p);
            0.0
        } else {
            1.0 / beta
        };
        let zbar = self.flow.vjp(tf, &cache, &xbar, gf);
        self.base.reparam_vjp(t, tw, &z, &zbar, c, gw);
        let log_q = self.base.log_prob(t, tw, &z);
        VariationalSample { loss: energy + log_q / beta, energy, log_q }
    }

    /// The batched (matrix) version of summing [`ClassicalNct::variational_sample`] over a batch:
    /// the same samples (same chunk streams), dense layers as GEMMs.
    pub fn variational_batch<H: Hamiltonian<N>>(&self, theta: &[f64], h: &H, batch: usize, engine: &BatchEngine, stream: &SeedStream, step: u64) -> BatchSum
    where
        F: BatchedSymplectic<N>,
    {
        let nf = self.flow.n_params();
        let beta = self.beta();
        let (tf, tw) = self.split(theta);
        let t = self.base.table(tw);
        let sum = engine.sum_chunks(batch, theta.len(), stream, step, |range, rng| {
            let zs: Vec<PhasePoint<f64, N>> = range.map(|_| self.base.sample(&t, tw, rng)).collect();
            let zb = PhaseBatch::from_points(&zs);
            let (xb, cache) = self.flow.forward_batch(tf, &zb);
            let mut loss = 0.0;
            let n = self.dim().value();
            let mut xbar = PhaseBatch { q: DMatrix::zeros(n, zs.len()), p: DMatrix::zeros(n, zs.len()) };
            for (j, z) in zs.iter().enumerate() {
                let x: PhasePoint<f64, N> = xb.point(j);
                let e = h.energy(&x.q, &x.p);
                let (dq, dp) = h.gradient(&x.q, &x.p);
                for i in 0..n {
                    xbar.q[(i, j)] = dq[i];
                    xbar.p[(i, j)] = dp[i];
                }
                if self.path_gradient {
                    let e = self.entropy_cotangent(&t, theta, z);
                    for i in 0..n {
                        xbar.q[(i, j)] += e.q[i];
                        xbar.p[(i, j)] += e.p[i];
                    }
                }
                loss += e + self.base.log_prob(&t, tw, z) / beta;
            }
            let mut g = vec![0.0; theta.len()];
            let zbar = self.flow.vjp_batch(tf, &cache, &xbar, &mut g[..nf]);
            for (j, z) in zs.iter().enumerate() {
                self.base.reparam_vjp(&t, tw, z, &zbar.point(j), if self.path_gradient { 0.0 } else { 1.0 / beta }, &mut g[nf..]);
            }
            (loss, g)
        });
        sum
    }

    /// Negative log-likelihood $-\ln q(x)$ of one phase-space point; its gradient is added to `g`.
    pub fn nll_sample(&self, theta: &[f64], x: &PhasePoint<f64, N>, g: &mut [f64]) -> f64 {
        self.nll_sample_with(&self.base.table(self.split(theta).1), theta, x, g)
    }
    fn nll_sample_with(&self, t: &B::Table, theta: &[f64], x: &PhasePoint<f64, N>, g: &mut [f64]) -> f64 {
        let nf = self.flow.n_params();
        let (tf, tw) = self.split(theta);
        let (gf, gw) = g.split_at_mut(nf);
        let z = self.flow.inverse(tf, x);
        let (lp, dz) = self.base.log_prob_grad(t, tw, &z, -1.0, gw);
        symplectic_inverse_vjp(&self.flow, tf, &z, &dz.map(|v| -v), gf);
        -lp
    }

    /// Maximum-likelihood batch: `batch` configurations drawn from `data` (with replacement), momenta
    /// drawn from Maxwell-Boltzmann $\mathcal N(0, m_i/\beta)$; summed $-\ln q$ and its gradient.
    /// `jitter > 0` adds Gaussian noise of that standard deviation to each configuration
    /// (regularises directions in which the data are degenerate, e.g. after rigid-body alignment).
    #[allow(clippy::too_many_arguments)]
    pub fn mle_batch(&self, theta: &[f64], data: &[Vector<f64, N>], masses: &Vector<f64, N>, jitter: f64, batch: usize, engine: &BatchEngine, stream: &SeedStream, step: u64) -> BatchSum {
        let beta = self.beta();
        let t = self.base.table(self.split(theta).1);
        engine.loss_and_grad(batch, theta.len(), stream, step, |_, rng, g| {
            let mut q = data[rng.random_range(0..data.len())].clone();
            if jitter > 0.0 {
                for v in q.iter_mut() {
                    let z: f64 = StandardNormal.sample(rng);
                    *v += jitter * z;
                }
            }
            let x = PhasePoint::new(q, maxwell_boltzmann(masses, beta, rng));
            self.nll_sample_with(&t, theta, &x, g)
        })
    }

    /// Mean $-\ln q$ over every configuration of `data` (fresh Maxwell-Boltzmann momenta) and its
    /// standard error.
    pub fn mean_nll(&self, theta: &[f64], data: &[Vector<f64, N>], masses: &Vector<f64, N>, engine: &BatchEngine, stream: &SeedStream) -> (f64, f64) {
        let beta = self.beta();
        let (tf, tw) = self.split(theta);
        let t = self.base.table(tw);
        let v = engine.map(data.len(), stream, 0, |i, rng| -self.base.log_prob(&t, tw, &self.flow.inverse(tf, &PhasePoint::new(data[i].clone(), maxwell_boltzmann(masses, beta, rng)))));
        mean_and_error(&v)
    }

    /// $F_{var}$ with its error, $F_{IS}$ and the ESS from `n` fresh samples.
    pub fn free_energy<H: Hamiltonian<N>>(&self, theta: &[f64], h: &H, n: usize, engine: &BatchEngine, stream: &SeedStream, step: u64) -> FreeEnergy {
        let beta = self.beta();
        let t = self.base.table(self.split(theta).1);
        let vals: Vec<(f64, f64)> = engine.map(n, stream, step, |_, rng| {
            let (x, lq) = self.sample_with(&t, theta, rng);
            let e = h.energy(&x.q, &x.p);
            (e + lq / beta, -beta * e - lq)
        });
        free_energy_from_samples(&vals, beta)
    }

    /// Jacobian rows $\partial Q_k / \partial q$ of the learned map at the physical point `x`, one
    /// row per latent mode, slowest mode first ($N \times N$). These are the learned normal modes.
    pub fn normal_modes(&self, theta: &[f64], x: &PhasePoint<f64, N>) -> DMatrix<f64> {
        let (tf, tw) = self.split(theta);
        let z = self.flow.inverse(tf, x);
        // Forward Jacobian J = dx/dz, then J^{-1} = Omega^T J^T Omega (symplectic).
        let n = self.dim().value();
        let mut j = DMatrix::zeros(2 * n, 2 * n);
        for c in 0..2 * n {
            let mut e = PhasePoint::<f64, N>::zeros(self.dim());
            if c < n { e.q[c] = 1.0 } else { e.p[c - n] = 1.0 }
            let (_, col) = symplectic_jvp(&self.flow, tf, &z, &e);
            for (r, v) in col.to_vec().into_iter().enumerate() {
                j[(r, c)] = v;
            }
        }
        let mut om = DMatrix::zeros(2 * n, 2 * n);
        for i in 0..n {
            om[(i, n + i)] = 1.0;
            om[(n + i, i)] = -1.0;
        }
        let jinv = om.transpose() * j.transpose() * om;
        let order = self.base.order(&self.base.table(tw), tw);
        DMatrix::from_fn(n, n, |r, c| jinv[(order[r], c)])
    }

    /// Analytic latent dynamics mapped back, $x(t) = T(z(t))$: every latent action is conserved
    /// and its angle advances at $f_k'(I_k)$ (harmonic: $Q(t) = Q_0\cos\omega t +
    /// (P_0/\omega)\sin\omega t$, $P(t) = -Q_0\omega\sin\omega t + P_0\cos\omega t$).
    pub fn trajectory(&self, theta: &[f64], x0: &PhasePoint<f64, N>, times: &[f64]) -> Vec<PhasePoint<f64, N>> {
        let (tf, tw) = self.split(theta);
        let table = self.base.table(tw);
        let z0 = self.flow.inverse(tf, x0);
        times.iter().map(|&t| self.flow.forward(tf, &self.base.evolve(&table, tw, &z0, t)).0).collect()
    }

    /// Physical configurations along the `rank`-th slowest latent mode (0 = slowest):
    /// $x(a) = T(Q = a\,e_k, P = 0)$ for each amplitude $a$.
    pub fn interpolate_mode(&self, theta: &[f64], rank: usize, amplitudes: &[f64]) -> Vec<PhasePoint<f64, N>> {
        let (tf, tw) = self.split(theta);
        let k = self.base.order(&self.base.table(tw), tw)[rank.min(self.dim().value().max(1) - 1)];
        amplitudes
            .iter()
            .map(|&a| {
                let mut z = PhasePoint::zeros(self.dim());
                z.q[k] = a;
                self.flow.forward(tf, &z).0
            })
            .collect()
    }
}

/// Momenta from the Maxwell-Boltzmann distribution $p_i \sim \mathcal N(0, m_i/\beta)$.
pub fn maxwell_boltzmann<R: rand::Rng + ?Sized, N: Size>(masses: &Vector<f64, N>, beta: f64, rng: &mut R) -> Vector<f64, N> {
    Vector::from_fn(masses.size(), |i| {
        let z: f64 = StandardNormal.sample(rng);
        z * (masses[i] / beta).sqrt()
    })
}

/// Mean and standard error of independent values; NaN for no values (an empty statistic is not
/// zero).
pub fn mean_and_error(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

/// Combine per-sample `(H + ln q / beta, -beta H - ln q)` into [`FreeEnergy`].
pub fn free_energy_from_samples(vals: &[(f64, f64)], beta: f64) -> FreeEnergy {
    let n = vals.len().max(1) as f64;
    let mean = vals.iter().map(|v| v.0).sum::<f64>() / n;
    let var = vals.iter().map(|v| (v.0 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let lmax = vals.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
    let s1: f64 = vals.iter().map(|v| (v.1 - lmax).exp()).sum();
    let s2: f64 = vals.iter().map(|v| (2.0 * (v.1 - lmax)).exp()).sum();
    FreeEnergy { f_var: mean, f_var_err: (var / n).sqrt(), f_is: -(lmax + (s1 / n).ln()) / beta, ess: s1 * s1 / s2, samples: vals.len() }
}

impl<F: Parametrised, N: Size, B: Latent<N>> Parametrised for ClassicalNct<F, N, B> {
    fn n_params(&self) -> usize {
        self.flow.n_params() + self.base.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        let (a, b) = theta.split_at_mut(self.flow.n_params());
        self.flow.init_params(rng, a);
        self.base.init_params(rng, b);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let mut g = nest_groups(self.flow.param_groups(), "flow", 0);
        g.extend(nest_groups(self.base.param_groups(), "", self.flow.n_params()));
        g
    }
}
