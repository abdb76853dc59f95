//! Quantum NCT for vibrations: excited states (T = 0 ensembles) and finite temperature.
//!
//! States psi_n(x) = phi_n(f(x)) |det df/dx|^1/2 with f = (linear LU map, then RealNVP), Hermite
//! product basis, exact sampling, exact Laplacian. Molecules use quartic force fields
//! (dimensionless normal coordinates, energies in cm^-1): the four that ship with nct-models
//! (`--system h2o|h2co|ch3cn|c2h4o`) or any file in the same JSON schema (`--force-field FILE`,
//! any number of modes).
//!
//! `cargo run --release --example vibrational -- --system h2o --states 10 --weights decreasing --out runs/h2o`
//! `cargo run --release --example vibrational -- --system ndco --dim 8 --states 5 --couplings 0`
//! `cargo run --release --example vibrational -- --system ndco --dim 8 --states 1 --temperature 1 --occupation psa`

use clap::{Parser, ValueEnum};
use nct::models::vibrational::{HarmonicModes, Ndco, QuarticForceField, harmonic_free_energy, ndco_normal_frequencies};
use nct::quantum::basis::{harmonic_energy, harmonic_frequencies, lowest_levels, rank_matched};
use nct::run::plot::{level_plot, loss_plot};
use nct::driver::objective::rejected_message;
use nct::driver::summary::ritz_json;
use nct::driver::{Driver, Ensemble, Thermal};
use nct::run::{exit_on_error, NetArgs, PhaseProgress, RunArgs, RunDir, RunError, invalid, parse_with_defaults};
use nct::*;
use nct::quantum::metropolis::Metropolis;
use nct::quantum::too_many_rejected;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

nct::flow! {
    /// Linear LU map, then a RealNVP (couplings and widths from the command line).
    pub struct VibFlow: Unitary<Dyn> { lu: LinearBijector, nvp: RealNvp { masks: halves } }
}

nct::flow! {
    /// The linear LU map alone (`--couplings 0`).
    pub struct LinearFlow: Unitary<Dyn> { lu: LinearBijector }
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum WeightsArg {
    Equal,
    Decreasing,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum Occupation {
    /// Independent categorical distribution per mode (product-state ansatz).
    Psa,
    /// Autoregressive (one-layer VAN) distribution over modes.
    Van,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum LaplacianArg {
    /// Exact, forward-Laplacian jet (one pass).
    Jet,
    /// Exact, one directional Dual2 pass per coordinate.
    Dual2,
    /// Hutchinson trace estimator (--probes Rademacher vectors), exact gradient.
    Hutchinson,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum Sampler {
    /// Independent samples through the inverse flow.
    Exact,
    /// Random-walk Metropolis (256 persistent walkers, adaptive step, blocking errors).
    Metropolis,
}

/// Flags of the final evaluation: they may change when a finished run is resumed to re-evaluate.
const EVAL_FLAGS: &[&str] = &["ritz", "ritz_samples", "sampler"];

#[derive(Parser, Serialize, Debug)]
#[command(about = "Quantum NCT for vibrational spectra (molecules: cm^-1 and kelvin; model systems: model units)")]
struct Cli {
    /// harmonic | ndco | h2o | h2co | ch3cn | c2h4o (molecules ship with the crate) | path to a
    /// force-field JSON file (same as --force-field).
    #[arg(long, default_value = "ndco")]
    system: String,
    /// A quartic force field in the JSON schema of ncT-models/data/vibrational (any number of
    /// modes); overrides --system.
    #[arg(long)]
    force_field: Option<PathBuf>,
    /// Degrees of freedom for harmonic / ndco (any D >= 1; >= 2 with couplings).
    #[arg(long, default_value_t = 4)]
    dim: usize,
    /// NDCO coupling a (|a| < 1 keeps it bound).
    #[arg(long, default_value_t = 0.1)]
    coupling: f64,
    /// Number of states M in the T = 0 ensemble (the M lowest harmonic labels).
    #[arg(long, default_value_t = 1)]
    states: usize,
    /// Ensemble weights: equal (trace of the lowest subspace) or decreasing (ordered levels).
    #[arg(long, value_enum, default_value_t = WeightsArg::Decreasing)]
    weights: WeightsArg,
    /// Temperature (> 0): kelvin for molecules, energy units for model systems. Omit for T = 0.
    #[arg(long)]
    temperature: Option<f64>,
    /// Occupation model at finite temperature.
    #[arg(long, value_enum, default_value_t = Occupation::Psa)]
    occupation: Occupation,
    /// Hidden tanh width of each VAN conditional (0: one-layer VAN).
    #[arg(long, default_value_t = 0)]
    van_hidden: usize,
    /// Levels per mode of the occupation model and of the sampler tables.
    #[arg(long, default_value_t = 8)]
    levels: usize,
    /// Laplacian of the local energy.
    #[arg(long, value_enum, default_value_t = LaplacianArg::Jet)]
    laplacian: LaplacianArg,
    /// Rademacher probes per walker for --laplacian hutchinson (>= 1).
    #[arg(long, default_value_t = 4)]
    probes: usize,
    /// Sampler of the final per-state energies (training always samples exactly).
    #[arg(long, value_enum, default_value_t = Sampler::Exact)]
    sampler: Sampler,
    /// Ritz basis size K after training (0 = off): diagonalise H in the span of the K lowest
    /// flow-transformed states (T = 0 only).
    #[arg(long, default_value_t = 0)]
    ritz: usize,
    /// Samples of the Ritz matrix elements (>= 20 x K; jackknife over 20 blocks).
    #[arg(long, default_value_t = 100_000)]
    ritz_samples: usize,
    #[command(flatten)]
    #[serde(flatten)]
    net: NetArgs,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

/// Boltzmann constant in cm^-1 / K.
const K_B_CM: f64 = 0.695_034_800;

fn main() {
    let cli: Cli = parse_with_defaults(&[("couplings", "4"), ("hidden", "64,64"), ("steps", "500"), ("batch", "512"), ("lr", "0.003"), ("eval_samples", "8000")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if cli.states == 0 {
        return Err(invalid("--states", 0, "at least 1"));
    }
    if let Some(t) = cli.temperature {
        if !(t.is_finite() && t > 0.0) {
            return Err(invalid("--temperature", t, "a temperature > 0 (omit the flag for T = 0)"));
        }
    }
    if cli.probes == 0 {
        return Err(invalid("--probes", 0, "at least 1"));
    }
    if cli.ritz > 0 && cli.ritz_samples < 20 * cli.ritz {
        return Err(invalid("--ritz-samples", cli.ritz_samples, "at least 20 x --ritz (20 jackknife blocks of one sample per state)"));
    }
    if cli.ritz > 0 && cli.temperature.is_some() {
        return Err(invalid("--ritz", cli.ritz, "0 at finite temperature (the Ritz step is for T = 0 spectra)"));
    }
    if cli.levels < 2 {
        return Err(invalid("--levels", cli.levels, "at least 2"));
    }
    if cli.temperature.is_none() && cli.run.batch < 2 * cli.states {
        return Err(invalid("--batch", cli.run.batch, &format!("at least 2 x --states = {} (each state needs two walkers for its baseline, or its gradient is zero)", 2 * cli.states)));
    }
    if cli.temperature.is_none() {
        nct::run::warn_ignored(&["--occupation", "--van-hidden", "--levels"], "without --temperature (T = 0 trains the --states lowest states)");
    } else {
        nct::run::warn_ignored(&["--states", "--weights"], "with --temperature (the occupation model chooses the states)");
    }
    if cli.occupation == Occupation::Psa {
        nct::run::warn_ignored(&["--van-hidden"], "with --occupation psa");
    }
    if cli.force_field.is_some() || !["harmonic", "ndco"].contains(&cli.system.as_str()) {
        nct::run::warn_ignored(&["--dim", "--coupling"], "for a force field (its modes come from the file)");
    }
    if cli.net.couplings == 0 {
        nct::run::warn_ignored(&["--hidden"], "with --couplings 0 (linear map only)");
    }
    // Loader errors name the file and the field themselves.
    let data_err = |e: nct::models::data::DataError| RunError::Input(e.to_string());
    let ff = match (&cli.force_field, cli.system.as_str()) {
        (Some(p), _) => Some(QuarticForceField::<Dyn>::load(p).map_err(data_err)?),
        (None, "harmonic" | "ndco") => None,
        (None, name @ ("h2o" | "h2co" | "ch3cn" | "c2h4o")) => Some(QuarticForceField::builtin(name).map_err(data_err)?),
        (None, path) => Some(QuarticForceField::<Dyn>::load(std::path::Path::new(path)).map_err(data_err)?),
    };
    let d = ff.as_ref().map_or(cli.dim, |f| f.omega.len());
    if d == 0 || (d < 2 && cli.net.couplings > 0) {
        return Err(invalid(if ff.is_some() { "n_modes" } else { "--dim" }, d, "at least 1 mode (at least 2 with --couplings > 0, whose couplings split the coordinates)"));
    }
    system(cli, ff, Dyn(d))
}

/// Energy unit of the plots: cm^-1 for molecules (k_B in cm^-1/K), model units otherwise.
fn energy_unit(kb: f64) -> &'static str {
    if kb == K_B_CM { "cm^-1" } else { "model units" }
}

/// Reference energies: exact for harmonic and NDCO; literature / VCI values from the data README.
fn reference(system: &str, d: usize, cli: &Cli, labels: &[Vec<usize>]) -> Option<Vec<f64>> {
    match system {
        "ndco" => {
            let w = ndco_normal_frequencies(d, cli.coupling);
            let mut e: Vec<f64> = lowest_levels(&w, labels.len()).iter().map(|n| harmonic_energy(&w, n)).collect();
            e.sort_by(f64::total_cmp);
            Some(e)
        }
        "h2o" => {
            let ex = [0.0, 1606.7046, 3179.5777, 3685.7230, 3781.5931, 4714.8167, 5292.5031, 5386.1746, 6206.7394, 6865.4751];
            Some(ex.iter().take(labels.len()).map(|x| 4635.1104 + x).collect())
        }
        "ch3cn" => {
            let ex = [0.0, 360.990, 360.990, 723.179, 723.179, 723.825, 900.659, 1034.124, 1034.124];
            Some(ex.iter().take(labels.len()).map(|x| 9837.4069 + x).collect())
        }
        _ => None,
    }
}

fn system(cli: &Cli, ff: Option<QuarticForceField<Dyn>>, d: Dyn) -> Result<(), RunError> {
    match (cli.system.as_str(), ff) {
        (_, Some(ff)) => solve(cli, &ff, ff.omega.clone(), K_B_CM),
        ("harmonic", None) => {
            let h = HarmonicModes { omega: Vector::from_fn(d, |i| ((i as f64 + 1.0) / 2.0).sqrt()) };
            solve(cli, &h, h.omega.clone(), 1.0)
        }
        (_, None) => {
            if cli.coupling.abs() >= 1.0 || !cli.coupling.is_finite() {
                return Err(invalid("--coupling", cli.coupling, "|a| < 1"));
            }
            let h = Ndco::new(d, cli.coupling);
            solve(cli, &h, h.w.clone(), 1.0)
        }
    }
}

fn solve<H: Separable<Dyn>>(cli: &Cli, h: &H, omega: Vector<f64, Dyn>, kb: f64) -> Result<(), RunError> {
    cli.run.validate()?;
    cli.run.init_threads();
    // Labels ordered by the true harmonic frequencies (Hessian at the origin), matched to the basis modes.
    let order_w = rank_matched(omega.as_slice(), &harmonic_frequencies(h));
    let labels = lowest_levels(&order_w, cli.states);
    let ritz_basis = lowest_levels(&order_w, cli.ritz);
    // Sampler tables of the trained states; the Ritz step builds its own (evaluation flags must not
    // change training).
    let n_max = labels.iter().flatten().copied().max().unwrap_or(0).max(cli.levels - 1);
    let d = omega.size();
    if cli.net.couplings > 0 {
        let flow = VibFlow::builder(d).couplings(cli.net.couplings).hidden(&cli.net.hidden).build(cli.run.seed).map_err(|e| cli.net.invalid(e))?;
        solve_flow(cli, h, omega, kb, flow, &labels, &ritz_basis, n_max, &order_w)
    } else {
        let flow = LinearFlow::new(d, cli.run.seed).map_err(|e| cli.net.invalid(e))?;
        solve_flow(cli, h, omega, kb, flow, &labels, &ritz_basis, n_max, &order_w)
    }
}

#[allow(clippy::too_many_arguments)]
fn solve_flow<B: Bijector<D> + Clone, H: Separable<D>, D: Size>(cli: &Cli, h: &H, omega: Vector<f64, D>, kb: f64, flow: B, labels: &[Vec<usize>], ritz_basis: &[Vec<usize>], n_max: usize, order_w: &[f64]) -> Result<(), RunError> {
    let laplacian = match cli.laplacian {
        LaplacianArg::Jet => LaplacianMethod::Jet,
        LaplacianArg::Dual2 => LaplacianMethod::Dual2Passes,
        LaplacianArg::Hutchinson => LaplacianMethod::Hutchinson { probes: cli.probes },
    };
    // Sizes that cannot fit are refused up front, with the estimate.
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let budget = 8.0 * (1u64 << 30) as f64;
    let d = omega.len() as f64;
    let walkers = if cli.temperature.is_some() { cli.run.batch } else { (cli.run.batch / labels.len()).max(1) * labels.len() };
    let need = [
        ("--levels/--states (sampler tables)", nct::quantum::hermite::HermiteSampler::table_bytes(n_max)),
        ("--batch (walkers and per-chunk gradients)", walkers as f64 * (4.0 * d * 8.0 + 96.0) + walkers.div_ceil(32) as f64 * flow.n_params() as f64 * 8.0),
        ("--ritz (matrices of 20 jackknife blocks)", (cli.ritz as f64).powi(2) * 8.0 * 2.0 * 21.0 + nct::quantum::hermite::HermiteSampler::table_bytes(ritz_basis.iter().flatten().copied().max().unwrap_or(0))),
        ("--eval-samples (walkers)", cli.run.eval_samples as f64 * (4.0 * d * 8.0 + 96.0)),
    ];
    if let Some((what, bytes)) = need.iter().find(|(_, b)| *b > budget) {
        return Err(invalid(what, format!("{:.1} GiB", gib(*bytes)), &format!("settings needing at most {:.0} GiB of memory", gib(budget))));
    }
    let states = QuantumNct::new(flow, omega.clone(), h.masses(), n_max).with_laplacian(laplacian);
    let dir = RunDir::open_with_control(&cli.run, cli, EVAL_FLAGS)?;
    let engine = BatchEngine::new(32);
    let mut summary = Map::new();
    let name = format!("vibrational/{}/{}", cli.system, if cli.net.couplings > 0 { "linear+realnvp" } else { "linear" });
    match cli.temperature {
        None => {
            let reference_ritz = reference(&cli.system, omega.len(), cli, ritz_basis);
            let weights = match cli.weights {
                WeightsArg::Equal => Weights::Equal,
                WeightsArg::Decreasing => Weights::Decreasing,
            };
            let trained = Driver::new(&name, Ensemble::new(&states, h, labels.to_vec(), weights, cli.run.batch)).run_in(&cli.run, dir)?;
            let (out, weights) = (&trained.outcome, &trained.objective.weights);
            let eval_stream = SeedStream::new(cli.run.seed ^ 0xe7a1);
            let mut e = match cli.sampler {
                Sampler::Exact => trained.objective.energies(&out.theta, cli.run.eval_samples, cli.run.seed, &PhaseProgress::new(cli.run.quiet)),
                Sampler::Metropolis => labels
                    .iter()
                    .map(|n| {
                        let mut chain = Metropolis::new(&omega, &h.masses(), n, 256, &eval_stream);
                        let (e, stats) = states.metropolis_energy(&out.theta, h, n, &mut chain, 200, 4 * cli.run.eval_samples.div_ceil(256), 4, &engine, &eval_stream);
                        println!("  Metropolis {n:?}: acceptance {:.2}, tau {:.1} sweeps", stats.acceptance, stats.tau);
                        e
                    })
                    .collect(),
            };
            if let Some(bad) = e.iter().find(|s| too_many_rejected(s.rejected, s.samples + s.rejected)) {
                return Err(RunError::NoEstimate { what: format!("energy of state {:?}", bad.label), why: rejected_message(bad.rejected, bad.samples + bad.rejected) });
            }
            e.sort_by(|a, b| a.energy.total_cmp(&b.energy));
            let energies: Vec<f64> = e.iter().map(|s| s.energy).collect();
            let errs: Vec<f64> = e.iter().map(|s| s.error).collect();
            summary.insert("energies".into(), json!(energies));
            summary.insert("energies_err".into(), json!(errs));
            summary.insert("kinetic".into(), json!(e.iter().map(|s| s.kinetic).collect::<Vec<_>>()));
            summary.insert("kinetic_err".into(), json!(e.iter().map(|s| s.kinetic_error).collect::<Vec<_>>()));
            summary.insert("potential".into(), json!(e.iter().map(|s| s.potential).collect::<Vec<_>>()));
            summary.insert("potential_err".into(), json!(e.iter().map(|s| s.potential_error).collect::<Vec<_>>()));
            summary.insert("sampler".into(), json!(cli.sampler));
            summary.insert("labels".into(), json!(e.iter().map(|s| s.label.clone()).collect::<Vec<_>>()));
            summary.insert("zpe".into(), json!(energies[0]));
            summary.insert("excitations".into(), json!(energies.iter().map(|x| x - energies[0]).collect::<Vec<_>>()));
            summary.insert("rejected".into(), json!(e.iter().map(|s| s.rejected).sum::<usize>()));
            let reference = reference(&cli.system, omega.len(), cli, labels);
            summary.insert("reference".into(), json!(reference));
            println!("== {} ({} modes), {} states, {} steps in {:.1} s", cli.system, omega.len(), labels.len(), out.steps_done, out.seconds);
            println!("  {:<4} {:>16} {:>10} {:>14} {:>14} {:>16}", "n", "energy", "+-", "kinetic", "potential", "reference");
            for (k, s) in e.iter().enumerate() {
                let r = reference.as_ref().and_then(|r| r.get(k)).map_or("-".to_string(), |v| format!("{v:.6}"));
                println!("  {:<4} {:>16.6} {:>10.2e} {:>14.4} {:>14.4} {:>16}", k, s.energy, s.error, s.kinetic, s.potential, r);
            }
            if cli.ritz > 0 {
                let t = std::time::Instant::now();
                let ritz = trained.objective.ritz(&out.theta, ritz_basis, cli.ritz_samples, cli.run.seed, &PhaseProgress::new(cli.run.quiet)).map_err(|e| invalid("--ritz", cli.ritz, &e.to_string()))?;
                let seconds = t.elapsed().as_secs_f64();
                let es: Vec<f64> = ritz.levels.iter().map(|l| l.energy).collect();
                println!("  Ritz in the span of the {} lowest flow states ({} samples, {} rejected, max|S - 1| = {:.1e}, max|Im| = {:.1e}, {seconds:.1} s):", ritz_basis.len(), ritz.samples, ritz.rejected, ritz.overlap_deviation, ritz.max_imaginary);
                println!("  {:<4} {:>16} {:>10} {:>14} {:>10} {:>16} {:>10}", "n", "energy", "+-", "E_n - E_0", "+-", "reference", "label");
                for (k, l) in ritz.levels.iter().enumerate().take(labels.len().max(10)) {
                    let r = reference_ritz.as_ref().and_then(|r| r.get(k)).map_or("-".to_string(), |v| format!("{v:.6}"));
                    println!("  {:<4} {:>16.6} {:>10.2e} {:>14.4} {:>10.2e} {:>16} {:>10}", k, l.energy, l.error, l.energy - es[0], l.excitation_error, r, format!("{:?}", l.label));
                }
                summary.insert("ritz".into(), ritz_json(&ritz, seconds, reference_ritz.as_deref()));
            }
            if let Some(d) = &trained.dir {
                let unit = energy_unit(kb);
                // Reference of the loss: the weighted reference levels of the trained labels.
                let target = reference.as_ref().filter(|r| r.len() == weights.len()).map(|r| ("reference sum_n w_n E_n", r.iter().zip(weights).map(|(e, w)| e * w).sum::<f64>()));
                loss_plot(d.path(), "Weighted ensemble energy", "sum_n w_n E_n", &format!("sum_n w_n E_n ({unit})"), &out.losses, target)?;
                let names: Vec<String> = e.iter().map(|s| format!("{:?}", s.label)).collect();
                level_plot(d.path(), "levels", &format!("{} levels", cli.system), &format!("energy ({unit})"), &e.iter().map(|s| (s.energy, s.error)).collect::<Vec<_>>(), reference.as_deref().unwrap_or(&[]), &names)?;
            }
            let std = trained.summary().into_value();
            finish(cli, trained.dir.as_ref(), std, summary)
        }
        Some(t) => {
            let kt = kb * t;
            match cli.occupation {
                Occupation::Psa => {
                    let model = ThermalNct::new(states, ProductOccupation::new(1.0 / kt, omega.as_slice(), cli.levels), Some(order_w.to_vec())).map_err(|e| invalid("--levels", cli.levels, &e.to_string()))?;
                    thermal(cli, h, model, dir, &name, (t, kt, energy_unit(kb)), summary)
                }
                Occupation::Van => {
                    let model = ThermalNct::new(states, AutoregressiveOccupation::new(1.0 / kt, omega.as_slice(), cli.levels).with_hidden(cli.van_hidden), Some(order_w.to_vec())).map_err(|e| invalid("--levels", cli.levels, &e.to_string()))?;
                    thermal(cli, h, model, dir, &name, (t, kt, energy_unit(kb)), summary)
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// `temperature`: (T, k_B T, energy unit).
fn thermal<B: Bijector<D>, O: OccupationModel, H: Separable<D>, D: Size>(cli: &Cli, h: &H, model: ThermalNct<B, O, D>, dir: Option<RunDir>, name: &str, temperature: (f64, f64, &str), mut summary: Map<String, Value>) -> Result<(), RunError> {
    let (t, kt, unit) = temperature;
    let trained = Driver::new(name, Thermal::new(&model, h, cli.run.batch)).run_in(&cli.run, dir)?;
    let est = trained.objective.estimate(&trained.theta, cli.run.eval_samples, cli.run.seed)?;
    let ((f, f_err), (e, e_err), (k, k_err), (v, v_err), s) = (est.f, est.e, est.k, est.v, est.s);
    summary.insert("temperature".into(), json!(t));
    let f_exact: Option<f64> = (cli.system == "ndco").then(|| harmonic_free_energy(&ndco_normal_frequencies(h.dim().value(), cli.coupling), kt));
    summary.insert("F_exact".into(), json!(f_exact));
    println!("== {} ({} modes) at T = {t}: F = {f:.6} +- {f_err:.6}, E = {e:.6} +- {e_err:.6} (K = {k:.6} +- {k_err:.6}, V = {v:.6} +- {v_err:.6}), S = {s:.5} k_B{}", cli.system, h.dim().value(), f_exact.map_or(String::new(), |x| format!("; exact F = {x:.10}")));
    trained.loss_plot("Free-energy estimate per step", unit, f_exact.map(|x| ("exact F", x)))?;
    let std = trained.summary().thermal(&est).into_value();
    finish(cli, trained.dir.as_ref(), std, summary)
}

/// The standard summary (`std`, from the driver), the example's own fields on top.
fn finish(cli: &Cli, dir: Option<&RunDir>, std: Value, summary: Map<String, Value>) -> Result<(), RunError> {
    let Value::Object(mut all) = std else { unreachable!("a summary is a JSON object") };
    all.extend(summary);
    all.insert("system".into(), json!(cli.system));
    if let Some(d) = dir {
        d.write_summary(&Value::Object(all))?;
        println!("  run dir {}", d.path().display());
    }
    Ok(())
}
