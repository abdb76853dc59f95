//! Quantum NCT for anharmonic crystals: solid lithium with the DeepPot-SE models of Zhang, Wang,
//! Shi, Ren, Wang & Wang, "Neural Canonical Transformations for Quantum Anharmonic Solids of
//! Lithium", PRL 134, 246101 (2025) (weights: github.com/zhangqi94/lithium, Apache-2.0, bundled in
//! ncT-models/data/lithium with the licence).
//!
//! The 3N - 3 phonon modes Q of a supercell carry the density matrix
//! rho = sum_n p_n |psi_n><psi_n|, psi_n(Q) = prod_k phi_{n_k}(z_k) |det dz/dQ|^1/2 with z = f(Q)
//! (per-mode scale and shift, then RealNVP couplings) and p_n independent categorical occupations
//! per mode (PSA) that start at the harmonic Boltzmann law. F = E_n~p[T ln p_n + E_loc] is
//! minimised; samples are exact (n ~ p, z ~ |phi_n|^2, Q = f^-1(z)): no Markov chain.
//! Units: K and Å inside; the summary reports meV/atom, k_B/atom and GPa.
//!
//! `cargo run --release --example crystal -- --structure bcc --supercell 2 --temperature 50 --out runs/bcc222`
//! `cargo run --release --example crystal -- --model harmonic --flow identity --steps 50 --out runs/bcc222-harmonic`

use clap::{Parser, ValueEnum};
use nct::driver::{Driver, Objective, ThermalEstimate, Trained};
use nct::models::solid::structure::{UnitCell, estimated_volume_from_pressure};
use nct::models::solid::thermal::{crystal_states, estimate, thermal_model};
use nct::models::solid::npt::{NptSettings, NptThermal};
use nct::models::solid::{CrystalModes, CrystalPotential, DeepPot, HarmonicModes, Isotope, K_PER_A3_TO_GPA, K_TO_MEV, Supercell};
use nct::quantum::occupation::{OccupationModel, ThermalNct};
use nct::run::plot::level_plot;
use nct::run::{NetArgs, RunArgs, RunDir, RunError, exit_on_error, invalid, parse_with_defaults, warn_ignored};
use nct::*;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum StructureArg {
    Bcc,
    Fcc,
    #[value(name = "cI16")]
    #[serde(rename = "cI16")]
    CI16,
}

impl StructureArg {
    fn file(self) -> &'static str {
        match self {
            StructureArg::Bcc => "bcc",
            StructureArg::Fcc => "fcc",
            StructureArg::CI16 => "cI16",
        }
    }
    /// The densities of the reference data (`supercells.json`).
    fn default_volume(self) -> f64 {
        match self {
            StructureArg::Bcc => 19.515776,
            StructureArg::Fcc => 19.542997,
            StructureArg::CI16 => 7.2,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum ModelArg {
    Dp4,
    Dp0,
    /// The quadratic expansion at the lattice of the --harmonic-of model (exactly solvable).
    Harmonic,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum DpArg {
    Dp4,
    Dp0,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum FlowArg {
    /// No flow: harmonic product states.
    Identity,
    /// Per-mode scale and shift only.
    Scale,
    /// Per-mode scale and shift, then --couplings RealNVP couplings (even/odd masks).
    Realnvp,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum IsotopeArg {
    /// Natural lithium (6.941 u).
    Li,
    Li6,
    Li7,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum OccupationArg {
    /// Independent categorical occupations per mode (PSA, the reference's probability table).
    Psa,
    /// Autoregressive occupations over the modes (VAN; NVT only).
    Van,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum LaplacianArg {
    Jet,
    Hutchinson,
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "Quantum NCT for solid lithium over the phonon modes of a supercell (DeepPot-SE potentials)")]
struct Cli {
    #[arg(long, value_enum, default_value_t = StructureArg::Bcc)]
    structure: StructureArg,
    /// Unit cells along each axis (1..=8).
    #[arg(long, default_value_t = 2)]
    supercell: usize,
    /// Volume per atom in Å³ (default: 19.515776 bcc, 19.542997 fcc, 7.2 cI16).
    #[arg(long)]
    volume_per_atom: Option<f64>,
    /// Pressure in GPa: constant-pressure run. The start volume comes from the reference's fit V(P)
    /// of lithium (or --volume-per-atom); the box then relaxes along the stress (--npt-* flags).
    #[arg(long)]
    pressure: Option<f64>,
    /// Box update every this many steps (NPT).
    #[arg(long, default_value_t = 10)]
    npt_every: u64,
    /// First step with a box update (NPT).
    #[arg(long, default_value_t = 50)]
    npt_begin: u64,
    /// Box step size in Å per GPa of stress excess (NPT; the reference's relax_lr).
    #[arg(long, default_value_t = 0.1)]
    npt_lr: f64,
    /// Decay of the box step size per update, and its floor (NPT).
    #[arg(long, default_value_t = 0.97)]
    npt_decay: f64,
    #[arg(long, default_value_t = 0.02)]
    npt_min_lr: f64,
    /// Steps whose stresses are averaged for a box update (NPT).
    #[arg(long, default_value_t = 10)]
    npt_recent: usize,
    /// Temperature in K (> 0).
    #[arg(long, default_value_t = 50.0)]
    temperature: f64,
    #[arg(long, value_enum, default_value_t = ModelArg::Dp4)]
    model: ModelArg,
    /// The DeepPot model whose quadratic expansion --model harmonic uses.
    #[arg(long, value_enum, default_value_t = DpArg::Dp4)]
    harmonic_of: DpArg,
    /// A DeepPot-SE safetensors file instead of the bundled dp4/dp0 weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A POSCAR unit cell (orthorhombic, Direct) instead of the bundled --structure file.
    #[arg(long)]
    poscar: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = IsotopeArg::Li)]
    isotope: IsotopeArg,
    /// Levels per mode of the occupations (>= 1).
    #[arg(long, default_value_t = 20)]
    levels: usize,
    #[arg(long, value_enum, default_value_t = FlowArg::Realnvp)]
    flow: FlowArg,
    #[arg(long, value_enum, default_value_t = OccupationArg::Psa)]
    occupation: OccupationArg,
    /// Hidden tanh width of each VAN conditional (0: one-layer VAN).
    #[arg(long, default_value_t = 0)]
    van_hidden: usize,
    /// Laplacian of the local energy: exact (jet) or Hutchinson with --probes Rademacher vectors.
    #[arg(long, value_enum, default_value_t = LaplacianArg::Jet)]
    laplacian: LaplacianArg,
    #[arg(long, default_value_t = 1)]
    probes: usize,
    /// Learning-rate factor of the occupation logits over --lr (the reference: 2e-2 vs 5e-4).
    #[arg(long, default_value_t = 40.0)]
    occupation_lr_factor: f64,
    /// Samples per state of the anharmonic phonon energies E(e_k) - E(0) after training (0: off).
    #[arg(long, default_value_t = 0)]
    phonon_samples: usize,
    #[command(flatten)]
    #[serde(flatten)]
    net: NetArgs,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

const EVAL_FLAGS: &[&str] = &["phonon_samples"];

fn main() {
    let cli: Cli = parse_with_defaults(&[("couplings", "6"), ("hidden", "128,128"), ("steps", "1500"), ("batch", "64"), ("lr", "0.0005"), ("eval_samples", "4096")]);
    exit_on_error(run(&cli));
}

fn data(name: &str) -> PathBuf {
    nct::models::solid::data_dir().join(name)
}

fn run(cli: &Cli) -> Result<(), RunError> {
    cli.run.validate()?;
    cli.run.init_threads();
    if !(1..=8).contains(&cli.supercell) {
        return Err(invalid("--supercell", cli.supercell, "1..=8 unit cells per axis"));
    }
    if !(cli.temperature > 0.0 && cli.temperature.is_finite()) {
        return Err(invalid("--temperature", cli.temperature, "a positive temperature in K"));
    }
    if !(1..=200).contains(&cli.levels) {
        return Err(invalid("--levels", cli.levels, "1..=200 levels per mode"));
    }
    if cli.laplacian == LaplacianArg::Hutchinson && cli.probes == 0 {
        return Err(invalid("--probes", cli.probes, "at least 1 probe"));
    }
    if !(cli.occupation_lr_factor >= 0.0 && cli.occupation_lr_factor.is_finite()) {
        return Err(invalid("--occupation-lr-factor", cli.occupation_lr_factor, "a non-negative number"));
    }
    if cli.model != ModelArg::Harmonic {
        warn_ignored(&["--harmonic-of"], "without --model harmonic");
    }
    if cli.flow != FlowArg::Realnvp {
        warn_ignored(&["--couplings", "--hidden"], "without --flow realnvp");
    }
    let volume = match (cli.pressure, cli.volume_per_atom) {
        (Some(p), _) if !(p.is_finite() && (0.0..=100.0).contains(&p)) => return Err(invalid("--pressure", p, "0..=100 GPa (the range of the reference's fit V(P))")),
        (_, Some(v)) => v,
        (Some(p), None) => estimated_volume_from_pressure(p),
        (None, None) => cli.structure.default_volume(),
    };
    if cli.pressure.is_none() {
        warn_ignored(&["--npt-every", "--npt-begin", "--npt-lr", "--npt-decay", "--npt-min-lr", "--npt-recent"], "without --pressure");
    } else if cli.npt_every == 0 || cli.npt_recent == 0 || !(cli.npt_lr >= 0.0 && cli.npt_min_lr >= 0.0 && cli.npt_decay > 0.0) {
        return Err(invalid("--npt-every/--npt-recent/--npt-lr/--npt-decay/--npt-min-lr", format!("{}/{}/{}/{}/{}", cli.npt_every, cli.npt_recent, cli.npt_lr, cli.npt_decay, cli.npt_min_lr), "every and recent >= 1, rates >= 0, decay > 0"));
    }
    if !(volume > 1.0 && volume < 200.0) {
        return Err(invalid("--volume-per-atom", volume, "1..200 Å³ per atom"));
    }
    let poscar = cli.poscar.clone().unwrap_or_else(|| data(&format!("structures/{}.vasp", cli.structure.file())));
    let unit = UnitCell::read_poscar(&poscar).map_err(|e| RunError::Input(e.to_string()))?;
    let cubic = cli.poscar.is_none();
    let lattice = Supercell::new(&unit, [cli.supercell; 3], volume, cubic).map_err(|e| RunError::Input(e.to_string()))?;
    let n = lattice.num_atoms();
    // Sizes that cannot fit are refused up front, with the estimate: the Hessian and its
    // eigenvectors (three 3N x 3N matrices) dominate memory.
    let hessian_bytes = 3.0 * (3.0 * n as f64).powi(2) * 8.0;
    if hessian_bytes > 8.0 * (1u64 << 30) as f64 {
        return Err(invalid("--supercell", cli.supercell, &format!("a cell whose Hessian fits in 8 GiB ({n} atoms need {:.1} GiB)", hessian_bytes / (1u64 << 30) as f64)));
    }
    let dp_arg = match cli.model {
        ModelArg::Dp4 => DpArg::Dp4,
        ModelArg::Dp0 => DpArg::Dp0,
        ModelArg::Harmonic => cli.harmonic_of,
    };
    let weights = cli.weights.clone().unwrap_or_else(|| data(if dp_arg == DpArg::Dp4 { "dp4.safetensors" } else { "dp0.safetensors" }));
    let dp = Arc::new(DeepPot::load(&weights).map_err(|e| RunError::Input(e.to_string()))?);
    let images = dp.images(lattice.lengths).map_err(|e| RunError::Input(e.to_string()))?;
    let m_eff = match cli.isotope {
        IsotopeArg::Li => Isotope::Natural,
        IsotopeArg::Li6 => Isotope::Li6,
        IsotopeArg::Li7 => Isotope::Li7,
    }
    .effective_mass();
    let t0 = Instant::now();
    let modes = HarmonicModes::new(&dp, &images, &lattice, m_eff).map_err(|e| RunError::Input(format!("{} at {volume} Å³/atom: {e}", poscar.display())))?;
    let hessian_seconds = t0.elapsed().as_secs_f64();
    if modes.negative > 0 && cli.model == ModelArg::Harmonic {
        return Err(invalid("--model", "harmonic", &format!("a lattice without imaginary modes: the expansion at {volume} Å³/atom has {} negative eigenvalues, so it is unbounded below", modes.negative)));
    }
    if modes.negative > 0 {
        eprintln!("warning: {} imaginary harmonic modes (negative eigenvalues, taken as |λ| like the reference): the lattice is not a minimum of {}", modes.negative, dp.name);
    }
    let potential = match cli.model {
        ModelArg::Harmonic => CrystalPotential::Harmonic,
        _ => CrystalPotential::DeepPot { model: dp.clone(), images },
    };
    let h = CrystalModes::new(modes, potential);
    let d = Dyn(h.modes.modes());
    let mut rng = SeedStream::new(cli.run.seed).named("flow");
    match cli.flow {
        FlowArg::Identity => train(cli, &h, dp, IdentityFlow::new(d), hessian_seconds),
        FlowArg::Scale => train(cli, &h, dp, DiagonalAffine::new(d), hessian_seconds),
        FlowArg::Realnvp => {
            let nvp = cli.net.real_nvp(d, MaskScheme::EvenOdd, &mut rng)?;
            train(cli, &h, dp, Chain::new(DiagonalAffine::new(d), nvp), hessian_seconds)
        }
    }
}

fn train<B: Bijector<Dyn> + Clone + Send + Sync>(cli: &Cli, h: &CrystalModes, dp: Arc<DeepPot>, flow: B, hessian_seconds: f64) -> Result<(), RunError> {
    let n = h.num_atoms() as f64;
    let omega = h.omega();
    let t = cli.temperature;
    let laplacian = match cli.laplacian {
        LaplacianArg::Jet => LaplacianMethod::Jet,
        LaplacianArg::Hutchinson => LaplacianMethod::Hutchinson { probes: cli.probes },
    };
    let dir = RunDir::open_with_control(&cli.run, cli, EVAL_FLAGS)?;
    let name = format!("crystal/{}{}/{}", cli.structure.file(), cli.supercell, match cli.flow {
        FlowArg::Identity => "identity",
        FlowArg::Scale => "scale",
        FlowArg::Realnvp => "scale+realnvp",
    });
    let (fh_full, fh_trunc) = h.modes.harmonic_free_energy(t, cli.levels);
    println!("{} atoms, {} modes, {:.6} Å³/atom (L = {:.6} Å), V0 = {:.6} meV/atom, harmonic F_h + V0 = {:.6} meV/atom ({} levels; {:.6} untruncated); Hessian {:.2} s",
        n, omega.len(), h.volume() / n, h.modes.lattice.lengths[0], h.modes.v0 / n * K_TO_MEV, (h.modes.v0 + fh_trunc) / n * K_TO_MEV, cli.levels, (h.modes.v0 + fh_full) / n * K_TO_MEV, hessian_seconds);
    match cli.pressure {
        None if cli.occupation == OccupationArg::Van => {
            let omega = h.omega();
            let occupation = AutoregressiveOccupation::new(1.0 / t, &omega, cli.levels).with_hidden(cli.van_hidden);
            let model = ThermalNct::new(crystal_states(h, flow, cli.levels, laplacian), occupation, Some(omega.clone())).map_err(|e| invalid("--levels", cli.levels, &e.to_string()))?;
            let trained = Driver::new(&name, nct::driver::Thermal::new(&model, h, cli.run.batch)).group_rate("occupation", cli.occupation_lr_factor).run_in(&cli.run, dir)?;
            report(cli, &trained, &model, h, Map::new())
        }
        None => {
            let model = thermal_model(h, flow, t, cli.levels, laplacian).map_err(|e| invalid("--levels", cli.levels, &e))?;
            let trained = Driver::new(&name, nct::driver::Thermal::new(&model, h, cli.run.batch)).group_rate("occupation", cli.occupation_lr_factor).run_in(&cli.run, dir)?;
            report(cli, &trained, &model, h, Map::new())
        }
        Some(p) => {
            if cli.model == ModelArg::Harmonic {
                return Err(invalid("--pressure", p, "a DeepPot model (--model dp4|dp0): the harmonic expansion has no volume dependence"));
            }
            if cli.occupation == OccupationArg::Van {
                return Err(invalid("--occupation", "van", "psa at constant pressure (the box updates rebuild PSA occupations at the new harmonic frequencies)"));
            }
            let settings = NptSettings { pressure: p, begin: cli.npt_begin, every: cli.npt_every, lr: cli.npt_lr, decay: cli.npt_decay, min_lr: cli.npt_min_lr, recent: cli.npt_recent, cubic: cli.poscar.is_none() };
            let log = dir.as_ref().map(|d| d.path().join("box.jsonl"));
            let resumed = dir.as_ref().is_some_and(|d| d.is_resumed());
            let npt = NptThermal::new(flow, cli.levels, t, laplacian, dp, h.modes.lattice.clone(), h.modes.effective_mass, settings, cli.run.batch, log, resumed).map_err(RunError::Input)?;
            let trained = Driver::new(&name, npt).group_rate("occupation", cli.occupation_lr_factor).run_in(&cli.run, dir)?;
            let (lengths, hf, model) = trained.objective.current();
            let traj = trained.objective.trajectory();
            let mut extra = Map::new();
            extra.insert("npt".into(), json!({
                "pressure_target_GPa": p,
                "settings": settings,
                "volume_per_atom_start_A3": h.volume() / n,
                "volume_per_atom_A3": lengths.iter().product::<f64>() / n,
                "box_lengths_A": lengths,
                "box_every_update": traj.iter().enumerate().filter(|(k, l)| *k == 0 || **l != traj[k - 1]).map(|(k, l)| json!({"step": k, "box_A": l})).collect::<Vec<_>>(),
            }));
            println!("NPT at {p} GPa: box {:.6} -> {:.6} Å ({:.6} -> {:.6} Å³/atom)", h.modes.lattice.lengths[0], lengths[0], h.volume() / n, lengths.iter().product::<f64>() / n);
            report(cli, &trained, &model, &hf, extra)
        }
    }
}

/// Final estimates on the trained model over the crystal `h` (the last box of an NPT run), the
/// summary and the plots.
fn report<B: Bijector<Dyn>, O: OccupationModel, Obj: Objective>(cli: &Cli, trained: &Trained<Obj>, model: &ThermalNct<B, O, Dyn>, h: &CrystalModes, mut summary: Map<String, Value>) -> Result<(), RunError> {
    let n = h.num_atoms() as f64;
    let omega = h.omega();
    let t = cli.temperature;
    let (fh_full, fh_trunc) = h.modes.harmonic_free_energy(t, cli.levels);
    let v0 = h.modes.v0;
    let t_eval = Instant::now();
    let est = estimate(model, h, &trained.theta, cli.run.eval_samples, cli.run.seed).map_err(|e| RunError::NoEstimate { what: "free energy".into(), why: e.0 })?;
    let eval_seconds = t_eval.elapsed().as_secs_f64();
    let per_atom = |x: (f64, f64)| (x.0 / n * K_TO_MEV, x.1 / n * K_TO_MEV);
    let (f, e, k, v) = (per_atom(est.f), per_atom(est.e), per_atom(est.k), per_atom(est.v));
    let s = est.s / n;
    let f_h = (v0 + fh_trunc) / n * K_TO_MEV;
    summary.insert("units".into(), json!("meV/atom (F, E, K, V, G; F, E and V include V0/N), k_B/atom (S), GPa (P, stress), meV (phonon energies)"));
    summary.insert("structure".into(), json!(cli.structure.file()));
    summary.insert("num_atoms".into(), json!(h.num_atoms()));
    summary.insert("num_modes".into(), json!(omega.len()));
    summary.insert("volume_per_atom_A3".into(), json!(h.volume() / n));
    summary.insert("box_lengths_A".into(), json!(h.modes.lattice.lengths));
    summary.insert("temperature_K".into(), json!(t));
    summary.insert("potential".into(), json!(match cli.model {
        ModelArg::Harmonic => format!("harmonic expansion of {:?}", cli.harmonic_of).to_lowercase(),
        _ => format!("{:?}", cli.model).to_lowercase(),
    }));
    summary.insert("V0".into(), json!(v0 / n * K_TO_MEV));
    summary.insert("F_harmonic".into(), json!(f_h));
    summary.insert("F_harmonic_untruncated".into(), json!((v0 + fh_full) / n * K_TO_MEV));
    summary.insert("F_minus_F_harmonic".into(), json!(f.0 - f_h));
    let mut pressure_text = String::new();
    if let (Some(p), Some(st)) = (est.pressure, est.stress) {
        let gpa = (p.0 * K_PER_A3_TO_GPA, p.1 * K_PER_A3_TO_GPA);
        // G = F + P V per atom, P V in K then meV.
        let g = f.0 + p.0 * h.volume() / n * K_TO_MEV;
        summary.insert("P_GPa".into(), json!(gpa.0));
        summary.insert("P_GPa_err".into(), json!(gpa.1));
        summary.insert("stress_GPa".into(), json!(st.map(|s| s.0 * K_PER_A3_TO_GPA)));
        summary.insert("stress_GPa_err".into(), json!(st.map(|s| s.1 * K_PER_A3_TO_GPA)));
        summary.insert("G".into(), json!(g));
        summary.insert("G_err".into(), json!((f.1.powi(2) + (p.1 * h.volume() / n * K_TO_MEV).powi(2)).sqrt()));
        pressure_text = format!(", P = {:.4} ± {:.4} GPa, G = {g:.4}", gpa.0, gpa.1);
    }
    let w_mev: Vec<f64> = omega.iter().map(|w| w * K_TO_MEV).collect();
    summary.insert("phonon_harmonic_meV".into(), json!(w_mev));
    summary.insert("eval_seconds".into(), json!(eval_seconds));
    summary.insert("eval_rejected".into(), json!(est.rejected));
    println!("== {} {}x{}x{} at {t} K: F = {:.4} ± {:.4}, E = {:.4} ± {:.4}, K = {:.4} ± {:.4}, V = {:.4} ± {:.4} meV/atom, S = {s:.5} k_B/atom{pressure_text}; F - F_h = {:.4} meV/atom",
        cli.structure.file(), cli.supercell, cli.supercell, cli.supercell, f.0, f.1, e.0, e.1, k.0, k.1, v.0, v.1, f.0 - f_h);
    if cli.phonon_samples > 0 {
        let (anh, errs) = phonons(model, h, &trained.theta, cli.phonon_samples, cli.run.seed);
        summary.insert("phonon_anharmonic_meV".into(), json!(anh));
        summary.insert("phonon_anharmonic_meV_err".into(), json!(errs));
        if let Some(dir) = &trained.dir {
            // Every fifth mode is labelled (45 labels and more would overlap).
            let names: Vec<String> = (0..anh.len()).map(|k| if k % 5 == 0 { k.to_string() } else { String::new() }).collect();
            level_plot(dir.path(), "phonons", "Phonon energies E(e_k) - E(0) by mode k: trained flow (blue) vs harmonic (red)", "energy (meV)", &anh.iter().zip(&errs).map(|(a, b)| (*a, *b)).collect::<Vec<_>>(), &w_mev, &names)?;
        }
    }
    trained.loss_plot("Free-energy estimate per step (whole cell)", "K", Some(("harmonic F_h + V0", v0 + fh_trunc)))?;
    let thermal = ThermalEstimate { f, e, k, v, s, rejected: est.rejected, drawn: est.samples };
    let std = trained.summary().thermal(&thermal).require_finite("F")?.into_value();
    let Value::Object(mut all) = std else { unreachable!("a summary is a JSON object") };
    all.extend(summary);
    if let Some(d) = &trained.dir {
        d.write_summary(&Value::Object(all))?;
        println!("  run dir {}", d.path().display());
    }
    Ok(())
}

/// Anharmonic phonon energies $E(e_k) - E(0)$ (meV) of the trained flow: the energy of every
/// single-phonon state minus the ground state's, with the standard error of the difference.
fn phonons<B: Bijector<Dyn>, O: OccupationModel>(model: &ThermalNct<B, O, Dyn>, h: &CrystalModes, theta: &[f64], samples: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let (tf, _) = model.split(theta);
    let d = h.modes.modes();
    let labels: Vec<Vec<usize>> = (0..=d).map(|k| (0..d).map(|i| usize::from(k > 0 && i == k - 1)).collect()).collect();
    let e = model.states.state_energies(tf, h, &labels, samples, &BatchEngine::new(8), &SeedStream::new(seed ^ 0x9407));
    let (e0, s0) = (e[0].energy, e[0].error);
    e[1..].iter().map(|s| ((s.energy - e0) * K_TO_MEV, (s.error.powi(2) + s0 * s0).sqrt() * K_TO_MEV)).unzip()
}

