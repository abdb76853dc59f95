//! Variational NCT of a harmonic chain with fixed ends (unit masses, spring constant kappa).
//! Exact: omega_k = 2 sqrt(kappa) sin(k pi / (2(n+1))), F = -sum_k ln(2 pi / (beta omega_k)) / beta.
//!
//! `cargo run --release --example harmonic_chain -- --n 32 --model realnvp --couplings 8 --hidden 128,128 --batch 200 --steps 5000 --out runs/chain32`

use clap::{Parser, ValueEnum};
use nct::models::DynHarmonicChain;
use nct::run::classical::{estimate, plots, print_summary, summary, train_variational, ClassicalRun};
use nct::run::{exit_on_error, invalid, parse_with_defaults, LatentArgs, LatentKind, NetArgs, RunArgs, RunError};
use nct::*;
use serde::Serialize;
use serde_json::json;

nct::flow! {
    /// Six symmetric shears near the identity: exact for harmonic systems.
    pub struct ChainLinear: Symplectic<Dyn> { mix: LinearSymplectic { shears: 6, init_scale: 0.05 } }
}

nct::flow! {
    /// RealNVP point transformation; couplings and widths come from the command line.
    pub struct ChainNvp: Symplectic<Dyn> { point: PointTransform<RealNvp> { masks: halves } }
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, PartialEq)]
enum Model {
    /// Linear symplectic map (products of symmetric shears): exact for harmonic systems.
    Linear,
    /// Point transformation of a RealNVP (Q = f(q), P = (df/dq)^-T p).
    Realnvp,
}

#[derive(Parser, Serialize, Debug)]
#[command(about = "Variational neural canonical transformation of a harmonic chain (units: mass 1, k_B = 1)")]
struct Cli {
    /// Number of moving particles n (any n >= 1; >= 2 for --model realnvp).
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Spring constant kappa (> 0, energy / length^2).
    #[arg(long, default_value_t = 1.0)]
    kappa: f64,
    /// Inverse temperature beta (> 0).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Flow architecture.
    #[arg(long, value_enum, default_value_t = Model::Linear)]
    model: Model,
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
    let cli: Cli = parse_with_defaults(&[("couplings", "8"), ("hidden", "128,128"), ("steps", "6000"), ("batch", "128"), ("lr", "0.02"), ("omega_lr_factor", "10")]);
    exit_on_error(chain(&cli));
}

fn chain(cli: &Cli) -> Result<(), RunError> {
    if !(cli.kappa.is_finite() && cli.kappa > 0.0) {
        return Err(invalid("--kappa", cli.kappa, "a finite spring constant > 0"));
    }
    if cli.n == 0 || (cli.n < 2 && cli.model == Model::Realnvp) {
        return Err(invalid("--n", cli.n, "at least 1 particle (at least 2 for --model realnvp, whose couplings split the coordinates)"));
    }
    if cli.model == Model::Linear {
        nct::run::warn_ignored(&["--couplings", "--hidden"], "with --model linear");
    }
    let n = Dyn(cli.n);
    let h = DynHarmonicChain::new().with_n(cli.n).with_kappa(cli.kappa);
    cli.latent.warn_unused();
    match cli.latent.latent {
        LatentKind::Harmonic => with_flow(cli, &h, LatentOscillators::new(n, cli.beta).map_err(|e| invalid("--beta", cli.beta, &e.to_string()))?, ""),
        LatentKind::Anharmonic => with_flow(cli, &h, cli.latent.anharmonic(n, cli.beta)?, "/anharmonic"),
    }
}

fn with_flow<B: Latent<Dyn>>(cli: &Cli, h: &DynHarmonicChain, base: B, tag: &str) -> Result<(), RunError> {
    let n = Dyn(cli.n);
    match cli.model {
        Model::Linear => finish(cli, h, ClassicalNct::new(ChainLinear::new(n, cli.run.seed).map_err(|e| invalid("--n", cli.n, &e.to_string()))?, base).with_path_gradient(cli.latent.path_gradient), &format!("harmonic_chain/linear{tag}")),
        Model::Realnvp => {
            let flow = ChainNvp::builder(n).couplings(cli.net.couplings).hidden(&cli.net.hidden).build(cli.run.seed).map_err(|e| cli.net.invalid(e))?;
            finish(cli, h, ClassicalNct::new(flow, base).with_path_gradient(cli.latent.path_gradient), &format!("harmonic_chain/realnvp{tag}"))
        }
    }
}

fn finish<F: BatchedSymplectic<Dyn>, B: Latent<Dyn>>(cli: &Cli, h: &DynHarmonicChain, model: ClassicalNct<F, Dyn, B>, name: &str) -> Result<(), RunError> {
    let n = cli.n;
    let run: ClassicalRun = train_variational(&cli.run, cli, name, &model, h)?;
    let fe = estimate(&cli.run, &model, h, &run.theta);
    let f_exact = h.free_energy(cli.beta);
    let omega_exact = h.frequencies();
    let mut m = summary(&cli.run, &model, &run, Some(&fe), Some(f_exact));
    m.insert("omega_exact".into(), json!(omega_exact));
    // Learned normal modes: Jacobian rows dQ_k/dq averaged over model samples (signs aligned).
    let mut rng = SeedStream::new(cli.run.seed).named("modes");
    let mut rows = nalgebra::DMatrix::<f64>::zeros(n, n);
    let mut reference: Option<nalgebra::DMatrix<f64>> = None;
    for _ in 0..256 {
        let (x, _) = model.sample(&run.theta, &mut rng);
        let mut j = model.normal_modes(&run.theta, &x);
        let r = reference.get_or_insert_with(|| j.clone());
        for k in 0..n {
            if j.row(k).dot(&r.row(k)) < 0.0 {
                j.row_mut(k).neg_mut();
            }
        }
        rows += j;
    }
    let overlap: Vec<f64> = (0..2.min(n))
        .map(|k| {
            let row = rows.row(k);
            let exact = h.mode(k + 1);
            let dot: f64 = row.iter().zip(&exact).map(|(a, b)| a * b).sum();
            (dot / row.norm()).abs()
        })
        .collect();
    m.insert("mode_overlap".into(), json!(overlap));
    m.insert("n".into(), json!(n));
    m.insert("kappa".into(), json!(cli.kappa));
    plots(&run, &model, "H + ln q / beta", Some(("exact F", f_exact)), Some(&omega_exact))?;
    if let Some(d) = &run.dir {
        d.write_summary(&serde_json::Value::Object(m.clone()))?;
    }
    print_summary(&format!("harmonic chain n = {n}, {name}"), &m, run.dir.as_ref());
    println!("  omega_ex   [{}{}]", omega_exact.iter().take(8).map(|w| format!("{w:.4}")).collect::<Vec<_>>().join(", "), if n > 8 { ", ..." } else { "" });
    println!("  overlap    {overlap:.4?}");
    Ok(())
}
