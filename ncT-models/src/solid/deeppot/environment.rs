//! Neighbour environments: the switch function, the normalised environment rows, the kept pairs
//! with their pull-back to pair vectors, and the fixed image set of a box.

use nct::Scalar;

/// A descriptor's neighbour rules: cutoffs, slots and the slot statistics.
#[derive(Clone, Debug)]
pub(super) struct Environment {
    pub(super) rcut: f64,
    pub(super) rcut_smth: f64,
    pub(super) sel: usize,
    /// Per slot and column: mean and standard deviation (sel × 4).
    pub(super) mean: Vec<f64>,
    pub(super) std: Vec<f64>,
}

impl Environment {
    /// Switch $s(r)$ and $ds/dr$.
    pub(super) fn switch<D: Scalar>(&self, r: D) -> (D, D) {
        if r.re() < self.rcut_smth {
            return (D::one(), D::zero());
        }
        let w = self.rcut - self.rcut_smth;
        let u = (r - self.rcut_smth) / w;
        let u2 = u * u;
        let s = u2 * u * (u * (u * -6.0 + 15.0) - 10.0) + 1.0;
        let one_m = -u + 1.0;
        let ds = u2 * one_m * one_m * (-30.0 / w);
        (s, ds)
    }
    /// Normalised row $\hat e_k$ of slot `k` from the pair.
    pub(super) fn row<D: Scalar>(&self, k: usize, p: &Pair<D>) -> [D; 4] {
        let inv2 = (p.r * p.r).recip();
        let e = [p.s / p.r, p.s * p.v[0] * inv2, p.s * p.v[1] * inv2, p.s * p.v[2] * inv2];
        std::array::from_fn(|c| (e[c] - self.mean[4 * k + c]) / self.std[4 * k + c])
    }
}

/// One kept neighbour pair: the vector $\vec r = R_i - R_j - m\circ L$, its length, the switch and
/// its derivative.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pair<D> {
    pub(super) j: usize,
    pub(super) v: [D; 3],
    pub(super) r: D,
    pub(super) s: D,
    pub(super) ds: D,
}

impl<D: Scalar> Pair<D> {
    /// $\partial E/\partial\vec r$ from the cotangent $\bar e$ of the (unnormalised) row $e$:
    /// $\hat r[\bar e_0(s'/r - s/r^2) + (\bar e_v\cdot\vec r)(s'/r^2 - 2s/r^3)] + \bar e_v\,s/r^2$.
    pub(super) fn pull_back(&self, ebar: [D; 4]) -> [D; 3] {
        let (r, s, ds) = (self.r, self.s, self.ds);
        let ir = r.recip();
        let ir2 = ir * ir;
        let ev_dot = ebar[1] * self.v[0] + ebar[2] * self.v[1] + ebar[3] * self.v[2];
        let radial = (ebar[0] * (ds * ir - s * ir2) + ev_dot * (ds * ir2 - s * ir2 * ir * 2.0)) * ir;
        std::array::from_fn(|b| self.v[b] * radial + ebar[b + 1] * s * ir2)
    }
}

/// The image triples $m$ of a box, fixed at construction as in the reference: for each
/// descriptor $n_k = \lceil (r_c + 10^{-5})/L^0_k\rceil$ and $m \in [-n, n]^3$, sorted by $|m|$.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodicImages {
    pub(super) triples: Vec<[i32; 3]>,
    /// Whether each triple belongs to the two-body and the three-body descriptor's set.
    pub(super) in_two: Vec<bool>,
    pub(super) in_three: Vec<bool>,
}

pub(super) fn image_counts(rcut: f64, lengths: [f64; 3]) -> [i32; 3] {
    std::array::from_fn(|k| ((rcut + 1e-5) / lengths[k]).ceil() as i32)
}
