//! Periodic cells for the uniform electron gas (Xie, Zhang & Wang, SciPost Phys. 14, 154 (2023)):
//! the Ewald sum of the one-component plasma in 2D and 3D, and twisted plane-wave orbitals.

pub mod ewald;
pub mod plane_waves;

pub use ewald::{Ewald, EwaldError};
pub use plane_waves::{TwistedPlaneWaves, free_electron_thermo};
