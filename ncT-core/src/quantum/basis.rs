//! Product basis of harmonic-oscillator states and best-first enumeration of the lowest levels.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

/// The `m` lowest product labels $n = (n_1, \dots, n_D)$ ordered by $\sum_i n_i \omega_i$
/// (ties broken lexicographically), by best-first search from the ground state.
pub fn lowest_levels(omega: &[f64], m: usize) -> Vec<Vec<usize>> {
    #[derive(PartialEq)]
    struct Item(f64, Vec<usize>);
    impl Eq for Item {}
    impl PartialOrd for Item {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Item {
        fn cmp(&self, o: &Self) -> Ordering {
            o.0.total_cmp(&self.0).then_with(|| o.1.cmp(&self.1))
        }
    }
    if m == 0 {
        return Vec::new();
    }
    let d = omega.len();
    let mut heap = BinaryHeap::new();
    let mut seen = HashSet::new();
    heap.push(Item(0.0, vec![0; d]));
    seen.insert(vec![0; d]);
    let mut out = Vec::with_capacity(m);
    while let Some(Item(e, n)) = heap.pop() {
        out.push(n.clone());
        if out.len() == m {
            break;
        }
        for i in 0..d {
            let mut k = n.clone();
            k[i] += 1;
            if seen.insert(k.clone()) {
                heap.push(Item(e + omega[i], k));
            }
        }
    }
    out
}

/// Harmonic energy $\sum_i \omega_i (n_i + \tfrac12)$ of a label.
pub fn harmonic_energy(omega: &[f64], n: &[usize]) -> f64 {
    omega.iter().zip(n).map(|(w, &k)| w * (k as f64 + 0.5)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerates_in_energy_order() {
        let w = [1.0, 1.7, 3.1];
        let levels = lowest_levels(&w, 12);
        let e: Vec<f64> = levels.iter().map(|n| harmonic_energy(&w, n)).collect();
        assert!(e.windows(2).all(|p| p[0] <= p[1] + 1e-12), "{e:?}");
        assert_eq!(levels[0], vec![0, 0, 0]);
        assert!(lowest_levels(&w, 0).is_empty());
        assert_eq!(levels[1], vec![1, 0, 0]);
        assert_eq!(levels[2], vec![0, 1, 0]);
        assert_eq!(levels[3], vec![2, 0, 0]);
        // Brute force check of the 12 lowest.
        let mut all: Vec<(f64, Vec<usize>)> = Vec::new();
        for a in 0..8 {
            for b in 0..6 {
                for c in 0..4 {
                    all.push((harmonic_energy(&w, &[a, b, c]), vec![a, b, c]));
                }
            }
        }
        all.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (k, (ek, _)) in all.iter().take(12).enumerate() {
            assert!((ek - e[k]).abs() < 1e-12);
        }
    }
}

/// Harmonic frequencies at the origin: $\Omega^2$ = eigenvalues of $M^{-1/2} K M^{-1/2}$ with
/// $K$ the Hessian of the potential (num-dual) and $M$ the masses; sorted ascending.
pub fn harmonic_frequencies<H: crate::hamiltonian::Separable<D>, D: crate::dim::Size>(h: &H) -> Vec<f64> {
    let (_, _, k) = h.potential_hessian(&crate::dim::Vector::zeros(h.dim()));
    let m = h.masses();
    let d = m.len();
    let kw = nalgebra::DMatrix::from_fn(d, d, |i, j| k[(i, j)] / (m[i] * m[j]).sqrt());
    let mut w: Vec<f64> = kw.symmetric_eigen().eigenvalues.iter().map(|e| e.max(0.0).sqrt()).collect();
    w.sort_by(f64::total_cmp);
    w
}

/// Frequencies for ordering the labels of basis modes: the basis mode with the k-th smallest basis
/// frequency gets the k-th smallest harmonic frequency (weak couplings keep the order).
pub fn rank_matched(basis: &[f64], harmonic: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..basis.len()).collect();
    order.sort_by(|&a, &b| basis[a].total_cmp(&basis[b]));
    let mut sorted = harmonic.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut out = vec![0.0; basis.len()];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = sorted[rank];
    }
    out
}
