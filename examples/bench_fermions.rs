//! Cost of the fermion building blocks per walker: exact DPP sampling of $|\Phi|^2/N!$, one Slater
//! evaluation (ln|Phi|, gradient and Laplacian from the pivoted LU) and the local energy, for
//! spin-polarised electrons in the 2D trap. Prints microseconds per walker on one thread.
//!
//! The second table is one walker-iteration of fermionic NCT (the quantum_dot example's default
//! flow: four pair-backflow layers and a radial scaling, at non-trivial parameters): exact sample
//! (DPP, then the inverse flow), local energy (jet Laplacian through the flow, Coulomb potential)
//! and the parameter gradient of ln|psi| (one VJP). Run it with RAYON_NUM_THREADS=1.
//!
//! `cargo run --release --example bench_fermions [-- --particles 6,12,20 --walkers 2000]`

use clap::Parser;
use nct::fermion::{DppSampler, FermiState, PairBackflow, RadialScaling, enumerate_states, local_kinetic, trap_potential};
use nct::models::quantum_dot::QuantumDot;
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
    println!("\n  fermionic NCT, backflow4+radial, kappa = 0.5, {} walkers: microseconds per walker", cli.walkers);
    println!("  N    sample   local energy   gradient   total");
    for &n in &cli.particles {
        let (orbitals, states) = enumerate_states(2, n, 0, 0);
        let ground = &states[0];
        let flow = Chain::new(Stack::new(vec![PairBackflow::new(n, 2); 4]), RadialScaling::new(n, 2));
        let theta: Vec<f64> = (0..flow.n_params()).map(|k| 0.3 * ((k as f64) * 1.7 + 0.4).sin()).collect();
        let state = FermiState::new(flow, orbitals);
        let h = QuantumDot::new().with_n(n).with_d(2).with_kappa(0.5);
        let mut rng = NctRng::seed_from_u64(2);
        let t = Instant::now();
        let xs: Vec<_> = (0..cli.walkers).map(|_| state.sample(&theta, ground, &mut rng).expect("distinct orbitals")).collect();
        let sample_us = t.elapsed().as_secs_f64() * 1e6 / cli.walkers as f64;
        let t = Instant::now();
        let e: f64 = xs.iter().map(|x| state.kinetic(&theta, ground, x) + h.potential(x)).sum();
        let local_us = t.elapsed().as_secs_f64() * 1e6 / cli.walkers as f64;
        let t = Instant::now();
        let mut g = vec![0.0; theta.len()];
        for x in &xs {
            state.add_log_psi_grad(&theta, ground, x, 1.0, &mut g);
        }
        let grad_us = t.elapsed().as_secs_f64() * 1e6 / cli.walkers as f64;
        assert!(e.is_finite() && g.iter().all(|v| v.is_finite()));
        println!("  {n:<4} {sample_us:>6.1}   {local_us:>12.1}   {grad_us:>8.1}   {:>5.1}", sample_us + local_us + grad_us);
    }
}
