//! The scalar abstraction: every Hamiltonian and layer is written once, generic over [`Scalar`].
//!
//! `f64` gives values, [`Dual64`](num_dual::Dual64) first derivatives, `Dual2_64`/`HyperDual64`
//! second derivatives, `DualSVec64<N>` gradients, and nested duals (`Dual<Dual64>`) the mixed
//! forward-over-reverse terms that the VJPs need.

use num_dual::DualNum;

/// Any num-dual number over `f64` that can cross threads (`'static`, so that a kernel may take a
/// faster path for plain `f64`, as the DeepPot-SE products do).
pub trait Scalar: DualNum<Primitive = f64> + Copy + Send + Sync + 'static {}
impl<T: DualNum<Primitive = f64> + Copy + Send + Sync + 'static> Scalar for T {}
