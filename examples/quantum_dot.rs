//! Fermionic NCT for electrons in a harmonic trap (quantum dots), after Xie, Zhang & Wang,
//! "Ab-initio study of interacting fermions at finite temperature with neural canonical
//! transformation", J. Mach. Learn. 1, 38 (2022), arXiv:2105.08644:
//! H = sum_i (-1/2 nabla_i^2 + 1/2 r_i^2) + kappa sum_{i<j} 1/r_ij (omega = 1).
//!
//! psi_n(x) = Phi_n(z(x)) |det dz/dx|^1/2 with Phi_n a Slater determinant (one per spin) of trap
//! orbitals and z = f(x) a permutation-equivariant flow (pair backflow layers, or the backflow
//! field as a continuous flow, then a radial scaling). Samples are exact: z from the determinantal point process of Phi_n, x = f^-1(z).
//! Without --beta the ground state is trained; with --beta the occupations p_n over every state
//! within --delta-e of the ground state are trained jointly with the flow on the free energy.
//!
//! `cargo run --release --example quantum_dot -- --particles 6 --kappa 0.5 --out runs/dot6`
//! `cargo run --release --example quantum_dot -- --particles 6 --kappa 0.5 --beta 3 --delta-e 4 --out runs/dot6-b3`

use clap::{Parser, ValueEnum};
use nct::driver::Driver;
use nct::fermion::{ContinuousBackflow, FermiLaplacian, FermiState, FermiThermal, FreeFermions, GroundState, ManyBodyState, PairBackflow, RadialScaling, ThermalFermions, count_states, enumerate_states};
use nct::models::quantum_dot::{GaussianBosons, QuantumDot};
use nct::run::{RunArgs, RunError, exit_on_error, invalid, parse_with_defaults};
use nct::*;
use serde::Serialize;
use serde_json::json;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum FlowArg {
    /// No flow: bare Slater determinants (the radial parameters stay at zero).
    Identity,
    /// One radial scaling per particle (one-body only).
    Radial,
    /// --layers pair-backflow layers, then the radial scaling.
    Backflow,
    /// FermiFlow's backflow as a continuous flow (--ode-steps exactly invertible Euler steps of
    /// one field), then the radial scaling.
    Continuous,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum LaplacianArg {
    /// Exact, forward-Laplacian jet through the flow.
    Jet,
    /// Unbiased Hutchinson estimate (directional second derivatives).
    Hutchinson,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum SamplerArg {
    Exact,
    Metropolis,
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "Fermionic NCT for electrons in a harmonic trap (units: hbar = m = omega = 1)")]
struct Cli {
    /// Number of electrons N (1..=30).
    #[arg(long, default_value_t = 6)]
    particles: usize,
    /// Spatial dimension d (2 or 3).
    #[arg(long, default_value_t = 2)]
    dim: usize,
    /// Coulomb coupling kappa (>= 0).
    #[arg(long, default_value_t = 0.5)]
    kappa: f64,
    /// Inverse temperature beta (> 0). Omit it for the ground state.
    #[arg(long)]
    beta: Option<f64>,
    /// Excitation window of the many-body states at finite temperature, in units of hbar omega.
    #[arg(long, default_value_t = 4)]
    delta_e: usize,
    /// Electrons of spin up (default: all, spin-polarised); the rest are spin down. For an open
    /// shell the ground state is the first of the degenerate lowest states.
    #[arg(long)]
    spin_up: Option<usize>,
    /// Point transformation.
    #[arg(long, value_enum, default_value_t = FlowArg::Backflow)]
    flow: FlowArg,
    /// Pair-backflow layers of --flow backflow (>= 1).
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Euler steps of --flow continuous (>= --field-bound).
    #[arg(long, default_value_t = 8)]
    ode_steps: usize,
    /// Lipschitz budget L of the continuous backflow field (> 0; |du/dx| <= 0.9 L).
    #[arg(long, default_value_t = 4.0)]
    field_bound: f64,
    /// Laplacian of the local energy: exact (jet) or Hutchinson with --probes Rademacher vectors.
    #[arg(long, value_enum, default_value_t = LaplacianArg::Jet)]
    laplacian: LaplacianArg,
    /// Probes per walker of --laplacian hutchinson (>= 1).
    #[arg(long, default_value_t = 4)]
    probes: usize,
    /// Sampler of the final ground-state estimate: exact (DPP and inverse flow) or Metropolis on
    /// |psi|^2 (256 persistent walkers from random starts, 300 burn-in sweeps, blocking errors; the
    /// cross-check). Training always samples exactly.
    #[arg(long, value_enum, default_value_t = SamplerArg::Exact)]
    sampler: SamplerArg,
    /// Bosons instead of electrons (ground state only): N bosons condensed in orbital 0 as the base
    /// state, with the Gaussian pair interaction g / (pi s^2) exp(-r^2 / s^2) instead of Coulomb.
    #[arg(long)]
    bosons: bool,
    /// Strength g of the boson pair interaction (>= 0).
    #[arg(long, default_value_t = 1.0)]
    g: f64,
    /// Range s of the boson pair interaction (> 0).
    #[arg(long, default_value_t = 0.5)]
    s: f64,
    /// Most probable states whose energies are reported at finite temperature.
    #[arg(long, default_value_t = 5)]
    report_states: usize,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("steps", "1000"), ("batch", "256"), ("lr", "0.02"), ("eval_samples", "40000")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(1..=30).contains(&cli.particles) {
        return Err(invalid("--particles", cli.particles, "1..=30"));
    }
    if !(2..=3).contains(&cli.dim) {
        return Err(invalid("--dim", cli.dim, "2 or 3"));
    }
    if !(cli.kappa.is_finite() && cli.kappa >= 0.0) {
        return Err(invalid("--kappa", cli.kappa, "a finite coupling >= 0"));
    }
    if cli.beta.is_some() && cli.sampler == SamplerArg::Metropolis {
        return Err(invalid("--sampler", "metropolis", "exact with --beta (Metropolis is the cross-check of the ground-state estimate)"));
    }
    if let Some(b) = cli.beta {
        if !(b.is_finite() && b > 0.0) {
            return Err(invalid("--beta", b, "a finite inverse temperature > 0 (omit it for the ground state)"));
        }
    }
    let n_up = cli.spin_up.unwrap_or(cli.particles);
    if n_up > cli.particles {
        return Err(invalid("--spin-up", n_up, &format!("at most --particles = {}", cli.particles)));
    }
    if cli.flow == FlowArg::Backflow && cli.layers == 0 {
        return Err(invalid("--layers", 0, "at least 1 (or --flow radial)"));
    }
    if cli.run.batch < 2 {
        return Err(invalid("--batch", cli.run.batch, "at least 2 (the gradient subtracts a baseline from the other walkers)"));
    }
    // Sizes that cannot fit are refused up front, with the estimate.
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let budget = 8.0 * (1u64 << 30) as f64;
    let per_walker = (cli.particles * cli.dim * 8 + 128) as f64;
    for (flag, walkers) in [("--batch", cli.run.batch), ("--eval-samples", cli.run.eval_samples)] {
        if walkers as f64 * per_walker > budget {
            return Err(invalid(flag, format!("{walkers} walkers = {:.1} GiB", gib(walkers as f64 * per_walker)), &format!("settings needing at most {:.0} GiB of memory", gib(budget))));
        }
    }
    if cli.beta.is_none() {
        nct::run::warn_ignored(&["--delta-e", "--report-states"], "without --beta (the ground state is one state)");
    }
    if cli.flow != FlowArg::Backflow {
        nct::run::warn_ignored(&["--layers"], "without --flow backflow");
    }
    if cli.flow != FlowArg::Continuous {
        nct::run::warn_ignored(&["--ode-steps", "--field-bound"], "without --flow continuous");
    }
    if cli.laplacian != LaplacianArg::Hutchinson {
        nct::run::warn_ignored(&["--probes"], "without --laplacian hutchinson");
    }
    let (n, d) = (cli.particles, cli.dim);
    if cli.bosons {
        if let Some(b) = cli.beta {
            return Err(invalid("--beta", b, "omitted with --bosons (the boson example is the ground state)"));
        }
        if !(cli.g.is_finite() && cli.g >= 0.0) || !(cli.s.is_finite() && cli.s > 0.0) {
            return Err(invalid("--g/--s", format!("{}/{}", cli.g, cli.s), "a finite g >= 0 and a range s > 0"));
        }
        nct::run::warn_ignored(&["--kappa", "--spin-up", "--delta-e"], "with --bosons");
        let h = GaussianBosons::new().with_n(n).with_d(d).with_g(cli.g).with_s(cli.s);
        let (orbitals, _) = enumerate_states(d, 1, 0, 0);
        let condensate = vec![ManyBodyState { excitation: 0, up: vec![0; n], down: vec![] }];
        return with_flow(cli, &h, orbitals, condensate);
    }
    nct::run::warn_ignored(&["--g", "--s"], "without --bosons");
    let h = QuantumDot::new().with_n(n).with_d(d).with_kappa(cli.kappa);
    let window = if cli.beta.is_some() { cli.delta_e } else { 0 };
    const MAX_STATES: f64 = 20_000.0;
    let count = count_states(d, n_up, n - n_up, window);
    if count > MAX_STATES {
        return Err(invalid("--delta-e", cli.delta_e, &format!("a window with at most {MAX_STATES} states ({count:.0} here)")));
    }
    let (orbitals, states) = enumerate_states(d, n_up, n - n_up, window);
    with_flow(cli, &h, orbitals, states)
}

/// Builds the flow of `--flow` (then the radial scaling) and solves with it; bosons with
/// `--bosons`.
fn with_flow<H: Separable<Dyn>>(cli: &Cli, h: &H, orbitals: nct::fermion::HoOrbitals, states: Vec<ManyBodyState>) -> Result<(), RunError> {
    let (n, d) = (cli.particles, cli.dim);
    let radial = RadialScaling::new(n, d);
    fn state<B: Bijector<Dyn>>(cli: &Cli, flow: B, orbitals: nct::fermion::HoOrbitals) -> FermiState<B> {
        let s = FermiState::new(flow, orbitals);
        if cli.bosons { s.bosonic() } else { s }
    }
    match cli.flow {
        FlowArg::Identity | FlowArg::Radial => solve(cli, h, state(cli, radial, orbitals), states),
        FlowArg::Backflow => solve(cli, h, state(cli, Chain::new(Stack::new(vec![PairBackflow::new(n, d); cli.layers]), radial), orbitals), states),
        FlowArg::Continuous => solve(cli, h, state(cli, Chain::new(continuous(cli)?, radial), orbitals), states),
    }
}

type Estimate = ((f64, f64), (f64, f64), (f64, f64), usize, serde_json::Value);

/// E, K, V of the trained ground state by Metropolis on |psi|^2 (one seeded chain of 256 walkers
/// from Gaussian starts, run on this thread): blocking errors, acceptance and the autocorrelation time.
fn metropolis<B: Bijector<Dyn>, H: Separable<Dyn>>(cli: &Cli, h: &H, state: &FermiState<B>, ground: &ManyBodyState, theta: &[f64]) -> Estimate {
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = SeedStream::new(cli.run.seed ^ 0x3e7).named("metropolis");
    let dim = cli.particles * cli.dim;
    let starts: Vec<Vec<f64>> = (0..256).map(|_| (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect()).collect();
    let amp = |x: &[f64]| state.log_abs_psi(theta, ground, x);
    let mut chain = nct::fermion::SlaterMetropolis::with_amplitude(&amp, starts);
    let sweeps = cli.run.eval_samples.div_ceil(256).max(20);
    let vec = |x: &[f64]| Vector::from(x.to_vec());
    let e = chain.estimate_with(&amp, cli.dim, 300, sweeps, |x| state.kinetic(theta, ground, &vec(x)) + h.potential(&vec(x)), &mut rng);
    let k = chain.estimate_with(&amp, cli.dim, 0, sweeps, |x| state.kinetic(theta, ground, &vec(x)), &mut rng);
    let v = chain.estimate_with(&amp, cli.dim, 0, sweeps, |x| h.potential(&vec(x)), &mut rng);
    let info = json!({"walkers": 256, "burn_in_sweeps": 300, "sweeps": sweeps, "acceptance": chain.acceptance(), "step": chain.step, "tau_sweeps": e.tau});
    println!("  Metropolis: acceptance {:.2}, step {:.3}, tau {:.1} sweeps", chain.acceptance(), chain.step, e.tau);
    ((e.mean, e.error), (k.mean, k.error), (v.mean, v.error), 256 * sweeps, info)
}

fn continuous(cli: &Cli) -> Result<ContinuousBackflow, RunError> {
    ContinuousBackflow::new(cli.particles, cli.dim, cli.field_bound, cli.ode_steps).map_err(|e| invalid("--field-bound/--ode-steps", format!("{}/{}", cli.field_bound, cli.ode_steps), &e.to_string()))
}

fn flow_name(cli: &Cli) -> String {
    match cli.flow {
        FlowArg::Backflow => format!("backflow{}+radial", cli.layers),
        FlowArg::Continuous => format!("continuous{}x{}+radial", cli.ode_steps, cli.field_bound),
        FlowArg::Radial => "radial".into(),
        FlowArg::Identity => "identity".into(),
    }
}

/// `--flow identity`: the flow parameters (groups starting with `prefix`) do not move.
fn freeze<'m, O: nct::driver::Objective>(cli: &Cli, prefix: &str, driver: Driver<'m, O>) -> Driver<'m, O> {
    if cli.flow == FlowArg::Identity { driver.group_rate(prefix, 0.0) } else { driver }
}

fn solve<B: Bijector<Dyn> + Clone, H: Separable<Dyn>>(cli: &Cli, h: &H, mut state: FermiState<B>, states: Vec<ManyBodyState>) -> Result<(), RunError> {
    if cli.laplacian == LaplacianArg::Hutchinson {
        if cli.probes == 0 {
            return Err(invalid("--probes", 0, "at least 1"));
        }
        state.laplacian = FermiLaplacian::Hutchinson { probes: cli.probes };
    }
    let (n, d) = (cli.particles, cli.dim);
    let n_up = cli.spin_up.unwrap_or(n);
    let name = format!("quantum_dot/{}N{n}-d{d}/{}", if cli.bosons { "bosons-" } else { "" }, flow_name(cli));
    let free = FreeFermions { dim: d, n_up, n_down: n - n_up };
    let Some(beta) = cli.beta else {
        let ground = states[0].clone();
        let trained = freeze(cli, "radial", Driver::new(&name, GroundState::new(&state, h, ground.clone(), cli.run.batch))).run(&cli.run, cli)?;
        let ((e, e_err), (k, k_err), (v, v_err), used, chain) = match cli.sampler {
            SamplerArg::Exact => {
                let es = trained.objective.local_energies(&trained.theta, cli.run.eval_samples, &SeedStream::new(cli.run.seed ^ 0xe7a1), 0);
                let ok: Vec<(Vector<f64, Dyn>, f64)> = es.into_iter().flatten().collect();
                if nct::quantum::too_many_rejected(cli.run.eval_samples - ok.len(), cli.run.eval_samples) {
                    return Err(RunError::NoEstimate { what: "ground-state energy".into(), why: nct::driver::objective::rejected_message(cli.run.eval_samples - ok.len(), cli.run.eval_samples) });
                }
                let v: Vec<f64> = ok.iter().map(|w| h.potential(&w.0)).collect();
                (mean_and_error(&ok.iter().map(|w| w.1).collect::<Vec<_>>()), mean_and_error(&ok.iter().zip(&v).map(|(w, v)| w.1 - v).collect::<Vec<_>>()), mean_and_error(&v), ok.len(), json!(null))
            }
            SamplerArg::Metropolis => metropolis(cli, h, &state, &ground, &trained.theta),
        };
        let non_interacting = if cli.bosons { cli.g == 0.0 } else { cli.kappa == 0.0 };
        let exact = non_interacting.then(|| ground.energy(state.orbitals()));
        let what = if cli.bosons { format!("{n} bosons, d = {d}, g = {}, s = {}", cli.g, cli.s) } else { format!("N = {n} (up {n_up}), d = {d}, kappa = {}", cli.kappa) };
        println!("== {what}: ground state E = {e:.5} +- {e_err:.5} (K = {k:.5} +- {k_err:.5}, V = {v:.5} +- {v_err:.5}){}", exact.map_or(String::new(), |x| format!("; exact {x}")));
        trained.loss_plot("Energy estimate per step", "hbar omega", exact.map(|x| ("exact E", x)))?;
        let out = trained
            .summary()
            .insert("E", e)
            .insert("E_err", e_err)
            .insert("K", k)
            .insert("K_err", k_err)
            .insert("V", v)
            .insert("V_err", v_err)
            .insert("eval_samples", used)
            .insert("sampler", cli.sampler)
            .insert("metropolis", chain)
            .insert("state", json!({"up": ground.up, "down": ground.down}))
            .reference("E_exact", exact)
            .require_finite("E")?
            .write()?;
        let _ = out;
        return Ok(());
    };
    let model = ThermalFermions::new(state, states, beta);
    let trained = freeze(cli, "flow", Driver::new(&name, FermiThermal::new(&model, h, cli.run.batch))).run(&cli.run, cli)?;
    let est = trained.objective.estimate(&trained.theta, cli.run.eval_samples, cli.run.seed)?;
    let p = model.probs(&trained.theta);
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let per_state = (cli.run.eval_samples / 4).max(100);
    let top: Vec<serde_json::Value> = order
        .iter()
        .take(cli.report_states)
        .map(|&i| {
            let (e, err) = trained.objective.state_energy(&trained.theta, i, per_state, cli.run.seed ^ 0x5747);
            let s = &model.states[i];
            json!({"up": s.up, "down": s.down, "excitation": s.excitation, "p": p[i], "E": e, "E_err": err})
        })
        .collect();
    let (truncated, exact) = (free.truncated_thermo(beta, cli.delta_e), free.thermo(beta));
    let at_zero = cli.kappa == 0.0;
    println!(
        "== N = {n} (up {n_up}), d = {d}, kappa = {}, beta = {beta}, dE = {} ({} states): F = {:.5} +- {:.5}, E = {:.5} +- {:.5} (K = {:.5}, V = {:.5}), S = {:.4}{}",
        cli.kappa,
        cli.delta_e,
        model.states.len(),
        est.f.0,
        est.f.1,
        est.e.0,
        est.e.1,
        est.k.0,
        est.v.0,
        est.s,
        if at_zero { format!("; free fermions in the window: F = {:.6}, E = {:.6}, S = {:.6}", truncated.f, truncated.e, truncated.s) } else { String::new() }
    );
    for t in &top {
        println!("  p = {:.4}  E = {:.5} +- {:.5}  up {} down {}", t["p"].as_f64().unwrap_or(f64::NAN), t["E"].as_f64().unwrap_or(f64::NAN), t["E_err"].as_f64().unwrap_or(f64::NAN), t["up"], t["down"]);
    }
    trained.loss_plot("Free-energy estimate per step", "hbar omega", at_zero.then_some(("free F (window)", truncated.f)))?;
    trained
        .summary()
        .thermal(&est)
        .insert("beta", beta)
        .insert("delta_e", cli.delta_e)
        .insert("n_states", model.states.len())
        .insert("occupation_entropy", est.s)
        .insert("most_probable_states", top)
        .reference("F_free_window", at_zero.then_some(truncated.f))
        .reference("E_free_window", at_zero.then_some(truncated.e))
        .reference("S_free_window", at_zero.then_some(truncated.s))
        .reference("F_free", at_zero.then_some(exact.f))
        .require_finite("F")?
        .write()?;
    Ok(())
}
