//! Electron-gas states $\psi_n(x) = \Phi_n(z(x))\,|\det\partial z/\partial x|^{1/2}$: $\Phi_n$ a
//! complex Slater determinant of the twisted plane waves $n$, $z = f(x)$ a bijection that commutes
//! with permutations and lattice translations (e.g. a stack of [`super::PeriodicBackflow`]), so
//! $\psi_n$ is antisymmetric, obeys the twisted boundary conditions and is normalised in the cell.
//!
//! * Exact samples: $z$ from [`super::PlaneWaveDpp`], $x = f^{-1}(z)$ (no Markov chain).
//! * The complex local kinetic energy $K_{loc} = -\sum_a[\partial_a^2\ln\psi + (\partial_a\ln\psi)^2]$
//!   ($H = -\sum_i\nabla_i^2$, Ry / r_s²) by the chain rule: the forward-Laplacian jet through the
//!   flow gives $J = \partial z/\partial x$, $\sum_a\partial_a^2 z$ and the derivatives of the
//!   log-det; the analytic gradient $g$ and Hessian $H$ of $\ln\Phi$ in $z$ finish it,
//!   $\sum_a\partial_a^2\ln\Phi = \operatorname{tr}(J^\top H J) + g\cdot\sum_a\partial_a^2 z$.
//!   Its real part is the kinetic energy estimator; the imaginary part averages to zero.
//! * $\partial_\theta$ of $\operatorname{Re}[\bar w\,\ln\psi]$ by one VJP of the flow (the gradient of
//!   $\langle H\rangle$ is $2\operatorname{Re}\,\mathbb E[(E_{loc} - b)\,\partial_\theta\ln\psi^*]$).

use super::plane_waves::TwistedPlaneWaves;
use super::slater::{PlaneWaveDpp, plane_wave_hessian, plane_wave_slater};
use crate::dim::{Dyn, Vector};
use crate::error::ConfigError;
use crate::jet::LapJet;
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use nalgebra::Complex;

/// The potential energy of a configuration of the cell (f64; the local energy needs no
/// derivatives of it).
pub trait CellPotential: Sync {
    fn potential(&self, x: &[f64]) -> f64;
}

/// One flow over the plane-wave states of a cell.
#[derive(Clone, Debug)]
pub struct GasState<B> {
    pub flow: B,
    pub orbitals: TwistedPlaneWaves,
    particles: usize,
}

impl<B: Bijector<Dyn>> GasState<B> {
    /// `flow` must act on `particles` x d coordinates, d the dimension of the orbitals.
    pub fn new(flow: B, orbitals: TwistedPlaneWaves, particles: usize) -> Result<Self, ConfigError> {
        let d = orbitals.twist.len();
        if flow.dim().0 != particles * d {
            return Err(ConfigError::Value { what: "flow dimension", value: flow.dim().0.to_string(), allowed: "particles x dimension of the cell" });
        }
        if particles == 0 || particles > orbitals.len() {
            return Err(ConfigError::Value { what: "particles", value: particles.to_string(), allowed: "between 1 and the number of plane-wave orbitals" });
        }
        Ok(GasState { flow, orbitals, particles })
    }
    pub fn particles(&self) -> usize {
        self.particles
    }
    /// An exact sample of $|\psi_n|^2$ for the occupied orbitals `occ`.
    pub fn sample<R: rand::Rng + ?Sized>(&self, theta: &[f64], occ: &[usize], rng: &mut R) -> Vector<f64, Dyn> {
        let z = PlaneWaveDpp { orbitals: &self.orbitals }.sample(occ, rng);
        self.flow.inverse(theta, &Vector::from(z)).0
    }

    /// $\ln\psi_n(x)$ (complex); `None` on a node.
    pub fn log_psi(&self, theta: &[f64], occ: &[usize], x: &[f64]) -> Option<Complex<f64>> {
        let (z, ld, _) = self.flow.forward(theta, &Vector::from(x.to_vec()));
        Some(plane_wave_slater(&self.orbitals, occ, z.as_slice())?.log + 0.5 * ld)
    }

    /// The complex local kinetic energy at `x` (see the module docs); `None` on a node.
    pub fn local_kinetic(&self, theta: &[f64], occ: &[usize], x: &[f64]) -> Option<Complex<f64>> {
        let nd = x.len();
        let mut jac = vec![0.0; nd * nd];
        let (mut lap_z, mut grad_ld, mut lap_ld, mut z0) = (vec![0.0; nd], vec![0.0; nd], 0.0, vec![0.0; nd]);
        crate::with_block_width!(nd, W => {
            for start in (0..nd).step_by(W) {
                let seeds = Vector::from_fn(Dyn(nd), |i| if i >= start && i < start + W { LapJet::<W>::variable(x[i], i - start) } else { LapJet::<W>::from_re(x[i]) });
                let (z, ld, _) = self.flow.forward(theta, &seeds);
                let width = W.min(nd - start);
                for b in 0..nd {
                    let gr = z[b].gradient();
                    for a in 0..width {
                        jac[b * nd + start + a] = gr[a];
                    }
                    lap_z[b] += z[b].v2;
                    z0[b] = z[b].re;
                }
                let gl = ld.gradient();
                for a in 0..width {
                    grad_ld[start + a] = gl[a];
                }
                lap_ld += ld.v2;
            }
        });
        let (s, h) = plane_wave_hessian(&self.orbitals, occ, &z0)?;
        let zero = Complex::new(0.0, 0.0);
        let mut lap = Complex::new(0.5 * lap_ld, 0.0) + (0..nd).map(|b| s.grad[b] * lap_z[b]).sum::<Complex<f64>>();
        let mut grad2 = zero;
        for a in 0..nd {
            let ga = (0..nd).map(|b| s.grad[b] * jac[b * nd + a]).sum::<Complex<f64>>() + 0.5 * grad_ld[a];
            grad2 += ga * ga;
            for b in 0..nd {
                let hj = (0..nd).map(|c| h[b * nd + c] * jac[c * nd + a]).sum::<Complex<f64>>();
                lap += hj * jac[b * nd + a];
            }
        }
        let k = -(lap + grad2);
        (k.re.is_finite() && k.im.is_finite()).then_some(k)
    }

    /// Adds $\partial_\theta\operatorname{Re}[\bar w\ln\psi_n(x)]$ to `g` (one VJP of the flow);
    /// `false` on a node.
    pub fn add_log_psi_grad(&self, theta: &[f64], occ: &[usize], x: &[f64], w: Complex<f64>, g: &mut [f64]) -> bool {
        let (z, _, cache) = self.flow.forward(theta, &Vector::from(x.to_vec()));
        let Some(s) = plane_wave_slater(&self.orbitals, occ, z.as_slice()) else { return false };
        let zbar = Vector::from(s.grad.iter().map(|gz| gz.re * w.re + gz.im * w.im).collect::<Vec<f64>>());
        self.flow.vjp(theta, &cache, &zbar, 0.5 * w.re, g);
        true
    }
}

impl<B: Parametrised> Parametrised for GasState<B> {
    fn n_params(&self) -> usize {
        self.flow.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        self.flow.init_params(rng, theta)
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        self.flow.param_groups()
    }
}

/// $K_{loc} = -\sum_a\partial_a^2\psi/\psi$ by central differences of $\psi = e^{\ln\psi}$ (step
/// $10^{-4}$): the independent check of [`GasState::local_kinetic`] through any flow.
#[cfg(test)]
pub(crate) fn kinetic_by_differences<B: Bijector<Dyn>>(st: &GasState<B>, theta: &[f64], occ: &[usize], x: &[f64]) -> Complex<f64> {
    let psi = |y: &[f64]| st.log_psi(theta, occ, y).unwrap().exp();
    let p0 = psi(x);
    let h = 1e-4;
    let mut lap = Complex::new(0.0, 0.0);
    for c in 0..x.len() {
        let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
        xp[c] += h;
        xm[c] -= h;
        lap += (psi(&xp) + psi(&xm) - 2.0 * p0) / (h * h);
    }
    -lap / p0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Stack;
    use crate::diagonal::IdentityFlow;
    use crate::periodic::PeriodicBackflow;
    use rand::SeedableRng;

    fn orbitals(n: usize) -> TwistedPlaneWaves {
        TwistedPlaneWaves::new((std::f64::consts::PI * n as f64).sqrt(), &[0.25, 0.25], 25)
    }

    #[test]
    fn identity_flow_kinetic_energy_is_exact_with_zero_variance() {
        let n = 5;
        let st = GasState::new(IdentityFlow::new(Dyn(2 * n)), orbitals(n), n).unwrap();
        let occ = [0usize, 1, 3, 4, 9];
        let exact: f64 = occ.iter().map(|&j| st.orbitals.energies()[j]).sum();
        let mut rng = crate::batch::NctRng::seed_from_u64(2);
        for _ in 0..4 {
            let x = st.sample(&[], &occ, &mut rng);
            let k = st.local_kinetic(&[], &occ, x.as_slice()).unwrap();
            assert!((k.re - exact).abs() < 1e-9 * exact && k.im.abs() < 1e-9 * exact, "{k} vs {exact}");
        }
    }

    #[test]
    fn local_kinetic_energy_through_a_backflow_matches_finite_differences_of_psi() {
        // K_loc = -sum_a d_a^2 psi / psi, by central differences of psi = exp(ln psi).
        let n = 3;
        let pw = orbitals(n);
        let side = pw.side;
        let flow = Stack::new(vec![PeriodicBackflow::new(n, &[side, side], 3).unwrap(); 2]);
        let theta = [1.2, -0.8, 2.0, -1.5, 0.7, 1.1];
        let st = GasState::new(flow, pw, n).unwrap();
        let occ = [0usize, 2, 5];
        let x = st.sample(&theta, &occ, &mut crate::batch::NctRng::seed_from_u64(5));
        let k = st.local_kinetic(&theta, &occ, x.as_slice()).unwrap();
        let fd = kinetic_by_differences(&st, &theta, &occ, x.as_slice());
        assert!((fd - k).norm() < 1e-5 * k.norm(), "{fd} vs {k}");
        // The parameter gradient of Re[conj(w) ln psi] against central differences.
        let w = Complex::new(0.7, -0.4);
        let mut g = vec![0.0; theta.len()];
        assert!(st.add_log_psi_grad(&theta, &occ, x.as_slice(), w, &mut g));
        for t in 0..theta.len() {
            let at = |dt: f64| {
                let mut th = theta;
                th[t] += dt;
                let l = st.log_psi(&th, &occ, x.as_slice()).unwrap();
                (w.conj() * l).re
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!((fd - g[t]).abs() < 1e-7 * (1.0 + fd.abs()), "parameter {t}: {fd} vs {}", g[t]);
        }
    }
}
