//! A discrete pair backflow of $N$ particles in $d$ dimensions with an exact inverse and an exact
//! log-determinant: FermiFlow's backflow field (Xie, Zhang & Wang, arXiv:2105.08644) taken as one
//! residual step,
//! $$ z_i = x_i + \sum_{j\ne i}\eta(|r_{ij}|)\,r_{ij} + \mu(|x_i|)\,x_i, \qquad r_{ij} = x_i - x_j, $$
//! $$ \eta(r) = \sum_k a_k e^{-r^2/s_k^2}, \quad \mu(\rho) = \sum_k b_k e^{-\rho^2/t_k^2}, \quad
//!    a_k = \frac{0.6}{N K_\eta}\tanh\alpha_k, \quad b_k = \frac{0.3}{K_\mu}\tanh\beta_k . $$
//! The field is the gradient of $\sum_{i<j} G(r_{ij}) + \sum_i H(|x_i|)$, so its Jacobian $J$ is
//! symmetric; $r \mapsto e^{-r^2/s^2} r$ is 1-Lipschitz, hence $\|J\| \le N\sum_k|a_k| + \sum_k|b_k|
//! \le 0.9$ and $A = I + J$ is symmetric positive definite everywhere. The map is the gradient of
//! a strongly convex function: a bijection of $\mathbb R^{Nd}$, permutation- and
//! rotation-equivariant, with $\ln\det A = 2\sum\ln L_{kk}$ from the Cholesky factor (exact,
//! $O((Nd)^3)$). The inverse contracts $x \leftarrow y - v(x)$, polishes by Newton in f64 to
//! machine precision and ends with two Newton steps in the scalar type, so dual numbers carry exact
//! derivatives through it. Parameters $(\alpha, \beta)$, zero at initialisation (the identity).
//! Stack several (and a [`super::RadialScaling`]) for a deeper flow.

use super::gradient_map::{ResidualField, inverse_matrix, residual_forward, residual_inverse};
use crate::dim::{Dyn, Vector};
use crate::layer::Bijector;
use crate::params::{ParamGroup, Parametrised};
use crate::scalar::Scalar;

/// One pair-backflow step (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct PairBackflow {
    pub particles: usize,
    pub dim: usize,
    /// Ranges $s_k$ of the pair function $\eta$.
    pub pair_scales: Vec<f64>,
    /// Ranges $t_k$ of the one-body function $\mu$.
    pub radial_scales: Vec<f64>,
    /// Initial parameters (default zero: the identity).
    pub init: Option<Vec<f64>>,
    /// Factor on both coefficient bounds (default 1; the map is invertible for any value <= 1).
    pub strength: f64,
}

/// Share of the Lipschitz budget of the pair and the one-body terms (sum < 1).
const PAIR_BOUND: f64 = 0.6;
const RADIAL_BOUND: f64 = 0.3;

/// $\sum_k c_k e^{-r^2/s_k^2}$, its $f'/r$ and $(f'/r)'/r$ at $r^2$, with the basis values.
fn gaussians<D: Scalar>(coefs: &[f64], scales: &[f64], r2: D) -> (D, D, D, Vec<D>) {
    let (mut f, mut q, mut p) = (D::zero(), D::zero(), D::zero());
    let mut basis = Vec::with_capacity(scales.len());
    for (&c, &s) in coefs.iter().zip(scales) {
        let s2 = s * s;
        let g = (-r2 / s2).exp();
        f += g * c;
        q += g * (-2.0 * c / s2);
        p += g * (4.0 * c / (s2 * s2));
        basis.push(g);
    }
    (f, q, p, basis)
}

impl PairBackflow {
    /// Pair ranges 0.5, 1, 2 and one-body ranges 1, 2 (trap units).
    pub fn new(particles: usize, dim: usize) -> Self {
        PairBackflow { particles, dim, pair_scales: vec![0.5, 1.0, 2.0], radial_scales: vec![1.0, 2.0], init: None, strength: 1.0 }
    }
    /// Start from `theta` instead of the identity (ignored unless it has the right length).
    pub fn with_initial(mut self, theta: &[f64]) -> Self {
        self.init = (theta.len() == self.n_params()).then(|| theta.to_vec());
        self
    }
    fn n_pair(&self) -> usize {
        self.pair_scales.len()
    }
    /// Coefficients $a_k$, $b_k$ and their derivatives in $\alpha_k$, $\beta_k$.
    fn coefs(&self, theta: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let kp = self.n_pair();
        let cp = self.strength * PAIR_BOUND / (self.particles.max(1) as f64 * kp.max(1) as f64);
        let cr = self.strength * RADIAL_BOUND / self.radial_scales.len().max(1) as f64;
        let scale = |k: usize| if k < kp { cp } else { cr };
        let c: Vec<f64> = theta.iter().enumerate().map(|(k, t)| scale(k) * t.tanh()).collect();
        let dc: Vec<f64> = theta.iter().enumerate().map(|(k, t)| scale(k) * (1.0 - t.tanh().powi(2))).collect();
        (c[..kp].to_vec(), c[kp..].to_vec(), dc)
    }
}

impl ResidualField for PairBackflow {
    fn field<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, Vec<D>) {
        let (np, d) = (self.particles, self.dim);
        let n = np * d;
        let (a, b, _) = self.coefs(theta);
        let mut v = vec![D::zero(); n];
        let mut m = vec![D::zero(); n * n];
        for k in 0..n {
            m[k * n + k] = D::one();
        }
        let add_block = |m: &mut [D], bi: usize, bj: usize, sign: f64, f: D, q: D, r: &[D]| {
            for s in 0..d {
                for t in 0..d {
                    let mut e = q * r[s] * r[t];
                    if s == t {
                        e += f;
                    }
                    m[(bi * d + s) * n + bj * d + t] += e * sign;
                }
            }
        };
        for i in 0..np {
            for j in i + 1..np {
                let r: Vec<D> = (0..d).map(|s| x[i * d + s] - x[j * d + s]).collect();
                let r2 = r.iter().fold(D::zero(), |acc, &c| acc + c * c);
                let (f, q, _, _) = gaussians(&a, &self.pair_scales, r2);
                for s in 0..d {
                    v[i * d + s] += f * r[s];
                    v[j * d + s] -= f * r[s];
                }
                add_block(&mut m, i, i, 1.0, f, q, &r);
                add_block(&mut m, j, j, 1.0, f, q, &r);
                add_block(&mut m, i, j, -1.0, f, q, &r);
                add_block(&mut m, j, i, -1.0, f, q, &r);
            }
            let xi = &x[i * d..(i + 1) * d];
            let r2 = xi.iter().fold(D::zero(), |acc, &c| acc + c * c);
            let (f, q, _, _) = gaussians(&b, &self.radial_scales, r2);
            for s in 0..d {
                v[i * d + s] += f * xi[s];
            }
            add_block(&mut m, i, i, 1.0, f, q, xi);
        }
        (v, m)
    }
}

impl Parametrised for PairBackflow {
    fn n_params(&self) -> usize {
        self.pair_scales.len() + self.radial_scales.len()
    }
    fn init_params(&self, _rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        match &self.init {
            Some(t) => theta.copy_from_slice(t),
            None => theta.fill(0.0),
        }
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        let kp = self.n_pair();
        vec![ParamGroup::new("pair", 0..kp), ParamGroup::new("one_body", kp..self.n_params())]
    }
}

impl Bijector<Dyn> for PairBackflow {
    type Cache<D: Scalar> = Vector<D, Dyn>;
    fn dim(&self) -> Dyn {
        Dyn(self.particles * self.dim)
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D, Self::Cache<D>) {
        let (z, ld) = residual_forward(self, theta, x);
        (z, ld, x.clone())
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
        residual_inverse(self, theta, y)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], x: &Self::Cache<D>, ybar: &Vector<D, Dyn>, ldbar: D, g: &mut [D]) -> Vector<D, Dyn> {
        let (np, d) = (self.particles, self.dim);
        let n = np * d;
        let kp = self.n_pair();
        let (a, b, dc) = self.coefs(theta);
        let (_, mut l) = self.field(theta, x.as_slice());
        let c = inverse_matrix(&mut l, n);
        let cb = |bi: usize, bj: usize, s: usize, t: usize| c[(bi * d + s) * n + bj * d + t];
        let mut xbar = ybar.clone();
        for i in 0..np {
            for j in i + 1..np {
                let r: Vec<D> = (0..d).map(|s| x[i * d + s] - x[j * d + s]).collect();
                let r2 = r.iter().fold(D::zero(), |acc, &v| acc + v * v);
                let (f, q, p, basis) = gaussians(&a, &self.pair_scales, r2);
                let du: Vec<D> = (0..d).map(|s| ybar[i * d + s] - ybar[j * d + s]).collect();
                let du_r = (0..d).fold(D::zero(), |acc, s| acc + du[s] * r[s]);
                // W = C_ii + C_jj - C_ij - C_ji.
                let w = |s: usize, t: usize| cb(i, i, s, t) + cb(j, j, s, t) - cb(i, j, s, t) - cb(j, i, s, t);
                let tr_w = (0..d).fold(D::zero(), |acc, s| acc + w(s, s));
                let wr: Vec<D> = (0..d).map(|s| (0..d).fold(D::zero(), |acc, t| acc + w(s, t) * r[t])).collect();
                let rwr = (0..d).fold(D::zero(), |acc, s| acc + r[s] * wr[s]);
                for (k, gk) in basis.iter().enumerate() {
                    let s2 = self.pair_scales[k] * self.pair_scales[k];
                    g[k] += (*gk * du_r + ldbar * (*gk * tr_w + *gk * rwr * (-2.0 / s2))) * dc[k];
                }
                for s in 0..d {
                    let m_du = du[s] * f + r[s] * q * du_r;
                    let grad = (r[s] * q * tr_w + r[s] * p * rwr + wr[s] * q * 2.0) * ldbar;
                    xbar[i * d + s] += m_du + grad;
                    xbar[j * d + s] -= m_du + grad;
                }
            }
            let xi: Vec<D> = (0..d).map(|s| x[i * d + s]).collect();
            let r2 = xi.iter().fold(D::zero(), |acc, &v| acc + v * v);
            let (f, q, p, basis) = gaussians(&b, &self.radial_scales, r2);
            let yb: Vec<D> = (0..d).map(|s| ybar[i * d + s]).collect();
            let yb_x = (0..d).fold(D::zero(), |acc, s| acc + yb[s] * xi[s]);
            let tr_c = (0..d).fold(D::zero(), |acc, s| acc + cb(i, i, s, s));
            let cx: Vec<D> = (0..d).map(|s| (0..d).fold(D::zero(), |acc, t| acc + cb(i, i, s, t) * xi[t])).collect();
            let xcx = (0..d).fold(D::zero(), |acc, s| acc + xi[s] * cx[s]);
            for (k, hk) in basis.iter().enumerate() {
                let t2 = self.radial_scales[k] * self.radial_scales[k];
                g[kp + k] += (*hk * yb_x + ldbar * (*hk * tr_c + *hk * xcx * (-2.0 / t2))) * dc[kp + k];
            }
            for s in 0..d {
                xbar[i * d + s] += yb[s] * f + xi[s] * q * yb_x + (xi[s] * q * tr_c + xi[s] * p * xcx + cx[s] * q * 2.0) * ldbar;
            }
        }
        xbar
    }
}

/// FermiFlow's backflow as a continuous flow $\dot x = u(x)$, $t \in [0, 1]$, with the field
/// $u = L\,v$ ($v$ the field of [`PairBackflow`], $L$ = `field_bound`, so $\|\partial u\| \le 0.9 L$)
/// integrated by `steps` = K explicit Euler steps $x \leftarrow x + u(x)/K$ with shared parameters.
/// Each step is a [`PairBackflow`] of strength $L/K \le 1$: exactly invertible (Newton, to machine
/// precision) with an exact log-determinant, so the discrete flow is an exact bijection and
/// $\psi$ stays exactly normalised; it approaches the continuous flow at first order in $1/K$
/// (its log-det approaches $\int_0^1 \nabla\cdot u\,dt$).
#[derive(Clone, Debug, PartialEq)]
pub struct ContinuousBackflow {
    pub step: PairBackflow,
    pub steps: usize,
}

impl ContinuousBackflow {
    /// `field_bound` L > 0 and `steps` K >= L (each Euler step must stay invertible).
    pub fn new(particles: usize, dim: usize, field_bound: f64, steps: usize) -> Result<Self, crate::error::ConfigError> {
        if !(field_bound.is_finite() && field_bound > 0.0) || (steps as f64) < field_bound {
            return Err(crate::error::ConfigError::Value { what: "continuous backflow", value: format!("field bound {field_bound}, {steps} steps"), allowed: "a field bound L > 0 and at least L Euler steps" });
        }
        let mut step = PairBackflow::new(particles, dim);
        step.strength = field_bound / steps as f64;
        Ok(ContinuousBackflow { step, steps })
    }
}

impl Parametrised for ContinuousBackflow {
    fn n_params(&self) -> usize {
        self.step.n_params()
    }
    fn init_params(&self, rng: &mut dyn rand::Rng, theta: &mut [f64]) {
        self.step.init_params(rng, theta)
    }
    fn param_groups(&self) -> Vec<ParamGroup> {
        self.step.param_groups()
    }
}

impl Bijector<Dyn> for ContinuousBackflow {
    /// The input of every Euler step.
    type Cache<D: Scalar> = Vec<Vector<D, Dyn>>;
    fn dim(&self) -> Dyn {
        self.step.dim()
    }
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D, Self::Cache<D>) {
        let (mut z, mut ld) = (x.clone(), D::zero());
        let mut cache = Vec::with_capacity(self.steps);
        for _ in 0..self.steps {
            let (next, l, c) = self.step.forward(theta, &z);
            cache.push(c);
            z = next;
            ld += l;
        }
        (z, ld, cache)
    }
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
        let (mut x, mut ld) = (y.clone(), D::zero());
        for _ in 0..self.steps {
            let (prev, l) = self.step.inverse(theta, &x);
            x = prev;
            ld += l;
        }
        (x, ld)
    }
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, Dyn>, ldbar: D, g: &mut [D]) -> Vector<D, Dyn> {
        let mut bar = ybar.clone();
        for c in cache.iter().rev() {
            bar = self.step.vjp(theta, c, &bar, ldbar, g);
        }
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradCheckConfig, check_bijector};

    fn theta() -> Vec<f64> {
        vec![0.9, -1.4, 0.6, 1.2, -0.7]
    }
    fn config(n: usize, scale: f64) -> Vector<f64, Dyn> {
        Vector::from_fn(Dyn(n), |k| ((k * 7 % 11) as f64 - 5.0) * scale)
    }

    #[test]
    fn gradients_round_trip_and_log_det() {
        let layer = PairBackflow::new(3, 2);
        let report = check_bijector(&layer, &theta(), &GradCheckConfig::default());
        assert!(report.passed(1e-6, 1e-11), "{report}");
        let x = config(6, 0.25);
        let (z, ld, _) = layer.forward(&theta(), &x);
        let (back, ild) = layer.inverse(&theta(), &z);
        let err = back.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-14, "round trip {err:e}");
        assert!((ld + ild).abs() < 1e-13);
        let moved = z.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 0.02, "the layer moves the particles: {moved}");
        let jac = nalgebra::DMatrix::from_fn(6, 6, |i, j| {
            let v = Vector::from_fn(Dyn(6), |k| num_dual::Dual64::new(x[k], if k == j { 1.0 } else { 0.0 }));
            layer.forward(&theta(), &v).0[i].eps
        });
        assert!((jac.determinant().ln() - ld).abs() < 1e-12, "{} vs {ld}", jac.determinant().ln());
        // The inverse carries exact derivatives: d x / d y is the inverse Jacobian.
        let ijac = nalgebra::DMatrix::from_fn(6, 6, |i, j| {
            let v = Vector::from_fn(Dyn(6), |k| num_dual::Dual64::new(z[k], if k == j { 1.0 } else { 0.0 }));
            layer.inverse(&theta(), &v).0[i].eps
        });
        let prod = &jac * &ijac;
        assert!((prod - nalgebra::DMatrix::<f64>::identity(6, 6)).amax() < 1e-12);
    }

    #[test]
    fn saturated_coefficients_stay_invertible() {
        // The largest coefficients the bounds allow, with particles close together and spread out.
        let layer = PairBackflow::new(5, 3);
        let big = [30.0, -30.0, 30.0, -30.0, 30.0];
        for scale in [0.02, 0.3, 1.5] {
            let x = config(15, scale);
            let (z, ld, _) = layer.forward(&big, &x);
            let (back, ild) = layer.inverse(&big, &z);
            let err = back.iter().zip(x.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(ld.is_finite() && err < 1e-13 && (ld + ild).abs() < 1e-12, "scale {scale}: {err:e}, {ld}");
        }
    }

    #[test]
    fn equivariant_under_permutations_and_rotations() {
        let layer = PairBackflow::new(4, 3);
        let x = config(12, 0.3);
        let (z, ld, _) = layer.forward(&theta(), &x);
        let perm = [2usize, 0, 3, 1];
        let px = Vector::from_fn(Dyn(12), |k| x[perm[k / 3] * 3 + k % 3]);
        let (pz, pld, _) = layer.forward(&theta(), &px);
        assert!((0..12).all(|k| (pz[k] - z[perm[k / 3] * 3 + k % 3]).abs() < 1e-12) && (pld - ld).abs() < 1e-12);
        // A rotation by 0.83 about the axis (1, 1, 1)/sqrt 3 (Rodrigues).
        let (s, c) = 0.83f64.sin_cos();
        let u = [1.0 / 3f64.sqrt(); 3];
        let rot = |v: &Vector<f64, Dyn>| {
            Vector::from_fn(Dyn(12), |k| {
                let (p, a) = (k / 3, k % 3);
                let w = [v[3 * p], v[3 * p + 1], v[3 * p + 2]];
                let dot = u[0] * w[0] + u[1] * w[1] + u[2] * w[2];
                let cross = [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]];
                w[a] * c + cross[a] * s + u[a] * dot * (1.0 - c)
            })
        };
        let (rz, rld, _) = layer.forward(&theta(), &rot(&x));
        let zr = rot(&z);
        assert!((0..12).all(|k| (rz[k] - zr[k]).abs() < 1e-12) && (rld - ld).abs() < 1e-12);
    }

    #[test]
    fn continuous_flow_is_exact_per_step_and_converges_in_the_step_count() {
        let flow = ContinuousBackflow::new(3, 2, 3.0, 6).unwrap();
        let report = check_bijector(&flow, &theta(), &GradCheckConfig::default());
        assert!(report.passed(1e-6, 1e-11), "{report}");
        let x = config(6, 0.25);
        let (z, ld, _) = flow.forward(&theta(), &x);
        let (back, ild) = flow.inverse(&theta(), &z);
        assert!(back.iter().zip(x.iter()).all(|(a, b)| (a - b).abs() < 1e-13) && (ld + ild).abs() < 1e-12);
        let jac = nalgebra::DMatrix::from_fn(6, 6, |i, j| {
            let v = Vector::from_fn(Dyn(6), |k| num_dual::Dual64::new(x[k], if k == j { 1.0 } else { 0.0 }));
            flow.forward(&theta(), &v).0[i].eps
        });
        assert!((jac.determinant().ln() - ld).abs() < 1e-12);
        // Euler is first order: halving the step halves the distance to the continuous flow.
        let at = |k: usize| ContinuousBackflow::new(3, 2, 3.0, k).unwrap().forward(&theta(), &x);
        let (z1, l1, _) = at(32);
        let (z2, l2, _) = at(64);
        let (z3, l3, _) = at(128);
        let d12 = (0..6).fold(0.0f64, |m, k| m.max((z1[k] - z2[k]).abs()));
        let d23 = (0..6).fold(0.0f64, |m, k| m.max((z2[k] - z3[k]).abs()));
        assert!(d12 > 1e-4 && (d12 / d23 - 2.0).abs() < 0.1, "{d12:e} / {d23:e}");
        assert!(((l1 - l2) / (l2 - l3) - 2.0).abs() < 0.1, "log-det differences {} {}", l1 - l2, l2 - l3);
        // Equivariant, as each of its steps.
        let perm = [2usize, 0, 1];
        let px = Vector::from_fn(Dyn(6), |k| x[perm[k / 2] * 2 + k % 2]);
        let (pz, pld, _) = flow.forward(&theta(), &px);
        assert!((0..6).all(|k| (pz[k] - z[perm[k / 2] * 2 + k % 2]).abs() < 1e-12) && (pld - ld).abs() < 1e-12);
        assert!(ContinuousBackflow::new(3, 2, 3.0, 2).is_err() && ContinuousBackflow::new(3, 2, f64::NAN, 8).is_err());
    }
}
