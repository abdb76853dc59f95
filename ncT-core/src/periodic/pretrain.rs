//! Free-electron pretraining of an occupation model (CoulombGas's first stage), against the
//! exact canonical ensemble of non-interacting electrons $p^*_n = e^{-\beta E_n}/Z_0$:
//!
//! * [`CanonicalElectrons`]: exact samples of $p^*$ and $\ln p^*_n$ from the recursion
//!   $Z_k(j) = Z_k(j{+}1) + e^{-\beta\varepsilon_j}Z_{k-1}(j{+}1)$ over the orbitals $j..M$.
//! * [`LikelihoodPretraining`]: maximum likelihood on those samples, the forward KL divergence
//!   $\mathbb E_{p^*}[\ln p^* - \ln p]$; it covers every branch of degenerate orbitals (the reverse
//!   divergence below lets the sequential model drop one branch of a degenerate pair for good).
//! * [`FreeOccupation`]: the free energy of the model's own law,
//! $$ F_0(p) = \mathbb E_{n\sim p}\Big[k_BT\ln p_n + \sum_{j\in n}\varepsilon_j\Big] \ \ge\ -k_BT\ln Z_0, $$
//! with equality only at the canonical ensemble $p_n = e^{-\beta E_n}/Z_0$, whose $Z_0$ the exact
//! recursion ([`super::free_electron_thermo`]) gives. Score-function gradient
//! $\nabla F_0 = \mathbb E[(f - \bar f)\nabla\ln p_n]$, exact samples, no local energies.

use super::thermal::OrbitalOccupation;
use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::classical::mean_and_error;
use crate::driver::Objective;
use crate::params::Parametrised;

/// Exact canonical ensemble of N non-interacting fermions in the orbitals of energies `energies`.
#[derive(Clone, Debug)]
pub struct CanonicalElectrons {
    pub energies: Vec<f64>,
    pub particles: usize,
    pub beta: f64,
    /// $\ln Z_k(j)$, `(M + 1) x (N + 1)`, row j: the orbitals j..M.
    ln_z: Vec<f64>,
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

impl CanonicalElectrons {
    pub fn new(energies: &[f64], particles: usize, beta: f64) -> Self {
        let (m, n) = (energies.len(), particles);
        let mut ln_z = vec![f64::NEG_INFINITY; (m + 1) * (n + 1)];
        ln_z[m * (n + 1)] = 0.0;
        for j in (0..m).rev() {
            for k in 0..=n {
                let skip = ln_z[(j + 1) * (n + 1) + k];
                let take = if k > 0 { -beta * energies[j] + ln_z[(j + 1) * (n + 1) + k - 1] } else { f64::NEG_INFINITY };
                ln_z[j * (n + 1) + k] = log_add(skip, take);
            }
        }
        CanonicalElectrons { energies: energies.to_vec(), particles, beta, ln_z }
    }
    /// $\ln Z_0$ (the free energy is $-\ln Z_0/\beta$).
    pub fn ln_z(&self) -> f64 {
        self.ln_z[self.particles]
    }
    /// $\ln p^*$ of the set `occ`.
    pub fn log_prob(&self, occ: &[usize]) -> f64 {
        -self.beta * occ.iter().map(|&j| self.energies[j]).sum::<f64>() - self.ln_z()
    }
    /// An exact sample (increasing orbitals) and its $\ln p^*$: orbital by orbital, occupied with
    /// probability $e^{-\beta\varepsilon_j}Z_{k-1}(j{+}1)/Z_k(j)$ while k electrons remain.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> (Vec<usize>, f64) {
        use rand::RngExt;
        let n1 = self.particles + 1;
        let mut occ = Vec::with_capacity(self.particles);
        let mut k = self.particles;
        for j in 0..self.energies.len() {
            if k == 0 {
                break;
            }
            let take = (-self.beta * self.energies[j] + self.ln_z[(j + 1) * n1 + k - 1] - self.ln_z[j * n1 + k]).exp();
            let u: f64 = rng.random();
            if u < take {
                occ.push(j);
                k -= 1;
            }
        }
        let lp = self.log_prob(&occ);
        (occ, lp)
    }
}

/// Maximum-likelihood pretraining on exact canonical samples (loss: the cross entropy
/// $-\mathbb E_{p^*}\ln p$, whose minimum is the exact entropy $S_0$).
pub struct LikelihoodPretraining<'a, O> {
    pub occupation: &'a O,
    pub target: CanonicalElectrons,
    pub walkers: usize,
    engine: BatchEngine,
}

impl<'a, O: OrbitalOccupation> LikelihoodPretraining<'a, O> {
    pub fn new(occupation: &'a O, target: CanonicalElectrons, walkers: usize) -> Self {
        LikelihoodPretraining { occupation, target, walkers, engine: BatchEngine::new(16) }
    }
}

impl<O: OrbitalOccupation> Objective for LikelihoodPretraining<'_, O> {
    fn model(&self) -> &dyn Parametrised {
        self.occupation
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let ready = self.occupation.ready(theta);
        let nb = self.walkers as f64;
        let sum = self.engine.sum_chunks(self.walkers, theta.len(), stream, step, |range, rng| {
            let mut g = vec![0.0; theta.len()];
            let mut loss = 0.0;
            for _ in range {
                let (occ, _) = self.target.sample(rng);
                loss -= self.occupation.log_prob(theta, &ready, &occ) / nb;
                self.occupation.add_log_prob_grad(theta, &ready, &occ, -1.0 / nb, &mut g);
            }
            (loss, g)
        });
        BatchSum { loss: sum.loss, grad: sum.grad, samples: 1 }
    }
    fn loss_name(&self) -> &str {
        "cross_entropy"
    }
    fn kind(&self) -> &'static str {
        "occupation-pretraining"
    }
}

/// The free-energy objective of the driver on the model's own law (loss: $F_0$).
pub struct FreeOccupation<'a, O> {
    pub occupation: &'a O,
    /// One-body energies of the orbitals.
    pub energies: Vec<f64>,
    pub walkers: usize,
    engine: BatchEngine,
}

/// $F_0$, $E_0$ and $S_0 = -\mathbb E\ln p$ of the model's law, with errors.
#[derive(Clone, Copy, Debug)]
pub struct FreeEstimate {
    pub f: (f64, f64),
    pub e: (f64, f64),
    pub s: (f64, f64),
}

impl<'a, O: OrbitalOccupation> FreeOccupation<'a, O> {
    pub fn new(occupation: &'a O, energies: &[f64], walkers: usize) -> Self {
        FreeOccupation { occupation, energies: energies.to_vec(), walkers, engine: BatchEngine::new(16) }
    }
    /// Samples $(n, \ln p_n, E_n)$.
    fn draws(&self, theta: &[f64], walkers: usize, stream: &SeedStream, step: u64) -> Vec<(Vec<usize>, f64, f64)> {
        let ready = self.occupation.ready(theta);
        self.engine.map(walkers, stream, step, |_, rng| {
            let (occ, lp) = self.occupation.sample(&ready, rng);
            let e = occ.iter().map(|&j| self.energies[j]).sum();
            (occ, lp, e)
        })
    }
    /// The estimate from `samples` exact samples.
    pub fn estimate(&self, theta: &[f64], samples: usize, seed: u64) -> FreeEstimate {
        let kt = 1.0 / self.occupation.beta();
        let ws = self.draws(theta, samples.max(2), &SeedStream::new(seed), 0);
        let col = |f: &dyn Fn(&(Vec<usize>, f64, f64)) -> f64| mean_and_error(&ws.iter().map(f).collect::<Vec<_>>());
        FreeEstimate { f: col(&|w| kt * w.1 + w.2), e: col(&|w| w.2), s: col(&|w| -w.1) }
    }
}

impl<O: OrbitalOccupation> Objective for FreeOccupation<'_, O> {
    fn model(&self) -> &dyn Parametrised {
        self.occupation
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let kt = 1.0 / self.occupation.beta();
        let ws = self.draws(theta, self.walkers, stream, step);
        let fs: Vec<f64> = ws.iter().map(|w| kt * w.1 + w.2).collect();
        let nb = ws.len() as f64;
        let mean = fs.iter().sum::<f64>() / nb;
        let ready = self.occupation.ready(theta);
        let sum = self.engine.sum_chunks(ws.len(), theta.len(), stream, step ^ 0x9e37, |range, _| {
            let mut g = vec![0.0; theta.len()];
            for j in range {
                self.occupation.add_log_prob_grad(theta, &ready, &ws[j].0, (fs[j] - mean) / nb, &mut g);
            }
            (0.0, g)
        });
        BatchSum { loss: mean, grad: sum.grad, samples: 1 }
    }
    fn loss_name(&self) -> &str {
        "F0"
    }
    fn kind(&self) -> &'static str {
        "occupation-pretraining"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Driver;
    use crate::periodic::{EnumeratedOccupation, TransformerOccupation, TwistedPlaneWaves, free_electron_thermo, orbital_sets};
    use crate::run::RunArgs;
    use rand::SeedableRng;

    #[test]
    fn canonical_sampler_is_the_exact_ensemble() {
        // Against enumeration: Z from every set, and the sampled frequencies of the sets.
        let e: Vec<f64> = (0..9).map(|j| 0.4 * j as f64 + 0.1 * (j % 2) as f64).collect();
        let c = CanonicalElectrons::new(&e, 3, 1.3);
        let sets = orbital_sets(&e, 3, 1e9, 1000).unwrap();
        let e0: f64 = e[..3].iter().sum();
        let z: f64 = sets.iter().map(|s| (-1.3 * (s.excitation + e0)).exp()).sum();
        assert!((c.ln_z() - z.ln()).abs() < 1e-12, "{} vs {}", c.ln_z(), z.ln());
        let mut rng = crate::batch::NctRng::seed_from_u64(3);
        let mut counts = std::collections::HashMap::new();
        let draws = 50_000;
        for _ in 0..draws {
            let (s, lp) = c.sample(&mut rng);
            assert!(s.len() == 3 && s.windows(2).all(|w| w[0] < w[1]) && (lp - c.log_prob(&s)).abs() < 1e-12);
            *counts.entry(s).or_insert(0usize) += 1;
        }
        let mut chi2 = 0.0;
        let mut dof = 0;
        for s in &sets {
            let want = draws as f64 * c.log_prob(&s.occupied).exp();
            if want >= 20.0 {
                chi2 += (counts.get(&s.occupied).copied().unwrap_or(0) as f64 - want).powi(2) / want;
                dof += 1;
            }
        }
        assert!(chi2 < dof as f64 + 4.5 * (2.0 * dof as f64).sqrt(), "chi2 {chi2} over {dof}");
    }

    #[test]
    fn pretrained_transformer_reaches_the_canonical_free_energy() {
        // N = 4 electrons in the 16 lowest plane waves of the 2D box, Theta = 0.15: the exact
        // canonical F0, E0, S0 from the recursion; the enumerated categorical model at its
        // Boltzmann start is exact (zero variance); the transformer, pretrained by maximum
        // likelihood on exact canonical samples, reaches F0 within 0.002 and S within 0.05.
        let n = 4;
        let mut pw = TwistedPlaneWaves::new((std::f64::consts::PI * n as f64).sqrt(), &[0.25, 0.25], 25);
        pw.n.truncate(16);
        pw.k.truncate(16);
        let beta = 1.0 / (4.0 * 0.15);
        let e = pw.energies();
        let exact = free_electron_thermo(&pw, n, beta);
        let cat = EnumeratedOccupation::new(orbital_sets(&e, n, 1e9, 10_000).unwrap(), beta);
        let est = FreeOccupation::new(&cat, &e, 64).estimate(&vec![0.0; cat.n_params()], 2000, 1);
        assert!((est.f.0 - exact.f).abs() < 1e-9 && est.f.1 < 1e-9, "{:?} vs {}", est.f, exact.f);
        let tr = TransformerOccupation::with_sizes(n, &e, beta, 2, 16, 4, 32).unwrap();
        let obj = FreeOccupation::new(&tr, &e, 256);
        let start = obj.estimate(&tr.new_params(&mut SeedStream::new(3).named("init")), 20_000, 2);
        let pre = LikelihoodPretraining::new(&tr, CanonicalElectrons::new(&e, n, beta), 256);
        let args = RunArgs { steps: 300, lr: 0.01, seed: 3, batch: 256, quiet: true, ..Default::default() };
        let trained = Driver::new("pretrain", pre).run(&args, &args).unwrap();
        let fin = obj.estimate(&trained.theta, 20_000, 2);
        eprintln!("exact F0 {:.6} S0 {:.4}; prior F {:.6} S {:.4}; pretrained F {:.6} +- {:.6}, S {:.4} +- {:.4}", exact.f, exact.s, start.f.0, start.s.0, fin.f.0, fin.f.1, fin.s.0, fin.s.1);
        // The model's exact F0 and S by enumeration of all C(16, 4) sets.
        let sets = orbital_sets(&e, n, 1e9, 10_000).unwrap();
        let e0: f64 = e[..n].iter().sum();
        let (mut f_model, mut s_model, mut total) = (0.0, 0.0, 0.0);
        for set in &sets {
            let lp = tr.log_prob_of(&trained.theta, &set.occupied);
            let p = lp.exp();
            total += p;
            f_model += p * (lp / beta + set.excitation + e0);
            s_model -= p * lp;
        }
        eprintln!("model by enumeration: sum p {total:.12}, F0 {f_model:.6}, S {s_model:.4}");
        assert!((total - 1.0).abs() < 1e-10);
        assert!(f_model >= exact.f - 1e-10 && f_model - exact.f < 0.002 && (s_model - exact.s).abs() < 0.05, "F0 {f_model} S {s_model}");
        assert!(start.f.0 - exact.f > 0.05, "the prior is not already the answer");
        assert!(fin.f.0 > exact.f - 4.0 * fin.f.1 && fin.f.0 - exact.f < 0.002 + 4.0 * fin.f.1, "sampled F0 {:?}", fin.f);
    }
}
