//! Classical model Hamiltonians, declared with `hamiltonian!` (unit masses unless stated).

use nct_macros::{flow, hamiltonian};

hamiltonian! {
    /// One-dimensional harmonic oscillator $H = p^2/2 + \omega_0^2 q^2 / 2$.
    pub struct HarmonicOscillator { omega0: f64 = 1.0 }
    dof = 1;
    potential(q) = 0.5 * omega0 * omega0 * q[0] * q[0];
}

impl HarmonicOscillator {
    /// Exact classical free energy $F = -\beta^{-1}\ln(2\pi / (\beta\omega_0))$.
    pub fn free_energy(&self, beta: f64) -> f64 {
        -(2.0 * std::f64::consts::PI / (beta * self.omega0)).ln() / beta
    }
}

hamiltonian! {
    /// Harmonic chain with fixed ends, $V = \tfrac{\kappa}{2}\sum_{i=0}^{N} (q_{i+1} - q_i)^2$ with
    /// $q_0 = q_{N+1} = 0$, unit masses. Normal modes $\omega_k = 2\sqrt\kappa \sin(k\pi / (2(N+1)))$.
    pub struct HarmonicChain<const N: usize> { kappa: f64 = 1.0 }
    potential(q) = 0.5 * kappa * (q[0] * q[0] + q[N - 1] * q[N - 1] + sum(i in 0..N - 1) (q[i + 1] - q[i]).powi(2));
}

impl<const N: usize> HarmonicChain<N> {
    /// Normal-mode frequencies, ascending.
    pub fn frequencies(&self) -> Vec<f64> {
        chain_frequencies(N, self.kappa)
    }
    /// Normal mode $k$ (1-based), normalised: $u_i \propto \sin(i k \pi / (N+1))$.
    pub fn mode(&self, k: usize) -> Vec<f64> {
        chain_mode(N, k)
    }
    /// Exact classical free energy at inverse temperature $\beta$:
    /// $F = -\beta^{-1} \sum_k \ln(2\pi/(\beta\omega_k))$.
    pub fn free_energy(&self, beta: f64) -> f64 {
        classical_harmonic_free_energy(&self.frequencies(), beta)
    }
}

hamiltonian! {
    /// [`HarmonicChain`] with the number of sites `n` chosen at run time (from data or the
    /// command line): the same potential, dimension [`Dyn`](nct::Dyn).
    pub struct DynHarmonicChain { n: usize = 8, kappa: f64 = 1.0 }
    dof = n;
    potential(q) = 0.5 * kappa * (q[0] * q[0] + q[n - 1] * q[n - 1] + sum(i in 0..n - 1) (q[i + 1] - q[i]).powi(2));
}

impl DynHarmonicChain {
    /// Normal-mode frequencies, ascending.
    pub fn frequencies(&self) -> Vec<f64> {
        chain_frequencies(self.n, self.kappa)
    }
    /// Normal mode $k$ (1-based), normalised.
    pub fn mode(&self, k: usize) -> Vec<f64> {
        chain_mode(self.n, k)
    }
    /// Exact classical free energy at inverse temperature $\beta$.
    pub fn free_energy(&self, beta: f64) -> f64 {
        classical_harmonic_free_energy(&self.frequencies(), beta)
    }
}

/// Normal-mode frequencies of the fixed-end chain of `n` sites, $\omega_k = 2\sqrt\kappa\sin(k\pi/(2(n+1)))$.
pub fn chain_frequencies(n: usize, kappa: f64) -> Vec<f64> {
    (1..=n).map(|k| 2.0 * kappa.sqrt() * (k as f64 * std::f64::consts::PI / (2.0 * (n as f64 + 1.0))).sin()).collect()
}

/// Normal mode $k$ (1-based) of the chain of `n` sites, normalised: $u_i \propto \sin(i k \pi / (n+1))$.
pub fn chain_mode(n: usize, k: usize) -> Vec<f64> {
    let v: Vec<f64> = (1..=n).map(|i| (i as f64 * k as f64 * std::f64::consts::PI / (n as f64 + 1.0)).sin()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// Classical free energy of independent oscillators, $F = -\beta^{-1}\sum_k \ln(2\pi/(\beta\omega_k))$.
pub fn classical_harmonic_free_energy(omega: &[f64], beta: f64) -> f64 {
    -omega.iter().map(|w| (2.0 * std::f64::consts::PI / (beta * w)).ln()).sum::<f64>() / beta
}

hamiltonian! {
    /// Particle on a noisy ring, $H = (|q| - R)^2 / s + |p|^2/2$ in two dimensions
    /// (the "ring" benchmark of Li, Dong, Zhang & Wang, PRX 10, 021020 (2020), with $R = 2$, $s = 0.32$).
    pub struct Ring2d { radius: f64 = 2.0, width: f64 = 0.32 }
    dof = 2;
    potential(q) = ((q[0] * q[0] + q[1] * q[1]).sqrt() - radius).powi(2) / width;
}

hamiltonian! {
    /// One-dimensional quartic oscillator $H = p^2/2 + \omega_0^2 q^2/2 + \lambda q^4$ (unit mass):
    /// no two orbits have the same frequency, the simplest system no harmonic latent represents.
    pub struct QuarticOscillator { omega0: f64 = 1.0, lambda: f64 = 0.1 }
    dof = 1;
    potential(q) = 0.5 * omega0 * omega0 * q[0] * q[0] + lambda * q[0].powi(4);
}

impl QuarticOscillator {
    /// Exact classical free energy $F = -\beta^{-1}\ln\big(\sqrt{2\pi/\beta}\int e^{-\beta V(q)}dq\big)$
    /// (Gauss-Legendre panels over $|q| \le q_{max}$, $\beta V(q_{max}) = 80$; $\lambda \ge 0$).
    pub fn free_energy(&self, beta: f64) -> f64 {
        let v = |q: f64| 0.5 * self.omega0 * self.omega0 * q * q + self.lambda * q.powi(4);
        let mut qmax = 1.0;
        while beta * v(qmax) < 80.0 {
            qmax *= 1.5;
        }
        let half = nct::latent::quadrature::integrate(|q| (-beta * v(q)).exp(), 0.0, qmax, 400);
        -((2.0 * std::f64::consts::PI / beta).sqrt() * 2.0 * half).ln() / beta
    }
}

flow! {
    /// A flow for one degree of freedom: four kick-drift pairs with their own generator networks
    /// ($p \mathrel{+}= V_i'(q)$, $q \mathrel{+}= K_i'(p)$, 2x32 tanh each), then a linear symplectic
    /// map. The flow of the `quartic` example and of its tests.
    pub struct OneDofFlow: Symplectic<1> {
        k1: Kick { hidden: [32, 32] }, d1: Drift { hidden: [32, 32] },
        k2: Kick { hidden: [32, 32] }, d2: Drift { hidden: [32, 32] },
        k3: Kick { hidden: [32, 32] }, d3: Drift { hidden: [32, 32] },
        k4: Kick { hidden: [32, 32] }, d4: Drift { hidden: [32, 32] },
        mix: LinearSymplectic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nct::{Const, Dyn, Hamiltonian, Separable, Vector};
    type SVector<T, const N: usize> = Vector<T, Const<N>>;

    #[test]
    fn chain_forces_equal_hand_derived() {
        let h = HarmonicChain::<5>::new().with_kappa(1.7);
        let q = SVector::<f64, 5>::from([0.3, -0.8, 1.1, 0.05, -0.4]);
        let p = SVector::<f64, 5>::from([0.2, 0.1, -0.3, 0.9, -1.0]);
        let f = h.forces(&q, &p);
        for i in 0..5 {
            let left = if i == 0 { 0.0 } else { q[i - 1] };
            let right = if i == 4 { 0.0 } else { q[i + 1] };
            let exact = -1.7 * (2.0 * q[i] - left - right);
            assert!((f[i] - exact).abs() < 1e-14, "F_{i}: {} vs {exact}", f[i]);
        }
        let (qdot, pdot) = h.equations_of_motion(&q, &p);
        for i in 0..5 {
            assert!((qdot[i] - p[i]).abs() < 1e-15 && (pdot[i] - f[i]).abs() < 1e-15);
        }
        // The runtime-size chain is the same model.
        let hd = DynHarmonicChain::new().with_n(5).with_kappa(1.7);
        let (qd, pd) = (q.resize::<Dyn>().unwrap(), p.resize::<Dyn>().unwrap());
        assert_eq!(hd.forces(&qd, &pd).as_slice(), f.as_slice());
        assert_eq!(hd.hessian(&qd, &pd), h.hessian(&q, &p));
        assert_eq!(hd.energy(&qd, &pd), h.energy(&q, &p));
        // Hessian: the tridiagonal stiffness matrix and the identity mass block.
        let hess = h.hessian(&q, &p);
        for i in 0..5usize {
            for j in 0..5usize {
                let k = if i == j { 2.0 * 1.7 } else if i.abs_diff(j) == 1 { -1.7 } else { 0.0 };
                assert!((hess[(i, j)] - k).abs() < 1e-13);
                assert!((hess[(5 + i, 5 + j)] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-13);
                assert!(hess[(i, 5 + j)].abs() < 1e-13 && hess[(5 + j, i)].abs() < 1e-13);
            }
        }
    }

    #[test]
    fn chain_frequencies_are_hessian_eigenvalues() {
        let h = HarmonicChain::<6>::new().with_kappa(2.0);
        let hess = h.hessian(&SVector::zeros(Const), &SVector::zeros(Const));
        let k = hess.view((0, 0), (6, 6)).into_owned();
        let mut ev: Vec<f64> = k.symmetric_eigen().eigenvalues.iter().map(|e| e.sqrt()).collect();
        ev.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (a, b) in ev.iter().zip(h.frequencies()) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn chain_free_energy_matches_closed_form() {
        // F = -(n ln 2pi - 1/2 ln(n+1) - n/2 ln kappa) at beta = 1 (product of frequencies = (n+1) kappa^n).
        let n = 8.0;
        let h = HarmonicChain::<8>::new();
        let closed = -(n * (2.0 * std::f64::consts::PI).ln() - 0.5 * (n + 1.0f64).ln());
        assert!((h.free_energy(1.0) - closed).abs() < 1e-12);
        assert!((closed - (-13.604404)).abs() < 1e-6);
    }

    #[test]
    fn ring_potential_gradient_is_radial() {
        let r = Ring2d::new();
        let q = SVector::<f64, 2>::from([1.2, -0.7]);
        let (_, g) = r.potential_gradient(&q);
        let rr = q.norm();
        let exact = q * (2.0 * (rr - 2.0) / 0.32 / rr);
        for i in 0..2 {
            assert!((g[i] - exact[i]).abs() < 1e-13);
        }
    }

    #[test]
    fn quartic_free_energy_matches_the_harmonic_limit_and_simpson() {
        let h = QuarticOscillator::new().with_lambda(0.0).with_omega0(1.3);
        assert!((h.free_energy(0.7) - HarmonicOscillator::new().with_omega0(1.3).free_energy(0.7)).abs() < 1e-13);
        let h = QuarticOscillator::new().with_lambda(0.5);
        let n = 200_000;
        let dq = 12.0 / n as f64;
        let f = |q: f64| (-(0.5 * q * q + 0.5 * q.powi(4))).exp();
        let simpson: f64 = (0..=n).map(|i| f(-6.0 + i as f64 * dq) * if i == 0 || i == n { 1.0 } else if i % 2 == 1 { 4.0 } else { 2.0 }).sum::<f64>() * dq / 3.0;
        let exact = -((2.0 * std::f64::consts::PI).sqrt() * simpson).ln();
        assert!((h.free_energy(1.0) - exact).abs() < 1e-12, "{} vs {exact}", h.free_energy(1.0));
    }

    #[test]
    fn oscillator_energy() {
        let o = HarmonicOscillator::new().with_omega0(2.0);
        let e: f64 = o.energy(&SVector::<f64, 1>::from([0.5]), &SVector::<f64, 1>::from([0.3]));
        assert!((e - (0.045 + 0.5)).abs() < 1e-15);
    }
}
