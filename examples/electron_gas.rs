//! The spin-polarised uniform electron gas at finite temperature by NCT, in the conventions of
//! CoulombGas (Xie, Zhang & Wang, "m* of two-dimensional electron gas: a neural canonical
//! transformation study", SciPost Phys. 14, 154 (2023), arXiv:2201.03156): lengths in r_s a_B,
//! energies in Ry / r_s^2, H = -sum_i nabla_i^2 + 2 r_s [sum_{i<j} phi_Ewald(r_ij) + N xi / 2],
//! box L = sqrt(pi N) (2D) or (4 pi N / 3)^(1/3) (3D), beta = 1 / (Theta E_F).
//!
//! rho = sum_n p_n |psi_n><psi_n| with n a set of N occupied twisted plane waves and p_n either a
//! categorical model over every set within --window k_B T of the lowest (starting at the
//! free-electron Boltzmann law; estimates stratified over the sets) or CoulombGas's causal
//! transformer over all sets (pretrained by maximum likelihood on exact samples of the canonical
//! free-electron ensemble for --pretrain-steps), and psi_n = Phi_n(z(x)) |det dz/dx|^1/2 through
//! --layers exactly invertible flows: periodic pair backflows (--flow backflow) or FermiNet-style
//! one- and two-body streams made contractions by a Lipschitz bound (--flow ferminet). Samples
//! are exact (plane-wave DPP, inverse flow): no Markov chain.
//! The summary holds F, E, K, V, S (totals in Ry / r_s^2, as CoulombGas logs them), the same per
//! electron in Ry, the first-order bound F0 + <V>0 (Gibbs-Bogoliubov: identity flow, exact
//! free-electron occupations) and m*/m = S / S0 (S0 the free-electron entropy of the basis).
//!
//! `cargo run --release --example electron_gas -- --particles 2 --rs 5 --theta 0.15 --out runs/ueg2`
//! `cargo run --release --example electron_gas -- --particles 13 --rs 10 --occupation transformer --out runs/ueg13`

use clap::{Parser, ValueEnum};
use nct::driver::{Driver, Optimiser};
use nct::sr::SrConfig;
use nct::models::electron_gas::ElectronGas;
use nct::periodic::{CanonicalElectrons, EnumeratedOccupation, FermiNetBackflow, FreeOccupation, GasEstimate, GasState, GasThermal, LikelihoodPretraining, OrbitalOccupation, PeriodicBackflow, ThermalGas, TransformerOccupation, TwistedPlaneWaves, first_order_free_energy, free_electron_thermo, orbital_sets};
use nct::run::{RunError, RunArgs, exit_on_error, invalid, parse_with_defaults};
use nct::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum FlowArg {
    /// No flow: bare plane-wave determinants (only the occupations are trained).
    Identity,
    /// --layers periodic pair-backflow layers of --shells reciprocal shells each.
    Backflow,
    /// --layers FermiNet-style flows (one- and two-body streams of --depth layers, widths
    /// --one-body / --two-body), each a contraction by construction and so exactly invertible.
    Ferminet,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum OccupationArg {
    /// One logit per orbital set within --window (exact entropy, stratified estimates).
    Enumerated,
    /// Causal transformer over the ordered occupied orbitals (every set; pretrained).
    Transformer,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum OptimiserArg {
    /// Adam on the score-function gradient.
    Adam,
    /// Stochastic reconfiguration (natural gradient, block-diagonal Fisher of flow and
    /// occupations; sample-space solve when parameters outnumber samples), plain descent.
    Sr,
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
    /// Layers of each FermiNet-style flow's streams (1..=8).
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// One-body stream width of the FermiNet-style flow (1..=256).
    #[arg(long, default_value_t = 16)]
    one_body: usize,
    /// Two-body stream width of the FermiNet-style flow (1..=256).
    #[arg(long, default_value_t = 16)]
    two_body: usize,
    /// Standard deviation of the FermiNet output weights at the start (0: the identity).
    #[arg(long, default_value_t = 0.0)]
    output_scale: f64,
    /// Occupation model.
    #[arg(long, value_enum, default_value_t = OccupationArg::Enumerated)]
    occupation: OccupationArg,
    /// Transformer blocks of --occupation transformer (>= 1).
    #[arg(long, default_value_t = 2)]
    tf_layers: usize,
    /// Model width of the transformer (a multiple of --tf-heads).
    #[arg(long, default_value_t = 16)]
    tf_width: usize,
    /// Attention heads of the transformer (>= 1).
    #[arg(long, default_value_t = 4)]
    tf_heads: usize,
    /// MLP width of the transformer (>= 1).
    #[arg(long, default_value_t = 32)]
    tf_hidden: usize,
    /// Maximum-likelihood pretraining steps of the transformer on free electrons (0: none).
    #[arg(long, default_value_t = 4000)]
    pretrain_steps: u64,
    /// Exact canonical samples per pretraining step (>= 1).
    #[arg(long, default_value_t = 256)]
    pretrain_batch: usize,
    /// Learning rate of the pretraining (Adam, cosine decay; > 0).
    #[arg(long, default_value_t = 0.01)]
    pretrain_lr: f64,
    /// Learning-rate factor of the occupation model relative to --lr (> 0; default 1 for
    /// enumerated occupations, 0.05 for the transformer, whose Adam steps of size --lr would
    /// reshape the whole law at once).
    #[arg(long)]
    occupation_lr_factor: Option<f64>,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimiserArg::Adam)]
    optimiser: OptimiserArg,
    /// Damping of --optimiser sr (> 0).
    #[arg(long, default_value_t = 1e-3)]
    sr_damping: f64,
    /// Largest Fisher-metric length of an SR step (> 0).
    #[arg(long, default_value_t = 0.1)]
    sr_max_norm: f64,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

/// How each occupation model is estimated after training.
trait Estimated: OrbitalOccupation + Sized {
    fn final_estimate<B: Bijector<Dyn>>(obj: &GasThermal<B, Self, ElectronGas>, theta: &[f64], samples: usize, seed: u64) -> Result<GasEstimate, RunError>;
    fn describe(&self) -> String;
}

impl Estimated for EnumeratedOccupation {
    fn final_estimate<B: Bijector<Dyn>>(obj: &GasThermal<B, Self, ElectronGas>, theta: &[f64], samples: usize, seed: u64) -> Result<GasEstimate, RunError> {
        obj.stratified_estimate(theta, samples, seed)
    }
    fn describe(&self) -> String {
        format!("{} sets", self.sets.len())
    }
}

impl Estimated for TransformerOccupation {
    fn final_estimate<B: Bijector<Dyn>>(obj: &GasThermal<B, Self, ElectronGas>, theta: &[f64], samples: usize, seed: u64) -> Result<GasEstimate, RunError> {
        obj.estimate(theta, samples, seed)
    }
    fn describe(&self) -> String {
        format!("transformer of {} parameters", self.n_params())
    }
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
    if cli.flow != FlowArg::Identity && cli.layers == 0 {
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
    if cli.optimiser == OptimiserArg::Sr {
        if !(cli.sr_damping.is_finite() && cli.sr_damping > 0.0) {
            return Err(invalid("--sr-damping", cli.sr_damping, "a finite damping > 0"));
        }
        if !(cli.sr_max_norm > 0.0) {
            return Err(invalid("--sr-max-norm", cli.sr_max_norm, "a step bound > 0 (inf: none)"));
        }
    } else {
        nct::run::warn_ignored(&["--sr-damping", "--sr-max-norm"], "without --optimiser sr");
    }
    match cli.flow {
        FlowArg::Identity => nct::run::warn_ignored(&["--layers", "--shells", "--depth", "--one-body", "--two-body", "--output-scale"], "with --flow identity"),
        FlowArg::Backflow => nct::run::warn_ignored(&["--depth", "--one-body", "--two-body", "--output-scale"], "with --flow backflow"),
        FlowArg::Ferminet => nct::run::warn_ignored(&["--shells"], "with --flow ferminet"),
    }
    let gas = ElectronGas::new(cli.particles, cli.dim, cli.rs).map_err(|e| invalid("--particles/--dim/--rs", format!("{}/{}/{}", cli.particles, cli.dim, cli.rs), &e.to_string()))?;
    let orbitals = gas.orbitals(&cli.twist, cli.emax).map_err(|e| invalid("--twist/--emax", format!("{:?}/{}", cli.twist, cli.emax), &e.to_string()))?;
    if orbitals.len() < cli.particles {
        return Err(invalid("--emax", cli.emax, &format!("a basis of at least --particles = {} plane waves ({} here)", cli.particles, orbitals.len())));
    }
    let beta = gas.beta(cli.theta);
    let layer = PeriodicBackflow::new(cli.particles, &vec![gas.side(); cli.dim], cli.shells).map_err(|e| invalid("--shells", cli.shells, &e.to_string()))?;
    let ferminet = FermiNetBackflow::new(cli.particles, &vec![gas.side(); cli.dim], cli.depth, cli.one_body, cli.two_body)
        .and_then(|f| f.with_output_scale(cli.output_scale))
        .map_err(|e| invalid("--depth/--one-body/--two-body/--output-scale", format!("{}/{}/{}/{}", cli.depth, cli.one_body, cli.two_body, cli.output_scale), &e.to_string()))?;
    let flows = (layer, ferminet);
    let energies = orbitals.energies();
    match cli.occupation {
        OccupationArg::Enumerated => {
            nct::run::warn_ignored(&["--tf-layers", "--tf-width", "--tf-heads", "--tf-hidden", "--pretrain-steps", "--pretrain-batch", "--pretrain-lr"], "with --occupation enumerated");
            let sets = orbital_sets(&energies, cli.particles, cli.window / beta, MAX_SETS)
                .map_err(|_| invalid("--window", cli.window, &format!("a window holding at most {MAX_SETS} orbital sets (one logit each); narrow it, lower --particles or use --occupation transformer")))?;
            with_flow(cli, &gas, orbitals, EnumeratedOccupation::new(sets, beta), flows)
        }
        OccupationArg::Transformer => {
            nct::run::warn_ignored(&["--window"], "with --occupation transformer");
            if cli.tf_layers == 0 {
                return Err(invalid("--tf-layers", 0, "at least 1"));
            }
            if cli.pretrain_batch == 0 {
                return Err(invalid("--pretrain-batch", 0, "at least 1"));
            }
            if !(cli.pretrain_lr.is_finite() && cli.pretrain_lr > 0.0) {
                return Err(invalid("--pretrain-lr", cli.pretrain_lr, "a finite rate > 0"));
            }
            let tr = TransformerOccupation::with_sizes(cli.particles, &energies, beta, cli.tf_layers, cli.tf_width, cli.tf_heads, cli.tf_hidden)
                .map_err(|e| invalid("--tf-width/--tf-heads/--tf-hidden", format!("{}/{}/{}", cli.tf_width, cli.tf_heads, cli.tf_hidden), &e.to_string()))?;
            let tr = pretrain(cli, tr, &energies, beta)?;
            with_flow(cli, &gas, orbitals, tr, flows)
        }
    }
}

/// Maximum-likelihood pretraining on exact canonical free-electron samples (no run directory:
/// it is deterministic, so a resumed run repeats it bit for bit).
fn pretrain(cli: &Cli, tr: TransformerOccupation, energies: &[f64], beta: f64) -> Result<TransformerOccupation, RunError> {
    if cli.pretrain_steps == 0 {
        return Ok(tr);
    }
    let args = RunArgs { steps: cli.pretrain_steps, lr: cli.pretrain_lr, batch: cli.pretrain_batch, out: None, resume: None, stop_at: None, quiet: true, ..cli.run.clone() };
    let t0 = std::time::Instant::now();
    let target = CanonicalElectrons::new(energies, cli.particles, beta);
    let exact_f0 = -target.ln_z() / beta;
    let trained = Driver::new("electron_gas/pretrain", LikelihoodPretraining::new(&tr, target, cli.pretrain_batch)).run_in(&args, None)?;
    let theta = trained.theta.clone();
    let check = FreeOccupation::new(&tr, energies, cli.run.batch).estimate(&theta, 8 * cli.run.batch, cli.run.seed ^ 0x9e);
    if !cli.run.quiet {
        eprintln!(
            "pretrained the occupations in {:.1} s: F0 = {:.5} +- {:.5} (exact {:.5}), S = {:.4} +- {:.4}",
            t0.elapsed().as_secs_f64(),
            check.f.0,
            check.f.1,
            exact_f0,
            check.s.0,
            check.s.1
        );
    }
    Ok(tr.with_initial(&theta))
}

fn with_flow<O: Estimated>(cli: &Cli, gas: &ElectronGas, orbitals: TwistedPlaneWaves, occupation: O, (backflow, ferminet): (PeriodicBackflow, FermiNetBackflow)) -> Result<(), RunError> {
    match cli.flow {
        FlowArg::Identity => solve(cli, gas, orbitals, occupation, IdentityFlow::new(Dyn(cli.particles * cli.dim))),
        FlowArg::Backflow => solve(cli, gas, orbitals, occupation, Stack::new(vec![backflow; cli.layers])),
        FlowArg::Ferminet => solve(cli, gas, orbitals, occupation, Stack::new(vec![ferminet; cli.layers])),
    }
}

/// Trains the flow `flow` with the occupation model and writes the summary.
fn solve<B: Bijector<Dyn>, O: Estimated>(cli: &Cli, gas: &ElectronGas, orbitals: TwistedPlaneWaves, occupation: O, flow: B) -> Result<(), RunError> {
    let beta = gas.beta(cli.theta);
    let state = GasState::new(flow, orbitals.clone(), cli.particles).map_err(|e| invalid("--particles", cli.particles, &e.to_string()))?;
    let described = occupation.describe();
    let model = ThermalGas::new(state, occupation);
    if cli.optimiser == OptimiserArg::Sr {
        // Scores of every walker (Re and Im rows for the flow) and the smaller Gram matrix of each block.
        let b = cli.run.batch as f64;
        let blocks = [(2.0 * b, model.state.n_params() as f64), (b, model.occupation.n_params() as f64)];
        let bytes: f64 = blocks.iter().map(|(r, p)| 8.0 * (r * p + r.min(*p).powi(2))).sum();
        let budget = 8.0 * (1u64 << 30) as f64;
        if bytes > budget {
            return Err(invalid("--batch", format!("{} walkers with --optimiser sr = {:.1} GiB of scores", cli.run.batch, bytes / (1u64 << 30) as f64), "SR settings needing at most 8 GiB of memory"));
        }
    }
    let name = format!("electron_gas/N{}-d{}-rs{}-theta{}/{:?}-{:?}", cli.particles, cli.dim, cli.rs, cli.theta, cli.flow, cli.occupation).to_lowercase();

    let first = first_order_free_energy(&orbitals, cli.particles, beta, gas, cli.run.eval_samples, cli.run.seed ^ 0xf0);
    let objective = GasThermal::new(&model, gas, cli.run.batch);
    let factor = cli.occupation_lr_factor.unwrap_or(if cli.occupation == OccupationArg::Transformer { 0.05 } else { 1.0 });
    if !(factor.is_finite() && factor > 0.0) {
        return Err(invalid("--occupation-lr-factor", factor, "a finite factor > 0"));
    }
    let driver = match cli.optimiser {
        OptimiserArg::Adam => Driver::new(&name, objective).group_rate("occupation", factor),
        OptimiserArg::Sr => Driver::new(&name, objective.with_sr(SrConfig { damping: cli.sr_damping, max_norm: cli.sr_max_norm })).optimiser(Optimiser::Sgd { momentum: 0.0 }).group_rate("occupation", factor),
    };
    let trained = driver.run(&cli.run, cli)?;
    let est = O::final_estimate(&trained.objective, &trained.theta, cli.run.eval_samples, cli.run.seed)?;
    let t = &est.thermal;
    let free = free_electron_thermo(&orbitals, cli.particles, beta);
    let (n, rs2) = (cli.particles as f64, cli.rs * cli.rs);
    // Per electron in Ry (undefined at r_s = 0, where the Ry / r_s^2 unit is the only one).
    let per = |v: f64| (cli.rs > 0.0).then(|| v / (n * rs2));
    println!(
        "== UEG N = {}, d = {}, r_s = {}, Theta = {} ({} orbitals, {}): F = {:.5} +- {:.5}, E = {:.5} +- {:.5} (K = {:.5}, V = {:.5}), S = {:.4} (Ry / r_s^2, totals); first order F0 + <V>0 = {:.5} +- {:.5}; free F0 = {:.5}, S0 = {:.4}; m*/m = S/S0 = {:.4}",
        cli.particles,
        cli.dim,
        cli.rs,
        cli.theta,
        orbitals.len(),
        described,
        t.f.0,
        t.f.1,
        t.e.0,
        t.e.1,
        t.k.0,
        t.v.0,
        t.s,
        first.0,
        first.1,
        free.f,
        free.s,
        t.s / free.s
    );
    if let (Some(f), Some(e)) = (per(t.f.0), per(t.e.0)) {
        println!("   per electron: F/N = {f:.6} Ry, E/N = {e:.6} Ry");
    }
    trained.loss_plot("Free-energy estimate per step", "Ry / r_s^2", Some(("first order F0 + <V>0", first.0)))?;
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
        .insert("F_first_order", first.0)
        .insert("F_first_order_err", first.1)
        .insert("occupation_model", described)
        .insert("F_free", free.f)
        .insert("E_free", free.e)
        .insert("S_free", free.s)
        .insert("beta", beta)
        .insert("box_side", gas.side())
        .insert("orbitals", orbitals.len())
        .require_finite("F")?
        .write()?;
    Ok(())
}
