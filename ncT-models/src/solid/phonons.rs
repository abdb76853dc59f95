//! Harmonic analysis of a supercell and the normal-mode coordinates, in the convention of the
//! reference (`src/coordtrans_phon.py`): $D = m_{eff}\,\nabla^2 V_K(R_0)$ (Å⁻⁴), its three acoustic
//! zero modes ($|\lambda| < 10^{-4}$) removed, $w_k = \sqrt{|\lambda_k|} = m_{eff}\hbar\omega_k/k_B$
//! (Å⁻²) and $\hbar\omega_k/k_B = w_k/m_{eff}$ (K). Mode amplitudes $Q\in\mathbb R^{3N-3}$ (Å, not
//! mass weighted): $U = P_{:,3:}Q$, $R = R_0 + U - U_0$ (atom 0 pinned), and back
//! $U = (R - R_0) - (R - R_0)_0$ taken to the minimum image, $Q = (P^\top U)_{3:}$.

use super::deeppot::{DeepPot, PeriodicImages};
use super::structure::Supercell;
use super::EV_TO_K;
use nalgebra::DMatrix;
use nct::Scalar;

/// A lattice whose harmonic analysis fails.
#[derive(Debug, thiserror::Error)]
pub enum PhononError {
    #[error("the Hessian at the lattice has {count} eigenvalues with |λ| < 1e-4 Å⁻⁴ (smallest magnitudes {smallest:?}); exactly 3 (the acoustic translations) are needed: the structure is not a minimum of this potential, or has extra zero modes")]
    ZeroModes { count: usize, smallest: Vec<f64> },
    #[error("a supercell needs at least 2 atoms, this one has {0}")]
    TooSmall(usize),
}

/// Harmonic phonons of a supercell and its mode coordinates.
#[derive(Clone, Debug)]
pub struct HarmonicModes {
    pub lattice: Supercell,
    /// $m_{eff} = 1/(2\hbar^2/2mk_B)$ in K⁻¹ Å⁻².
    pub effective_mass: f64,
    /// $V(R_0)$ in K (the whole cell).
    pub v0: f64,
    /// Eigenvalues of $D$ of the kept modes (Å⁻⁴, `eigh` order).
    pub eigenvalues: Vec<f64>,
    /// The three dropped eigenvalues.
    pub zero_eigenvalues: [f64; 3],
    /// $w_k = \sqrt{|\lambda_k|}$ (Å⁻²).
    pub w: Vec<f64>,
    /// Eigenvectors, zero modes first ($3N\times3N$).
    pub p: DMatrix<f64>,
    /// Number of negative eigenvalues kept (as $|\lambda|$, like the reference).
    pub negative: usize,
}

impl HarmonicModes {
    /// Hessian of `dp` at the lattice (forward-over-reverse) and its eigen-decomposition.
    pub fn new(dp: &DeepPot, images: &PeriodicImages, lattice: &Supercell, effective_mass: f64) -> Result<Self, PhononError> {
        let n = lattice.num_atoms();
        if n < 2 {
            return Err(PhononError::TooSmall(n));
        }
        let (e, _, h) = dp.hessian(images, &lattice.positions, lattice.lengths);
        Self::from_hessian(lattice, effective_mass, e * EV_TO_K, h * (EV_TO_K * effective_mass))
    }

    /// From $V_0$ (K) and $D = m_{eff}\nabla^2 V_K$ (Å⁻⁴).
    pub fn from_hessian(lattice: &Supercell, effective_mass: f64, v0: f64, d: DMatrix<f64>) -> Result<Self, PhononError> {
        let dim = d.nrows();
        let eig = nalgebra::SymmetricEigen::new(d);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
        let (zero, kept): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&k| eig.eigenvalues[k].abs() < 1e-4);
        if zero.len() != 3 {
            let mut mags: Vec<f64> = eig.eigenvalues.iter().map(|v| v.abs()).collect();
            mags.sort_by(f64::total_cmp);
            mags.truncate(6);
            return Err(PhononError::ZeroModes { count: zero.len(), smallest: mags });
        }
        let cols: Vec<usize> = zero.iter().chain(&kept).copied().collect();
        let p = DMatrix::from_fn(dim, dim, |r, c| eig.eigenvectors[(r, cols[c])]);
        let eigenvalues: Vec<f64> = kept.iter().map(|&k| eig.eigenvalues[k]).collect();
        let w = eigenvalues.iter().map(|l| l.abs().sqrt()).collect();
        let negative = eigenvalues.iter().filter(|l| **l < 0.0).count();
        Ok(HarmonicModes { lattice: lattice.clone(), effective_mass, v0, eigenvalues, zero_eigenvalues: [eig.eigenvalues[zero[0]], eig.eigenvalues[zero[1]], eig.eigenvalues[zero[2]]], w, p, negative })
    }

    /// Number of modes, $3N - 3$.
    pub fn modes(&self) -> usize {
        self.w.len()
    }
    /// Phonon energies $\hbar\omega_k/k_B = w_k/m_{eff}$ (K).
    pub fn frequencies_k(&self) -> Vec<f64> {
        self.w.iter().map(|w| w / self.effective_mass).collect()
    }

    /// Positions (unwrapped; the potential wraps them) of mode amplitudes `q`.
    pub fn positions<D: Scalar>(&self, q: &[D]) -> Vec<[D; 3]> {
        let n = self.lattice.num_atoms();
        let mut u = vec![D::zero(); 3 * n];
        for (r, ur) in u.iter_mut().enumerate() {
            let row = self.p.row(r);
            for (k, &qk) in q.iter().enumerate() {
                *ur += qk * row[3 + k];
            }
        }
        let r0 = &self.lattice.positions;
        (0..n).map(|i| std::array::from_fn(|a| u[3 * i + a] - u[a] + r0[i][a])).collect()
    }

    /// Mode amplitudes of positions `r` (minimum image of the displacements relative to atom 0).
    pub fn amplitudes(&self, r: &[[f64; 3]]) -> Vec<f64> {
        let n = self.lattice.num_atoms();
        let (r0, l) = (&self.lattice.positions, self.lattice.lengths);
        let mut u = vec![0.0; 3 * n];
        for i in 0..n {
            for a in 0..3 {
                let d = (r[i][a] - r[0][a]) - (r0[i][a] - r0[0][a]);
                u[3 * i + a] = d - l[a] * (d / l[a]).round_ties_even();
            }
        }
        (3..3 * n).map(|c| (0..3 * n).map(|k| u[k] * self.p[(k, c)]).sum()).collect()
    }

    /// Harmonic free energy per cell (K), $\sum_k [\hbar\omega_k/2 + T\ln(1 - e^{-\hbar\omega_k/T})]$,
    /// and the same truncated to `levels` levels per mode (what PSA at $\theta = 0$ represents):
    /// $-T\ln\sum_{n<K} e^{-(n+1/2)\hbar\omega/T}$.
    pub fn harmonic_free_energy(&self, temperature: f64, levels: usize) -> (f64, f64) {
        let mut full = 0.0;
        let mut trunc = 0.0;
        for w in self.frequencies_k() {
            let x = w / temperature;
            full += w / 2.0 + temperature * (-(-x).exp()).ln_1p();
            let z: f64 = (0..levels).map(|n| (-(n as f64) * x).exp()).sum();
            trunc += w / 2.0 - temperature * z.ln();
        }
        (full, trunc)
    }
}
