//! Periodic cells for the uniform electron gas (Xie, Zhang & Wang, SciPost Phys. 14, 154 (2023)):
//! the Ewald sum of the one-component plasma in 2D and 3D, twisted plane-wave orbitals, their
//! complex Slater determinants and an exact sampler of them, an exactly invertible periodic
//! backflow and an exactly invertible FermiNet-style flow, the states through them and their
//! finite-temperature training on the free energy.

pub mod backflow;
pub mod ewald;
pub mod ferminet;
pub mod plane_waves;
pub mod pretrain;
pub mod slater;
pub mod state;
pub mod thermal;
pub mod transformer;

pub use backflow::PeriodicBackflow;
pub use ewald::{Ewald, EwaldError};
pub use ferminet::FermiNetBackflow;
pub use plane_waves::{TwistedPlaneWaves, free_electron_thermo};
pub use state::{CellPotential, GasState};
pub use thermal::{EnumeratedOccupation, GasDraw, GasEstimate, GasStep, GasThermal, OrbitalOccupation, OrbitalSet, ThermalGas, first_order_free_energy, orbital_sets};
pub use pretrain::{CanonicalElectrons, FreeEstimate, FreeOccupation, LikelihoodPretraining};
pub use transformer::TransformerOccupation;
pub use slater::{PlaneWaveDpp, PlaneWaveSlater, plane_wave_hessian, plane_wave_slater};
