//! The spin-polarised uniform electron gas in a periodic box, in CoulombGas's conventions (Xie,
//! Zhang & Wang, SciPost Phys. 14, 154 (2023)): lengths in $r_s a_B$, energies in Ry / $r_s^2$,
//! $$ H = -\sum_i\nabla_i^2 + 2r_s\Big[\sum_{i<j}\varphi(r_{ij}) + \tfrac12 N\xi\Big], $$
//! $\varphi$ the Ewald pair potential of the one-component plasma in the box of side
//! $L = \sqrt{\pi N}$ (2D) or $(4\pi N/3)^{1/3}$ (3D) and $\xi = \xi_M/L$ its Madelung term. The
//! Fermi energy of the polarised gas is $E_F = 4$ (2D) or $(9\pi/2)^{2/3}$ (3D), and
//! $\beta = 1/(\Theta E_F)$ at reduced temperature $\Theta = T/T_F$.

use nct_core::error::ConfigError;
use nct_core::periodic::{CellPotential, Ewald, TwistedPlaneWaves};

/// N polarised electrons at density parameter $r_s$ in 2 or 3 dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct ElectronGas {
    pub particles: usize,
    pub dim: usize,
    pub rs: f64,
    ewald: Ewald,
}

impl ElectronGas {
    pub fn new(particles: usize, dim: usize, rs: f64) -> Result<Self, ConfigError> {
        if dim != 2 && dim != 3 {
            return Err(ConfigError::Value { what: "dimension", value: dim.to_string(), allowed: "2 or 3" });
        }
        if particles == 0 {
            return Err(ConfigError::Value { what: "particles", value: "0".into(), allowed: "at least 1" });
        }
        if !(rs.is_finite() && rs >= 0.0) {
            return Err(ConfigError::Value { what: "rs", value: rs.to_string(), allowed: "a finite density parameter >= 0 (0: free electrons)" });
        }
        let ewald = Ewald::new(&vec![Self::side_of(particles, dim); dim]).map_err(|e| ConfigError::Value { what: "box", value: e.to_string(), allowed: "a finite positive side" })?;
        Ok(ElectronGas { particles, dim, rs, ewald })
    }
    fn side_of(n: usize, dim: usize) -> f64 {
        let pi = std::f64::consts::PI;
        if dim == 2 { (pi * n as f64).sqrt() } else { (4.0 * pi * n as f64 / 3.0).cbrt() }
    }
    /// The box side L in $r_s a_B$.
    pub fn side(&self) -> f64 {
        Self::side_of(self.particles, self.dim)
    }
    /// $E_F$ of the polarised gas (Ry / $r_s^2$).
    pub fn fermi_energy(&self) -> f64 {
        if self.dim == 2 { 4.0 } else { (4.5 * std::f64::consts::PI).powf(2.0 / 3.0) }
    }
    /// $\beta = 1/(\Theta E_F)$.
    pub fn beta(&self, theta: f64) -> f64 {
        1.0 / (theta * self.fermi_energy())
    }
    /// Twisted plane waves with $|n|^2 \le$ `e_max` in this box.
    pub fn orbitals(&self, twist: &[f64], e_max: i64) -> Result<TwistedPlaneWaves, ConfigError> {
        if twist.len() != self.dim || twist.iter().any(|t| !t.is_finite()) {
            return Err(ConfigError::Value { what: "twist", value: format!("{twist:?}"), allowed: "one finite component per dimension, e.g. 0.25,0.25" });
        }
        if e_max < 0 {
            return Err(ConfigError::Value { what: "emax", value: e_max.to_string(), allowed: "an integer >= 0" });
        }
        Ok(TwistedPlaneWaves::new(self.side(), twist, e_max))
    }
    /// The Ewald sum of the box.
    pub fn ewald(&self) -> &Ewald {
        &self.ewald
    }
    /// $V(x)$ and its gradient (Ry / $r_s^2$).
    pub fn potential_and_gradient(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let (e, g) = self.ewald.energy(x);
        (2.0 * self.rs * e, g.into_iter().map(|v| 2.0 * self.rs * v).collect())
    }
}

impl CellPotential for ElectronGas {
    fn potential(&self, x: &[f64]) -> f64 {
        2.0 * self.rs * self.ewald.energy(x).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_fermi_energy_and_the_madelung_limit() {
        let g = ElectronGas::new(13, 2, 10.0).unwrap();
        assert!((g.side() - (std::f64::consts::PI * 13.0).sqrt()).abs() < 1e-15 && (g.beta(0.15) - 1.0 / 0.6).abs() < 1e-15);
        // The density is 1 / (pi r_s^2) in 2D and 3 / (4 pi r_s^3) in 3D: N / L^d in r_s units.
        let g3 = ElectronGas::new(7, 3, 1.0).unwrap();
        assert!((7.0 / g3.side().powi(3) - 3.0 / (4.0 * std::f64::consts::PI)).abs() < 1e-14);
        // k_F^2 from the density: (6 pi^2 n)^{2/3} in 3D.
        assert!((g3.fermi_energy() - (6.0 * std::f64::consts::PI.powi(2) * 3.0 / (4.0 * std::f64::consts::PI)).powf(2.0 / 3.0)).abs() < 1e-13);
        // One electron: V = 2 r_s * xi_M / (2 L) whatever its position.
        let one = ElectronGas::new(1, 2, 3.0).unwrap();
        let want = 2.0 * 3.0 * 0.5 * -3.9002649200 / one.side();
        assert!((one.potential(&[0.3, 1.1]) - want).abs() < 1e-9, "{} vs {want}", one.potential(&[0.3, 1.1]));
        assert!(ElectronGas::new(3, 4, 1.0).is_err() && ElectronGas::new(3, 2, -1.0).is_err() && g.orbitals(&[0.25], 25).is_err());
    }
}
