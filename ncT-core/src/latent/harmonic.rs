//! The latent base distribution of a classical neural canonical transformation: independent
//! harmonic oscillators
//! $$ K(Q, P) = \sum_k \tfrac12 (P_k^2 + \omega_k^2 Q_k^2), \qquad
//!    p(Q, P) = \prod_k \frac{\beta\omega_k}{2\pi} e^{-\beta(P_k^2 + \omega_k^2 Q_k^2)/2}, $$
//! with learnable log-frequencies $\ln\omega_k$ (the parameters). Sampling is exact and
//! reparameterised: $Q_k = \xi_k / (\sqrt\beta\,\omega_k)$, $P_k = \eta_k/\sqrt\beta$.

use crate::error::ConfigError;
use crate::layer::PhasePoint;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};
use rand_distr::{Distribution, StandardNormal};

/// $N$ independent harmonic oscillators at inverse temperature $\beta$.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentOscillators<N: Size> {
    dim: N,
    beta: f64,
    init_log_omega: Vec<f64>,
}

impl<N: Size> LatentOscillators<N> {
    pub fn new(dim: N, beta: f64) -> Result<Self, ConfigError> {
        if !(beta.is_finite() && beta > 0.0) {
            return Err(ConfigError::Value { what: "beta", value: beta.to_string(), allowed: "a finite inverse temperature > 0" });
        }
        Ok(Self { dim, beta, init_log_omega: vec![0.0; dim.value()] })
    }
    /// Initial frequencies (default all 1).
    pub fn with_initial_frequencies(mut self, omega: &[f64]) -> Result<Self, ConfigError> {
        self.init_log_omega = super::log_frequencies(self.dim, omega)?;
        Ok(self)
    }
    pub fn beta(&self) -> f64 {
        self.beta
    }
    /// Number of oscillators.
    pub fn dim(&self) -> N {
        self.dim
    }
    /// Frequencies in parameter order.
    pub fn omega(&self, theta: &[f64]) -> Vec<f64> {
        theta.iter().map(|l| l.exp()).collect()
    }
    /// Mode indices ordered slowest first.
    pub fn order(&self, theta: &[f64]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.dim.value()).collect();
        idx.sort_by(|&a, &b| theta[a].total_cmp(&theta[b]));
        idx
    }
    /// Exact sample.
    pub fn sample<R: rand::Rng + ?Sized>(&self, theta: &[f64], rng: &mut R) -> PhasePoint<f64, N> {
        let sb = self.beta.sqrt();
        let mut z = PhasePoint::zeros(self.dim);
        for k in 0..self.dim.value() {
            let xi: f64 = StandardNormal.sample(rng);
            let eta: f64 = StandardNormal.sample(rng);
            z.q[k] = xi / (sb * theta[k].exp());
            z.p[k] = eta / sb;
        }
        z
    }
    /// $\ln p(Q, P)$ for any scalar.
    pub fn log_prob<D: Scalar>(&self, theta: &[f64], z: &PhasePoint<D, N>) -> D {
        let mut lp = D::zero();
        for k in 0..self.dim.value() {
            let w = theta[k].exp();
            lp += z.p[k] * z.p[k] * (-0.5 * self.beta) + z.q[k] * z.q[k] * (-0.5 * self.beta * w * w) + (self.beta * w / (2.0 * std::f64::consts::PI)).ln();
        }
        lp
    }
    /// $\ln p$, its gradient in $(Q, P)$ and in $\ln\omega$.
    pub fn log_prob_grad(&self, theta: &[f64], z: &PhasePoint<f64, N>) -> (f64, PhasePoint<f64, N>, Vector<f64, N>) {
        let lp = self.log_prob(theta, z);
        let mut dz = PhasePoint::zeros(self.dim);
        let mut dl = Vector::zeros(self.dim);
        for k in 0..self.dim.value() {
            let w2 = (2.0 * theta[k]).exp();
            dz.q[k] = -self.beta * w2 * z.q[k];
            dz.p[k] = -self.beta * z.p[k];
            dl[k] = 1.0 - self.beta * w2 * z.q[k] * z.q[k];
        }
        (lp, dz, dl)
    }
}

impl<N: Size> Parametrised for LatentOscillators<N> {
    fn n_params(&self) -> usize {
        self.dim.value()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.copy_from_slice(&self.init_log_omega);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("log_omega", 0..self.dim.value())]
    }
}

impl<N: Size> super::Latent<N> for LatentOscillators<N> {
    type Table = ();
    fn dim(&self) -> N {
        self.dim
    }
    fn beta(&self) -> f64 {
        self.beta
    }
    fn table(&self, _theta: &[f64]) {}
    fn sample<R: rand::Rng + ?Sized>(&self, _t: &(), theta: &[f64], rng: &mut R) -> PhasePoint<f64, N> {
        LatentOscillators::sample(self, theta, rng)
    }
    fn log_prob(&self, _t: &(), theta: &[f64], z: &PhasePoint<f64, N>) -> f64 {
        LatentOscillators::log_prob(self, theta, z)
    }
    fn log_prob_grad(&self, _t: &(), theta: &[f64], z: &PhasePoint<f64, N>, coef: f64, g: &mut [f64]) -> (f64, PhasePoint<f64, N>) {
        let (lp, dz, dl) = LatentOscillators::log_prob_grad(self, theta, z);
        for k in 0..dl.len() {
            g[k] += coef * dl[k];
        }
        (lp, dz)
    }
    fn reparam_vjp(&self, _t: &(), _theta: &[f64], z: &PhasePoint<f64, N>, zbar: &PhasePoint<f64, N>, c: f64, g: &mut [f64]) {
        for k in 0..z.q.len() {
            // dQ_k / d ln(omega_k) = -Q_k, dP_k / d ln(omega_k) = 0; d ln p / d ln(omega_k) = 1
            // along the sample path.
            g[k] += -zbar.q[k] * z.q[k] + c;
        }
    }
    /// $K = \sum_k (P_k^2 + \omega_k^2 Q_k^2)/2$, $\partial K/\partial\ln\omega_k = \omega_k^2 Q_k^2$.
    fn energy_grad(&self, theta: &[f64], z: &PhasePoint<f64, N>, g: &mut [f64]) -> f64 {
        let mut k_total = 0.0;
        for k in 0..z.q.len() {
            let w2q2 = (2.0 * theta[k]).exp() * z.q[k] * z.q[k];
            k_total += 0.5 * (z.p[k] * z.p[k] + w2q2);
            g[k] += w2q2;
        }
        k_total
    }
    fn frequencies(&self, _t: &(), theta: &[f64]) -> Vec<f64> {
        self.omega(theta)
    }
    fn frequency_at(&self, _t: &(), theta: &[f64], _z: &PhasePoint<f64, N>) -> Vec<f64> {
        self.omega(theta)
    }
    fn order(&self, _t: &(), theta: &[f64]) -> Vec<usize> {
        LatentOscillators::order(self, theta)
    }
    fn free_energy(&self, _t: &(), theta: &[f64]) -> f64 {
        theta.iter().map(|l| -(2.0 * std::f64::consts::PI / (self.beta * l.exp())).ln() / self.beta).sum()
    }
    /// $Q(t) = Q_0\cos\omega t + (P_0/\omega)\sin\omega t$, $P(t) = -Q_0\omega\sin\omega t + P_0\cos\omega t$.
    fn evolve(&self, _t: &(), theta: &[f64], z0: &PhasePoint<f64, N>, time: f64) -> PhasePoint<f64, N> {
        let mut z = z0.clone();
        for k in 0..z.q.len() {
            let w = theta[k].exp();
            let (s, c) = (w * time).sin_cos();
            z.q[k] = z0.q[k] * c + z0.p[k] / w * s;
            z.p[k] = -z0.q[k] * w * s + z0.p[k] * c;
        }
        z
    }
}
