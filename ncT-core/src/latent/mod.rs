//! Latent distributions of the classical neural canonical transformation: integrable systems in
//! action-angle form, $K(Q, P) = \sum_k f_k(I_k)$, sampled exactly and at temperature $\beta^{-1}$,
//! $p(Q, P) \propto e^{-\beta K}$.
//!
//! * [`LatentOscillators`]: harmonic, $f_k(I) = \omega_k I$ (every orbit has the same frequency).
//! * [`AnharmonicOscillators`]: $f_k(I)$ a learnable, strictly increasing function of the action,
//!   so that the frequency $f_k'(I)$ depends on the amplitude (no harmonic latent can represent
//!   the Boltzmann density of a non-isochronous system).
//!
//! The model swaps one for the other without touching the flow or the loop: a [`Latent`] samples,
//! evaluates $\ln p$ with its gradients, gives the reparameterised vector-Jacobian product of a
//! sample, its exact free energy and its analytic dynamics.

mod anharmonic;
mod harmonic;
pub mod quadrature;

pub use anharmonic::{ActionTable, AnharmonicOscillators};
pub use harmonic::LatentOscillators;

use crate::dim::Size;
use crate::error::ConfigError;
use crate::layer::PhasePoint;
use crate::params::Parametrised;

/// A latent distribution of independent integrable modes at inverse temperature $\beta$.
///
/// Parameters are `theta` (the latent's own slice); [`Latent::table`] does the work that depends
/// only on them (partition functions, quadrature tables) once per batch, and every other method
/// takes that table.
pub trait Latent<N: Size>: Parametrised + Clone + std::fmt::Debug {
    /// What [`Latent::table`] precomputes.
    type Table: Send + Sync;
    /// Number of modes.
    fn dim(&self) -> N;
    /// Inverse temperature.
    fn beta(&self) -> f64;
    /// The parameter-dependent precomputation.
    fn table(&self, theta: &[f64]) -> Self::Table;
    /// An exact, reparameterised sample (a differentiable function of the parameters for fixed
    /// noise).
    fn sample<R: rand::Rng + ?Sized>(&self, t: &Self::Table, theta: &[f64], rng: &mut R) -> PhasePoint<f64, N>;
    /// $\ln p(Q, P)$.
    fn log_prob(&self, t: &Self::Table, theta: &[f64], z: &PhasePoint<f64, N>) -> f64;
    /// $\ln p$, its gradient in $(Q, P)$, and its gradient in `theta` at fixed $(Q, P)$ (added to
    /// `g`, the latent's slice of the gradient, with coefficient `coef`).
    fn log_prob_grad(&self, t: &Self::Table, theta: &[f64], z: &PhasePoint<f64, N>, coef: f64, g: &mut [f64]) -> (f64, PhasePoint<f64, N>);
    /// For a sample $z(\epsilon, \theta)$ drawn by [`Latent::sample`], adds to `g` a per-sample
    /// estimate of $\frac{d}{d\theta}\mathbb E\big[\bar z \cdot z(\epsilon, \theta) + c \ln p(z(\epsilon, \theta); \theta)\big]$
    /// (`zbar` is the cotangent the flow's VJP returns): the reparameterised path derivative, with
    /// the zero-mean score term $c\,\partial_\theta \ln p$ at fixed $z$ either summed exactly
    /// (the harmonic latent, where the total is the constant $c$ per mode) or left out ("sticking
    /// the landing", Roeder, Wu & Duvenaud, NeurIPS 2017: the estimate's variance then vanishes
    /// as the model becomes exact).
    fn reparam_vjp(&self, t: &Self::Table, theta: &[f64], z: &PhasePoint<f64, N>, zbar: &PhasePoint<f64, N>, c: f64, g: &mut [f64]);
    /// The latent Hamiltonian $K(Q, P) = \sum_k f_k(I_k)$ at `z`; its gradient in `theta` at fixed
    /// $(Q, P)$ is added to `g` (the latent's slice). No table: $K$ does not involve the partition
    /// function.
    fn energy_grad(&self, theta: &[f64], z: &PhasePoint<f64, N>, g: &mut [f64]) -> f64;
    /// Thermal mean angular frequency $\langle f_k'(I_k)\rangle$ of every mode, in parameter order.
    fn frequencies(&self, t: &Self::Table, theta: &[f64]) -> Vec<f64>;
    /// Angular frequency $f_k'(I_k)$ of every mode at the latent point `z`.
    fn frequency_at(&self, t: &Self::Table, theta: &[f64], z: &PhasePoint<f64, N>) -> Vec<f64>;
    /// Mode indices, slowest (lowest mean frequency) first.
    fn order(&self, t: &Self::Table, theta: &[f64]) -> Vec<usize> {
        let w = self.frequencies(t, theta);
        let mut idx: Vec<usize> = (0..w.len()).collect();
        idx.sort_by(|&a, &b| w[a].total_cmp(&w[b]));
        idx
    }
    /// Exact latent free energy $F_K = -\beta^{-1}\sum_k \ln\big(2\pi\int_0^\infty e^{-\beta f_k(I)}dI\big)$.
    fn free_energy(&self, t: &Self::Table, theta: &[f64]) -> f64;
    /// The analytic latent dynamics: every action is conserved and every angle advances at
    /// $f_k'(I_k)$; returns $z(t)$ from $z_0$.
    fn evolve(&self, t: &Self::Table, theta: &[f64], z0: &PhasePoint<f64, N>, time: f64) -> PhasePoint<f64, N>;
}

/// $\ln\omega_k$ of `dim` initial frequencies (each finite and positive).
fn log_frequencies<N: Size>(dim: N, omega: &[f64]) -> Result<Vec<f64>, ConfigError> {
    if omega.len() != dim.value() || omega.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(ConfigError::Value { what: "initial frequencies", value: format!("{omega:?}"), allowed: "N finite positive values" });
    }
    Ok(omega.iter().map(|w| w.ln()).collect())
}
