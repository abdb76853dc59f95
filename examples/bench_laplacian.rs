//! Local-energy cost for D = 12 (CH3CN size): D directional Dual2 passes vs one forward-Laplacian
//! jet pass vs Hutchinson's estimator (exact gradient by one VJP, P probes), through a linear map
//! plus RealNVP. Prints microseconds per walker, the ratio, and the Hutchinson noise.
//!
//! `cargo run --release --example bench_laplacian [-- --couplings 16 --hidden 128]`

use clap::Parser;
use nalgebra::SVector;
use nct::models::vibrational::HarmonicModes;
use nct::*;
use rand::SeedableRng;
use std::time::Instant;

const D: usize = 12;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 16)]
    couplings: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 200)]
    walkers: usize,
}

fn main() {
    let cli = Cli::parse();
    let mut rng = NctRng::seed_from_u64(1);
    let flow = Chain::new(LinearBijector::<D>::new(), real_nvp::<D>(cli.couplings, &[cli.hidden, cli.hidden], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).unwrap());
    let mut theta = flow.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.7).sin();
    }
    let omega = SVector::<f64, D>::from_fn(|i, _| 0.4 + 0.25 * i as f64);
    let model = QuantumNct::new(flow, omega, omega.map(|w| 1.0 / w), 4);
    let h = HarmonicModes::<D> { omega };
    let n = vec![0usize; D];
    let xs: Vec<SVector<f64, D>> = (0..cli.walkers).map(|_| model.sample(&theta, &n, &mut rng).0).collect();
    // Best of three passes over the walkers (less sensitive to other load on the machine).
    let time = |f: &dyn Fn(&SVector<f64, D>) -> f64| {
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                let s: f64 = xs.iter().map(f).sum();
                std::hint::black_box(s);
                t0.elapsed().as_secs_f64() / xs.len() as f64 * 1e6
            })
            .fold(f64::INFINITY, f64::min)
    };
    let _ = time(&|x| model.local_energy_jet(&theta, &h, &n, x));
    let dual2 = time(&|x| model.local_energy(&theta, &h, &n, x));
    let jet = time(&|x| model.local_energy_jet(&theta, &h, &n, x));
    println!("D = {D}, linear + RealNVP ({} couplings, 2x{} tanh), {} parameters, one thread, best of 3", cli.couplings, cli.hidden, model.n_params());
    println!("  {D} Dual2 passes : {dual2:9.1} us per walker");
    println!("  Laplacian jet   : {jet:9.1} us per walker");
    println!("  speed-up        : {:9.2}x", dual2 / jet);
    for probes in [1usize, 4] {
        let probe_rng = std::cell::RefCell::new(NctRng::seed_from_u64(7));
        let hut = time(&|x| model.kinetic_hutchinson(&theta, &n, x, probes, &mut *probe_rng.borrow_mut()) + h.potential(x));
        // Noise of the estimator: spread of (Hutchinson - exact) over the walkers.
        let dev: Vec<f64> = xs.iter().map(|x| model.kinetic_hutchinson(&theta, &n, x, probes, &mut *probe_rng.borrow_mut()) - model.kinetic_jet(&theta, &n, x)).collect();
        let rms = (dev.iter().map(|d| d * d).sum::<f64>() / dev.len() as f64).sqrt();
        println!("  Hutchinson P={probes}  : {hut:9.1} us per walker; rms deviation from exact {rms:.3e}");
    }
}
