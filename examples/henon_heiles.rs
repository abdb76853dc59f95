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
    /// Sinc-DVR grid points per coordinate for the reference (on [-7, 7]; at most 77).
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
    let checks = [(!(0.0..=0.2).contains(&cli.lambda), "--lambda", cli.lambda.to_string(), "0 <= lambda <= 0.2 (the surface is unbounded; larger couplings leave few bound levels)"), (cli.states == 0, "--states", "0".into(), "at least 1"), (cli.ritz > 0 && cli.ritz_samples < 20 * cli.ritz, "--ritz-samples", cli.ritz_samples.to_string(), "at least 20 x --ritz")];
    if let Some((_, flag, value, allowed)) = checks.into_iter().find(|c| c.0) {
        return Err(invalid(flag, value, allowed));
    }
    let h = HenonHeiles::new().with_lambda(cli.lambda);
    let reference = sinc_dvr_levels(&h, cli.dvr_points, 7.0, cli.states.max(cli.ritz).max(10)).map_err(|e| invalid("--dvr-points", cli.dvr_points, &e.to_string()))?;
    let (labels, basis) = (lowest_levels(&[1.0, 1.0], cli.states), lowest_levels(&[1.0, 1.0], cli.ritz));
    let flow = HenonHeilesFlow::new(cli.run.seed);
    print!("{flow}");
    let n_max = labels.iter().chain(&basis).flatten().copied().max().unwrap_or(0).max(1);
    let states = QuantumNct::new(flow, Vector::from([1.0, 1.0]), h.masses(), n_max);
    let trained = Driver::new("henon_heiles/lu+realnvp", Ensemble::new(&states, &h, labels.clone(), Weights::Equal, cli.run.batch)).control_flags(&["ritz", "ritz_samples", "dvr_points"]).run(&cli.run, cli)?;
    let (ensemble, theta, progress) = (&trained.objective, &trained.theta, PhaseProgress::new(cli.run.quiet));
    let e = ensemble.energies(theta, cli.run.eval_samples, cli.run.seed, &progress);
    println!("== Hénon–Heiles, lambda = {}: {} states, {} steps in {:.1} s", cli.lambda, labels.len(), trained.outcome.steps_done, trained.outcome.seconds);
    println!("  {:<4} {:>12} {:>10} {:>10} {:>10} {:>12}", "n", "energy", "+-", "K", "V", "DVR");
    for (k, s) in e.iter().enumerate() {
        println!("  {:<4} {:>12.6} {:>10.2e} {:>10.5} {:>10.5} {:>12.6}", k, s.energy, s.error, s.kinetic, s.potential, reference[k]);
    }
    // Virial theorem in the ground state: <x . grad V> = 2 <K> for an eigenstate.
    let obs = ensemble.observe(theta, &labels[0], &[Observable::potential_of(&h), Observable::virial_of(&h)], cli.run.eval_samples, cli.run.seed);
    let mut summary = trained.summary().energies(&e).observables(&obs).insert("dvr", &reference[..cli.states.max(cli.ritz)]);
    if cli.ritz > 0 {
        let t = std::time::Instant::now();
        let ritz = ensemble.ritz(theta, &basis, cli.ritz_samples, cli.run.seed, &progress).map_err(|err| invalid("--ritz", cli.ritz, &err.to_string()))?;
        // Degenerate pairs (E symmetry) may come out as a complex pair of S^-1 H; max|Im| says how large.
        println!("  Ritz in the span of {} flow states ({} samples, {} rejected, max|Im| = {:.1e}):", basis.len(), ritz.samples, ritz.rejected, ritz.max_imaginary);
        for (k, l) in ritz.levels.iter().enumerate().take(10) {
            println!("  {:<4} {:>12.6} {:>10.2e}   DVR {:>12.6} {:>10.2e}", k, l.energy, l.error, reference[k], l.energy - reference[k]);
        }
        summary = summary.ritz(&ritz, t.elapsed().as_secs_f64(), Some(&reference[..basis.len()]));
    }
    summary.write()?;
    if let Some(d) = &trained.dir {
        println!("  run dir {}", d.path().display());
    }
    Ok(())
}
