//! Observables: named functions of a configuration, declared once and estimated (mean and
//! standard error over independent samples) at evaluation; [`super::Summary::observables`]
//! writes them into the summary.
//!
//! Classical observables are functions of the phase point $(q, p)$; quantum observables are
//! functions of the coordinates $x$ (diagonal in position: $V$, $x_i^2$, pair distances, ...).

use crate::batch::{BatchEngine, SeedStream};
use crate::classical::mean_and_error;
use crate::dim::{Size, Vector};
use crate::hamiltonian::Separable;
use crate::layer::{Bijector, PhasePoint, SymplecticLayer};
use serde::Serialize;

/// A named function of `X` (a phase point or a coordinate vector).
pub struct Observable<'a, X: ?Sized> {
    pub name: String,
    f: Box<dyn Fn(&X) -> f64 + Sync + 'a>,
}

impl<'a, X: ?Sized> Observable<'a, X> {
    pub fn new(name: &str, f: impl Fn(&X) -> f64 + Sync + 'a) -> Self {
        Observable { name: name.into(), f: Box::new(f) }
    }
    pub fn value(&self, x: &X) -> f64 {
        (self.f)(x)
    }
}

impl<'a, N: Size> Observable<'a, PhasePoint<f64, N>> {
    /// Kinetic energy $\sum_i p_i^2 / 2m_i$ of a separable Hamiltonian.
    pub fn kinetic<H: Separable<N>>(h: &'a H) -> Self {
        Observable::new("K", move |x: &PhasePoint<f64, N>| h.kinetic(&x.p))
    }
    /// Potential energy $V(q)$.
    pub fn potential<H: Separable<N>>(h: &'a H) -> Self {
        Observable::new("V", move |x: &PhasePoint<f64, N>| h.potential(&x.q))
    }
    /// Virial $\sum_i q_i \partial_i V$ (equals $2\langle K\rangle$ for a harmonic $V$ at equilibrium
    /// by equipartition).
    pub fn virial<H: Separable<N>>(h: &'a H) -> Self {
        Observable::new("virial", move |x: &PhasePoint<f64, N>| {
            let (_, g) = h.potential_gradient(&x.q);
            x.q.dot(&g)
        })
    }
}

impl<'a, N: Size> Observable<'a, Vector<f64, N>> {
    /// Potential energy $V(x)$ (quantum).
    pub fn potential_of<H: Separable<N>>(h: &'a H) -> Self {
        Observable::new("V", move |x: &Vector<f64, N>| h.potential(x))
    }
    /// Virial $\sum_i x_i \partial_i V$ (quantum; $\langle 2K\rangle$ for an eigenstate of a
    /// homogeneous-degree-2 potential).
    pub fn virial_of<H: Separable<N>>(h: &'a H) -> Self {
        Observable::new("virial", move |x: &Vector<f64, N>| {
            let (_, g) = h.potential_gradient(x);
            x.dot(&g)
        })
    }
}

/// Estimated mean and standard error of an observable.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservableValue {
    pub name: String,
    pub mean: f64,
    pub error: f64,
    pub samples: usize,
}

fn estimate_all<X>(obs: &[Observable<'_, X>], xs: &[X]) -> Vec<ObservableValue> {
    obs.iter()
        .map(|o| {
            let v: Vec<f64> = xs.iter().map(|x| o.value(x)).collect();
            let (mean, error) = mean_and_error(&v);
            ObservableValue { name: o.name.clone(), mean, error, samples: v.len() }
        })
        .collect()
}

impl<F: SymplecticLayer<N>, H, N: Size> super::Variational<'_, F, H, N> {
    /// Observables over `samples` fresh samples of the trained distribution (a stream separate
    /// from training and from the free-energy estimate).
    pub fn observe(&self, theta: &[f64], obs: &[Observable<'_, PhasePoint<f64, N>>], samples: usize, seed: u64) -> Vec<ObservableValue> {
        let xs = BatchEngine::new(crate::run::classical::CHUNK).map(samples, &SeedStream::new(seed ^ 0x0b5e), 0, |_, rng| self.model.sample(theta, rng).0);
        estimate_all(obs, &xs)
    }
}

impl<B: Bijector<D>, H: Separable<D>, D: Size> super::Ensemble<'_, B, H, D> {
    /// Observables in state `label` from `samples` exact samples of $|\psi_n|^2$ (walkers that
    /// fell into holes of the surface are left out).
    pub fn observe(&self, theta: &[f64], label: &[usize], obs: &[Observable<'_, Vector<f64, D>>], samples: usize, seed: u64) -> Vec<ObservableValue> {
        let xs: Vec<Vector<f64, D>> = BatchEngine::new(32)
            .map(samples, &SeedStream::new(seed ^ 0x0b5e), 0, |_, rng| {
                let (x, _) = self.states.sample(theta, label, rng);
                (!self.states.escaped(self.h.potential(&x), &x)).then_some(x)
            })
            .into_iter()
            .flatten()
            .collect();
        estimate_all(obs, &xs)
    }
}
