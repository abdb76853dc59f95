//! The built-in objectives: classical variational free energy and maximum likelihood, the T = 0
//! ensemble of quantum states, and the finite-temperature free energy.

use super::Objective;
use crate::backend::{Backend, CpuBackend};
use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::batched::BatchedSymplectic;
use crate::classical::{ClassicalNct, FreeEnergy};
use crate::dim::{Size, Vector};
use crate::hamiltonian::{Hamiltonian, Separable};
use crate::latent::{Latent, LatentOscillators};
use crate::layer::{Bijector, SymplecticLayer};
use crate::params::Parametrised;
use crate::quantum::occupation::{OccupationModel, ThermalNct};
use crate::quantum::{QuantumNct, StateEnergy, Weights, too_many_rejected};
use crate::run::classical::CHUNK;

/// Classical variational training, $\min_\theta F_{var} = \mathbb E_q[H + \beta^{-1}\ln q]$
/// (reverse KL to $e^{-\beta H}/Z$), on the batched GEMM path; the batch is cut into four fixed
/// chunks (results independent of the thread count).
pub struct Variational<'a, F, H, N: Size, B = LatentOscillators<N>> {
    pub model: &'a ClassicalNct<F, N, B>,
    pub h: &'a H,
    pub batch: usize,
    engine: BatchEngine,
}

impl<'a, F, H, N: Size, B> Variational<'a, F, H, N, B> {
    pub fn new(model: &'a ClassicalNct<F, N, B>, h: &'a H, batch: usize) -> Self {
        Variational { model, h, batch, engine: BatchEngine::new(batch.div_ceil(4).max(1)) }
    }
}

impl<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>> Variational<'_, F, H, N, B> {
    /// $F_{var}$, $F_{IS}$ and the effective sample size from `samples` fresh samples (a stream
    /// separate from training, derived from `seed`).
    pub fn free_energy(&self, theta: &[f64], samples: usize, seed: u64) -> FreeEnergy {
        self.model.free_energy(theta, self.h, samples, &BatchEngine::new(CHUNK), &SeedStream::new(seed ^ 0x5eed_e7a1), u64::MAX)
    }
}

impl<F: BatchedSymplectic<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>> Objective for Variational<'_, F, H, N, B> {
    fn model(&self) -> &dyn Parametrised {
        self.model
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        self.model.variational_batch(theta, self.h, self.batch, &self.engine, stream, step)
    }
    fn diagnose(&self, theta: &[f64], step: u64, stream: &SeedStream) -> Option<String> {
        variational_diagnose(self, theta, step, stream)
    }
    fn loss_name(&self) -> &str {
        "H + ln q / beta"
    }
    fn kind(&self) -> &'static str {
        "classical"
    }
}

/// [`Variational`] on the per-sample, scalar-generic path, for flows with custom layers that have
/// no batched kernel: the same samples and (to rounding) the same gradients.
pub struct VariationalPerSample<'a, F, H, N: Size, B = LatentOscillators<N>>(pub Variational<'a, F, H, N, B>);

impl<'a, F, H, N: Size, B> VariationalPerSample<'a, F, H, N, B> {
    pub fn new(model: &'a ClassicalNct<F, N, B>, h: &'a H, batch: usize) -> Self {
        VariationalPerSample(Variational::new(model, h, batch))
    }
}

impl<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>> Objective for VariationalPerSample<'_, F, H, N, B> {
    fn model(&self) -> &dyn Parametrised {
        self.0.model
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let v = &self.0;
        let t = v.model.base.table(v.model.split(theta).1);
        v.engine.loss_and_grad(v.batch, theta.len(), stream, step, |_, rng, g| v.model.variational_sample_with(&t, theta, v.h, rng, g).loss)
    }
    fn diagnose(&self, theta: &[f64], step: u64, stream: &SeedStream) -> Option<String> {
        variational_diagnose(&self.0, theta, step, stream)
    }
    fn loss_name(&self) -> &str {
        "H + ln q / beta"
    }
    fn kind(&self) -> &'static str {
        "classical"
    }
}

fn variational_diagnose<F: SymplecticLayer<N>, H: Hamiltonian<N>, N: Size, B: Latent<N>>(v: &Variational<'_, F, H, N, B>, theta: &[f64], step: u64, stream: &SeedStream) -> Option<String> {
    let (model, h) = (v.model, v.h);
    let found = v.engine.map(v.batch, stream, step, |i, rng| {
        let mut g = vec![0.0; theta.len()];
        let z = model.latent_sample(theta, &mut rng.clone());
        let s = model.variational_sample(theta, h, rng, &mut g);
        (i, z, s.loss, g.iter().all(|v| v.is_finite()))
    });
    found.into_iter().find(|(_, _, l, ok)| !l.is_finite() || !ok).map(|(i, z, l, _)| format!("sample {i} of the batch (latent Q = {:?}, P = {:?}; loss {l})", z.q.as_slice(), z.p.as_slice()))
}

/// Maximum likelihood on configurations `data` (momenta drawn from Maxwell–Boltzmann with
/// `masses` every batch; `jitter` adds Gaussian noise of that width to the positions).
pub struct MaximumLikelihood<'a, F, N: Size, B = LatentOscillators<N>> {
    pub model: &'a ClassicalNct<F, N, B>,
    pub data: &'a [Vector<f64, N>],
    pub masses: Vector<f64, N>,
    pub jitter: f64,
    pub batch: usize,
    engine: BatchEngine,
}

impl<'a, F, N: Size, B> MaximumLikelihood<'a, F, N, B> {
    pub fn new(model: &'a ClassicalNct<F, N, B>, data: &'a [Vector<f64, N>], masses: Vector<f64, N>, jitter: f64, batch: usize) -> Self {
        MaximumLikelihood { model, data, masses, jitter, batch, engine: BatchEngine::new(CHUNK) }
    }
}

impl<F: SymplecticLayer<N>, N: Size, B: Latent<N>> Objective for MaximumLikelihood<'_, F, N, B> {
    fn model(&self) -> &dyn Parametrised {
        self.model
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        self.model.mle_batch(theta, self.data, &self.masses, self.jitter, self.batch, &self.engine, stream, step)
    }
    fn loss_name(&self) -> &str {
        "-ln q (per frame)"
    }
    fn kind(&self) -> &'static str {
        "classical"
    }
}

/// Why a quantum step or estimate has no value.
pub fn rejected_message(rejected: usize, total: usize) -> String {
    format!("{rejected} of {total} walkers were rejected (V below the guard or not finite: they fell into the holes of this unbounded surface); lower --lr, or resume from the last checkpoint with --on-nan rollback")
}

/// T = 0: $\min \sum_n w_n \langle\psi_n|H|\psi_n\rangle$ over an ensemble of flow states
/// `labels` with weights `weights`, `walkers` exact samples per state per step.
pub struct Ensemble<'a, B, H, D: Size> {
    pub states: &'a QuantumNct<B, D>,
    pub h: &'a H,
    pub labels: Vec<Vec<usize>>,
    pub weights: Vec<f64>,
    pub walkers: usize,
    engine: BatchEngine,
}

impl<'a, B, H, D: Size> Ensemble<'a, B, H, D> {
    /// `batch` walkers per step shared among the states (at least one each).
    pub fn new(states: &'a QuantumNct<B, D>, h: &'a H, labels: Vec<Vec<usize>>, weights: Weights, batch: usize) -> Self {
        let w = weights.values(labels.len());
        let walkers = (batch / labels.len().max(1)).max(1);
        Ensemble { states, h, labels, weights: w, walkers, engine: BatchEngine::new(32) }
    }
}

impl<B: Bijector<D>, H: Separable<D>, D: Size> Ensemble<'_, B, H, D> {
    /// Energies with errors (and K, V) of every trained state from `samples` exact samples each,
    /// from a stream separate from training; ascending in energy.
    pub fn energies(&self, theta: &[f64], samples: usize, seed: u64, progress: &dyn crate::progress::Progress) -> Vec<StateEnergy> {
        let mut e = self.states.state_energies_with(theta, self.h, &self.labels, samples, &self.engine, &SeedStream::new(seed ^ 0xe7a1), progress);
        e.sort_by(|a, b| a.energy.total_cmp(&b.energy));
        e
    }
}

impl<B: Bijector<D> + Clone, H: Separable<D>, D: Size> Ensemble<'_, B, H, D> {
    /// The Ritz step in the span of the flow states `basis` of the trained flow (jackknife over 20
    /// blocks, `samples` samples from a stream separate from training; the sampler tables are
    /// extended when the basis reaches higher quanta than the trained states).
    pub fn ritz(&self, theta: &[f64], basis: &[Vec<usize>], samples: usize, seed: u64, progress: &dyn crate::progress::Progress) -> Result<crate::quantum::ritz::Ritz, crate::quantum::ritz::RitzError> {
        let top = basis.iter().flatten().copied().max().unwrap_or(0);
        let extended;
        let states = if top > self.states.n_max() {
            extended = self.states.clone().with_n_max(top);
            &extended
        } else {
            self.states
        };
        states.ritz_with(theta, self.h, basis, samples, 20, &self.engine, &SeedStream::new(seed ^ 0x5172), progress)
    }
}

impl<B: Bijector<D>, H: Separable<D>, D: Size> Objective for Ensemble<'_, B, H, D> {
    fn model(&self) -> &dyn Parametrised {
        self.states
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let s = self.states.ensemble_step(theta, self.h, &self.labels, &self.weights, self.walkers, &self.engine, stream, step);
        BatchSum { loss: s.loss, grad: s.grad, samples: 1 }
    }
    fn diagnose(&self, theta: &[f64], step: u64, stream: &SeedStream) -> Option<String> {
        let s = self.states.ensemble_step(theta, self.h, &self.labels, &self.weights, self.walkers, &self.engine, stream, step);
        let total = self.walkers * self.labels.len();
        too_many_rejected(s.rejected, total).then(|| rejected_message(s.rejected, total))
    }
    fn loss_name(&self) -> &str {
        "sum_n w_n E_n"
    }
    fn kind(&self) -> &'static str {
        "quantum"
    }
}

/// Finite temperature: $\min F = \mathbb E_{n\sim p}[k_BT\ln p_n + \langle\psi_n|H|\psi_n\rangle]$
/// over the flow and the occupation model jointly, `batch` samples $(n, x)$ per step; the
/// potentials of each batch come from the [`Backend`] (the CPU one unless [`Thermal::on`]).
pub struct Thermal<'a, B, O, H, D: Size, Bk = CpuBackend> {
    pub model: &'a ThermalNct<B, O, D>,
    pub h: &'a H,
    pub batch: usize,
    engine: BatchEngine,
    backend: Bk,
}

impl<'a, B, O, H, D: Size> Thermal<'a, B, O, H, D> {
    pub fn new(model: &'a ThermalNct<B, O, D>, h: &'a H, batch: usize) -> Self {
        let engine = BatchEngine::new(32);
        Thermal { model, h, batch, engine, backend: CpuBackend { engine } }
    }
}

impl<'a, B, O, H, D: Size, Bk> Thermal<'a, B, O, H, D, Bk> {
    /// The same objective with the batch potentials from `backend`.
    pub fn on<Bk2: Backend>(self, backend: Bk2) -> Thermal<'a, B, O, H, D, Bk2> {
        Thermal { model: self.model, h: self.h, batch: self.batch, engine: self.engine, backend }
    }
}

/// Free energy and its parts with errors, from independent estimates.
#[derive(Clone, Debug, PartialEq)]
pub struct ThermalEstimate {
    pub f: (f64, f64),
    pub e: (f64, f64),
    pub k: (f64, f64),
    pub v: (f64, f64),
    /// Entropy in units of k_B (exact from the occupation model where it has one).
    pub s: f64,
    pub rejected: usize,
    pub drawn: usize,
}

impl<B: Bijector<D>, O: OccupationModel, H: Separable<D>, D: Size, Bk: Backend> Thermal<'_, B, O, H, D, Bk> {
    fn step(&self, theta: &[f64], batch: usize, stream: &SeedStream, step: u64) -> crate::quantum::occupation::ThermalStep {
        self.model.step_with_walkers_on(theta, self.h, batch, &self.engine, &self.backend, stream, step).0
    }
    /// Eight independent estimates of `samples / 8` each; refused (an error saying why) when
    /// too many walkers were rejected or an estimate is not finite.
    pub fn estimate(&self, theta: &[f64], samples: usize, seed: u64) -> Result<ThermalEstimate, crate::run::RunError> {
        use crate::classical::mean_and_error;
        let est: Vec<_> = (0..8).map(|k| self.step(theta, samples.div_ceil(8), &SeedStream::new(seed ^ (0xf00d + k)), 0)).collect();
        let (rejected, drawn) = (est.iter().map(|s| s.rejected).sum::<usize>(), 8 * samples.div_ceil(8));
        if too_many_rejected(rejected, drawn) || est.iter().any(|s| !s.f.is_finite()) {
            return Err(crate::run::RunError::NoEstimate { what: "free energy".into(), why: rejected_message(rejected, drawn) });
        }
        let pick = |f: &dyn Fn(&crate::quantum::occupation::ThermalStep) -> f64| mean_and_error(&est.iter().map(f).collect::<Vec<_>>());
        let s_sample = pick(&|s| s.s).0;
        let s = self.model.occupation.exact_entropy(self.model.split(theta).1).unwrap_or(s_sample);
        Ok(ThermalEstimate { f: pick(&|s| s.f), e: pick(&|s| s.e), k: pick(&|s| s.k), v: pick(&|s| s.v), s, rejected, drawn })
    }
}

impl<B: Bijector<D>, O: OccupationModel, H: Separable<D>, D: Size, Bk: Backend> Objective for Thermal<'_, B, O, H, D, Bk> {
    fn model(&self) -> &dyn Parametrised {
        self.model
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let s = self.step(theta, self.batch, stream, step);
        BatchSum { loss: s.f, grad: s.grad, samples: 1 }
    }
    fn diagnose(&self, theta: &[f64], step: u64, stream: &SeedStream) -> Option<String> {
        let s = self.step(theta, self.batch, stream, step);
        too_many_rejected(s.rejected, self.batch).then(|| rejected_message(s.rejected, self.batch))
    }
    fn loss_name(&self) -> &str {
        "F"
    }
    fn kind(&self) -> &'static str {
        "quantum-thermal"
    }
}
