//! The spin-polarised uniform electron gas at finite temperature by NCT, in the conventions of
//! CoulombGas (Xie, Zhang & Wang, "m* of two-dimensional electron gas: a neural canonical
//! transformation study", SciPost Phys. 14, 154 (2023), arXiv:2201.03156): lengths in r_s a_B,
//! energies in Ry / r_s^2, H = -sum_i nabla_i^2 + 2 r_s [sum_{i<j} phi_Ewald(r_ij) + N xi / 2],
//! box L = sqrt(pi N) (2D) or (4 pi N / 3)^(1/3) (3D), beta = 1 / (Theta E_F).
//!
//! rho = sum_n p_n |psi_n><psi_n| with n a set of N occupied twisted plane waves (every set within
//! --window k_B T of the lowest, a categorical model over them starting at the free-electron
//! Boltzmann law) and psi_n = Phi_n(z(x)) |det dz/dx|^1/2 through --layers exactly invertible
//! periodic backflow layers. Samples are exact (plane-wave DPP, inverse flow): no Markov chain.
//! The summary holds F, E, K, V, S (totals in Ry / r_s^2, as CoulombGas logs them), the same per
//! electron in Ry, the first-order value F0 + <V>0 (identity flow, free-electron occupations) and
//! m*/m = S / S0 (S0 the free-electron entropy of the basis).
//!
//! `cargo run --release --example electron_gas -- --particles 2 --rs 5 --theta 0.15 --out runs/ueg2`

use clap::{Parser, ValueEnum};
use nct::driver::Driver;
use nct::models::electron_gas::ElectronGas;
use nct::periodic::{EnumeratedOccupation, GasState, GasThermal, OrbitalSet, PeriodicBackflow, ThermalGas, TwistedPlaneWaves, free_electron_thermo, orbital_sets};
use nct::run::{RunError, RunArgs, exit_on_error, invalid, parse_with_defaults};
use nct::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum FlowArg {
    /// No flow: bare plane-wave determinants (only the occupations are trained).
    Identity,
    /// --layers periodic pair-backflow layers of --shells reciprocal shells each.
    Backflow,
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "NCT for the spin-polarised uniform electron gas at finite temperature (Ry / r_s^2)")]
struct Cli {
    /// Number of electrons N (2..=61).
    #[arg(long, default_value_t = 2)]
    particles: usize,
    /// Dimension (2: square box, 3: cubic box).
    #[arg(long, default_value_t = 2)]
    dim: usize,
    /// Density parameter r_s (>= 0; 0 gives free electrons).
    #[arg(long, default_value_t = 1.0)]
    rs: f64,
    /// Reduced temperature Theta = T / T_F (> 0).
    #[arg(long, default_value_t = 0.15)]
    theta: f64,
    /// Plane waves with integer |n|^2 <= emax (25: 81 orbitals in 2D).
    #[arg(long, default_value_t = 25)]
    emax: i64,
    /// Twist t of the plane waves k = 2 pi (n + t) / L, one component per dimension.
    #[arg(long, value_delimiter = ',', default_values_t = [0.25, 0.25])]
    twist: Vec<f64>,
    /// Excitation window of the orbital sets, in units of k_B T (> 0).
    #[arg(long, default_value_t = 20.0)]
    window: f64,
    /// Point transformation.
    #[arg(long, value_enum, default_value_t = FlowArg::Backflow)]
    flow: FlowArg,
    /// Backflow layers (>= 1).
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Reciprocal-vector shells of each backflow layer (1..=64).
    #[arg(long, default_value_t = 5)]
    shells: usize,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

/// Orbital sets a run may enumerate (the categorical model holds one logit per set).
const MAX_SETS: usize = 200_000;

fn main() {
    let cli: Cli = parse_with_defaults(&[("steps", "600"), ("batch", "512"), ("lr", "0.05"), ("eval_samples", "130000")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(2..=61).contains(&cli.particles) {
        return Err(invalid("--particles", cli.particles, "2..=61"));
    }
    if !(2..=3).contains(&cli.dim) {
        return Err(invalid("--dim", cli.dim, "2 or 3"));
    }
    if !(cli.rs.is_finite() && cli.rs >= 0.0) {
        return Err(invalid("--rs", cli.rs, "a finite density parameter >= 0"));
    }
    if !(cli.theta.is_finite() && cli.theta > 0.0) {
        return Err(invalid("--theta", cli.theta, "a finite reduced temperature > 0"));
    }
    if !(0..=400).contains(&cli.emax) {
        return Err(invalid("--emax", cli.emax, "0..=400"));
    }
    if cli.twist.len() != cli.dim || cli.twist.iter().any(|t| !t.is_finite()) {
        return Err(invalid("--twist", format!("{:?}", cli.twist), &format!("{} finite components separated by commas, e.g. {}", cli.dim, vec!["0.25"; cli.dim].join(","))));
    }
    if !(cli.window.is_finite() && cli.window > 0.0) {
        return Err(invalid("--window", cli.window, "a finite number of k_B T > 0"));
    }
    if cli.flow == FlowArg::Backflow && cli.layers == 0 {
        return Err(invalid("--layers", 0, "at least 1 (or --flow identity)"));
    }
    if !(1..=64).contains(&cli.shells) {
        return Err(invalid("--shells", cli.shells, "1..=64"));
    }
    if cli.run.batch < 2 {
        return Err(invalid("--batch", cli.run.batch, "at least 2 (the gradient subtracts the batch mean)"));
    }
    // Sizes that cannot fit are refused up front, with the estimate.
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let budget = 8.0 * (1u64 << 30) as f64;
    let per_walker = (cli.particles * cli.dim * 16 + cli.particles * 8 + 192) as f64;
    for (flag, walkers) in [("--batch", cli.run.batch), ("--eval-samples", cli.run.eval_samples)] {
        if walkers as f64 * per_walker > budget {
            return Err(invalid(flag, format!("{walkers} walkers = {:.1} GiB", gib(walkers as f64 * per_walker)), &format!("settings needing at most {:.0} GiB of memory", gib(budget))));
        }
    }
    if cli.flow == FlowArg::Identity {
        nct::run::warn_ignored(&["--layers", "--shells"], "with --flow identity");
    }
    let gas = ElectronGas::new(cli.particles, cli.dim, cli.rs).map_err(|e| invalid("--particles/--dim/--rs", format!("{}/{}/{}", cli.particles, cli.dim, cli.rs), &e.to_string()))?;
    let orbitals = gas.orbitals(&cli.twist, cli.emax).map_err(|e| invalid("--twist/--emax", format!("{:?}/{}", cli.twist, cli.emax), &e.to_string()))?;
    if orbitals.len() < cli.particles {
        return Err(invalid("--emax", cli.emax, &format!("a basis of at least --particles = {} plane waves ({} here)", cli.particles, orbitals.len())));
    }
    let beta = gas.beta(cli.theta);
    let sets = orbital_sets(&orbitals.energies(), cli.particles, cli.window / beta, MAX_SETS)
        .map_err(|_| invalid("--window", cli.window, &format!("a window holding at most {MAX_SETS} orbital sets (one logit each); narrow it or lower --particles")))?;
    let layer = PeriodicBackflow::new(cli.particles, &vec![gas.side(); cli.dim], cli.shells).map_err(|e| invalid("--shells", cli.shells, &e.to_string()))?;
    match cli.flow {
        FlowArg::Identity => solve(cli, &gas, orbitals, sets, IdentityFlow::new(Dyn(cli.particles * cli.dim))),
        FlowArg::Backflow => solve(cli, &gas, orbitals, sets, Stack::new(vec![layer; cli.layers])),
    }
}

/// Trains the flow `flow` with the occupations over `sets` and writes the summary.
fn solve<B: Bijector<Dyn>>(cli: &Cli, gas: &ElectronGas, orbitals: TwistedPlaneWaves, sets: Vec<OrbitalSet>, flow: B) -> Result<(), RunError> {
    let beta = gas.beta(cli.theta);
    let state = GasState::new(flow, orbitals.clone(), cli.particles).map_err(|e| invalid("--particles", cli.particles, &e.to_string()))?;
    let model = ThermalGas::new(state, EnumeratedOccupation::new(sets, beta));
    let name = format!("electron_gas/N{}-d{}-rs{}-theta{}/{:?}", cli.particles, cli.dim, cli.rs, cli.theta, cli.flow).to_lowercase();

    let first = GasThermal::new(&model, gas, cli.run.batch).stratified_estimate(&vec![0.0; model.n_params()], cli.run.eval_samples, cli.run.seed ^ 0xf0)?.thermal;
    let trained = Driver::new(&name, GasThermal::new(&model, gas, cli.run.batch)).run(&cli.run, cli)?;
    let est = trained.objective.stratified_estimate(&trained.theta, cli.run.eval_samples, cli.run.seed)?;
    let t = &est.thermal;
    let free = free_electron_thermo(&orbitals, cli.particles, beta);
    let (n, rs2) = (cli.particles as f64, cli.rs * cli.rs);
    // Per electron in Ry (undefined at r_s = 0, where the Ry / r_s^2 unit is the only one).
    let per = |v: f64| (cli.rs > 0.0).then(|| v / (n * rs2));
    println!(
        "== UEG N = {}, d = {}, r_s = {}, Theta = {} ({} orbitals, {} sets): F = {:.5} +- {:.5}, E = {:.5} +- {:.5} (K = {:.5}, V = {:.5}), S = {:.4} (Ry / r_s^2, totals); first order F0 + <V>0 = {:.5} +- {:.5}; free F0 = {:.5}, S0 = {:.4}; m*/m = S/S0 = {:.4}",
        cli.particles,
        cli.dim,
        cli.rs,
        cli.theta,
        orbitals.len(),
        model.occupation.sets.len(),
        t.f.0,
        t.f.1,
        t.e.0,
        t.e.1,
        t.k.0,
        t.v.0,
        t.s,
        first.f.0,
        first.f.1,
        free.f,
        free.s,
        t.s / free.s
    );
    if let (Some(f), Some(e)) = (per(t.f.0), per(t.e.0)) {
        println!("   per electron: F/N = {f:.6} Ry, E/N = {e:.6} Ry");
    }
    trained.loss_plot("Free-energy estimate per step", "Ry / r_s^2", Some(("first order F0 + <V>0", first.f.0)))?;
    trained
        .summary()
        .thermal(t)
        .insert("E_imag", est.e_imag.0)
        .insert("E_imag_err", est.e_imag.1)
        .insert("F_per_electron_Ry", per(t.f.0))
        .insert("F_err_per_electron_Ry", per(t.f.1))
        .insert("E_per_electron_Ry", per(t.e.0))
        .insert("E_err_per_electron_Ry", per(t.e.1))
        .insert("K_per_electron_Ry", per(t.k.0))
        .insert("V_per_electron_Ry", per(t.v.0))
        .insert("S_per_electron", t.s / n)
        .insert("m_star_over_m", t.s / free.s)
        .insert("F_first_order", first.f.0)
        .insert("F_first_order_err", first.f.1)
        .insert("F_free", free.f)
        .insert("E_free", free.e)
        .insert("S_free", free.s)
        .insert("beta", beta)
        .insert("box_side", gas.side())
        .insert("orbitals", orbitals.len())
        .insert("orbital_sets", model.occupation.sets.len())
        .require_finite("F")?
        .write()?;
    Ok(())
}
