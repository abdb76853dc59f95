//! A permutation- and rotation-equivariant bijector of $N$ particles in $d$ dimensions with an
//! exact inverse: every particle is moved along its own radius by the same learnable monotone
//! profile,
//! $$ z_i = x_i\, e^{u(\rho_i)}, \quad \rho_i = |x_i|, \quad
//!    u(\rho) = a + \sum_{k=1}^K c_k \frac{\rho^2}{\rho^2 + s_k^2}, \quad
//!    c_k = \frac{1.9}{K}\tanh\gamma_k, $$
//! so $|\rho\,u'(\rho)| \le 0.95$ and $\rho \mapsto \rho e^{u(\rho)}$ is strictly increasing. Per
//! particle $\det\partial z_i/\partial x_i = e^{d\,u}(1 + \rho u')$, hence
//! $\ln|\det| = \sum_i [d\,u(\rho_i) + \ln(1 + \rho_i u'(\rho_i))]$. The inverse solves the radial
//! equation by safeguarded Newton in f64 and finishes with two Newton steps in the scalar type,
//! so dual numbers carry exact derivatives through it. Parameters $(a, \gamma_1..\gamma_K)$, zero
//! at initialisation (the identity). It acts on each particle alone (a one-body stream): it is the
//! trap-shape part of a fermionic flow, not a backflow.

use crate::dim::{Dyn, Vector};
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;

/// Radial scaling of each of `particles` particles in `dim` dimensions (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct RadialScaling {
    pub particles: usize,
    pub dim: usize,
    /// The length scales $s_k$ of the profile.
    pub scales: Vec<f64>,
    /// Initial parameters (default zero: the identity).
    pub init: Option<Vec<f64>>,
}

impl RadialScaling {
    /// Scales $s_k$ default to 0.5, 1, 2 (trap units).
    pub fn new(particles: usize, dim: usize) -> Self {
        RadialScaling { particles, dim, scales: vec![0.5, 1.0, 2.0], init: None }
    }
    /// Start from `theta` instead of the identity (ignored unless it has `1 + scales` values).
    pub fn with_initial(mut self, theta: &[f64]) -> Self {
        self.init = (theta.len() == 1 + self.scales.len()).then(|| theta.to_vec());
        self
    }
    fn coefs(&self, theta: &[f64]) -> Vec<f64> {
        let k = self.scales.len() as f64;
        theta[1..].iter().map(|g| 1.9 / k * g.tanh()).collect()
    }
    /// $u(\rho)$, $\rho u'(\rho)$, $u'(\rho)/\rho$ and $(\rho u')'(\rho)/\rho$ from $\rho^2$ (all regular at 0).
    fn profile<D: Scalar>(&self, theta: &[f64], r2: D) -> (D, D, D, D) {
        let c = self.coefs(theta);
        let (mut u, mut ru, mut du_over_r, mut dru_over_r) = (D::from(theta[0]), D::zero(), D::zero(), D::zero());
        for (ck, &s) in c.iter().zip(&self.scales) {
            let s2 = s * s;
            let den = r2 + s2;
            u += r2 / den * *ck;
            ru += r2 * s2 * 2.0 / (den * den) * *ck;
            du_over_r += D::from(2.0 * s2) / (den * den) * *ck;
            dru_over_r += (-r2 + s2) * (4.0 * s2) / (den * den * den) * *ck;
        }
        (u, ru, du_over_r, dru_over_r)
    }
}

impl Parametrised for RadialScaling {
    fn n_params(&self) -> usize {
        1 + self.scales.len()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        match &self.init {
            Some(t) => theta.copy_from_slice(t),
            None => theta.iter_mut().for_each(|t| *t = 0.0),
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("radial", 0..self.n_params())]
    }
}

impl Bijector<Dyn> for RadialScaling {
    type Cache<D: Scalar> = Vector<D, Dyn>;
    fn dim(&self) -> Dyn {
        Dyn(self.particles * self.dim)
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D, Self::Cache<D>) {
        let d = self.dim;
        let mut z = x.clone();
        let mut ld = D::zero();
        for i in 0..self.particles {
            let r2 = (0..d).fold(D::zero(), |acc, a| acc + x[i * d + a] * x[i * d + a]);
            let (u, ru, _, _) = self.profile(theta, r2);
            let g = u.exp();
            for a in 0..d {
                z[i * d + a] = x[i * d + a] * g;
            }
            ld += u * d as f64 + (ru + 1.0).ln();
        }
        (z, ld, x.clone())
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
        let d = self.dim;
        let mut x = y.clone();
        let mut ld = D::zero();
        for i in 0..self.particles {
            let t2 = (0..d).fold(D::zero(), |acc, a| acc + y[i * d + a] * y[i * d + a]);
            let target = t2.sqrt();
            // F(rho) = rho e^{u(rho)} - target, increasing; f64 root by Newton with bisection.
            let t = target.re();
            let f = |rho: f64| -> (f64, f64) {
                let (u, ru, _, _) = self.profile::<f64>(theta, rho * rho);
                let g = u.exp();
                (rho * g - t, g * (1.0 + ru))
            };
            let (mut lo, mut hi) = (0.0, t * (-theta[0] + 2.0).exp().max(1.0) + 1.0);
            let mut rho = t * (-theta[0]).exp();
            for _ in 0..200 {
                let (v, dv) = f(rho);
                if v.abs() <= 1e-15 * t.max(1e-300) {
                    break;
                }
                if v > 0.0 { hi = rho } else { lo = rho }
                let next = rho - v / dv;
                rho = if next > lo && next < hi { next } else { 0.5 * (lo + hi) };
            }
            // Two Newton steps in D carry the derivatives of the root exactly.
            let mut r = D::from(rho);
            for _ in 0..2 {
                let (u, ru, _, _) = self.profile(theta, r * r);
                let g = u.exp();
                r -= (r * g - target) / (g * (ru + 1.0));
            }
            let (u, ru, _, _) = self.profile(theta, r * r);
            let back = (-u).exp();
            for a in 0..d {
                x[i * d + a] = y[i * d + a] * back;
            }
            ld -= u * d as f64 + (ru + 1.0).ln();
        }
        (x, ld)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, ybar: &Vector<D, Dyn>, ldbar: D, g: &mut [D]) -> Vector<D, Dyn> {
        let d = self.dim;
        let k = self.scales.len() as f64;
        let mut xbar = x.clone();
        for i in 0..self.particles {
            let r2 = (0..d).fold(D::zero(), |acc, a| acc + x[i * d + a] * x[i * d + a]);
            let (u, ru, du_over_r, dru_over_r) = self.profile(theta, r2);
            let e = u.exp();
            // L depends on u through z (ybar . z) and the log-det (ldbar d), on rho u' through the log-det.
            let ybar_dot_z = (0..d).fold(D::zero(), |acc, a| acc + ybar[i * d + a] * x[i * d + a] * e);
            let ubar = ybar_dot_z + ldbar * d as f64;
            let rubar = ldbar / (ru + 1.0);
            g[0] += ubar;
            for (j, &s) in self.scales.iter().enumerate() {
                let s2 = s * s;
                let den = r2 + s2;
                let dc = 1.9 / k * (1.0 - theta[1 + j].tanh().powi(2));
                g[1 + j] += (ubar * (r2 / den) + rubar * (r2 * s2 * 2.0 / (den * den))) * dc;
            }
            for a in 0..d {
                xbar[i * d + a] = ybar[i * d + a] * e + x[i * d + a] * (ubar * du_over_r + rubar * dru_over_r);
            }
        }
        xbar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradCheckConfig, check_bijector};

    fn theta() -> Vec<f64> {
        vec![0.2, 0.7, -1.3, 0.4]
    }

    #[test]
    fn gradients_round_trip_and_log_det() {
        let layer = RadialScaling::new(3, 2);
        let report = check_bijector(&layer, &theta(), &GradCheckConfig::default());
        assert!(report.passed(1e-6, 1e-12), "{report}");
        let x = Vector::from_fn(Dyn(6), |k| ((k * 5 % 7) as f64 - 3.0) * 0.45);
        let (z, ld, _) = layer.forward(&theta(), &x);
        let (back, ild) = layer.inverse(&theta(), &z);
        assert!(back.iter().zip(x.iter()).all(|(a, b)| (a - b).abs() < 1e-13), "round trip");
        assert!((ld + ild).abs() < 1e-13);
        // log-det against the num-dual Jacobian.
        let jac = nalgebra::DMatrix::from_fn(6, 6, |i, j| {
            let v = Vector::from_fn(Dyn(6), |k| num_dual::Dual64::new(x[k], if k == j { 1.0 } else { 0.0 }));
            layer.forward(&theta(), &v).0[i].eps
        });
        assert!((jac.determinant().abs().ln() - ld).abs() < 1e-12, "{} vs {ld}", jac.determinant().abs().ln());
    }

    #[test]
    fn equivariant_under_permutations_and_rotations() {
        let layer = RadialScaling::new(4, 3);
        let x = Vector::from_fn(Dyn(12), |k| ((k * 7 % 11) as f64 - 5.0) * 0.3);
        let (z, ld, _) = layer.forward(&theta(), &x);
        // Permutation (0 2 1 3) of particles.
        let perm = [2usize, 0, 1, 3];
        let px = Vector::from_fn(Dyn(12), |k| x[perm[k / 3] * 3 + k % 3]);
        let (pz, pld, _) = layer.forward(&theta(), &px);
        assert!((0..12).all(|k| (pz[k] - z[perm[k / 3] * 3 + k % 3]).abs() < 1e-12) && (pld - ld).abs() < 1e-12);
        // A rotation about the z axis.
        let (s, c) = 0.83f64.sin_cos();
        let rot = |v: &Vector<f64, Dyn>| Vector::from_fn(Dyn(12), |k| match k % 3 { 0 => c * v[k] - s * v[k + 1], 1 => s * v[k - 1] + c * v[k], _ => v[k] });
        let (rz, rld, _) = layer.forward(&theta(), &rot(&x));
        let zr = rot(&z);
        assert!((0..12).all(|k| (rz[k] - zr[k]).abs() < 1e-12) && (rld - ld).abs() < 1e-12);
    }
}
