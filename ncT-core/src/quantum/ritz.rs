//! Rayleigh–Ritz diagonalisation of $H$ in the span of flow-transformed states
//! $\{\psi_k = \phi_k(f(x))\,|\det f'|^{1/2}\}_{k=1}^K$ of a frozen flow.
//!
//! The flow makes a small basis nearly exact; the Ritz step then removes the residual mixing
//! between states (for example Fermi resonances) that one shared flow cannot represent. Matrix
//! elements are Monte Carlo averages over the mixture $g = \tfrac1K\sum_k|\psi_k|^2$, sampled
//! exactly (stratified: equal numbers per state). In the latent variable the Jacobians cancel:
//! $$ S_{mn} = \mathbb E_g\Big[\tfrac{\phi_m\phi_n}{\bar g}\Big],\qquad
//!    H_{mn} = \mathbb E_g\Big[\tfrac{\phi_m\,(H\psi_n)/|\det f'|^{1/2}}{\bar g}\Big],\qquad
//!    \bar g(z) = \tfrac1K\sum_k\phi_k(z)^2 . $$
//! The levels are the eigenvalues of $S^{-1}H$ with the non-symmetric estimator of $H$ and the
//! estimated $S$ from the same samples: if the basis spans exact eigenstates the estimated levels are
//! exact for any sample (the zero-variance principle of correlated sampling; M. P. Nightingale and
//! V. Melik-Alaverdian, Phys. Rev. Lett. 87, 043401 (2001)). Error bars by the jackknife over blocks.
//! Each sample needs one jet pass through the flow, shared by all $K$ basis states.

use super::QuantumNct;
use super::hermite::hermite_all;
use crate::batch::{BatchEngine, SeedStream};
use crate::hamiltonian::Separable;
use crate::jet::LapJet;
use crate::layer::Bijector;
use crate::progress::{NoProgress, Progress};
use crate::stats::jackknife_error;
use crate::dim::{Size, Vector};
use nalgebra::DMatrix;
#[cfg(test)]
use nalgebra::DVector;
use num_dual::DualNum;
use thiserror::Error;

/// Why a Ritz diagonalisation failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RitzError {
    #[error("the Ritz basis is empty")]
    EmptyBasis,
    #[error("basis label {label:?} has {got} modes, the system has {expected}")]
    LabelLength { label: Vec<usize>, got: usize, expected: usize },
    #[error("{what} = {value} is invalid: {allowed}")]
    Value { what: &'static str, value: usize, allowed: &'static str },
    #[error("the estimated overlap matrix is singular or non-finite ({accepted} accepted samples)")]
    Singular { accepted: usize },
}

/// One Ritz level.
#[derive(Clone, Debug, PartialEq)]
pub struct RitzLevel {
    pub energy: f64,
    /// Jackknife standard error.
    pub error: f64,
    /// Jackknife standard error of the excitation $E_n - E_0$ (correlated errors partly cancel).
    pub excitation_error: f64,
    /// The basis label with the largest weight in the Ritz vector (the level's assignment).
    pub label: Vec<usize>,
    /// That label's share $c_k^2/\sum_j c_j^2$ of the Ritz vector.
    pub weight: f64,
}

/// Result of [`QuantumNct::ritz`].
#[derive(Clone, Debug, PartialEq)]
pub struct Ritz {
    /// All $K$ levels, ascending.
    pub levels: Vec<RitzLevel>,
    pub basis: Vec<Vec<usize>>,
    pub samples: usize,
    /// Walkers rejected by the guard against holes (left out of the averages).
    pub rejected: usize,
    /// $\max_{mn}|S_{mn} - \delta_{mn}|$ of the estimated overlap (a sampling diagnostic).
    pub overlap_deviation: f64,
    /// Largest imaginary part of the eigenvalues of $S^{-1}H$ (noise makes it non-zero).
    pub max_imaginary: f64,
}

/// Block sums of the estimators.
#[derive(Clone)]
struct Sums {
    s: DMatrix<f64>,
    h: DMatrix<f64>,
    accepted: usize,
    rejected: usize,
}

crate::wire_struct!(Sums { s, h, accepted, rejected });

impl Sums {
    fn zero(k: usize) -> Self {
        Self { s: DMatrix::zeros(k, k), h: DMatrix::zeros(k, k), accepted: 0, rejected: 0 }
    }
    fn add(&mut self, o: &Sums) {
        self.s += &o.s;
        self.h += &o.h;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
    }
}

impl<B: Bijector<D>, D: Size> QuantumNct<B, D> {
    /// $\phi_k(z)$ and $(H\psi_k)(x)/|\det f'(x)|^{1/2}$ for every basis label, from one jet pass
    /// through the flow; `None` when the guard rejects `x`.
    pub fn basis_rows<H: Separable<D>>(&self, theta: &[f64], h: &H, basis: &[Vec<usize>], x: &Vector<f64, D>) -> Option<(Vec<f64>, Vec<f64>)> {
        let v = h.potential(x);
        if self.escaped(v, x) {
            return None;
        }
        let width = self.width();
        let d = x.len();
        let mut phi = vec![0.0; basis.len()];
        let mut lap = vec![0.0; basis.len()];
        let mut psi = vec![0.0; basis.len()];
        let mut half_re = 1.0;
        crate::with_block_width!(d, W => {
            for start in (0..d).step_by(W) {
                let (z, ld, _) = self.flow.forward(theta, &self.laplacian_seeds::<W>(x, start));
                let half = (ld * 0.5).exp();
                half_re = half.re;
                let tables: Vec<Vec<LapJet<W>>> = (0..d)
                    .map(|i| {
                        let top = basis.iter().map(|n| n[i]).max().unwrap_or(0);
                        hermite_all(top, z[i] * width[i]).into_iter().map(|hv| hv * width[i].sqrt()).collect()
                    })
                    .collect();
                for (k, n) in basis.iter().enumerate() {
                    let mut p = half;
                    for i in 0..d {
                        p = p * tables[i][n[i]];
                    }
                    // Values are the same in every block; take them from the first.
                    if start == 0 {
                        phi[k] = (0..d).fold(1.0, |f, i| f * tables[i][n[i]].re);
                        psi[k] = p.re;
                    }
                    lap[k] += p.v2;
                }
            }
        });
        let mut hphi = Vec::with_capacity(basis.len());
        for k in 0..basis.len() {
            // H psi = -1/2 sum_i m_i^-1 d_i^2 psi + V psi (the jet carries the mass weighting).
            let hp = (-0.5 * lap[k] + v * psi[k]) / half_re;
            if !hp.is_finite() || !phi[k].is_finite() {
                return None;
            }
            hphi.push(hp);
        }
        Some((phi, hphi))
    }

    /// Ritz levels in the span of the states `basis` of the frozen flow `theta`, from `samples`
    /// exact samples of the basis mixture, with jackknife errors over `blocks` blocks.
    #[allow(clippy::too_many_arguments)]
    pub fn ritz<H: Separable<D>>(&self, theta: &[f64], h: &H, basis: &[Vec<usize>], samples: usize, blocks: usize, engine: &BatchEngine, stream: &SeedStream) -> Result<Ritz, RitzError> {
        self.ritz_with(theta, h, basis, samples, blocks, engine, stream, &NoProgress)
    }

    /// [`Self::ritz`], reporting two phases to `progress`: the samples drawn, then the
    /// `blocks + 1` generalised eigenproblems (all data, then each jackknife leave-one-out).
    #[allow(clippy::too_many_arguments)]
    pub fn ritz_with<H: Separable<D>>(&self, theta: &[f64], h: &H, basis: &[Vec<usize>], samples: usize, blocks: usize, engine: &BatchEngine, stream: &SeedStream, progress: &dyn Progress) -> Result<Ritz, RitzError> {
        let k = basis.len();
        if k == 0 {
            return Err(RitzError::EmptyBasis);
        }
        if let Some(n) = basis.iter().find(|n| n.len() != self.omega().len()) {
            return Err(RitzError::LabelLength { label: n.clone(), got: n.len(), expected: self.omega().len() });
        }
        if blocks < 2 {
            return Err(RitzError::Value { what: "blocks", value: blocks, allowed: "at least 2 (jackknife)" });
        }
        if samples < blocks * k {
            return Err(RitzError::Value { what: "samples", value: samples, allowed: "at least blocks x basis size" });
        }
        let per_block = samples / blocks;
        progress.start(&format!("Ritz samples (K = {k})"), (per_block * blocks) as u64);
        let block_sums: Vec<Sums> = (0..blocks)
            .map(|b| {
                let parts = engine.map_chunks(per_block, stream, b as u64, |range, rng| {
                    let mut acc = Sums::zero(k);
                    for i in range {
                        let label = &basis[(b * per_block + i) % k];
                        let (x, _) = self.sample(theta, label, rng);
                        match self.basis_rows(theta, h, basis, &x) {
                            None => acc.rejected += 1,
                            Some((phi, hphi)) => {
                                let g = phi.iter().map(|p| p * p).sum::<f64>() / k as f64;
                                if !(g > 0.0) {
                                    acc.rejected += 1;
                                    continue;
                                }
                                for m in 0..k {
                                    let a = phi[m] / g;
                                    for n in 0..k {
                                        acc.s[(m, n)] += a * phi[n];
                                        acc.h[(m, n)] += a * hphi[n];
                                    }
                                }
                                acc.accepted += 1;
                            }
                        }
                    }
                    progress.advance(acc.accepted as u64 + acc.rejected as u64);
                    acc
                });
                let mut total = Sums::zero(k);
                for p in &parts {
                    total.add(p);
                }
                total
            })
            .collect();
        let mut all = Sums::zero(k);
        for b in &block_sums {
            all.add(b);
        }
        // Averages over the drawn samples (rejected walkers count as zero contributions).
        let drawn = (per_block * blocks) as f64;
        let solve = |skip: Option<usize>| -> Option<(Vec<f64>, f64, DMatrix<f64>)> {
            let (mut s, mut hm, mut n) = (all.s.clone(), all.h.clone(), drawn);
            if let Some(b) = skip {
                s -= &block_sums[b].s;
                hm -= &block_sums[b].h;
                n -= per_block as f64;
            }
            s /= n;
            hm /= n;
            let a = s.clone().lu().solve(&hm)?;
            if a.iter().any(|v| !v.is_finite()) {
                return None;
            }
            let eig = a.complex_eigenvalues();
            let mut re: Vec<f64> = eig.iter().map(|c| c.re).collect();
            re.sort_by(f64::total_cmp);
            let im = eig.iter().map(|c| c.im.abs()).fold(0.0, f64::max);
            Some((re, im, a))
        };
        progress.finish();
        let singular = RitzError::Singular { accepted: all.accepted };
        progress.start(&format!("Ritz eigenproblems (K = {k}, all data + {blocks} jackknife)"), blocks as u64 + 1);
        let (energies, max_imaginary, a) = solve(None).ok_or(singular.clone())?;
        progress.advance(1);
        let mut loo = Vec::with_capacity(blocks);
        for b in 0..blocks {
            loo.push(solve(Some(b)).ok_or(singular.clone())?.0);
            progress.advance(1);
        }
        progress.finish();
        let vectors = ritz_vectors(&all.s, &all.h, &a, &energies);
        let levels = energies
            .iter()
            .enumerate()
            .map(|(j, &e)| {
                let error = jackknife_error(&loo.iter().map(|v| v[j]).collect::<Vec<_>>());
                let excitation_error = jackknife_error(&loo.iter().map(|v| v[j] - v[0]).collect::<Vec<_>>());
                let c = &vectors[j];
                let norm: f64 = c.iter().map(|x| x * x).sum();
                let (best, w) = c.iter().enumerate().map(|(i, x)| (i, x * x / norm)).fold((0, 0.0), |acc, p| if p.1 > acc.1 { p } else { acc });
                RitzLevel { energy: e, error, excitation_error, label: basis[best].clone(), weight: w }
            })
            .collect();
        let s_mean = &all.s / drawn;
        let overlap_deviation = (0..k).flat_map(|m| (0..k).map(move |n| (m, n))).map(|(m, n)| (s_mean[(m, n)] - if m == n { 1.0 } else { 0.0 }).abs()).fold(0.0, f64::max);
        Ok(Ritz { levels, basis: basis.to_vec(), samples: per_block * blocks, rejected: all.rejected, overlap_deviation, max_imaginary })
    }
}

/// Ritz vectors (coefficients in the basis), one per entry of `energies` (ascending), in
/// $O(K^3)$: the symmetric generalised problem $\bar H c = E S c$ with $\bar H = (H + H^T)/2$,
/// solved by Cholesky $S = L L^T$ and one symmetric eigendecomposition of $L^{-1}\bar H L^{-T}$;
/// vector $j$ belongs to its $j$-th lowest eigenvalue. Where $S$ is not numerically positive
/// definite, each vector is the null vector of $A - E_j$ (an SVD per level, $O(K^4)$).
fn ritz_vectors(s: &DMatrix<f64>, h: &DMatrix<f64>, a: &DMatrix<f64>, energies: &[f64]) -> Vec<Vec<f64>> {
    let k = s.nrows();
    let hs = (h + h.transpose()) * 0.5;
    if let Some(chol) = s.clone().cholesky() {
        let l = chol.l();
        if let Some(linv) = l.clone().try_inverse() {
            let c = &linv * &hs * linv.transpose();
            let eig = nalgebra::SymmetricEigen::new((&c + c.transpose()) * 0.5);
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&p, &q| eig.eigenvalues[p].total_cmp(&eig.eigenvalues[q]));
            let back = linv.transpose() * &eig.eigenvectors;
            if back.iter().all(|v| v.is_finite()) {
                return order.iter().take(energies.len()).map(|&j| back.column(j).iter().copied().collect()).collect();
            }
        }
    }
    energies
        .iter()
        .map(|&e| {
            let shifted = a - DMatrix::<f64>::identity(k, k) * e;
            let svd = shifted.svd(false, true);
            let jmin = (0..k).min_by(|&p, &q| svd.singular_values[p].total_cmp(&svd.singular_values[q])).unwrap_or(0);
            svd.v_t.as_ref().map(|vt| vt.row(jmin).iter().copied().collect()).unwrap_or_else(|| vec![1.0; k])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Cholesky path gives the same vectors (up to sign) as the null vectors of $S^{-1}H - E$.
    #[test]
    fn ritz_vectors_equal_the_null_vectors_of_the_shifted_matrix() {
        let k = 7;
        let b = DMatrix::from_fn(k, k, |i, j| ((i * 7 + j * 3) as f64 * 0.37).sin() + if i == j { 2.0 } else { 0.0 });
        let s = &b * b.transpose();
        let g = DMatrix::from_fn(k, k, |i, j| ((i + j) as f64 * 0.91).cos() + if i == j { i as f64 } else { 0.0 });
        let h = (&g + g.transpose()) * 0.5;
        let a = s.clone().lu().solve(&h).unwrap();
        let mut e: Vec<f64> = a.complex_eigenvalues().iter().map(|c| c.re).collect();
        e.sort_by(f64::total_cmp);
        let fast = ritz_vectors(&s, &h, &a, &e);
        let singular = DMatrix::<f64>::zeros(k, k);
        let slow = ritz_vectors(&singular, &h, &a, &e);
        for j in 0..k {
            let (f, sl) = (DVector::from_column_slice(&fast[j]), DVector::from_column_slice(&slow[j]));
            let cos = f.dot(&sl).abs() / (f.norm() * sl.norm());
            assert!((cos - 1.0).abs() < 1e-8, "level {j}: |cos| = {cos}");
            // And each one solves H c = E S c.
            let r = &h * &f - &s * &f * e[j];
            assert!(r.norm() < 1e-8 * (h.norm() * f.norm()), "level {j}: residual {}", r.norm());
        }
    }
}
