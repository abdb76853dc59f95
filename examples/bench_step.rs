//! Times one variational training step of the harmonic chain n = 32 with a RealNVP point
//! transformation (8 couplings, 2x128 tanh, batch 200): the per-sample scalar-generic path and the
//! batched GEMM path, on 1 and 2 threads. Prints the median of repeated steps and the achieved
//! GFLOP/s (GEMM multiply-adds counted as 2 FLOPs).
//!
//! `cargo run --release --example bench_step [-- --repeats 20]`

use clap::Parser;
use nct::models::HarmonicChain;
use nct::*;
use rand::SeedableRng;
use std::time::Instant;

const N: usize = 32;

#[derive(Parser)]
struct Cli {
    /// Timed steps per configuration (median reported).
    #[arg(long, default_value_t = 15)]
    repeats: usize,
    /// Batch size.
    #[arg(long, default_value_t = 200)]
    batch: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cli = Cli::parse();
    let h = HarmonicChain::<N>::new().with_kappa(1.0);
    let mut rng = NctRng::seed_from_u64(1);
    let nvp = real_nvp::<N>(8, &[128, 128], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).unwrap();
    let macs: usize = nvp.layers().iter().map(|c| c.net().macs()).sum();
    let model = ClassicalNct::new(PointTransform::new(nvp), LatentOscillators::<N>::new(1.0).unwrap());
    let mut theta = model.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.37).sin();
    }
    // Batched step: per coupling and sample 8 GEMM passes of the net (forward, transpose-coupling
    // backprop, JVP, tangent backprop with two weight-gradient products, primal backprop with one).
    let flops_batched = 2.0 * 8.0 * macs as f64 * cli.batch as f64;
    println!("RealNVP point transformation n = {N}: 8 couplings, 2x128 tanh, {} parameters, batch {}", model.n_params(), cli.batch);
    println!("forward pass: {:.1} MFLOP per batch; batched training step: {:.0} MFLOP", 2.0 * macs as f64 * cli.batch as f64 / 1e6, flops_batched / 1e6);
    println!("{:<32} {:>10} {:>10}", "configuration", "ms/step", "GFLOP/s");
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for batched in [false, true] {
            let chunk = if batched { cli.batch.div_ceil(2 * threads).max(1) } else { 8 };
            let engine = BatchEngine::new(chunk);
            let stream = SeedStream::new(3);
            let reps = if batched { cli.repeats } else { cli.repeats.div_ceil(5) };
            let times: Vec<f64> = pool.install(|| {
                (0..reps + 1)
                    .map(|r| {
                        let t0 = Instant::now();
                        let s = if batched {
                            model.variational_batch(&theta, &h, cli.batch, &engine, &stream, r as u64)
                        } else {
                            engine.loss_and_grad(cli.batch, theta.len(), &stream, r as u64, |_, rng, g| model.variational_sample(&theta, &h, rng, g).loss)
                        };
                        std::hint::black_box(s);
                        t0.elapsed().as_secs_f64()
                    })
                    .skip(1)
                    .collect()
            });
            let t = median(times);
            let name = format!("{} path, {threads} thread{}", if batched { "batched" } else { "per-sample" }, if threads > 1 { "s" } else { "" });
            println!("{:<32} {:>10.1} {:>10.2}", name, t * 1e3, flops_batched / t / 1e9);
        }
    }
}
