//! The GEMM libraries behind `nct::gemm` at the shapes of the batched kernels, one core, f64.
//!
//! Shapes (`m x k` times `k x n`) are those of the two cases of `bench_compare`: the classical
//! step (chain n = 32, nets 16 -> 200 -> 200 -> 32, chunks of 100 samples; the backward pass
//! multiplies by transposed weights and forms weight gradients `zbar a^T`) and the vibrational
//! kernels (D = 12, nets 6 -> 128 -> 128 -> 12, chunks of 32 walkers; the jet multiplies the
//! value, 12 gradient and the Laplacian columns, 14 x 32 = 448). `op` says which operand is a
//! transposed view (`N`: none, `T.`: A transposed, `.T`: B transposed).
//!
//! These are isolated products; the end-to-end comparison (where a library's effect on the code
//! around it counts too) is `bench_compare --gemm faer|matrixmultiply`.
//!
//! `cargo run --release --example bench_gemm [-- --millis 300]`

use clap::Parser;
use nalgebra::DMatrix;
use nct::gemm::{GemmLibrary, MatRef, gemm_with};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "GFLOP/s of faer and matrixmultiply at the batched kernels' shapes")]
struct Cli {
    /// Minimum time per shape and library in milliseconds, >= 1 (best of three such runs is reported).
    #[arg(long, default_value_t = 200)]
    millis: u64,
}

/// (label, m, k, n, A transposed, B transposed)
const SHAPES: [(&str, usize, usize, usize, bool, bool); 12] = [
    ("classical W1 x", 200, 16, 100, false, false),
    ("classical W2 a", 200, 200, 100, false, false),
    ("classical W3 a", 32, 200, 100, false, false),
    ("classical W2^T zbar", 200, 200, 100, true, false),
    ("classical W1^T zbar", 16, 200, 100, true, false),
    ("classical zbar a^T", 200, 100, 200, false, true),
    ("jet W1 u", 128, 6, 448, false, false),
    ("jet W2 u", 128, 128, 448, false, false),
    ("jet W3 u", 12, 128, 448, false, false),
    ("vjp W2^T zbar", 128, 128, 32, true, false),
    ("vjp zbar a^T", 128, 32, 128, false, true),
    ("square 1024", 1024, 1024, 1024, false, false),
];

fn gflops(lib: GemmLibrary, m: usize, k: usize, n: usize, ta: bool, tb: bool, millis: u64) -> f64 {
    let a = if ta { DMatrix::from_fn(k, m, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.1) } else { DMatrix::from_fn(m, k, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.1) };
    let b = if tb { DMatrix::from_fn(n, k, |i, j| ((i * 5 + j) % 13) as f64 * 0.1) } else { DMatrix::from_fn(k, n, |i, j| ((i * 5 + j) % 13) as f64 * 0.1) };
    let ar = if ta { MatRef::from(&a).t() } else { MatRef::from(&a) };
    let br = if tb { MatRef::from(&b).t() } else { MatRef::from(&b) };
    let mut c = vec![0.0; m * n];
    let flop = 2.0 * (m * k * n) as f64;
    let best = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            let mut reps = 0u64;
            while t0.elapsed().as_millis() < millis as u128 {
                gemm_with(lib, &mut c, m, 1.0, ar, br, 0.0);
                std::hint::black_box(&mut c);
                reps += 1;
            }
            t0.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min);
    flop / best / 1e9
}

fn main() {
    let cli = Cli::parse();
    if cli.millis == 0 {
        eprintln!("error: invalid value for --millis: 0 (at least 1)");
        std::process::exit(2);
    }
    let libs = [GemmLibrary::Faer, GemmLibrary::MatrixMultiply];
    println!("{:<22} {:>5} {:>5} {:>5} {:>3}  {:>14} {:>14}  ratio", "shape", "m", "k", "n", "op", "faer GFLOP/s", "matrixmult.");
    for &(label, m, k, n, ta, tb) in &SHAPES {
        let r: Vec<f64> = libs.iter().map(|&lib| gflops(lib, m, k, n, ta, tb, cli.millis)).collect();
        let op = match (ta, tb) {
            (false, false) => "N",
            (true, false) => "T.",
            _ => ".T",
        };
        println!("{label:<22} {m:>5} {k:>5} {n:>5} {op:>3}  {:>14.1} {:>14.1}  {:.2}", r[0], r[1], r[0] / r[1]);
    }
}
