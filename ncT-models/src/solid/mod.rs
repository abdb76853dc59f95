//! Anharmonic crystals: a DeepPot-SE machine-learned potential, supercells, harmonic phonons and the
//! normal-mode coordinates on which quantum NCT works (Zhang, Wang, Shi, Ren, Wang & Wang, "Neural
//! Canonical Transformations for Quantum Anharmonic Solids of Lithium", Phys. Rev. Lett. 134, 246101
//! (2025), arXiv:2412.12451; reference JAX code github.com/zhangqi94/lithium, Apache-2.0).
//!
//! * [`deeppot`]: the DeepPot-SE model (se_e2_a + se_e3 descriptors, resnet fitting net) read from
//!   safetensors, one energy function generic over the scalar with a hand-written reverse pass for
//!   forces and the full virial (forward-over-reverse gives the Hessian).
//! * [`structure`]: POSCAR files and orthorhombic supercells.
//! * [`phonons`]: the harmonic analysis (Hessian, three acoustic zero modes removed) and the mode
//!   coordinates $Q \leftrightarrow R$.
//! * [`modes`]: the crystal as a [`Separable`](nct::Separable) system over the $3N-3$ modes, in the
//!   reference's units (energies in K, lengths in Å, kinetic energy $-\nabla_Q^2/2m_{eff}$).

pub mod deeppot;
pub mod modes;
pub mod npt;
pub mod phonons;
pub mod structure;
pub mod thermal;

pub use deeppot::{DeepPot, DeepPotError, EnergyForcesVirial, PeriodicImages};
pub use modes::{CrystalModes, CrystalPotential, Isotope, Mechanics};
pub use phonons::{HarmonicModes, PhononError};
pub use structure::{Supercell, StructureError};

/// The bundled lithium data (`ncT-models/data/lithium`: dp4/dp0 weights, POSCAR structures, the
/// reference numbers of the tests; Apache-2.0, see its README).
pub fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/lithium")
}

/// Boltzmann's constant in eV/K (CODATA 2018), the reference's conversion eV → K.
pub const KB_EV_PER_K: f64 = 8.617333262145e-5;
/// eV → K: $E_K = E_{eV}\cdot(1/k_B)$, exactly as the reference multiplies.
pub const EV_TO_K: f64 = 1.0 / KB_EV_PER_K;
/// K → meV.
pub const K_TO_MEV: f64 = 0.08617333262145;
/// K/Å³ → GPa ($k_B$ in J/K × 10^{30} / 10^9), the reference's factor.
pub const K_PER_A3_TO_GPA: f64 = 0.01380649;
