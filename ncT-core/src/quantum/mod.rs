//! Quantum neural canonical transformations for distinguishable degrees of freedom (Zhang, Wang &
//! Wang, "Neural canonical transformations for vibrational spectra of molecules", J. Chem. Phys.
//! 161, 024103 (2024); finite temperature after Zhang et al., arXiv:2412.12451).
//!
//! States $\psi_n(x) = \phi_n(f(x))\,|\det \partial f/\partial x|^{1/2}$, with $f$ a configuration
//! space bijector (a `Unitary<D>` flow) and $\phi_n(z) = \prod_i s_i^{1/2} h_{n_i}(s_i z_i)$ a
//! product of Hermite functions of width $s_i = \sqrt{m_i \omega_i}$. The states are orthonormal by
//! construction. Sampling is exact: $z_i \sim |h_{n_i}|^2$ then $x = f^{-1}(z)$ (no MCMC).
//! The local energy $E_{loc} = -\tfrac12\sum_i m_i^{-1}\,\partial_i^2\psi/\psi + V(x)$ uses the exact
//! Laplacian (forward-Laplacian jet, or one directional `Dual2` pass per coordinate), or Hutchinson's
//! stochastic trace estimator for large `D` ([`LaplacianMethod`]).
//! [`metropolis`] samples flows without cheap inverses; [`ritz`] diagonalises $H$ in the span of the
//! flow-transformed states.

pub mod basis;
pub mod hermite;
pub mod metropolis;
pub mod occupation;
pub mod ritz;

use crate::batch::{BatchEngine, SeedStream};
use crate::hamiltonian::Separable;
use crate::layer::Bijector;
use crate::params::Parametrised;
use crate::progress::{NoProgress, Progress};
use crate::scalar::Scalar;
use hermite::{HermiteSampler, hermite, hermite_with_derivative};
use crate::dim::{Size, Vector};
use num_dual::Dual2_64;
use rand::RngExt;

/// One evaluated walker.
#[derive(Clone, Debug, PartialEq)]
pub struct Walker<D: Size> {
    pub x: Vector<f64, D>,
    pub z: Vector<f64, D>,
    /// Local energy $K_{loc} + V$ (NaN when rejected).
    pub e_loc: f64,
    /// Local kinetic energy $-\tfrac12\sum_i m_i^{-1}\partial_i^2\psi/\psi$ (NaN when rejected).
    pub kinetic: f64,
    /// $V(x)$.
    pub potential: f64,
    pub rejected: bool,
}

crate::wire_struct!(Walker<D: Size> { x, z, e_loc, kinetic, potential, rejected });

/// Mean and standard error of per-state local energies, with the kinetic and potential parts.
#[derive(Clone, Debug, PartialEq)]
pub struct StateEnergy {
    pub label: Vec<usize>,
    pub energy: f64,
    pub error: f64,
    pub variance: f64,
    pub kinetic: f64,
    pub kinetic_error: f64,
    pub potential: f64,
    pub potential_error: f64,
    pub samples: usize,
    pub rejected: usize,
}

impl StateEnergy {
    /// Statistics of the accepted walkers of state `label`, drawn independently (standard errors of
    /// the mean; Metropolis chains use the blocking analysis instead).
    pub fn from_walkers<D: Size>(label: &[usize], ws: &[Walker<D>]) -> Self {
        let ok: Vec<&Walker<D>> = ws.iter().filter(|w| !w.rejected).collect();
        let stat = |v: Vec<f64>| crate::classical::mean_and_error(&v);
        let es: Vec<f64> = ok.iter().map(|w| w.e_loc).collect();
        let (m, err) = stat(es.clone());
        let var = es.iter().map(|e| (e - m).powi(2)).sum::<f64>() / es.len().max(1) as f64;
        let (k, k_err) = stat(ok.iter().map(|w| w.kinetic).collect());
        let (v, v_err) = stat(ok.iter().map(|w| w.potential).collect());
        StateEnergy { label: label.to_vec(), energy: m, error: err, variance: var, kinetic: k, kinetic_error: k_err, potential: v, potential_error: v_err, samples: es.len(), rejected: ws.len() - es.len() }
    }
}

/// How the Laplacian in the local energy is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LaplacianMethod {
    /// Exact, by the forward-Laplacian jet (one pass carrying value, gradient and Laplacian).
    #[default]
    Jet,
    /// Exact, by one directional `Dual2` pass per coordinate.
    Dual2Passes,
    /// Hutchinson's estimator $\Delta\psi \approx \frac1P\sum_{p} v_p^\top (\nabla\nabla\psi) v_p$ with
    /// Rademacher probes $v_p$ (one `Dual2` pass each): unbiased, cost independent of `D`.
    Hutchinson { probes: usize },
}

/// The variational family of states over a bijector `B`.
#[derive(Clone, Debug)]
pub struct QuantumNct<B, D: Size> {
    pub flow: B,
    omega: Vector<f64, D>,
    inv_mass: Vector<f64, D>,
    width: Vector<f64, D>,
    sampler: HermiteSampler,
    /// Walkers with $V(x)$ below this value are rejected (holes of unbounded surfaces).
    pub v_floor: f64,
    /// Laplacian of the local energy (default: exact jet).
    pub laplacian: LaplacianMethod,
}

impl<B: Bijector<D>, D: Size> QuantumNct<B, D> {
    /// `omega`: basis frequencies, `masses`: of the kinetic energy $\sum p_i^2 / 2m_i$; `n_max`:
    /// the largest single-mode excitation the sampler tabulates.
    pub fn new(flow: B, omega: Vector<f64, D>, masses: Vector<f64, D>, n_max: usize) -> Self {
        let width = omega.zip_map(&masses, |w, m| (w * m).sqrt());
        // Default guard: ten times the sum of the basis frequencies below zero.
        let scale = omega.iter().map(|w| w.abs()).sum::<f64>();
        Self { flow, omega, inv_mass: masses.map(|m| 1.0 / m), width, sampler: HermiteSampler::new(n_max), v_floor: -10.0 * scale, laplacian: LaplacianMethod::Jet }
    }
    pub fn omega(&self) -> &Vector<f64, D> {
        &self.omega
    }
    pub fn n_max(&self) -> usize {
        self.sampler.n_max()
    }
    /// Basis widths $s_i = \sqrt{m_i\omega_i}$.
    pub fn width(&self) -> &Vector<f64, D> {
        &self.width
    }
    pub fn inv_mass(&self) -> &Vector<f64, D> {
        &self.inv_mass
    }
    /// The same states with sampler tables up to single-mode level `n_max` (for example a Ritz basis
    /// beyond the trained states; the tables of the training run stay untouched).
    pub fn with_n_max(mut self, n_max: usize) -> Self {
        self.sampler = HermiteSampler::new(n_max);
        self
    }
    /// The same states with another Laplacian method.
    pub fn with_laplacian(mut self, method: LaplacianMethod) -> Self {
        self.laplacian = method;
        self
    }

    /// $\ln|\psi_n(x)|^2$ (the Metropolis target), in f64.
    pub fn log_prob(&self, theta: &[f64], n: &[usize], x: &Vector<f64, D>) -> f64 {
        let (z, ld, _) = self.flow.forward(theta, x);
        let mut lp = ld;
        for i in 0..x.len() {
            lp += (hermite(n[i], z[i] * self.width[i]).powi(2) * self.width[i]).ln();
        }
        lp
    }

    /// $\psi_n(x)$ for any scalar.
    pub fn psi<S: Scalar>(&self, theta: &[f64], n: &[usize], x: &Vector<S, D>) -> S {
        let (z, ld, _) = self.flow.forward(theta, x);
        let mut v = (ld * 0.5).exp();
        for i in 0..x.len() {
            v *= hermite(n[i], z[i] * self.width[i]) * self.width[i].sqrt();
        }
        v
    }

    /// Exact sample of $|\psi_n|^2$.
    pub fn sample<R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &[usize], rng: &mut R) -> (Vector<f64, D>, Vector<f64, D>) {
        let z = self.sample_latent(n, rng);
        let (x, _) = self.flow.inverse(theta, &z);
        (x, z)
    }

    /// The latent point of [`Self::sample`]: $z_i \sim |h_{n_i}(s_i z_i)|^2$.
    pub(crate) fn sample_latent<R: rand::Rng + ?Sized>(&self, n: &[usize], rng: &mut R) -> Vector<f64, D> {
        Vector::<f64, D>::from_fn(self.omega.size(), |i| self.sampler.sample_with(n[i], rng.random::<f64>().clamp(1e-300, 1.0 - 1e-16)) / self.width[i])
    }

    /// Exact samples of $|\psi_{n_j}|^2$ for the states `labels`, drawing the latent points as
    /// [`Self::sample`] called in order does, then one batched inverse of the flow
    /// ([`Bijector::inverse_batch`], GEMMs; per sample where the flow has no batched kernel). The
    /// points equal those of [`Self::sample`] to rounding.
    pub fn samples<R: rand::Rng + ?Sized>(&self, theta: &[f64], labels: &[&[usize]], rng: &mut R) -> Vec<(Vector<f64, D>, Vector<f64, D>)> {
        let zs: Vec<Vector<f64, D>> = labels.iter().map(|n| self.sample_latent(n, rng)).collect();
        self.configurations(theta, &zs).into_iter().zip(zs).collect()
    }

    /// $x_j = f^{-1}(z_j)$ by one batched inverse ([`Bijector::inverse_batch`]), per point where
    /// the flow has no batched kernel.
    pub(crate) fn configurations(&self, theta: &[f64], zs: &[Vector<f64, D>]) -> Vec<Vector<f64, D>> {
        let (d, b) = (self.omega.len(), zs.len());
        match self.flow.inverse_batch(theta, &nalgebra::DMatrix::from_fn(d, b, |i, j| zs[j][i])) {
            Some((x, _)) => (0..b).map(|j| Vector::from_fn(self.omega.size(), |i| x[(i, j)])).collect(),
            None => zs.iter().map(|z| self.flow.inverse(theta, z).0).collect(),
        }
    }

    /// Exact local kinetic energies of a chunk: [`Self::kinetic_jets`], or [`Self::kinetic_jet`]
    /// walker by walker where the flow has no batched kernel.
    pub(crate) fn kinetic_chunk(&self, theta: &[f64], labels: &[&[usize]], xs: &[&Vector<f64, D>]) -> Vec<f64> {
        self.kinetic_jets(theta, labels, xs).unwrap_or_else(|| labels.iter().zip(xs).map(|(n, x)| self.kinetic_jet(theta, n, x)).collect())
    }

    /// The guard against holes of unbounded surfaces: `true` when $V(x)$ is not finite or below
    /// [`QuantumNct::v_floor`], or `x` itself is not finite.
    pub fn escaped(&self, v: f64, x: &Vector<f64, D>) -> bool {
        !v.is_finite() || v < self.v_floor || x.iter().any(|c| !c.is_finite())
    }

    /// Laplacian-jet seeds of `x` for the block of coordinates `start..start + W`: variable $i$ of
    /// the block with gradient $e_{i - start}/\sqrt{m_i}$, every other coordinate constant, so that
    /// the jet's Laplacian is the block's part of the mass-weighted $\sum_i m_i^{-1}\partial_i^2$.
    /// Summing over the blocks gives the whole Laplacian; with $D \le 16$ one block holds every
    /// coordinate (see [`crate::derivative`] for the choice of `W`).
    pub fn laplacian_seeds<const W: usize>(&self, x: &Vector<f64, D>, start: usize) -> Vector<crate::jet::LapJet<W>, D> {
        Vector::from_fn(x.size(), |i| {
            if i >= start && i < start + W {
                let mut v = crate::jet::LapJet::<W>::variable(x[i], i - start);
                v.v1 = &v.v1 * self.inv_mass[i].sqrt();
                v
            } else {
                crate::jet::LapJet::<W>::from_re(x[i])
            }
        })
    }

    /// `coef` times the latent score $\partial\ln|\phi_n(z)|/\partial z_i = s_i h'_{n_i}(s_i z_i)/h_{n_i}(s_i z_i)$.
    fn latent_score(&self, n: &[usize], z: &Vector<f64, D>, coef: f64) -> Vector<f64, D> {
        Vector::from_fn(z.size(), |i| {
            let (hv, hd) = hermite_with_derivative(n[i], z[i] * self.width[i]);
            coef * self.width[i] * hd / hv
        })
    }

    /// Local kinetic energy $-\tfrac12\sum_i m_i^{-1}\partial_i^2\psi/\psi$, exact, one `Dual2` pass
    /// per coordinate.
    pub fn kinetic_dual2(&self, theta: &[f64], n: &[usize], x: &Vector<f64, D>) -> f64 {
        let mut kin = 0.0;
        for i in 0..x.len() {
            let xd = Vector::<Dual2_64, D>::from_fn(x.size(), |j| Dual2_64::new(x[j], if i == j { 1.0 } else { 0.0 }, 0.0));
            let p = self.psi(theta, n, &xd);
            kin += -0.5 * self.inv_mass[i] * p.v2 / p.re;
        }
        kin
    }

    /// [`QuantumNct::kinetic_dual2`] with the forward-Laplacian jet: passes carrying value,
    /// gradient and the mass-weighted Laplacian (seed $e_i/\sqrt{m_i}$), one per block of at most
    /// 16 coordinates (one pass for $D \le 16$).
    pub fn kinetic_jet(&self, theta: &[f64], n: &[usize], x: &Vector<f64, D>) -> f64 {
        let d = x.len();
        crate::with_block_width!(d, W => {
            let (mut lap, mut re) = (0.0, 1.0);
            for start in (0..d).step_by(W) {
                let p = self.psi(theta, n, &self.laplacian_seeds::<W>(x, start));
                lap += p.v2;
                re = p.re;
            }
            -0.5 * lap / re
        })
    }

    /// Local kinetic energies of a chunk of walkers (walker `j` at `xs[j]` in state `labels[j]`)
    /// by the batched forward-Laplacian jet ([`Bijector::forward_jets`]): one pass of the jets
    /// $(z, \ln|\det|)$ for the whole chunk with the dense layers as GEMMs, then
    /// $K = -\tfrac12(\Delta_M\ln\psi + |\nabla\ln\psi|_M^2)$ with
    /// $\ln\psi = \tfrac12\ln|\det| + \sum_i \ln|h_{n_i}(s_i z_i)|$ and
    /// $(\ln h_n)''(u) = u^2 - (2n+1) - (h_n'/h_n)^2$. `None` when the flow has no batched kernel.
    /// Equals [`Self::kinetic_jet`] to rounding (it differentiates $\ln\psi$ instead of $\psi$).
    pub fn kinetic_jets(&self, theta: &[f64], labels: &[&[usize]], xs: &[&Vector<f64, D>]) -> Option<Vec<f64>> {
        let (d, b) = (self.omega.len(), xs.len());
        if b == 0 {
            return Some(Vec::new());
        }
        let x = nalgebra::DMatrix::from_fn(d, b, |i, j| xs[j][i]);
        let scale: Vec<f64> = self.inv_mass.iter().map(|m| m.sqrt()).collect();
        let (z, ld) = self.flow.forward_jets(theta, &crate::jet_batch::JetBatch::seeds(&x, &scale))?;
        let g2 = z.grad_norm2();
        let mut grad = vec![0.0; d];
        let out = (0..b)
            .map(|j| {
                let n = labels[j];
                let mut lap = 0.5 * ld.lap[(0, j)];
                for (k, gk) in grad.iter_mut().enumerate() {
                    *gk = 0.5 * ld.grad_at(0, k, j);
                }
                for i in 0..d {
                    let w = self.width[i];
                    let u = w * z.val[(i, j)];
                    let (hv, hd) = hermite_with_derivative(n[i], u);
                    let r = hd / hv;
                    let (f1, f2) = (w * r, w * w * (u * u - (2 * n[i] + 1) as f64 - r * r));
                    lap += f1 * z.lap[(i, j)] + f2 * g2[(i, j)];
                    for (k, gk) in grad.iter_mut().enumerate() {
                        *gk += f1 * z.grad_at(i, k, j);
                    }
                }
                -0.5 * (lap + grad.iter().map(|g| g * g).sum::<f64>())
            })
            .collect();
        Some(out)
    }

    /// Draws and evaluates the walkers `range` of one chunk from its stream, walker `i` in state
    /// `labels[state_of(i)]`: with the exact jet ([`LaplacianMethod::Jet`]), the samples of
    /// [`Self::walker`] called in order (to rounding: one batched inverse, [`Self::samples`]) and
    /// the kinetic energies of the whole chunk from one batched jet ([`Self::kinetic_jets`]), per
    /// walker where the flow has no batched kernel. Other methods evaluate walker by walker.
    pub fn chunk_walkers<H: Separable<D>>(&self, theta: &[f64], h: &H, labels: &[Vec<usize>], state_of: impl Fn(usize) -> usize, range: std::ops::Range<usize>, rng: &mut crate::batch::NctRng) -> Vec<Walker<D>> {
        if self.laplacian != LaplacianMethod::Jet {
            return range.map(|i| self.walker(theta, h, &labels[state_of(i)], rng)).collect();
        }
        let states: Vec<usize> = range.map(state_of).collect();
        let ns: Vec<&[usize]> = states.iter().map(|&s| labels[s].as_slice()).collect();
        let drawn: Vec<(usize, Vector<f64, D>, Vector<f64, D>, f64)> = self
            .samples(theta, &ns, rng)
            .into_iter()
            .zip(&states)
            .map(|((x, z), &s)| {
                let v = h.potential(&x);
                (s, x, z, v)
            })
            .collect();
        let live: Vec<usize> = (0..drawn.len()).filter(|&k| !self.escaped(drawn[k].3, &drawn[k].1)).collect();
        let ls: Vec<&[usize]> = live.iter().map(|&k| labels[drawn[k].0].as_slice()).collect();
        let xs: Vec<&Vector<f64, D>> = live.iter().map(|&k| &drawn[k].1).collect();
        let mut kin = vec![f64::NAN; drawn.len()];
        live.iter().zip(self.kinetic_chunk(theta, &ls, &xs)).for_each(|(&k, e)| kin[k] = e);
        drawn.into_iter().zip(kin).map(|((_, x, z, v), k)| self.walker_from(x, z, k, v)).collect()
    }

    /// Local energy $-\tfrac12\sum_i m_i^{-1}\partial_i^2\psi/\psi + V(x)$ with `Dual2` passes.
    pub fn local_energy<H: Separable<D>>(&self, theta: &[f64], h: &H, n: &[usize], x: &Vector<f64, D>) -> f64 {
        self.kinetic_dual2(theta, n, x) + h.potential(x)
    }

    /// Local energy with the forward-Laplacian jet.
    pub fn local_energy_jet<H: Separable<D>>(&self, theta: &[f64], h: &H, n: &[usize], x: &Vector<f64, D>) -> f64 {
        self.kinetic_jet(theta, n, x) + h.potential(x)
    }

    /// Local kinetic energy $-\tfrac12(\Delta_M\ln\psi + |\nabla\ln\psi|_M^2)$ with the gradient exact
    /// (one f64 VJP through the flow) and the trace $\Delta_M\ln\psi = \operatorname{tr}(M^{-1}\nabla\nabla\ln\psi)$
    /// by Hutchinson's estimator: the mean of $v^\top\nabla\nabla\ln\psi\,v$ over `probes` vectors
    /// $v = M^{-1/2}r$ with Rademacher $r$, each one directional `Dual2` pass. Unbiased; exact for
    /// product states, whose $\nabla\nabla\ln\psi$ is diagonal.
    pub fn kinetic_hutchinson<R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &[usize], x: &Vector<f64, D>, probes: usize, rng: &mut R) -> f64 {
        let (z, _, cache) = self.flow.forward(theta, x);
        let zbar = self.latent_score(n, &z, 1.0);
        let mut scratch = vec![0.0; theta.len()];
        let g = self.flow.vjp(theta, &cache, &zbar, 0.5, &mut scratch);
        let grad2: f64 = (0..x.len()).map(|i| g[i] * g[i] * self.inv_mass[i]).sum();
        let probes = probes.max(1);
        let mut trace = 0.0;
        for _ in 0..probes {
            let xd = Vector::<Dual2_64, D>::from_fn(x.size(), |j| Dual2_64::new(x[j], if rng.random::<bool>() { 1.0 } else { -1.0 } * self.inv_mass[j].sqrt(), 0.0));
            let p = self.psi(theta, n, &xd);
            let d1 = p.v1 / p.re;
            trace += p.v2 / p.re - d1 * d1;
        }
        -0.5 * (trace / probes as f64 + grad2)
    }

    /// Local kinetic energy with the configured [`LaplacianMethod`] (`rng` feeds Hutchinson probes).
    pub fn kinetic<R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &[usize], x: &Vector<f64, D>, rng: &mut R) -> f64 {
        match self.laplacian {
            LaplacianMethod::Jet => self.kinetic_jet(theta, n, x),
            LaplacianMethod::Dual2Passes => self.kinetic_dual2(theta, n, x),
            LaplacianMethod::Hutchinson { probes } => self.kinetic_hutchinson(theta, n, x, probes, rng),
        }
    }

    /// Evaluate a walker at `x` (latent point `z`), applying the guard against holes: walkers
    /// with a non-finite or too low potential are marked rejected, never NaN in an average.
    pub fn evaluate<H: Separable<D>, R: rand::Rng + ?Sized>(&self, theta: &[f64], h: &H, n: &[usize], x: Vector<f64, D>, z: Vector<f64, D>, rng: &mut R) -> Walker<D> {
        let v = h.potential(&x);
        let k = if self.escaped(v, &x) { f64::NAN } else { self.kinetic(theta, n, &x, rng) };
        self.walker_from(x, z, k, v)
    }

    /// The walker at `x` from its kinetic and potential local energies, with the same guard as
    /// [`QuantumNct::evaluate`] (for potentials computed elsewhere, e.g. by a [`crate::Backend`]).
    pub fn walker_from(&self, x: Vector<f64, D>, z: Vector<f64, D>, kinetic: f64, v: f64) -> Walker<D> {
        if self.escaped(v, &x) {
            return Walker { x, z, e_loc: f64::NAN, kinetic: f64::NAN, potential: v, rejected: true };
        }
        Walker { x, z, e_loc: kinetic + v, kinetic, potential: v, rejected: !kinetic.is_finite() }
    }

    /// Draw (exactly) and evaluate a walker of state `n`.
    pub fn walker<H: Separable<D>, R: rand::Rng + ?Sized>(&self, theta: &[f64], h: &H, n: &[usize], rng: &mut R) -> Walker<D> {
        let (x, z) = self.sample(theta, n, rng);
        self.evaluate(theta, h, n, x, z, rng)
    }

    /// Adds `coef * d ln|psi_n(x)| / d theta` to `g` (one f64 VJP of the flow).
    pub fn add_log_psi_grad(&self, theta: &[f64], n: &[usize], x: &Vector<f64, D>, coef: f64, g: &mut [f64]) {
        let (z, _, cache) = self.flow.forward(theta, x);
        let zbar = self.latent_score(n, &z, coef);
        self.flow.vjp(theta, &cache, &zbar, 0.5 * coef, g);
    }

    /// Adds $\sum_j c_j\,\partial_\theta\ln|\psi_{n_j}(x_j)|$ to `g` for a chunk of walkers with
    /// one batched forward and reverse pass of the flow ([`Bijector::forward_tape`]; dense layers as
    /// GEMMs), or walker by walker ([`Self::add_log_psi_grad`]) when the flow has no batched kernel.
    pub fn add_log_psi_grads(&self, theta: &[f64], labels: &[&[usize]], xs: &[&Vector<f64, D>], coefs: &[f64], g: &mut [f64]) {
        let (d, b) = (self.omega.len(), xs.len());
        if b == 0 {
            return;
        }
        let x = nalgebra::DMatrix::from_fn(d, b, |i, j| xs[j][i]);
        match self.flow.forward_tape(theta, &x) {
            Some((z, _, tape)) => {
                let zbar = nalgebra::DMatrix::from_fn(d, b, |i, j| {
                    let (hv, hd) = hermite_with_derivative(labels[j][i], z[(i, j)] * self.width[i]);
                    coefs[j] * self.width[i] * hd / hv
                });
                let ldbar: Vec<f64> = coefs.iter().map(|c| 0.5 * c).collect();
                self.flow.vjp_tape(theta, &tape, &zbar, &ldbar, g);
            }
            None => {
                for j in 0..b {
                    self.add_log_psi_grad(theta, labels[j], xs[j], coefs[j], g);
                }
            }
        }
    }

    /// Energies of the states `labels` (frozen flow) from `walkers` independent samples each.
    pub fn state_energies<H: Separable<D>>(&self, theta: &[f64], h: &H, labels: &[Vec<usize>], walkers: usize, engine: &BatchEngine, stream: &SeedStream) -> Vec<StateEnergy> {
        self.state_energies_with(theta, h, labels, walkers, engine, stream, &NoProgress)
    }

    /// [`Self::state_energies`], reporting the states done to `progress` (one phase).
    #[allow(clippy::too_many_arguments)]
    pub fn state_energies_with<H: Separable<D>>(&self, theta: &[f64], h: &H, labels: &[Vec<usize>], walkers: usize, engine: &BatchEngine, stream: &SeedStream, progress: &dyn Progress) -> Vec<StateEnergy> {
        progress.start(&format!("energies of {} states ({walkers} samples each)", labels.len()), labels.len() as u64);
        let out = labels
            .iter()
            .enumerate()
            .map(|(s, n)| {
                let one = std::slice::from_ref(n);
                let ws: Vec<Walker<D>> = engine.map_chunks(walkers, stream, s as u64, |range, rng| self.chunk_walkers(theta, h, one, |_| 0, range, rng)).into_iter().flatten().collect();
                progress.advance(1);
                StateEnergy::from_walkers(n, &ws)
            })
            .collect();
        progress.finish();
        out
    }
}

/// A step in which more than this fraction of the walkers was rejected (fell into holes of the
/// surface) is not an estimate: its loss is NaN, so the trainer stops or rolls back.
pub const MAX_REJECTED_FRACTION: f64 = 0.5;

/// `true` when `rejected` of `total` walkers is too many for a meaningful average.
pub fn too_many_rejected(rejected: usize, total: usize) -> bool {
    rejected as f64 > MAX_REJECTED_FRACTION * total as f64
}

/// Clip to mean ± k mean absolute deviations (used for the gradient coefficients only).
pub fn clip_mad(v: &[f64], k: f64) -> Vec<f64> {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let mad = v.iter().map(|x| (x - m).abs()).sum::<f64>() / n;
    v.iter().map(|x| x.clamp(m - k * mad, m + k * mad)).collect()
}

/// How the states of an excited-state ensemble are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// $w_n = 1/M$: minimises the trace over the lowest M-dimensional subspace.
    Equal,
    /// $w_n \propto M - n$, strictly decreasing: each level is variational and ordered.
    Decreasing,
}

impl Weights {
    pub fn values(self, m: usize) -> Vec<f64> {
        let raw: Vec<f64> = match self {
            Weights::Equal => vec![1.0; m],
            Weights::Decreasing => (0..m).map(|k| (m - k) as f64).collect(),
        };
        let s: f64 = raw.iter().sum();
        raw.into_iter().map(|w| w / s).collect()
    }
}

/// Result of one ensemble step.
#[derive(Clone, Debug)]
pub struct EnsembleStep {
    /// $\sum_n w_n \bar E_n$.
    pub loss: f64,
    pub grad: Vec<f64>,
    pub energies: Vec<f64>,
    pub rejected: usize,
}

impl<B: Bijector<D>, D: Size> QuantumNct<B, D> {
    /// One stochastic step of the T = 0 ensemble objective $\sum_n w_n E_n$ with
    /// $\nabla_\theta E_n = 2\,\mathbb E_{|\psi_n|^2}[(E_{loc} - \bar E_n)\nabla_\theta\ln|\psi_n|]$
    /// (per-state baseline, local energies clipped at 5 mean absolute deviations).
    #[allow(clippy::too_many_arguments)]
    pub fn ensemble_step<H: Separable<D>>(&self, theta: &[f64], h: &H, labels: &[Vec<usize>], weights: &[f64], walkers: usize, engine: &BatchEngine, stream: &SeedStream, step: u64) -> EnsembleStep {
        let m = labels.len();
        let total = m * walkers;
        let ws: Vec<Walker<D>> = engine.map_chunks(total, stream, step, |range, rng| self.chunk_walkers(theta, h, labels, |i| i / walkers, range, rng)).into_iter().flatten().collect();
        let mut energies = Vec::with_capacity(m);
        let mut coefs = vec![0.0; total];
        let mut rejected = 0;
        for s in 0..m {
            let block = &ws[s * walkers..(s + 1) * walkers];
            let idx: Vec<usize> = (0..walkers).filter(|&k| !block[k].rejected).collect();
            rejected += walkers - idx.len();
            let es: Vec<f64> = idx.iter().map(|&k| block[k].e_loc).collect();
            // A state without accepted walkers has no energy estimate.
            let mean = if es.is_empty() { f64::NAN } else { es.iter().sum::<f64>() / es.len() as f64 };
            energies.push(mean);
            let clipped = clip_mad(&es, 5.0);
            let cm = clipped.iter().sum::<f64>() / clipped.len().max(1) as f64;
            for (j, &k) in idx.iter().enumerate() {
                coefs[s * walkers + k] = 2.0 * weights[s] * (clipped[j] - cm) / idx.len() as f64;
            }
        }
        let sum = engine.sum_chunks(total, theta.len(), stream, step ^ 0x9e37_79b9, |range, _| {
            let mut g = vec![0.0; theta.len()];
            let live: Vec<usize> = range.filter(|&i| coefs[i] != 0.0).collect();
            let ls: Vec<&[usize]> = live.iter().map(|&i| labels[i / walkers].as_slice()).collect();
            let xs: Vec<&Vector<f64, D>> = live.iter().map(|&i| &ws[i].x).collect();
            let cs: Vec<f64> = live.iter().map(|&i| coefs[i]).collect();
            self.add_log_psi_grads(theta, &ls, &xs, &cs, &mut g);
            (0.0, g)
        });
        let grad = sum.grad;
        let loss = if too_many_rejected(rejected, total) { f64::NAN } else { energies.iter().zip(weights).map(|(e, w)| e * w).sum() };
        EnsembleStep { loss, grad, energies, rejected }
    }
}

impl<B: Parametrised, D: Size> Parametrised for QuantumNct<B, D> {
    fn n_params(&self) -> usize {
        self.flow.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        self.flow.init_params(rng, theta)
    }
    fn param_groups(&self) -> Vec<crate::params::ParamGroup> {
        self.flow.param_groups()
    }
}
