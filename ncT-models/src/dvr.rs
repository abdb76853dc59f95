//! Reference levels of low-dimensional systems by the sinc discrete variable representation
//! (D. T. Colbert and W. H. Miller, "A novel discrete variable representation for quantum
//! mechanical reactive scattering via the S-matrix Kohn method", J. Chem. Phys. 96, 1982 (1992)).
//!
//! On a uniform grid of spacing $\Delta x$ the kinetic matrix of coordinate $i$ (mass $m_i$) is
//! $T_{ab} = \frac{(-1)^{a-b}}{2 m_i \Delta x^2}\{\pi^2/3 \text{ if } a = b;\ 2/(a-b)^2 \text{ else}\}$,
//! the potential is diagonal on the grid, and $H = \sum_i T^{(i)} + V$ is diagonalised densely. The
//! error falls exponentially with the number of points once the grid covers the states; the matrix
//! has $points^D$ rows, so this is for D = 1, 2, 3.

use nct_core::{Separable, Size, Vector};
use thiserror::Error;

/// Largest Hamiltonian matrix accepted (rows): 6000 rows take 288 MB and minutes to diagonalise.
pub const MAX_ROWS: usize = 6000;

#[derive(Debug, Error, PartialEq)]
pub enum DvrError {
    #[error("a sinc-DVR with {points} points per coordinate in {dim} dimensions has {rows} rows ({gib:.2} GiB); at most {MAX_ROWS} rows are allowed (use fewer points, or a method that scales with dimension)")]
    TooLarge { points: usize, dim: usize, rows: f64, gib: f64 },
    #[error("a sinc-DVR needs at least 3 points per coordinate and a half-width > 0 (got {points} points, half-width {half_width})")]
    Grid { points: usize, half_width: f64 },
}

/// The lowest `count` eigenvalues (ascending) of `h` on the grid $[-L, L]^D$ with `points` points
/// per coordinate (masses from `h.masses()`).
pub fn sinc_dvr_levels<H: Separable<N>, N: Size>(h: &H, points: usize, half_width: f64, count: usize) -> Result<Vec<f64>, DvrError> {
    let d = h.dim().value();
    if points < 3 || !(half_width.is_finite() && half_width > 0.0) {
        return Err(DvrError::Grid { points, half_width });
    }
    let rows = (points as f64).powi(d as i32);
    if rows > MAX_ROWS as f64 {
        return Err(DvrError::TooLarge { points, dim: d, rows, gib: rows * rows * 8.0 / (1u64 << 30) as f64 });
    }
    let n = rows as usize;
    let dx = 2.0 * half_width / (points - 1) as f64;
    let masses = h.masses();
    let kinetic = |a: usize, b: usize, m: f64| {
        let sign = if (a + b) % 2 == 0 { 1.0 } else { -1.0 };
        let diff = a as f64 - b as f64;
        sign / (2.0 * m * dx * dx) * if a == b { std::f64::consts::PI.powi(2) / 3.0 } else { 2.0 / (diff * diff) }
    };
    // Grid index of row r: digit i (base `points`) is the index along coordinate i.
    let digit = |r: usize, i: usize| (r / points.pow((d - 1 - i) as u32)) % points;
    let hm = nalgebra::DMatrix::from_fn(n, n, |r, c| {
        // Non-zero only where the grid points differ in at most one coordinate.
        let mut differing = None;
        for i in 0..d {
            if digit(r, i) != digit(c, i) {
                if differing.is_some() {
                    return 0.0;
                }
                differing = Some(i);
            }
        }
        match differing {
            Some(i) => kinetic(digit(r, i), digit(c, i), masses[i]),
            None => {
                let x = Vector::from_fn(h.dim(), |i| -half_width + dx * digit(r, i) as f64);
                (0..d).map(|i| kinetic(digit(r, i), digit(r, i), masses[i])).sum::<f64>() + h.potential(&x)
            }
        }
    });
    let mut e: Vec<f64> = hm.symmetric_eigen().eigenvalues.iter().copied().collect();
    e.sort_by(f64::total_cmp);
    e.truncate(count);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vibrational::{HarmonicModes, Ndco, ndco_normal_frequencies};
    use nct_core::quantum::basis::{harmonic_energy, lowest_levels};
    use nct_core::{Const, Dyn};

    #[test]
    fn harmonic_and_coupled_oscillators_are_exact() {
        // Uncoupled modes of different frequencies (unit masses): E = sum_i omega_i (n_i + 1/2).
        let h = HarmonicModes::<Const<2>> { omega: Vector::from([0.8, 1.3]) };
        let levels = sinc_dvr_levels(&h, 40, 7.0, 6).unwrap();
        let w = [0.8, 1.3];
        let mut exact: Vec<f64> = lowest_levels(&w, 6).iter().map(|n| harmonic_energy(&w, n)).collect();
        exact.sort_by(f64::total_cmp);
        for (a, b) in levels.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        }
        // Coupled modes in 3D: the levels of the normal modes (a coarse grid: 12^3 rows).
        let h = Ndco::new(Dyn(3), 0.2);
        let levels = sinc_dvr_levels(&h, 12, 4.5, 4).unwrap();
        let w = ndco_normal_frequencies(3, 0.2);
        let mut exact: Vec<f64> = lowest_levels(&w, 4).iter().map(|n| harmonic_energy(&w, n)).collect();
        exact.sort_by(f64::total_cmp);
        for (a, b) in levels.iter().zip(&exact) {
            assert!((a - b).abs() < 2e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn sizes_that_cannot_fit_are_refused_with_the_estimate() {
        let h = Ndco::new(Dyn(4), 0.1);
        let e = sinc_dvr_levels(&h, 20, 5.0, 1).unwrap_err();
        assert!(matches!(e, DvrError::TooLarge { rows, .. } if rows == 160_000.0), "{e}");
        assert!(e.to_string().contains("160000 rows"), "{e}");
        assert!(matches!(sinc_dvr_levels(&h, 2, 5.0, 1), Err(DvrError::Grid { .. })));
    }
}
