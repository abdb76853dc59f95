//! A periodic pair backflow of $N$ electrons in an orthorhombic cell, exactly invertible with an
//! exact log-determinant: the residual map $z = \nabla\big(\tfrac12|x|^2 + \sum_{i<j} U(r_{ij})\big)$,
//! $$ z_i = x_i + \sum_{j\ne i}\nabla U(r_{ij}), \qquad
//!    U(r) = \sum_s c_s \sum_{G\in s}\frac{\cos(G\cdot r)}{|G|^2}, $$
//! with $G = 2\pi(n_1/L_1, \dots)$ running over the shells $s$ of integer $|n|^2$ (the first
//! `shells` of them). $U$ is periodic, so the map commutes with permutations, with global shifts
//! and with lattice translations of any one particle, and $|\Phi(z)|^2$ of twisted plane waves
//! keeps its boundary conditions. The Jacobian $A = I + \sum_{i<j}(e_i - e_j)(e_i - e_j)^\top
//! \otimes \nabla^2U(r_{ij})$ is symmetric; with $\|\nabla^2 U\| \le \sum_s n_s|c_s|$ ($n_s$ vectors
//! in shell $s$) and the coefficients
//! $$ c_s = \frac{0.9\,\sigma}{N\,n_s\sqrt K}\,\frac{\theta_s}{\sqrt{1 + |\theta|^2}}
//!    \quad(K \text{ shells}, \ \sigma \le 1 \text{ the strength}), $$
//! $\|A - I\| \le 0.9$ for every parameter value: $A$ is positive definite, the map is the
//! gradient of a strongly convex function and hence a bijection, and $\ln\det A$ comes from its
//! Cholesky factor. The inverse contracts, polishes by Newton to machine precision and ends with
//! two Newton steps in the scalar type (exact derivatives through it), so samples of $|\Phi|^2$
//! from [`super::PlaneWaveDpp`] map to exact samples of $|\psi|^2$. Parameters $\theta$, zero at
//! initialisation (the identity). A pair backflow in the spirit of Kwon, Ceperley & Martin, PRB 58,
//! 6800 (1998), written as a Fourier series so that it is periodic and a gradient field.

use crate::dim::{Dyn, Vector};
use crate::error::ConfigError;
use crate::fermion::gradient_map::{ResidualField, inverse_matrix, residual_forward, residual_inverse};
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;

/// Lipschitz budget of the field: $\|\partial v/\partial x\| \le$ `BOUND` $\times$ strength.
const BOUND: f64 = 0.9;

/// One shell of reciprocal vectors: the vectors $G$, and $G/|G|^2$, $\hat G$.
#[derive(Clone, Debug, PartialEq)]
struct Shell {
    g: Vec<Vec<f64>>,
    g_over_g2: Vec<Vec<f64>>,
    unit: Vec<Vec<f64>>,
}

/// One periodic backflow step (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodicBackflow {
    pub particles: usize,
    pub lengths: Vec<f64>,
    shells: Vec<Shell>,
    /// Factor on the coefficient bound (default 1; invertible for any value in (0, 1]).
    pub strength: f64,
    /// Initial parameters (default zero: the identity).
    pub init: Option<Vec<f64>>,
}

impl PeriodicBackflow {
    /// `particles` electrons in the cell `lengths` (2 or 3 of them) with the first `shells` shells
    /// of reciprocal vectors.
    pub fn new(particles: usize, lengths: &[f64], shells: usize) -> Result<Self, ConfigError> {
        let d = lengths.len();
        if d != 2 && d != 3 {
            return Err(ConfigError::Value { what: "cell", value: format!("{d} lengths"), allowed: "2 (a square or rectangular cell) or 3 (orthorhombic)" });
        }
        if let Some(l) = lengths.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(ConfigError::Value { what: "cell length", value: l.to_string(), allowed: "a finite positive number" });
        }
        if particles < 2 {
            return Err(ConfigError::Value { what: "particles", value: particles.to_string(), allowed: "at least 2 (a pair backflow)" });
        }
        if !(1..=64).contains(&shells) {
            return Err(ConfigError::Value { what: "backflow shells", value: shells.to_string(), allowed: "1 to 64" });
        }
        // Integer vectors n != 0 by |n|^2, shell by shell, until `shells` shells are full.
        let mut found: Vec<(i64, Vec<i64>)> = Vec::new();
        let mut reach = 1i64;
        loop {
            found.clear();
            let width = 2 * reach + 1;
            for mut c in 0..width.pow(d as u32) {
                let n: Vec<i64> = (0..d)
                    .map(|_| {
                        let v = c % width - reach;
                        c /= width;
                        v
                    })
                    .collect();
                let n2: i64 = n.iter().map(|v| v * v).sum();
                if n2 > 0 {
                    found.push((n2, n));
                }
            }
            let mut norms: Vec<i64> = found.iter().map(|f| f.0).collect();
            norms.sort_unstable();
            norms.dedup();
            // Shells with |n|^2 <= reach^2 are complete at this reach.
            if norms.iter().filter(|&&v| v <= reach * reach).count() >= shells {
                break;
            }
            reach += 1;
        }
        let mut norms: Vec<i64> = found.iter().map(|f| f.0).collect();
        norms.sort_unstable();
        norms.dedup();
        let two_pi = 2.0 * std::f64::consts::PI;
        let shells = norms[..shells]
            .iter()
            .map(|&n2| {
                let mut members: Vec<&Vec<i64>> = found.iter().filter(|f| f.0 == n2).map(|f| &f.1).collect();
                members.sort();
                let g: Vec<Vec<f64>> = members.iter().map(|n| n.iter().zip(lengths).map(|(&a, l)| two_pi * a as f64 / l).collect()).collect();
                let g2 = |v: &Vec<f64>| v.iter().map(|c| c * c).sum::<f64>();
                Shell {
                    g_over_g2: g.iter().map(|v| v.iter().map(|c| c / g2(v)).collect()).collect(),
                    unit: g.iter().map(|v| v.iter().map(|c| c / g2(v).sqrt()).collect()).collect(),
                    g,
                }
            })
            .collect();
        Ok(PeriodicBackflow { particles, lengths: lengths.to_vec(), shells, strength: 1.0, init: None })
    }
    /// The same with the coefficient bound scaled by `strength` (in (0, 1]).
    pub fn with_strength(mut self, strength: f64) -> Result<Self, ConfigError> {
        if !(strength > 0.0 && strength <= 1.0) {
            return Err(ConfigError::Value { what: "backflow strength", value: strength.to_string(), allowed: "a number in (0, 1]" });
        }
        self.strength = strength;
        Ok(self)
    }
    /// Start from `theta` instead of the identity (ignored unless it has the right length).
    pub fn with_initial(mut self, theta: &[f64]) -> Self {
        self.init = (theta.len() == self.n_params()).then(|| theta.to_vec());
        self
    }
    fn dim_(&self) -> usize {
        self.lengths.len()
    }
    /// The number of reciprocal vectors in each shell.
    pub fn shell_sizes(&self) -> Vec<usize> {
        self.shells.iter().map(|s| s.g.len()).collect()
    }

    /// Coefficients $c_s$ and the Jacobian $\partial c_s/\partial\theta_t$ (row-major).
    fn coefs(&self, theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let k = self.shells.len();
        let norm = (1.0 + theta.iter().map(|t| t * t).sum::<f64>()).sqrt();
        let kappa: Vec<f64> = self.shells.iter().map(|s| self.strength * BOUND / (self.particles as f64 * s.g.len() as f64 * (k as f64).sqrt())).collect();
        let c = (0..k).map(|s| kappa[s] * theta[s] / norm).collect();
        let mut dc = vec![0.0; k * k];
        for s in 0..k {
            for t in 0..k {
                dc[s * k + t] = kappa[s] * (if s == t { 1.0 / norm } else { 0.0 } - theta[s] * theta[t] / norm.powi(3));
            }
        }
        (c, dc)
    }

    /// The field $v(x)$ and $A = I + \partial v/\partial x$ (row-major, $n = Nd$) at the
    /// coefficients $c_s$.
    fn field_at<D: Scalar>(&self, c: &[f64], x: &[D]) -> (Vec<D>, Vec<D>) {
        let (np, d) = (self.particles, self.dim_());
        let n = np * d;
        let mut v = vec![D::zero(); n];
        let mut a = vec![D::zero(); n * n];
        for k in 0..n {
            a[k * n + k] = D::one();
        }
        for i in 0..np {
            for j in i + 1..np {
                let r: Vec<D> = (0..d).map(|s| x[i * d + s] - x[j * d + s]).collect();
                let mut grad = vec![D::zero(); d];
                let mut hess = vec![D::zero(); d * d];
                for (shell, &cs) in self.shells.iter().zip(c) {
                    for ((g, gg), u) in shell.g.iter().zip(&shell.g_over_g2).zip(&shell.unit) {
                        let phase = (0..d).fold(D::zero(), |acc, s| acc + r[s] * g[s]);
                        let (sn, cs_) = phase.sin_cos();
                        let (sn, co) = (sn * cs, cs_ * cs);
                        for s in 0..d {
                            grad[s] -= sn * gg[s];
                            for t in 0..d {
                                hess[s * d + t] -= co * (u[s] * u[t]);
                            }
                        }
                    }
                }
                for s in 0..d {
                    v[i * d + s] += grad[s];
                    v[j * d + s] -= grad[s];
                    for t in 0..d {
                        let h = hess[s * d + t];
                        a[(i * d + s) * n + i * d + t] += h;
                        a[(j * d + s) * n + j * d + t] += h;
                        a[(i * d + s) * n + j * d + t] -= h;
                        a[(j * d + s) * n + i * d + t] -= h;
                    }
                }
            }
        }
        (v, a)
    }
}

impl ResidualField for PeriodicBackflow {
    fn field<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, Vec<D>) {
        self.field_at(&self.coefs(theta).0, x)
    }
}

impl Parametrised for PeriodicBackflow {
    fn n_params(&self) -> usize {
        self.shells.len()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        match &self.init {
            Some(t) => theta.copy_from_slice(t),
            None => theta.fill(0.0),
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::new("pair", 0..self.n_params())]
    }
}

impl Bijector<Dyn> for PeriodicBackflow {
    type Cache<D: Scalar> = Vector<D, Dyn>;
    fn dim(&self) -> Dyn {
        Dyn(self.particles * self.dim_())
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D, Self::Cache<D>) {
        let (z, ld) = residual_forward(self, theta, x);
        (z, ld, x.clone())
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
        residual_inverse(self, theta, y)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, ybar: &Vector<D, Dyn>, ldbar: D, g: &mut [D]) -> Vector<D, Dyn> {
        let (np, d) = (self.particles, self.dim_());
        let n = np * d;
        let k = self.shells.len();
        let (c, dc) = self.coefs(theta);
        let (_, mut l) = self.field_at(&c, x.as_slice());
        let inv = inverse_matrix(&mut l, n);
        let cb = |bi: usize, bj: usize, s: usize, t: usize| inv[(bi * d + s) * n + bj * d + t];
        let mut gc = vec![D::zero(); k];
        let mut xbar = ybar.clone();
        for i in 0..np {
            for j in i + 1..np {
                let r: Vec<D> = (0..d).map(|s| x[i * d + s] - x[j * d + s]).collect();
                let du: Vec<D> = (0..d).map(|s| ybar[i * d + s] - ybar[j * d + s]).collect();
                // W = C_ii + C_jj - C_ij - C_ji: d ln det A / d Hess U(r_ij).
                let w: Vec<D> = (0..d * d).map(|st| cb(i, i, st / d, st % d) + cb(j, j, st / d, st % d) - cb(i, j, st / d, st % d) - cb(j, i, st / d, st % d)).collect();
                let mut rbar = vec![D::zero(); d];
                for (sh, shell) in self.shells.iter().enumerate() {
                    for ((gv, gg), u) in shell.g.iter().zip(&shell.g_over_g2).zip(&shell.unit) {
                        let phase = (0..d).fold(D::zero(), |acc, s| acc + r[s] * gv[s]);
                        let (sn, co) = phase.sin_cos();
                        let du_gg = (0..d).fold(D::zero(), |acc, s| acc + du[s] * gg[s]);
                        let du_u = (0..d).fold(D::zero(), |acc, s| acc + du[s] * u[s]);
                        let uwu = (0..d * d).fold(D::zero(), |acc, st| acc + w[st] * (u[st / d] * u[st % d]));
                        // z part: v_i += grad U = -sum c sin(G.r) G/|G|^2; ld part: tr(W Hess U).
                        gc[sh] -= sn * du_gg + ldbar * uwu * co;
                        for s in 0..d {
                            // Hess U du and d tr(W Hess U)/dr.
                            rbar[s] += (-(co * du_u) * u[s] + ldbar * uwu * sn * gv[s]) * c[sh];
                        }
                    }
                }
                for s in 0..d {
                    xbar[i * d + s] += rbar[s];
                    xbar[j * d + s] -= rbar[s];
                }
            }
        }
        for t in 0..k {
            g[t] += (0..k).fold(D::zero(), |acc, s| acc + gc[s] * dc[s * k + t]);
        }
        xbar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradCheckConfig, check_bijector};

    fn layer(np: usize, d: usize) -> PeriodicBackflow {
        let side = if d == 2 { (std::f64::consts::PI * np as f64).sqrt() } else { (4.0 * std::f64::consts::PI * np as f64 / 3.0).cbrt() };
        PeriodicBackflow::new(np, &vec![side; d], 4).unwrap()
    }
    fn theta() -> Vec<f64> {
        vec![1.9, -1.4, 0.6, 2.2]
    }
    fn config(n: usize, side: f64) -> Vector<f64, Dyn> {
        Vector::from_fn(Dyn(n), |k| ((k * 7 % 11) as f64 + 0.3 * (k % 3) as f64) / 11.0 * side)
    }

    #[test]
    fn shells_are_complete() {
        let l = layer(3, 2);
        assert_eq!(l.shell_sizes(), vec![4, 4, 4, 8]);
        assert_eq!(layer(3, 3).shell_sizes(), vec![6, 12, 8, 6]);
        assert!(PeriodicBackflow::new(1, &[1.0, 1.0], 3).is_err() && PeriodicBackflow::new(3, &[1.0], 3).is_err());
        assert!(PeriodicBackflow::new(3, &[1.0, -1.0], 3).is_err() && l.clone().with_strength(1.5).is_err());
    }

    #[test]
    fn gradients_round_trip_and_log_det() {
        for d in [2, 3] {
            let l = layer(3, d);
            let report = check_bijector(&l, &theta(), &GradCheckConfig::default());
            assert!(report.passed(1e-6, 1e-11), "d = {d}: {report}");
            let n = 3 * d;
            let x = config(n, l.lengths[0]);
            let (z, ld, _) = l.forward(&theta(), &x);
            let (back, ild) = l.inverse(&theta(), &z);
            let err = back.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-13 && (ld + ild).abs() < 1e-13, "round trip {err:e}");
            let moved = z.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(moved > 5e-3, "the layer moves the particles: {moved}");
            let jac = nalgebra::DMatrix::from_fn(n, n, |i, j| {
                let v = Vector::from_fn(Dyn(n), |k| num_dual::Dual64::new(x[k], if k == j { 1.0 } else { 0.0 }));
                l.forward(&theta(), &v).0[i].eps
            });
            assert!((jac.determinant().ln() - ld).abs() < 1e-12, "{} vs {ld}", jac.determinant().ln());
        }
    }

    #[test]
    fn equivariant_under_permutations_shifts_and_lattice_translations() {
        let l = layer(4, 2);
        let side = l.lengths[0];
        let x = config(8, side);
        let (z, ld, _) = l.forward(&theta(), &x);
        let perm = [2usize, 0, 3, 1];
        let px = Vector::from_fn(Dyn(8), |k| x[perm[k / 2] * 2 + k % 2]);
        let (pz, pld, _) = l.forward(&theta(), &px);
        assert!((0..8).all(|k| (pz[k] - z[perm[k / 2] * 2 + k % 2]).abs() < 1e-12) && (pld - ld).abs() < 1e-12);
        // A global shift moves z by the same vector; a lattice translation of one particle moves
        // its z by that lattice vector and leaves the others.
        let shift = [0.37, -1.21];
        let (sz, sld, _) = l.forward(&theta(), &Vector::from_fn(Dyn(8), |k| x[k] + shift[k % 2]));
        assert!((0..8).all(|k| (sz[k] - z[k] - shift[k % 2]).abs() < 1e-12) && (sld - ld).abs() < 1e-12);
        let (tz, tld, _) = l.forward(&theta(), &Vector::from_fn(Dyn(8), |k| x[k] + if k == 2 { side } else if k == 7 { -2.0 * side } else { 0.0 }));
        let want = |k: usize| z[k] + if k == 2 { side } else if k == 7 { -2.0 * side } else { 0.0 };
        assert!((0..8).all(|k| (tz[k] - want(k)).abs() < 1e-12) && (tld - ld).abs() < 1e-12);
    }

    #[test]
    fn saturated_coefficients_stay_invertible() {
        let l = layer(6, 2);
        let big = [40.0, -40.0, 40.0, 40.0];
        for scale in [0.01, 0.3, 1.0] {
            let x = config(12, scale * l.lengths[0]);
            let (z, ld, _) = l.forward(&big, &x);
            let (back, ild) = l.inverse(&big, &z);
            let err = back.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(ld.is_finite() && err < 1e-12 && (ld + ild).abs() < 1e-12, "scale {scale}: {err:e}, {ld}");
        }
    }
}
