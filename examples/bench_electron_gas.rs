//! Cost of one finite-temperature iteration of the uniform electron gas per walker, split into
//! sampling (occupation sample through the transformer's key-value cache, plane-wave DPP, inverse
//! flow), local energy (jet Laplacian through the flow with the analytic Hessian of ln Phi, Ewald
//! potential), gradient (one VJP of the flow and one backward pass of the transformer) and
//! stochastic reconfiguration (two more VJPs per walker for the complex scores and the
//! sample-space solve). The system is CoulombGas's benchmark: N = 13 polarised electrons in 2D,
//! r_s = 10, Theta = 0.15, E_max = 25 (81 plane waves), the transformer of CoulombGas's sizes and
//! two periodic backflow layers at non-trivial parameters (`--flow backflow`) or one FermiNet-style
//! flow of CoulombGas's sizes (depth 2, widths 16; `--flow ferminet`). Run it with
//! RAYON_NUM_THREADS=1 to read CPU-seconds per walker.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release --example bench_electron_gas [-- --particles 13 --walkers 256 --flow ferminet]`

use clap::{Parser, ValueEnum};
use nct::batch::SeedStream;
use nct::models::electron_gas::ElectronGas;
use nct::periodic::{FermiNetBackflow, GasState, GasThermal, PeriodicBackflow, ThermalGas, TransformerOccupation};
use nct::sr::SrConfig;
use nct::*;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Electron-gas benchmark: sampling, local energy, gradient and SR per walker")]
struct Cli {
    /// Electrons N (2..=61).
    #[arg(long, default_value_t = 13)]
    particles: usize,
    /// Walkers of the timed batch (>= 2).
    #[arg(long, default_value_t = 256)]
    walkers: usize,
    /// Density parameter r_s (>= 0).
    #[arg(long, default_value_t = 10.0)]
    rs: f64,
    /// The flow timed.
    #[arg(long, value_enum, default_value_t = Flow::Backflow)]
    flow: Flow,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Flow {
    /// Two periodic pair-backflow layers of 5 shells.
    Backflow,
    /// One FermiNet-style flow, depth 2, one- and two-body widths 16.
    Ferminet,
}

fn main() {
    let cli = Cli::parse();
    if !(2..=61).contains(&cli.particles) || cli.walkers < 2 || !(cli.rs >= 0.0 && cli.rs.is_finite()) {
        eprintln!("error: invalid value: --particles must be in 2..=61, --walkers >= 2 and --rs a finite number >= 0");
        std::process::exit(2);
    }
    let gas = ElectronGas::new(cli.particles, 2, cli.rs).expect("valid gas");
    match cli.flow {
        Flow::Backflow => bench(&cli, &gas, Stack::new(vec![PeriodicBackflow::new(cli.particles, &[gas.side(); 2], 5).expect("valid backflow"); 2])),
        Flow::Ferminet => bench(&cli, &gas, FermiNetBackflow::new(cli.particles, &[gas.side(); 2], 2, 16, 16).and_then(|f| f.with_output_scale(0.1)).expect("valid flow")),
    }
}

fn bench<B: Bijector<Dyn>>(cli: &Cli, gas: &ElectronGas, flow: B) {
    let n = cli.particles;
    let beta = gas.beta(0.15);
    let pw = gas.orbitals(&[0.25, 0.25], 25).expect("valid basis");
    let tr = TransformerOccupation::new(n, &pw.energies(), beta).expect("valid transformer");
    let model = ThermalGas::new(GasState::new(flow, pw, n).expect("valid state"), tr);
    let mut theta = model.new_params(&mut SeedStream::new(1).named("init"));
    if cli.flow == Flow::Backflow {
        for (k, t) in theta.iter_mut().enumerate().take(10) {
            *t = 0.5 * (1.3 * k as f64 + 0.2).sin();
        }
    }
    let obj = GasThermal::new(&model, gas, cli.walkers);
    let w = cli.walkers as f64;
    let stream = SeedStream::new(2);
    // Sampling alone: the occupation and the positions.
    let (tf, to) = model.split(&theta);
    let t0 = Instant::now();
    let ready = nct::periodic::OrbitalOccupation::ready(&model.occupation, to);
    let mut rng = stream.rng(0, 0);
    let draws: Vec<(Vec<usize>, Vector<f64, Dyn>)> = (0..cli.walkers)
        .map(|_| {
            let (occ, _) = nct::periodic::OrbitalOccupation::sample(&model.occupation, &ready, &mut rng);
            let x = model.state.sample(tf, &occ, &mut rng);
            (occ, x)
        })
        .collect();
    let sampling = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut e = 0.0;
    for (occ, x) in &draws {
        e += model.state.local_kinetic(tf, occ, x.as_slice()).map_or(f64::NAN, |k| k.re) + nct::periodic::CellPotential::potential(gas, x.as_slice());
    }
    let local = t0.elapsed().as_secs_f64();
    // The whole iteration (samples, local energies, gradient), then with SR.
    let t0 = Instant::now();
    let step = obj.step(&theta, cli.walkers, &stream, 1, true);
    let iteration = t0.elapsed().as_secs_f64();
    let sr_obj = GasThermal::new(&model, gas, cli.walkers).with_sr(SrConfig { damping: 1e-3, max_norm: 0.1 });
    let t0 = Instant::now();
    let sr_step = sr_obj.step(&theta, cli.walkers, &stream, 1, true);
    let with_sr = t0.elapsed().as_secs_f64();
    let gradient = (iteration - sampling - local).max(0.0);
    println!("uniform electron gas, N = {n}, 2D, r_s = {}, Theta = 0.15, 81 plane waves, transformer {} + {:?} flow {} parameters, {} walkers", cli.rs, model.occupation.n_params(), cli.flow, model.state.n_params(), cli.walkers);
    println!("  sampling      {:8.3} ms/walker", 1e3 * sampling / w);
    println!("  local energy  {:8.3} ms/walker   (mean E_loc {:.3} Ry/r_s^2)", 1e3 * local / w, e / w);
    println!("  gradient      {:8.3} ms/walker   (iteration {:.3} ms/walker, F = {:.3})", 1e3 * gradient / w, 1e3 * iteration / w, step.f.0);
    println!("  SR            {:8.3} ms/walker   (iteration with SR {:.3} ms/walker, |step| finite: {})", 1e3 * (with_sr - iteration).max(0.0) / w, 1e3 * with_sr / w, sr_step.grad.iter().all(|v| v.is_finite()));
}
