//! ncT against the reference codes and against this machine's GEMM peak, for the two cases of
//! issue 16: the classical training step (chain n = 32, RealNVP 8 couplings, batch 200) and the
//! quantum kernels of a vibrational iteration (D = 12, linear map + 16 couplings of 2x128, the CH3CN
//! paper flow's size: sampling by the batched inverse, local energy by the batched Laplacian jet,
//! parameter gradient by the batched VJP). Prints time, GFLOP/s by an explicit FLOP count (GEMM
//! multiply-adds as 2 FLOPs) and the fraction of a 1024^3 f64 GEMM measured in the same run with the
//! same GEMM library (`--gemm faer|matrixmultiply`). The reference numbers are constants measured by the
//! issue's author on this machine kind (2-core EPYC, one thread, reference codes run unchanged).
//!
//! The quantum kernels are timed on one thread (a sequential loop over the chunks); the whole
//! iteration on one and two threads is `vibrational --system ch3cn --couplings 16 --hidden 128,128`.
//!
//! `cargo run --release --example bench_compare [-- --repeats 9]`

use clap::Parser;
use nalgebra::DMatrix;
use nct::models::DynHarmonicChain;
use nct::models::vibrational::HarmonicModes;
use nct::*;
use nct::gemm::GemmLibrary;
use rand::SeedableRng;
use std::time::Instant;

/// neuralCT (PyTorch), chain n = 32 training step at ~400k parameters, f64 / f32 (issue 16).
const TORCH_STEP_F64_MS: f64 = 69.7;
const TORCH_STEP_F32_MS: f64 = 37.6;
/// VibrationalSystem (JAX), CH3CN iteration at 256 walkers with 200 / 20 MCMC steps (issue 16).
const JAX_CH3CN_200_S: f64 = 5.64;
const JAX_CH3CN_20_S: f64 = 0.84;
/// JAX forward-over-reverse exact Laplacian per walker, D = 12, same flow size (issue 16).
const JAX_LAPLACIAN_MS: f64 = 1.46;

#[derive(Parser)]
#[command(about = "ncT vs reference codes and vs the measured GEMM peak (classical step, quantum kernels)")]
struct Cli {
    /// Timed repetitions per case (median reported; >= 1).
    #[arg(long, default_value_t = 9)]
    repeats: usize,
    /// Which case to run: both, or only one of them (e.g. under a profiler).
    #[arg(long, value_enum, default_value_t = Case::All)]
    case: Case,
    /// GEMM library behind every batched product (and the peak measurement).
    #[arg(long, value_enum, default_value_t = Gemm::Faer)]
    gemm: Gemm,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Gemm {
    Faer,
    Matrixmultiply,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Case {
    All,
    Classical,
    Quantum,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs after one warm-up.
fn time(reps: usize, f: &mut dyn FnMut()) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// GFLOP/s of a 1024^3 f64 GEMM (best of three).
fn gemm_peak() -> f64 {
    let n = 1024;
    let a = DMatrix::<f64>::from_fn(n, n, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.1);
    let b = DMatrix::<f64>::from_fn(n, n, |i, j| ((i * 5 + j) % 13) as f64 * 0.1);
    let mut c = DMatrix::<f64>::zeros(n, n);
    let best = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            nct::gemm::gemm_into(&mut c, 1.0, (&a).into(), (&b).into(), 0.0);
            std::hint::black_box(&c);
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Median seconds of one batched classical step of the n = 32 chain, its FLOPs and parameters.
fn classical_step(hidden: usize, reps: usize) -> (f64, f64, usize) {
    let (d, batch) = (Dyn(32), 200usize);
    let h = DynHarmonicChain::new().with_n(32).with_kappa(1.0);
    let mut rng = NctRng::seed_from_u64(1);
    let nvp = real_nvp(d, 8, &[hidden, hidden], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).expect("n = 32");
    let macs: usize = nvp.layers().iter().map(|c| c.net().macs()).sum();
    let model = ClassicalNct::new(PointTransform::new(nvp), LatentOscillators::new(d, 1.0).expect("beta = 1"));
    let mut theta = model.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.37).sin();
    }
    let engine = BatchEngine::new(batch.div_ceil(2));
    let stream = SeedStream::new(3);
    let mut r = 0u64;
    let t = time(reps, &mut || {
        r += 1;
        std::hint::black_box(model.variational_batch(&theta, &h, batch, &engine, &stream, r));
    });
    // Per coupling and sample 8 GEMM passes of the net (see bench_step).
    (t, 2.0 * 8.0 * macs as f64 * batch as f64, model.n_params())
}

/// Quantum kernels per walker at D = 12 (paper-size flow) over 256 walkers in chunks of 32:
/// (sampling, local energy, gradient) seconds per walker and the FLOPs of each.
fn quantum_kernels(reps: usize) -> ([f64; 3], [f64; 3], usize) {
    let d = Dyn(12);
    let mut rng = NctRng::seed_from_u64(1);
    let nvp = real_nvp(d, 16, &[128, 128], Activation::Tanh, MaskScheme::AlternatingHalves, &mut rng).expect("D = 12");
    let macs: usize = nvp.layers().iter().map(|c| c.net().macs()).sum();
    let flow = Chain::new(LinearBijector::new(d), nvp);
    let mut theta = flow.new_params(&mut rng);
    for (k, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((k as f64) * 0.7).sin();
    }
    let omega = Vector::from_fn(d, |i| 0.4 + 0.25 * i as f64);
    let model = QuantumNct::new(flow, omega.clone(), omega.map(|w| 1.0 / w), 4);
    let h = HarmonicModes { omega };
    let (walkers, chunk) = (256, 32);
    let n = vec![0usize; 12];
    let labels: Vec<&[usize]> = vec![n.as_slice(); walkers];
    let mut xs = Vec::new();
    let t_sample = time(reps, &mut || {
        let mut r = NctRng::seed_from_u64(2);
        xs = labels.chunks(chunk).flat_map(|l| model.samples(&theta, l, &mut r)).map(|(x, _)| x).collect();
    });
    let refs: Vec<&Vector<f64, Dyn>> = xs.iter().collect();
    let t_energy = time(reps, &mut || {
        let e: f64 = refs.chunks(chunk).zip(labels.chunks(chunk)).flat_map(|(x, l)| model.kinetic_jets(&theta, l, x).expect("batched kernels")).zip(&xs).map(|(k, x)| k + h.potential(x)).sum();
        std::hint::black_box(e);
    });
    let coefs = vec![1.0 / walkers as f64; chunk];
    let t_grad = time(reps, &mut || {
        let mut g = vec![0.0; theta.len()];
        for (x, l) in refs.chunks(chunk).zip(labels.chunks(chunk)) {
            model.add_log_psi_grads(&theta, l, x, &coefs[..x.len()], &mut g);
        }
        std::hint::black_box(g);
    });
    let per = |t: f64| t / walkers as f64;
    // FLOPs per walker: inverse = one net pass; jet = value, 12 gradient and Laplacian columns;
    // gradient = forward + input cotangent + weight gradient.
    let m = 2.0 * macs as f64;
    ([per(t_sample), per(t_energy), per(t_grad)], [m, 14.0 * m, 3.0 * m], model.n_params())
}

fn main() {
    let cli = Cli::parse();
    if cli.repeats == 0 {
        eprintln!("error: invalid value for --repeats: 0 (at least 1)");
        std::process::exit(2);
    }
    let lib = match cli.gemm {
        Gemm::Faer => GemmLibrary::Faer,
        Gemm::Matrixmultiply => GemmLibrary::MatrixMultiply,
    };
    nct::gemm::set_library(lib);
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| {
            // The GEMM runs on one core; the peak of `threads` cores is that many times its rate.
            let core = gemm_peak();
            let peak = core * threads as f64;
            println!("== {threads} thread{}: f64 GEMM 1024^3 ({lib:?}, one core) {core:.1} GFLOP/s, peak of {threads} core(s) {peak:.1}", if threads > 1 { "s" } else { "" });
            if cli.case != Case::Quantum {
                println!("classical step, chain n = 32, RealNVP 8 couplings, batch 200 (batched f64 path):");
            }
            for hidden in [128usize, 200].into_iter().filter(|_| cli.case != Case::Quantum) {
                let (t, flops, params) = classical_step(hidden, cli.repeats);
                let gf = flops / t / 1e9;
                println!("  2x{hidden:<3} {params:7} params  {:7.1} ms  {gf:5.1} GFLOP/s  {:4.0} % of peak  neuralCT f64 {TORCH_STEP_F64_MS} ms ({:.2}x), f32 {TORCH_STEP_F32_MS} ms ({:.2}x)", t * 1e3, 100.0 * gf / peak, TORCH_STEP_F64_MS / (t * 1e3), TORCH_STEP_F32_MS / (t * 1e3));
            }
            if threads > 1 || cli.case == Case::Classical {
                // The quantum kernels below are timed as sequential loops over the chunks; the
                // threaded iteration is the vibrational example's.
                return;
            }
            let (t, f, params) = quantum_kernels(cli.repeats);
            println!("quantum kernels, D = 12, linear + 16 couplings 2x128 ({params} params), 256 walkers in chunks of 32, per walker:");
            for (k, name) in ["sampling (batched inverse)", "local energy (batched jet)", "ln psi gradient (batched VJP)"].iter().enumerate() {
                let gf = f[k] / t[k] / 1e9;
                println!("  {name:<30} {:8.1} us  {gf:5.1} GFLOP/s  {:4.0} % of peak", t[k] * 1e6, 100.0 * gf / peak);
            }
            let total = t.iter().sum::<f64>() * 256.0;
            println!("  JAX forward-over-reverse Laplacian {JAX_LAPLACIAN_MS} ms per walker: {:.1}x", JAX_LAPLACIAN_MS * 1e-3 / t[1]);
            println!("  kernels of one 256-walker iteration {total:.3} s; JAX CH3CN iteration {JAX_CH3CN_20_S} s (20 MCMC steps) / {JAX_CH3CN_200_S} s (200): {:.1}x / {:.1}x", JAX_CH3CN_20_S / total, JAX_CH3CN_200_S / total);
        });
    }
}
