//! Local-energy cost through a linear map plus RealNVP: D directional Dual2 passes vs the
//! forward-Laplacian jet (blocks of at most 16 directions) vs Hutchinson's estimator (exact gradient
//! by one VJP, P probes). D = 12 (CH3CN size) runs on the compile-time path (`Const<12>`) and on the
//! runtime path (`Dyn(12)`) side by side; then the runtime path at the crystal sizes D = 45, 159 and
//! D = 747 (bcc 5x5x5). Prints microseconds per walker, ratios and the Hutchinson noise.
//!
//! `cargo run --release --example bench_laplacian [-- --couplings 16 --hidden 128 --walkers 200 --large 6]`

use clap::Parser;
use nct::models::vibrational::HarmonicModes;
use nct::*;
use rand::SeedableRng;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Local-energy benchmark: Dual2 passes, Laplacian jet, Hutchinson; static vs runtime dimension")]
struct Cli {
    /// RealNVP couplings at D = 12 (>= 1).
    #[arg(long, default_value_t = 16)]
    couplings: usize,
    /// Hidden width of each coupling's two tanh layers (>= 1).
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Walkers per timing pass at D = 12 (>= 1).
    #[arg(long, default_value_t = 200)]
    walkers: usize,
    /// Couplings of the large-D flows (2x128 each; 0 skips the large sizes).
    #[arg(long, default_value_t = 6)]
    large: usize,
}

struct Timing {
    dual2: Option<f64>,
    jet: f64,
    /// The batched jet over chunks of 32 walkers, and its largest relative deviation from the
    /// per-walker jet.
    batched: (f64, f64),
    hutchinson: Vec<(usize, f64, f64)>,
    params: usize,
}

/// Best of three passes over `walkers` exact samples of the ground state, microseconds per walker.
fn bench<N: Size>(d: N, couplings: usize, hidden: usize, walkers: usize, with_dual2: bool) -> Timing {
    let mut rng = NctRng::seed_from_u64(1);
    let flow = Chain::new(LinearBijector::new(d), real_nvp(d, couplings, &[hidden, hidden], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).expect("validated sizes"));
    let mut theta = flow.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.7).sin();
    }
    let omega = Vector::from_fn(d, |i| 0.4 + 0.25 * (i % 12) as f64);
    let model = QuantumNct::new(flow, omega.clone(), omega.map(|w| 1.0 / w), 4);
    let h = HarmonicModes { omega };
    let n = vec![0usize; d.value()];
    let xs: Vec<Vector<f64, N>> = (0..walkers).map(|_| model.sample(&theta, &n, &mut rng).0).collect();
    let time = |f: &dyn Fn(&Vector<f64, N>) -> f64| {
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
    let dual2 = with_dual2.then(|| time(&|x| model.local_energy(&theta, &h, &n, x)));
    let jet = time(&|x| model.local_energy_jet(&theta, &h, &n, x));
    let labels: Vec<&[usize]> = vec![n.as_slice(); xs.len()];
    let refs: Vec<&Vector<f64, N>> = xs.iter().collect();
    let batched_all = || -> Vec<f64> { refs.chunks(32).zip(labels.chunks(32)).flat_map(|(x, l)| model.kinetic_jets(&theta, l, x).expect("linear + RealNVP have batched kernels")).collect() };
    let batched_time = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            let k = batched_all();
            let s: f64 = k.iter().zip(&xs).map(|(k, x)| k + h.potential(x)).sum();
            std::hint::black_box(s);
            t0.elapsed().as_secs_f64() / xs.len() as f64 * 1e6
        })
        .fold(f64::INFINITY, f64::min);
    let deviation = batched_all().iter().zip(&xs).map(|(b, x)| {
        let k = model.kinetic_jet(&theta, &n, x);
        (b - k).abs() / k.abs().max(1.0)
    }).fold(0.0, f64::max);
    let batched = (batched_time, deviation);
    let mut hutchinson = Vec::new();
    for probes in [1usize, 4] {
        let probe_rng = std::cell::RefCell::new(NctRng::seed_from_u64(7));
        let t = time(&|x| model.kinetic_hutchinson(&theta, &n, x, probes, &mut *probe_rng.borrow_mut()) + h.potential(x));
        // Noise of the estimator: spread of (Hutchinson - exact) over the walkers.
        let dev: Vec<f64> = xs.iter().map(|x| model.kinetic_hutchinson(&theta, &n, x, probes, &mut *probe_rng.borrow_mut()) - model.kinetic_jet(&theta, &n, x)).collect();
        let rms = (dev.iter().map(|d| d * d).sum::<f64>() / dev.len() as f64).sqrt();
        hutchinson.push((probes, t, rms));
    }
    Timing { dual2, jet, batched, hutchinson, params: model.n_params() }
}

fn main() {
    let cli = Cli::parse();
    for (flag, v) in [("--couplings", cli.couplings), ("--hidden", cli.hidden), ("--walkers", cli.walkers)] {
        if v == 0 {
            eprintln!("error: invalid value for {flag}: 0 (at least 1)");
            std::process::exit(2);
        }
    }
    // Warm-up: the first batched passes of a process run about twice slower (the allocator's
    // thresholds adapt to the chunk matrices), which would bias whichever case runs first.
    let _ = bench(Dyn(12), cli.couplings, cli.hidden, cli.walkers.min(32), false);
    let st = bench(Const::<12>, cli.couplings, cli.hidden, cli.walkers, true);
    let dy = bench(Dyn(12), cli.couplings, cli.hidden, cli.walkers, true);
    println!("D = 12, linear + RealNVP ({} couplings, 2x{} tanh), {} parameters, one thread, best of 3", cli.couplings, cli.hidden, st.params);
    println!("                     Const<12>      Dyn(12)   runtime/static");
    let row = |name: &str, a: f64, b: f64| println!("  {name:<16} {a:9.1} us {b:9.1} us   {:6.3}", b / a);
    row("12 Dual2 passes", st.dual2.unwrap_or(f64::NAN), dy.dual2.unwrap_or(f64::NAN));
    row("Laplacian jet", st.jet, dy.jet);
    row("batched jet", st.batched.0, dy.batched.0);
    for (a, b) in st.hutchinson.iter().zip(&dy.hutchinson) {
        row(&format!("Hutchinson P={}", a.0), a.1, b.1);
    }
    println!("  jet speed-up over Dual2 passes: {:.2}x (static), {:.2}x (runtime)", st.dual2.unwrap_or(f64::NAN) / st.jet, dy.dual2.unwrap_or(f64::NAN) / dy.jet);
    println!("  batched jet (chunks of 32 walkers, GEMMs) over the per-walker jet: {:.2}x (static), {:.2}x (runtime); largest relative deviation {:.1e}", st.jet / st.batched.0, dy.jet / dy.batched.0, st.batched.1.max(dy.batched.1));
    for (p, _, rms) in &st.hutchinson {
        println!("  Hutchinson P={p}: rms deviation from the exact local energy {rms:.3e}");
    }
    if cli.large == 0 {
        return;
    }
    println!("\nRuntime dimension, linear + RealNVP ({} couplings, 2x128 tanh), one thread, best of 3:", cli.large);
    println!("      D   parameters     jet (us)   batched jet (us)   Hutchinson P=1 (us, rms)   P=4 (us, rms)");
    for d in [45usize, 159, 747] {
        let walkers = if d > 200 { 4 } else { 20 };
        let t = bench(Dyn(d), cli.large, 128, walkers, false);
        let (h1, h4) = (&t.hutchinson[0], &t.hutchinson[1]);
        println!("  {d:5}   {:10}   {:10.0}   {:16.0}   {:9.0} ({:.2e})        {:9.0} ({:.2e})", t.params, t.jet, t.batched.0, h1.1, h1.2, h4.1, h4.2);
    }
}
