//! Random-walk Metropolis sampling of $|\psi_n(x)|^2$ with persistent walkers, for flows without a
//! cheap inverse and as a cross-check of exact sampling.
//!
//! Proposals $x' = x + s\,\sigma\odot\xi$, $\xi \sim N(0, 1)$, with per-coordinate widths
//! $\sigma_i = (m_i\omega_i)^{-1/2}$ (the harmonic length of each mode, so stiff and soft modes move
//! alike) and a global scale $s$ adapted during burn-in towards a target acceptance. Each walker
//! draws from the chunk streams of the [`BatchEngine`], so chains are identical for any thread
//! count. Energies are averaged over walkers per sweep and the error comes from the blocking
//! analysis of that series ([`crate::stats::blocking`]).

use super::{QuantumNct, StateEnergy, Walker};
use crate::batch::{BatchEngine, SeedStream};
use crate::hamiltonian::Separable;
use crate::layer::Bijector;
use crate::dim::{Size, Vector};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

/// Persistent Metropolis walkers.
#[derive(Clone, Debug)]
pub struct Metropolis<D: Size> {
    pub walkers: Vec<Vector<f64, D>>,
    log_prob: Vec<f64>,
    sigma: Vector<f64, D>,
    /// Global proposal scale (multiplies $\sigma_i$).
    pub scale: f64,
    /// Acceptance rate the burn-in adaptation aims at.
    pub target_acceptance: f64,
    key: u64,
}

/// Chain diagnostics of [`QuantumNct::metropolis_energy`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChainStats {
    /// Acceptance rate over the production sweeps.
    pub acceptance: f64,
    /// Final proposal scale.
    pub scale: f64,
    /// Integrated autocorrelation time of the sweep-averaged energy, in sweeps (blocking).
    pub tau: f64,
    /// Recorded sweeps.
    pub sweeps: usize,
}

impl<D: Size> Metropolis<D> {
    /// `walkers` chains started from the harmonic density of label `n` in the basis of `omega`,
    /// `masses`: $x_i \sim N(0, (n_i + \tfrac12)/(m_i\omega_i))$.
    pub fn new(omega: &Vector<f64, D>, masses: &Vector<f64, D>, n: &[usize], walkers: usize, stream: &SeedStream) -> Self {
        let sigma = omega.zip_map(masses, |w, m| 1.0 / (w * m).sqrt());
        let mut rng = stream.named("metropolis-init");
        let walkers = (0..walkers)
            .map(|_| {
                Vector::<f64, D>::from_fn(omega.size(), |i| {
                    let g: f64 = StandardNormal.sample(&mut rng);
                    g * sigma[i] * (n.get(i).copied().unwrap_or(0) as f64 + 0.5).sqrt()
                })
            })
            .collect::<Vec<_>>();
        Self { log_prob: vec![f64::NAN; walkers.len()], walkers, sigma, scale: 1.0, target_acceptance: 0.5, key: 0 }
    }

    /// One Metropolis update of every walker against `log_prob`; returns the acceptance rate.
    /// Walkers whose stored log-probability is not finite accept any finite proposal.
    pub fn sweep<F>(&mut self, log_prob: F, engine: &BatchEngine, stream: &SeedStream) -> f64
    where
        F: Fn(&Vector<f64, D>) -> f64 + Sync,
    {
        self.key += 1;
        let (walkers, lps, scale, sigma) = (&self.walkers, &self.log_prob, self.scale, &self.sigma);
        let moved = engine.map(walkers.len(), stream, self.key, |i, rng| {
            let x = walkers[i].clone();
            let lp = if lps[i].is_finite() { lps[i] } else { log_prob(&x) };
            let y = Vector::<f64, D>::from_fn(x.size(), |j| {
                let g: f64 = StandardNormal.sample(rng);
                x[j] + scale * sigma[j] * g
            });
            let ly = log_prob(&y);
            let u: f64 = rng.random();
            if ly.is_finite() && (!lp.is_finite() || u.ln() < ly - lp) { (y, ly, true) } else { (x, lp, false) }
        });
        let mut accepted = 0;
        for (i, (x, lp, acc)) in moved.into_iter().enumerate() {
            self.walkers[i] = x;
            self.log_prob[i] = lp;
            accepted += acc as usize;
        }
        accepted as f64 / self.walkers.len().max(1) as f64
    }

    /// Move the scale towards the target acceptance: $s \leftarrow s\,e^{a - a^*}$, within $[10^{-3}, 10]$.
    pub fn adapt(&mut self, acceptance: f64) {
        self.scale = (self.scale * (acceptance - self.target_acceptance).exp()).clamp(1e-3, 10.0);
    }

    /// Forget cached log-probabilities (after the target changed, e.g. new parameters).
    pub fn reset_cache(&mut self) {
        self.log_prob.iter_mut().for_each(|v| *v = f64::NAN);
    }
}

impl<B: Bijector<D>, D: Size> QuantumNct<B, D> {
    /// Energy of state `n` of the frozen flow `theta` by Metropolis sampling: `burn_in` adaptive
    /// sweeps, then `sweeps` production sweeps, evaluating every walker each `thin` sweeps.
    /// Errors of $E$, $K$ and $V$ come from the blocking analysis of the walker-averaged series.
    #[allow(clippy::too_many_arguments)]
    pub fn metropolis_energy<H: Separable<D>>(&self, theta: &[f64], h: &H, n: &[usize], chain: &mut Metropolis<D>, burn_in: usize, sweeps: usize, thin: usize, engine: &BatchEngine, stream: &SeedStream) -> (StateEnergy, ChainStats) {
        let target = |x: &Vector<f64, D>| {
            let lp = self.log_prob(theta, n, x);
            let v = h.potential(x);
            if self.escaped(v, x) { f64::NEG_INFINITY } else { lp }
        };
        chain.reset_cache();
        for _ in 0..burn_in {
            let a = chain.sweep(target, engine, stream);
            chain.adapt(a);
        }
        let thin = thin.max(1);
        let (mut es, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut acc, mut rejected, mut accepted) = (0.0, 0, 0);
        for s in 0..sweeps {
            acc += chain.sweep(target, engine, stream);
            if (s + 1) % thin != 0 {
                continue;
            }
            let ws: Vec<Walker<D>> = engine.map(chain.walkers.len(), stream, u64::MAX - s as u64, |i, rng| self.evaluate(theta, h, n, chain.walkers[i].clone(), Vector::zeros(chain.walkers[i].size()), rng));
            let ok: Vec<&Walker<D>> = ws.iter().filter(|w| !w.rejected).collect();
            rejected += ws.len() - ok.len();
            accepted += ok.len();
            if ok.is_empty() {
                continue;
            }
            let mean = |f: &dyn Fn(&Walker<D>) -> f64| ok.iter().map(|w| f(w)).sum::<f64>() / ok.len() as f64;
            es.push(mean(&|w| w.e_loc));
            ks.push(mean(&|w| w.kinetic));
            vs.push(mean(&|w| w.potential));
        }
        let (be, bk, bv) = (crate::stats::blocking(&es), crate::stats::blocking(&ks), crate::stats::blocking(&vs));
        let per_walker_var = es.len() as f64 * chain.walkers.len() as f64 * be.levels[0].error.powi(2);
        let energy = StateEnergy {
            label: n.to_vec(),
            energy: be.mean,
            error: be.error,
            variance: per_walker_var,
            kinetic: bk.mean,
            kinetic_error: bk.error,
            potential: bv.mean,
            potential_error: bv.error,
            samples: accepted,
            rejected,
        };
        let stats = ChainStats { acceptance: acc / sweeps.max(1) as f64, scale: chain.scale, tau: be.tau * thin as f64, sweeps: es.len() };
        (energy, stats)
    }
}
