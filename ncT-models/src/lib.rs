//! # nct-models
//!
//! Hamiltonians and systems for ncT. Each model is one scalar-generic energy function; forces,
//! Hessians and Hamilton's equations come from num-dual through the
//! [`Hamiltonian`](nct_core::Hamiltonian) trait.

pub mod alanine;
pub mod classical;
pub mod data;

pub use classical::{HarmonicChain, HarmonicOscillator, Ring2d};
