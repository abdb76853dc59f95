//! Reference dynamics in physical phase space, to check the analytic latent dynamics of a trained
//! model: Störmer-Verlet (leapfrog) integration and the phase difference of two trajectories.

use crate::dim::Size;
use crate::hamiltonian::Hamiltonian;
use crate::layer::PhasePoint;

/// Leapfrog integration of a separable $H = K(p) + V(q)$ (kick $\Delta t/2$, drift $\Delta t$,
/// kick $\Delta t/2$): the state after every `substeps` steps, `samples` of them, from `x0`.
pub fn leapfrog<H: Hamiltonian<N>, N: Size>(h: &H, x0: &PhasePoint<f64, N>, dt: f64, substeps: usize, samples: usize) -> Vec<PhasePoint<f64, N>> {
    let mut x = x0.clone();
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        for _ in 0..substeps {
            kick(h, &mut x, 0.5 * dt);
            let (_, dp) = h.gradient(&x.q, &x.p);
            x.q.iter_mut().zip(dp.iter()).for_each(|(q, v)| *q += dt * v);
            kick(h, &mut x, 0.5 * dt);
        }
        out.push(x.clone());
    }
    out
}

/// Largest difference in rad of the unwrapped phase angle $\psi = \mathrm{atan2}(-p_k/s, q_k)$ of
/// coordinate `k` between two trajectories sampled at the same times (`s` sets the momentum
/// scale; each must turn by less than $\pi$ between samples).
pub fn phase_difference<N: Size>(a: &[PhasePoint<f64, N>], b: &[PhasePoint<f64, N>], k: usize, s: f64) -> f64 {
    let unwrap = |xs: &[PhasePoint<f64, N>]| {
        let mut prev: Option<f64> = None;
        xs.iter()
            .map(|x| {
                let raw = (-x.p[k] / s).atan2(x.q[k]);
                let v = match prev {
                    None => raw,
                    Some(p) => p + (raw - p + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI,
                };
                prev = Some(v);
                v
            })
            .collect::<Vec<f64>>()
    };
    let (ua, ub) = (unwrap(a), unwrap(b));
    ua.iter().zip(&ub).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn kick<H: Hamiltonian<N>, N: Size>(h: &H, x: &mut PhasePoint<f64, N>, dt: f64) {
    let (dq, _) = h.gradient(&x.q, &x.p);
    x.p.iter_mut().zip(dq.iter()).for_each(|(p, f)| *p -= dt * f);
}
