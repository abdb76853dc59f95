//! Hermite functions $h_n(z) = (2^n n! \sqrt\pi)^{-1/2} H_n(z) e^{-z^2/2}$ by the stable
//! three-term recurrence
//! $$ h_0 = \pi^{-1/4} e^{-z^2/2},\quad h_1 = \sqrt2\, z\, h_0,\quad
//!    h_{n+1} = \sqrt{\tfrac{2}{n+1}}\, z\, h_n - \sqrt{\tfrac{n}{n+1}}\, h_{n-1}, $$
//! and the analytic derivative $h_n' = \sqrt{2n}\, h_{n-1} - z h_n$. They are the harmonic-oscillator
//! eigenfunctions of $-\tfrac12 d^2/dz^2 + \tfrac12 z^2$ with energies $n + \tfrac12$, orthonormal on
//! the real line. Generic over the scalar, so dual numbers give any derivative.

use crate::scalar::Scalar;

/// $h_n(z)$ for any scalar.
pub fn hermite<D: Scalar>(n: usize, z: D) -> D {
    let h0 = (-(z * z) * 0.5).exp() * std::f64::consts::PI.powf(-0.25);
    if n == 0 {
        return h0;
    }
    let mut prev = h0;
    let mut cur = z * h0 * std::f64::consts::SQRT_2;
    for k in 1..n {
        let kf = k as f64;
        let next = z * cur * (2.0 / (kf + 1.0)).sqrt() - prev * (kf / (kf + 1.0)).sqrt();
        prev = cur;
        cur = next;
    }
    cur
}

/// $(h_n(z), h_n'(z))$ in f64.
pub fn hermite_with_derivative(n: usize, z: f64) -> (f64, f64) {
    let h = hermite(n, z);
    let hm1 = if n == 0 { 0.0 } else { hermite(n - 1, z) };
    (h, (2.0 * n as f64).sqrt() * hm1 - z * h)
}

/// All $h_0 \dots h_{n_{max}}$ at `z` (one recurrence), for any scalar.
pub fn hermite_all<D: Scalar>(n_max: usize, z: D) -> Vec<D> {
    let mut out = Vec::with_capacity(n_max + 1);
    out.push((-(z * z) * 0.5).exp() * std::f64::consts::PI.powf(-0.25));
    if n_max >= 1 {
        out.push(z * out[0] * std::f64::consts::SQRT_2);
    }
    for k in 1..n_max {
        let kf = k as f64;
        let next = z * out[k] * (2.0 / (kf + 1.0)).sqrt() - out[k - 1] * (kf / (kf + 1.0)).sqrt();
        out.push(next);
    }
    out
}

/// Inverse-CDF sampler of the densities $|h_n(z)|^2$ for $n \le n_{max}$, tabulated once on a fine
/// grid (piecewise-linear CDF, so samples are exact up to the interpolation of a smooth CDF).
#[derive(Clone, Debug)]
pub struct HermiteSampler {
    grid: Vec<f64>,
    cdfs: Vec<Vec<f64>>,
}

impl HermiteSampler {
    /// Bytes of the tables [`HermiteSampler::new`] builds for `n_max` (grid densities and CDFs).
    pub fn table_bytes(n_max: usize) -> f64 {
        (8001.0 + 400.0 * n_max as f64) * (n_max as f64 + 1.0) * 16.0
    }

    pub fn new(n_max: usize) -> Self {
        let half = (2.0 * n_max as f64 + 1.0).sqrt() + 9.0;
        let points = 8001 + 400 * n_max;
        let h = 2.0 * half / (points - 1) as f64;
        let grid: Vec<f64> = (0..points).map(|i| -half + h * i as f64).collect();
        let dens: Vec<Vec<f64>> = grid.iter().map(|&z| hermite_all(n_max, z).into_iter().map(|v| v * v).collect()).collect();
        let cdfs = (0..=n_max)
            .map(|n| {
                let mut c = vec![0.0; points];
                for i in 1..points {
                    c[i] = c[i - 1] + 0.5 * h * (dens[i - 1][n] + dens[i][n]);
                }
                let total = c[points - 1];
                c.iter_mut().for_each(|v| *v /= total);
                c
            })
            .collect();
        Self { grid, cdfs }
    }
    pub fn n_max(&self) -> usize {
        self.cdfs.len() - 1
    }
    /// Sample $z \sim |h_n(z)|^2$ from a uniform number `u` in (0, 1).
    pub fn sample_with(&self, n: usize, u: f64) -> f64 {
        let c = &self.cdfs[n.min(self.n_max())];
        let i = c.partition_point(|&v| v < u).clamp(1, c.len() - 1);
        let (c0, c1) = (c[i - 1], c[i]);
        let t = if c1 > c0 { (u - c0) / (c1 - c0) } else { 0.5 };
        self.grid[i - 1] + t * (self.grid[i] - self.grid[i - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::Dual2_64;

    #[test]
    fn matches_closed_forms_and_is_orthonormal() {
        for &z in &[-1.7, -0.3, 0.0, 0.9, 2.4] {
            let g = (-z * z / 2.0f64).exp() / std::f64::consts::PI.powf(0.25);
            assert!((hermite(0, z) - g).abs() < 1e-15);
            assert!((hermite(2, z) - (4.0 * z * z - 2.0) / (8.0f64).sqrt() * g).abs() < 1e-14);
            assert!((hermite(3, z) - (8.0 * z.powi(3) - 12.0 * z) / (48.0f64).sqrt() * g).abs() < 1e-14);
        }
        let h = 0.01;
        let zs: Vec<f64> = (0..2400).map(|i| -12.0 + h * i as f64).collect();
        for n in 0..8 {
            for m in 0..8 {
                let s: f64 = zs.iter().map(|&z| hermite(n, z) * hermite(m, z)).sum::<f64>() * h;
                assert!((s - if n == m { 1.0 } else { 0.0 }).abs() < 1e-10, "<{n}|{m}> = {s}");
            }
        }
    }

    #[test]
    fn derivative_and_eigen_equation() {
        for n in 0..10 {
            for &z in &[-2.1, -0.4, 0.7, 1.9] {
                let (v, d) = hermite_with_derivative(n, z);
                let dd = hermite(n, Dual2_64::new(z, 1.0, 0.0));
                assert!((dd.re - v).abs() < 1e-14 && (dd.v1 - d).abs() < 1e-12);
                // -h''/2 + z^2 h/2 = (n + 1/2) h
                let lhs = -0.5 * dd.v2 + 0.5 * z * z * v;
                assert!((lhs - (n as f64 + 0.5) * v).abs() < 1e-11, "n={n} z={z}");
            }
        }
    }

    #[test]
    fn sampler_reproduces_moments() {
        let s = HermiteSampler::new(4);
        for n in 0..=4 {
            let m = 20000;
            let z2: f64 = (0..m).map(|k| s.sample_with(n, (k as f64 + 0.5) / m as f64).powi(2)).sum::<f64>() / m as f64;
            // <z^2> = n + 1/2 for the n-th oscillator state.
            assert!((z2 - (n as f64 + 0.5)).abs() < 2e-3, "n={n}: <z^2> = {z2}");
        }
    }
}
