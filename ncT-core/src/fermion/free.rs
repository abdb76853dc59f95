//! Exact canonical thermodynamics of non-interacting fermions in the d-dimensional trap
//! ($\hbar = m = \omega = k_B = 1$), the reference of every finite-temperature run at zero coupling.
//!
//! Untruncated, $Z_N$ is the elementary symmetric polynomial of the one-body Boltzmann factors
//! (summed shell by shell, all terms positive); the canonical recursion (P. Borrmann and G. Franke,
//! J. Chem. Phys. 98, 2484 (1993)) $Z_N = N^{-1}\sum_{k=1}^N (-1)^{k-1} z(k\beta) Z_{N-k}$ with
//! $z(\beta) = (e^{-\beta/2}/(1 - e^{-\beta}))^d$ gives the same at high temperature and is kept as
//! a cross-check (it cancels catastrophically at low temperature). Two spin species are
//! independent, $Z = Z_{N_\uparrow} Z_{N_\downarrow}$. Truncated to the states within ΔE of the ground
//! state, by the direct sum over [`super::states::enumerate_states`]. $E = -\partial_\beta \ln Z$
//! comes from a dual number in $\beta$, $F = -\ln Z/\beta$, $S = \beta(E - F)$.

use super::orbitals::shell_degeneracy;
use super::states::enumerate_states;
use num_dual::{Dual64, DualNum};

/// $N_\uparrow + N_\downarrow$ free fermions in the d-dimensional trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeFermions {
    pub dim: usize,
    pub n_up: usize,
    pub n_down: usize,
}

/// Free energy, energy and entropy (in units of k_B).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thermo {
    pub f: f64,
    pub e: f64,
    pub s: f64,
}

fn thermo(beta: f64, ln_z: impl Fn(Dual64) -> Dual64) -> Thermo {
    let l = ln_z(Dual64::new(beta, 1.0));
    let (f, e) = (-l.re / beta, -l.eps);
    Thermo { f, e, s: beta * (e - f) }
}

/// $\ln Z_N(\beta)$ of N fermions in one-body levels `(energy, degeneracy)`: the elementary
/// symmetric polynomial $e_N$ of the Boltzmann factors, level by level (a level of $g$ orbitals
/// with factor $x$ maps $e_k \mapsto \sum_m \binom{g}{m} x^m e_{k-m}$). Every term is positive, so
/// no digits are lost at any temperature. Energies are measured from the lowest level (factors
/// <= 1). `None`-free: N larger than the number of orbitals gives $-\infty$. Generic over the
/// scalar (a dual number in β gives the energy).
pub fn ln_z_levels<D: crate::scalar::Scalar>(levels: &[(f64, usize)], n: usize, beta: D) -> D {
    let e_min = levels.iter().map(|l| l.0).fold(f64::INFINITY, f64::min);
    let mut e: Vec<D> = vec![D::zero(); n + 1];
    e[0] = D::one();
    for &(energy, g) in levels {
        let x = (beta * -(energy - e_min)).exp();
        let mut next = e.clone();
        for k in 1..=n {
            let (mut binom, mut xm) = (1.0, D::one());
            for m in 1..=g.min(k) {
                binom *= (g - m + 1) as f64 / m as f64;
                xm = xm * x;
                next[k] = next[k] + xm * e[k - m] * binom;
            }
        }
        e = next;
    }
    e[n].ln() - beta * (e_min * n as f64)
}

/// F, E, S of N fermions in the given one-body levels at inverse temperature `beta`.
pub fn levels_thermo(levels: &[(f64, usize)], n: usize, beta: f64) -> Thermo {
    thermo(beta, |b| ln_z_levels(levels, n, b))
}

impl FreeFermions {
    /// $\ln Z_N$ of one species as the elementary symmetric polynomial $e_N$ of the one-body
    /// Boltzmann factors, built shell by shell (a shell of $g$ orbitals with factor $x$ maps
    /// $e_k \mapsto \sum_m \binom{g}{m} x^m e_{k-m}$). Every term is positive, so no digits are lost
    /// at any temperature (the alternating recursion cancels badly at low temperature: at N = 6,
    /// β = 3 it is already 2e-6 off in E). Shells beyond the Fermi shell + 45/β + 5 weigh less than
    /// $e^{-45}$ and are left out. Generic over the scalar (for derivatives in β).
    fn ln_z_species<D: crate::scalar::Scalar>(&self, n: usize, beta: D) -> D {
        if n == 0 {
            return D::zero();
        }
        let mut fermi = 0;
        while (0..=fermi).map(|s| shell_degeneracy(s, self.dim)).sum::<usize>() < n {
            fermi += 1;
        }
        let top = fermi + (45.0 / beta.re()).ceil() as usize + 5;
        let levels: Vec<(f64, usize)> = (0..=top).map(|s| (s as f64 + 0.5 * self.dim as f64, shell_degeneracy(s, self.dim))).collect();
        ln_z_levels(&levels, n, beta)
    }

    /// The canonical recursion $Z_N = N^{-1}\sum_k (-1)^{k-1} z(k\beta) Z_{N-k}$ (a cross-check, accurate
    /// at high temperature only).
    pub fn ln_z_recursion(&self, n: usize, beta: f64) -> f64 {
        let z1 = |b: f64| ((-0.5 * b).exp() / (1.0 - (-b).exp())).powi(self.dim as i32);
        let mut zs = vec![1.0];
        for m in 1..=n {
            let acc: f64 = (1..=m).map(|k| if k % 2 == 1 { 1.0 } else { -1.0 } * z1(beta * k as f64) * zs[m - k]).sum();
            zs.push(acc / m as f64);
        }
        zs[n].ln()
    }

    /// Untruncated F, E, S at inverse temperature `beta`.
    pub fn thermo(&self, beta: f64) -> Thermo {
        thermo(beta, |b| self.ln_z_species(self.n_up, b) + self.ln_z_species(self.n_down, b))
    }

    /// F, E, S in the space of states within `delta_e` of the ground state.
    pub fn truncated_thermo(&self, beta: f64, delta_e: usize) -> Thermo {
        let (orbitals, states) = enumerate_states(self.dim, self.n_up, self.n_down, delta_e);
        let energies: Vec<f64> = states.iter().map(|s| s.energy(&orbitals)).collect();
        let e0 = energies.iter().copied().fold(f64::INFINITY, f64::min);
        thermo(beta, |b| energies.iter().map(|&e| (b * -(e - e0)).exp()).fold(Dual64::from(0.0), |a, x| a + x).ln() - b * e0)
    }

    /// Boltzmann probabilities $e^{-\beta E_n}/Z$ of the states within `delta_e` (the initial
    /// occupations of a categorical occupation model), in the order of `enumerate_states`.
    pub fn boltzmann_weights(&self, beta: f64, delta_e: usize) -> Vec<f64> {
        let (o, states) = enumerate_states(self.dim, self.n_up, self.n_down, delta_e);
        let w: Vec<f64> = states.iter().map(|s| (-beta * s.excitation as f64).exp()).collect();
        let z: f64 = w.iter().sum();
        let _ = o;
        w.into_iter().map(|x| x / z).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fermions_in_two_dimensions_match_the_reference_values() {
        // N = 6, d = 2, beta = 3 (FermiFlow, rung 1 of the acceptance): untruncated and Delta E = 4.
        let ff = FreeFermions { dim: 2, n_up: 6, n_down: 0 };
        let t = ff.thermo(3.0);
        for (got, want) in [(t.f, 13.819669), (t.e, 14.500242), (t.s, 2.041721)] {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let t = ff.truncated_thermo(3.0, 4);
        for (got, want) in [(t.f, 13.819722), (t.e, 14.499511), (t.s, 2.039367)] {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn recursion_equals_the_direct_sum_in_a_large_window_and_the_ground_state_at_low_t() {
        // With a window wide enough that the omitted states weigh e^{-beta dE} ~ 1e-16, the two agree.
        let ff = FreeFermions { dim: 2, n_up: 3, n_down: 2 };
        let (a, b) = (ff.thermo(4.0), ff.truncated_thermo(4.0, 12));
        assert!((a.f - b.f).abs() < 1e-10 && (a.e - b.e).abs() < 1e-9, "{a:?} vs {b:?}");
        // High temperature: the alternating recursion agrees.
        for (n, beta) in [(6, 0.5), (3, 0.2)] {
            let f = FreeFermions { dim: 2, n_up: n, n_down: 0 };
            assert!((f.thermo(beta).f + f.ln_z_recursion(n, beta) / beta).abs() < 1e-9, "N = {n}, beta = {beta}");
        }
        // Low temperature: E -> the filled-shell energy (3D: 1 orbital at 3/2, 3 at 5/2).
        let cold = FreeFermions { dim: 3, n_up: 4, n_down: 0 }.thermo(60.0);
        assert!((cold.e - (1.5 + 3.0 * 2.5)).abs() < 1e-9, "{cold:?}");
        let w = ff.boltzmann_weights(1.0, 2);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-14);
    }
}
