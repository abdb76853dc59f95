//! Hamiltonians on phase space, written once generic over the scalar; derivatives come from
//! num-dual by lifting the arguments to dual numbers (in blocks of directions, see
//! [`crate::derivative`]), for compile-time and runtime dimensions alike.

use crate::derivative::{ScalarField, gradient, hessian};
use crate::dim::{Dyn, Size, Vector};
use crate::scalar::Scalar;
use nalgebra::DMatrix;

/// $H(q, p)$ with $N$ degrees of freedom.
pub trait Hamiltonian<N: Size>: Send + Sync {
    /// Number of degrees of freedom.
    fn dim(&self) -> N;

    /// The energy, for any scalar type.
    fn energy<D: Scalar>(&self, q: &Vector<D, N>, p: &Vector<D, N>) -> D;

    /// $(\partial H/\partial q, \partial H/\partial p)$ by forward mode.
    fn gradient(&self, q: &Vector<f64, N>, p: &Vector<f64, N>) -> (Vector<f64, N>, Vector<f64, N>) {
        let (_, dq) = gradient(&AtMomentum { h: self, p }, q);
        let (_, dp) = gradient(&AtPosition { h: self, q }, p);
        (dq, dp)
    }

    /// Forces $-\partial H/\partial q$.
    fn forces(&self, q: &Vector<f64, N>, p: &Vector<f64, N>) -> Vector<f64, N> {
        -self.gradient(q, p).0
    }

    /// Hamilton's equations $(\dot q, \dot p) = (\partial H/\partial p, -\partial H/\partial q)$.
    fn equations_of_motion(&self, q: &Vector<f64, N>, p: &Vector<f64, N>) -> (Vector<f64, N>, Vector<f64, N>) {
        let (dq, dp) = self.gradient(q, p);
        (dp, -dq)
    }

    /// The $2N \times 2N$ Hessian in the order $(q, p)$.
    fn hessian(&self, q: &Vector<f64, N>, p: &Vector<f64, N>) -> DMatrix<f64> {
        let z = Vector::from_fn(Dyn(2 * q.len()), |i| if i < q.len() { q[i] } else { p[i - q.len()] });
        hessian(&PhaseSpace { h: self, n: q.size() }, &z).2
    }
}

struct AtMomentum<'a, H: ?Sized, N: Size> {
    h: &'a H,
    p: &'a Vector<f64, N>,
}
impl<H: Hamiltonian<N> + ?Sized, N: Size> ScalarField<N> for AtMomentum<'_, H, N> {
    fn value<D: Scalar>(&self, q: &Vector<D, N>) -> D {
        self.h.energy(q, &self.p.map(D::from))
    }
}
struct AtPosition<'a, H: ?Sized, N: Size> {
    h: &'a H,
    q: &'a Vector<f64, N>,
}
impl<H: Hamiltonian<N> + ?Sized, N: Size> ScalarField<N> for AtPosition<'_, H, N> {
    fn value<D: Scalar>(&self, p: &Vector<D, N>) -> D {
        self.h.energy(&self.q.map(D::from), p)
    }
}
struct PhaseSpace<'a, H: ?Sized, N: Size> {
    h: &'a H,
    n: N,
}
impl<H: Hamiltonian<N> + ?Sized, N: Size> ScalarField<Dyn> for PhaseSpace<'_, H, N> {
    fn value<D: Scalar>(&self, z: &Vector<D, Dyn>) -> D {
        let d = self.n.value();
        self.h.energy(&Vector::from_fn(self.n, |i| z[i]), &Vector::from_fn(self.n, |i| z[d + i]))
    }
}

/// A separable Hamiltonian $H = K(p) + V(q)$. Data training needs only configurations for these,
/// since the momenta are Maxwell-Boltzmann distributed with the masses given here.
pub trait Separable<N: Size>: Send + Sync {
    /// Number of degrees of freedom.
    fn dim(&self) -> N;
    /// Potential energy $V(q)$.
    fn potential<D: Scalar>(&self, q: &Vector<D, N>) -> D;
    /// Mass of every coordinate (default 1).
    fn masses(&self) -> Vector<f64, N> {
        Vector::from_element(self.dim(), 1.0)
    }
    /// Kinetic energy, default $\sum_i p_i^2 / 2 m_i$.
    fn kinetic<D: Scalar>(&self, p: &Vector<D, N>) -> D {
        let m = self.masses();
        let mut k = D::zero();
        for i in 0..p.len() {
            k += p[i] * p[i] / (2.0 * m[i]);
        }
        k
    }
    /// $\nabla V(q)$ by forward mode.
    fn potential_gradient(&self, q: &Vector<f64, N>) -> (f64, Vector<f64, N>) {
        gradient(&Potential(self), q)
    }
    /// $V$, $\nabla V$ and the Hessian $\nabla\nabla V$ (on the heap) by forward mode.
    fn potential_hessian(&self, q: &Vector<f64, N>) -> (f64, Vector<f64, N>, DMatrix<f64>) {
        hessian(&Potential(self), q)
    }
}

/// The potential of a separable Hamiltonian as a [`ScalarField`].
pub struct Potential<'a, S: ?Sized>(pub &'a S);
impl<S: Separable<N> + ?Sized, N: Size> ScalarField<N> for Potential<'_, S> {
    fn value<D: Scalar>(&self, q: &Vector<D, N>) -> D {
        self.0.potential(q)
    }
}

impl<N: Size, S: Separable<N>> Hamiltonian<N> for S {
    fn dim(&self) -> N {
        Separable::dim(self)
    }
    fn energy<D: Scalar>(&self, q: &Vector<D, N>, p: &Vector<D, N>) -> D {
        self.kinetic(p) + self.potential(q)
    }
}
