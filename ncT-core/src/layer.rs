//! The layer traits.
//!
//! * [`Layer`]: a parametrised map $\mathbb R^I \to \mathbb R^O$ (dense nets, potentials).
//! * [`Bijector`]: an invertible map of configuration space $\mathbb R^N$ with its
//!   $\ln|\det \partial y/\partial x|$ (RealNVP couplings; the quantum point transformation).
//! * [`SymplecticLayer`]: a canonical transformation of phase space $(q, p) \in \mathbb R^{2N}$;
//!   its Jacobian $M$ satisfies $M^T \Omega M = \Omega$, so $\ln|\det M| = 0$ and is never computed.
//! * [`CotangentLift`]: a bijector that also maps momenta as covectors,
//!   $P = (\partial f/\partial q)^{-T} p$, which turns it into a symplectic
//!   [`PointTransform`](crate::point::PointTransform).
//!
//! Every method is generic over the [`Scalar`]: running `vjp` with `D = Dual64` and the input's
//! tangent set to a direction $v$ gives, in the eps parts, the mixed terms
//! $\partial_\theta (v \cdot \nabla_x L)$ and $\nabla_x (v \cdot \nabla_x L)$
//! (forward-over-reverse). Parameters are a flat `&[f64]` slice owned by the caller; gradients are
//! *accumulated* into `g` (length `n_params`). Generic methods make these traits not object safe:
//! stacks are composed statically ([`Chain`](crate::chain::Chain), [`Stack`](crate::chain::Stack),
//! macro-generated structs).

use crate::params::Parametrised;
use crate::scalar::Scalar;
use crate::dim::{Size, Vector};

/// A point of phase space, $(q, p)$, each of dimension $N$.
#[derive(Clone, Debug, PartialEq)]
pub struct PhasePoint<D: Scalar, N: Size> {
    pub q: Vector<D, N>,
    pub p: Vector<D, N>,
}

impl<D: Scalar, const K: usize> Copy for PhasePoint<D, crate::dim::Const<K>> {}

impl<D: Scalar, N: Size> PhasePoint<D, N> {
    pub fn new(q: Vector<D, N>, p: Vector<D, N>) -> Self {
        Self { q, p }
    }
    pub fn zeros(n: N) -> Self {
        Self { q: Vector::from_element(n, D::zero()), p: Vector::from_element(n, D::zero()) }
    }
    /// Number of degrees of freedom.
    pub fn dim(&self) -> N {
        self.q.size()
    }
    /// Concatenate as $(q_1..q_N, p_1..p_N)$.
    pub fn to_vec(&self) -> Vec<D> {
        self.q.iter().chain(self.p.iter()).copied().collect()
    }
    /// Inverse of [`PhasePoint::to_vec`]; `v.len()` must be `2N`.
    pub fn from_slice(n: N, v: &[D]) -> Self {
        let d = n.value();
        assert_eq!(v.len(), 2 * d, "phase-space vector must have length 2N");
        Self { q: Vector::from_fn(n, |i| v[i]), p: Vector::from_fn(n, |i| v[d + i]) }
    }
    pub fn map<E: Scalar>(&self, f: impl Fn(D) -> E) -> PhasePoint<E, N> {
        PhasePoint { q: self.q.map(&f), p: self.p.map(&f) }
    }
}

/// A parametrised map $\mathbb R^I \to \mathbb R^O$ with a hand-written VJP.
pub trait Layer<I: Size, O: Size>: Parametrised {
    /// Input dimension.
    fn input_dim(&self) -> I;
    /// Output dimension.
    fn output_dim(&self) -> O;
    /// What the VJP needs from the forward pass.
    type Cache<D: Scalar>: Send;
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, I>) -> (Vector<D, O>, Self::Cache<D>);
    /// Accumulates $\bar y \cdot \partial y/\partial\theta$ into `g`; returns $\bar x$.
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, O>, g: &mut [D]) -> Vector<D, I>;
}

/// An invertible map of $\mathbb R^N$ with log-Jacobian determinant.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a bijector of configuration space with dimension `{N}`",
    note = "the dimension of a `Unitary<n>` flow must equal the dimension of the model it is bound to"
)]
pub trait Bijector<N: Size>: Parametrised {
    /// Dimension of configuration space.
    fn dim(&self) -> N;
    type Cache<D: Scalar>: Send;
    /// $y = f(x)$ and $\ln|\det \partial y / \partial x|$.
    fn forward<D: Scalar>(&self, theta: &[f64], x: &Vector<D, N>) -> (Vector<D, N>, D, Self::Cache<D>);
    /// $x = f^{-1}(y)$ and $\ln|\det \partial x / \partial y|$ (= minus the forward log-det at x).
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &Vector<D, N>) -> (Vector<D, N>, D);
    /// Accumulates $\partial_\theta(\bar y \cdot y + \bar\ell \ln|\det|)$ into `g`; returns
    /// $\bar x = \nabla_x(\bar y \cdot y + \bar\ell \ln|\det|)$.
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &Vector<D, N>, ldbar: D, g: &mut [D]) -> Vector<D, N>;
    /// Batched forward-Laplacian kernel: the jets of $y = f(x)$ (one row per coordinate) and of
    /// $\ln|\det \partial y/\partial x|$ (one row) for a chunk of walkers, with dense work as
    /// GEMMs. `None` (the default) when the layer has no batched kernel: callers then use the
    /// per-walker jet, which must give the same numbers to rounding.
    fn forward_jets(&self, _theta: &[f64], _x: &crate::jet_batch::JetBatch) -> Option<(crate::jet_batch::JetBatch, crate::jet_batch::JetBatch)> {
        None
    }
    /// Batched f64 forward pass for parameter gradients: $y$ for the columns of `x` (`D x B`),
    /// $\ln|\det|$ per column and the tape [`Bijector::vjp_tape`] reads. `None` (the default)
    /// when the layer has no batched kernel: callers then use [`Bijector::vjp`] per sample.
    fn forward_tape(&self, _theta: &[f64], _x: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>, BatchTape)> {
        None
    }
    /// Batched inverse $x = f^{-1}(y)$ for the columns of `y` (`D x B`) and $\ln|\det \partial x/\partial y|$
    /// per column, dense work as GEMMs. `None` (the default) when the layer has no batched kernel.
    fn inverse_batch(&self, _theta: &[f64], _y: &nalgebra::DMatrix<f64>) -> Option<(nalgebra::DMatrix<f64>, Vec<f64>)> {
        None
    }
    /// Batched reverse pass of [`Bijector::forward_tape`]: accumulates
    /// $\partial_\theta \sum_j(\bar y_j\cdot y_j + \bar\ell_j \ln|\det|_j)$ into `g` and returns $\bar X$.
    ///
    /// # Panics
    /// If the layer has no batched kernel (its `forward_tape` returns `None`): calling this
    /// without a tape from `forward_tape` is a programming error.
    fn vjp_tape(&self, _theta: &[f64], _tape: &BatchTape, _ybar: &nalgebra::DMatrix<f64>, _ldbar: &[f64], _g: &mut [f64]) -> nalgebra::DMatrix<f64> {
        unreachable!("vjp_tape called on a layer without a batched kernel (forward_tape returned None)")
    }
}

/// What a layer's batched forward pass keeps for its reverse pass ([`Bijector::forward_tape`]);
/// each layer stores and reads its own type.
pub struct BatchTape(Box<dyn std::any::Any + Send>);

impl BatchTape {
    pub fn new<T: std::any::Any + Send>(t: T) -> Self {
        Self(Box::new(t))
    }
    /// The stored value.
    ///
    /// # Panics
    /// If the tape holds another type (a tape handed to a layer other than the one that wrote it).
    pub fn get<T: std::any::Any>(&self) -> &T {
        self.0.downcast_ref::<T>().expect("a batch tape is read by the layer that wrote it")
    }
}

/// A bijector whose cotangent lift $Q = f(q)$, $P = (\partial f / \partial q)^{-T} p$ is computed
/// analytically, layer by layer.
pub trait CotangentLift<N: Size>: Bijector<N> {
    type LiftCache<D: Scalar>: Send;
    fn lift_forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::LiftCache<D>);
    /// $q = f^{-1}(Q)$, $p = (\partial f/\partial q)^T P$.
    fn lift_inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N>;
    /// Reverse pass of the lift: accumulates $\partial_\theta(\bar Q\cdot Q + \bar P \cdot P)$ into
    /// `g` and returns $(\bar q, \bar p)$. $P$ depends on $\theta$ and $q$ through the Jacobian, so
    /// this needs one forward-over-reverse (Hessian-vector) term per layer.
    fn lift_vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::LiftCache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N>;
}

/// A canonical transformation of phase space $\mathbb R^{2N}$ (log-det identically zero).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a symplectic layer on {N} degrees of freedom",
    label = "expected a symplectic map of phase space with N = `{N}`",
    note = "a flow and the Hamiltonian or latent distribution it is bound to must have the same number of degrees of freedom; compare the `Symplectic<n>` of the flow with the `N` of the other side"
)]
pub trait SymplecticLayer<N: Size>: Parametrised {
    /// Number of degrees of freedom.
    fn dim(&self) -> N;
    type Cache<D: Scalar>: Send;
    fn forward<D: Scalar>(&self, theta: &[f64], x: &PhasePoint<D, N>) -> (PhasePoint<D, N>, Self::Cache<D>);
    fn inverse<D: Scalar>(&self, theta: &[f64], y: &PhasePoint<D, N>) -> PhasePoint<D, N>;
    /// Accumulates $\partial_\theta(\bar y \cdot y)$ into `g`; returns $\bar x$.
    fn vjp<D: Scalar>(&self, theta: &[f64], cache: &Self::Cache<D>, ybar: &PhasePoint<D, N>, g: &mut [D]) -> PhasePoint<D, N>;
}
