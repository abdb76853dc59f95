//! Exact sampling of $|\Phi(r_1..r_N)|^2 / N!$ for a Slater determinant of orthonormal orbitals:
//! it is a projection determinantal point process with kernel
//! $K(r, r') = \sum_{j=1}^N \phi_j(r)\phi_j(r')$, sampled by the sequential (chain-rule) algorithm
//! of J. B. Hough, M. Krishnapur, Y. Peres and B. Virág, "Determinantal processes and
//! independence", Probab. Surveys 3, 206 (2006): with $v(r) = (\phi_1(r), \dots, \phi_N(r))$ and an
//! orthonormal basis $e_1..e_{k-1}$ of $v(r_1)..v(r_{k-1})$, point k has density
//! $$ p_k(r) = \frac{|v(r)|^2 - \sum_{l<k} (e_l\cdot v(r))^2}{N - k + 1}, $$
//! drawn by rejection from the mixture $|v(r)|^2/N$ (pick an orbital uniformly, sample its product
//! of Hermite densities exactly by inverse CDF) with acceptance
//! $1 - \sum_l (e_l\cdot v)^2/|v|^2$. The ordered tuple has density exactly $|\Phi|^2/N!$; no Markov
//! chain, no burn-in, independent samples.

use super::orbitals::HoOrbitals;
use crate::quantum::hermite::HermiteSampler;
use rand::RngExt;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DppError {
    #[error("orbital {index} is not among the {available} orbitals of the sampler")]
    Orbital { index: usize, available: usize },
    #[error("point {point}: no proposal accepted in {proposals} tries (are the occupied orbitals distinct?)")]
    NoAcceptance { point: usize, proposals: usize },
}

/// Sampler of $|\Phi|^2/N!$ for the orbitals of a [`HoOrbitals`] set.
#[derive(Clone, Debug)]
pub struct DppSampler {
    orbitals: HoOrbitals,
    hermite: HermiteSampler,
}

/// Most rejection proposals per point before giving up (the mean is N / (N - k + 1) <= N).
pub const MAX_PROPOSALS: usize = 100_000;

impl DppSampler {
    pub fn new(orbitals: HoOrbitals) -> Self {
        let top = orbitals.labels.iter().flatten().copied().max().unwrap_or(0);
        DppSampler { orbitals, hermite: HermiteSampler::new(top) }
    }
    pub fn orbitals(&self) -> &HoOrbitals {
        &self.orbitals
    }

    /// One configuration ($N \times d$ coordinates, particle-major) of the determinant of the
    /// orbitals `occupied`, with the number of rejected proposals. An error only if a point needed
    /// more than [`MAX_PROPOSALS`] proposals (an orbital set that is not orthonormal, e.g. with a
    /// repeated orbital).
    pub fn sample<R: rand::Rng + ?Sized>(&self, occupied: &[usize], rng: &mut R) -> Result<(Vec<f64>, usize), DppError> {
        if let Some(&j) = occupied.iter().find(|&&j| j >= self.orbitals.len()) {
            return Err(DppError::Orbital { index: j, available: self.orbitals.len() });
        }
        let (n, d) = (occupied.len(), self.orbitals.dim());
        let mut x = Vec::with_capacity(n * d);
        let mut projection = Projection::default();
        let mut rejected = 0;
        for _k in 0..n {
            let mut accepted = None;
            for _ in 0..MAX_PROPOSALS {
                let j = occupied[rng.random_range(0..n)];
                let r: Vec<f64> = self.orbitals.labels[j].iter().map(|&na| self.hermite.sample_with(na, rng.random::<f64>().clamp(1e-300, 1.0 - 1e-16))).collect();
                let v = self.orbitals.values(occupied, &r);
                if projection.accepts(&v, rng.random::<f64>()) {
                    accepted = Some((r, v));
                    break;
                }
                rejected += 1;
            }
            let (r, v) = accepted.ok_or(DppError::NoAcceptance { point: projection.len(), proposals: MAX_PROPOSALS })?;
            projection.push(v);
            x.extend_from_slice(&r);
        }
        Ok((x, rejected))
    }
}

/// The sequential step of a projection DPP: an orthonormal basis $e_1..e_{k-1}$ of the feature
/// vectors $v(r_l)$ of the points drawn so far (real orbitals or complex plane waves).
#[derive(Clone, Debug, Default)]
pub struct Projection<T> {
    basis: Vec<Vec<T>>,
}

impl<T: nalgebra::ComplexField<RealField = f64> + Copy> Projection<T> {
    /// Points drawn so far.
    pub fn len(&self) -> usize {
        self.basis.len()
    }
    pub fn is_empty(&self) -> bool {
        self.basis.is_empty()
    }
    /// Accept a proposal with feature vector `v` (drawn from a density $\propto |v|^2$) given a
    /// uniform number `u`: with probability $1 - \sum_l |e_l^\dagger v|^2/|v|^2$.
    pub fn accepts(&self, v: &[T], u: f64) -> bool {
        let norm2: f64 = v.iter().map(|a| a.modulus_squared()).sum();
        let proj: f64 = self.basis.iter().map(|e| e.iter().zip(v).map(|(a, b)| a.conjugate() * *b).fold(T::zero(), |s, x| s + x).modulus_squared()).sum();
        norm2 > 0.0 && u * norm2 < norm2 - proj
    }
    /// Add the accepted point's direction (Gram-Schmidt).
    pub fn push(&mut self, v: Vec<T>) {
        let mut e = v;
        for b in &self.basis {
            let c = b.iter().zip(&e).map(|(a, x)| a.conjugate() * *x).fold(T::zero(), |s, x| s + x);
            e.iter_mut().zip(b).for_each(|(x, y)| *x -= c * *y);
        }
        let norm = e.iter().map(|a| a.modulus_squared()).sum::<f64>().sqrt();
        if norm > 0.0 {
            e.iter_mut().for_each(|a| *a = a.unscale(norm));
        }
        self.basis.push(e);
    }
}
