//! # nct-models
//!
//! Hamiltonians and systems for ncT. Each model is one scalar-generic energy function; forces,
//! Hessians and Hamilton's equations come from num-dual through the
//! [`Hamiltonian`](nct_core::Hamiltonian) trait.

// The DSL's generated code names `::nct::...`; inside the workspace that is the core crate.
extern crate nct_core as nct;

pub mod alanine;
pub mod classical;
pub mod data;
pub mod dvr;
pub mod electron_gas;
pub mod quantum_dot;
pub mod solid;
pub mod vibrational;

pub use classical::{DynHarmonicChain, HarmonicChain, HarmonicOscillator, OneDofFlow, QuarticOscillator, Ring2d};
