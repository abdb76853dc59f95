//! Fermions at finite temperature: $\rho = \sum_n p_n |\psi_n\rangle\langle\psi_n|$ over the
//! enumerated many-body states $n$ (within ΔE of the ground state), $\psi_n$ a [`FermiState`] and
//! $p_n$ a [`CategoricalOccupation`], trained jointly on the variational free energy
//! $$ F = \mathbb E_{n\sim p}\big[k_BT\ln p_n + \mathbb E_{x\sim|\psi_n|^2} E_{loc}(x; n)\big] $$
//! with score-function gradients (Xie, Zhang & Wang, arXiv:2105.08644):
//! $\nabla_\theta F = 2\,\mathbb E[(E_{loc} - b_n)\nabla_\theta\ln|\psi_n|]$ with a per-state baseline
//! $b_n$ (leave-one-out mean of the other walkers in state $n$, the batch mean where there is
//! none), and $\nabla_\phi F = \mathbb E[(f - \bar f)\nabla_\phi\ln p_n]$, $f = k_BT\ln p_n + E_{loc}$.
//! Local energies are clipped at 5 mean absolute deviations for the gradients only. Every sample
//! is exact: $n$ from $p$, $z$ from the DPP, $x = f^{-1}(z)$.

use super::state::FermiState;
use super::states::ManyBodyState;
use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::classical::mean_and_error;
use crate::dim::{Dyn, Vector};
use crate::driver::objective::{ThermalEstimate, rejected_message};
use crate::driver::Objective;
use crate::hamiltonian::Separable;
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised, groups_end_to_end, init_end_to_end};
use crate::quantum::occupation::{CategoricalOccupation, OccupationModel};
use crate::quantum::{clip_mad, too_many_rejected};

/// A flow, the state list and the occupations over it; parameters: the flow's, then the logits.
#[derive(Clone, Debug)]
pub struct ThermalFermions<B> {
    pub state: FermiState<B>,
    pub states: Vec<ManyBodyState>,
    pub occupation: CategoricalOccupation,
}

impl<B: Bijector<Dyn>> ThermalFermions<B> {
    /// Boltzmann start $p_n \propto e^{-\beta\Delta E_n}$ over `states` (their excitations).
    pub fn new(state: FermiState<B>, states: Vec<ManyBodyState>, beta: f64) -> Self {
        let e: Vec<f64> = states.iter().map(|s| s.excitation as f64).collect();
        ThermalFermions { state, states, occupation: CategoricalOccupation::new(beta, &e) }
    }
    pub fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.state.n_params())
    }
    /// The occupation probabilities $p_n$.
    pub fn probs(&self, theta: &[f64]) -> Vec<f64> {
        self.occupation.probs(self.split(theta).1)
    }
}

impl<B: Bijector<Dyn>> Parametrised for ThermalFermions<B> {
    fn n_params(&self) -> usize {
        self.state.n_params() + self.occupation.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        init_end_to_end(&self.state, &self.occupation, rng, theta);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        groups_end_to_end(&self.state, "flow", &self.occupation, "")
    }
}

/// One sample $(n, x)$ with its local energy split into kinetic and potential parts.
#[derive(Clone, Debug)]
pub struct Draw {
    pub n: usize,
    pub log_p: f64,
    pub x: Vector<f64, Dyn>,
    pub kinetic: f64,
    pub potential: f64,
}

crate::wire_struct!(Draw { n, log_p, x, kinetic, potential });

/// Estimates and gradient of one batch.
#[derive(Clone, Debug)]
pub struct FermiThermalStep {
    pub f: (f64, f64),
    pub e: (f64, f64),
    pub k: (f64, f64),
    pub v: (f64, f64),
    pub grad: Vec<f64>,
    pub rejected: usize,
}

/// The finite-temperature objective of the driver (loss: $F$).
pub struct FermiThermal<'a, B, H> {
    pub model: &'a ThermalFermions<B>,
    pub h: &'a H,
    pub walkers: usize,
    engine: BatchEngine,
}

impl<'a, B, H> FermiThermal<'a, B, H> {
    pub fn new(model: &'a ThermalFermions<B>, h: &'a H, walkers: usize) -> Self {
        FermiThermal { model, h, walkers, engine: BatchEngine::new(16) }
    }
}

impl<B: Bijector<Dyn>, H: Separable<Dyn>> FermiThermal<'_, B, H> {
    /// `walkers` exact samples of step `step` (`None`: a sample on a node or not finite).
    pub fn draws(&self, theta: &[f64], walkers: usize, stream: &SeedStream, step: u64) -> Vec<Option<Draw>> {
        let (tf, to) = self.model.split(theta);
        let m = self.model;
        let p = m.occupation.probs(to);
        self.engine.map(walkers, stream, step, |_, rng| {
            let (n, log_p) = m.occupation.sample_from(&p, rng);
            let (x, kinetic, potential) = m.state.walker(tf, &m.states[n], self.h, rng)?;
            Some(Draw { n, log_p, x, kinetic, potential })
        })
    }

    /// Estimates and the gradient of one batch of `walkers` samples.
    pub fn step(&self, theta: &[f64], walkers: usize, stream: &SeedStream, step: u64, with_grad: bool) -> FermiThermalStep {
        let all = self.draws(theta, walkers, stream, step);
        let ws: Vec<Draw> = all.into_iter().flatten().collect();
        let rejected = walkers - ws.len();
        let kt = 1.0 / self.model.occupation.beta;
        let es: Vec<f64> = ws.iter().map(|w| w.kinetic + w.potential).collect();
        let fs: Vec<f64> = ws.iter().zip(&es).map(|(w, e)| kt * w.log_p + e).collect();
        let pick = |f: &dyn Fn(&Draw) -> f64| mean_and_error(&ws.iter().map(f).collect::<Vec<_>>());
        let mut out = FermiThermalStep { f: mean_and_error(&fs), e: mean_and_error(&es), k: pick(&|w| w.kinetic), v: pick(&|w| w.potential), grad: vec![0.0; theta.len()], rejected };
        if too_many_rejected(rejected, walkers) {
            out.f.0 = f64::NAN;
            return out;
        }
        if !with_grad {
            return out;
        }
        let ce = clip_mad(&es, 5.0);
        let cf = clip_mad(&fs, 5.0);
        let nb = ws.len() as f64;
        let (me, mf) = (ce.iter().sum::<f64>() / nb, cf.iter().sum::<f64>() / nb);
        // Per-state sums for the leave-one-out baselines.
        let ns = self.model.states.len();
        let (mut sum, mut count) = (vec![0.0; ns], vec![0usize; ns]);
        for (w, e) in ws.iter().zip(&ce) {
            sum[w.n] += e;
            count[w.n] += 1;
        }
        let (tf, to) = self.model.split(theta);
        let nf = tf.len();
        let p = self.model.occupation.probs(to);
        let sum = self.engine.sum_chunks(ws.len(), theta.len(), stream, step ^ 0x7e57_f00d, |range, _| {
            let mut g = vec![0.0; theta.len()];
            for j in range {
                let w = &ws[j];
                let b = if count[w.n] >= 2 { (sum[w.n] - ce[j]) / (count[w.n] - 1) as f64 } else { me };
                self.model.state.add_log_psi_grad(tf, &self.model.states[w.n], &w.x, 2.0 * (ce[j] - b) / nb, &mut g[..nf]);
                self.model.occupation.add_log_prob_grad_from(&p, w.n, (cf[j] - mf) / nb, &mut g[nf..]);
            }
            (0.0, g)
        });
        out.grad = sum.grad;
        out
    }

    /// Eight independent estimates of `samples / 8` each; the entropy is exact (the categorical's).
    /// Refused (an error saying why) when too many walkers were rejected or an estimate is not finite.
    pub fn estimate(&self, theta: &[f64], samples: usize, seed: u64) -> Result<ThermalEstimate, crate::run::RunError> {
        let per = samples.div_ceil(8).max(2);
        let est: Vec<FermiThermalStep> = (0..8).map(|k| self.step(theta, per, &SeedStream::new(seed ^ (0xf00d + k)), 0, false)).collect();
        let (rejected, drawn) = (est.iter().map(|s| s.rejected).sum::<usize>(), 8 * per);
        if too_many_rejected(rejected, drawn) || est.iter().any(|s| !s.f.0.is_finite()) {
            return Err(crate::run::RunError::NoEstimate { what: "free energy".into(), why: rejected_message(rejected, drawn) });
        }
        let pick = |f: &dyn Fn(&FermiThermalStep) -> f64| mean_and_error(&est.iter().map(f).collect::<Vec<_>>());
        let s = self.model.occupation.exact_entropy(self.model.split(theta).1).unwrap_or(f64::NAN);
        Ok(ThermalEstimate { f: pick(&|s| s.f.0), e: pick(&|s| s.e.0), k: pick(&|s| s.k.0), v: pick(&|s| s.v.0), s, rejected, drawn })
    }

    /// Energy $\langle\psi_n|H|\psi_n\rangle$ of state `n` from `samples` exact samples: (mean, error).
    pub fn state_energy(&self, theta: &[f64], n: usize, samples: usize, seed: u64) -> (f64, f64) {
        let tf = self.model.split(theta).0;
        let st = &self.model.states[n];
        let es: Vec<f64> = self
            .engine
            .map(samples, &SeedStream::new(seed), n as u64, |_, rng| self.model.state.walker(tf, st, self.h, rng).map(|(_, k, v)| k + v))
            .into_iter()
            .flatten()
            .collect();
        mean_and_error(&es)
    }
}

impl<B: Bijector<Dyn>, H: Separable<Dyn>> Objective for FermiThermal<'_, B, H> {
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
