//! Per-coordinate scale and shift, $y_i = e^{a_i} x_i + t_i$, $\ln|\det| = \sum_i a_i$: the front
//! layer of the lithium flows of Zhang et al. (PRL 134, 246101 (2025)), which rescales every phonon
//! mode before the couplings. The scale is parametrised by its logarithm (the reference stores the
//! scale itself), so it stays positive; it starts at the identity.

use crate::dim::{Size, Vector};
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;

/// $y = e^{a}\odot x + t$ on $\mathbb R^N$. Parameters: $a$ (log-scales), then $t$.
#[derive(Clone, Debug)]
pub struct DiagonalAffine<N: Size> {
    dim: N,
}

impl<N: Size> DiagonalAffine<N> {
    pub fn new(dim: N) -> Self {
        Self { dim }
    }
}

impl<N: Size> Parametrised for DiagonalAffine<N> {
    fn n_params(&self) -> usize {
        2 * self.dim.value()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        theta.fill(0.0);
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let n = self.dim.value();
        vec![ParamGroup::new("log_scale", 0..n), ParamGroup::new("shift", n..2 * n)]
    }
}

impl<N: Size> Bijector<N> for DiagonalAffine<N> {
    type Cache<D: Scalar> = Vector<D, N>;
    fn dim(&self) -> N {
        self.dim
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, Self::Cache<D>) {
        let n = self.dim.value();
        let y = Vector::from_fn(self.dim, |i| x[i] * theta[i].exp() + theta[n + i]);
        let ld = D::from(theta[..n].iter().sum::<f64>());
        (y, ld, x.clone())
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D) {
        let n = self.dim.value();
        let x = Vector::from_fn(self.dim, |i| (y[i] - theta[n + i]) * (-theta[i]).exp());
        (x, D::from(-theta[..n].iter().sum::<f64>()))
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, ybar: &Vector<D, N>, ldbar: D, g: &mut [D]) -> Vector<D, N> {
        let n = self.dim.value();
        Vector::from_fn(self.dim, |i| {
            let e = theta[i].exp();
            g[i] += ybar[i] * x[i] * e + ldbar;
            g[n + i] += ybar[i];
            ybar[i] * e
        })
    }
}

/// The identity map (no parameters): the bare basis states, e.g. the harmonic crystal.
#[derive(Clone, Debug)]
pub struct IdentityFlow<N: Size> {
    dim: N,
}

impl<N: Size> IdentityFlow<N> {
    pub fn new(dim: N) -> Self {
        Self { dim }
    }
}

impl<N: Size> Parametrised for IdentityFlow<N> {
    fn n_params(&self) -> usize {
        0
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, _theta: &mut [f64]) {}
    fn param_groups(&self) -> Vec<ParamGroup> {
        Vec::new()
    }
}

impl<N: Size> Bijector<N> for IdentityFlow<N> {
    type Cache<D: Scalar> = ();
    fn dim(&self) -> N {
        self.dim
    }
    fn forward<D: Scalar>(&self, _theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, ()) {
        (x.clone(), D::zero(), ())
    }
    fn inverse<D: Scalar>(&self, _theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D) {
        (y.clone(), D::zero())
    }
    fn vjp<D: Scalar>(&self, _theta: &[f64], _cache: &(), ybar: &Vector<D, N>, _ldbar: D, _g: &mut [D]) -> Vector<D, N> {
        ybar.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dim::Dyn;
    use crate::gradcheck::{GradCheckConfig, check_bijector};

    #[test]
    fn gradients_round_trip_and_log_det() {
        let layer = DiagonalAffine::new(Dyn(4));
        let theta = vec![0.3, -0.2, 0.05, 0.7, 0.1, -0.4, 0.25, 0.0];
        let report = check_bijector(&layer, &theta, &GradCheckConfig::default());
        assert!(report.passed(1e-6, 1e-12), "{report}");
        let x = Vector::from_fn(Dyn(4), |k| k as f64 * 0.3 - 0.5);
        let (y, ld, _) = layer.forward(&theta, &x);
        let (back, ild) = layer.inverse(&theta, &y);
        assert!(back.iter().zip(x.iter()).all(|(a, b)| (a - b).abs() < 1e-15));
        assert!((ld - 0.85).abs() < 1e-15 && (ld + ild).abs() < 1e-15);
    }
}
