//! Residual maps $z = x + v(x)$ whose field is a gradient, $v = \nabla W$, with
//! $\|\partial v/\partial x\| < 1$: the Jacobian $A = I + \nabla^2 W$ is symmetric positive
//! definite, the map is the gradient of the strongly convex $\tfrac12|x|^2 + W$ and hence a
//! bijection. Shared by [`super::PairBackflow`] and [`crate::periodic::PeriodicBackflow`]:
//! $\ln\det A = 2\sum_k\ln L_{kk}$ from the Cholesky factor, $A^{-1}$ for the VJP, and the inverse
//! map (contraction, Newton to machine precision in f64, then two Newton steps in the scalar type
//! so that dual numbers carry exact derivatives through the root).

use crate::scalar::Scalar;

/// A gradient field $v(x)$ with $\|\partial v/\partial x\| < 1$ for every parameter value.
pub(crate) trait GradientField {
    /// The field $v(x)$ and $A = I + \partial v/\partial x$ (row-major, $n$ = `x.len()`).
    fn field<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, Vec<D>);
}

/// In-place Cholesky factor (lower, row-major) of the symmetric `n x n` matrix `a`; `false` if it
/// is not positive definite.
pub(crate) fn cholesky<D: Scalar>(a: &mut [D], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d.re() > 0.0) {
            return false;
        }
        let l = d.sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / l;
        }
    }
    true
}

/// Solves $L L^T x = b$ with the factor of [`cholesky`].
pub(crate) fn cholesky_solve<D: Scalar>(l: &[D], n: usize, b: &mut [D]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// $\ln\det A$ from the Cholesky factor, overwriting `a` (NaN if $A$ is not positive definite,
/// which the field's bound excludes).
pub(crate) fn log_det<D: Scalar>(a: &mut [D], n: usize) -> D {
    if !cholesky(a, n) {
        return D::from(f64::NAN);
    }
    (0..n).fold(D::zero(), |acc, k| acc + a[k * n + k].ln() * 2.0)
}

/// $A^{-1}$ (symmetric, row-major), column by column from the Cholesky factor; zero if $A$ is not
/// positive definite. Overwrites `a`.
pub(crate) fn inverse_matrix<D: Scalar>(a: &mut [D], n: usize) -> Vec<D> {
    let mut c = vec![D::zero(); n * n];
    if cholesky(a, n) {
        for col in 0..n {
            let mut e = vec![D::zero(); n];
            e[col] = D::one();
            cholesky_solve(a, n, &mut e);
            for row in 0..n {
                c[row * n + col] = e[row];
            }
        }
    }
    c
}

/// The root $x$ of $x + v(x) = y$ and $-\ln\det A(x)$ (the inverse map's log-determinant).
pub(crate) fn invert<F: GradientField, D: Scalar>(map: &F, theta: &[f64], y: &[D]) -> (Vec<D>, D) {
    let n = y.len();
    let yr: Vec<f64> = y.iter().map(|c| c.re()).collect();
    let scale = 1.0 + yr.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    // Contraction (rate <= 0.9), then Newton to machine precision.
    let mut x = yr.clone();
    for _ in 0..6 {
        let (v, _) = map.field::<f64>(theta, &x);
        x = (0..n).map(|k| yr[k] - v[k]).collect();
    }
    for _ in 0..50 {
        let (v, mut a) = map.field::<f64>(theta, &x);
        let mut res: Vec<f64> = (0..n).map(|k| x[k] + v[k] - yr[k]).collect();
        if res.iter().fold(0.0f64, |m, c| m.max(c.abs())) <= 1e-15 * scale || !cholesky(&mut a, n) {
            break;
        }
        cholesky_solve(&a, n, &mut res);
        x.iter_mut().zip(&res).for_each(|(xi, r)| *xi -= r);
    }
    // Two Newton steps in D carry the derivatives of the root exactly.
    let mut xd: Vec<D> = x.iter().map(|&c| D::from(c)).collect();
    for _ in 0..2 {
        let (v, mut a) = map.field(theta, &xd);
        let mut res: Vec<D> = (0..n).map(|k| xd[k] + v[k] - y[k]).collect();
        if !cholesky(&mut a, n) {
            break;
        }
        cholesky_solve(&a, n, &mut res);
        xd.iter_mut().zip(&res).for_each(|(xi, r)| *xi -= *r);
    }
    let (_, mut a) = map.field(theta, &xd);
    let ld = log_det(&mut a, n);
    (xd, -ld)
}
