//! Cost of the fermion building blocks per walker: exact DPP sampling of $|\Phi|^2/N!$, one Slater
//! evaluation (ln|Phi|, gradient and Laplacian from the pivoted LU) and the local energy, for
//! spin-polarised electrons in the 2D trap. Prints microseconds per walker on one thread.
//!
//! `cargo run --release --example bench_fermions [-- --particles 6,12,20 --walkers 2000]`

use clap::Parser;
use nct::fermion::{DppSampler, enumerate_states, local_kinetic, trap_potential};
use nct::*;
use rand::SeedableRng;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Fermion benchmark: DPP sampling, Slater derivatives and local energy per walker (2D trap)")]
struct Cli {
    /// Particle counts (each >= 1).
    #[arg(long, value_delimiter = ',', default_value = "6,12,20")]
    particles: Vec<usize>,
    /// Walkers per timing (>= 1).
    #[arg(long, default_value_t = 2000)]
    walkers: usize,
}

fn main() {
    let cli = Cli::parse();
    if cli.walkers == 0 || cli.particles.iter().any(|&n| n == 0 || n > 200) {
        eprintln!("error: invalid value: --walkers must be >= 1 and every --particles value in 1..=200");
        std::process::exit(2);
    }
    println!("  N    sample (us)   rejected/walker   local energy (us)   E_loc - E_0");
    for &n in &cli.particles {
        let (orbitals, states) = enumerate_states(2, n, 0, 0);
        let ground = &states[0];
        let sampler = DppSampler::new(orbitals.clone());
        let mut rng = NctRng::seed_from_u64(1);
        let t = Instant::now();
        let mut rejected = 0;
        let xs: Vec<Vec<f64>> = (0..cli.walkers)
            .map(|_| {
                let (x, r) = sampler.sample(&ground.up, &mut rng).expect("distinct orbitals");
                rejected += r;
                x
            })
            .collect();
        let sample_us = t.elapsed().as_secs_f64() * 1e6 / cli.walkers as f64;
        let t = Instant::now();
        let mut worst = 0.0f64;
        for x in &xs {
            match local_kinetic(&orbitals, ground, x) {
                Ok(k) => worst = worst.max((k + trap_potential(x) - ground.energy(&orbitals)).abs()),
                Err(e) => eprintln!("  N = {n}: {e}"),
            }
        }
        let local_us = t.elapsed().as_secs_f64() * 1e6 / cli.walkers as f64;
        println!("  {n:<4} {sample_us:>11.1}   {:>15.1}   {local_us:>17.1}   {worst:.1e}", rejected as f64 / cli.walkers as f64);
    }
}
