//! Fermions (and bosons) in a harmonic trap: fermionic NCT (Xie, Zhang & Wang,
//! "Ab-initio study of interacting fermions at finite temperature with neural canonical
//! transformation", J. Mach. Learn. 1, 38 (2022), arXiv:2105.08644).
//!
//! * [`orbitals`]: d-dimensional harmonic-oscillator orbitals with analytic gradients and
//!   Laplacians, ordered by shell.
//! * [`slater`](mod@slater): Slater determinants $\Phi(r_1..r_N) = \det[\phi_j(r_i)]$: $\ln|\Phi|$, its sign, and
//!   the gradient and Laplacian of $\ln|\Phi|$ from the inverse matrix in $O(N^3 + N^2 d)$.
//! * [`states`]: the many-body states (sets of occupied orbitals, spin-polarised or N↑ + N↓)
//!   within an excitation window ΔE of the ground state.
//! * [`backflow`]: FermiFlow's permutation-equivariant backflow, as residual layers and as a
//!   continuous flow, with exact inverses and log-determinants; [`radial`]: a one-body radial flow.
//! * [`state`]: $\psi_n = \Phi_n(z(x))|\det\partial z/\partial x|^{1/2}$, exact samples, local energies
//!   and gradients; the ground-state objective.
//! * [`metropolis`]: Metropolis on any amplitude, the cross-check of the exact sampler.
//! * [`dpp`]: exact sampling of $|\Phi|^2/N!$ (a projection determinantal point process), no MCMC.
//! * [`local`]: local energies of Slater states from the analytic derivatives.
//! * [`thermal`]: finite temperature, flow and occupations trained on the free energy.
//! * [`free`]: exact thermodynamics of non-interacting fermions in the trap (the canonical
//!   recursion, untruncated and truncated to a ΔE space): the reference of every finite-temperature
//!   run at zero coupling.

pub mod backflow;
pub mod dpp;
pub mod free;
pub(crate) mod gradient_map;
pub mod local;
pub mod metropolis;
pub mod orbitals;
pub mod radial;
pub mod slater;
pub mod state;
pub mod states;
pub mod thermal;

pub use backflow::{ContinuousBackflow, PairBackflow};
pub use dpp::DppSampler;
pub use free::{FreeFermions, Thermo, levels_thermo, ln_z_levels};
pub use local::{local_kinetic, trap_potential};
pub use metropolis::SlaterMetropolis;
pub use orbitals::HoOrbitals;
pub use radial::RadialScaling;
pub use slater::{SlaterError, SlaterEval, slater};
pub use state::{FermiLaplacian, FermiState, GroundState, Statistics};
pub use states::{ManyBodyState, count_states, enumerate_states};
pub use thermal::{FermiThermal, ThermalFermions};
