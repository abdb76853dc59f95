//! The symplectic point transformation (cotangent lift) of a configuration-space bijector:
//! $$ Q = f(q), \qquad P = \left(\frac{\partial f}{\partial q}\right)^{-T} p. $$
//! This is a canonical transformation for any diffeomorphism $f$ (its generating function is
//! $F_2(q, P) = P \cdot f(q)$). The momentum map is computed layer by layer analytically
//! ([`CotangentLift`]), never by re-running the inverse network.

use crate::layer::{CotangentLift, PhasePoint, SymplecticLayer};
use crate::params::{ParamGroup, Parametrised};
use crate::dim::Size;
use crate::scalar::Scalar;

/// Point transformation of phase space induced by the configuration-space bijector `B`.
#[derive(Clone, Debug)]
pub struct PointTransform<B> {
    pub inner: B,
}

impl<B> PointTransform<B> {
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B: Parametrised> Parametrised for PointTransform<B> {
    fn n_params(&self) -> usize {
        self.inner.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        self.inner.init_params(rng, theta)
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        self.inner.param_groups()
    }
}

impl<N: Size, B: CotangentLift<N>> SymplecticLayer<N> for PointTransform<B> {
    type Cache<D: Scalar> = B::LiftCache<D>;
    fn dim(&self) -> N {
        self.inner.dim()
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::Cache<D>) {
        self.inner.lift_forward(theta, x)
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N> {
        self.inner.lift_inverse(theta, y)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N> {
        self.inner.lift_vjp(theta, cache, ybar, g)
    }
}
