//! Timings of one crystal NCT iteration (bcc lithium, dp4, 50 K, the reference's flow: per-mode
//! scale and shift, 6 RealNVP couplings with hidden widths 128,128), split into sampling (occupations
//! and the inverse flow), potential (DeepPot-SE energies), local kinetic energy (Laplacian) and the
//! gradient (flow VJP and occupation score), then a whole training step on the batch engine; for
//! supercells 2x2x2 ... 5x5x5. Every part is timed single-threaded over the batch; the step uses
//! --threads. The reference JAX code on this machine kind: 8.63 s CPU per iteration at batch 64 for
//! bcc 2x2x2 with its production 3000 Metropolis steps (training_bcc222.json).
//!
//! `cargo run --release --example bench_crystal -- --batch 64 --max-supercell 5`

use clap::Parser;
use nct::models::solid::structure::UnitCell;
use nct::models::solid::{CrystalModes, CrystalPotential, DeepPot, HarmonicModes, Isotope, Supercell};
use nct::models::solid::thermal::thermal_model;
use nct::quantum::occupation::OccupationModel;
use nct::*;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Timings of one crystal NCT iteration, split by part, for growing supercells")]
struct Cli {
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Largest bcc supercell n (n x n x n, 2..=6).
    #[arg(long, default_value_t = 4)]
    max_supercell: usize,
    /// Repetitions of the whole step (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Threads of the training step (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Modes up to which the exact jet Laplacian is used; Hutchinson (1 probe) above.
    #[arg(long, default_value_t = 200)]
    jet_up_to: usize,
}

fn main() {
    let cli = Cli::parse();
    if cli.batch == 0 || !(2..=6).contains(&cli.max_supercell) || cli.repeat == 0 {
        eprintln!("error: --batch >= 1, --max-supercell 2..=6 and --repeat >= 1 are required");
        std::process::exit(2);
    }
    if cli.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(cli.threads).build_global().ok();
    }
    let root = nct::models::solid::data_dir();
    let dp = Arc::new(DeepPot::load(root.join("dp4.safetensors")).unwrap_or_else(|e| panic!("{e}")));
    let unit = UnitCell::read_poscar(root.join("structures/bcc.vasp")).unwrap_or_else(|e| panic!("{e}"));
    println!("batch {}, {} threads for the step; seconds per iteration (parts single-threaded)", cli.batch, rayon::current_num_threads());
    println!("{:>5} {:>6} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>11} {:>9}", "cell", "modes", "laplacian", "hessian", "sampling", "potential", "kinetic", "gradient", "step(wall)", "step(cpu)");
    for c in 2..=cli.max_supercell {
        let sc = Supercell::new(&unit, [c; 3], 19.515776, true).unwrap();
        let images = dp.images(sc.lengths).unwrap();
        let t0 = Instant::now();
        let modes = HarmonicModes::new(&dp, &images, &sc, Isotope::Natural.effective_mass()).unwrap();
        let hessian = t0.elapsed().as_secs_f64();
        let h = CrystalModes::new(modes, CrystalPotential::DeepPot { model: dp.clone(), images });
        let d = h.modes.modes();
        let mut rng = SeedStream::new(1).named("flow");
        let nvp = real_nvp(Dyn(d), 6, &[128, 128], Activation::Tanh, MaskScheme::EvenOdd, &mut rng).unwrap();
        let laplacian = if d <= cli.jet_up_to { LaplacianMethod::Jet } else { LaplacianMethod::Hutchinson { probes: 1 } };
        let model = thermal_model(&h, Chain::new(DiagonalAffine::new(Dyn(d)), nvp), 50.0, 20, laplacian).unwrap_or_else(|e| panic!("{e}"));
        let mut theta = vec![0.0; model.n_params()];
        model.init_params(&mut SeedStream::new(2).named("init"), &mut theta);
        let (tf, to) = model.split(&theta);
        let mut r = SeedStream::new(3).named("bench");
        let t = Instant::now();
        let draws: Vec<(Vec<usize>, Vector<f64, Dyn>)> = (0..cli.batch).map(|_| {
            let (n, _) = OccupationModel::sample(&model.occupation, to, &mut r);
            let (x, _) = model.states.sample(tf, &n, &mut r);
            (n, x)
        }).collect();
        let sampling = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let v: f64 = draws.iter().map(|(_, x)| h.potential(x)).sum();
        let potential = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let k: f64 = draws.iter().map(|(n, x)| model.states.kinetic(tf, n, x, &mut r)).sum();
        let kinetic = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut g = vec![0.0; theta.len()];
        for (n, x) in &draws {
            model.states.add_log_psi_grad(tf, n, x, 1.0 / cli.batch as f64, &mut g[..tf.len()]);
            OccupationModel::add_log_prob_grad(&model.occupation, to, n, 1.0 / cli.batch as f64, &mut g[tf.len()..]);
        }
        let gradient = t.elapsed().as_secs_f64();
        assert!((v + k).is_finite() && g.iter().all(|x| x.is_finite()));
        let engine = BatchEngine::new(8);
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for rep in 0..cli.repeat {
            let (t, c) = (Instant::now(), cpu_seconds());
            let s = model.step(&theta, &h, cli.batch, &engine, &SeedStream::new(4), rep as u64);
            assert!(s.f.is_finite());
            walls.push(t.elapsed().as_secs_f64());
            cpus.push(cpu_seconds() - c);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!("{:>5} {:>6} {:>9} {:>9.2} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>11.4} {:>9.4}", format!("{c}x{c}x{c}"), d, if d <= cli.jet_up_to { "jet" } else { "hutch1" }, hessian, sampling, potential, kinetic, gradient, median(&mut walls), median(&mut cpus));
    }
}

/// CPU time of this process (user + system, all threads) from /proc/self/stat; 0 where unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(rest) = stat.rsplit(')').next() else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the closing parenthesis.
    (ticks(11) + ticks(12)) / 100.0
}
