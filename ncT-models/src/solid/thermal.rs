//! The finite-temperature model of a crystal over its modes ([`crystal_states`], [`thermal_model`])
//! and the estimates of a trained crystal density matrix
//! $\rho = \sum_n p_n |\psi_n\rangle\langle\psi_n|$ over the phonon modes: $F$, $E$, $K$, $V$, $S$,
//! the virial pressure $P = (2K + \operatorname{tr}W)/(3V)$ and the diagonal stress
//! $\sigma_a = (2K/3 + W_{aa})/V$ (the reference's estimators), from independent exact samples
//! $n \sim p$, $Q \sim |\psi_n|^2$ (no Markov chain, so plain standard errors apply).

use super::modes::CrystalModes;
use nct::batch::{BatchEngine, SeedStream};
use nct::classical::mean_and_error;
use nct::quantum::occupation::{OccupationModel, ProductOccupation, ThermalNct};
use nct::quantum::too_many_rejected;
use nct::{Bijector, Dyn, LaplacianMethod, QuantumNct, Separable, Vector};

/// A ThermalNct over the modes of one box.
pub type CrystalThermal<B> = ThermalNct<B, ProductOccupation, Dyn>;

/// The states of the flow `flow` over the modes of `h`: Hermite basis at the harmonic frequencies,
/// sampler tables for `levels` levels, hole guard relative to the lattice energy.
pub fn crystal_states<B: Bijector<Dyn>>(h: &CrystalModes, flow: B, levels: usize, laplacian: LaplacianMethod) -> QuantumNct<B, Dyn> {
    let omega = h.omega();
    let mut states = QuantumNct::new(flow, Vector::from_fn(Dyn(omega.len()), |k| omega[k]), h.masses(), levels.max(1) - 1).with_laplacian(laplacian);
    states.v_floor = h.modes.v0 - 10.0 * omega.iter().sum::<f64>();
    states
}

/// The thermal model of the flow `flow` over the modes of `h` with PSA occupations at the harmonic
/// Boltzmann law.
pub fn thermal_model<B: Bijector<Dyn>>(h: &CrystalModes, flow: B, temperature: f64, levels: usize, laplacian: LaplacianMethod) -> Result<CrystalThermal<B>, String> {
    let omega = h.omega();
    ThermalNct::new(crystal_states(h, flow, levels, laplacian), ProductOccupation::new(1.0 / temperature, &omega, levels), Some(omega.clone())).map_err(|e| e.to_string())
}

/// Estimates per cell, energies in K, pressure and stress in K/Å³ (mean, standard error).
#[derive(Clone, Debug, PartialEq)]
pub struct CrystalEstimate {
    pub f: (f64, f64),
    pub e: (f64, f64),
    pub k: (f64, f64),
    pub v: (f64, f64),
    /// Entropy in $k_B$ (exact for product occupations).
    pub s: f64,
    /// `None` for the harmonic crystal (no volume dependence).
    pub pressure: Option<(f64, f64)>,
    pub stress: Option<[(f64, f64); 3]>,
    pub samples: usize,
    pub rejected: usize,
}

/// Why no estimate could be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EstimateError(pub String);

/// `samples` independent draws of the trained model (`seed` gives a stream separate from training).
pub fn estimate<B: Bijector<Dyn>, O: OccupationModel>(model: &ThermalNct<B, O, Dyn>, h: &CrystalModes, theta: &[f64], samples: usize, seed: u64) -> Result<CrystalEstimate, EstimateError> {
    let (tf, to) = model.split(theta);
    let kt = model.temperature();
    let engine = BatchEngine::new(8);
    let draws = engine.map(samples, &SeedStream::new(seed ^ 0xc125_7a15), 0, |_, rng| {
        let (n, lp) = model.occupation.sample(to, rng);
        let w = model.states.walker(tf, h, &n, rng);
        if w.rejected {
            return None;
        }
        let mech = h.mechanics(w.x.as_slice());
        Some((kt * lp + w.e_loc, w.e_loc, w.kinetic, w.potential, -lp, mech.map(|m| m.virial)))
    });
    let ok: Vec<_> = draws.iter().flatten().collect();
    let rejected = samples - ok.len();
    if ok.len() < 2 || too_many_rejected(rejected, samples) {
        return Err(EstimateError(format!("{rejected} of {samples} walkers were rejected (non-finite or far too low potential); no estimate")));
    }
    let col = |f: &dyn Fn(&&(f64, f64, f64, f64, f64, Option<[[f64; 3]; 3]>)) -> f64| mean_and_error(&ok.iter().map(f).collect::<Vec<_>>());
    let s = model.occupation.exact_entropy(to).unwrap_or_else(|| col(&|d| d.4).0);
    let (pressure, stress) = if ok.iter().all(|d| d.5.is_some()) {
        let p = col(&|d| h.pressure(d.2, &d.5.unwrap()));
        let st = std::array::from_fn(|a| col(&|d| h.stress(d.2, &d.5.unwrap())[a]));
        (Some(p), Some(st))
    } else {
        (None, None)
    };
    let out = CrystalEstimate { f: col(&|d| d.0), e: col(&|d| d.1), k: col(&|d| d.2), v: col(&|d| d.3), s, pressure, stress, samples, rejected };
    if [out.f, out.e, out.k, out.v].iter().any(|(m, e)| !m.is_finite() || !e.is_finite()) || !out.s.is_finite() {
        return Err(EstimateError("an estimate is not finite".into()));
    }
    Ok(out)
}
