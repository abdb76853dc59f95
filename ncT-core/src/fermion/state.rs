//! Fermionic NCT states $\psi(x) = \Phi(z(x))\,|\det\partial z/\partial x|^{1/2}$ with $\Phi$ a Slater
//! determinant of trap orbitals and $z = f(x)$ a permutation-equivariant bijector (so $\psi$ is
//! antisymmetric and normalised): exact sampling ($z$ from the DPP, $x = f^{-1}(z)$), the local
//! kinetic energy by the forward-Laplacian jet through the flow and a determinant evaluated on jets
//! (LU with partial pivoting on the values), and $\partial_\theta\ln|\psi|$ by one VJP of the flow
//! with cotangent $\nabla_z\ln|\Phi|$ (analytic, from [`super::slater`](mod@super::slater)) and $\tfrac12$ on the log-det.
//! A state of N↑ + N↓ fermions is the product of one determinant per spin (N↓ = 0: spin-polarised);
//! `GroundState` is the T = 0 objective of the driver.

use super::dpp::{DppError, DppSampler};
use super::orbitals::HoOrbitals;
use super::slater::slater;
use super::states::ManyBodyState;
use crate::batch::{BatchEngine, BatchSum, SeedStream};
use crate::dim::{Dyn, Vector};
use crate::hamiltonian::Separable;
use crate::layer::Bijector;
use crate::params::Parametrised;
use crate::scalar::Scalar;

/// $\det M$ of a square matrix of any scalar, by Gaussian elimination with partial pivoting on the
/// values; zero when a pivot vanishes.
pub fn determinant<S: Scalar>(mut m: Vec<Vec<S>>) -> S {
    let n = m.len();
    let mut det = S::one();
    for c in 0..n {
        let p = (c..n).max_by(|&a, &b| m[a][c].re().abs().total_cmp(&m[b][c].re().abs())).unwrap_or(c);
        if m[p][c].re() == 0.0 {
            return S::zero();
        }
        if p != c {
            m.swap(p, c);
            det = -det;
        }
        let pivot = m[c][c];
        det *= pivot;
        for r in c + 1..n {
            let f = m[r][c] / pivot;
            for k in c..n {
                let v = m[c][k];
                m[r][k] -= f * v;
            }
        }
    }
    det
}

/// Exchange symmetry of the base states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Statistics {
    /// One Slater determinant per spin.
    #[default]
    Fermi,
    /// The product $\prod_i\phi_{n_i}(z_i)$ of the up labels (symmetric when they are all equal,
    /// e.g. a condensate in orbital 0); the down labels are unused.
    Bose,
}

/// How the objectives compute the Laplacian of the local energy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FermiLaplacian {
    /// Exact, by the forward-Laplacian jet ([`FermiState::kinetic`]).
    #[default]
    Jet,
    /// Unbiased, `probes` Rademacher vectors ([`FermiState::kinetic_hutchinson`]).
    Hutchinson { probes: usize },
}

/// The states of one flow over the orbitals of a [`HoOrbitals`] set.
#[derive(Clone, Debug)]
pub struct FermiState<B> {
    pub flow: B,
    pub statistics: Statistics,
    pub laplacian: FermiLaplacian,
    sampler: DppSampler,
}

impl<B: Bijector<Dyn>> FermiState<B> {
    pub fn new(flow: B, orbitals: HoOrbitals) -> Self {
        FermiState { flow, statistics: Statistics::Fermi, laplacian: FermiLaplacian::Jet, sampler: DppSampler::new(orbitals) }
    }
    /// Bosons in the product state of the up labels instead of fermions.
    pub fn bosonic(mut self) -> Self {
        self.statistics = Statistics::Bose;
        self
    }

    /// The determinant blocks of the base state: (orbitals, first particle). Fermions: one per
    /// spin; bosons: one single-particle block per particle.
    fn blocks<'s>(&self, n: &'s ManyBodyState) -> Vec<(&'s [usize], usize)> {
        match self.statistics {
            Statistics::Fermi => vec![(&n.up[..], 0), (&n.down[..], n.up.len())],
            Statistics::Bose => (0..n.up.len()).map(|i| (&n.up[i..i + 1], i)).collect(),
        }
    }
    pub fn orbitals(&self) -> &HoOrbitals {
        self.sampler.orbitals()
    }

    /// $\Phi_n(z)$ for any scalar, the product of the blocks' determinants: for fermions particles
    /// $0..N_\uparrow$ carry the up orbitals, the rest the down ones (particle-major $z$).
    fn phi<S: Scalar>(&self, n: &ManyBodyState, z: &Vector<S, Dyn>) -> S {
        let d = self.orbitals().dim();
        let block = |occ: &[usize], first: usize| determinant((0..occ.len()).map(|i| self.orbitals().values(occ, &z[(first + i) * d..(first + i + 1) * d])).collect());
        self.blocks(n).into_iter().fold(S::one(), |acc, (occ, first)| acc * block(occ, first))
    }

    /// $\psi_n(x)$ for any scalar.
    pub fn psi<S: Scalar>(&self, theta: &[f64], n: &ManyBodyState, x: &Vector<S, Dyn>) -> S {
        let (z, ld, _) = self.flow.forward(theta, x);
        self.phi(n, &z) * (ld * 0.5).exp()
    }

    /// An exact sample of $|\psi_n|^2$: $z$ from the DPPs of the up and the down orbitals, then
    /// $x = f^{-1}(z)$.
    pub fn sample<R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &ManyBodyState, rng: &mut R) -> Result<Vector<f64, Dyn>, DppError> {
        let mut z = Vec::new();
        for (occ, _) in self.blocks(n) {
            z.extend(self.sampler.sample(occ, rng)?.0);
        }
        Ok(self.flow.inverse(theta, &Vector::from(z)).0)
    }

    /// $\ln|\psi_n(x)|$ in f64 from the Slater factorisations (`None` on a node), for Metropolis.
    pub fn log_abs_psi(&self, theta: &[f64], n: &ManyBodyState, x: &[f64]) -> Option<f64> {
        let (z, ld, _) = self.flow.forward(theta, &Vector::from(x.to_vec()));
        let d = self.orbitals().dim();
        let mut l = 0.5 * ld;
        for (occ, first) in self.blocks(n).into_iter().filter(|b| !b.0.is_empty()) {
            l += slater(self.orbitals(), occ, &z.as_slice()[first * d..(first + occ.len()) * d]).ok()?.log_abs;
        }
        Some(l)
    }

    /// Local kinetic energy $-\tfrac12\nabla^2\psi/\psi$ (unit masses), exact, by the jet in blocks
    /// of at most 16 coordinates.
    pub fn kinetic(&self, theta: &[f64], n: &ManyBodyState, x: &Vector<f64, Dyn>) -> f64 {
        let d = x.len();
        crate::with_block_width!(d, W => {
            let (mut lap, mut re) = (0.0, 1.0);
            for start in (0..d).step_by(W) {
                let seeds = Vector::from_fn(Dyn(d), |i| if i >= start && i < start + W { crate::jet::LapJet::<W>::variable(x[i], i - start) } else { crate::jet::LapJet::<W>::from_re(x[i]) });
                let p = self.psi(theta, n, &seeds);
                lap += p.v2;
                re = p.re;
            }
            -0.5 * lap / re
        })
    }

    /// One walker of $|\psi_n|^2$: an exact sample $x$ with its kinetic and potential energy under
    /// `h`; `None` when the sample fails (a node) or its local energy is not finite.
    pub fn walker<H: Separable<Dyn>, R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &ManyBodyState, h: &H, rng: &mut R) -> Option<(Vector<f64, Dyn>, f64, f64)> {
        let x = self.sample(theta, n, rng).ok()?;
        let kinetic = self.kinetic_with(theta, n, &x, rng);
        let potential = h.potential(&x);
        (kinetic + potential).is_finite().then_some((x, kinetic, potential))
    }

    /// The local kinetic energy by the state's [`FermiLaplacian`] (`rng` for Hutchinson's probes).
    pub fn kinetic_with<R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &ManyBodyState, x: &Vector<f64, Dyn>, rng: &mut R) -> f64 {
        match self.laplacian {
            FermiLaplacian::Jet => self.kinetic(theta, n, x),
            FermiLaplacian::Hutchinson { probes } => self.kinetic_hutchinson(theta, n, x, probes, rng),
        }
    }

    /// Unbiased Hutchinson estimate of the local kinetic energy,
    /// $-\tfrac12\,\mathbb E_v[v^\top\nabla^2\psi\,v]/\psi$ over `probes` Rademacher vectors $v$, each one
    /// second-order directional pass (`Dual2`) instead of the jet's $Nd$ lanes: for large $Nd$,
    /// at the price of variance in $E_{loc}$ (the gradient stays unbiased).
    pub fn kinetic_hutchinson<R: rand::Rng + ?Sized>(&self, theta: &[f64], n: &ManyBodyState, x: &Vector<f64, Dyn>, probes: usize, rng: &mut R) -> f64 {
        use rand::RngExt;
        let probes = probes.max(1);
        let mut acc = 0.0;
        let mut psi0 = 1.0;
        for _ in 0..probes {
            let v: Vec<f64> = (0..x.len()).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
            let seeds = Vector::from_fn(Dyn(x.len()), |i| num_dual::Dual2_64::new(x[i], v[i], 0.0));
            let p = self.psi(theta, n, &seeds);
            acc += p.v2;
            psi0 = p.re;
        }
        -0.5 * acc / probes as f64 / psi0
    }

    /// Adds `coef` $\partial_\theta\ln|\psi_n(x)|$ to `g` (one VJP of the flow); `false` on a node.
    pub fn add_log_psi_grad(&self, theta: &[f64], n: &ManyBodyState, x: &Vector<f64, Dyn>, coef: f64, g: &mut [f64]) -> bool {
        let (z, _, cache) = self.flow.forward(theta, x);
        let d = self.orbitals().dim();
        let mut zbar = Vec::with_capacity(z.len());
        for (occ, first) in self.blocks(n).into_iter().filter(|b| !b.0.is_empty()) {
            let Ok(s) = slater(self.orbitals(), occ, &z.as_slice()[first * d..(first + occ.len()) * d]) else { return false };
            zbar.extend(s.grad);
        }
        let mut gt = vec![0.0; g.len()];
        self.flow.vjp(theta, &cache, &Vector::from(zbar), 0.5, &mut gt);
        g.iter_mut().zip(&gt).for_each(|(a, b)| *a += coef * b);
        true
    }
}

impl<B: Parametrised> Parametrised for FermiState<B> {
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

/// T = 0 objective: $\min_\theta\langle\psi_\theta|H|\psi_\theta\rangle$ for the many-body state `occupied`
/// with `walkers` exact samples per step; gradient $2\,\mathbb E[(E_{loc} - \bar E)\,\partial_\theta\ln|\psi|]$.
pub struct GroundState<'a, B, H> {
    pub state: &'a FermiState<B>,
    pub h: &'a H,
    pub occupied: ManyBodyState,
    pub walkers: usize,
    engine: BatchEngine,
}

impl<'a, B, H> GroundState<'a, B, H> {
    pub fn new(state: &'a FermiState<B>, h: &'a H, occupied: ManyBodyState, walkers: usize) -> Self {
        GroundState { state, h, occupied, walkers, engine: BatchEngine::new(16) }
    }
}

impl<B: Bijector<Dyn>, H: Separable<Dyn>> GroundState<'_, B, H> {
    /// Local energies of `walkers` exact samples of step `step` (`None`: a sample on a node).
    pub fn local_energies(&self, theta: &[f64], walkers: usize, stream: &SeedStream, step: u64) -> Vec<Option<(Vector<f64, Dyn>, f64)>> {
        self.engine.map(walkers, stream, step, |_, rng| self.state.walker(theta, &self.occupied, self.h, rng).map(|(x, k, v)| (x, k + v)))
    }
}

impl<B: Bijector<Dyn>, H: Separable<Dyn>> crate::driver::Objective for GroundState<'_, B, H> {
    fn model(&self) -> &dyn Parametrised {
        self.state
    }
    fn batch(&self, theta: &[f64], step: u64, stream: &SeedStream) -> BatchSum {
        let ws: Vec<(Vector<f64, Dyn>, f64)> = self.local_energies(theta, self.walkers, stream, step).into_iter().flatten().collect();
        if crate::quantum::too_many_rejected(self.walkers - ws.len(), self.walkers) {
            return BatchSum { loss: f64::NAN, grad: vec![0.0; theta.len()], samples: 1 };
        }
        let n = ws.len() as f64;
        let mean = ws.iter().map(|w| w.1).sum::<f64>() / n;
        let mut grad = vec![0.0; theta.len()];
        for (x, e) in &ws {
            self.state.add_log_psi_grad(theta, &self.occupied, x, 2.0 * (e - mean) / n, &mut grad);
        }
        BatchSum { loss: mean, grad, samples: 1 }
    }
    fn loss_name(&self) -> &str {
        "E"
    }
    fn kind(&self) -> &'static str {
        "quantum"
    }
}
