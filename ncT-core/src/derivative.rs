//! Coordinate derivatives of scalar-generic functions by forward mode, in blocks of directions.
//!
//! A dual number with $B$ directions computes $B$ components of a gradient in one pass. For a
//! dimension $D \le 16$ one pass with $B \ge D$ gives the whole gradient (as num-dual's
//! `DualSVec64<D>` would); for larger or runtime dimensions the $D$ directions are split into
//! $\lceil D/B \rceil$ blocks of $B = 16$, so the cost stays $O(D)$ function evaluations' worth of
//! work while every dual number is `Copy` and small: nothing of size $D^2$ is ever on the stack.
//! Hessians use hyper-dual numbers over pairs of blocks.
//!
//! The block width is a compile-time constant chosen at run time from
//! $\{1, 2, 3, 4, 6, 8, 12, 16\}$ by [`with_block_width!`](crate::with_block_width).

use crate::dim::{Size, Vector};
use crate::scalar::Scalar;
use nalgebra::{Const, DMatrix, U1};
use num_dual::{Derivative, DualSVec64, HyperDualVec};

/// The block width used for `n` directions: the smallest of {1, 2, 3, 4, 6, 8, 12, 16} that holds
/// all of them, else 16.
pub fn block_width(n: usize) -> usize {
    [1, 2, 3, 4, 6, 8, 12].into_iter().find(|&b| n <= b).unwrap_or(crate::dim::MAX_BLOCK)
}

/// Runs `$body` with the constant `$B` set to [`block_width`]`($n)`.
#[macro_export]
macro_rules! with_block_width {
    ($n:expr, $B:ident => $body:expr) => {{
        match $crate::derivative::block_width($n) {
            1 => {
                const $B: usize = 1;
                $body
            }
            2 => {
                const $B: usize = 2;
                $body
            }
            3 => {
                const $B: usize = 3;
                $body
            }
            4 => {
                const $B: usize = 4;
                $body
            }
            6 => {
                const $B: usize = 6;
                $body
            }
            8 => {
                const $B: usize = 8;
                $body
            }
            12 => {
                const $B: usize = 12;
                $body
            }
            _ => {
                const $B: usize = $crate::dim::MAX_BLOCK;
                $body
            }
        }
    }};
}

/// A real function of a coordinate vector, written once for every scalar type.
pub trait ScalarField<N: Size>: Sync {
    fn value<D: Scalar>(&self, x: &Vector<D, N>) -> D;
}

/// Seeds `x` as a dual vector whose directions are the coordinates `start..start + B`.
pub fn seed_block<const B: usize, N: Size>(x: &Vector<f64, N>, start: usize) -> Vector<DualSVec64<B>, N> {
    Vector::from_fn(x.size(), |i| {
        let d = DualSVec64::<B>::from_re(x[i]);
        if i >= start && i < start + B { d.derivative(i - start) } else { d }
    })
}

/// Value and gradient of `f` at `x` by forward mode in blocks.
pub fn gradient<N: Size, F: ScalarField<N> + ?Sized>(f: &F, x: &Vector<f64, N>) -> (f64, Vector<f64, N>) {
    let n = x.len();
    let mut g = Vector::zeros(x.size());
    // Every block pass carries the value; only an empty vector needs a plain evaluation.
    let mut value = if n == 0 { f.value(x) } else { 0.0 };
    with_block_width!(n, B => {
        for start in (0..n).step_by(B) {
            let v = f.value(&seed_block::<B, N>(x, start));
            value = v.re;
            let eps = v.eps.unwrap_generic(Const::<B>, U1);
            for k in 0..B.min(n - start) {
                g[start + k] = eps[k];
            }
        }
    });
    (value, g)
}

/// Value, gradient and Hessian ($D \times D$, on the heap) of `f` at `x`, by hyper-dual numbers
/// over pairs of blocks of directions.
pub fn hessian<N: Size, F: ScalarField<N> + ?Sized>(f: &F, x: &Vector<f64, N>) -> (f64, Vector<f64, N>, DMatrix<f64>) {
    let n = x.len();
    let (value, g) = gradient(f, x);
    let mut h = DMatrix::zeros(n, n);
    with_block_width!(n, B => {
        for a in (0..n).step_by(B) {
            for b in (a..n).step_by(B) {
                let xd = Vector::from_fn(x.size(), |i| {
                    let mut d = HyperDualVec::<f64, Const<B>, Const<B>>::from_re(x[i]);
                    if i >= a && i < a + B {
                        d.eps1 = Derivative::derivative_generic(Const::<B>, U1, i - a);
                    }
                    if i >= b && i < b + B {
                        d.eps2 = Derivative::derivative_generic(U1, Const::<B>, i - b);
                    }
                    d
                });
                let v = f.value(&xd);
                let m = v.eps1eps2.unwrap_generic(Const::<B>, Const::<B>);
                for r in 0..B.min(n - a) {
                    for c in 0..B.min(n - b) {
                        h[(a + r, b + c)] = m[(r, c)];
                        h[(b + c, a + r)] = m[(r, c)];
                    }
                }
            }
        }
    });
    (value, g, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dim::{Const, Dyn};

    /// $f(x) = \sum_i \sin(x_i) x_{i+1} + \frac{1}{2}(\sum_i x_i)^2$.
    struct Test;
    impl<N: Size> ScalarField<N> for Test {
        fn value<D: Scalar>(&self, x: &Vector<D, N>) -> D {
            let mut s = D::zero();
            for i in 0..x.len() - 1 {
                s += x[i].sin() * x[i + 1];
            }
            let t: D = x.iter().fold(D::zero(), |a, &b| a + b);
            s + t * t * 0.5
        }
    }

    fn exact(x: &[f64]) -> (Vec<f64>, DMatrix<f64>) {
        let n = x.len();
        let t: f64 = x.iter().sum();
        let mut g = vec![t; n];
        let mut h = DMatrix::from_element(n, n, 1.0);
        for i in 0..n - 1 {
            g[i] += x[i].cos() * x[i + 1];
            g[i + 1] += x[i].sin();
            h[(i, i)] += -x[i].sin() * x[i + 1];
            h[(i, i + 1)] += x[i].cos();
            h[(i + 1, i)] += x[i].cos();
        }
        (g, h)
    }

    #[test]
    fn blocked_gradient_and_hessian_are_exact_for_any_dimension() {
        for n in [2usize, 3, 5, 12, 16, 17, 40] {
            let x = Vector::from_fn(Dyn(n), |i| 0.3 + 0.17 * i as f64);
            let (g_ex, h_ex) = exact(&x);
            let (_, g, h) = hessian(&Test, &x);
            for i in 0..n {
                assert!((g[i] - g_ex[i]).abs() < 1e-12, "n = {n}");
            }
            assert!((h - h_ex).abs().max() < 1e-12, "n = {n}");
        }
        let xs = Vector::<f64, Const<5>>::from_fn(Const, |i| 0.3 + 0.17 * i as f64);
        let xd: Vector<f64, Dyn> = xs.resize().unwrap();
        let (_, gs, hs) = hessian(&Test, &xs);
        let (_, gd, hd) = hessian(&Test, &xd);
        assert_eq!(gs.as_slice(), gd.as_slice());
        assert_eq!(hs, hd);
    }
}
