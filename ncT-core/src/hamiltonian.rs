//! Hamiltonians on phase space, written once generic over the scalar; derivatives come from
//! num-dual by lifting the arguments to dual numbers.

use crate::scalar::Scalar;
use nalgebra::{DMatrix, SVector};
use num_dual::{Dual2SVec64, DualSVec64, HyperDualSVec64, gradient, hessian, partial_hessian};

/// $H(q, p)$ with $N$ degrees of freedom.
pub trait Hamiltonian<const N: usize>: Send + Sync {
    /// The energy, for any scalar type.
    fn energy<D: Scalar>(&self, q: &SVector<D, N>, p: &SVector<D, N>) -> D;

    /// $(\partial H/\partial q, \partial H/\partial p)$ by forward mode.
    fn gradient(&self, q: &SVector<f64, N>, p: &SVector<f64, N>) -> (SVector<f64, N>, SVector<f64, N>) {
        let pl = p.map(DualSVec64::<N>::from);
        let (_, dq) = gradient(|qd: SVector<DualSVec64<N>, N>| self.energy(&qd, &pl), q);
        let ql = q.map(DualSVec64::<N>::from);
        let (_, dp) = gradient(|pd: SVector<DualSVec64<N>, N>| self.energy(&ql, &pd), p);
        (dq, dp)
    }

    /// Forces $-\partial H/\partial q$.
    fn forces(&self, q: &SVector<f64, N>, p: &SVector<f64, N>) -> SVector<f64, N> {
        -self.gradient(q, p).0
    }

    /// Hamilton's equations $(\dot q, \dot p) = (\partial H/\partial p, -\partial H/\partial q)$.
    fn equations_of_motion(&self, q: &SVector<f64, N>, p: &SVector<f64, N>) -> (SVector<f64, N>, SVector<f64, N>) {
        let (dq, dp) = self.gradient(q, p);
        (dp, -dq)
    }

    /// The $2N \times 2N$ Hessian in the order $(q, p)$.
    fn hessian(&self, q: &SVector<f64, N>, p: &SVector<f64, N>) -> DMatrix<f64> {
        let pl = p.map(Dual2SVec64::<N>::from);
        let (_, _, hqq) = hessian(|qd: SVector<Dual2SVec64<N>, N>| self.energy(&qd, &pl), q);
        let ql = q.map(Dual2SVec64::<N>::from);
        let (_, _, hpp) = hessian(|pd: SVector<Dual2SVec64<N>, N>| self.energy(&ql, &pd), p);
        let (_, _, _, hqp) = partial_hessian(|(qd, pd): (SVector<HyperDualSVec64<N, N>, N>, SVector<HyperDualSVec64<N, N>, N>)| self.energy(&qd, &pd), (q, p));
        let mut h = DMatrix::zeros(2 * N, 2 * N);
        for i in 0..N {
            for j in 0..N {
                h[(i, j)] = hqq[(i, j)];
                h[(N + i, N + j)] = hpp[(i, j)];
                h[(i, N + j)] = hqp[(i, j)];
                h[(N + j, i)] = hqp[(i, j)];
            }
        }
        h
    }
}

/// A separable Hamiltonian $H = K(p) + V(q)$. Data training needs only configurations for these,
/// since the momenta are Maxwell-Boltzmann distributed with the masses given here.
pub trait Separable<const N: usize>: Send + Sync {
    /// Potential energy $V(q)$.
    fn potential<D: Scalar>(&self, q: &SVector<D, N>) -> D;
    /// Mass of every coordinate (default 1).
    fn masses(&self) -> SVector<f64, N> {
        SVector::from_element(1.0)
    }
    /// Kinetic energy, default $\sum_i p_i^2 / 2 m_i$.
    fn kinetic<D: Scalar>(&self, p: &SVector<D, N>) -> D {
        let m = self.masses();
        let mut k = D::zero();
        for i in 0..N {
            k += p[i] * p[i] / (2.0 * m[i]);
        }
        k
    }
    /// $\nabla V(q)$ by forward mode.
    fn potential_gradient(&self, q: &SVector<f64, N>) -> (f64, SVector<f64, N>) {
        gradient(|qd: SVector<DualSVec64<N>, N>| self.potential(&qd), q)
    }
}

impl<const N: usize, S: Separable<N>> Hamiltonian<N> for S {
    fn energy<D: Scalar>(&self, q: &SVector<D, N>, p: &SVector<D, N>) -> D {
        self.kinetic(p) + self.potential(q)
    }
}

