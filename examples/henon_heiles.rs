//! Quantum NCT from the DSL: the Hénon–Heiles Hamiltonian declared with `hamiltonian!`, its point
//! transformation with `flow!` (`Unitary<2>`), an excited-state ensemble trained by variational
//! Monte Carlo, then a Ritz step in the span of the flow states. The reference levels come from
//! an independent Colbert–Miller sinc-DVR diagonalisation on a grid (D. T. Colbert and W. H.
//! Miller, J. Chem. Phys. 96, 1982 (1992)).
//!
//! $H = \tfrac12(p_x^2 + p_y^2) + \tfrac12(x^2 + y^2) + \lambda(x^2 y - y^3/3)$, $\lambda = 0.1118$
//! (the benchmark of M. D. Feit, J. A. Fleck and A. Steiger, J. Comput. Phys. 47, 412 (1982)).
//! The surface is unbounded beyond the saddles at $E = 1/(6\lambda^2) \approx 13.3$; the guard of
//! `QuantumNct` rejects walkers that fall through.
//!
//! `cargo run --release --example henon_heiles [-- --states 6 --ritz 21 --out runs/hh]`

use clap::Parser;
use nct::models::dvr::sinc_dvr_levels;
use nct::quantum::basis::lowest_levels;
use nct::driver::{Driver, Ensemble, Observable};
use nct::run::{exit_on_error, invalid, parse_with_defaults, PhaseProgress, RunArgs, RunError};
use nct::*;
use serde::Serialize;
use serde_json::json;

nct::hamiltonian! {
    /// Hénon–Heiles potential, unit masses and frequencies.
    pub struct HenonHeiles { lambda: f64 = 0.1118 }
    dof = 2;
    potential(q) = 0.5 * (q[0] * q[0] + q[1] * q[1]) + lambda * (q[0] * q[0] * q[1] - q[1].powi(3) / 3.0);
}

nct::flow! {
    /// Linear map, then six affine couplings.
    pub struct HenonHeilesFlow: Unitary<2> {
        lu: LinearBijector,
        nvp: RealNvp { couplings: 6, hidden: [32, 32] },
    }
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "Quantum Hénon–Heiles: NCT excited states + Ritz step vs a sinc-DVR reference (units: hbar = m = omega = 1)")]
struct Cli {
    /// Cubic coupling lambda (0 <= lambda <= 0.2).
    #[arg(long, default_value_t = 0.1118)]
    lambda: f64,
    /// States of the equal-weight training ensemble (the lowest harmonic labels).
    #[arg(long, default_value_t = 6)]
    states: usize,
    /// Ritz basis size after training (0 = off).
    #[arg(long, default_value_t = 21)]
    ritz: usize,
    /// Samples of the Ritz matrix elements.
    #[arg(long, default_value_t = 200_000)]
    ritz_samples: usize,
    /// Sinc-DVR grid points per coordinate for the reference (on [-7, 7]).
    #[arg(long, default_value_t = 40)]
    dvr_points: usize,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("steps", "3000"), ("batch", "1200"), ("lr", "0.005"), ("eval_samples", "20000")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    cli.run.validate()?;
    if !(0.0..=0.2).contains(&cli.lambda) {
        return Err(invalid("--lambda", cli.lambda, "0 <= lambda <= 0.2 (the surface is unbounded; larger couplings leave few bound levels)"));
    }
    if cli.states == 0 {
        return Err(invalid("--states", 0, "at least 1"));
    }
    if cli.ritz > 0 && cli.ritz_samples < 20 * cli.ritz {
        return Err(invalid("--ritz-samples", cli.ritz_samples, "at least 20 x --ritz"));
    }
    if !(10..=60).contains(&cli.dvr_points) {
        return Err(invalid("--dvr-points", cli.dvr_points, "10..=60 (the DVR matrix has points^2 rows)"));
    }
    let h = HenonHeiles::new().with_lambda(cli.lambda);
    let omega = Vector::from([1.0, 1.0]);
    let labels = lowest_levels(omega.as_slice(), cli.states);
    let basis = lowest_levels(omega.as_slice(), cli.ritz);
    let n_max = labels.iter().chain(&basis).flatten().copied().max().unwrap_or(0).max(1);
    let flow = HenonHeilesFlow::new(cli.run.seed);
    print!("{flow}");
    let states = QuantumNct::new(flow, omega, h.masses(), n_max);
    let objective = Ensemble::new(&states, &h, labels.clone(), Weights::Equal, cli.run.batch);
    let trained = Driver::new("henon_heiles/lu+realnvp", objective).control_flags(&["ritz", "ritz_samples", "dvr_points"]).run(&cli.run, cli)?;
    let t_dvr = std::time::Instant::now();
    let reference = sinc_dvr_levels(&h, cli.dvr_points, 7.0, cli.states.max(cli.ritz).max(10)).map_err(|e| invalid("--dvr-points", cli.dvr_points, &e.to_string()))?;
    let dvr_seconds = t_dvr.elapsed().as_secs_f64();
    let e = trained.objective.energies(&trained.theta, cli.run.eval_samples, cli.run.seed, &PhaseProgress::new(cli.run.quiet));
    println!("== Hénon–Heiles, lambda = {}: {} states, {} steps in {:.1} s; DVR {}^2 points in {dvr_seconds:.1} s", cli.lambda, labels.len(), trained.outcome.steps_done, trained.outcome.seconds, cli.dvr_points);
    println!("  {:<4} {:>12} {:>10} {:>10} {:>10} {:>12}", "n", "energy", "+-", "K", "V", "DVR");
    for (k, s) in e.iter().enumerate() {
        println!("  {:<4} {:>12.6} {:>10.2e} {:>10.5} {:>10.5} {:>12.6}", k, s.energy, s.error, s.kinetic, s.potential, reference[k]);
    }
    // Virial theorem check on the ground state: <x . grad V> = 2 <K> for an eigenstate.
    let obs = trained.objective.observe(&trained.theta, &labels[0], &[Observable::potential_of(&h), Observable::virial_of(&h)], cli.run.eval_samples, cli.run.seed);
    let mut summary = trained.summary().energies(&e).observables(&obs).insert("dvr", reference.iter().take(cli.states.max(cli.ritz)).collect::<Vec<_>>());
    if cli.ritz > 0 {
        let ritz = states.ritz_with(&trained.theta, &h, &basis, cli.ritz_samples, 20, &BatchEngine::new(32), &SeedStream::new(cli.run.seed ^ 0x5172), &PhaseProgress::new(cli.run.quiet)).map_err(|err| invalid("--ritz", cli.ritz, &err.to_string()))?;
        // Symmetry-degenerate pairs (E levels) may come out as a complex pair of S^-1 H with equal
        // real parts; max|Im| says how large the noise-induced splitting is.
        println!("  Ritz in the span of {} flow states ({} samples, {} rejected, max|Im| = {:.1e}):", basis.len(), ritz.samples, ritz.rejected, ritz.max_imaginary);
        println!("  {:<4} {:>12} {:>10} {:>12} {:>10}", "n", "energy", "+-", "DVR", "diff");
        for (k, l) in ritz.levels.iter().enumerate().take(10) {
            println!("  {:<4} {:>12.6} {:>10.2e} {:>12.6} {:>10.2e}", k, l.energy, l.error, reference[k], l.energy - reference[k]);
        }
        summary = summary.insert("ritz", json!({"energies": ritz.levels.iter().map(|l| l.energy).collect::<Vec<_>>(), "energies_err": ritz.levels.iter().map(|l| l.error).collect::<Vec<_>>(), "samples": ritz.samples, "rejected": ritz.rejected}));
    }
    summary.write()?;
    if let Some(d) = &trained.dir {
        println!("  run dir {}", d.path().display());
    }
    Ok(())
}

