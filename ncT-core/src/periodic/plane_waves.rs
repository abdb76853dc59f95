//! Twisted plane waves in a periodic cell of side L: $\phi_n(r) = L^{-d/2} e^{i k_n\cdot r}$ with
//! $k_n = 2\pi(n + t)/L$, integer $n$ with $|n|^2 \le E_{max}$ and twist $t$ (CoulombGas's basis:
//! $E_{max} = 25$ gives 81 orbitals in 2D). One-body energies $|k_n|^2$ in Ry / r_s² (lengths in
//! r_s a_B: $H = -\sum_i\nabla_i^2 + \dots$).

use crate::fermion::free::{Thermo, levels_thermo};

/// The plane-wave orbitals of a cubic (square) cell, sorted by twisted energy.
#[derive(Clone, Debug, PartialEq)]
pub struct TwistedPlaneWaves {
    pub side: f64,
    pub twist: Vec<f64>,
    /// Integer vectors n of each orbital.
    pub n: Vec<Vec<i64>>,
    /// $k_n$ of each orbital.
    pub k: Vec<Vec<f64>>,
}

impl TwistedPlaneWaves {
    /// Every n with $|n|^2 \le$ `e_max` in `twist.len()` dimensions, cell side `side`.
    pub fn new(side: f64, twist: &[f64], e_max: i64) -> Self {
        let d = twist.len();
        let reach = (e_max as f64).sqrt().floor() as i64;
        let width = 2 * reach + 1;
        let mut n: Vec<Vec<i64>> = (0..width.pow(d as u32))
            .map(|mut c| {
                (0..d)
                    .map(|_| {
                        let v = c % width - reach;
                        c /= width;
                        v
                    })
                    .collect::<Vec<i64>>()
            })
            .filter(|v| v.iter().map(|x| x * x).sum::<i64>() <= e_max)
            .collect();
        let kv = |v: &Vec<i64>| -> Vec<f64> { v.iter().zip(twist).map(|(&a, t)| 2.0 * std::f64::consts::PI * (a as f64 + t) / side).collect() };
        let energy = |v: &Vec<i64>| kv(v).iter().map(|x| x * x).sum::<f64>();
        n.sort_by(|a, b| energy(a).total_cmp(&energy(b)).then(a.cmp(b)));
        let k = n.iter().map(kv).collect();
        TwistedPlaneWaves { side, twist: twist.to_vec(), n, k }
    }
    pub fn len(&self) -> usize {
        self.n.len()
    }
    pub fn is_empty(&self) -> bool {
        self.n.is_empty()
    }
    /// One-body energies $|k_n|^2$.
    pub fn energies(&self) -> Vec<f64> {
        self.k.iter().map(|k| k.iter().map(|x| x * x).sum()).collect()
    }
}

/// Exact F, E, S (totals, Ry / r_s²) of N free spin-polarised electrons in the plane-wave basis at
/// inverse temperature `beta` (exact in the finite basis: the elementary symmetric polynomial of
/// the orbitals' Boltzmann factors).
pub fn free_electron_thermo(orbitals: &TwistedPlaneWaves, n: usize, beta: f64) -> Thermo {
    let levels: Vec<(f64, usize)> = orbitals.energies().into_iter().map(|e| (e, 1)).collect();
    levels_thermo(&levels, n, beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_free_electrons_in_two_dimensions_match_the_reference() {
        // CoulombGas conventions: L = sqrt(pi N), E_F = 4, beta = 1 / (4 Theta), Theta = 0.15.
        let n = 13;
        let pw = TwistedPlaneWaves::new((std::f64::consts::PI * n as f64).sqrt(), &[0.25, 0.25], 25);
        assert_eq!(pw.len(), 81);
        let t = free_electron_thermo(&pw, n, 1.0 / (4.0 * 0.15));
        for (got, want) in [(t.f, 24.81105176), (t.e, 27.52425824), (t.s, 4.52201079)] {
            assert!((got - want).abs() < 1e-8 * want.abs(), "{got} vs {want}");
        }
    }
}
