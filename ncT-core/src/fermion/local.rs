//! Local energy of Slater states of $N_\uparrow + N_\downarrow$ fermions,
//! $\Psi = \Phi_\uparrow(r_1..r_{N_\uparrow})\,\Phi_\downarrow(r_{N_\uparrow+1}..r_N)$:
//! $$ E_{loc} = -\tfrac12\sum_i \left(\nabla_i^2\ln|\Psi| + |\nabla_i\ln|\Psi||^2\right) + V(r), $$
//! from the analytic derivatives of [`super::slater`](mod@super::slater). For non-interacting fermions in the trap
//! ($V = \tfrac12\sum_i r_i^2$) every Slater state is an eigenstate, so $E_{loc}$ equals its energy
//! at every configuration (the zero-variance check of the machinery).

use super::orbitals::HoOrbitals;
use super::slater::{SlaterError, slater};
use super::states::ManyBodyState;

/// Kinetic part $-\tfrac12\sum_i(\nabla_i^2\ln|\Psi| + |\nabla_i\ln|\Psi||^2)$ of the local energy of
/// `state` at `x` (spin-up particles first).
pub fn local_kinetic(orbitals: &HoOrbitals, state: &ManyBodyState, x: &[f64]) -> Result<f64, SlaterError> {
    let d = orbitals.dim();
    let nu = state.up.len();
    let mut k = 0.0;
    for (occ, part) in [(&state.up, &x[..nu * d]), (&state.down, &x[nu * d..])] {
        if occ.is_empty() {
            continue;
        }
        let s = slater(orbitals, occ, part)?;
        k += -0.5 * (s.laplacian + s.grad.iter().map(|g| g * g).sum::<f64>());
    }
    Ok(k)
}

/// $\tfrac12\sum_i r_i^2$: the isotropic trap, $\omega = 1$.
pub fn trap_potential(x: &[f64]) -> f64 {
    0.5 * x.iter().map(|v| v * v).sum::<f64>()
}
