//! Slater determinants of twisted plane waves, $\Phi = \det A$, $A_{ij} = e^{i k_j\cdot r_i}/\sqrt V$:
//! $\ln\Phi = \ln|\Phi| + i\arg\Phi$ and, from the inverse matrix,
//! $$ \nabla_i\ln\Phi = \sum_j (A^{-1})_{ji}\, i k_j A_{ij}, \qquad
//!    \nabla_i^2\ln\Phi = -\sum_j (A^{-1})_{ji} |k_j|^2 A_{ij} - (\nabla_i\ln\Phi)^2 . $$
//! The local kinetic energy ($H = -\sum_i\nabla_i^2$, Ry / r_s²) is
//! $K_{loc} = -\sum_i[\nabla_i^2\ln\Phi + (\nabla_i\ln\Phi)^2]$, which equals $\sum_j |k_j|^2$ at every
//! configuration for the plane waves themselves (zero variance). [`PlaneWaveDpp`] samples
//! $|\Phi|^2/N!$ exactly: $|v(r)|^2 = N/V$ is constant, so proposals are uniform in the cell.

use super::plane_waves::TwistedPlaneWaves;
use crate::fermion::dpp::Projection;
use nalgebra::{Complex, DMatrix};
use rand::RngExt;

/// $\ln\Phi$ (complex) and its derivatives at one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaneWaveSlater {
    pub log: Complex<f64>,
    /// `grad[i * d + a]` = $\partial_{r_{ia}}\ln\Phi$.
    pub grad: Vec<Complex<f64>>,
    /// $\sum_i\nabla_i^2\ln\Phi$.
    pub laplacian: Complex<f64>,
}

impl PlaneWaveSlater {
    /// $K_{loc} = -\sum_i[\nabla_i^2\ln\Phi + (\nabla_i\ln\Phi)^2]$ (complex; its real part is the
    /// kinetic energy estimator).
    pub fn local_kinetic(&self) -> Complex<f64> {
        -(self.laplacian + self.grad.iter().map(|g| g * g).sum::<Complex<f64>>())
    }
}

fn row(pw: &TwistedPlaneWaves, occupied: &[usize], r: &[f64]) -> Vec<Complex<f64>> {
    let norm = pw.side.powf(-0.5 * r.len() as f64);
    occupied.iter().map(|&j| Complex::from_polar(norm, pw.k[j].iter().zip(r).map(|(k, x)| k * x).sum())).collect()
}

/// Evaluate the determinant of plane waves `occupied` at `x` (particle-major). `None` where it is
/// numerically singular (two particles at one point).
pub fn plane_wave_slater(pw: &TwistedPlaneWaves, occupied: &[usize], x: &[f64]) -> Option<PlaneWaveSlater> {
    let n = occupied.len();
    let d = pw.twist.len();
    if n == 0 || x.len() != n * d || occupied.iter().any(|&j| j >= pw.len()) {
        return None;
    }
    let rows: Vec<Vec<Complex<f64>>> = (0..n).map(|i| row(pw, occupied, &x[i * d..(i + 1) * d])).collect();
    let a = DMatrix::from_fn(n, n, |i, j| rows[i][j]);
    let lu = a.lu();
    let u = lu.u();
    let diag: Vec<Complex<f64>> = (0..n).map(|i| u[(i, i)]).collect();
    let (lo, hi) = diag.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v.norm()), hi.max(v.norm())));
    if !(hi > 0.0 && lo / hi >= 1e-14) {
        return None;
    }
    let sign = lu.p().determinant::<f64>();
    let log = diag.iter().map(|v| v.ln()).sum::<Complex<f64>>() + if sign < 0.0 { Complex::new(0.0, std::f64::consts::PI) } else { Complex::new(0.0, 0.0) };
    let inv = lu.try_inverse()?;
    let mut grad = vec![Complex::new(0.0, 0.0); n * d];
    let mut laplacian = Complex::new(0.0, 0.0);
    for i in 0..n {
        let mut k2 = Complex::new(0.0, 0.0);
        for (jj, &j) in occupied.iter().enumerate() {
            let w = inv[(jj, i)] * rows[i][jj];
            for a_ in 0..d {
                grad[i * d + a_] += w * Complex::new(0.0, pw.k[j][a_]);
            }
            k2 -= w * pw.k[j].iter().map(|c| c * c).sum::<f64>();
        }
        let g2: Complex<f64> = grad[i * d..(i + 1) * d].iter().map(|g| g * g).sum();
        laplacian += k2 - g2;
    }
    Some(PlaneWaveSlater { log, grad, laplacian })
}

/// $\ln\Phi$ with its gradient and its full complex Hessian in the coordinates,
/// `hessian[(i d + a) N d + j d + b]` $= \partial_{r_{ia}}\partial_{r_{jb}}\ln\Phi
/// = \delta_{ij}\sum_k B_{ki}\,\partial_a\partial_b A_{ik} - M^{jb}_i M^{ia}_j$ with $B = A^{-1}$ and
/// $M^{ia}_j = \sum_k \partial_a A_{ik} B_{kj}$ (the chain rule through a flow needs all of it).
/// `None` where the determinant is numerically singular.
pub fn plane_wave_hessian(pw: &TwistedPlaneWaves, occupied: &[usize], x: &[f64]) -> Option<(PlaneWaveSlater, Vec<Complex<f64>>)> {
    let s = plane_wave_slater(pw, occupied, x)?;
    let (n, d) = (occupied.len(), pw.twist.len());
    let rows: Vec<Vec<Complex<f64>>> = (0..n).map(|i| row(pw, occupied, &x[i * d..(i + 1) * d])).collect();
    let inv = DMatrix::from_fn(n, n, |i, j| rows[i][j]).try_inverse()?;
    let nd = n * d;
    // m[(i d + a) n + j] = M^{ia}_j.
    let mut m = vec![Complex::new(0.0, 0.0); nd * n];
    for i in 0..n {
        for a in 0..d {
            for j in 0..n {
                m[(i * d + a) * n + j] = occupied.iter().enumerate().map(|(kk, &orb)| Complex::new(0.0, pw.k[orb][a]) * rows[i][kk] * inv[(kk, j)]).sum();
            }
        }
    }
    let mut h = vec![Complex::new(0.0, 0.0); nd * nd];
    for i in 0..n {
        for a in 0..d {
            for j in 0..n {
                for b in 0..d {
                    let mut v = -m[(j * d + b) * n + i] * m[(i * d + a) * n + j];
                    if i == j {
                        v -= occupied.iter().enumerate().map(|(kk, &orb)| inv[(kk, i)] * rows[i][kk] * (pw.k[orb][a] * pw.k[orb][b])).sum::<Complex<f64>>();
                    }
                    h[(i * d + a) * nd + j * d + b] = v;
                }
            }
        }
    }
    Some((s, h))
}

/// Exact sampler of $|\Phi|^2/N!$ for plane waves (the sequential algorithm of Hough et al. with
/// uniform proposals; complex Gram–Schmidt).
pub struct PlaneWaveDpp<'a> {
    pub orbitals: &'a TwistedPlaneWaves,
}

impl PlaneWaveDpp<'_> {
    /// One configuration of the determinant of `occupied` in the cell $[0, L)^d$.
    pub fn sample<R: rand::Rng + ?Sized>(&self, occupied: &[usize], rng: &mut R) -> Vec<f64> {
        let (n, d, side) = (occupied.len(), self.orbitals.twist.len(), self.orbitals.side);
        let mut x = Vec::with_capacity(n * d);
        let mut projection = Projection::default();
        for _ in 0..n {
            let (r, v) = loop {
                let r: Vec<f64> = (0..d).map(|_| side * rng.random::<f64>()).collect();
                let v = row(self.orbitals, occupied, &r);
                if projection.accepts(&v, rng.random::<f64>()) {
                    break (r, v);
                }
            };
            projection.push(v);
            x.extend_from_slice(&r);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn derivatives_match_finite_differences_and_the_kinetic_energy_has_zero_variance() {
        let n = 7;
        let pw = TwistedPlaneWaves::new((std::f64::consts::PI * n as f64).sqrt(), &[0.25, 0.25], 25);
        let occ: Vec<usize> = (0..n).collect();
        let dpp = PlaneWaveDpp { orbitals: &pw };
        let mut rng = crate::batch::NctRng::seed_from_u64(4);
        let exact: f64 = pw.energies()[..n].iter().sum();
        for _ in 0..5 {
            let x = dpp.sample(&occ, &mut rng);
            let s = plane_wave_slater(&pw, &occ, &x).unwrap();
            let k = s.local_kinetic();
            assert!((k.re - exact).abs() < 1e-9 && k.im.abs() < 1e-9, "{k} vs {exact}");
            // ln Phi against central differences of the determinant (real and imaginary parts).
            let lnphi = |y: &[f64]| plane_wave_slater(&pw, &occ, y).unwrap().log;
            let h = 1e-5;
            for c in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[c] += h;
                xm[c] -= h;
                let dl = lnphi(&xp) - lnphi(&xm);
                // Unwrap the phase difference into (-pi, pi].
                let im = (dl.im + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI;
                let fd = Complex::new(dl.re, im) / (2.0 * h);
                assert!((fd - s.grad[c]).norm() < 1e-6 * (1.0 + s.grad[c].norm()), "coordinate {c}: {fd} vs {}", s.grad[c]);
            }
        }
        assert!(plane_wave_slater(&pw, &occ, &[0.0; 13]).is_none());
    }

    #[test]
    fn hessian_matches_differences_of_the_gradient() {
        let n = 4;
        let pw = TwistedPlaneWaves::new((std::f64::consts::PI * n as f64).sqrt(), &[0.25, 0.25], 25);
        let occ = [0usize, 2, 3, 7];
        let x = PlaneWaveDpp { orbitals: &pw }.sample(&occ, &mut crate::batch::NctRng::seed_from_u64(3));
        let (s, h) = plane_wave_hessian(&pw, &occ, &x).unwrap();
        let nd = x.len();
        let trace: Complex<f64> = (0..nd).map(|c| h[c * nd + c]).sum();
        assert!((trace - s.laplacian).norm() < 1e-10, "{trace} vs {}", s.laplacian);
        let step = 1e-5;
        for c in 0..nd {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[c] += step;
            xm[c] -= step;
            let (gp, gm) = (plane_wave_slater(&pw, &occ, &xp).unwrap().grad, plane_wave_slater(&pw, &occ, &xm).unwrap().grad);
            for r in 0..nd {
                let fd = (gp[r] - gm[r]) / (2.0 * step);
                assert!((fd - h[r * nd + c]).norm() < 1e-6 * (1.0 + fd.norm()), "({r}, {c}): {fd} vs {}", h[r * nd + c]);
            }
        }
    }

    #[test]
    fn dpp_pair_separations_follow_the_exact_pair_correlation() {
        // N = 3 in 2D: the separation s = r1 - r2 (minimum image) has density
        // (1 - |sum_j e^{i k_j s}|^2 / N^2) / V * N / (N - 1).
        let n = 3;
        let side = (std::f64::consts::PI * n as f64).sqrt();
        let pw = TwistedPlaneWaves::new(side, &[0.25, 0.25], 25);
        let occ: Vec<usize> = (0..n).collect();
        let dpp = PlaneWaveDpp { orbitals: &pw };
        let mut rng = crate::batch::NctRng::seed_from_u64(8);
        let bins = 10;
        let rmax = 0.5 * side;
        let bin = |s: &[f64]| -> Option<usize> {
            let m: Vec<f64> = s.iter().map(|x| x - side * (x / side).round()).collect();
            let r = (m[0] * m[0] + m[1] * m[1]).sqrt();
            (r < rmax).then(|| ((r / rmax * bins as f64) as usize).min(bins - 1))
        };
        let samples = 20_000;
        let mut counts = vec![0.0; bins];
        for _ in 0..samples {
            let x = dpp.sample(&occ, &mut rng);
            if let Some(b) = bin(&[x[0] - x[2], x[1] - x[3]]) {
                counts[b] += 1.0;
            }
        }
        // Exact bin probabilities by quadrature over the minimum-image cell.
        let m = 400;
        let mut p = vec![0.0; bins];
        for a in 0..m {
            for b in 0..m {
                let s = [side * ((a as f64 + 0.5) / m as f64 - 0.5), side * ((b as f64 + 0.5) / m as f64 - 0.5)];
                if let Some(k) = bin(&s) {
                    let sum: Complex<f64> = occ.iter().map(|&j| Complex::from_polar(1.0, pw.k[j][0] * s[0] + pw.k[j][1] * s[1])).sum();
                    p[k] += (1.0 - sum.norm_sqr() / (n * n) as f64) * n as f64 / (n - 1) as f64 / (m * m) as f64;
                }
            }
        }
        let chi2: f64 = counts.iter().zip(&p).map(|(c, q)| (c - samples as f64 * q).powi(2) / (samples as f64 * q)).sum();
        // 99% quantile of chi-squared with 10 degrees of freedom: 23.209.
        assert!(chi2 < 23.209, "chi2 = {chi2}; counts {counts:?}; expected {:?}", p.iter().map(|q| q * samples as f64).collect::<Vec<_>>());
    }
}
