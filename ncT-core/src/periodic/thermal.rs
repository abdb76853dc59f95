//! The electron gas at finite temperature: $\rho = \sum_n p_n|\psi_n\rangle\langle\psi_n|$ with
//! $n$ a set of N occupied twisted plane waves, $\psi_n$ a [`GasState`] and $p_n$ an
//! [`OrbitalOccupation`], trained jointly on the variational free energy (Xie, Zhang & Wang,
//! SciPost Phys. 14, 154 (2023))
//! $$ F = \mathbb E_{n\sim p}\Big[k_BT\ln p_n + \mathbb E_{x\sim|\psi_n|^2}\operatorname{Re}E_{loc}(x;n)\Big]
//!    \ \ge\ F_{exact}, \qquad E_{loc} = \frac{H\psi_n}{\psi_n} = K_{loc} + V(x). $$
//! Gradients by the score function: $\nabla_\theta F = 2\operatorname{Re}\mathbb E[(E_{loc} - b)\,
//! \partial_\theta\ln\psi_n^*]$ with $b$ the batch mean of $\operatorname{Re}E_{loc}$ (any constant
//! baseline is unbiased: $\mathbb E_{|\psi_n|^2}\operatorname{Re}\partial_\theta\ln\psi_n = 0$), and
//! $\nabla_\phi F = \mathbb E[(f - \bar f)\nabla_\phi\ln p_n]$, $f = k_BT\ln p_n + \operatorname{Re}E_{loc}$.
//! Local energies are clipped at 5 mean absolute deviations for the gradients only. Every sample
//! is exact: $n$ from $p$, $z$ from the plane-wave DPP, $x = f^{-1}(z)$; no Markov chain.

use super::state::{CellPotential, GasState};
use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::classical::mean_and_error;
use crate::dim::{Dyn, Vector};
use crate::driver::Objective;
use crate::driver::objective::{ThermalEstimate, rejected_message};
use crate::error::ConfigError;
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised, groups_end_to_end, init_end_to_end};
use crate::quantum::occupation::CategoricalOccupation;
use crate::quantum::{clip_mad, too_many_rejected};
use nalgebra::Complex;
use std::collections::HashMap;

/// A set of occupied orbitals (indices into the energy-sorted orbitals, increasing) and its
/// one-body excitation energy above the lowest set.
#[derive(Clone, Debug, PartialEq)]
pub struct OrbitalSet {
    pub occupied: Vec<usize>,
    pub excitation: f64,
}

/// Every set of `particles` orbitals whose one-body energy lies within `window` of the lowest
/// set (`energies` sorted increasing, as [`super::TwistedPlaneWaves`] gives them), sorted by
/// excitation. Refused, with the count reached, when there are more than `limit`.
pub fn orbital_sets(energies: &[f64], particles: usize, window: f64, limit: usize) -> Result<Vec<OrbitalSet>, ConfigError> {
    if particles == 0 || particles > energies.len() {
        return Err(ConfigError::Value { what: "particles", value: particles.to_string(), allowed: "between 1 and the number of orbitals" });
    }
    if !(window.is_finite() && window >= 0.0) {
        return Err(ConfigError::Value { what: "excitation window", value: window.to_string(), allowed: "a finite energy >= 0" });
    }
    if energies.windows(2).any(|w| !(w[0] <= w[1])) {
        return Err(ConfigError::Value { what: "orbital energies", value: "unsorted or not finite".into(), allowed: "increasing finite energies" });
    }
    let ground: f64 = energies[..particles].iter().sum();
    let top = ground + window + 1e-12 * (1.0 + ground.abs());
    let mut out = Vec::new();
    let mut chosen = Vec::with_capacity(particles);
    fn walk(e: &[f64], left: usize, from: usize, sum: f64, top: f64, chosen: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, f64)>, limit: usize) -> bool {
        if left == 0 {
            out.push((chosen.clone(), sum));
            return out.len() <= limit;
        }
        for j in from..=e.len() - left {
            // The cheapest completion takes the next `left` orbitals.
            if sum + e[j..j + left].iter().sum::<f64>() > top {
                break;
            }
            chosen.push(j);
            let ok = walk(e, left - 1, j + 1, sum + e[j], top, chosen, out, limit);
            chosen.pop();
            if !ok {
                return false;
            }
        }
        true
    }
    if !walk(energies, particles, 0, 0.0, top, &mut chosen, &mut out, limit) {
        return Err(ConfigError::Value { what: "excitation window", value: format!("{window} (more than {limit} orbital sets)"), allowed: "a window holding at most the set limit; use an autoregressive occupation model for large windows" });
    }
    let mut sets: Vec<OrbitalSet> = out.into_iter().map(|(occupied, e)| OrbitalSet { occupied, excitation: (e - ground).max(0.0) }).collect();
    sets.sort_by(|a, b| a.excitation.total_cmp(&b.excitation).then_with(|| a.occupied.cmp(&b.occupied)));
    Ok(sets)
}

/// A normalised distribution over sets of occupied orbitals with exact sampling.
pub trait OrbitalOccupation: Parametrised + Sync {
    /// What a batch computes once from the parameters (probabilities, caches).
    type Ready: Sync;
    fn beta(&self) -> f64;
    fn ready(&self, theta: &[f64]) -> Self::Ready;
    /// An exact sample (occupied orbitals, increasing) and its $\ln p_n$.
    fn sample(&self, ready: &Self::Ready, rng: &mut dyn rand::Rng) -> (Vec<usize>, f64);
    /// $\ln p_n$ of the set `occupied` ($-\infty$ outside the model's support).
    fn log_prob(&self, theta: &[f64], ready: &Self::Ready, occupied: &[usize]) -> f64;
    /// Adds `coef` $\partial\ln p_n/\partial\phi$ to `g`.
    fn add_log_prob_grad(&self, theta: &[f64], ready: &Self::Ready, occupied: &[usize], coef: f64, g: &mut [f64]);
    /// The exact entropy in $k_B$ where it is cheap, else `None` (then $-\mathbb E\ln p$).
    fn exact_entropy(&self, _ready: &Self::Ready) -> Option<f64> {
        None
    }
}

/// A categorical distribution over enumerated [`OrbitalSet`]s: logits $b_n - \beta\Delta E_n$, so at
/// $b = 0$ it is the free-fermion Boltzmann law restricted to the sets.
#[derive(Clone, Debug)]
pub struct EnumeratedOccupation {
    pub sets: Vec<OrbitalSet>,
    pub categorical: CategoricalOccupation,
    index: HashMap<Vec<usize>, usize>,
}

impl EnumeratedOccupation {
    pub fn new(sets: Vec<OrbitalSet>, beta: f64) -> Self {
        let e: Vec<f64> = sets.iter().map(|s| s.excitation).collect();
        let index = sets.iter().enumerate().map(|(k, s)| (s.occupied.clone(), k)).collect();
        EnumeratedOccupation { categorical: CategoricalOccupation::new(beta, &e), sets, index }
    }
}

impl Parametrised for EnumeratedOccupation {
    fn n_params(&self) -> usize {
        self.categorical.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        self.categorical.init_params(rng, theta)
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        self.categorical.param_groups()
    }
}

impl OrbitalOccupation for EnumeratedOccupation {
    type Ready = Vec<f64>;
    fn beta(&self) -> f64 {
        self.categorical.beta
    }
    fn ready(&self, theta: &[f64]) -> Vec<f64> {
        self.categorical.probs(theta)
    }
    fn sample(&self, p: &Vec<f64>, rng: &mut dyn rand::Rng) -> (Vec<usize>, f64) {
        let (n, lp) = self.categorical.sample_from(p, rng);
        (self.sets[n].occupied.clone(), lp)
    }
    fn log_prob(&self, _theta: &[f64], p: &Vec<f64>, occupied: &[usize]) -> f64 {
        self.index.get(occupied).map_or(f64::NEG_INFINITY, |&n| p[n].ln())
    }
    fn add_log_prob_grad(&self, _theta: &[f64], p: &Vec<f64>, occupied: &[usize], coef: f64, g: &mut [f64]) {
        if let Some(&n) = self.index.get(occupied) {
            self.categorical.add_log_prob_grad_from(p, n, coef, g);
        }
    }
    fn exact_entropy(&self, p: &Vec<f64>) -> Option<f64> {
        Some(-p.iter().filter(|&&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>())
    }
}

/// A flow over the plane-wave states and an occupation model; parameters: the flow's, then the
/// occupation's.
#[derive(Clone, Debug)]
pub struct ThermalGas<B, O> {
    pub state: GasState<B>,
    pub occupation: O,
}

impl<B: Bijector<Dyn>, O: OrbitalOccupation> ThermalGas<B, O> {
    pub fn new(state: GasState<B>, occupation: O) -> Self {
        ThermalGas { state, occupation }
    }
    pub fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.state.n_params())
    }
}

impl<B: Bijector<Dyn>, O: OrbitalOccupation> Parametrised for ThermalGas<B, O> {
    fn n_params(&self) -> usize {
        self.state.n_params() + self.occupation.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        init_end_to_end(&self.state, &self.occupation, rng, theta);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        groups_end_to_end(&self.state, "flow", &self.occupation, "occupation")
    }
}

/// One exact sample $(n, x)$ with its complex kinetic and real potential local energy.
#[derive(Clone, Debug)]
pub struct GasDraw {
    pub occupied: Vec<usize>,
    pub log_p: f64,
    pub x: Vector<f64, Dyn>,
    pub kinetic: Complex<f64>,
    pub potential: f64,
}

crate::wire_struct!(GasDraw { occupied, log_p, x, kinetic, potential });

/// Estimates and gradient of one batch (energies in Ry / r_s², totals).
#[derive(Clone, Debug)]
pub struct GasStep {
    pub f: (f64, f64),
    pub e: (f64, f64),
    pub k: (f64, f64),
    pub v: (f64, f64),
    /// $\operatorname{Im}E_{loc}$: zero on average for a Hermitian $H$.
    pub e_imag: (f64, f64),
    /// $-\ln p_n$, whose mean is the entropy.
    pub s: (f64, f64),
    pub grad: Vec<f64>,
    pub rejected: usize,
}

/// The thermal estimate and the mean imaginary local energy.
#[derive(Clone, Debug)]
pub struct GasEstimate {
    pub thermal: ThermalEstimate,
    pub e_imag: (f64, f64),
}

/// The free-energy objective of the driver (loss: $F$). With [`GasThermal::with_sr`] the
/// gradient it returns is the stochastic-reconfiguration step (block-diagonal: the quantum Fisher
/// matrix of the flow, $\operatorname{Re}\langle\Delta O^\dagger\Delta O\rangle$ with
/// $O = \partial_\theta\ln\psi_n$, and the classical Fisher matrix of the occupations, both
/// centred over the batch), for a driver with plain gradient descent.
pub struct GasThermal<'a, B, O, V> {
    pub model: &'a ThermalGas<B, O>,
    pub potential: &'a V,
    pub walkers: usize,
    pub sr: Option<crate::sr::SrConfig>,
    engine: BatchEngine,
}

impl<'a, B, O, V> GasThermal<'a, B, O, V> {
    pub fn new(model: &'a ThermalGas<B, O>, potential: &'a V, walkers: usize) -> Self {
        GasThermal { model, potential, walkers, sr: None, engine: BatchEngine::new(16) }
    }
    /// Precondition the gradient by stochastic reconfiguration.
    pub fn with_sr(mut self, config: crate::sr::SrConfig) -> Self {
        self.sr = Some(config);
        self
    }
}

impl<B: Bijector<Dyn>, O: OrbitalOccupation, V: CellPotential> GasThermal<'_, B, O, V> {
    /// `walkers` exact samples of step `step` (`None`: on a node or not finite).
    pub fn draws(&self, theta: &[f64], walkers: usize, stream: &SeedStream, step: u64) -> Vec<Option<GasDraw>> {
        self.draws_from(theta, &self.model.occupation.ready(self.model.split(theta).1), walkers, stream, step)
    }

    /// [`Self::draws`] with the occupation model's batch state `ready` already computed.
    fn draws_from(&self, theta: &[f64], ready: &O::Ready, walkers: usize, stream: &SeedStream, step: u64) -> Vec<Option<GasDraw>> {
        let tf = self.model.split(theta).0;
        let m = self.model;
        self.engine.map(walkers, stream, step, |_, rng| {
            let (occupied, log_p) = m.occupation.sample(ready, rng);
            let x = m.state.sample(tf, &occupied, rng);
            let kinetic = m.state.local_kinetic(tf, &occupied, x.as_slice())?;
            let potential = self.potential.potential(x.as_slice());
            potential.is_finite().then_some(GasDraw { occupied, log_p, x, kinetic, potential })
        })
    }

    /// Estimates and (with `with_grad`) the gradient of one batch of `walkers` samples.
    pub fn step(&self, theta: &[f64], walkers: usize, stream: &SeedStream, step: u64, with_grad: bool) -> GasStep {
        let ready = self.model.occupation.ready(self.model.split(theta).1);
        let ws: Vec<GasDraw> = self.draws_from(theta, &ready, walkers, stream, step).into_iter().flatten().collect();
        let rejected = walkers - ws.len();
        let kt = 1.0 / self.model.occupation.beta();
        let es: Vec<f64> = ws.iter().map(|w| w.kinetic.re + w.potential).collect();
        let fs: Vec<f64> = ws.iter().zip(&es).map(|(w, e)| kt * w.log_p + e).collect();
        let pick = |f: &dyn Fn(&GasDraw) -> f64| mean_and_error(&ws.iter().map(f).collect::<Vec<_>>());
        let mut out = GasStep {
            f: mean_and_error(&fs),
            e: mean_and_error(&es),
            k: pick(&|w| w.kinetic.re),
            v: pick(&|w| w.potential),
            e_imag: pick(&|w| w.kinetic.im),
            s: pick(&|w| -w.log_p),
            grad: vec![0.0; theta.len()],
            rejected,
        };
        if too_many_rejected(rejected, walkers) {
            out.f.0 = f64::NAN;
            return out;
        }
        if !with_grad {
            return out;
        }
        let ce = clip_mad(&es, 5.0);
        let ci = clip_mad(&ws.iter().map(|w| w.kinetic.im).collect::<Vec<_>>(), 5.0);
        let cf = clip_mad(&fs, 5.0);
        let nb = ws.len() as f64;
        let (me, mf) = (ce.iter().sum::<f64>() / nb, cf.iter().sum::<f64>() / nb);
        let (tf, to) = self.model.split(theta);
        let nf = tf.len();
        let sum = self.engine.sum_chunks(ws.len(), theta.len(), stream, step ^ 0x7e57_f00d, |range, _| {
            let mut g = vec![0.0; theta.len()];
            for j in range {
                let w = &ws[j];
                let weight = Complex::new(ce[j] - me, ci[j]) * (2.0 / nb);
                self.model.state.add_log_psi_grad(tf, &w.occupied, w.x.as_slice(), weight, &mut g[..nf]);
                self.model.occupation.add_log_prob_grad(to, &ready, &w.occupied, (cf[j] - mf) / nb, &mut g[nf..]);
            }
            (0.0, g)
        });
        out.grad = sum.grad;
        if let Some(sr) = self.sr {
            out.grad = self.sr_step(theta, &ready, &ws, &out.grad, sr).unwrap_or_else(|_| vec![f64::NAN; theta.len()]);
        }
        out
    }

    /// The stochastic-reconfiguration step of the gradient `grad` from the scores of the draws.
    fn sr_step(&self, theta: &[f64], ready: &O::Ready, ws: &[GasDraw], grad: &[f64], sr: crate::sr::SrConfig) -> Result<Vec<f64>, crate::sr::SrError> {
        use crate::sr::{Scores, natural_gradient};
        let (tf, to) = self.model.split(theta);
        let (nf, no, n) = (tf.len(), to.len(), ws.len());
        // Per sample: Re and Im of d ln psi / d theta (two VJPs), and d ln p / d phi (no random
        // numbers are drawn, so the stream is immaterial).
        let rows: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = self.engine.map(n, &SeedStream::new(0), 0, |j, _| {
            let w = &ws[j];
            let (mut re, mut im, mut occ) = (vec![0.0; nf], vec![0.0; nf], vec![0.0; no]);
            self.model.state.add_log_psi_grad(tf, &w.occupied, w.x.as_slice(), Complex::new(1.0, 0.0), &mut re);
            self.model.state.add_log_psi_grad(tf, &w.occupied, w.x.as_slice(), Complex::new(0.0, 1.0), &mut im);
            self.model.occupation.add_log_prob_grad(to, ready, &w.occupied, 1.0, &mut occ);
            (re, im, occ)
        });
        let mut raw_flow = Vec::with_capacity(2 * n * nf);
        rows.iter().for_each(|r| raw_flow.extend_from_slice(&r.0));
        rows.iter().for_each(|r| raw_flow.extend_from_slice(&r.1));
        let raw_occ: Vec<f64> = rows.iter().flat_map(|r| r.2.iter().cloned()).collect();
        let (sf, so) = (Scores::centred(&raw_flow, nf, 2), Scores::centred(&raw_occ, no, 1));
        let mut df = if nf > 0 { natural_gradient(&sf, &grad[..nf], sr.damping)? } else { vec![] };
        let mut dn = if no > 0 { natural_gradient(&so, &grad[nf..], sr.damping)? } else { vec![] };
        let norm = (sf.metric(&df) + so.metric(&dn)).sqrt();
        if norm > sr.max_norm {
            let c = sr.max_norm / norm;
            df.iter_mut().chain(dn.iter_mut()).for_each(|v| *v *= c);
        }
        df.extend(dn);
        Ok(df)
    }

    /// Eight independent estimates of `samples / 8` each; the entropy is the occupation model's
    /// exact one where it has one. Refused (an error saying why) when too many walkers were
    /// rejected or an estimate is not finite.
    pub fn estimate(&self, theta: &[f64], samples: usize, seed: u64) -> Result<GasEstimate, crate::run::RunError> {
        let per = samples.div_ceil(8).max(2);
        let est: Vec<GasStep> = (0..8).map(|k| self.step(theta, per, &SeedStream::new(seed ^ (0xf00d + k)), 0, false)).collect();
        let (rejected, drawn) = (est.iter().map(|s| s.rejected).sum::<usize>(), 8 * per);
        if too_many_rejected(rejected, drawn) || est.iter().any(|s| !(s.f.0.is_finite() && s.e_imag.0.is_finite())) {
            return Err(crate::run::RunError::NoEstimate { what: "free energy".into(), why: rejected_message(rejected, drawn) });
        }
        let pick = |f: &dyn Fn(&GasStep) -> f64| mean_and_error(&est.iter().map(f).collect::<Vec<_>>());
        let ready = self.model.occupation.ready(self.model.split(theta).1);
        let s = self.model.occupation.exact_entropy(&ready).unwrap_or(pick(&|s| s.s.0).0);
        Ok(GasEstimate {
            thermal: ThermalEstimate { f: pick(&|s| s.f.0), e: pick(&|s| s.e.0), k: pick(&|s| s.k.0), v: pick(&|s| s.v.0), s, rejected, drawn },
            e_imag: pick(&|s| s.e_imag.0),
        })
    }
}

impl<B: Bijector<Dyn>, V: CellPotential> GasThermal<'_, B, EnumeratedOccupation, V> {
    /// The stratified estimate over the enumerated sets: about `samples` exact samples, shared
    /// among the sets with $p_n > 10^{-12}$ in proportion to $p_n$ (at least 16 each), give $E_n$,
    /// $K_n$, $V_n$ and $\operatorname{Im}E_n$ with errors, and $F = \sum_n p_n(k_BT\ln p_n + E_n)$,
    /// $E = \sum_n p_n E_n$ with the exact occupations and entropy: the spread of energies between
    /// sets does not enter the error bars. Refused when too many walkers were rejected or a mean
    /// is not finite.
    pub fn stratified_estimate(&self, theta: &[f64], samples: usize, seed: u64) -> Result<GasEstimate, crate::run::RunError> {
        let (tf, to) = self.model.split(theta);
        let m = self.model;
        let p = m.occupation.ready(to);
        let kt = 1.0 / m.occupation.beta();
        let stream = SeedStream::new(seed);
        let (mut acc, mut var) = ([0.0; 5], [0.0; 5]);
        let (mut rejected, mut drawn) = (0, 0);
        for (n, set) in m.occupation.sets.iter().enumerate().filter(|(n, _)| p[*n] > 1e-12) {
            let occ = &set.occupied;
            let per = ((samples as f64 * p[n]).round() as usize).max(16);
            let ws: Vec<(f64, f64, f64)> = self
                .engine
                .map(per, &stream, n as u64, |_, rng| {
                    let x = m.state.sample(tf, occ, rng);
                    let k = m.state.local_kinetic(tf, occ, x.as_slice())?;
                    let v = self.potential.potential(x.as_slice());
                    v.is_finite().then_some((k.re, v, k.im))
                })
                .into_iter()
                .flatten()
                .collect();
            rejected += per - ws.len();
            drawn += per;
            let parts = [
                mean_and_error(&ws.iter().map(|w| kt * p[n].ln() + w.0 + w.1).collect::<Vec<_>>()),
                mean_and_error(&ws.iter().map(|w| w.0 + w.1).collect::<Vec<_>>()),
                mean_and_error(&ws.iter().map(|w| w.0).collect::<Vec<_>>()),
                mean_and_error(&ws.iter().map(|w| w.1).collect::<Vec<_>>()),
                mean_and_error(&ws.iter().map(|w| w.2).collect::<Vec<_>>()),
            ];
            for (k, (mean, err)) in parts.iter().enumerate() {
                acc[k] += p[n] * mean;
                var[k] += (p[n] * err).powi(2);
            }
        }
        if too_many_rejected(rejected, drawn) || acc.iter().chain(&var).any(|v| !v.is_finite()) {
            return Err(crate::run::RunError::NoEstimate { what: "free energy".into(), why: rejected_message(rejected, drawn) });
        }
        let pair = |k: usize| (acc[k], var[k].sqrt());
        let s = m.occupation.exact_entropy(&p).unwrap_or(f64::NAN);
        Ok(GasEstimate { thermal: ThermalEstimate { f: pair(0), e: pair(1), k: pair(2), v: pair(3), s, rejected, drawn }, e_imag: pair(4) })
    }
}

impl<B: Bijector<Dyn>, O: OrbitalOccupation, V: CellPotential> Objective for GasThermal<'_, B, O, V> {
    fn model(&self) -> &dyn Parametrised {
        self.model
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let s = self.step(theta, self.walkers, stream, step, true);
        BatchSum { loss: s.f.0, grad: s.grad, samples: 1 }
    }
    fn diagnose(&self, theta: &[f64], step: u64, stream: &SeedStream) -> Option<String> {
        let s = self.step(theta, self.walkers, stream, step, false);
        too_many_rejected(s.rejected, self.walkers).then(|| rejected_message(s.rejected, self.walkers))
    }
    fn loss_name(&self) -> &str {
        "F"
    }
    fn kind(&self) -> &'static str {
        "quantum-thermal"
    }
}

/// The first-order (Gibbs–Bogoliubov) bound $F_0 + \langle V\rangle_0 \ge F$: the exact free-electron
/// $F_0$ of the basis and the mean potential over the canonical free-electron ensemble, estimated
/// from `samples` exact samples (sets from [`super::CanonicalElectrons`], positions from the
/// plane-wave DPP). It is the free energy of the identity flow with free-electron occupations.
/// Returns $(F_0 + \langle V\rangle_0$, its error$)$.
pub fn first_order_free_energy<V: CellPotential>(orbitals: &super::TwistedPlaneWaves, particles: usize, beta: f64, potential: &V, samples: usize, seed: u64) -> (f64, f64) {
    let canonical = super::CanonicalElectrons::new(&orbitals.energies(), particles, beta);
    let dpp = super::PlaneWaveDpp { orbitals };
    let vs: Vec<f64> = BatchEngine::new(16).map(samples.max(2), &SeedStream::new(seed), 0, |_, rng| {
        let (occ, _) = canonical.sample(rng);
        potential.potential(&dpp.sample(&occ, rng))
    });
    let (v, err) = mean_and_error(&vs);
    (-canonical.ln_z() / beta + v, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagonal::IdentityFlow;
    use crate::periodic::{TwistedPlaneWaves, free_electron_thermo};

    fn orbitals(n: usize) -> TwistedPlaneWaves {
        TwistedPlaneWaves::new((std::f64::consts::PI * n as f64).sqrt(), &[0.25, 0.25], 25)
    }

    /// Every subset by bit masks: the independent count of the window.
    fn brute_force(e: &[f64], n: usize, window: f64) -> Vec<(Vec<usize>, f64)> {
        let ground: f64 = e[..n].iter().sum();
        (0u32..1 << e.len())
            .filter(|m| m.count_ones() as usize == n)
            .map(|m| (0..e.len()).filter(|&j| m >> j & 1 == 1).collect::<Vec<usize>>())
            .map(|s| {
                let ex = s.iter().map(|&j| e[j]).sum::<f64>() - ground;
                (s, ex)
            })
            .filter(|(_, ex)| *ex <= window + 1e-9)
            .collect()
    }

    #[test]
    fn orbital_sets_are_every_set_in_the_window() {
        let e: Vec<f64> = orbitals(4).energies()[..14].to_vec();
        for (n, window) in [(4usize, 0.0), (4, 3.0), (3, 7.5), (1, 100.0)] {
            let sets = orbital_sets(&e, n, window, 10_000).unwrap();
            let mut want = brute_force(&e, n, window);
            want.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            assert_eq!(sets.len(), want.len(), "N = {n}, window {window}");
            for (s, (occ, ex)) in sets.iter().zip(&want) {
                assert!(s.occupied == *occ && (s.excitation - ex.max(0.0)).abs() < 1e-9);
            }
        }
        assert!(orbital_sets(&e, 4, 50.0, 100).is_err() && orbital_sets(&e, 0, 1.0, 100).is_err() && orbital_sets(&e, 2, f64::NAN, 100).is_err());
    }

    struct NoPotential;
    impl CellPotential for NoPotential {
        fn potential(&self, _: &[f64]) -> f64 {
            0.0
        }
    }

    #[test]
    fn free_electrons_in_the_full_window_give_the_exact_canonical_thermodynamics() {
        // N = 2, every pair of 21 orbitals: the Boltzmann start is the exact free-electron density
        // matrix of that basis, with zero-variance local energies; F, E, S are the recursion's.
        let n = 2;
        let mut pw = orbitals(n);
        pw.n.truncate(21);
        pw.k.truncate(21);
        let beta = 1.0 / (4.0 * 0.15);
        let sets = orbital_sets(&pw.energies(), n, 1e9, 1000).unwrap();
        assert_eq!(sets.len(), 210);
        let exact = free_electron_thermo(&pw, n, beta);
        let model = ThermalGas::new(GasState::new(IdentityFlow::new(Dyn(2 * n)), pw, n).unwrap(), EnumeratedOccupation::new(sets, beta));
        let theta = vec![0.0; model.n_params()];
        let obj = GasThermal::new(&model, &NoPotential, 64);
        let est = obj.estimate(&theta, 20_000, 3).unwrap();
        let t = &est.thermal;
        assert!((t.s - exact.s).abs() < 1e-10, "S {} vs {}", t.s, exact.s);
        assert!((t.e.0 - exact.e).abs() < 4.0 * t.e.1 + 1e-9 && (t.f.0 - exact.f).abs() < 4.0 * t.f.1 + 1e-9, "E {:?} F {:?} vs {} {}", t.e, t.f, exact.e, exact.f);
        assert!(est.e_imag.0.abs() < 1e-9, "{:?}", est.e_imag);
        // F is exact per sample: kT ln p_n + E_n = -kT ln Z.
        assert!(t.f.1 < 1e-9 && (t.f.0 - exact.f).abs() < 1e-9, "{:?} vs {}", t.f, exact.f);
    }
}
