//! Residual maps $z = x + v(x)$ with $\|\partial v/\partial x\| < 1$ for every parameter value:
//! $v$ is a contraction, so the map is a bijection and $\det A > 0$, $A = I + \partial v/\partial x$.
//! Where the field is a gradient, $v = \nabla W$ ([`super::PairBackflow`],
//! [`crate::periodic::PeriodicBackflow`]), $A = I + \nabla^2 W$ is symmetric positive definite and
//! $\ln\det A = 2\sum_k\ln L_{kk}$ comes from the Cholesky factor; otherwise
//! ([`crate::periodic::FermiNetBackflow`]) from an LU factorisation with partial pivoting. Also
//! $A^{-1}$ for the VJPs, and the inverse map (contraction, Newton to machine precision in f64,
//! then two Newton steps in the scalar type so that dual numbers carry exact derivatives through
//! the root).

use crate::dim::{Dyn, Vector};
use crate::scalar::Scalar;

/// A field $v(x)$ with $\|\partial v/\partial x\| < 1$ for every parameter value.
pub(crate) trait ResidualField {
    /// Whether $A$ is symmetric (a gradient field: Cholesky) or general (LU).
    const SYMMETRIC: bool = true;
    /// The field $v(x)$ and $A = I + \partial v/\partial x$ (row-major, $n$ = `x.len()`).
    fn field<D: Scalar>(&self, theta: &[f64], x: &[D]) -> (Vec<D>, Vec<D>);
    /// The field $v(x)$ alone (the fixed-point steps of [`invert`] need no Jacobian); by default
    /// the first part of [`ResidualField::field`].
    fn value(&self, theta: &[f64], x: &[f64]) -> Vec<f64> {
        self.field::<f64>(theta, x).0
    }
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

/// In-place LU factorisation with partial pivoting (on the real parts) of the `n x n` matrix `a`
/// (row-major; unit lower and upper factors overwrite it); the row order, or `None` if singular.
pub(crate) fn lu<D: Scalar>(a: &mut [D], n: usize) -> Option<Vec<usize>> {
    let mut perm: Vec<usize> = (0..n).collect();
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i * n + k].re().abs().total_cmp(&a[j * n + k].re().abs()))?;
        if !(a[p * n + k].re().abs() > 0.0) {
            return None;
        }
        if p != k {
            for c in 0..n {
                a.swap(k * n + c, p * n + c);
            }
            perm.swap(k, p);
        }
        let piv = a[k * n + k];
        for i in k + 1..n {
            let f = a[i * n + k] / piv;
            a[i * n + k] = f;
            for c in k + 1..n {
                let u = a[k * n + c];
                a[i * n + c] -= f * u;
            }
        }
    }
    Some(perm)
}

/// Solves $A x = b$ with the factors of [`lu`].
pub(crate) fn lu_solve<D: Scalar>(a: &[D], perm: &[usize], n: usize, b: &mut [D]) {
    let mut y: Vec<D> = perm.iter().map(|&p| b[p]).collect();
    for i in 0..n {
        for k in 0..i {
            let l = a[i * n + k];
            y[i] = y[i] - l * y[k];
        }
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            let u = a[i * n + k];
            y[i] = y[i] - u * y[k];
        }
        y[i] = y[i] / a[i * n + i];
    }
    b.copy_from_slice(&y);
}

/// $\ln|\det A|$ of a general matrix by [`lu`], overwriting `a` (NaN if singular).
pub(crate) fn general_log_det<D: Scalar>(a: &mut [D], n: usize) -> D {
    if lu(a, n).is_none() {
        return D::from(f64::NAN);
    }
    (0..n).fold(D::zero(), |acc, k| {
        let u = a[k * n + k];
        acc + if u.re() < 0.0 { -u } else { u }.ln()
    })
}

/// $A^{-1}$ (row-major) of a general matrix by [`lu`]; zero if singular. Overwrites `a`.
pub(crate) fn general_inverse<D: Scalar>(a: &mut [D], n: usize) -> Vec<D> {
    let mut c = vec![D::zero(); n * n];
    if let Some(perm) = lu(a, n) {
        for col in 0..n {
            let mut e = vec![D::zero(); n];
            e[col] = D::one();
            lu_solve(a, &perm, n, &mut e);
            for row in 0..n {
                c[row * n + col] = e[row];
            }
        }
    }
    c
}

/// Factors `a` (Cholesky if `symmetric`, else LU) and overwrites `b` with $A^{-1}b$; `false` if
/// the factorisation fails.
fn factor_solve<D: Scalar>(a: &mut [D], n: usize, b: &mut [D], symmetric: bool) -> bool {
    if symmetric {
        if !cholesky(a, n) {
            return false;
        }
        cholesky_solve(a, n, b);
        return true;
    }
    match lu(a, n) {
        Some(perm) => {
            lu_solve(a, &perm, n, b);
            true
        }
        None => false,
    }
}

/// The root $x$ of $x + v(x) = y$ and $-\ln\det A(x)$ (the inverse map's log-determinant).
pub(crate) fn invert<F: ResidualField, D: Scalar>(map: &F, theta: &[f64], y: &[D]) -> (Vec<D>, D) {
    let n = y.len();
    let yr: Vec<f64> = y.iter().map(|c| c.re()).collect();
    let scale = 1.0 + yr.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    // Contraction (rate <= 0.9), then Newton to machine precision.
    let mut x = yr.clone();
    for _ in 0..6 {
        let v = map.value(theta, &x);
        x = (0..n).map(|k| yr[k] - v[k]).collect();
    }
    for _ in 0..50 {
        let (v, mut a) = map.field::<f64>(theta, &x);
        let mut res: Vec<f64> = (0..n).map(|k| x[k] + v[k] - yr[k]).collect();
        if res.iter().fold(0.0f64, |m, c| m.max(c.abs())) <= 1e-15 * scale || !factor_solve(&mut a, n, &mut res, F::SYMMETRIC) {
            break;
        }
        x.iter_mut().zip(&res).for_each(|(xi, r)| *xi -= r);
    }
    // Two Newton steps in D carry the derivatives of the root exactly.
    let mut xd: Vec<D> = x.iter().map(|&c| D::from(c)).collect();
    for _ in 0..2 {
        let (v, mut a) = map.field(theta, &xd);
        let mut res: Vec<D> = (0..n).map(|k| xd[k] + v[k] - y[k]).collect();
        if !factor_solve(&mut a, n, &mut res, F::SYMMETRIC) {
            break;
        }
        xd.iter_mut().zip(&res).for_each(|(xi, r)| *xi -= *r);
    }
    let (_, mut a) = map.field(theta, &xd);
    let ld = if F::SYMMETRIC { log_det(&mut a, n) } else { general_log_det(&mut a, n) };
    (xd, -ld)
}

/// `Bijector::forward` of a residual map: $z = x + v(x)$ and $\ln\det A$.
pub(crate) fn residual_forward<F: ResidualField, D: Scalar>(map: &F, theta: &[f64], x: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
    let n = x.len();
    let (v, mut a) = map.field(theta, x.as_slice());
    let z = Vector::from_fn(Dyn(n), |k| x[k] + v[k]);
    let ld = if F::SYMMETRIC { log_det(&mut a, n) } else { general_log_det(&mut a, n) };
    (z, ld)
}

/// `Bijector::inverse` of a residual map (see [`invert`]).
pub(crate) fn residual_inverse<F: ResidualField, D: Scalar>(map: &F, theta: &[f64], y: &Vector<D, Dyn>) -> (Vector<D, Dyn>, D) {
    let (x, ld) = invert(map, theta, y.as_slice());
    (Vector::from(x), ld)
}
