//! Ewald sums for unit point charges in a periodic orthorhombic cell with a uniform neutralising
//! background (the one-component plasma of the uniform electron gas), in 2D (charges and
//! $1/r$ interaction in a plane) and 3D. With splitting parameter $\alpha$:
//! $$ \varphi(r) = \sum_{n} \frac{\operatorname{erfc}(\alpha|r+n|)}{|r+n|} +
//!    \frac{c_d}{V}\sum_{G\ne0} \hat f(G)\cos(G\cdot r) - \frac{b_d}{V}, \qquad
//!    \xi = \lim_{r\to0}\Big[\varphi(r) - \frac1r\Big], $$
//! with $\hat f(G) = e^{-G^2/4\alpha^2}/G^2$, $c_3 = 4\pi$, $b_3 = \pi/\alpha^2$ in 3D and
//! $\hat f(G) = \operatorname{erfc}(G/2\alpha)/G$, $c_2 = 2\pi$, $b_2 = 2\sqrt\pi/\alpha$ in 2D (V the
//! area). The energy of N charges is $E = \sum_{i<j}\varphi(r_{ij}) + \tfrac12 N\xi$; for one charge
//! per unit cell $\xi$ is the Madelung constant ($-2.8372974795$ simple cubic, $-3.9002649200$
//! square). Both sums are cut where their terms fall below $10^{-16}$ of the leading one
//! ($\alpha r_c = 6$, $G_c = 12\alpha$), so the result does not depend on $\alpha$ to about 1e-13
//! (tested); there is no minimum-image truncation.

use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq)]
pub enum EwaldError {
    #[error("periodic cell: {0} lengths given; a cell is 2D (square or rectangular) or 3D (orthorhombic)")]
    Dimension(usize),
    #[error("periodic cell: length {0} is not a finite positive number")]
    Length(f64),
    #[error("Ewald splitting parameter {0} is not a finite positive number")]
    Alpha(f64),
}

/// The Ewald potential of one orthorhombic cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Ewald {
    lengths: Vec<f64>,
    alpha: f64,
    /// Real-space image offsets (in cells) with a term above the cut-off somewhere in the cell.
    images: Vec<Vec<f64>>,
    /// Reciprocal vectors $G \ne 0$ with $\hat f(G)$ above the cut-off, and $c_d \hat f(G)/V$.
    recip: Vec<(Vec<f64>, f64)>,
    volume: f64,
}

/// $\alpha r_c$ of the real-space cut-off (erfc(6) = 2e-17).
const REAL_CUT: f64 = 6.0;

impl Ewald {
    /// The cell with side `lengths` (2 or 3 of them) and the default $\alpha = \sqrt\pi / V^{1/d}$.
    pub fn new(lengths: &[f64]) -> Result<Self, EwaldError> {
        let volume: f64 = lengths.iter().product();
        Self::with_alpha(lengths, std::f64::consts::PI.sqrt() / volume.powf(1.0 / lengths.len() as f64))
    }

    /// The same with a given splitting parameter (the result does not depend on it).
    pub fn with_alpha(lengths: &[f64], alpha: f64) -> Result<Self, EwaldError> {
        let d = lengths.len();
        if d != 2 && d != 3 {
            return Err(EwaldError::Dimension(d));
        }
        if let Some(&l) = lengths.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(EwaldError::Length(l));
        }
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(EwaldError::Alpha(alpha));
        }
        let volume: f64 = lengths.iter().product();
        let rc = REAL_CUT / alpha;
        // Points of a minimum-image cell reach |r + n| <= rc + half the cell diagonal.
        let half_diag = 0.5 * lengths.iter().map(|l| l * l).sum::<f64>().sqrt();
        let images = lattice(lengths, rc + half_diag, |a, m| m as f64 * lengths[a]);
        let gc = 2.0 * REAL_CUT * alpha;
        let two_pi = 2.0 * std::f64::consts::PI;
        let recip = lattice(&lengths.iter().map(|l| two_pi / l).collect::<Vec<_>>(), gc, |a, m| two_pi * m as f64 / lengths[a])
            .into_iter()
            .filter(|g| g.iter().any(|&c| c != 0.0))
            .map(|g| {
                let g2: f64 = g.iter().map(|c| c * c).sum();
                let coef = if d == 3 { 4.0 * std::f64::consts::PI * (-g2 / (4.0 * alpha * alpha)).exp() / g2 } else { two_pi * libm::erfc(g2.sqrt() / (2.0 * alpha)) / g2.sqrt() };
                (g, coef / volume)
            })
            .collect();
        Ok(Ewald { lengths: lengths.to_vec(), alpha, images, recip, volume })
    }

    pub fn dim(&self) -> usize {
        self.lengths.len()
    }
    pub fn lengths(&self) -> &[f64] {
        &self.lengths
    }

    fn background(&self) -> f64 {
        if self.dim() == 3 { std::f64::consts::PI / (self.alpha * self.alpha * self.volume) } else { 2.0 * std::f64::consts::PI.sqrt() / (self.alpha * self.volume) }
    }

    /// Minimum image of a separation, componentwise in $[-L/2, L/2)$.
    pub fn minimum_image(&self, r: &[f64]) -> Vec<f64> {
        r.iter().zip(&self.lengths).map(|(x, l)| x - l * (x / l).round()).collect()
    }

    /// $\varphi(r)$ and its gradient for a separation `r` that is not a lattice vector.
    pub fn pair(&self, r: &[f64]) -> (f64, Vec<f64>) {
        let r = self.minimum_image(r);
        let d = self.dim();
        let (mut v, mut g) = (0.0, vec![0.0; d]);
        let two_over_sqrt_pi = 2.0 / std::f64::consts::PI.sqrt();
        for n in &self.images {
            let s: Vec<f64> = (0..d).map(|a| r[a] + n[a]).collect();
            let dist = s.iter().map(|x| x * x).sum::<f64>().sqrt();
            if dist * self.alpha > REAL_CUT {
                continue;
            }
            let e = libm::erfc(self.alpha * dist) / dist;
            v += e;
            let de = -e / dist - two_over_sqrt_pi * self.alpha * (-(self.alpha * dist).powi(2)).exp() / dist;
            for a in 0..d {
                g[a] += de * s[a] / dist;
            }
        }
        for (gv, c) in &self.recip {
            let phase: f64 = gv.iter().zip(&r).map(|(a, b)| a * b).sum();
            let (sn, cs) = phase.sin_cos();
            v += c * cs;
            for a in 0..d {
                g[a] -= c * sn * gv[a];
            }
        }
        (v - self.background(), g)
    }

    /// The self term $\xi$ (the Madelung constant of one charge per cell).
    pub fn madelung(&self) -> f64 {
        let mut xi = -2.0 * self.alpha / std::f64::consts::PI.sqrt() - self.background();
        for n in &self.images {
            let dist = n.iter().map(|x| x * x).sum::<f64>().sqrt();
            if dist > 0.0 && dist * self.alpha <= REAL_CUT {
                xi += libm::erfc(self.alpha * dist) / dist;
            }
        }
        xi + self.recip.iter().map(|(_, c)| c).sum::<f64>()
    }

    /// $E = \sum_{i<j}\varphi(r_{ij}) + \tfrac12 N\xi$ and $\partial E/\partial x$ for positions
    /// `x[i * d + a]`.
    pub fn energy(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let d = self.dim();
        let n = x.len() / d;
        let mut e = 0.5 * n as f64 * self.madelung();
        let mut grad = vec![0.0; x.len()];
        for i in 0..n {
            for j in 0..i {
                let r: Vec<f64> = (0..d).map(|a| x[i * d + a] - x[j * d + a]).collect();
                let (v, g) = self.pair(&r);
                e += v;
                for a in 0..d {
                    grad[i * d + a] += g[a];
                    grad[j * d + a] -= g[a];
                }
            }
        }
        (e, grad)
    }
}

/// Integer vectors m with |sum_a m_a b_a e_a| <= radius, mapped by `coord(axis, m_a)`.
fn lattice(spacing: &[f64], radius: f64, coord: impl Fn(usize, i64) -> f64) -> Vec<Vec<f64>> {
    let d = spacing.len();
    let reach: Vec<i64> = spacing.iter().map(|s| (radius / s).ceil() as i64).collect();
    let mut out = Vec::new();
    let mut m = vec![0i64; d];
    let total: i64 = reach.iter().map(|r| 2 * r + 1).product();
    for mut k in 0..total {
        for a in 0..d {
            let w = 2 * reach[a] + 1;
            m[a] = k % w - reach[a];
            k /= w;
        }
        let v: Vec<f64> = (0..d).map(|a| coord(a, m[a])).collect();
        if v.iter().map(|c| c * c).sum::<f64>().sqrt() <= radius {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madelung_constants_of_the_square_and_simple_cubic_lattices() {
        for alpha_scale in [0.6, 1.0, 1.7] {
            let a = std::f64::consts::PI.sqrt() * alpha_scale;
            let sc = Ewald::with_alpha(&[1.0, 1.0, 1.0], a).unwrap().madelung();
            let sq = Ewald::with_alpha(&[1.0, 1.0], a).unwrap().madelung();
            assert!((sc + 2.8372974795).abs() < 1e-9, "sc {sc} at alpha {a}");
            assert!((sq + 3.9002649200).abs() < 1e-9, "square {sq} at alpha {a}");
        }
        // Scaling: xi(L) = xi(1) / L.
        let l = 3.7;
        assert!((Ewald::new(&[l, l, l]).unwrap().madelung() * l + 2.8372974795).abs() < 1e-9);
    }

    #[test]
    fn energy_is_independent_of_alpha_translation_invariant_and_forces_are_exact() {
        for lengths in [vec![2.0, 3.0], vec![2.0, 2.5, 3.0]] {
            let d = lengths.len();
            let x: Vec<f64> = (0..5 * d).map(|k| ((k * 7 % 11) as f64 * 0.37 + 0.1 * k as f64) % lengths[k % d]).collect();
            let base = Ewald::new(&lengths).unwrap();
            let (e, g) = base.energy(&x);
            for s in [0.5, 2.0] {
                let other = Ewald::with_alpha(&lengths, base.alpha * s).unwrap();
                let e2 = other.energy(&x).0;
                assert!((e - e2).abs() < 1e-11 * e.abs().max(1.0), "d = {d}: {e} vs {e2} at alpha x {s}");
            }
            // A global shift and a lattice translation of one particle change nothing.
            let shifted: Vec<f64> = x.iter().enumerate().map(|(k, v)| v + 0.3 + 0.1 * (k % d) as f64).collect();
            assert!((base.energy(&shifted).0 - e).abs() < 1e-11);
            let mut moved = x.clone();
            moved[d] += lengths[0];
            assert!((base.energy(&moved).0 - e).abs() < 1e-11);
            // Gradient against central differences.
            for k in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[k] += 1e-5;
                xm[k] -= 1e-5;
                let fd = (base.energy(&xp).0 - base.energy(&xm).0) / 2e-5;
                assert!((fd - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()), "d = {d}, coordinate {k}: {fd} vs {}", g[k]);
            }
        }
        assert!(matches!(Ewald::new(&[1.0]), Err(EwaldError::Dimension(1))));
        assert!(matches!(Ewald::new(&[1.0, -2.0]), Err(EwaldError::Length(_))));
    }
}
