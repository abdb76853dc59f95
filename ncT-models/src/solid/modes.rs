//! A crystal as a system over its $3N-3$ phonon modes, in the reference's units: energies in K,
//! lengths in Å, $H = -\frac{1}{2m_{eff}}\nabla_Q^2 + V_K(R(Q))$. The potential is the DeepPot-SE
//! model, or its quadratic expansion at the lattice
//! $V_0 + \frac12\sum_k (\lambda_k/m_{eff})\,Q_k^2$ (the harmonic crystal, exactly solvable).

use super::deeppot::{DeepPot, PeriodicImages};
use super::phonons::HarmonicModes;
use super::EV_TO_K;
use nct::{Dyn, Scalar, Separable, Vector};
use std::sync::Arc;

/// The isotope, which sets $m_{eff}$.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isotope {
    /// Natural lithium, the standard atomic weight 6.941 u (the reference's default "Li").
    Natural,
    Li6,
    Li7,
}

impl Isotope {
    /// Mass in u.
    pub fn mass_u(self) -> f64 {
        match self {
            Isotope::Natural => 6.941,
            Isotope::Li6 => 6.015122795,
            Isotope::Li7 => 7.016004550,
        }
    }
    /// $\hbar^2/(2 m k_B)$ in K Å², computed as the reference computes it.
    pub fn h2_over_2m(self) -> f64 {
        let hbar = 6.62607015e-34 / (2.0 * std::f64::consts::PI);
        let kb = 1.380649e-23;
        let m = self.mass_u() * 1.66053906660e-27;
        hbar.powi(2) / (2.0 * m * kb) * 1e20
    }
    /// $m_{eff} = 1/(2\,\hbar^2/2mk_B)$ in K⁻¹ Å⁻²: the kinetic energy is $-\nabla^2/2m_{eff}$ in K.
    pub fn effective_mass(self) -> f64 {
        1.0 / (2.0 * self.h2_over_2m())
    }
}

/// Which potential acts on the modes.
#[derive(Clone, Debug)]
pub enum CrystalPotential {
    DeepPot { model: Arc<DeepPot>, images: PeriodicImages },
    /// The quadratic expansion at the lattice.
    Harmonic,
}

/// The crystal over its phonon modes.
#[derive(Clone, Debug)]
pub struct CrystalModes {
    pub modes: HarmonicModes,
    pub potential: CrystalPotential,
}

/// One configuration's mechanical observables (K and Å³).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mechanics {
    /// $V$ (K, the whole cell).
    pub energy: f64,
    /// Virial $W_{ab} = -\partial V/\partial\varepsilon_{ab}$ (K).
    pub virial: [[f64; 3]; 3],
}

impl CrystalModes {
    pub fn new(modes: HarmonicModes, potential: CrystalPotential) -> Self {
        Self { modes, potential }
    }
    pub fn num_atoms(&self) -> usize {
        self.modes.lattice.num_atoms()
    }
    pub fn volume(&self) -> f64 {
        self.modes.lattice.volume()
    }
    /// Basis frequencies $\hbar\omega_k/k_B$ (K) of the harmonic modes.
    pub fn omega(&self) -> Vec<f64> {
        self.modes.frequencies_k()
    }
    /// Potential energy and virial at mode amplitudes `q` (None for the harmonic crystal, whose
    /// expansion has no volume dependence).
    pub fn mechanics(&self, q: &[f64]) -> Option<Mechanics> {
        match &self.potential {
            CrystalPotential::DeepPot { model, images } => {
                let r = self.modes.positions(q);
                let out = model.energy_forces_virial(images, &r, self.modes.lattice.lengths);
                Some(Mechanics { energy: out.energy * EV_TO_K, virial: out.virial.map(|row| row.map(|v| v * EV_TO_K)) })
            }
            CrystalPotential::Harmonic => None,
        }
    }
    /// Virial pressure $P = (2K + \operatorname{tr} W)/(3V)$ (K/Å³) of a configuration with local
    /// kinetic energy `k` and virial `virial` (both K), the reference's estimator.
    pub fn pressure(&self, k: f64, virial: &[[f64; 3]; 3]) -> f64 {
        (2.0 * k + virial[0][0] + virial[1][1] + virial[2][2]) / (3.0 * self.volume())
    }
    /// Diagonal stress $\sigma_a = (2K/3 + W_{aa})/V$ (K/Å³), the reference's estimator.
    pub fn stress(&self, k: f64, virial: &[[f64; 3]; 3]) -> [f64; 3] {
        let vol = self.volume();
        std::array::from_fn(|a| (2.0 * k / 3.0 + virial[a][a]) / vol)
    }
}

impl Separable<Dyn> for CrystalModes {
    fn dim(&self) -> Dyn {
        Dyn(self.modes.modes())
    }
    fn potential<D: Scalar>(&self, q: &Vector<D, Dyn>) -> D {
        match &self.potential {
            CrystalPotential::DeepPot { model, images } => {
                let qs: Vec<D> = q.iter().copied().collect();
                let r = self.modes.positions(&qs);
                let l = self.modes.lattice.lengths.map(D::from);
                model.energy(images, &r, l) * EV_TO_K
            }
            CrystalPotential::Harmonic => {
                let m = self.modes.effective_mass;
                let mut v = D::from(self.modes.v0);
                for (k, &lam) in self.modes.eigenvalues.iter().enumerate() {
                    v += q[k] * q[k] * (0.5 * lam / m);
                }
                v
            }
        }
    }
    fn masses(&self) -> Vector<f64, Dyn> {
        Vector::from_element(self.dim(), self.modes.effective_mass)
    }
}
