//! The scalar abstraction: every Hamiltonian and layer is written once, generic over [`Scalar`].
//!
//! `f64` gives values, [`Dual64`](num_dual::Dual64) first derivatives, `Dual2_64`/`HyperDual64`
//! second derivatives, `DualSVec64<N>` gradients, and nested duals (`Dual<Dual64>`) the mixed
//! forward-over-reverse terms that the VJPs need.

use nalgebra::SVector;
use num_dual::{Dual, DualNum};

/// Any num-dual number over `f64` that can cross threads.
pub trait Scalar: DualNum<Primitive = f64> + Copy + Send + Sync {}
impl<T: DualNum<Primitive = f64> + Copy + Send + Sync> Scalar for T {}

/// Real (f64) part of any scalar.
#[inline]
pub fn re<D: Scalar>(x: D) -> f64 {
    x.re()
}

/// Lift an `f64` constant into the scalar type.
#[inline]
pub fn lift<D: Scalar>(x: f64) -> D {
    D::from(x)
}

/// Lift a static vector of f64 into the scalar type.
pub fn lift_vec<D: Scalar, const N: usize>(x: &SVector<f64, N>) -> SVector<D, N> {
    x.map(D::from)
}

/// Real parts of a static vector.
pub fn re_vec<D: Scalar, const N: usize>(x: &SVector<D, N>) -> SVector<f64, N> {
    x.map(|v| v.re())
}

/// `x + eps * v` as a dual number over `D`: used for forward-over-reverse (Hessian-vector) terms.
pub fn seed_direction<D: Scalar>(x: &[D], v: &[D]) -> Vec<Dual<D>> {
    x.iter().zip(v).map(|(&a, &b)| Dual::new(a, b)).collect()
}

/// Derivative (eps) parts of a slice of duals.
pub fn eps_parts<D: Scalar>(x: &[Dual<D>]) -> Vec<D> {
    x.iter().map(|d| d.eps).collect()
}

/// Real parts of a slice of duals.
pub fn re_parts<D: Scalar>(x: &[Dual<D>]) -> Vec<D> {
    x.iter().map(|d| d.re).collect()
}
