//! Occupation models for the finite-temperature density matrix
//! $\rho = \sum_n p_n |\psi_n\rangle\langle\psi_n|$, and the variational free energy
//! $F = \mathbb E_{n\sim p}[k_B T \ln p_n + E_n]$.
//!
//! [`ProductOccupation`] (PSA): independent categorical distributions per mode with logits
//! $\phi_{ik} - \beta\omega_i k$, $k = 0 \dots K-1$; with $\phi = 0$ it is exactly the harmonic
//! Boltzmann distribution (truncated at $K$ levels). Sampling and $\ln p_n$ are exact.

use super::{QuantumNct, clip_mad};
use crate::batch::{BatchEngine, SeedStream};
use crate::hamiltonian::Separable;
use crate::backend::{Backend, CpuBackend};
use crate::dim::{Size, Vector};
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use rand::RngExt;

/// A normalised distribution $p_n$ over product labels with exact sampling.
pub trait OccupationModel: Parametrised {
    /// Number of levels per mode (labels range over $0..K$).
    fn levels(&self) -> usize;
    fn beta(&self) -> f64;
    /// Exact sample and its $\ln p_n$.
    fn sample(&self, theta: &[f64], rng: &mut dyn rand::Rng) -> (Vec<usize>, f64);
    /// $\ln p_n$ of the label `n` (labels $\ge K$ have probability zero).
    fn log_prob(&self, theta: &[f64], n: &[usize]) -> f64;
    /// Adds `coef * d ln p_n / d theta` to `g`.
    fn add_log_prob_grad(&self, theta: &[f64], n: &[usize], coef: f64, g: &mut [f64]);
    /// Exact entropy in units of $k_B$ where it is cheap (product models), else `None`.
    fn exact_entropy(&self, _theta: &[f64]) -> Option<f64> {
        None
    }
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Index `j` with probability `p[j]` (inverse CDF of one uniform number).
fn draw<R: rand::Rng + ?Sized>(p: &[f64], rng: &mut R) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (j, &pj) in p.iter().enumerate() {
        acc += pj;
        if u < acc {
            return j;
        }
    }
    p.len() - 1
}

/// Independent per-mode occupations (product-state ansatz).
#[derive(Clone, Debug, PartialEq)]
pub struct ProductOccupation {
    pub beta: f64,
    pub omega: Vec<f64>,
    pub levels: usize,
}

impl ProductOccupation {
    pub fn new(beta: f64, omega: &[f64], levels: usize) -> Self {
        Self { beta, omega: omega.to_vec(), levels: levels.max(1) }
    }
    fn modes(&self) -> usize {
        self.omega.len()
    }
    /// Per-mode level probabilities.
    pub fn probs(&self, theta: &[f64]) -> Vec<Vec<f64>> {
        (0..self.modes())
            .map(|i| {
                let logits: Vec<f64> = (0..self.levels).map(|k| theta[i * self.levels + k] - self.beta * self.omega[i] * k as f64).collect();
                softmax(&logits)
            })
            .collect()
    }
    /// Exact sample and its $\ln p_n$.
    pub fn sample<R: rand::Rng + ?Sized>(&self, probs: &[Vec<f64>], rng: &mut R) -> (Vec<usize>, f64) {
        let mut n = Vec::with_capacity(self.modes());
        let mut lp = 0.0;
        for p in probs {
            let k = draw(p, rng);
            lp += p[k].ln();
            n.push(k);
        }
        (n, lp)
    }
    /// Adds `coef * d ln p_n / d theta`.
    pub fn add_log_prob_grad(&self, probs: &[Vec<f64>], n: &[usize], coef: f64, g: &mut [f64]) {
        for (i, p) in probs.iter().enumerate() {
            for (k, pk) in p.iter().enumerate() {
                g[i * self.levels + k] += coef * (if n[i] == k { 1.0 } else { 0.0 } - pk);
            }
        }
    }
    /// Exact entropy $-\sum_n p_n \ln p_n$ (in units of $k_B$).
    pub fn entropy(&self, probs: &[Vec<f64>]) -> f64 {
        probs.iter().map(|p| -p.iter().filter(|&&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>()).sum()
    }
}

impl OccupationModel for ProductOccupation {
    fn levels(&self) -> usize {
        self.levels
    }
    fn beta(&self) -> f64 {
        self.beta
    }
    fn sample(&self, theta: &[f64], rng: &mut dyn rand::Rng) -> (Vec<usize>, f64) {
        ProductOccupation::sample(self, &self.probs(theta), rng)
    }
    fn log_prob(&self, theta: &[f64], n: &[usize]) -> f64 {
        self.probs(theta).iter().zip(n).map(|(p, &k)| p.get(k).map_or(f64::NEG_INFINITY, |v| v.ln())).sum()
    }
    fn add_log_prob_grad(&self, theta: &[f64], n: &[usize], coef: f64, g: &mut [f64]) {
        ProductOccupation::add_log_prob_grad(self, &self.probs(theta), n, coef, g)
    }
    fn exact_entropy(&self, theta: &[f64]) -> Option<f64> {
        Some(self.entropy(&self.probs(theta)))
    }
}

/// Autoregressive occupations, a variational autoregressive network (VAN; Wu, Wang & Zhang, PRL
/// 122, 080602 (2019)) over modes: mode $i$ has logits
/// $$ \ell_{ia} = b_{ia} - \beta\omega_i a + \sum_{j<i} W_{ia,jn_j} + \sum_h V_{i,ah}\tanh\Big(c_{ih} + \sum_{j<i} U_{i,h,jn_j}\Big), $$
/// so $p_n = \prod_i p(n_i | n_{<i})$ is normalised and sampled exactly mode by mode. With `hidden`
/// $= 0$ it is the one-layer VAN; a hidden layer of width $H$ per conditional adds non-linear
/// correlations. At initialisation ($b = W = V = 0$) it is the harmonic Boltzmann distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoregressiveOccupation {
    pub beta: f64,
    pub omega: Vec<f64>,
    pub levels: usize,
    /// Hidden width $H$ of each conditional (0: one-layer VAN).
    pub hidden: usize,
}

impl AutoregressiveOccupation {
    pub fn new(beta: f64, omega: &[f64], levels: usize) -> Self {
        Self { beta, omega: omega.to_vec(), levels: levels.max(1), hidden: 0 }
    }
    /// The same model with a tanh hidden layer of width `hidden` in every conditional.
    pub fn with_hidden(mut self, hidden: usize) -> Self {
        self.hidden = hidden;
        self
    }
    fn d(&self) -> usize {
        self.omega.len()
    }
    /// Offset of the direct weights of mode `i` (after all biases).
    fn w_off(&self, i: usize) -> usize {
        let k = self.levels;
        self.d() * k + k * k * i * (i.saturating_sub(1)) / 2
    }
    /// Offset of the hidden block $(U_i, c_i, V_i)$ of mode `i` (after all direct weights).
    fn h_off(&self, i: usize) -> usize {
        let (k, h) = (self.levels, self.hidden);
        self.w_off(self.d()) + (0..i).map(|j| h * (j * k + 1 + k)).sum::<usize>()
    }
    /// Hidden activations $t_h$ of mode `i` given the previous labels.
    fn hidden_act(&self, theta: &[f64], i: usize, prev: &[usize]) -> Vec<f64> {
        let (k, h) = (self.levels, self.hidden);
        let off = self.h_off(i);
        let c = off + h * i * k;
        (0..h).map(|u| (theta[c + u] + prev.iter().enumerate().map(|(j, &nj)| theta[off + u * i * k + j * k + nj]).sum::<f64>()).tanh()).collect()
    }
    fn logits(&self, theta: &[f64], i: usize, prev: &[usize]) -> (Vec<f64>, Vec<f64>) {
        let (k, h) = (self.levels, self.hidden);
        let off = self.w_off(i);
        let t = self.hidden_act(theta, i, prev);
        let v = self.h_off(i) + h * (i * k + 1);
        let l = (0..k)
            .map(|a| {
                let mut l = theta[i * k + a] - self.beta * self.omega[i] * a as f64;
                for (j, &nj) in prev.iter().enumerate() {
                    l += theta[off + a * (i * k) + j * k + nj];
                }
                l + (0..h).map(|u| theta[v + a * h + u] * t[u]).sum::<f64>()
            })
            .collect();
        (l, t)
    }
}

impl Parametrised for AutoregressiveOccupation {
    fn n_params(&self) -> usize {
        self.h_off(self.d())
    }
    /// Biases, direct and output weights zero (harmonic Boltzmann start); input weights of the
    /// hidden layer $N(0, 1/(iK))$ so that gradients reach the output weights.
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.fill(0.0);
        let (k, h) = (self.levels, self.hidden);
        for i in 1..self.d() {
            let off = self.h_off(i);
            for t in &mut theta[off..off + h * i * k] {
                *t = crate::__private::standard_normal(rng) / ((i * k) as f64).sqrt();
            }
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let nb = self.d() * self.levels;
        let nw = self.w_off(self.d());
        let mut g = vec![ParamGroup::new("occupation.bias", 0..nb), ParamGroup::new("occupation.weights", nb..nw)];
        if self.hidden > 0 {
            g.push(ParamGroup::new("occupation.hidden", nw..self.n_params()));
        }
        g
    }
}

impl OccupationModel for AutoregressiveOccupation {
    fn levels(&self) -> usize {
        self.levels
    }
    fn beta(&self) -> f64 {
        self.beta
    }
    fn sample(&self, theta: &[f64], rng: &mut dyn rand::Rng) -> (Vec<usize>, f64) {
        let mut n = Vec::with_capacity(self.d());
        let mut lp = 0.0;
        for i in 0..self.d() {
            let p = softmax(&self.logits(theta, i, &n).0);
            let a = draw(&p, rng);
            lp += p[a].ln();
            n.push(a);
        }
        (n, lp)
    }
    fn log_prob(&self, theta: &[f64], n: &[usize]) -> f64 {
        (0..self.d()).map(|i| softmax(&self.logits(theta, i, &n[..i]).0).get(n[i]).map_or(f64::NEG_INFINITY, |p| p.ln())).sum()
    }
    fn add_log_prob_grad(&self, theta: &[f64], n: &[usize], coef: f64, g: &mut [f64]) {
        let (k, h) = (self.levels, self.hidden);
        for i in 0..self.d() {
            let (l, t) = self.logits(theta, i, &n[..i]);
            let p = softmax(&l);
            let off = self.w_off(i);
            let (hoff, v) = (self.h_off(i), self.h_off(i) + h * (i * k + 1));
            let mut dt = vec![0.0; h];
            for a in 0..k {
                let d = coef * (if n[i] == a { 1.0 } else { 0.0 } - p[a]);
                g[i * k + a] += d;
                for (j, &nj) in n[..i].iter().enumerate() {
                    g[off + a * (i * k) + j * k + nj] += d;
                }
                for u in 0..h {
                    g[v + a * h + u] += d * t[u];
                    dt[u] += d * theta[v + a * h + u];
                }
            }
            for u in 0..h {
                let dpre = dt[u] * (1.0 - t[u] * t[u]);
                g[hoff + h * i * k + u] += dpre;
                for (j, &nj) in n[..i].iter().enumerate() {
                    g[hoff + u * i * k + j * k + nj] += dpre;
                }
            }
        }
    }
}

impl Parametrised for ProductOccupation {
    fn n_params(&self) -> usize {
        self.modes() * self.levels
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.fill(0.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("occupation", 0..self.n_params())]
    }
}

/// Free-energy estimate of one step (all in the model's energy units).
#[derive(Clone, Debug)]
pub struct ThermalStep {
    pub f: f64,
    pub f_err: f64,
    pub e: f64,
    pub e_err: f64,
    /// Kinetic and potential parts of $E$ with their standard errors.
    pub k: f64,
    pub k_err: f64,
    pub v: f64,
    pub v_err: f64,
    /// Entropy $-\mathbb E[\ln p_n]$ estimated from the samples.
    pub s: f64,
    pub grad: Vec<f64>,
    pub rejected: usize,
}

/// Flow and occupation model together; parameters: flow's, then the occupations'.
#[derive(Clone, Debug)]
pub struct ThermalNct<B, O, D: Size> {
    pub states: QuantumNct<B, D>,
    pub occupation: O,
    /// Frequencies of the per-state control variate $b_n = \sum_i \omega_i (n_i + 1/2)$ of the flow
    /// gradient (any per-state constant keeps it unbiased; a good guess of $E_n$ cuts its variance).
    /// `None`: a single batch-mean baseline.
    pub baseline_omega: Option<Vec<f64>>,
}

impl<B: Bijector<D>, O: OccupationModel, D: Size> ThermalNct<B, O, D> {
    /// Checks that the sampler tables cover every level the occupation model can draw.
    pub fn new(states: QuantumNct<B, D>, occupation: O, baseline_omega: Option<Vec<f64>>) -> Result<Self, crate::error::ConfigError> {
        if states.n_max() + 1 < occupation.levels() {
            return Err(crate::error::ConfigError::Value { what: "occupation levels", value: occupation.levels().to_string(), allowed: "at most n_max + 1 of the state sampler" });
        }
        if baseline_omega.as_ref().is_some_and(|w| w.len() != states.omega().len()) {
            return Err(crate::error::ConfigError::Value { what: "baseline frequencies", value: "wrong length".into(), allowed: "one per degree of freedom" });
        }
        Ok(Self { states, occupation, baseline_omega })
    }
    pub fn temperature(&self) -> f64 {
        1.0 / self.occupation.beta()
    }
    pub fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.states.flow.n_params())
    }
    /// One step: `batch` pairs $(n, x)$ with $n\sim p$, $x\sim|\psi_n|^2$. Gradients: flow
    /// $2\,\mathbb E[(E_{loc} - \bar E)\nabla\ln|\psi_n|]$, occupations
    /// $\mathbb E[(f - \bar f)\nabla\ln p_n]$ with $f = k_BT\ln p_n + E_{loc}$ (baselines = batch means,
    /// local energies clipped at 5 mean absolute deviations for the gradient).
    pub fn step<H: Separable<D>>(&self, theta: &[f64], h: &H, batch: usize, engine: &BatchEngine, stream: &SeedStream, step: u64) -> ThermalStep {
        self.step_with_walkers(theta, h, batch, engine, stream, step).0
    }

    /// [`ThermalNct::step`], also returning the accepted walkers (for further estimators of the
    /// same samples, e.g. a pressure).
    pub fn step_with_walkers<H: Separable<D>>(&self, theta: &[f64], h: &H, batch: usize, engine: &BatchEngine, stream: &SeedStream, step: u64) -> (ThermalStep, Vec<super::Walker<D>>) {
        self.step_with_walkers_on(theta, h, batch, engine, &CpuBackend { engine: *engine }, stream, step)
    }

    /// [`ThermalNct::step_with_walkers`] with the potentials of the whole batch from `backend`
    /// (samples and kinetic energies on `engine` first, in the same random streams).
    #[allow(clippy::too_many_arguments)]
    pub fn step_with_walkers_on<H: Separable<D>, Bk: Backend>(&self, theta: &[f64], h: &H, batch: usize, engine: &BatchEngine, backend: &Bk, stream: &SeedStream, step: u64) -> (ThermalStep, Vec<super::Walker<D>>) {
        let (tf, to) = self.split(theta);
        let nf = tf.len();
        let kt = self.temperature();
        let drawn: Vec<_> = engine
            .map_chunks(batch, stream, step, |range, rng| {
                if self.states.laplacian != super::LaplacianMethod::Jet {
                    return range
                        .map(|_| {
                            let (n, lp) = self.occupation.sample(to, rng);
                            let (x, z) = self.states.sample(tf, &n, rng);
                            let k = if x.iter().all(|c| c.is_finite()) { self.states.kinetic(tf, &n, &x, rng) } else { f64::NAN };
                            (n, lp, x, z, k)
                        })
                        .collect::<Vec<_>>();
                }
                // Exact jet: the same draws in the same order, then one batched inverse and one
                // batched jet for the chunk.
                let latent: Vec<(Vec<usize>, f64, Vector<f64, D>)> = range
                    .map(|_| {
                        let (n, lp) = self.occupation.sample(to, rng);
                        let z = self.states.sample_latent(&n, rng);
                        (n, lp, z)
                    })
                    .collect();
                let zs: Vec<Vector<f64, D>> = latent.iter().map(|l| l.2.clone()).collect();
                let xs = self.states.configurations(tf, &zs);
                let live: Vec<usize> = (0..xs.len()).filter(|&j| xs[j].iter().all(|c| c.is_finite())).collect();
                let ls: Vec<&[usize]> = live.iter().map(|&j| latent[j].0.as_slice()).collect();
                let xr: Vec<&Vector<f64, D>> = live.iter().map(|&j| &xs[j]).collect();
                let mut kin = vec![f64::NAN; xs.len()];
                live.iter().zip(self.states.kinetic_chunk(tf, &ls, &xr)).for_each(|(&j, k)| kin[j] = k);
                latent.into_iter().zip(xs).zip(kin).map(|(((n, lp, z), x), k)| (n, lp, x, z, k)).collect()
            })
            .into_iter()
            .flatten()
            .collect();
        let xs: Vec<Vector<f64, D>> = drawn.iter().map(|d| d.2.clone()).collect();
        let vs = backend.potentials(h, &xs);
        let draws: Vec<_> = drawn.into_iter().zip(vs).map(|((n, lp, x, z, k), v)| (n, lp, self.states.walker_from(x, z, k, v))).collect();
        let ok: Vec<usize> = (0..batch).filter(|&i| !draws[i].2.rejected).collect();
        let es: Vec<f64> = ok.iter().map(|&i| draws[i].2.e_loc).collect();
        let fs: Vec<f64> = ok.iter().map(|&i| kt * draws[i].1 + draws[i].2.e_loc).collect();
        let (f, f_err) = crate::classical::mean_and_error(&fs);
        let (e, e_err) = crate::classical::mean_and_error(&es);
        let (k, k_err) = crate::classical::mean_and_error(&ok.iter().map(|&i| draws[i].2.kinetic).collect::<Vec<_>>());
        let (v, v_err) = crate::classical::mean_and_error(&ok.iter().map(|&i| draws[i].2.potential).collect::<Vec<_>>());
        let s = -ok.iter().map(|&i| draws[i].1).sum::<f64>() / ok.len().max(1) as f64;
        // Flow term: local energy minus a per-state harmonic guess of E_n (a control variate).
        let guess = |n: &[usize]| self.baseline_omega.as_ref().map_or(0.0, |w| super::basis::harmonic_energy(w, n));
        let de: Vec<f64> = ok.iter().map(|&i| draws[i].2.e_loc - guess(&draws[i].0)).collect();
        let ce = clip_mad(&de, 5.0);
        let cf = clip_mad(&fs, 5.0);
        let (me, mf) = (ce.iter().sum::<f64>() / ce.len().max(1) as f64, cf.iter().sum::<f64>() / cf.len().max(1) as f64);
        let nb = ok.len().max(1) as f64;
        let sum = engine.sum_chunks(ok.len(), theta.len(), stream, step ^ 0x51ed_270b, |range, _| {
            let mut g = vec![0.0; theta.len()];
            for j in range.clone() {
                self.occupation.add_log_prob_grad(to, &draws[ok[j]].0, (cf[j] - mf) / nb, &mut g[nf..]);
            }
            let ls: Vec<&[usize]> = range.clone().map(|j| draws[ok[j]].0.as_slice()).collect();
            let xs: Vec<&Vector<f64, D>> = range.clone().map(|j| &draws[ok[j]].2.x).collect();
            let cs: Vec<f64> = range.map(|j| 2.0 * (ce[j] - me) / nb).collect();
            self.states.add_log_psi_grads(tf, &ls, &xs, &cs, &mut g[..nf]);
            (0.0, g)
        });
        let grad = sum.grad;
        let rejected = batch - ok.len();
        let f = if super::too_many_rejected(rejected, batch) { f64::NAN } else { f };
        let walkers = draws.into_iter().filter(|d| !d.2.rejected).map(|d| d.2).collect();
        (ThermalStep { f, f_err, e, e_err, k, k_err, v, v_err, s, grad, rejected }, walkers)
    }
}

impl<B: Parametrised, O: OccupationModel, D: Size> Parametrised for ThermalNct<B, O, D> {
    fn n_params(&self) -> usize {
        self.states.n_params() + self.occupation.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        crate::params::init_end_to_end(&self.states, &self.occupation, rng, theta);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        crate::params::groups_end_to_end(&self.states, "flow", &self.occupation, "")
    }
}


/// A categorical distribution over an enumerated list of many-body states (e.g. the fermion
/// states within ΔE of [`crate::fermion::enumerate_states`]): logits
/// $\ell_n = b_n - \beta \Delta E_n$ with free $b_n$, so at $b = 0$ it is the Boltzmann law of the
/// reference energies $\Delta E_n$ (or random with [`CategoricalOccupation::with_random_init`]).
/// Labels are one-element vectors `[n]`, the index into the list.
#[derive(Clone, Debug, PartialEq)]
pub struct CategoricalOccupation {
    pub beta: f64,
    /// Reference excitation energies of the states.
    pub energies: Vec<f64>,
    /// Standard deviation of random initial logits (0: Boltzmann start).
    pub init_scale: f64,
}

impl CategoricalOccupation {
    pub fn new(beta: f64, energies: &[f64]) -> Self {
        Self { beta, energies: energies.to_vec(), init_scale: 0.0 }
    }
    pub fn with_random_init(mut self, scale: f64) -> Self {
        self.init_scale = scale;
        self
    }
    /// The probabilities $p_n$.
    pub fn probs(&self, theta: &[f64]) -> Vec<f64> {
        softmax(&theta.iter().zip(&self.energies).map(|(b, e)| b - self.beta * e).collect::<Vec<_>>())
    }
    /// An exact sample and its $\ln p_n$ from the probabilities `p` of [`Self::probs`] (computed
    /// once per batch rather than once per walker).
    pub fn sample_from<R: rand::Rng + ?Sized>(&self, p: &[f64], rng: &mut R) -> (usize, f64) {
        let n = draw(p, rng);
        (n, p[n].ln())
    }
    /// Adds `coef` $\partial_b\ln p_n = $ `coef` $(\delta_{kn} - p_k)$ to `g`, with `p` from [`Self::probs`].
    pub fn add_log_prob_grad_from(&self, p: &[f64], n: usize, coef: f64, g: &mut [f64]) {
        for (k, pk) in p.iter().enumerate() {
            g[k] += coef * (if n == k { 1.0 } else { 0.0 } - pk);
        }
    }
}

impl Parametrised for CategoricalOccupation {
    fn n_params(&self) -> usize {
        self.energies.len()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        for t in theta.iter_mut() {
            let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
            *t = if self.init_scale > 0.0 { self.init_scale * z } else { 0.0 };
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("logits", 0..self.energies.len())]
    }
}

impl OccupationModel for CategoricalOccupation {
    fn levels(&self) -> usize {
        self.energies.len()
    }
    fn beta(&self) -> f64 {
        self.beta
    }
    fn sample(&self, theta: &[f64], rng: &mut dyn rand::Rng) -> (Vec<usize>, f64) {
        let (n, lp) = self.sample_from(&self.probs(theta), rng);
        (vec![n], lp)
    }
    fn log_prob(&self, theta: &[f64], n: &[usize]) -> f64 {
        match n {
            [k] => self.probs(theta).get(*k).map_or(f64::NEG_INFINITY, |v| v.ln()),
            _ => f64::NEG_INFINITY,
        }
    }
    fn add_log_prob_grad(&self, theta: &[f64], n: &[usize], coef: f64, g: &mut [f64]) {
        let p = self.probs(theta);
        match n {
            [k] => self.add_log_prob_grad_from(&p, *k, coef, g),
            // A label outside the list: only the normalisation depends on the logits.
            _ => p.iter().zip(g.iter_mut()).for_each(|(pk, gk)| *gk += coef * (0.0 - pk)),
        }
    }
    fn exact_entropy(&self, theta: &[f64]) -> Option<f64> {
        Some(-self.probs(theta).iter().filter(|&&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>())
    }
}

#[cfg(test)]
mod categorical_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn boltzmann_start_gradient_and_sampling() {
        // Six free fermions in 2D, beta = 3, dE = 4: the Boltzmann start has the exact truncated entropy.
        let (_, states) = crate::fermion::enumerate_states(2, 6, 0, 4);
        let e: Vec<f64> = states.iter().map(|s| s.excitation as f64).collect();
        let occ = CategoricalOccupation::new(3.0, &e);
        let theta = occ.new_params(&mut crate::batch::NctRng::seed_from_u64(1));
        let s_exact = crate::fermion::FreeFermions { dim: 2, n_up: 6, n_down: 0 }.truncated_thermo(3.0, 4).s;
        assert!((occ.exact_entropy(&theta).unwrap() - s_exact).abs() < 1e-10);
        // d ln p_n / d b against central differences, at random logits.
        let occ = occ.with_random_init(0.5);
        let theta = occ.new_params(&mut crate::batch::NctRng::seed_from_u64(2));
        for n in [0usize, 7, 300] {
            let mut g = vec![0.0; theta.len()];
            occ.add_log_prob_grad(&theta, &[n], 1.0, &mut g);
            for k in [0usize, 7, 300, 523] {
                let (mut tp, mut tm) = (theta.clone(), theta.clone());
                tp[k] += 1e-6;
                tm[k] -= 1e-6;
                let fd = (occ.log_prob(&tp, &[n]) - occ.log_prob(&tm, &[n])) / 2e-6;
                assert!((fd - g[k]).abs() < 1e-7, "n = {n}, k = {k}: {fd} vs {}", g[k]);
            }
        }
        // Sampled frequencies of the most probable states follow p.
        let p = occ.probs(&theta);
        let mut rng = crate::batch::NctRng::seed_from_u64(3);
        let m = 40_000;
        let mut counts = vec![0usize; p.len()];
        for _ in 0..m {
            counts[occ.sample(&theta, &mut rng).0[0]] += 1;
        }
        for k in 0..p.len() {
            let sd = (p[k] * (1.0 - p[k]) / m as f64).sqrt();
            assert!((counts[k] as f64 / m as f64 - p[k]).abs() < 5.0 * sd + 1e-12, "state {k}");
        }
    }
}
