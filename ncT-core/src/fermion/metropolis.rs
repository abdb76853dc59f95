//! Random-walk Metropolis on $|\Psi|^2$, for Slater states or any log-amplitude (a flow-transformed
//! [`super::FermiState`]): the cross-check of the exact [`super::dpp`] sampler, and the sampler
//! for flows without a cheap inverse. Persistent walkers,
//! single-particle moves $r_i \to r_i + \sigma\xi$, acceptance $\min(1, |\Psi(x')|^2/|\Psi(x)|^2)$
//! from the Slater log-amplitude (a move onto a node is rejected), the step $\sigma$ adapted during
//! burn-in towards 50% acceptance, errors by the blocking analysis of the walker-averaged series.

use super::orbitals::HoOrbitals;
use super::slater::slater;
use super::states::ManyBodyState;
use crate::stats::{Blocking, blocking};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

/// Walkers of one state.
#[derive(Clone, Debug)]
pub struct SlaterMetropolis {
    pub walkers: Vec<Vec<f64>>,
    log_psi: Vec<f64>,
    pub step: f64,
    accepted: usize,
    tried: usize,
}

/// $\ln|\Psi|$ of `state` at `x` (spin-up particles first); `None` on a node.
pub fn log_abs_psi(orbitals: &HoOrbitals, state: &ManyBodyState, x: &[f64]) -> Option<f64> {
    let nu = state.up.len() * orbitals.dim();
    let mut l = 0.0;
    for (occ, part) in [(&state.up, &x[..nu]), (&state.down, &x[nu..])] {
        if !occ.is_empty() {
            l += slater(orbitals, occ, part).ok()?.log_abs;
        }
    }
    Some(l)
}

impl SlaterMetropolis {
    /// `starts`: initial configurations (e.g. exact DPP samples, or any non-nodal points).
    pub fn new(orbitals: &HoOrbitals, state: &ManyBodyState, starts: Vec<Vec<f64>>) -> Self {
        Self::with_amplitude(&|x: &[f64]| log_abs_psi(orbitals, state, x), starts)
    }
    /// Walkers of the amplitude `log_psi` ($\ln|\Psi|$, `None` on a node).
    pub fn with_amplitude(log_psi: &dyn Fn(&[f64]) -> Option<f64>, starts: Vec<Vec<f64>>) -> Self {
        let log_psi = starts.iter().map(|x| log_psi(x).unwrap_or(f64::NEG_INFINITY)).collect();
        SlaterMetropolis { walkers: starts, log_psi, step: 0.5, accepted: 0, tried: 0 }
    }

    /// One sweep: every walker tries one move of every particle.
    pub fn sweep<R: rand::Rng + ?Sized>(&mut self, orbitals: &HoOrbitals, state: &ManyBodyState, rng: &mut R) {
        self.sweep_with(&|x: &[f64]| log_abs_psi(orbitals, state, x), orbitals.dim(), rng)
    }

    /// One sweep of moves of the `d`-dimensional particles under the amplitude `log_psi`.
    pub fn sweep_with<R: rand::Rng + ?Sized>(&mut self, log_psi: &dyn Fn(&[f64]) -> Option<f64>, d: usize, rng: &mut R) {
        for (x, lp) in self.walkers.iter_mut().zip(self.log_psi.iter_mut()) {
            for i in 0..x.len() / d {
                let mut y = x.clone();
                for a in 0..d {
                    let z: f64 = StandardNormal.sample(rng);
                    y[i * d + a] += self.step * z;
                }
                self.tried += 1;
                if let Some(ly) = log_psi(&y) {
                    if rng.random::<f64>().ln() < 2.0 * (ly - *lp) {
                        *x = y;
                        *lp = ly;
                        self.accepted += 1;
                    }
                }
            }
        }
    }

    pub fn acceptance(&self) -> f64 {
        self.accepted as f64 / self.tried.max(1) as f64
    }

    /// `burn_in` sweeps adapting the step, then `sweeps` measured sweeps of `observable` averaged
    /// over the walkers; its mean with a blocking error.
    pub fn estimate<R: rand::Rng + ?Sized>(&mut self, orbitals: &HoOrbitals, state: &ManyBodyState, burn_in: usize, sweeps: usize, observable: impl Fn(&[f64]) -> f64, rng: &mut R) -> Blocking {
        self.estimate_with(&|x: &[f64]| log_abs_psi(orbitals, state, x), orbitals.dim(), burn_in, sweeps, observable, rng)
    }

    /// [`SlaterMetropolis::estimate`] under the amplitude `log_psi`.
    pub fn estimate_with<R: rand::Rng + ?Sized>(&mut self, log_psi: &dyn Fn(&[f64]) -> Option<f64>, d: usize, burn_in: usize, sweeps: usize, observable: impl Fn(&[f64]) -> f64, rng: &mut R) -> Blocking {
        for k in 0..burn_in {
            self.sweep_with(log_psi, d, rng);
            if k % 10 == 9 {
                self.step *= (self.acceptance() / 0.5).clamp(0.5, 2.0);
                self.accepted = 0;
                self.tried = 0;
            }
        }
        let mut series = Vec::with_capacity(sweeps);
        for _ in 0..sweeps {
            self.sweep_with(log_psi, d, rng);
            series.push(self.walkers.iter().map(|x| observable(x)).sum::<f64>() / self.walkers.len() as f64);
        }
        blocking(&series)
    }
}
