//! Harmonic-oscillator orbitals in d dimensions ($\hbar = m = \omega = 1$):
//! $\phi_{\mathbf n}(\mathbf r) = \prod_{a=1}^d h_{n_a}(r_a)$ with the Hermite functions $h_n$ of
//! [`crate::quantum::hermite`], energy $\epsilon = \sum_a n_a + d/2$. Orbitals are ordered by
//! shell $n = \sum_a n_a$ (degeneracy $\binom{n + d - 1}{d - 1}$), lexicographically inside a shell.
//! Derivatives are analytic: $h_n' = \sqrt{2n}\,h_{n-1} - z h_n$ and $h_n'' = (z^2 - 2n - 1) h_n$.

use crate::quantum::hermite::hermite_all;
use crate::scalar::Scalar;

/// The lowest `count` orbitals of the d-dimensional oscillator.
#[derive(Clone, Debug, PartialEq)]
pub struct HoOrbitals {
    dim: usize,
    /// Quantum numbers $(n_1..n_d)$ of each orbital.
    pub labels: Vec<Vec<usize>>,
}

/// Values, gradients and Laplacians of every orbital at one position.
#[derive(Clone, Debug, PartialEq)]
pub struct OrbitalValues {
    pub value: Vec<f64>,
    /// `grad[j * d + a]` = $\partial_a \phi_j$.
    pub grad: Vec<f64>,
    pub laplacian: Vec<f64>,
}

/// Number of orbitals in shell `n` of the d-dimensional oscillator.
pub fn shell_degeneracy(n: usize, d: usize) -> usize {
    // binomial(n + d - 1, d - 1)
    (1..d).fold(1usize, |acc, k| acc * (n + k) / k)
}

impl HoOrbitals {
    /// The orbitals of shells `0..=max_shell` in `dim` dimensions (`dim` >= 1).
    pub fn shells(dim: usize, max_shell: usize) -> Self {
        let mut labels = Vec::new();
        for n in 0..=max_shell {
            let mut shell = Vec::new();
            compositions(n, dim, &mut Vec::new(), &mut shell);
            shell.sort_by(|a: &Vec<usize>, b| b.cmp(a));
            labels.extend(shell);
        }
        HoOrbitals { dim, labels }
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Shell of orbital `j`.
    pub fn shell(&self, j: usize) -> usize {
        self.labels[j].iter().sum()
    }
    /// Energy $n + d/2$ of orbital `j`.
    pub fn energy(&self, j: usize) -> f64 {
        self.shell(j) as f64 + 0.5 * self.dim as f64
    }
    fn top(&self) -> usize {
        self.labels.iter().flatten().copied().max().unwrap_or(0)
    }

    /// Values of the orbitals `which` at position `r` (length d), for any scalar.
    pub fn values<S: Scalar>(&self, which: &[usize], r: &[S]) -> Vec<S> {
        let tables: Vec<Vec<S>> = r.iter().map(|&x| hermite_all(self.top(), x)).collect();
        which.iter().map(|&j| self.labels[j].iter().enumerate().fold(S::one(), |p, (a, &n)| p * tables[a][n])).collect()
    }

    /// Values, gradients and Laplacians of the orbitals `which` at position `r`.
    pub fn evaluate(&self, which: &[usize], r: &[f64]) -> OrbitalValues {
        let d = self.dim;
        let top = self.top();
        // Per coordinate: h_n, h_n', h_n'' for n <= top.
        let tables: Vec<[Vec<f64>; 3]> = r
            .iter()
            .map(|&x| {
                let h = hermite_all(top, x);
                let dh: Vec<f64> = (0..=top).map(|n| if n == 0 { 0.0 } else { (2.0 * n as f64).sqrt() * h[n - 1] } - x * h[n]).collect();
                let d2h: Vec<f64> = (0..=top).map(|n| (x * x - 2.0 * n as f64 - 1.0) * h[n]).collect();
                [h, dh, d2h]
            })
            .collect();
        let m = which.len();
        let (mut value, mut grad, mut laplacian) = (vec![0.0; m], vec![0.0; m * d], vec![0.0; m]);
        for (k, &j) in which.iter().enumerate() {
            let n = &self.labels[j];
            value[k] = (0..d).map(|a| tables[a][0][n[a]]).product();
            for a in 0..d {
                let others: f64 = (0..d).filter(|&b| b != a).map(|b| tables[b][0][n[b]]).product();
                grad[k * d + a] = tables[a][1][n[a]] * others;
                laplacian[k] += tables[a][2][n[a]] * others;
            }
        }
        OrbitalValues { value, grad, laplacian }
    }
}

/// All ways of writing `n` as an ordered sum of `parts` non-negative integers.
fn compositions(n: usize, parts: usize, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if parts == 1 {
        let mut v = prefix.clone();
        v.push(n);
        out.push(v);
        return;
    }
    for first in 0..=n {
        prefix.push(first);
        compositions(n - first, parts - 1, prefix, out);
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_have_the_right_degeneracies_and_energies() {
        for d in 1..=3 {
            let o = HoOrbitals::shells(d, 4);
            for n in 0..=4 {
                assert_eq!(o.labels.iter().filter(|l| l.iter().sum::<usize>() == n).count(), shell_degeneracy(n, d));
            }
            assert!((1..o.len()).all(|j| o.shell(j) >= o.shell(j - 1)));
        }
        assert_eq!((shell_degeneracy(3, 2), shell_degeneracy(3, 3)), (4, 10));
        assert_eq!(HoOrbitals::shells(2, 1).energy(2), 2.0);
    }

    #[test]
    fn derivatives_match_num_dual_and_orbitals_are_eigenfunctions() {
        use num_dual::Dual2_64;
        let o = HoOrbitals::shells(3, 3);
        let r = [0.3, -0.7, 1.1];
        let which: Vec<usize> = (0..o.len()).collect();
        let ev = o.evaluate(&which, &r);
        for (k, &j) in which.iter().enumerate() {
            let mut lap = 0.0;
            for a in 0..3 {
                // Second-order dual along coordinate a.
                let f = |x: Dual2_64| -> Dual2_64 {
                    let mut p = Dual2_64::from(1.0);
                    for (b, &n) in o.labels[j].iter().enumerate() {
                        let z = if b == a { x } else { Dual2_64::from(r[b]) };
                        p *= crate::quantum::hermite::hermite(n, z);
                    }
                    p
                };
                let v = f(Dual2_64::new(r[a], 1.0, 0.0));
                assert!((v.re - ev.value[k]).abs() < 1e-14);
                assert!((v.v1 - ev.grad[k * 3 + a]).abs() < 1e-13, "grad {j} {a}");
                lap += v.v2;
            }
            assert!((lap - ev.laplacian[k]).abs() < 1e-12, "laplacian {j}");
            // -1/2 lap + 1/2 r^2 phi = eps phi.
            let r2: f64 = r.iter().map(|x| x * x).sum();
            assert!((-0.5 * ev.laplacian[k] + 0.5 * r2 * ev.value[k] - o.energy(j) * ev.value[k]).abs() < 1e-12);
        }
    }
}
