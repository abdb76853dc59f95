//! Alanine dipeptide heavy-atom configurations (10 atoms, 30 coordinates) from the shared OpenMM
//! data set (`positions.npy` in nm, `dihedrals.npy` in radians, `trajectories.json`).
//!
//! Units: nm, amu, kJ/mol, so that time is in ps and frequencies in 1/ps; $k_B T$ at 300 K is
//! 2.494 kJ/mol. Frames are centred and Kabsch-aligned to the mean structure, which leaves six
//! (near-)singular rigid-body directions in the 30-dimensional configuration space.

use crate::data::{DataError, TrajectoryBlock, align_frames, read_npy_2d, read_trajectories};
use nalgebra::Vector3;
use nct::{Const, Vector};
use std::path::Path;

/// Heavy atoms in file order: CH3, C, O (ACE); N, CA, CB, C, O (ALA); N, C (NME).
pub const ATOMS: [&str; 10] = ["C", "C", "O", "N", "C", "C", "C", "O", "N", "C"];

/// Standard atomic masses (amu) of [`ATOMS`].
pub fn atom_masses() -> [f64; 10] {
    ATOMS.map(|a| match a {
        "C" => 12.011,
        "N" => 14.007,
        _ => 15.999,
    })
}

/// Masses per Cartesian coordinate (x, y, z of every atom).
pub fn coordinate_masses() -> Vector<f64, Const<30>> {
    let m = atom_masses();
    Vector::from_fn(Const, |i| m[i / 3])
}

/// Boltzmann constant in kJ/(mol K).
pub const K_B: f64 = 0.008_314_462_618;

/// Aligned configurations with their dihedrals.
#[derive(Clone, Debug)]
pub struct AlanineData {
    /// Centred, aligned heavy-atom coordinates (nm), one vector of 30 per kept frame.
    pub frames: Vec<Vector<f64, Const<30>>>,
    /// $(\phi, \psi)$ in radians per kept frame.
    pub dihedrals: Vec<(f64, f64)>,
    /// Trajectory blocks in units of kept frames.
    pub blocks: Vec<TrajectoryBlock>,
}

impl AlanineData {
    /// Load the data set from `dir`, keeping every `stride`-th frame of each trajectory.
    pub fn load(dir: &Path, stride: usize) -> Result<Self, DataError> {
        let stride = stride.max(1);
        let pos = read_npy_2d(&dir.join("positions.npy"), Some(30))?;
        let dih = read_npy_2d(&dir.join("dihedrals.npy"), Some(2))?;
        let blocks = read_trajectories(&dir.join("trajectories.json"))?;
        if dih.rows != pos.rows {
            return Err(DataError::Field { file: dir.join("dihedrals.npy"), field: "shape".into(), found: format!("[{}, 2]", dih.rows), expected: format!("[{}, 2] (as many rows as positions.npy)", pos.rows) });
        }
        let total: usize = blocks.iter().map(|b| b.n_frames).sum();
        if total != pos.rows {
            return Err(DataError::Field { file: dir.join("trajectories.json"), field: "n_frames".into(), found: total.to_string(), expected: format!("{} (rows of positions.npy)", pos.rows) });
        }
        let mut keep = Vec::new();
        let mut kept_blocks = Vec::new();
        for b in &blocks {
            let first = keep.len();
            keep.extend((b.first_frame..b.first_frame + b.n_frames).step_by(stride));
            kept_blocks.push(TrajectoryBlock { first_frame: first, n_frames: keep.len() - first });
        }
        let raw: Vec<Vec<Vector3<f64>>> = keep.iter().map(|&f| (0..10).map(|a| Vector3::new(pos.row(f)[3 * a], pos.row(f)[3 * a + 1], pos.row(f)[3 * a + 2])).collect()).collect();
        let aligned = align_frames(&raw, 2);
        let frames = aligned.iter().map(|f| Vector::from_fn(Const, |i| f[i / 3][i % 3])).collect();
        let dihedrals = keep.iter().map(|&f| (dih.row(f)[0], dih.row(f)[1])).collect();
        Ok(Self { frames, dihedrals, blocks: kept_blocks })
    }
}

/// Circular-linear correlation of a linear variable with an angle (Mardia, "Linear-circular
/// correlation coefficients and rhythmometry", Biometrika 63, 403 (1976)): the multiple correlation
/// of `x` on $(\cos\theta, \sin\theta)$, in [0, 1].
pub fn circular_linear_correlation(x: &[f64], angle: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = |v: &dyn Fn(usize) -> f64| (0..x.len()).map(v).sum::<f64>() / n;
    let (mx, mc, ms) = (mean(&|i| x[i]), mean(&|i| angle[i].cos()), mean(&|i| angle[i].sin()));
    let cov = |a: &dyn Fn(usize) -> f64, b: &dyn Fn(usize) -> f64| (0..x.len()).map(|i| a(i) * b(i)).sum::<f64>() / n;
    let dx = |i: usize| x[i] - mx;
    let dc = |i: usize| angle[i].cos() - mc;
    let ds = |i: usize| angle[i].sin() - ms;
    let (sxx, scc, sss) = (cov(&dx, &dx), cov(&dc, &dc), cov(&ds, &ds));
    if sxx <= 0.0 || scc <= 0.0 || sss <= 0.0 {
        return 0.0;
    }
    let rxc = cov(&dx, &dc) / (sxx * scc).sqrt();
    let rxs = cov(&dx, &ds) / (sxx * sss).sqrt();
    let rcs = cov(&dc, &ds) / (scc * sss).sqrt();
    ((rxc * rxc + rxs * rxs - 2.0 * rxc * rxs * rcs) / (1.0 - rcs * rcs)).clamp(0.0, 1.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circular_correlation_limits() {
        let angle: Vec<f64> = (0..400).map(|i| -3.1 + 6.2 * i as f64 / 400.0).collect();
        let x: Vec<f64> = angle.iter().map(|a| 2.0 * (a - 0.4).cos() + 1.0).collect();
        assert!((circular_linear_correlation(&x, &angle) - 1.0).abs() < 1e-9);
        let noise: Vec<f64> = (0..400).map(|i| ((i * 7919) % 101) as f64 / 101.0).collect();
        assert!(circular_linear_correlation(&noise, &angle) < 0.2);
    }

    #[test]
    fn masses_follow_the_atom_order() {
        let m = coordinate_masses();
        assert_eq!(m[0], 12.011);
        assert_eq!(m[6], 15.999);
        assert_eq!(m[9], 14.007);
        assert_eq!(m[29], 12.011);
    }
}
