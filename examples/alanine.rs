//! Maximum-likelihood NCT of alanine dipeptide (10 heavy atoms, 30 coordinates) on the shared
//! OpenMM data set: a RealNVP point transformation on latent harmonic oscillators. Reports the
//! slowest latent frequencies and how strongly each of the six slowest latent modes follows the
//! backbone dihedrals phi and psi (Mardia circular-linear correlation on held-out frames).
//!
//! Units: nm, amu, kJ/mol, ps (frequencies in 1/ps). Momenta are Maxwell-Boltzmann at --temperature.
//!
//! `cargo run --release --example alanine -- --out runs/alanine`

use clap::Parser;
use nct::models::alanine::{AlanineData, K_B, circular_linear_correlation, coordinate_masses};
use nct::models::data::block_split;
use nct::run::classical::{print_summary, summary, train_mle, plots};
use nct::run::plot::{Aspect, scatter_plot};
use nct::run::{exit_on_error, invalid, parse_with_defaults, LatentArgs, LatentKind, NetArgs, RunArgs, RunError};
use nct::*;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;

const N: usize = 30;

nct::flow! {
    /// RealNVP point transformation on the 30 heavy-atom coordinates, random masks; couplings and
    /// widths from the command line.
    pub struct AlanineFlow: Symplectic<30> { point: PointTransform<RealNvp> { masks: random } }
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "Maximum-likelihood NCT of alanine dipeptide (units: nm, amu, kJ/mol, ps)")]
struct Cli {
    /// Folder with positions.npy, dihedrals.npy and trajectories.json (the OpenMM data set of the
    /// project's shared data folder; the default is resolved from the crate root, not the working
    /// directory).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/alanine-dipeptide"))]
    data: PathBuf,
    /// Temperature in kelvin (> 0); beta = 1 / (k_B T) in mol/kJ.
    #[arg(long, default_value_t = 300.0)]
    temperature: f64,
    /// Keep every STRIDE-th frame of each trajectory (>= 1).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Fraction of every trajectory, taken from its end, held out for validation (0 to 0.9).
    #[arg(long, default_value_t = 0.2)]
    valid_fraction: f64,
    /// Gaussian noise (nm) added to training configurations (regularises the rigid-body directions).
    #[arg(long, default_value_t = 0.002)]
    jitter: f64,
    #[command(flatten)]
    #[serde(flatten)]
    net: NetArgs,
    #[command(flatten)]
    #[serde(flatten)]
    latent: LatentArgs,
    #[command(flatten)]
    #[serde(flatten)]
    run: RunArgs,
}

fn main() {
    let cli: Cli = parse_with_defaults(&[("couplings", "8"), ("hidden", "64,64"), ("steps", "3000"), ("batch", "128"), ("lr", "0.001"), ("eval_samples", "5000")]);
    exit_on_error(run(&cli));
}

fn run(cli: &Cli) -> Result<(), RunError> {
    if !(cli.temperature.is_finite() && cli.temperature > 0.0) {
        return Err(invalid("--temperature", cli.temperature, "a temperature in kelvin > 0"));
    }
    if cli.stride == 0 {
        return Err(invalid("--stride", 0, "at least 1 (every stride-th frame is used)"));
    }
    if !(cli.valid_fraction > 0.0 && cli.valid_fraction <= 0.9) {
        return Err(invalid("--valid-fraction", cli.valid_fraction, "above 0 and at most 0.9 (held-out frames are needed for the validation NLL and the correlations)"));
    }
    if !(cli.jitter.is_finite() && cli.jitter >= 0.0) {
        return Err(invalid("--jitter", cli.jitter, "a noise level >= 0 in nm"));
    }
    if !cli.data.join("positions.npy").exists() {
        return Err(RunError::Data {
            file: cli.data.clone(),
            why: "no positions.npy here. The alanine-dipeptide trajectories (OpenMM, 10 heavy atoms; see their README) are not part of the repository: \
                  they live in the shared data folder beside the project root (shared/data/alanine-dipeptide). Pass --data DIR to point at a copy"
                .into(),
        });
    }
    let data = AlanineData::load(&cli.data, cli.stride).map_err(|e| RunError::Input(e.to_string()))?;
    let (train_idx, valid_idx) = block_split(&data.blocks, cli.valid_fraction);
    let train: Vec<_> = train_idx.iter().map(|&i| data.frames[i]).collect();
    let valid: Vec<_> = valid_idx.iter().take(cli.run.eval_samples).map(|&i| data.frames[i]).collect();
    if valid.len() < 2 || train.len() < 2 {
        return Err(invalid("--stride/--valid-fraction", format!("{}/{}", cli.stride, cli.valid_fraction), &format!("settings that leave at least 2 training and 2 held-out frames (they leave {} and {})", train.len(), valid.len())));
    }
    println!("alanine dipeptide: {} frames ({} training, {} held out, contiguous blocks)", data.frames.len(), train.len(), valid_idx.len());
    let beta = 1.0 / (K_B * cli.temperature);
    let masses = coordinate_masses();
    let flow = AlanineFlow::builder().couplings(cli.net.couplings).hidden(&cli.net.hidden).build(cli.run.seed).map_err(|e| cli.net.invalid(e))?;
    // Latent frequencies start near the data's own scale: sqrt(k_B T / (m var)) per coordinate.
    let nt = train.len() as f64;
    let mean = train.iter().fold(Vector::<f64, Const<N>>::zeros(Const), |a, x| a + *x).map(|v| v / nt);
    let var = train.iter().fold(Vector::<f64, Const<N>>::zeros(Const), |a, x| a + (x - &mean).map(|d| d * d)).map(|v| v / nt);
    let w0: Vec<f64> = (0..N).map(|i| (1.0 / (beta * masses[i] * (var[i] + cli.jitter * cli.jitter))).sqrt()).collect();
    // The flow maps latent z to configurations centred on the mean structure.
    let centred: Vec<_> = train.iter().map(|x| x - mean).collect();
    let vc: Vec<_> = valid.iter().map(|x| x - mean).collect();
    let held_out = HeldOut { data: &data, valid_idx: &valid_idx, frames: &vc, masses: &masses };
    let bad_t = |e: ConfigError| invalid("--temperature", cli.temperature, &e.to_string());
    cli.latent.warn_unused();
    nct::run::warn_ignored(&["--path-gradient"], "with maximum-likelihood training");
    match cli.latent.latent {
        LatentKind::Harmonic => {
            let base = LatentOscillators::new(Const::<N>, beta).and_then(|b| b.with_initial_frequencies(&w0)).map_err(bad_t)?;
            finish(cli, ClassicalNct::new(flow, base), "alanine/realnvp", &centred, &held_out)
        }
        LatentKind::Anharmonic => {
            let base = cli.latent.anharmonic(Const::<N>, beta)?.with_initial_frequencies(&w0).map_err(bad_t)?;
            finish(cli, ClassicalNct::new(flow, base), "alanine/realnvp/anharmonic", &centred, &held_out)
        }
    }
}

/// The held-out frames (centred) and what the analysis needs beside them.
struct HeldOut<'a> {
    data: &'a AlanineData,
    valid_idx: &'a [usize],
    frames: &'a [Vector<f64, Const<N>>],
    masses: &'a Vector<f64, Const<N>>,
}

fn finish<B: Latent<Const<N>>>(cli: &Cli, model: ClassicalNct<AlanineFlow, Const<N>, B>, name: &str, centred: &[Vector<f64, Const<N>>], held: &HeldOut) -> Result<(), RunError> {
    let (data, valid_idx, vc, masses) = (held.data, held.valid_idx, held.frames, held.masses);
    let run = train_mle(&cli.run, cli, name, &model, centred, masses, cli.jitter)?;
    let (nll, nll_err) = model.mean_nll(&run.theta, vc, masses, &BatchEngine::new(8), &SeedStream::new(cli.run.seed ^ 0x5eed));
    let mut m = summary(&cli.run, &model, &run, None, None);
    let omega = model.frequencies(&run.theta);
    m.insert("slowest_omega".into(), json!(&omega[..2]));
    m.insert("valid_nll".into(), json!(nll));
    m.insert("valid_nll_err".into(), json!(nll_err));
    m.insert("temperature".into(), json!(cli.temperature));
    // Latent coordinates of held-out frames (Q = f^{-1}(q) does not depend on p for a point map).
    let tf = model.split(&run.theta).0;
    let order = model.mode_order(&run.theta);
    let zs: Vec<PhasePoint<f64, Const<N>>> = vc.iter().map(|q| model.flow.inverse(tf, &PhasePoint::new(*q, Vector::zeros(Const)))).collect();
    let phi: Vec<f64> = valid_idx.iter().take(vc.len()).map(|&i| data.dihedrals[i].0).collect();
    let psi: Vec<f64> = valid_idx.iter().take(vc.len()).map(|&i| data.dihedrals[i].1).collect();
    let mut modes = Vec::new();
    println!("\n  rank  omega (1/ps)  corr(Q, phi)  corr(Q, psi)");
    for (rank, &k) in order.iter().take(6).enumerate() {
        let q: Vec<f64> = zs.iter().map(|z| z.q[k]).collect();
        let (cphi, cpsi) = (circular_linear_correlation(&q, &phi), circular_linear_correlation(&q, &psi));
        println!("  {rank:<5} {:<13.4} {cphi:<13.3} {cpsi:.3}", omega[rank]);
        modes.push(json!({"rank": rank, "omega": omega[rank], "corr_phi": cphi, "corr_psi": cpsi}));
    }
    m.insert("slow_modes".into(), json!(modes));
    plots(&run, &model, "-ln q (per frame)", None, None)?;
    if let Some(d) = &run.dir {
        let pts: Vec<(f64, f64, f64)> = zs.iter().zip(&phi).map(|(z, &p)| (z.q[order[0]], z.q[order[1]], p)).collect();
        scatter_plot(d.path(), "latent_phi", "Two slowest latent coordinates", "Q_1 (slowest)", "Q_2", &pts, "phi (rad)", Aspect::Free)?;
        let pts: Vec<(f64, f64, f64)> = zs.iter().zip(&psi).map(|(z, &p)| (z.q[order[0]], z.q[order[1]], p)).collect();
        scatter_plot(d.path(), "latent_psi", "Two slowest latent coordinates", "Q_1 (slowest)", "Q_2", &pts, "psi (rad)", Aspect::Free)?;
        d.write_summary(&serde_json::Value::Object(m.clone()))?;
    }
    print_summary("alanine dipeptide (maximum likelihood)", &m, run.dir.as_ref());
    println!("  valid NLL  {nll:.3} +- {nll_err:.3} per frame (phase space, nm/amu/kJ/mol units)");
    Ok(())
}
