//! Times one variational training step of the harmonic chain n = 32 with a RealNVP point
//! transformation (8 couplings, 2x128 tanh, batch 200): the per-sample scalar-generic path and the
//! batched GEMM path, on 1 and 2 threads. Prints the median of repeated steps and the achieved
//! GFLOP/s (GEMM multiply-adds counted as 2 FLOPs).
//!
//! `cargo run --release --example bench_step [-- --repeats 20]`

use clap::Parser;
use nct::models::{DynHarmonicChain, HarmonicChain};
use nct::*;
use rand::SeedableRng;
use std::time::Instant;

const N: usize = 32;

#[derive(Parser)]
#[command(about = "One variational training step of the chain n = 32 (RealNVP 8x(2x128)): per-sample vs batched path, compile-time vs runtime dimension")]
struct Cli {
    /// Timed steps per configuration (median reported; >= 1).
    #[arg(long, default_value_t = 15)]
    repeats: usize,
    /// Batch size (>= 1).
    #[arg(long, default_value_t = 200)]
    batch: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds per step for one configuration (the same seeds for both dimension types).
fn measure<D: Size, H: Hamiltonian<D>>(d: D, h: &H, cli: &Cli, threads: usize, batched: bool) -> (f64, usize, usize) {
    let mut rng = NctRng::seed_from_u64(1);
    let nvp = real_nvp(d, 8, &[128, 128], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).expect("n = 32");
    let macs: usize = nvp.layers().iter().map(|c| c.net().macs()).sum();
    let model = ClassicalNct::new(PointTransform::new(nvp), LatentOscillators::new(d, 1.0).expect("beta = 1"));
    let mut theta = model.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.37).sin();
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let chunk = if batched { cli.batch.div_ceil(2 * threads).max(1) } else { 8 };
    let engine = BatchEngine::new(chunk);
    let stream = SeedStream::new(3);
    let reps = if batched { cli.repeats } else { cli.repeats.div_ceil(5) };
    let times: Vec<f64> = pool.install(|| {
        (0..reps + 1)
            .map(|r| {
                let t0 = Instant::now();
                let s = if batched {
                    model.variational_batch(&theta, h, cli.batch, &engine, &stream, r as u64)
                } else {
                    engine.loss_and_grad(cli.batch, theta.len(), &stream, r as u64, |_, rng, g| model.variational_sample(&theta, h, rng, g).loss)
                };
                std::hint::black_box(s);
                t0.elapsed().as_secs_f64()
            })
            .skip(1)
            .collect()
    });
    (median(times), macs, model.n_params())
}

fn main() {
    let cli = Cli::parse();
    for (flag, v) in [("--repeats", cli.repeats), ("--batch", cli.batch)] {
        if v == 0 {
            eprintln!("error: invalid value for {flag}: 0 (at least 1)");
            std::process::exit(2);
        }
    }
    let hs = HarmonicChain::<N>::new().with_kappa(1.0);
    let hd = DynHarmonicChain::new().with_n(N).with_kappa(1.0);
    let mut header = false;
    println!("{:<32} {:>12} {:>12} {:>10} {:>16}", "configuration", "Const<32> ms", "Dyn(32) ms", "GFLOP/s", "runtime/static");
    for threads in [1, 2] {
        for batched in [false, true] {
            let (ts, macs, params) = measure(Const::<N>, &hs, &cli, threads, batched);
            let (td, _, _) = measure(Dyn(N), &hd, &cli, threads, batched);
            // Batched step: per coupling and sample 8 GEMM passes of the net (forward, transpose-coupling
            // backprop, JVP, tangent backprop with two weight-gradient products, primal backprop with one).
            let flops_batched = 2.0 * 8.0 * macs as f64 * cli.batch as f64;
            if !header {
                header = true;
                println!("(RealNVP point transformation n = {N}: 8 couplings, 2x128 tanh, {params} parameters, batch {}; batched step {:.0} MFLOP)", cli.batch, flops_batched / 1e6);
            }
            let name = format!("{} path, {threads} thread{}", if batched { "batched" } else { "per-sample" }, if threads > 1 { "s" } else { "" });
            println!("{:<32} {:>12.1} {:>12.1} {:>10.2} {:>16.3}", name, ts * 1e3, td * 1e3, flops_batched / ts / 1e9, td / ts);
        }
    }
}
