//! Particles in an isotropic harmonic trap ($\hbar = m = \omega = 1$), the systems of FermiFlow
//! (Xie, Zhang & Wang, J. Mach. Learn. 1, 38 (2022)): positions are particle-major,
//! `q[i * d + a]`; N and d are runtime values (dimension `Dyn(N d)`).
//!
//! * [`QuantumDot`]: $V = \tfrac12\sum_i r_i^2 + \kappa\sum_{i<j} 1/r_{ij}$ (electrons; κ is the
//!   Coulomb strength in trap units).
//! * [`GaussianBosons`]: $V = \tfrac12\sum_i r_i^2 + \frac{g}{\pi s^2}\sum_{i<j} e^{-r_{ij}^2/s^2}$
//!   (the 2D bosons of Mujal et al., PRA 96, 043614 (2017)).

use nct_macros::hamiltonian;

hamiltonian! {
    /// N electrons in a d-dimensional harmonic trap with Coulomb repulsion kappa / r_ij.
    pub struct QuantumDot { n: usize = 6, d: usize = 2, kappa: f64 = 0.5 }
    particles = n; dim = d;
    potential(q) = {
        let mut v = 0.0;
        for i in 0..n {
            v += 0.5 * sum(a in 0..d) q[i * d + a] * q[i * d + a];
            for j in 0..i {
                let r2 = sum(a in 0..d) (q[i * d + a] - q[j * d + a]).powi(2);
                v += kappa / r2.sqrt();
            }
        }
        v
    };
}

hamiltonian! {
    /// N bosons in a d-dimensional harmonic trap with a Gaussian pair interaction
    /// g / (pi s^2) exp(-r_ij^2 / s^2).
    pub struct GaussianBosons { n: usize = 4, d: usize = 2, g: f64 = 1.0, s: f64 = 0.5 }
    particles = n; dim = d;
    potential(q) = {
        let mut v = 0.0;
        for i in 0..n {
            v += 0.5 * sum(a in 0..d) q[i * d + a] * q[i * d + a];
            for j in 0..i {
                let r2 = sum(a in 0..d) (q[i * d + a] - q[j * d + a]).powi(2);
                v += g / (std::f64::consts::PI * s * s) * (-r2 / (s * s)).exp();
            }
        }
        v
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use nct_core::{Dyn, Separable, Vector};

    #[test]
    fn potentials_and_forces_match_an_independent_evaluation() {
        let (n, d) = (4usize, 3usize);
        let x = Vector::from_fn(Dyn(n * d), |k| ((k * 7 % 11) as f64 - 5.0) * 0.31);
        let dot = QuantumDot::new().with_n(n).with_d(d).with_kappa(0.7);
        let bos = GaussianBosons::new().with_n(n).with_d(d).with_g(1.3).with_s(0.6);
        let (mut vd, mut vb) = (0.0, 0.0);
        let mut gd = vec![0.0; n * d];
        for i in 0..n {
            for a in 0..d {
                vd += 0.5 * x[i * d + a].powi(2);
                vb += 0.5 * x[i * d + a].powi(2);
                gd[i * d + a] += x[i * d + a];
            }
            for j in 0..i {
                let r: f64 = (0..d).map(|a| (x[i * d + a] - x[j * d + a]).powi(2)).sum::<f64>().sqrt();
                vd += 0.7 / r;
                vb += 1.3 / (std::f64::consts::PI * 0.36) * (-r * r / 0.36).exp();
                for a in 0..d {
                    let f = -0.7 * (x[i * d + a] - x[j * d + a]) / r.powi(3);
                    gd[i * d + a] += f;
                    gd[j * d + a] -= f;
                }
            }
        }
        let (v, g) = dot.potential_gradient(&x);
        assert!((v - vd).abs() < 1e-12 && g.iter().zip(&gd).all(|(a, b)| (a - b).abs() < 1e-12));
        assert!((bos.potential(&x) - vb).abs() < 1e-12);
        assert_eq!(Separable::dim(&dot), Dyn(12));
    }
}
